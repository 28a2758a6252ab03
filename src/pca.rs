//! Principal component analysis with libtorch: the baseline every autoencoder is
//! measured against, and the projection of wide codes for the latent plot.
use tch::{Kind, Tensor};

pub struct Pca {
    /// [D]
    pub mean: Tensor,
    /// [k, D], rows are unit principal directions, largest variance first
    pub components: Tensor,
    /// fraction of the total variance each component explains, [k]
    pub explained: Vec<f64>,
}

impl Pca {
    /// Fit k components to the rows of x [N, D]. Statistics are accumulated in
    /// float64 over chunks of rows, so memory stays small for large N.
    pub fn fit(x: &Tensor, k: i64) -> Pca {
        tch::no_grad(|| {
            let x = x.flatten(1, -1);
            let (n, d) = (x.size()[0], x.size()[1]);
            let chunk = 4096;
            let opts = (Kind::Double, x.device());
            let mut sum = Tensor::zeros([d], opts);
            let mut start = 0;
            while start < n {
                let len = chunk.min(n - start);
                sum += x
                    .narrow(0, start, len)
                    .to_kind(Kind::Double)
                    .sum_dim_intlist(0, false, Kind::Double);
                start += len;
            }
            let mean = sum / n.max(1) as f64;
            // covariance [D, D]
            let mut cov = Tensor::zeros([d, d], opts);
            start = 0;
            while start < n {
                let len = chunk.min(n - start);
                let c = x.narrow(0, start, len).to_kind(Kind::Double) - &mean;
                cov += c.transpose(0, 1).matmul(&c);
                start += len;
            }
            let cov = cov / (n.max(2) - 1) as f64;
            // eigh returns eigenvalues in ascending order
            let (vals, vecs) = cov.linalg_eigh("L");
            let k = k.min(d);
            let idx = Tensor::arange_start_step(d - 1, d - 1 - k, -1, (Kind::Int64, vals.device()));
            let top = vals.index_select(0, &idx).clamp_min(0.0);
            let total = f64::try_from(vals.clamp_min(0.0).sum(Kind::Double))
                .unwrap_or(1.0)
                .max(1e-300);
            let explained = Vec::<f64>::try_from(&(top / total)).unwrap_or_default();
            let components = vecs.index_select(1, &idx).transpose(0, 1).contiguous();
            Pca {
                mean,
                components,
                explained,
            }
        })
    }

    /// x [N, D] → codes [N, k]
    pub fn project(&self, x: &Tensor) -> Tensor {
        let x = x.flatten(1, -1).to_kind(Kind::Double);
        (x - &self.mean).matmul(&self.components.transpose(0, 1))
    }

    /// codes [N, k] → x̂ [N, D]
    pub fn reconstruct(&self, z: &Tensor) -> Tensor {
        z.matmul(&self.components) + &self.mean
    }
}

/// Mean squared error per element of the best rank-k linear reconstruction, fitted
/// on `train` (at most `max_fit` rows) and measured on `val`.
pub fn baseline_mse(train: &Tensor, val: &Tensor, k: i64, max_fit: i64) -> f64 {
    tch::no_grad(|| {
        let n = train.size()[0].min(max_fit);
        let p = Pca::fit(&train.narrow(0, 0, n), k);
        let v = val.flatten(1, -1);
        let (m, d) = (v.size()[0], v.size()[1]);
        let mut se = 0.0;
        let mut start = 0;
        while start < m {
            let len = 4096.min(m - start);
            let c = v.narrow(0, start, len).to_kind(Kind::Double);
            let r = p.reconstruct(&p.project(&c));
            se += f64::try_from((r - c).square().sum(Kind::Double)).unwrap_or(f64::NAN);
            start += len;
        }
        se / (m * d).max(1) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_plane_exactly() {
        tch::manual_seed(0);
        // points on a 2-d plane in 5-d: rank-2 PCA reconstructs them to rounding error
        let z = Tensor::randn([200, 2], (Kind::Float, tch::Device::Cpu));
        let a = Tensor::randn([2, 5], (Kind::Float, tch::Device::Cpu));
        let x = z.matmul(&a) + 3.0;
        assert!(baseline_mse(&x, &x, 2, 1000) < 1e-10);
        let p = Pca::fit(&x, 2);
        assert!((p.explained.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // one component is not enough
        assert!(baseline_mse(&x, &x, 1, 1000) > 1e-3);
    }
}
