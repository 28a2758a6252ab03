//! Exact t-SNE (van der Maaten & Hinton, 2008) in libtorch, for the latent plot of
//! up to a few thousand codes: O(N²) memory and time per iteration.
use tch::{Device, Kind, Tensor};

fn sq_dists(x: &Tensor) -> Tensor {
    let s = x.square().sum_dim_intlist(1, true, Kind::Double);
    (&s + s.transpose(0, 1) - x.matmul(&x.transpose(0, 1)) * 2.0).clamp_min(0.0)
}

/// Embed the rows of x [N, D] in 2-d. Seeded; `perplexity` is the usual knob (5–50).
pub fn tsne(x: &Tensor, perplexity: f64, iters: i64, seed: u64) -> Tensor {
    tch::no_grad(|| {
        let x = x
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(1, -1);
        let n = x.size()[0];
        let opts = (Kind::Double, Device::Cpu);
        let x = (&x - x.mean_dim(0, true, Kind::Double)) / x.std(false).clamp_min(1e-12);
        let d = sq_dists(&x);
        let off = Tensor::ones([n, n], opts) - Tensor::eye(n, opts);
        // per-row precision by bisection on log β so that each row's entropy is log(perplexity)
        let target = perplexity.min((n - 1) as f64 / 3.0).max(1.0).ln();
        let mut lo = Tensor::full([n, 1], -30.0, opts);
        let mut hi = Tensor::full([n, 1], 30.0, opts);
        let mut p = Tensor::zeros([n, n], opts);
        for _ in 0..64 {
            let mid = (&lo + &hi) / 2.0;
            let beta = mid.exp();
            // shift by the row minimum for stability
            let dmin = (&d + (&off * -1.0 + 1.0) * 1e300).amin(1, true);
            let e = ((&d - &dmin) * -&beta).exp() * &off;
            let sum = e.sum_dim_intlist(1, true, Kind::Double).clamp_min(1e-300);
            let h = sum.log()
                + &beta * ((&d - &dmin) * &e).sum_dim_intlist(1, true, Kind::Double) / &sum;
            let too_flat = h.gt_tensor(&Tensor::full([n, 1], target, opts));
            lo = mid.where_self(&too_flat, &lo);
            hi = hi.where_self(&too_flat, &mid);
            p = e / sum;
        }
        // the optimisation runs in float32 with in-place updates: it is memory-bound on N×N
        let p = ((&p + p.transpose(0, 1)) / (2.0 * n as f64))
            .clamp_min(1e-12)
            .to_kind(Kind::Float);
        let fopts = (Kind::Float, Device::Cpu);
        tch::manual_seed(seed as i64);
        let mut y = Tensor::randn([n, 2], fopts) * 1e-4;
        let mut vel = Tensor::zeros([n, 2], fopts);
        let mut gains = Tensor::ones([n, 2], fopts);
        let lr = (n as f64 / 12.0 / 4.0).max(50.0);
        for it in 0..iters {
            let exag = if it < 100 { 12.0 } else { 1.0 };
            // num_ij = 1 / (1 + |y_i − y_j|²), zero on the diagonal
            let s = y.square().sum_dim_intlist(1, true, Kind::Float);
            let mut num = y.mm(&y.transpose(0, 1)) * -2.0;
            let _ = num
                .g_add_(&s)
                .g_add_(&s.transpose(0, 1))
                .g_add_scalar_(1.0)
                .reciprocal_();
            let _ = num.fill_diagonal_(0.0, false);
            let total = num.sum(Kind::Float).clamp_min(1e-12);
            // (exag·P − num/Σnum) ⊙ num
            let mut pq = &num / &total;
            let _ = pq.g_mul_scalar_(-1.0).g_add_(&(&p * exag)).g_mul_(&num);
            let grad = (pq.sum_dim_intlist(1, true, Kind::Float) * &y - pq.mm(&y)) * 4.0;
            let same = grad.sign().eq_tensor(&vel.sign());
            gains = ((&gains * 0.8).where_self(&same, &(&gains + 0.2))).clamp_min(0.01);
            let momentum = if it < 250 { 0.5 } else { 0.8 };
            vel = &vel * momentum - &gains * &grad * lr;
            y = &y + &vel;
            y = &y - y.mean_dim(0, true, Kind::Float);
        }
        y
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_two_clusters() {
        tch::manual_seed(1);
        let opts = (Kind::Float, Device::Cpu);
        let a = Tensor::randn([60, 10], opts);
        let b = Tensor::randn([60, 10], opts) + 8.0;
        let y = tsne(&Tensor::cat(&[a, b], 0), 15.0, 300, 0);
        let ca = y.narrow(0, 0, 60).mean_dim(0, false, Kind::Double);
        let cb = y.narrow(0, 60, 60).mean_dim(0, false, Kind::Double);
        let between = f64::try_from((&ca - &cb).norm()).unwrap();
        let within = f64::try_from(
            (y.narrow(0, 0, 60) - &ca)
                .norm_scalaropt_dim(2, [1], false)
                .mean(Kind::Double),
        )
        .unwrap();
        assert!(between > 3.0 * within, "between {between}, within {within}");
    }
}
