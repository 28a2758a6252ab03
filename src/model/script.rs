//! `model.kind: torchscript`: encoder and decoder are TorchScript modules given by
//! path (architectures aelab does not define). Their parameters join aelab's
//! VarStore under encoder.* and decoder.*, so aelab's optimizer trains them.
use crate::error::InputError;
use anyhow::Result;
use std::path::Path;
use tch::{nn, CModule, Device, Kind, Tensor};

pub struct Script {
    enc: CModule,
    dec: CModule,
    pub latent: i64,
}

/// Load a TorchScript module, with an error that says what the file is not.
pub fn load_module(path: &Path, device: Device) -> Result<CModule> {
    if !path.exists() {
        return Err(InputError::new(format!("{}: no such file", path.display())).into());
    }
    CModule::load_on_device(path, device).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        InputError::new(format!(
            "{}: not a TorchScript module ({first})",
            path.display()
        ))
        .into()
    })
}

fn adopt(p: &nn::Path, m: &CModule) -> Result<()> {
    for (name, t) in m.named_parameters()? {
        let parts: Vec<&str> = name.split('.').collect();
        let mut q = p.clone();
        for s in &parts[..parts.len() - 1] {
            q = q.sub(*s);
        }
        let _ = q.add(parts[parts.len() - 1], t, true);
    }
    Ok(())
}

impl Script {
    pub fn new(
        p: &nn::Path,
        enc_path: &Path,
        dec_path: &Path,
        sample: &[i64],
        device: Device,
    ) -> Result<Script> {
        let mut enc = load_module(enc_path, device)?;
        let mut dec = load_module(dec_path, device)?;
        enc.set_train();
        dec.set_train();
        adopt(&(p / "encoder"), &enc)?;
        adopt(&(p / "decoder"), &dec)?;
        let mut shape = vec![2];
        shape.extend_from_slice(sample);
        let probe = Tensor::zeros(&shape, (Kind::Float, device));
        let z = tch::no_grad(|| enc.forward_ts(&[&probe])).map_err(|e| {
            InputError::new(format!(
                "model.encoder: {} failed on a batch of shape {shape:?}: {}",
                enc_path.display(),
                e.to_string().lines().next().unwrap_or_default()
            ))
        })?;
        if z.dim() != 2 {
            input_err!(
                "model.encoder: {} returns codes of shape {:?}; expected [batch, latent]",
                enc_path.display(),
                z.size()
            );
        }
        let out = tch::no_grad(|| dec.forward_ts(&[&z])).map_err(|e| {
            InputError::new(format!(
                "model.decoder: {} failed on codes of shape {:?}: {}",
                dec_path.display(),
                z.size(),
                e.to_string().lines().next().unwrap_or_default()
            ))
        })?;
        if out.numel() != probe.numel() {
            input_err!(
                "model.decoder: {} returns shape {:?} for an input of shape {shape:?}; it must rebuild the input",
                dec_path.display(),
                out.size()
            );
        }
        Ok(Script {
            enc,
            dec,
            latent: z.size()[1],
        })
    }

    pub fn encode(&self, x: &Tensor) -> Tensor {
        self.enc
            .forward_ts(&[x])
            .unwrap_or_else(|e| panic!("encoder failed: {e}"))
    }

    pub fn decode(&self, z: &Tensor) -> Tensor {
        self.dec
            .forward_ts(&[z])
            .unwrap_or_else(|e| panic!("decoder failed: {e}"))
    }
}
