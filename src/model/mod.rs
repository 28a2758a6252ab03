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

/// PyTorch's default initialisation, so that aelab and a PyTorch twin start alike:
/// weights U(±1/√fan_in) (kaiming_uniform with a = √5), biases U(±1/√fan_in).
/// fan_in is the weight's size(1) times its kernel area, as PyTorch computes it.
fn torch_weights() -> nn::Init {
    nn::Init::Kaiming {
        dist: nn::init::NormalOrUniform::Uniform,
        fan: nn::init::FanInOut::FanIn,
        non_linearity: nn::init::NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
    }
}

fn torch_bias(fan_in: i64) -> nn::Init {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    nn::Init::Uniform { lo: -b, up: b }
}

pub fn linear(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    nn::linear(
        p,
        i,
        o,
        nn::LinearConfig {
            ws_init: torch_weights(),
            bs_init: Some(torch_bias(i)),
            bias: true,
        },
    )
}

/// y = x Wᵀ + b as one fused kernel (at::linear → addmm), as PyTorch's nn.Linear
/// computes it; tch's Linear::forward adds the bias in a second pass.
pub fn dense(l: &nn::Linear, x: &Tensor) -> Tensor {
    x.linear(&l.ws, l.bs.as_ref())
}

pub fn conv2d(p: nn::Path, i: i64, o: i64, k: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding,
        ws_init: torch_weights(),
        bs_init: torch_bias(i * k * k),
        ..Default::default()
    };
    nn::conv2d(p, i, o, k, cfg)
}

/// A stride-2 transposed convolution (kernel 3, padding 1); its weight is
/// [in, out, k, k], so PyTorch's fan_in is out·k·k.
pub fn conv_transpose2d(p: nn::Path, i: i64, o: i64, output_padding: i64) -> nn::ConvTranspose2D {
    let cfg = nn::ConvTransposeConfig {
        stride: 2,
        padding: 1,
        output_padding,
        ws_init: torch_weights(),
        bs_init: torch_bias(o * 9),
        ..Default::default()
    };
    nn::conv_transpose2d(p, i, o, 3, cfg)
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
                if device == Device::Cpu && crate::kernels::enabled() {
                    // NHWC weights: oneDNN's convolutions, pooling and upsampling
                    // then run channels-last end to end (before the optimizer
                    // state is made, which copies each parameter's layout).
                    for t in vs.trainable_variables() {
                        crate::kernels::channels_last(&t)?;
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn initialisation_matches_pytorch_bounds() {
        // PyTorch: weights and biases ~ U(±1/√fan_in); with 784 inputs that is ±0.0357
        let exp = crate::config::parse(
            "name: t\ndata: {source: synthetic}\nmodel: {kind: conv, channels: [4], latent: 3}\n",
            &[],
        )
        .unwrap();
        tch::manual_seed(0);
        let m = Model::build(&exp, &[1, 8, 8], Device::Cpu, None).unwrap();
        for (name, t) in m.named_parameters() {
            let fan_in = match name.as_str() {
                "encoder.0.weight" | "encoder.0.bias" => 9.0, // 1 channel × 3×3
                "encoder_fc.weight" | "encoder_fc.bias" => 64.0, // 4 × 4×4
                "decoder_fc.weight" | "decoder_fc.bias" => 3.0,
                "decoder.0.weight" | "decoder.0.bias" => 36.0, // 4 × 3×3
                "decoder.3.weight" | "decoder.3.bias" => 36.0,
                other => panic!("unexpected parameter {other}"),
            };
            let bound = 1.0 / f64::sqrt(fan_in);
            let max = f64::try_from(t.abs().max()).unwrap();
            assert!(max <= bound + 1e-7, "{name}: max {max} > {bound}");
            if t.numel() >= 36 {
                assert!(max > 0.8 * bound, "{name}: max {max} far below {bound}");
            }
        }
    }

    fn param(m: &Model, name: &str) -> Tensor {
        let params = m.named_parameters();
        let (_, t) = params.into_iter().find(|(n, _)| n == name).unwrap();
        t
    }

    #[test]
    fn channels_last_weights_compute_the_same() {
        let exp = crate::config::parse(
            "name: t\ndata: {source: synthetic}\nmodel: {kind: conv, channels: [6, 5], latent: 7}\n",
            &[],
        )
        .unwrap();
        let m = Model::build(&exp, &[3, 12, 10], Device::Cpu, None).unwrap();
        let w = param(&m, "decoder.0.weight");
        assert_eq!(w.size(), [5, 5, 3, 3]);
        assert_eq!(w.stride(), [45, 1, 15, 5], "not stored channels-last");
        let x = (Tensor::arange(2 * 3 * 12 * 10, (Kind::Float, Device::Cpu)) * 0.01)
            .sin()
            .reshape([2, 3, 12, 10]);
        let a = tch::no_grad(|| m.forward(&x, false).logits);
        // the same weights in the default (NCHW) order
        tch::no_grad(|| {
            for (_, mut t) in m.named_parameters() {
                let plain = t.contiguous();
                t.set_data(&plain);
            }
        });
        assert_eq!(w.stride(), [45, 9, 3, 1]);
        let b = tch::no_grad(|| m.forward(&x, false).logits);
        assert_eq!(a.size(), [2, 3, 12, 10]);
        let d = f64::try_from((&a - &b).abs().max()).unwrap();
        assert!(d < 1e-5, "outputs differ by {d}");

        // one input channel: NHWC strides all the same, so ATen sees channels-last
        let m = Model::build(&exp, &[1, 12, 10], Device::Cpu, None).unwrap();
        let w = param(&m, "encoder.0.weight");
        assert_eq!(w.size(), [6, 1, 3, 3]);
        assert_eq!(
            w.stride(),
            [9, 1, 3, 1],
            "a one-channel weight kept NCHW strides"
        );
    }
}
