//! Every experiment in experiments/ validates, and runs on a small slice with its
//! loss falling; the linear 10 → 4 → 10 case learns its subspace.
mod common;
use common::*;

fn experiments() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("experiments"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn validate_accepts_every_experiment() {
    let dir = tmp();
    let names = experiments();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let out = ok(
            &["validate", experiment(&name).to_str().unwrap()],
            dir.path(),
        );
        let resolved = String::from_utf8_lossy(&out.stdout);
        // the resolved file has every default filled in
        assert!(
            resolved.contains("batch_size:") && resolved.contains("optimizer:"),
            "{name}: {resolved}"
        );
    }
}

#[test]
fn linear_10_4_10_reaches_tiny_mse() {
    let dir = tmp();
    ok(
        &[
            "run",
            "--quiet",
            experiment("linear-10-4-10.yaml").to_str().unwrap(),
        ],
        dir.path(),
    );
    let run = dir.path().join("runs/linear-10-4-10");
    let s = summary(&run);
    let mse = s["final_val_mse"].as_f64().unwrap();
    assert!(mse < 1e-4, "validation mse {mse}");
    // and PCA on noiseless rank-4 data is exact too
    assert!(s["pca_val_mse"].as_f64().unwrap() < 1e-8);
    let val = column(&run, "val_loss");
    assert_eq!(val.len(), 60);
}

fn quick_run(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    quick_run_with(name, &[])
}

fn quick_run_with(name: &str, extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tmp();
    let file = experiment(name);
    let mut args = vec!["run", "--quiet", file.to_str().unwrap()];
    args.extend(QUICK);
    args.extend(extra);
    ok(&args, dir.path());
    let stem = serde_yaml::from_str::<serde_yaml::Value>(&std::fs::read_to_string(&file).unwrap())
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let run = dir.path().join("runs").join(stem);
    (dir, run)
}

fn loss_falls(name: &str) {
    if !have_fashion() {
        eprintln!("skipped: Fashion-MNIST not found; run scripts/setup");
        return;
    }
    let (_d, run) = quick_run(name);
    let train = column(&run, "train_loss");
    let val = column(&run, "val_loss");
    assert_eq!(train.len(), 3);
    assert!(train[2] < train[0], "{name}: train loss {train:?}");
    assert!(val[2] < val[0], "{name}: val loss {val:?}");
    for f in [
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "model.safetensors",
        "latents.npy",
        "labels.npy",
    ] {
        assert!(run.join(f).exists(), "{name}: no {f}");
    }
}

#[test]
fn fashion_mlp_loss_falls() {
    loss_falls("fashion-mlp.yaml");
}
#[test]
fn fashion_deep_mlp_loss_falls() {
    loss_falls("fashion-deep-mlp.yaml");
}
#[test]
fn fashion_2d_loss_falls() {
    loss_falls("fashion-2d.yaml");
}
#[test]
fn fashion_conv_loss_falls() {
    loss_falls("fashion-conv.yaml");
}
#[test]
fn fashion_vae_loss_falls() {
    loss_falls("fashion-vae.yaml");
}

#[test]
fn denoising_beats_its_noisy_input() {
    if !have_fashion() {
        return;
    }
    // enough steps for the output to get cleaner than its input: 94 steps of 32
    let (_d, run) = quick_run_with(
        "fashion-denoise-conv.yaml",
        &["--set", "data.limit=1000", "--set", "train.batch_size=32"],
    );
    let s = summary(&run);
    let noisy = s["noisy_input_mse"].as_f64().unwrap();
    let out = s["final_val_mse"].as_f64().unwrap();
    assert!(out < noisy, "denoised {out} vs noisy input {noisy}");
    assert!(column(&run, "noisy_mse").len() == 3);
}

#[test]
fn vae_reports_kl_on_its_own() {
    if !have_fashion() {
        return;
    }
    let (_d, run) = quick_run("fashion-vae.yaml");
    let kl = column(&run, "val_kl");
    assert!(kl.iter().all(|k| *k > 0.0), "{kl:?}");
    assert!(summary(&run)["final_val_kl"].as_f64().unwrap() > 0.0);
}

#[test]
fn transposed_conv_and_sparsity_train() {
    if !have_fashion() {
        return;
    }
    let dir = tmp();
    let file = experiment("fashion-conv.yaml");
    let mut args = vec!["run", "--quiet", file.to_str().unwrap()];
    args.extend(QUICK);
    args.extend([
        "--set",
        "model.upsample=transposed",
        "--set",
        "model.latent=16",
        "--set",
        "loss.sparsity=0.01",
    ]);
    ok(&args, dir.path());
    let run = dir.path().join("runs/fashion-conv");
    let train = column(&run, "train_loss");
    assert!(train[2] < train[0], "{train:?}");
    assert_eq!(summary(&run)["latent"].as_i64(), Some(16));
    assert!(column(&run, "val_sparsity")[0] > 0.0);
}

