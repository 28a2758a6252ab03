//! Autoencoders. A [`Model`] owns its parameters (a VarStore, named the way the
//! matching PyTorch module in scripts/aelab_torch.py names them) and a network:
//!
//!   encode:  x [B, *sample] → z [B, latent]        (the mean, for a VAE)
//!   decode:  z [B, latent]  → x̂ [B, *sample]       (after the output activation)
//!   forward: x → logits, z (and μ, log σ² for a VAE), for the loss
//!
//! Shapes in comments use B for the batch. No shape depends on B, so traced
//! TorchScript works for any batch size.
mod conv;
mod mlp;
mod script;
pub use script::load_module;

use crate::config::{Activation, Experiment, ModelKind, Output};
use crate::error::InputError;
use anyhow::Result;
use std::path::Path;
use tch::{nn, Device, Tensor};

pub struct Forward {
    /// Decoder output before the output activation: [B, *sample]
    pub logits: Tensor,
    /// The code used for decoding (sampled, for a VAE): [B, latent]
    pub z: Tensor,
    /// VAE only: mean and log-variance of q(z|x): [B, latent] each
    pub mu: Option<Tensor>,
    pub logvar: Option<Tensor>,
}

enum Net {
    Mlp(mlp::Mlp),
    Conv(conv::Conv),
    Script(script::Script),
}

pub struct Model {
    pub vs: nn::VarStore,
    net: Net,
    pub output: Output,
    pub sample_shape: Vec<i64>,
    pub latent: i64,
    pub variational: bool,
}

pub fn act(a: Activation, x: &Tensor) -> Tensor {
    match a {
        Activation::None => x.shallow_clone(),
        Activation::Relu => x.relu(),
        Activation::LeakyRelu => x.leaky_relu(),
        Activation::Elu => x.elu(),
        Activation::Gelu => x.gelu("none"),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => x.sigmoid(),
    }
}

/// The Gaussian reparameterisation: z = μ + σ·ε in training, z = μ otherwise.
fn reparameterise(mu: &Tensor, logvar: &Tensor, train: bool) -> Tensor {
    if train {
        mu + (logvar * 0.5).exp() * mu.randn_like()
    } else {
        mu.shallow_clone()
    }
}

impl Model {
    /// Build the network the experiment describes for samples of `sample_shape`.
    pub fn build(
        exp: &Experiment,
        sample_shape: &[i64],
        device: Device,
        base: Option<&Path>,
    ) -> Result<Model> {
        let m = &exp.model;
        let vs = nn::VarStore::new(device);
        let features: i64 = sample_shape.iter().product();
        if let Some(l) = m.latent {
            if m.kind != ModelKind::Torchscript && l >= features {
                return Err(InputError::new(format!(
                    "model.latent: {l} is not smaller than the input ({features} values per sample); an autoencoder must compress"
                ))
                .into());
            }
        }
        let variational = matches!(m.kind, ModelKind::Vae | ModelKind::ConvVae);
        let (net, latent) = match m.kind {
            ModelKind::Mlp | ModelKind::Vae => {
                let net = mlp::Mlp::new(&vs.root(), m, features, variational)?;
                let l = net.latent;
                (Net::Mlp(net), l)
            }
            ModelKind::Conv | ModelKind::ConvVae => {
                if sample_shape.len() != 3 {
                    return Err(InputError::new(format!(
                        "model.kind: {} needs image data (samples of shape [channels, height, width]), but this data has samples of shape {sample_shape:?}; use kind mlp for tabular data",
                        if variational { "conv_vae" } else { "conv" }
                    ))
                    .into());
                }
                let net = conv::Conv::new(&vs.root(), m, sample_shape, variational)?;
                let l = net.latent;
                (Net::Conv(net), l)
            }
            ModelKind::Torchscript => {
                let resolve = |p: &Option<String>| -> Result<std::path::PathBuf> {
                    crate::config::expand_path(p.as_deref().unwrap_or_default(), base)
                };
                let net = script::Script::new(
                    &vs.root(),
                    &resolve(&m.encoder)?,
                    &resolve(&m.decoder)?,
                    sample_shape,
                    device,
                )?;
                let l = net.latent;
                (Net::Script(net), l)
            }
        };
        if latent >= features {
            return Err(InputError::new(format!(
                "model: the code has {latent} values, not fewer than the input's {features}; add stages or set model.latent"
            ))
            .into());
        }
        Ok(Model {
            vs,
            net,
            output: m.output,
            sample_shape: sample_shape.to_vec(),
            latent,
            variational,
        })
    }

    /// x [B, *sample] → (z or μ, log σ²)
    fn encode_parts(&self, x: &Tensor) -> (Tensor, Option<Tensor>) {
        match &self.net {
            Net::Mlp(n) => n.encode(x),
            Net::Conv(n) => n.encode(x),
            Net::Script(n) => (n.encode(x), None),
        }
    }

    /// The deterministic code: z for an autoencoder, μ for a VAE. [B, latent]
    pub fn encode(&self, x: &Tensor) -> Tensor {
        self.encode_parts(x).0
    }

    /// z [B, latent] → decoder output before the output activation [B, *sample]
    pub fn decode_logits(&self, z: &Tensor) -> Tensor {
        let mut shape = vec![-1];
        shape.extend_from_slice(&self.sample_shape);
        let out = match &self.net {
            Net::Mlp(n) => n.decode(z),
            Net::Conv(n) => n.decode(z),
            Net::Script(n) => n.decode(z),
        };
        out.reshape(&shape)
    }

    /// z → reconstruction in data space.
    pub fn decode(&self, z: &Tensor) -> Tensor {
        self.finish(&self.decode_logits(z))
    }

    /// The output activation.
    pub fn finish(&self, logits: &Tensor) -> Tensor {
        match self.output {
            Output::Sigmoid => logits.sigmoid(),
            Output::Linear => logits.shallow_clone(),
        }
    }

    /// x → x̂, deterministic (a VAE decodes its mean).
    pub fn reconstruct(&self, x: &Tensor) -> Tensor {
        self.decode(&self.encode(x))
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Forward {
        let (first, logvar) = self.encode_parts(x);
        match logvar {
            Some(lv) => {
                let z = reparameterise(&first, &lv, train);
                Forward {
                    logits: self.decode_logits(&z),
                    z,
                    mu: Some(first),
                    logvar: Some(lv),
                }
            }
            None => Forward {
                logits: self.decode_logits(&first),
                z: first,
                mu: None,
                logvar: None,
            },
        }
    }

    /// Parameters sorted by name, for the optimizer, checkpoints and export.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn parameter_count(&self) -> i64 {
        self.named_parameters()
            .iter()
            .map(|(_, t)| t.numel() as i64)
            .sum()
    }
}
