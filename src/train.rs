//! The training loop: seeded shuffles sliced from one tensor on the device, the
//! loss kept on the device (no host sync per step), aelab's own optimizer, the
//! learning-rate schedule, early stopping with the best weights kept, a checkpoint
//! every epoch, a clean stop on SIGINT/SIGTERM and on a non-finite loss.
use crate::checkpoint::{self, TrainState};
use crate::config::{Experiment, LossKind, NoiseConfig, NoiseKind, Output, Schedule};
use crate::error::Interrupted;
use crate::metrics::{self, Row};
use crate::model::{Forward, Model};
use crate::optim::Optimizer;
use crate::util::seed_for;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Reduction, Tensor};

/// Steps between reads of the per-step losses (the only host read in the loop);
/// the first non-finite one is still named exactly, from the buffer.
const CHECK_EVERY: i64 = 50;

/// Batches for evaluation: large, since no activations are kept.
const EVAL_BATCH: i64 = 512;

/// The loss and the named terms that make it up, all scalars on the device.
pub struct Loss {
    pub total: Tensor,
    pub terms: Vec<(&'static str, Tensor)>,
}

/// Corrupt a batch for a denoising autoencoder. Uses the global generator, which
/// the caller seeds.
pub fn corrupt(x: &Tensor, noise: &NoiseConfig, output: Output) -> Tensor {
    match noise.kind {
        NoiseKind::Gaussian => {
            let y = x + x.randn_like() * noise.factor;
            if output == Output::Sigmoid {
                y.clamp(0.0, 1.0)
            } else {
                y
            }
        }
        NoiseKind::Masking => {
            let keep = x.rand_like().ge(noise.factor).to_kind(x.kind());
            x * keep
        }
    }
}

/// Reconstruction loss (+ β·KL for a VAE, + sparsity·|z|). For a VAE the terms are
/// sums per sample (so β means what it means in the literature); otherwise means
/// per element.
pub fn loss(exp: &Experiment, model: &Model, f: &Forward, target: &Tensor) -> Loss {
    let b = target.size()[0] as f64;
    let per_sample = model.variational;
    let red = if per_sample {
        Reduction::Sum
    } else {
        Reduction::Mean
    };
    // a VAE's reconstruction term is a sum per sample; otherwise a mean per element
    let batch_mean = |l: Tensor| if per_sample { l / b } else { l };
    let recon = match exp.loss.kind {
        LossKind::Bce => {
            // one fused pass for loss and gradient on the CPU; ATen's operator elsewhere
            let scale = if per_sample {
                1.0 / b
            } else {
                1.0 / target.numel() as f64
            };
            match crate::kernels::bce_with_logits(&f.logits, target, scale) {
                Ok(Some(l)) => l,
                _ => batch_mean(
                    f.logits
                        .binary_cross_entropy_with_logits::<Tensor>(target, None, None, red),
                ),
            }
        }
        LossKind::Mse => batch_mean(model.finish(&f.logits).mse_loss(target, red)),
    };
    let mut terms = vec![];
    let mut total = recon.shallow_clone();
    if let (Some(mu), Some(lv)) = (&f.mu, &f.logvar) {
        // KL(q(z|x) ‖ N(0, I)) = −½ Σ (1 + log σ² − μ² − σ²), averaged over the batch
        let kl = (lv.exp() + mu.square() - lv - 1.0).sum(Kind::Float) * (0.5 / b);
        total = total + &kl * exp.loss.beta;
        terms.push(("recon", recon));
        terms.push(("kl", kl));
    }
    if exp.loss.sparsity > 0.0 {
        let l1 = f.z.abs().mean(Kind::Float);
        total = total + &l1 * exp.loss.sparsity;
        terms.push(("sparsity", l1));
    }
    Loss { total, terms }
}

/// Validation figures for one pass over `x`.
pub struct Eval {
    pub loss: f64,
    pub mse: f64,
    pub terms: Vec<(&'static str, f64)>,
    /// Denoising: MSE of the corrupted input against the clean one.
    pub noisy_mse: Option<f64>,
}

pub fn evaluate(exp: &Experiment, model: &Model, x: &Tensor) -> Eval {
    tch::no_grad(|| {
        let n = x.size()[0];
        let mut loss = Tensor::zeros([], (Kind::Float, x.device()));
        let mut se = Tensor::zeros([], (Kind::Float, x.device()));
        let mut noisy_se = Tensor::zeros([], (Kind::Float, x.device()));
        let mut terms: Vec<(&'static str, Tensor)> = vec![];
        let mut start = 0;
        let mut batch = 0;
        while start < n {
            let len = EVAL_BATCH.min(n - start);
            let clean = x.narrow(0, start, len);
            let input = match &exp.noise {
                Some(nz) => {
                    // the same corruption every epoch, so validation numbers compare
                    tch::manual_seed(seed_for(exp.seed, -1, batch));
                    let noisy = corrupt(&clean, nz, exp.model.output);
                    noisy_se += (&noisy - &clean).square().sum(Kind::Float);
                    noisy
                }
                None => clean.shallow_clone(),
            };
            tch::manual_seed(seed_for(exp.seed, -2, batch));
            let f = model.forward(&input, false);
            let l = self::loss(exp, model, &f, &clean);
            loss += l.total * len as f64;
            for (i, (name, t)) in l.terms.into_iter().enumerate() {
                if terms.len() <= i {
                    terms.push((name, t * len as f64));
                } else {
                    terms[i].1 += t * len as f64;
                }
            }
            se += (model.finish(&f.logits) - &clean).square().sum(Kind::Float);
            start += len;
            batch += 1;
        }
        let elems = x.numel() as f64;
        Eval {
            loss: f64::try_from(loss).unwrap_or(f64::NAN) / n as f64,
            mse: f64::try_from(se).unwrap_or(f64::NAN) / elems,
            terms: terms
                .into_iter()
                .map(|(k, t)| (k, f64::try_from(t).unwrap_or(f64::NAN) / n as f64))
                .collect(),
            noisy_mse: exp
                .noise
                .as_ref()
                .map(|_| f64::try_from(noisy_se).unwrap_or(f64::NAN) / elems),
        }
    })
}

/// The learning rate for an epoch (plateau is handled by the state).
fn scheduled_lr(exp: &Experiment, epoch: i64, state: &TrainState) -> f64 {
    let t = &exp.train;
    let lr = t.optimizer.lr;
    match t.schedule {
        Schedule::None => lr,
        Schedule::Step => lr * t.gamma.powi((epoch / t.step_size) as i32),
        Schedule::Cosine => {
            let frac = epoch as f64 / t.epochs.max(1) as f64;
            t.min_lr + 0.5 * (lr - t.min_lr) * (1.0 + (std::f64::consts::PI * frac).cos())
        }
        Schedule::Plateau => state.plateau_lr.unwrap_or(lr),
    }
}

/// What a diverged run leaves to go back to.
fn kept_checkpoint(state: &TrainState, run_dir: &Path) -> String {
    if state.epoch > 0 {
        format!(
            "the checkpoint of epoch {} is kept in {}",
            state.epoch,
            run_dir.join("checkpoint").display()
        )
    } else {
        "no epoch had finished, so there is no checkpoint".to_string()
    }
}

pub struct Outcome {
    pub rows: Vec<Row>,
    pub best_epoch: Option<i64>,
    pub stopped_early: bool,
    pub train_seconds: f64,
}

fn progress(steps: u64, epoch: i64, epochs: i64) -> ProgressBar {
    let pb = ProgressBar::new(steps);
    let style = ProgressStyle::with_template(
        "epoch {msg} [{bar:30}] {pos}/{len} steps  {elapsed_precise} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(format!("{}/{}", epoch + 1, epochs));
    pb
}

/// Train `model` on `train_x` (already on the device), validating on `val_x`.
/// Resumes from `state` (a fresh state starts at epoch 0).
#[allow(clippy::too_many_arguments)]
pub fn train(
    exp: &Experiment,
    model: &Model,
    opt: &mut Optimizer,
    train_x: &Tensor,
    val_x: &Tensor,
    run_dir: &Path,
    mut state: TrainState,
    stop: &Arc<AtomicBool>,
    quiet: bool,
) -> Result<Outcome> {
    let t = &exp.train;
    let n = train_x.size()[0];
    let bs = t.batch_size.min(n);
    let steps = (n + bs - 1) / bs;
    let device = train_x.device();
    let mut train_seconds = 0.0;
    let mut best: Option<Vec<Tensor>> = state.best_weights.take();
    let params = model.named_parameters();

    while state.epoch < t.epochs {
        let epoch = state.epoch;
        let lr = scheduled_lr(exp, epoch, &state);
        let t0 = Instant::now();
        tch::manual_seed(seed_for(exp.seed, epoch, -1));
        let perm = Tensor::randperm(n, (Kind::Int64, device));
        let mut loss_sum = state
            .loss_sum
            .take()
            .unwrap_or_else(|| Tensor::zeros([], (Kind::Float, device)));
        // per-step losses stay on the device; read in chunks to find a non-finite one
        let step_losses = Tensor::zeros([steps], (Kind::Float, device));
        let mut checked = state.step;
        let pb = if quiet {
            ProgressBar::hidden()
        } else {
            progress(steps as u64, epoch, t.epochs)
        };
        pb.set_position(state.step as u64);
        let mut step = state.step;
        while step < steps {
            let start = step * bs;
            let len = bs.min(n - start);
            let idx = perm.narrow(0, start, len);
            let clean = train_x.index_select(0, &idx);
            tch::manual_seed(seed_for(exp.seed, epoch, step));
            let input = match &exp.noise {
                Some(nz) => corrupt(&clean, nz, exp.model.output),
                None => clean.shallow_clone(),
            };
            let f = model.forward(&input, true);
            let l = loss(exp, model, &f, &clean);
            opt.zero_grad();
            l.total.backward();
            if let Some(c) = t.grad_clip {
                opt.clip_grad_norm(c);
            }
            opt.apply(lr);
            let detached = l.total.detach();
            tch::no_grad(|| {
                loss_sum += &detached * len as f64;
                step_losses.narrow(0, step, 1).copy_(&detached.reshape([1]));
            });
            step += 1;
            pb.inc(1);
            let at_end = step == steps;
            if at_end || step - checked >= CHECK_EVERY {
                let chunk = step_losses.narrow(0, checked, step - checked);
                if !bool::try_from(chunk.isfinite().all()).unwrap_or(false) {
                    let bad = Vec::<f32>::try_from(&chunk).unwrap_or_default();
                    let off = bad.iter().position(|v| !v.is_finite()).unwrap_or(0) as i64;
                    pb.finish_and_clear();
                    let kept = kept_checkpoint(&state, run_dir);
                    bail!(
                        "training diverged: the loss became {} at epoch {}, step {} (learning rate {lr:e}); {kept}. Try a smaller train.optimizer.lr or set train.grad_clip",
                        bad.get(off as usize).map(|v| v.to_string()).unwrap_or_else(|| "NaN".into()),
                        epoch + 1,
                        checked + off + 1
                    );
                }
                checked = step;
            }
            if stop.load(Ordering::SeqCst) && !at_end {
                pb.finish_and_clear();
                state.step = step;
                state.loss_sum = Some(loss_sum);
                state.opt_step = opt.step;
                state.best_weights = best;
                checkpoint::save(run_dir, model, opt, &state)?;
                return Err(Interrupted(format!(
                    "interrupted at epoch {}, step {step}/{steps}; checkpoint written. Resume with: aelab run --resume {}",
                    epoch + 1,
                    run_dir.display()
                ))
                .into());
            }
        }
        pb.finish_and_clear();
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        let train_time = t0.elapsed().as_secs_f64();
        train_seconds += train_time;
        let train_loss = f64::try_from(&loss_sum).unwrap_or(f64::NAN) / n as f64;
        let ev = evaluate(exp, model, val_x);
        if !ev.loss.is_finite() {
            let kept = kept_checkpoint(&state, run_dir);
            bail!(
                "training diverged: the validation loss became {} after epoch {} (learning rate {lr:e}); {kept}. Try a smaller train.optimizer.lr or set train.grad_clip",
                ev.loss,
                epoch + 1
            );
        }
        let seconds = t0.elapsed().as_secs_f64();
        let mut row = Row::new();
        row.push("epoch", (epoch + 1) as f64);
        row.push("train_loss", train_loss);
        row.push("val_loss", ev.loss);
        row.push("val_mse", ev.mse);
        for (k, v) in &ev.terms {
            row.push(&format!("val_{k}"), *v);
        }
        if let Some(nm) = ev.noisy_mse {
            row.push("noisy_mse", nm);
        }
        row.push("lr", lr);
        row.push("seconds", seconds);
        row.push("samples_per_s", n as f64 / train_time.max(1e-9));
        if !quiet {
            eprintln!("{}", metrics::epoch_line(&row, t.epochs));
        }
        state.rows.push(row);

        // schedule and early stopping read the validation loss
        if t.schedule == Schedule::Plateau {
            let cur = state.plateau_lr.unwrap_or(t.optimizer.lr);
            if ev.loss < state.plateau_best.unwrap_or(f64::INFINITY) - 1e-12 {
                state.plateau_best = Some(ev.loss);
                state.plateau_wait = 0;
            } else {
                state.plateau_wait += 1;
                if state.plateau_wait > t.plateau_patience {
                    state.plateau_lr = Some((cur * t.gamma).max(t.min_lr));
                    state.plateau_wait = 0;
                }
            }
        }
        let mut stop_now = false;
        if let Some(es) = &t.early_stopping {
            if ev.loss < state.best_val.unwrap_or(f64::INFINITY) - es.min_delta {
                state.best_val = Some(ev.loss);
                state.best_epoch = Some(epoch + 1);
                state.es_wait = 0;
                best = Some(tch::no_grad(|| {
                    params.iter().map(|(_, p)| p.detach().copy()).collect()
                }));
            } else {
                state.es_wait += 1;
                stop_now = state.es_wait >= es.patience;
            }
        }
        state.epoch += 1;
        state.step = 0;
        state.opt_step = opt.step;
        state.best_weights = best
            .as_ref()
            .map(|b| b.iter().map(|t| t.shallow_clone()).collect());
        metrics::write_csv(&run_dir.join("metrics.csv"), &state.rows)?;
        checkpoint::save(run_dir, model, opt, &state)?;
        state.best_weights = None;
        if stop_now {
            if !quiet {
                eprintln!(
                    "early stopping: no improvement for {} epochs; keeping the weights of epoch {}",
                    state.es_wait,
                    state.best_epoch.unwrap_or(0)
                );
            }
            state.stopped_early = true;
            break;
        }
        if stop.load(Ordering::SeqCst) && state.epoch < t.epochs {
            return Err(Interrupted(format!(
                "interrupted after epoch {}; checkpoint written. Resume with: aelab run --resume {}",
                state.epoch,
                run_dir.display()
            ))
            .into());
        }
    }
    // early stopping keeps the best weights, not the last
    if let Some(b) = &best {
        tch::no_grad(|| {
            for ((_, p), w) in params.iter().zip(b) {
                p.shallow_clone().copy_(w);
            }
        });
    }
    Ok(Outcome {
        rows: state.rows,
        best_epoch: state.best_epoch,
        stopped_early: state.stopped_early,
        train_seconds,
    })
}
