//! TorchScript both ways, checked against PyTorch itself (the setup's torch 2.13.0):
//! PyTorch loads aelab's exports and gets aelab's numbers; aelab starts from modules
//! PyTorch scripted and gets PyTorch's numbers; the torchscript kind trains.
mod common;
use common::*;
use std::path::Path;

const TAB: &str = "name: t\nseed: 3\ndata: {source: synthetic, samples: 400, features: 12, intrinsic: 3, manifold: nonlinear, validation: 0.25}\n";

fn quick(dir: &Path, yaml: &str, name: &str) -> std::path::PathBuf {
    std::fs::write(dir.join(format!("{name}.yaml")), yaml).unwrap();
    let f = format!("{name}.yaml");
    ok(&["run", "-q", &f], dir);
    dir.join("runs")
        .join(yaml.lines().next().unwrap().trim_start_matches("name: "))
}

/// aelab's own outputs for the run's kept inputs, then PyTorch's, compared.
fn parity(run: &Path) {
    let cwd = run.parent().unwrap();
    let r = run.to_str().unwrap();
    let inputs = run.join("plots/inputs.npy");
    let i = inputs.to_str().unwrap();
    ok(&["reconstruct", "-m", r, "-i", i, "-o", "rec.npy"], cwd);
    ok(&["encode", "-m", r, "-i", i, "-o", "z.npy"], cwd);
    let code = format!(
        r#"
import numpy as np, torch, aelab_torch
x = torch.from_numpy(np.load("{i}"))
rec = torch.from_numpy(np.load("rec.npy")); z = torch.from_numpy(np.load("z.npy"))
ae = torch.jit.load("{r}/autoencoder.pt"); enc = torch.jit.load("{r}/encoder.pt"); dec = torch.jit.load("{r}/decoder.pt")
twin = aelab_torch.load_run("{r}")
with torch.no_grad():
    errs = [
        (ae(x) - rec).abs().max().item(),
        (ae.encode(x) - z).abs().max().item(),
        (enc(x) - z).abs().max().item(),
        (dec(z) - rec).abs().max().item(),
        (ae.decode(z) - rec).abs().max().item(),
        (twin(x) - rec).abs().max().item(),
        (twin.encode(x) - z).abs().max().item(),
        # another batch size than the one traced
        (ae(torch.cat([x, x, x])) - torch.cat([rec, rec, rec])).abs().max().item(),
    ]
names = sorted(n for n, _ in ae.named_parameters())
assert names == sorted(twin.state_dict().keys()), (names, sorted(twin.state_dict().keys()))
print(max(errs))
"#
    );
    let Some(out) = py(&code, cwd) else { return };
    let err: f64 = out.trim().parse().unwrap();
    assert!(err < 1e-5, "{run:?}: PyTorch differs from aelab by {err}");
}

#[test]
fn mlp_export_matches_pytorch() {
    let d = tmp();
    let y = format!("{TAB}model: {{kind: mlp, hidden: [16, 8], latent: 3, activation: tanh, output: linear}}\nloss: {{kind: mse}}\ntrain: {{epochs: 3}}\n");
    parity(&quick(d.path(), &y, "m"));
}

#[test]
fn vae_export_matches_pytorch() {
    let d = tmp();
    let y = format!("{}model: {{kind: vae, hidden: [16], latent: 2, output: linear}}\nloss: {{kind: mse}}\ntrain: {{epochs: 3}}\n", TAB.replace("name: t", "name: v"));
    parity(&quick(d.path(), &y, "v"));
}

#[test]
fn conv_exports_match_pytorch() {
    if !have_fashion() {
        return;
    }
    let d = tmp();
    for (name, extra) in [
        ("c", ""),
        ("ct", ", upsample: transposed, latent: 10"),
        ("cv", ", latent: 4"),
    ] {
        let kind = if name == "cv" { "conv_vae" } else { "conv" };
        let y = format!(
            "name: {name}\ndata: {{source: idx, limit: 200}}\nmodel: {{kind: {kind}, channels: [4, 3]{extra}}}\ntrain: {{epochs: 1}}\nplots: {{enabled: false}}\n"
        );
        parity(&quick(d.path(), &y, name));
    }
}

