//! The textbook case: points in `features` dimensions lying on an `intrinsic`-
//! dimensional subspace (linear), or on a smooth curved image of one (nonlinear),
//! plus Gaussian noise. Seeded, so a file reproduces the same points exactly.
use crate::config::{DataConfig, Manifold};
use tch::{Device, Kind, Tensor};

pub fn generate(d: &DataConfig, seed: u64) -> Tensor {
    tch::manual_seed(seed as i64 ^ 0x5EED);
    let opts = (Kind::Float, Device::Cpu);
    // z: [N, k] codes, a: [k, D] a random basis scaled so features have unit variance
    let z = Tensor::randn([d.samples, d.intrinsic], opts);
    let a = Tensor::randn([d.intrinsic, d.features], opts) / (d.intrinsic as f64).sqrt();
    let x = match d.manifold {
        Manifold::Linear => z.matmul(&a),
        Manifold::Nonlinear => {
            // a smooth bend of the subspace: sin of one projection plus a quadratic term
            let b = Tensor::randn([d.intrinsic, d.features], opts) / (d.intrinsic as f64).sqrt();
            z.matmul(&a).sin() + 0.5 * z.matmul(&b).tanh()
        }
    };
    if d.noise > 0.0 {
        x + d.noise * Tensor::randn([d.samples, d.features], opts)
    } else {
        x
    }
}
