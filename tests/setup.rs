//! scripts/setup on a bad machine: one clear sentence, a non-zero exit, and nothing
//! half-installed left to be taken for installed.
mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn setup(cache: &Path, path: &str, base_python: &str, what: &str) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg(repo().join("scripts/setup"))
        .arg(what)
        .env_clear()
        .env("PATH", path)
        .env("HOME", cache)
        .env("AELAB_CACHE", cache)
        .env("AELAB_BASE_PYTHON", base_python)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const SYS_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[test]
fn no_python() {
    let d = tmp();
    let (code, err) = setup(d.path(), SYS_PATH, "/nonexistent/python3", "torch");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("python3 is not installed") && err.contains("LIBTORCH"),
        "{err}"
    );
}

#[test]
fn failed_pip_install_leaves_nothing_behind() {
    let d = tmp();
    // a python whose venv works but whose pip fails, as with no network
    let fake = d.path().join("fakepython");
    script(
        &fake,
        r#"if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; printf '#!/bin/sh\necho "ERROR: No matching distribution found for torch" >&2; exit 1\n' > "$3/bin/python"; chmod +x "$3/bin/python"; exit 0; fi; exit 1"#,
    );
    let cache = d.path().join("cache");
    let (code, err) = setup(&cache, SYS_PATH, fake.to_str().unwrap(), "torch");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("pip could not install torch==2.13.0")
            && err.contains("run scripts/setup again"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "half-installed leftovers: {left:?}");
}

#[test]
fn no_apt_says_where_to_put_files() {
    let d = tmp();
    // a PATH with the shell tools setup needs, but no apt-get or dpkg
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in [
        "bash", "env", "mkdir", "rm", "mv", "cp", "touch", "find", "head", "dirname", "id", "cat",
        "printf",
    ] {
        if let Ok(p) = which(tool) {
            std::os::unix::fs::symlink(p, bin.join(tool)).unwrap();
        }
    }
    let (code, err) = setup(
        &d.path().join("cache"),
        bin.to_str().unwrap(),
        "python3",
        "data",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("apt-get/dpkg not found") && err.contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
    assert!(!d.path().join("cache/data/fashion-mnist/.complete").exists());
}

fn which(tool: &str) -> Result<std::path::PathBuf, ()> {
    for dir in SYS_PATH.split(':') {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(())
}
