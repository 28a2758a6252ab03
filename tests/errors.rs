//! Bad input: a clear message that names the file, the key (and line) and what was
//! expected; exit code 2; no panic, no backtrace; no run directory left behind.
mod common;
use common::*;
use std::path::Path;

const GOOD: &str = "name: t\nseed: 1\ndata:\n  source: synthetic\n  samples: 200\n  features: 10\n  intrinsic: 3\n  validation: 0.2\nmodel:\n  kind: mlp\n  hidden: [8]\n  latent: 3\n  output: linear\nloss:\n  kind: mse\ntrain:\n  epochs: 2\n  batch_size: 32\n";

/// Run `aelab run file.yaml` on `yaml`, expect exit 2, and return stderr.
fn bad_run(yaml: &str, extra: &[&str]) -> String {
    let dir = tmp();
    std::fs::write(dir.path().join("e.yaml"), yaml).unwrap();
    let mut args = vec!["run", "e.yaml"];
    args.extend(extra);
    let out = expect_code(&args, dir.path(), 2);
    let err = stderr(&out);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "a config error left a run directory: {err}"
    );
    err
}

fn has(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "expected {p:?} in:\n{err}");
    }
}

#[test]
fn the_good_file_runs() {
    let dir = tmp();
    std::fs::write(dir.path().join("e.yaml"), GOOD).unwrap();
    ok(&["run", "-q", "e.yaml"], dir.path());
}

#[test]
fn missing_empty_not_yaml_not_mapping() {
    let dir = tmp();
    let err = stderr(&expect_code(&["run", "nope.yaml"], dir.path(), 2));
    has(&err, &["nope.yaml", "cannot read"]);
    has(&bad_run("", &[]), &["e.yaml", "empty"]);
    has(
        &bad_run("name: [unclosed\n", &[]),
        &["e.yaml", "not valid YAML", "line"],
    );
    has(
        &bad_run("- a\n- b\n", &[]),
        &["e.yaml", "mapping", "a list"],
    );
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let err = bad_run(&GOOD.replace("  hidden: [8]", "  hiden: [8]"), &[]);
    has(
        &err,
        &[
            "e.yaml",
            "model",
            "unknown field `hiden`",
            "did you mean `hidden`",
            "line 11",
        ],
    );
    let err = bad_run(&GOOD.replace("kind: mlp", "kind: mpl"), &[]);
    has(&err, &["unknown variant `mpl`", "did you mean `mlp`"]);
}

#[test]
fn wrong_type() {
    let err = bad_run(&GOOD.replace("epochs: 2", "epochs: many"), &[]);
    has(&err, &["e.yaml", "train.epochs", "invalid type", "line"]);
}

#[test]
fn non_positive_numbers_name_their_key() {
    for (from, to, key) in [
        ("epochs: 2", "epochs: 0", "train.epochs"),
        ("epochs: 2", "epochs: -3", "train.epochs"),
        ("batch_size: 32", "batch_size: 0", "train.batch_size"),
        ("latent: 3", "latent: 0", "model.latent"),
    ] {
        has(
            &bad_run(&GOOD.replace(from, to), &[]),
            &["e.yaml", key, "at least 1"],
        );
    }
    let err = bad_run(GOOD, &["--set", "train.optimizer.lr=-0.1"]);
    has(&err, &["train.optimizer.lr", "positive"]);
}

#[test]
fn latent_must_compress() {
    has(
        &bad_run(&GOOD.replace("latent: 3", "latent: 10"), &[]),
        &["model.latent", "not smaller than the input", "10"],
    );
}

#[test]
fn conv_on_tabular_data() {
    has(
        &bad_run(&GOOD.replace("kind: mlp", "kind: conv"), &[]),
        &["e.yaml: model.kind", "image data", "[10]"],
    );
}

#[test]
fn data_path_that_does_not_exist() {
    let y = GOOD.replace("source: synthetic", "source: csv\n  path: missing.csv");
    has(
        &bad_run(&y, &[]),
        &["data.path", "missing.csv", "does not exist"],
    );
}

fn idx_yaml(dir: &Path) -> String {
    format!(
        "name: t\ndata: {{source: idx, path: {}}}\nmodel: {{kind: mlp, latent: 2}}\ntrain: {{epochs: 1}}\n",
        dir.display()
    )
}

fn write_idx(dir: &Path, magic: [u8; 4], truncate: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let mut img = magic.to_vec();
    for d in [4u32, 2, 2] {
        img.extend(d.to_be_bytes());
    }
    img.extend(vec![7u8; if truncate { 10 } else { 16 }]);
    let mut lab = vec![0, 0, 8, 1];
    lab.extend(4u32.to_be_bytes());
    lab.extend([0u8, 1, 2, 3]);
    for p in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{p}-images-idx3-ubyte")), &img).unwrap();
        std::fs::write(dir.join(format!("{p}-labels-idx1-ubyte")), &lab).unwrap();
    }
}

