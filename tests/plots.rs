//! Every picture is written as PNG and SVG, decodes at the expected size and is not
//! blank; `aelab plot` on a copied run directory redraws the same pictures.
mod common;
use common::*;
use std::path::Path;

/// (width, height, distinct grey levels) of a PNG.
fn png_info(path: &Path) -> (u32, u32, usize) {
    let dec = png::Decoder::new(
        std::fs::File::open(path).unwrap_or_else(|_| panic!("no {}", path.display())),
    );
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let mut seen = std::collections::HashSet::new();
    for px in bytes.chunks(3) {
        seen.insert(px.to_vec());
    }
    (info.width, info.height, seen.len())
}

fn check(run: &Path, name: &str, size: Option<(u32, u32)>) {
    let png = run.join("plots").join(format!("{name}.png"));
    let (w, h, colours) = png_info(&png);
    if let Some(s) = size {
        assert_eq!((w, h), s, "{name}");
    }
    assert!(w >= 300 && h >= 100, "{name}: {w}x{h}");
    assert!(colours > 20, "{name} looks blank: {colours} colours");
    let svg = std::fs::read_to_string(run.join("plots").join(format!("{name}.svg"))).unwrap();
    assert!(svg.starts_with("<svg") && svg.len() > 2000, "{name}.svg");
}

fn quick(name: &str, extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tmp();
    let f = experiment(&format!("{name}.yaml"));
    let mut args = vec!["run", "-q", f.to_str().unwrap()];
    args.extend(QUICK);
    args.extend(extra);
    ok(&args, d.path());
    let run = d.path().join("runs").join(name);
    (d, run)
}

#[test]
fn mlp_pictures() {
    if !have_fashion() {
        return;
    }
    let (_d, run) = quick("fashion-mlp", &[]);
    check(&run, "loss", Some((900, 600)));
    check(&run, "latent", Some((1000, 760)));
    check(&run, "reconstructions", None);
    // labels are Fashion-MNIST's class names: the legend is drawn from them
    let svg = std::fs::read_to_string(run.join("plots/latent.svg")).unwrap();
    assert!(
        svg.contains("Ankle boot") && svg.contains("T-shirt/top"),
        "legend lacks class names"
    );
    assert!(svg.contains("PC 1 (") && svg.contains("% of variance"));
}

#[test]
fn conv_pictures_with_tsne() {
    if !have_fashion() {
        return;
    }
    let (_d, run) = quick("fashion-conv", &["--set", "plots.latent.method=tsne"]);
    check(&run, "latent", Some((1000, 760)));
    check(&run, "reconstructions", None);
    assert!(std::fs::read_to_string(run.join("plots/latent.svg"))
        .unwrap()
        .contains("t-SNE"));
}

#[test]
fn denoising_pictures_show_three_rows() {
    if !have_fashion() {
        return;
    }
    let (_d, run) = quick(
        "fashion-denoise-conv",
        &["--set", "plots.reconstructions=6"],
    );
    check(&run, "reconstructions", None);
    let svg = std::fs::read_to_string(run.join("plots/reconstructions.svg")).unwrap();
    assert!(svg.contains("noisy input") && svg.contains("clean target"));
}

#[test]
fn vae_pictures_and_redraw_elsewhere() {
    if !have_fashion() {
        return;
    }
    let (d, run) = quick("fashion-vae", &["--set", "model.latent=2"]);
    for p in [
        "loss",
        "latent",
        "reconstructions",
        "samples",
        "interpolation",
        "manifold",
    ] {
        check(&run, p, None);
    }
    // the loss picture has the VAE's own terms
    let svg = std::fs::read_to_string(run.join("plots/loss.svg")).unwrap();
    assert!(svg.contains("validation kl") && svg.contains("validation recon"));
    // copy the run elsewhere, remove its pictures, redraw them from the files
    let copy = d.path().join("elsewhere/vae-copy");
    std::fs::create_dir_all(copy.join("plots")).unwrap();
    for e in walk(&run) {
        let rel = e.strip_prefix(&run).unwrap();
        let is_picture = rel.extension().is_some_and(|x| x == "png" || x == "svg");
        if !is_picture {
            std::fs::create_dir_all(copy.join(rel).parent().unwrap()).unwrap();
            std::fs::copy(&e, copy.join(rel)).unwrap();
        }
    }
    std::fs::remove_dir_all(&run).unwrap();
    let out = ok(&["plot", copy.to_str().unwrap()], d.path());
    assert!(stderr(&out).is_empty(), "warnings: {}", stderr(&out));
    for p in [
        "loss",
        "latent",
        "reconstructions",
        "samples",
        "interpolation",
        "manifold",
    ] {
        check(&copy, p, None);
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn compare_runs_on_one_chart() {
    let d = tmp();
    let f = experiment("linear-10-4-10.yaml");
    for (name, lr) in [("slow", "0.001"), ("fast", "0.01")] {
        ok(
            &[
                "run",
                "-q",
                f.to_str().unwrap(),
                "--set",
                &format!("name={name}"),
                "--set",
                &format!("train.optimizer.lr={lr}"),
                "--set",
                "train.epochs=10",
            ],
            d.path(),
        );
    }
    ok(
        &[
            "plot",
            "--compare",
            "runs/slow",
            "runs/fast",
            "--out",
            "cmp",
        ],
        d.path(),
    );
    let (w, h, colours) = png_info(&d.path().join("cmp/compare.png"));
    assert_eq!((w, h), (900, 600));
    assert!(colours > 20);
    let svg = std::fs::read_to_string(d.path().join("cmp/compare.svg")).unwrap();
    assert!(svg.contains("slow") && svg.contains("fast"));
}

#[test]
fn a_failing_plot_is_a_warning_not_a_failed_run() {
    let d = tmp();
    let f = experiment("linear-10-4-10.yaml");
    ok(
        &["run", "-q", f.to_str().unwrap(), "--set", "train.epochs=2"],
        d.path(),
    );
    let run = d.path().join("runs/linear-10-4-10");
    std::fs::write(run.join("latents.npy"), "garbage").unwrap();
    let out = ok(&["plot", run.to_str().unwrap()], d.path());
    assert!(
        stderr(&out).contains("plot `latent` was not drawn"),
        "{}",
        stderr(&out)
    );
    assert!(run.join("plots/loss.png").exists());
}
