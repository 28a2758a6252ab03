//! aelab's own optimizers, with every piece of state in tensors so that a
//! checkpoint can save it and a resumed run continues bit for bit.
//! Update rules as in torch.optim (Adam, AdamW, SGD with momentum).
use crate::config::{OptimizerConfig, OptimizerKind};
use tch::Tensor;

pub struct Optimizer {
    cfg: OptimizerConfig,
    /// (name, parameter) sorted by name
    params: Vec<(String, Tensor)>,
    /// Adam: first and second moments; SGD: momentum buffer in `m`
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: i64,
}

impl Optimizer {
    pub fn new(cfg: &OptimizerConfig, params: Vec<(String, Tensor)>) -> Optimizer {
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Optimizer {
            cfg: cfg.clone(),
            params,
            m,
            v,
            step: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Scale gradients so that their global L2 norm is at most `max`.
    pub fn clip_grad_norm(&mut self, max: f64) {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .params
                .iter()
                .map(|(_, p)| p.grad())
                .filter(|g| g.defined())
                .collect();
            if grads.is_empty() {
                return;
            }
            let norms: Vec<Tensor> = grads.iter().map(|g| g.norm().unsqueeze(0)).collect();
            let total = Tensor::cat(&norms, 0).norm();
            // scale = min(1, max / (norm + 1e-6)), computed on the device: no host sync
            let scale = (max / (total + 1e-6)).clamp_max(1.0);
            for mut g in grads {
                let _ = g.g_mul_(&scale);
            }
        });
    }

    pub fn apply(&mut self, lr: f64) {
        self.step += 1;
        let c = &self.cfg;
        let t = self.step as f64;
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut p = p.shallow_clone();
                match c.kind {
                    OptimizerKind::Adam | OptimizerKind::Adamw => {
                        let g = if c.kind == OptimizerKind::Adam && c.weight_decay > 0.0 {
                            &g + &p * c.weight_decay
                        } else {
                            g
                        };
                        if c.kind == OptimizerKind::Adamw && c.weight_decay > 0.0 {
                            let _ = p.g_mul_scalar_(1.0 - lr * c.weight_decay);
                        }
                        let (b1, b2) = c.betas;
                        // m ← m + (1−β₁)(g − m);  v ← β₂v + (1−β₂)g²
                        let _ = self.m[i].lerp_(&g, 1.0 - b1);
                        let _ = self.v[i].g_mul_scalar_(b2).addcmul_(&g, &(&g * (1.0 - b2)));
                        let bias1 = 1.0 - b1.powf(t);
                        let bias2 = 1.0 - b2.powf(t);
                        // p ← p − lr/bias1 · m / (√v/√bias2 + ε), the divisor built in place
                        let mut denom = self.v[i].sqrt();
                        let _ = denom
                            .g_div_scalar_(bias2.sqrt())
                            .g_add_scalar_(c.eps)
                            .g_div_scalar_(-lr / bias1);
                        let _ = p.addcdiv_(&self.m[i], &denom);
                    }
                    OptimizerKind::Sgd => {
                        let g = if c.weight_decay > 0.0 {
                            &g + &p * c.weight_decay
                        } else {
                            g
                        };
                        let d = if c.momentum > 0.0 {
                            if self.step == 1 {
                                self.m[i].copy_(&g);
                            } else {
                                let _ = self.m[i].g_mul_scalar_(c.momentum).g_add_(&g);
                            }
                            self.m[i].shallow_clone()
                        } else {
                            g
                        };
                        let _ = p.g_add_(&(d * -lr));
                    }
                }
            }
        });
    }

    /// State tensors by name, for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![];
        for (i, (n, _)) in self.params.iter().enumerate() {
            out.push((format!("optim.m.{n}"), self.m[i].shallow_clone()));
            out.push((format!("optim.v.{n}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restore from `state()`'s tensors.
    pub fn restore(
        &mut self,
        get: &dyn Fn(&str) -> Option<Tensor>,
        step: i64,
    ) -> anyhow::Result<()> {
        for (i, (n, _)) in self.params.iter().enumerate() {
            for (buf, key) in [
                (&mut self.m[i], format!("optim.m.{n}")),
                (&mut self.v[i], format!("optim.v.{n}")),
            ] {
                let t = get(&key).ok_or_else(|| anyhow::anyhow!("checkpoint lacks {key}"))?;
                tch::no_grad(|| buf.copy_(&t.to_device(buf.device())));
            }
        }
        self.step = step;
        Ok(())
    }
}
