//! aelab's own optimizers, with every piece of state in tensors so that a
//! checkpoint can save it and a resumed run continues bit for bit.
//! Update rules as in torch.optim (Adam, AdamW, SGD with momentum). Adam and AdamW
//! go through ATen's fused kernel (one pass per parameter) where there is one
//! (CPU, CUDA; float32), and through the elementwise operators below elsewhere.
use crate::config::{OptimizerConfig, OptimizerKind};
use crate::kernels::{self, AdamStep};
use tch::Tensor;

pub struct Optimizer {
    cfg: OptimizerConfig,
    /// (name, parameter) sorted by name
    params: Vec<(String, Tensor)>,
    /// Adam: first and second moments; SGD: momentum buffer in `m`
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: i64,
    /// use the fused Adam kernel (cleared when it does not apply)
    fused: bool,
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
            fused: true,
        }
    }

    /// Drop the gradients (set to none, as PyTorch's zero_grad does by default).
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            kernels::clear_grad(p);
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

    /// Use the elementwise operators even where a fused kernel exists (tests
    /// compare the two).
    pub fn unfused(mut self) -> Self {
        self.fused = false;
        self
    }

    /// Adam/AdamW through the fused kernel; false when it does not apply.
    fn apply_fused(&mut self, lr: f64) -> bool {
        let c = &self.cfg;
        if !self.fused || c.kind == OptimizerKind::Sgd {
            return false;
        }
        let mut p = vec![];
        let mut g = vec![];
        let mut m = vec![];
        let mut v = vec![];
        for (i, (_, param)) in self.params.iter().enumerate() {
            let grad = param.grad();
            if grad.defined() {
                p.push(param);
                g.push(grad);
                m.push(&self.m[i]);
                v.push(&self.v[i]);
            }
        }
        let s = AdamStep {
            step: self.step,
            lr,
            betas: c.betas,
            weight_decay: c.weight_decay,
            eps: c.eps,
            decoupled: c.kind == OptimizerKind::Adamw,
        };
        match kernels::fused_adam(&p, &g, &m, &v, &s) {
            Ok(true) => true,
            // another device or dtype, or a kernel that refused: the operators below,
            // from now on
            Ok(false) | Err(_) => {
                self.fused = false;
                false
            }
        }
    }

    pub fn apply(&mut self, lr: f64) {
        self.step += 1;
        if self.apply_fused(lr) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Ten steps on a quadratic, from the same start, fused and unfused.
    fn trajectory(cfg: &OptimizerConfig, fused: bool) -> Vec<Tensor> {
        // fixed values, not the global generator, which tests on other threads share
        let wave = |n: i64, f: f64| (Tensor::arange(n, (Kind::Float, Device::Cpu)) * f).sin();
        let w = wave(231, 0.37).reshape([33, 7]).set_requires_grad(true);
        let b = wave(7, 1.3).set_requires_grad(true);
        let target = wave(231, 0.11).reshape([33, 7]) * 2.0;
        // a convolution weight stored channels-last, as conv models keep theirs
        let k = wave(48, 0.7).reshape([4, 3, 2, 2]).set_requires_grad(true);
        crate::kernels::channels_last(&k).unwrap();
        assert_eq!(k.stride(), [12, 1, 6, 3]);
        let k_target = wave(48, 0.05).reshape([4, 3, 2, 2]);
        let params = vec![
            ("b".to_string(), b.shallow_clone()),
            ("k".to_string(), k.shallow_clone()),
            ("w".to_string(), w.shallow_clone()),
        ];
        let opt = Optimizer::new(cfg, params);
        let mut opt = if fused { opt } else { opt.unfused() };
        for _ in 0..10 {
            opt.zero_grad();
            let lw = ((&w + &b) - &target).square().sum(Kind::Float);
            let lk = ((&k - &k_target).square() * (&k_target + 2.0)).sum(Kind::Float);
            (lw + lk).backward();
            opt.apply(cfg.lr);
        }
        let mut out = vec![w.detach(), b.detach(), k.detach()];
        out.extend(opt.m.iter().chain(&opt.v).map(|t| t.copy()));
        out
    }

    #[test]
    fn fused_adam_follows_the_same_rule() {
        for (kind, wd) in [
            (OptimizerKind::Adam, 0.0),
            (OptimizerKind::Adam, 0.1),
            (OptimizerKind::Adamw, 0.1),
        ] {
            let cfg = OptimizerConfig {
                kind,
                lr: 0.05,
                weight_decay: wd,
                ..OptimizerConfig::default()
            };
            let a = trajectory(&cfg, true);
            let b = trajectory(&cfg, false);
            // the start moved: the update did something
            let start = trajectory(
                &OptimizerConfig {
                    lr: 0.0,
                    ..cfg.clone()
                },
                false,
            );
            assert!(f64::try_from((&a[0] - &start[0]).abs().max()).unwrap() > 0.1);
            for (x, y) in a.iter().zip(&b) {
                let d = f64::try_from((x - y).abs().max()).unwrap();
                let s = f64::try_from(y.abs().max()).unwrap();
                assert!(
                    d <= 1e-5 * s.max(1.0),
                    "{kind:?} wd {wd}: fused differs by {d}"
                );
            }
        }
    }

    #[test]
    fn zero_grad_drops_the_gradient() {
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut opt = Optimizer::new(
            &OptimizerConfig::default(),
            vec![("w".into(), w.shallow_clone())],
        );
        (&w * 2.0).sum(Kind::Float).backward();
        assert!(w.grad().defined());
        opt.zero_grad();
        assert!(!w.grad().defined());
        // and a second backward gives the gradient of that pass alone
        (&w * 3.0).sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), vec![3.0; 3]);
    }
}