#[test]
fn pytorch_scripted_module_initialises_aelab() {
    let d = tmp();
    let code = r#"
import torch, aelab_torch
torch.manual_seed(5)
m = aelab_torch.MLP([12], [7], 3, activation="tanh", output="linear")
torch.jit.script(m).save("from_torch.pt")
x = torch.randn(20, 12)
import numpy as np
np.save("x.npy", x.numpy())
with torch.no_grad():
    np.save("torch_rec.npy", m(x).numpy())
print("ok")
"#;
    if py(code, d.path()).is_none() {
        return;
    }
    let y = format!(
        "{TAB}model: {{kind: mlp, hidden: [7], latent: 3, activation: tanh, output: linear, init_from: from_torch.pt}}\nloss: {{kind: mse}}\ntrain: {{epochs: 0}}\n"
    );
    let run = quick(d.path(), &y, "i");
    ok(
        &[
            "reconstruct",
            "-m",
            run.to_str().unwrap(),
            "-i",
            "x.npy",
            "-o",
            "aelab_rec.npy",
        ],
        d.path(),
    );
    let out = py(
        "import numpy as np; print(np.abs(np.load('aelab_rec.npy') - np.load('torch_rec.npy')).max())",
        d.path(),
    )
    .unwrap();
    let err: f64 = out.trim().parse().unwrap();
    assert!(err < 1e-5, "aelab and PyTorch differ by {err}");
    // and an aelab export initialises another run the same way
    let y2 = y.replace("name: t", "name: t2").replace(
        "from_torch.pt",
        &run.join("autoencoder.pt").display().to_string(),
    );
    let run2 = quick(d.path(), &y2, "i2");
    let a = std::fs::read(run.join("model.safetensors")).unwrap();
    let b = std::fs::read(run2.join("model.safetensors")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn torchscript_kind_trains() {
    let d = tmp();
    let code = r#"
import torch, torch.nn as nn
class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(12, 10); self.b = nn.Linear(10, 3)
    def forward(self, x):
        return self.b(torch.nn.functional.silu(self.a(x)))
class Dec(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 10); self.b = nn.Linear(10, 12)
    def forward(self, z):
        return self.b(torch.nn.functional.silu(self.a(z)))
torch.manual_seed(0)
torch.jit.script(Enc()).save("enc.pt"); torch.jit.script(Dec()).save("dec.pt")
print("ok")
"#;
    if py(code, d.path()).is_none() {
        return;
    }
    let y = format!("{TAB}model: {{kind: torchscript, encoder: enc.pt, decoder: dec.pt, output: linear}}\nloss: {{kind: mse}}\ntrain: {{epochs: 8, optimizer: {{lr: 0.01}}}}\n");
    let run = quick(d.path(), &y, "s");
    let v = column(&run, "val_loss");
    assert!(v[7] < 0.7 * v[0], "{v:?}");
    assert_eq!(summary(&run)["latent"].as_i64(), Some(3));
    // its trained export also loads in PyTorch
    let out = py(&format!("import torch; m = torch.jit.load('{}/autoencoder.pt'); print(m(torch.zeros(4, 12)).shape[1])", run.display()), d.path()).unwrap();
    assert_eq!(out.trim(), "12");
}

#[test]
fn encode_decode_round_trip_through_files() {
    let d = tmp();
    let y = format!("{TAB}model: {{kind: mlp, hidden: [8], latent: 3, output: linear}}\nloss: {{kind: mse}}\ntrain: {{epochs: 2}}\n");
    let run = quick(d.path(), &y, "r");
    let r = run.to_str().unwrap();
    // a csv of new data, through files both ways, and through the .pt module too
    let mut csv = String::new();
    for i in 0..5 {
        csv += &(0..12)
            .map(|j| format!("{}", ((i * 12 + j) as f64 * 0.37).sin()))
            .collect::<Vec<_>>()
            .join(",");
        csv.push('\n');
    }
    std::fs::write(d.path().join("new.csv"), csv).unwrap();
    ok(
        &["encode", "-m", r, "-i", "new.csv", "-o", "z.csv"],
        d.path(),
    );
    ok(
        &["decode", "-m", r, "-i", "z.csv", "-o", "back.npy"],
        d.path(),
    );
    ok(
        &["reconstruct", "-m", r, "-i", "new.csv", "-o", "direct.npy"],
        d.path(),
    );
    let pt = run.join("autoencoder.pt");
    ok(
        &[
            "encode",
            "-m",
            pt.to_str().unwrap(),
            "-i",
            "new.csv",
            "-o",
            "z_pt.npy",
        ],
        d.path(),
    );
    let read = |f: &str| -> Vec<f32> {
        let b = std::fs::read(d.path().join(f)).unwrap();
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        b[10 + hl..]
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (a, b) = (read("back.npy"), read("direct.npy"));
    assert_eq!(a.len(), 60);
    // the codes went through text with Rust's shortest round-trip float formatting
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-6, "{worst}");
    let z_text = std::fs::read_to_string(d.path().join("z.csv")).unwrap();
    let z_csv: Vec<f32> = z_text
        .split([',', '\n'])
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(z_csv, read("z_pt.npy"));
}

#[test]
fn modules_without_the_method_or_not_torchscript() {
    let d = tmp();
    let y = format!("{TAB}model: {{kind: mlp, latent: 3, output: linear}}\nloss: {{kind: mse}}\ntrain: {{epochs: 1}}\n");
    let run = quick(d.path(), &y, "e");
    std::fs::write(d.path().join("x.csv"), "1,2,3,4,5,6,7,8,9,10,11,12\n").unwrap();
    // decoder.pt has forward and decode, but no encode
    let dec = run.join("decoder.pt");
    let err = stderr(&expect_code(
        &[
            "encode",
            "-m",
            dec.to_str().unwrap(),
            "-i",
            "x.csv",
            "-o",
            "z.npy",
        ],
        d.path(),
        2,
    ));
    assert!(
        err.contains("has no `encode` method") && err.contains("decode"),
        "{err}"
    );
    std::fs::write(d.path().join("junk.pt"), "hello").unwrap();
    let err = stderr(&expect_code(
        &["encode", "-m", "junk.pt", "-i", "x.csv", "-o", "z.npy"],
        d.path(),
        2,
    ));
    assert!(
        err.contains("junk.pt") && err.contains("not a TorchScript module"),
        "{err}"
    );
    assert!(!d.path().join("z.npy").exists());
}

#[test]
fn export_rewrites_the_modules_from_the_run_files() {
    let d = tmp();
    let y = format!("{TAB}model: {{kind: mlp, hidden: [8], latent: 3, output: linear}}\nloss: {{kind: mse}}\ntrain: {{epochs: 1}}\nexport: {{torchscript: false}}\n");
    let run = quick(d.path(), &y, "x");
    assert!(
        !run.join("autoencoder.pt").exists(),
        "export: torchscript: false writes none"
    );
    let out = ok(&["export", run.to_str().unwrap()], d.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("autoencoder.pt"));
    let inputs = run.join("plots/inputs.npy");
    ok(
        &[
            "reconstruct",
            "-m",
            run.join("autoencoder.pt").to_str().unwrap(),
            "-i",
            inputs.to_str().unwrap(),
            "-o",
            "a.npy",
        ],
        d.path(),
    );
    ok(
        &[
            "reconstruct",
            "-m",
            run.to_str().unwrap(),
            "-i",
            inputs.to_str().unwrap(),
            "-o",
            "b.npy",
        ],
        d.path(),
    );
    let a = std::fs::read(d.path().join("a.npy")).unwrap();
    let b = std::fs::read(d.path().join("b.npy")).unwrap();
    assert_eq!(
        a, b,
        "the exported module and the run's weights reconstruct alike"
    );
}
