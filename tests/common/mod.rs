//! Helpers for the integration tests: they drive the real `aelab` binary in a
//! temporary directory, and use the setup's Python (AELAB_PYTHON, torch 2.13.0) as
//! the reference client.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn aelab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aelab"));
    // one thread each: tests run side by side on small machines
    c.env("OMP_NUM_THREADS", "1");
    c
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn experiment(name: &str) -> PathBuf {
    repo().join("experiments").join(name)
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Run aelab; panic with its output unless it exits with `code`.
pub fn expect_code(args: &[&str], cwd: &Path, code: i32) -> Output {
    let out = aelab()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run aelab");
    if out.status.code() != Some(code) {
        panic!(
            "aelab {args:?} exited with {:?}, expected {code}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn ok(args: &[&str], cwd: &Path) -> Output {
    expect_code(args, cwd, 0)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// metrics.csv as (header, rows).
pub fn metrics(run: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(run.join("metrics.csv")).expect("metrics.csv");
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (head, rows)
}

pub fn column(run: &Path, name: &str) -> Vec<f64> {
    let (h, rows) = metrics(run);
    let i = h
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {h:?}"));
    rows.iter().map(|r| r[i]).collect()
}

pub fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).expect("summary.json"))
        .unwrap()
}

/// The Python with torch that scripts/setup installed, if there is one.
pub fn python() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("AELAB_PYTHON")?);
    p.exists().then_some(p)
}

/// Run a Python snippet with the reference torch; returns stdout. None (and a
/// note) when no such Python is configured.
pub fn py(code: &str, cwd: &Path) -> Option<String> {
    let Some(p) = python() else {
        eprintln!("skipped: AELAB_PYTHON is not set (run through scripts/test)");
        return None;
    };
    // from a file, so torch.jit.script can read the source of classes defined here
    let file = cwd.join(format!("snippet-{}.py", std::process::id()));
    std::fs::write(&file, code).expect("write snippet");
    let out = Command::new(p)
        .arg(&file)
        .current_dir(cwd)
        .env("PYTHONPATH", repo().join("scripts"))
        .output()
        .expect("run python");
    if !out.status.success() {
        panic!(
            "python failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Whether Fashion-MNIST is where the default experiments look.
pub fn have_fashion() -> bool {
    let base = std::env::var("AELAB_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/aelab/data")
        });
    base.join("fashion-mnist")
        .join("train-images-idx3-ubyte.gz")
        .exists()
}

/// The quick slice every image test uses.
pub const QUICK: [&str; 6] = [
    "--set",
    "data.limit=600",
    "--set",
    "train.epochs=3",
    "--set",
    "plots.latent.points=300",
];
