//! Convolutional autoencoder (and VAE). With channels [16, 8, 8] on 1×28×28:
//!   encoder: conv3×3 → act → maxpool2 (ceil) per stage: 16×28×28 → 16×14×14 → 8×7×7 → 8×4×4
//!   code:    the last feature map flattened (8·4·4 = 128), or a Linear to `latent`
//!   decoder: per stage back up, either conv → act → nearest upsample to the
//!            encoder's size at that level, or a stride-2 transposed conv → act;
//!            then a final conv to the input channels.
//! PyTorch names: encoder.{0,3,6} convs; encoder_fc (or encoder_mu/encoder_logvar);
//! decoder_fc; decoder.{0,3,..,3n} (nearest) or decoder.{0,2,..,2n} (transposed).
use crate::config::{Activation, ModelConfig, Upsample};
use anyhow::Result;
use tch::{nn, nn::Module, Tensor};

enum Up {
    Nearest(nn::Conv2D),
    Transposed(nn::ConvTranspose2D),
}

pub struct Conv {
    enc: Vec<nn::Conv2D>,
    enc_fc: Option<nn::Linear>,
    heads: Option<(nn::Linear, nn::Linear)>,
    dec_fc: Option<nn::Linear>,
    ups: Vec<Up>,
    last: nn::Conv2D,
    /// spatial size (h, w) at each level, input first
    sizes: Vec<(i64, i64)>,
    /// channels × h × w of the last feature map
    map: (i64, i64, i64),
    act: Activation,
    latent_act: Activation,
    pub latent: i64,
}

impl Conv {
    pub fn new(p: &nn::Path, m: &ModelConfig, shape: &[i64], variational: bool) -> Result<Conv> {
        let (c_in, h, w) = (shape[0], shape[1], shape[2]);
        let k = m.kernel;
        let pad = k / 2;
        let e = p / "encoder";
        let mut enc = Vec::new();
        let mut sizes = vec![(h, w)];
        let mut prev = c_in;
        for (i, &c) in m.channels.iter().enumerate() {
            enc.push(super::conv2d(&e / (3 * i), prev, c, k, pad));
            let (sh, sw) = *sizes.last().unwrap_or(&(h, w));
            sizes.push(((sh + 1) / 2, (sw + 1) / 2));
            prev = c;
        }
        let (lh, lw) = *sizes.last().unwrap_or(&(h, w));
        let flat = prev * lh * lw;
        let (enc_fc, heads, dec_fc, latent) = match (m.latent, variational) {
            (Some(l), true) => (
                None,
                Some((
                    super::linear(p / "encoder_mu", flat, l),
                    super::linear(p / "encoder_logvar", flat, l),
                )),
                Some(super::linear(p / "decoder_fc", l, flat)),
                l,
            ),
            (Some(l), false) => (
                Some(super::linear(p / "encoder_fc", flat, l)),
                None,
                Some(super::linear(p / "decoder_fc", l, flat)),
                l,
            ),
            (None, _) => (None, None, None, flat),
        };
        let d = p / "decoder";
        let rev: Vec<i64> = m.channels.iter().rev().copied().collect();
        let n = rev.len();
        let mut ups = Vec::new();
        let mut prev = rev[0];
        for (j, &c) in rev.iter().enumerate() {
            // stage j goes from the encoder's level n-j back up to level n-j-1
            let target = sizes[n - 1 - j];
            let from = sizes[n - j];
            match m.upsample {
                Upsample::Nearest => {
                    ups.push(Up::Nearest(super::conv2d(&d / (3 * j), prev, c, k, pad)))
                }
                Upsample::Transposed => {
                    // out = 2·in − 1 + output_padding, so output_padding ∈ {0, 1} hits target
                    let oph = target.0 - (2 * from.0 - 1);
                    let opw = target.1 - (2 * from.1 - 1);
                    if oph != opw {
                        return Err(crate::error::InputError::new(format!(
                            "model.upsample: transposed needs height and width of the same parity at every level ({:?} → {:?}); use upsample: nearest",
                            from, target
                        ))
                        .into());
                    }
                    ups.push(Up::Transposed(super::conv_transpose2d(
                        &d / (2 * j),
                        prev,
                        c,
                        oph,
                    )));
                }
            }
            prev = c;
        }
        let last_idx = match m.upsample {
            Upsample::Nearest => 3 * n,
            Upsample::Transposed => 2 * n,
        };
        let last = super::conv2d(&d / last_idx, prev, c_in, k, pad);
        Ok(Conv {
            enc,
            enc_fc,
            heads,
            dec_fc,
            ups,
            last,
            sizes,
            map: (rev[0], lh, lw),
            act: m.activation,
            latent_act: m.latent_activation,
            latent,
        })
    }

    /// x [B, C, H, W] → z [B, latent] (μ and log σ² for a VAE)
    pub fn encode(&self, x: &Tensor) -> (Tensor, Option<Tensor>) {
        let mut h = x.shallow_clone();
        for c in &self.enc {
            h = super::act(self.act, &c.forward(&h)).max_pool2d(
                [2, 2],
                [2, 2],
                [0, 0],
                [1, 1],
                true,
            );
        }
        let h = h.flatten(1, -1);
        if let Some((mu, lv)) = &self.heads {
            return (super::dense(mu, &h), Some(super::dense(lv, &h)));
        }
        let z = match &self.enc_fc {
            Some(fc) => super::dense(fc, &h),
            None => h,
        };
        (super::act(self.latent_act, &z), None)
    }

    /// z [B, latent] → logits [B, C, H, W]
    pub fn decode(&self, z: &Tensor) -> Tensor {
        let (c, lh, lw) = self.map;
        let mut h = match &self.dec_fc {
            Some(fc) => super::act(self.act, &super::dense(fc, z)),
            None => z.shallow_clone(),
        }
        .reshape([-1, c, lh, lw]);
        let n = self.ups.len();
        for (j, up) in self.ups.iter().enumerate() {
            let (th, tw) = self.sizes[n - 1 - j];
            h = match up {
                Up::Nearest(conv) => {
                    super::act(self.act, &conv.forward(&h)).upsample_nearest2d([th, tw], None, None)
                }
                Up::Transposed(t) => super::act(self.act, &t.forward(&h)),
            };
        }
        self.last.forward(&h)
    }
}
