//! The fused training kernels of cpp/aelab_kernels.cpp, behind safe functions that
//! say when they do not apply (another device or dtype) so that the caller takes
//! the stock ATen path instead.
//!
//! `AELAB_FUSED=0` in the environment turns them off, and with them the
//! channels-last weights of conv models (the stock operators and layouts
//! everywhere), for comparing the two: scripts/bench reports both.
use crate::util::shim_error;
use anyhow::{anyhow, Result};
use std::ffi::{c_char, c_int};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn aelab_clear_grad(p: *const C_tensor);
    fn aelab_channels_last(p: *const C_tensor, err: *mut *mut c_char);
    fn aelab_fused_adam(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        n: c_int,
        step: f64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        adamw: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn aelab_bce_logits(
        z: *const C_tensor,
        x: *const C_tensor,
        scale: f64,
        err: *mut *mut c_char,
    ) -> *mut C_tensor;
}

/// Whether the fused kernels are on (they are unless `AELAB_FUSED=0`).
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("AELAB_FUSED").map_or(true, |v| v.trim() != "0"))
}

/// Store the 4-d parameter `p` in channels-last order (NHWC) in place; values,
/// shape and autograd identity stay as they were. oneDNN then runs convolution,
/// pooling and upsampling on NHWC with no reorder per call; with it and the fused
/// kernels, bench-conv trained at 7 800–9 200 samples/s against 5 000–5 300 without.
pub fn channels_last(p: &Tensor) -> Result<()> {
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: p is a live tensor; the shim replaces its data under no-grad.
    unsafe { aelab_channels_last(p.as_ptr(), &mut err) };
    if err.is_null() {
        Ok(())
    } else {
        Err(shim_error(err))
    }
}

/// Drop `p`'s gradient, so that the next backward hands over a fresh one instead
/// of adding to a zeroed buffer (one pass less per parameter, no fill).
pub fn clear_grad(p: &Tensor) {
    // SAFETY: p is a live tensor; the shim only resets its grad field.
    unsafe { aelab_clear_grad(p.as_ptr()) }
}

/// Hyper-parameters of one Adam step.
pub struct AdamStep {
    pub step: i64,
    pub lr: f64,
    pub betas: (f64, f64),
    pub weight_decay: f64,
    pub eps: f64,
    /// decoupled weight decay (AdamW) rather than L2 in the gradient (Adam)
    pub decoupled: bool,
}

/// One Adam/AdamW update of every parameter in one fused pass. `Ok(false)`: no
/// fused kernel for these tensors, nothing was changed.
pub fn fused_adam(
    params: &[&Tensor],
    grads: &[Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    s: &AdamStep,
) -> Result<bool> {
    if !enabled() {
        return Ok(false);
    }
    let n = params.len();
    if grads.len() != n || exp_avgs.len() != n || exp_avg_sqs.len() != n {
        return Err(anyhow!("fused Adam: {n} parameters but other lists differ"));
    }
    let ptrs = |ts: &[&Tensor]| ts.iter().map(|t| t.as_ptr()).collect::<Vec<_>>();
    let p = ptrs(params);
    let g: Vec<*const C_tensor> = grads.iter().map(|t| t.as_ptr()).collect();
    let m = ptrs(exp_avgs);
    let v = ptrs(exp_avg_sqs);
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: every pointer is a live tensor owned by the caller for this call.
    let rc = unsafe {
        aelab_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            n as c_int,
            s.step as f64,
            s.lr,
            s.betas.0,
            s.betas.1,
            s.weight_decay,
            s.eps,
            c_int::from(s.decoupled),
            &mut err,
        )
    };
    match rc {
        1 => Ok(true),
        0 => Ok(false),
        _ => Err(shim_error(err)),
    }
}