#[test]
fn idx_wrong_magic_and_truncated() {
    let d = tmp();
    write_idx(&d.path().join("m"), [0, 0, 9, 3], false);
    has(
        &bad_run(&idx_yaml(&d.path().join("m")), &[]),
        &["train-images-idx3-ubyte", "magic number", "00 00 09 03"],
    );
    write_idx(&d.path().join("t"), [0, 0, 8, 3], true);
    has(
        &bad_run(&idx_yaml(&d.path().join("t")), &[]),
        &["train-images-idx3-ubyte", "truncated", "16 bytes", "has 10"],
    );
}

fn csv_yaml(path: &Path) -> String {
    format!(
        "name: t\ndata: {{source: csv, path: {}, validation: 0.2}}\nmodel: {{kind: mlp, latent: 1, output: linear}}\nloss: {{kind: mse}}\n",
        path.display()
    )
}

#[test]
fn csv_ragged_and_non_numeric() {
    let d = tmp();
    let p = d.path().join("r.csv");
    std::fs::write(&p, "a,b,c\n1,2,3\n4,5\n").unwrap();
    has(
        &bad_run(&csv_yaml(&p), &[]),
        &["r.csv", "line 3", "ragged", "2 fields", "3"],
    );
    std::fs::write(&p, "a,b,c\n1,2,3\n4,x5,6\n").unwrap();
    has(
        &bad_run(&csv_yaml(&p), &[]),
        &["r.csv", "line 3", "column `b`", "`x5` is not a number"],
    );
}

/// A minimal .npy writer (format version 1.0).
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let dims = if shape.len() == 1 {
        format!("{dims},")
    } else {
        dims
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

fn npy_yaml(x: &Path, labels: Option<&Path>) -> String {
    let l = labels
        .map(|l| format!(", labels: {}", l.display()))
        .unwrap_or_default();
    format!(
        "name: t\ndata: {{source: npy, path: {}{l}, validation: 0.25}}\nmodel: {{kind: mlp, latent: 1, output: linear}}\nloss: {{kind: mse}}\n",
        x.display()
    )
}

#[test]
fn npy_bad_dtype_rank_and_label_count() {
    let d = tmp();
    let x = d.path().join("x.npy");
    write_npy(&x, "<c8", &[4, 2], &[0u8; 64]);
    has(
        &bad_run(&npy_yaml(&x, None), &[]),
        &["x.npy", "unsupported dtype `<c8`"],
    );
    write_npy(&x, "<f4", &[2, 2, 2, 2, 2], &[0u8; 128]);
    has(&bad_run(&npy_yaml(&x, None), &[]), &["x.npy", "rank 5"]);
    write_npy(&x, "<f4", &[8, 3], &[0u8; 96]);
    let y = d.path().join("y.npy");
    write_npy(&y, "<i8", &[5], &[0u8; 40]);
    has(
        &bad_run(&npy_yaml(&x, Some(&y)), &[]),
        &["y.npy", "5 labels", "8 samples"],
    );
}

#[test]
fn cuda_asked_for_where_there_is_none() {
    if std::process::Command::new(env!("CARGO_BIN_EXE_aelab"))
        .arg("info")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("CUDA available   true"))
        .unwrap_or(false)
    {
        eprintln!("skipped: this machine has CUDA");
        return;
    }
    has(
        &bad_run(&format!("device: cuda\n{GOOD}"), &[]),
        &["e.yaml: device: cuda", "CUDA is not available", "auto"],
    );
    // auto falls back to the CPU and says so
    let dir = tmp();
    std::fs::write(dir.path().join("e.yaml"), format!("device: auto\n{GOOD}")).unwrap();
    let out = ok(&["run", "e.yaml"], dir.path());
    has(&stderr(&out), &["cpu (device: auto found no CUDA device)"]);
}

#[test]
fn init_from_missing_or_mismatched() {
    let y = GOOD.replace(
        "  output: linear",
        "  output: linear\n  init_from: nothing-here.pt",
    );
    has(
        &bad_run(&y, &[]),
        &["model.init_from", "nothing-here.pt", "does not exist"],
    );
    // a run with another architecture
    let dir = tmp();
    std::fs::write(
        dir.path().join("a.yaml"),
        GOOD.replace("hidden: [8]", "hidden: [6]"),
    )
    .unwrap();
    ok(&["run", "-q", "a.yaml", "--out", "prev"], dir.path());
    let y = GOOD.replace(
        "  output: linear",
        &format!(
            "  output: linear\n  init_from: {}",
            dir.path().join("prev/t/encoder.pt").display()
        ),
    );
    let err = bad_run(&y, &[]);
    has(
        &err,
        &[
            "do not match",
            "missing: decoder.0.bias",
            "mis-shaped: encoder.0.bias (model [8], file [6])",
        ],
    );
    // a file that is not TorchScript
    std::fs::write(dir.path().join("junk.pt"), "PK not really a zip").unwrap();
    let y = GOOD.replace(
        "  output: linear",
        &format!(
            "  output: linear\n  init_from: {}",
            dir.path().join("junk.pt").display()
        ),
    );
    has(&bad_run(&y, &[]), &["junk.pt", "not a TorchScript module"]);
}

