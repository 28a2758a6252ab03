//! Fully connected autoencoder (and VAE). PyTorch names, as nn.Sequential gives them:
//!   encoder.{0,2,4,..}  Linear layers towards the code, an activation between
//!   encoder_mu, encoder_logvar   (VAE) the Gaussian heads
//!   decoder.{0,2,4,..}  Linear layers back to the input size
use crate::config::{Activation, ModelConfig};
use anyhow::Result;
use tch::{nn, Tensor};

pub struct Mlp {
    enc: Vec<nn::Linear>,
    heads: Option<(nn::Linear, nn::Linear)>,
    dec: Vec<nn::Linear>,
    act: Activation,
    latent_act: Activation,
    pub latent: i64,
}

impl Mlp {
    pub fn new(p: &nn::Path, m: &ModelConfig, features: i64, variational: bool) -> Result<Mlp> {
        let latent = m.latent.unwrap_or(1);
        let mut sizes = vec![features];
        sizes.extend(&m.hidden);
        let e = p / "encoder";
        let mut enc = Vec::new();
        for (i, w) in sizes.windows(2).enumerate() {
            enc.push(super::linear(&e / (2 * i), w[0], w[1]));
        }
        let last = *sizes.last().unwrap_or(&features);
        let heads = if variational {
            Some((
                super::linear(p / "encoder_mu", last, latent),
                super::linear(p / "encoder_logvar", last, latent),
            ))
        } else {
            enc.push(super::linear(&e / (2 * enc.len()), last, latent));
            None
        };
        let mut back = vec![latent];
        back.extend(m.hidden.iter().rev());
        back.push(features);
        let d = p / "decoder";
        let dec = back
            .windows(2)
            .enumerate()
            .map(|(i, w)| super::linear(&d / (2 * i), w[0], w[1]))
            .collect();
        Ok(Mlp {
            enc,
            heads,
            dec,
            act: m.activation,
            latent_act: m.latent_activation,
            latent,
        })
    }

    /// x [B, *sample] → z [B, latent] (μ and log σ² for a VAE)
    pub fn encode(&self, x: &Tensor) -> (Tensor, Option<Tensor>) {
        let mut h = x.flatten(1, -1);
        let n = self.enc.len();
        for (i, l) in self.enc.iter().enumerate() {
            h = super::dense(l, &h);
            if i + 1 < n || self.heads.is_some() {
                h = super::act(self.act, &h);
            }
        }
        match &self.heads {
            Some((mu, lv)) => (super::dense(mu, &h), Some(super::dense(lv, &h))),
            None => (super::act(self.latent_act, &h), None),
        }
    }

    /// z [B, latent] → logits [B, features]
    pub fn decode(&self, z: &Tensor) -> Tensor {
        let mut h = z.shallow_clone();
        let n = self.dec.len();
        for (i, l) in self.dec.iter().enumerate() {
            h = super::dense(l, &h);
            if i + 1 < n {
                h = super::act(self.act, &h);
            }
        }
        h
    }
}