#[test]
fn csv_source_with_labels() {
    let dir = tmp();
    // a small table: 3 informative columns, then a label
    let mut csv = String::from("a,b,c,d,e,f,label\n");
    for i in 0..300 {
        let t = i as f64 / 300.0;
        csv += &format!(
            "{},{},{},{},{},{},{}\n",
            t,
            1.0 - t,
            t * t,
            2.0 * t,
            (3.0 * t).sin(),
            0.5,
            i % 3
        );
    }
    std::fs::write(dir.path().join("t.csv"), csv).unwrap();
    let yaml = "name: tab\ndata: {source: csv, path: t.csv, label_column: label, scale: standardize, validation: 0.2}\n\
                model: {kind: mlp, hidden: [8], latent: 2, output: linear}\nloss: {kind: mse}\ntrain: {epochs: 30, batch_size: 32, optimizer: {lr: 0.01}}\n";
    std::fs::write(dir.path().join("tab.yaml"), yaml).unwrap();
    ok(&["run", "--quiet", "tab.yaml"], dir.path());
    let run = dir.path().join("runs/tab");
    let v = column(&run, "val_loss");
    assert!(v[29] < v[0] * 0.5, "{v:?}");
    assert!(run.join("labels.npy").exists());
    assert!(
        run.join("plots/reconstructions.png").exists(),
        "tabular data gets the per-feature error chart"
    );
}

#[test]
fn set_override_and_seed_repeat_bit_for_bit() {
    let dir = tmp();
    let f = experiment("linear-10-4-10.yaml");
    let f = f.to_str().unwrap();
    for name in ["name=a", "name=b"] {
        ok(
            &[
                "run",
                "--quiet",
                f,
                "--set",
                "train.epochs=3",
                "--set",
                name,
            ],
            dir.path(),
        );
    }
    let a = column(&dir.path().join("runs/a"), "val_loss");
    let b = column(&dir.path().join("runs/b"), "val_loss");
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
    let wa = std::fs::read(dir.path().join("runs/a/model.safetensors")).unwrap();
    let wb = std::fs::read(dir.path().join("runs/b/model.safetensors")).unwrap();
    assert_eq!(wa, wb, "same seed, same weights");
}

#[test]
fn image_runs_repeat_bit_for_bit() {
    // the weights' initialisation is seeded too, not only the data and the shuffles
    if !have_fashion() {
        return;
    }
    let dir = tmp();
    let f = experiment("fashion-conv.yaml");
    for name in ["a", "b"] {
        let mut args = vec!["run", "-q", f.to_str().unwrap(), "--set"];
        let n = format!("name={name}");
        args.push(&n);
        args.extend([
            "--set",
            "data.limit=300",
            "--set",
            "train.epochs=1",
            "--set",
            "plots.enabled=false",
        ]);
        ok(&args, dir.path());
    }
    let a = std::fs::read(dir.path().join("runs/a/model.safetensors")).unwrap();
    let b = std::fs::read(dir.path().join("runs/b/model.safetensors")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn fused_kernels_train_like_the_aten_operators() {
    // fused Adam, fused BCE (mean per element, and sums per sample for the VAE) and
    // channels-last convolutions against ATen's plain operators (AELAB_FUSED=0):
    // the same run, the same validation losses up to float rounding (seen: 1e-7)
    if !have_fashion() {
        return;
    }
    for name in ["fashion-mlp", "fashion-vae", "fashion-conv"] {
        let dir = tmp();
        let f = experiment(&format!("{name}.yaml"));
        let mut val = vec![];
        for fused in ["1", "0"] {
            let out = aelab()
                .env("AELAB_FUSED", fused)
                .args([
                    "run",
                    "-q",
                    f.to_str().unwrap(),
                    "--set",
                    &format!("name=f{fused}"),
                ])
                .args(["--set", "data.limit=600", "--set", "train.epochs=3"])
                .args([
                    "--set",
                    "plots.enabled=false",
                    "--set",
                    "export.torchscript=false",
                ])
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "{name}: {}", stderr(&out));
            val.push(column(
                &dir.path().join(format!("runs/f{fused}")),
                "val_loss",
            ));
        }
        assert_eq!(val[0].len(), 3);
        assert!(
            val[0][2] < val[0][0],
            "{name}: loss did not fall: {:?}",
            val[0]
        );
        for (a, b) in val[0].iter().zip(&val[1]) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs(),
                "{name}: fused {:?} vs unfused {:?}",
                val[0],
                val[1]
            );
        }
    }
}