#[test]
fn validate_reports_the_same_errors() {
    let dir = tmp();
    std::fs::write(
        dir.path().join("e.yaml"),
        GOOD.replace("epochs: 2", "epochs: 0"),
    )
    .unwrap();
    let err = stderr(&expect_code(&["validate", "e.yaml"], dir.path(), 2));
    has(&err, &["e.yaml", "train.epochs"]);
}

#[test]
fn existing_run_dir_is_never_overwritten() {
    let dir = tmp();
    std::fs::write(dir.path().join("e.yaml"), GOOD).unwrap();
    ok(&["run", "-q", "e.yaml"], dir.path());
    let first = std::fs::read(dir.path().join("runs/t/model.safetensors")).unwrap();
    let out = ok(&["run", "-q", "e.yaml", "--set", "seed=2"], dir.path());
    has(
        &stderr(&out),
        &["runs/t exists", "runs/t-2", "--resume", "--force"],
    );
    assert_eq!(
        std::fs::read(dir.path().join("runs/t/model.safetensors")).unwrap(),
        first
    );
    assert!(dir.path().join("runs/t-2/model.safetensors").exists());
    ok(
        &["run", "-q", "e.yaml", "--force", "--set", "seed=3"],
        dir.path(),
    );
    assert_ne!(
        std::fs::read(dir.path().join("runs/t/model.safetensors")).unwrap(),
        first
    );
}

#[test]
fn unwritable_output_folder() {
    let dir = tmp();
    std::fs::write(dir.path().join("e.yaml"), GOOD).unwrap();
    std::fs::write(dir.path().join("afile"), "x").unwrap();
    let err = stderr(&expect_code(
        &["run", "e.yaml", "--out", "afile/runs"],
        dir.path(),
        2,
    ));
    has(
        &err,
        &["cannot create the run directory", "afile/runs/t", "--out"],
    );
}

#[test]
fn divergence_names_epoch_and_step() {
    let dir = tmp();
    let y = GOOD.replace(
        "epochs: 2",
        "epochs: 3\n  optimizer: {kind: sgd, lr: 1.0e+6, momentum: 0.9}",
    );
    std::fs::write(dir.path().join("e.yaml"), y).unwrap();
    let err = stderr(&expect_code(&["run", "e.yaml"], dir.path(), 1));
    has(
        &err,
        &[
            "training diverged",
            "epoch 1, step",
            "learning rate",
            "train.optimizer.lr",
        ],
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn validate_deep_checks_shapes_against_the_data() {
    let dir = tmp();
    // fine as a file, wrong for this data: only --deep reads the data and sees it
    std::fs::write(
        dir.path().join("e.yaml"),
        GOOD.replace("latent: 3", "latent: 12"),
    )
    .unwrap();
    ok(&["validate", "e.yaml"], dir.path());
    let err = stderr(&expect_code(
        &["validate", "--deep", "e.yaml"],
        dir.path(),
        2,
    ));
    has(&err, &["model.latent", "not smaller than the input"]);
}

#[test]
fn npy_images_with_labels_train() {
    let d = tmp();
    // 120 8×8 uint8 images (a bright square that moves), labels by position
    let mut pix = vec![];
    let mut labels = vec![];
    for i in 0..120usize {
        let (r, c) = (i % 5, (i / 5) % 5);
        for y in 0..8 {
            for x in 0..8 {
                let on = y >= r && y < r + 3 && x >= c && x < c + 3;
                pix.push(if on { 255u8 } else { 0 });
            }
        }
        labels.extend(((r + c) as i64 % 4).to_le_bytes());
    }
    write_npy(&d.path().join("x.npy"), "|u1", &[120, 8, 8], &pix);
    write_npy(&d.path().join("y.npy"), "<i8", &[120], &labels);
    let yaml = npy_yaml(&d.path().join("x.npy"), Some(&d.path().join("y.npy")))
        .replace(
            "kind: mlp, latent: 1, output: linear",
            "kind: mlp, hidden: [16], latent: 2",
        )
        .replace("kind: mse", "kind: bce")
        + "train: {epochs: 20, batch_size: 16, optimizer: {lr: 0.01}}\n";
    std::fs::write(d.path().join("e.yaml"), yaml).unwrap();
    ok(&["run", "-q", "e.yaml"], d.path());
    let run = d.path().join("runs/t");
    let v = column(&run, "val_loss");
    assert!(v[19] < v[0], "{v:?}");
    assert_eq!(summary(&run)["sample_shape"], serde_json::json!([1, 8, 8]));
    assert!(run.join("labels.npy").exists() && run.join("plots/reconstructions.png").exists());
}

#[test]
fn help_explains_commands_and_the_fused_switch() {
    let out = ok(&["--help"], tmp().path());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "validate", "export", "encode", "AELAB_FUSED=0"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}