/// `scale · Σ bce_with_logits(z, x)`, with the gradient written in the same pass
/// when `z` requires one. `Ok(None)`: not a CPU float32 pair; use ATen's operator.
pub fn bce_with_logits(z: &Tensor, x: &Tensor, scale: f64) -> Result<Option<Tensor>> {
    if !enabled() {
        return Ok(None);
    }
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: z and x are live tensors; a non-null result is a new at::Tensor* that
    // Tensor::from_ptr takes ownership of.
    let out = unsafe { aelab_bce_logits(z.as_ptr(), x.as_ptr(), scale, &mut err) };
    if !out.is_null() {
        return Ok(Some(unsafe { Tensor::from_ptr(out) }));
    }
    if err.is_null() {
        Ok(None)
    } else {
        Err(shim_error(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Reduction};

    #[test]
    fn bce_matches_aten_in_value_and_gradient() {
        tch::manual_seed(3);
        // logits from −40 to 40 cover both branches and the saturated tails
        let z0 = (Tensor::randn([37, 301], (Kind::Float, Device::Cpu)) * 12.0).clamp(-40.0, 40.0);
        let x = Tensor::rand([37, 301], (Kind::Float, Device::Cpu));
        let scale = 1.0 / z0.numel() as f64;

        let za = z0.detach().set_requires_grad(true);
        let ref_loss =
            za.binary_cross_entropy_with_logits::<Tensor>(&x, None, None, Reduction::Mean);
        ref_loss.backward();
        let zb = z0.detach().set_requires_grad(true);
        let loss = bce_with_logits(&zb, &x, scale)
            .unwrap()
            .expect("CPU float32 is supported");
        loss.backward();

        let (a, b) = (
            f64::try_from(&ref_loss).unwrap(),
            f64::try_from(&loss).unwrap(),
        );
        assert!((a - b).abs() <= 1e-6 * a.abs(), "loss {b} vs ATen {a}");
        let gdiff = f64::try_from((za.grad() - zb.grad()).abs().max()).unwrap();
        let gmax = f64::try_from(za.grad().abs().max()).unwrap();
        assert!(
            gdiff <= 1e-6 * gmax,
            "gradient differs by {gdiff} (max {gmax})"
        );

        // without a gradient: the same value
        let plain = tch::no_grad(|| bce_with_logits(&z0, &x, scale))
            .unwrap()
            .unwrap();
        assert!((f64::try_from(&plain).unwrap() - a).abs() <= 1e-6 * a.abs());
    }

    #[test]
    fn bce_handles_strided_logits() {
        tch::manual_seed(5);
        let z = Tensor::randn([301, 37], (Kind::Float, Device::Cpu)).tr(); // [37, 301], strided
        let x = Tensor::rand([37, 301], (Kind::Float, Device::Cpu));
        assert!(!z.is_contiguous());
        let reference = f64::try_from(z.binary_cross_entropy_with_logits::<Tensor>(
            &x,
            None,
            None,
            Reduction::Sum,
        ))
        .unwrap();
        let l = f64::try_from(bce_with_logits(&z, &x, 1.0).unwrap().unwrap()).unwrap();
        assert!(
            (l - reference).abs() <= 1e-6 * reference.abs(),
            "{l} vs ATen {reference}"
        );
    }

    #[test]
    fn bce_declines_what_it_does_not_cover() {
        let z = Tensor::zeros([4, 4], (Kind::Double, Device::Cpu));
        assert!(bce_with_logits(&z, &z, 1.0).unwrap().is_none());
        let a = Tensor::zeros([4, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([4, 5], (Kind::Float, Device::Cpu));
        assert!(bce_with_logits(&a, &b, 1.0).unwrap().is_none());
    }

    #[test]
    fn nan_logits_give_a_nan_loss() {
        // in the vector body (first 16) and in the scalar tail (last 3)
        for at in [3usize, 17] {
            let mut v = vec![0.5f32; 19];
            v[at] = f32::NAN;
            let z = Tensor::from_slice(&v).reshape([1, 19]);
            let x = Tensor::zeros([1, 19], (Kind::Float, Device::Cpu));
            let l = bce_with_logits(&z, &x, 1.0).unwrap().unwrap();
            assert!(f64::try_from(&l).unwrap().is_nan(), "NaN at {at} was lost");
        }
    }
}
