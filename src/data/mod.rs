//! Data sources → one [`Dataset`]: float32 samples, optional integer labels, a
//! training and a validation split. Every source is read on the CPU; the trainer
//! moves the tensors to the device once.
mod csv;
mod idx;
mod npy;
mod synthetic;

use crate::config::{Experiment, Scale, Source, Validation};
use crate::error::InputError;
use anyhow::Result;
use std::path::Path;
use tch::{Kind, Tensor};

pub use idx::read_idx;
pub use npy::read_array;

pub struct Dataset {
    /// [N, *sample_shape], float32
    pub train_x: Tensor,
    /// [N], int64
    pub train_y: Option<Tensor>,
    /// [M, *sample_shape], float32
    pub val_x: Tensor,
    /// [M], int64
    pub val_y: Option<Tensor>,
    /// [D] for tabular data, [C, H, W] for images.
    pub sample_shape: Vec<i64>,
    pub class_names: Option<Vec<String>>,
    /// One line for logs and summary.json.
    pub description: String,
}

impl Dataset {
    pub fn is_image(&self) -> bool {
        self.sample_shape.len() == 3
    }
    pub fn features(&self) -> i64 {
        self.sample_shape.iter().product()
    }
}

/// Load the data the experiment names. `base` is the experiment file's folder.
pub fn load(exp: &Experiment, base: Option<&Path>) -> Result<Dataset> {
    let d = &exp.data;
    let validation = d.validation()?;
    let path = match (&d.path, d.source) {
        (Some(p), _) => Some(crate::config::expand_path(p, base)?),
        (None, Source::Idx) => Some(default_idx_path()),
        (None, _) => None,
    };
    if let Some(p) = &path {
        if !p.exists() {
            let hint = if d.source == Source::Idx && d.path.is_none() {
                " (the default Fashion-MNIST folder; run scripts/setup to fetch it, or set data.path)"
            } else {
                ""
            };
            return Err(InputError::new(format!(
                "data.path: {} does not exist{hint}",
                p.display()
            ))
            .into());
        }
    }
    let mut ds = match d.source {
        Source::Idx => idx::load(
            path.as_deref().unwrap_or(Path::new(".")),
            validation,
            exp.seed,
        )?,
        Source::Csv => {
            let p = path.as_deref().unwrap_or(Path::new("."));
            let (x, y) = csv::load(p, d.header, d.label_column.as_deref())?;
            split(
                x,
                y,
                vec![],
                validation,
                exp.seed,
                format!("csv {}", p.display()),
            )?
        }
        Source::Npy => {
            let p = path.as_deref().unwrap_or(Path::new("."));
            let labels = match &d.labels {
                Some(l) => Some(crate::config::expand_path(l, base)?),
                None => None,
            };
            let (x, y, shape) = npy::load(p, labels.as_deref())?;
            split(
                x,
                y,
                shape,
                validation,
                exp.seed,
                format!("npy {}", p.display()),
            )?
        }
        Source::Synthetic => {
            let x = synthetic::generate(d, exp.seed);
            let v = if validation == Validation::Test {
                Validation::Fraction(0.2)
            } else {
                validation
            };
            let desc = format!(
                "synthetic: {} points in {} dimensions on a {}-d {:?} manifold, noise {}",
                d.samples, d.features, d.intrinsic, d.manifold, d.noise
            )
            .to_lowercase();
            split(x, None, vec![], v, exp.seed, desc)?
        }
    };
    if let Some(limit) = d.limit {
        ds.train_x = cap(&ds.train_x, limit);
        ds.train_y = ds.train_y.map(|y| cap(&y, limit));
        let vlimit = (limit / 6).max(100);
        ds.val_x = cap(&ds.val_x, vlimit);
        ds.val_y = ds.val_y.map(|y| cap(&y, vlimit));
    }
    apply_scale(&mut ds, d.scale)?;
    if let Some(names) = exp.class_names()? {
        ds.class_names = Some(names);
    } else if ds.class_names.is_none() && d.source == Source::Idx {
        let p = path
            .map(|p| p.display().to_string().to_lowercase())
            .unwrap_or_default();
        ds.class_names = Some(if p.contains("fashion") {
            crate::config::fashion_names()
        } else {
            (0..10).map(|i| i.to_string()).collect()
        });
    }
    if ds.train_x.size()[0] < 1 || ds.val_x.size()[0] < 1 {
        return Err(InputError::new(format!(
            "data: {} gives {} training and {} validation samples; both must be at least 1",
            ds.description,
            ds.train_x.size()[0],
            ds.val_x.size()[0]
        ))
        .into());
    }
    Ok(ds)
}

pub fn default_idx_path() -> std::path::PathBuf {
    let base = std::env::var("AELAB_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            let cache = std::env::var("AELAB_CACHE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| {
                    let xdg = std::env::var("XDG_CACHE_HOME").map(std::path::PathBuf::from);
                    xdg.unwrap_or_else(|_| {
                        std::path::PathBuf::from(
                            std::env::var("HOME").unwrap_or_else(|_| ".".into()),
                        )
                        .join(".cache")
                    })
                    .join("aelab")
                });
            cache.join("data")
        });
    base.join("fashion-mnist")
}

fn cap(t: &Tensor, n: i64) -> Tensor {
    let len = t.size()[0];
    if len > n {
        t.narrow(0, 0, n)
    } else {
        t.shallow_clone()
    }
}

/// Split samples into training and validation by a seeded permutation.
fn split(
    x: Tensor,
    y: Option<Tensor>,
    shape: Vec<i64>,
    v: Validation,
    seed: u64,
    description: String,
) -> Result<Dataset> {
    let n = x.size()[0];
    let frac = match v {
        Validation::Fraction(f) => f,
        Validation::Test => {
            return Err(InputError::new(format!(
                "data.validation: {description} has no test split; give a fraction like 0.1"
            ))
            .into())
        }
    };
    let n_val = ((n as f64) * frac).round().max(1.0) as i64;
    if n_val >= n {
        return Err(InputError::new(format!(
            "data.validation: a fraction of {frac} of {n} samples leaves nothing to train on"
        ))
        .into());
    }
    // randperm draws from the global generator: seed it for a reproducible split.
    tch::manual_seed(seed as i64);
    let perm = tch::Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu));
    let val_idx = perm.narrow(0, 0, n_val);
    let train_idx = perm.narrow(0, n_val, n - n_val);
    let sample_shape = if shape.is_empty() {
        x.size()[1..].to_vec()
    } else {
        shape
    };
    Ok(Dataset {
        train_x: x.index_select(0, &train_idx),
        val_x: x.index_select(0, &val_idx),
        train_y: y.as_ref().map(|y| y.index_select(0, &train_idx)),
        val_y: y.as_ref().map(|y| y.index_select(0, &val_idx)),
        sample_shape,
        class_names: None,
        description,
    })
}

fn apply_scale(ds: &mut Dataset, scale: Scale) -> Result<()> {
    let flat = |t: &Tensor| t.flatten(1, -1);
    match scale {
        Scale::None => {}
        Scale::Standardize => {
            let tx = flat(&ds.train_x);
            let mean = tx.mean_dim(0, true, Kind::Float);
            let std = tx.std_dim(0, false, true).clamp_min(1e-8);
            ds.train_x = ((tx - &mean) / &std).view_(ds.train_x.size());
            ds.val_x = ((flat(&ds.val_x) - &mean) / &std).view_(ds.val_x.size());
        }
        Scale::Minmax => {
            let tx = flat(&ds.train_x);
            let lo = tx.amin(0, true);
            let span = (tx.amax(0, true) - &lo).clamp_min(1e-8);
            ds.train_x = ((tx - &lo) / &span).view_(ds.train_x.size());
            ds.val_x = ((flat(&ds.val_x) - &lo) / &span).view_(ds.val_x.size());
        }
    }
    Ok(())
}

trait ViewAs {
    fn view_(self, size: Vec<i64>) -> Tensor;
}
impl ViewAs for Tensor {
    fn view_(self, size: Vec<i64>) -> Tensor {
        self.reshape(size)
    }
}

/// Check that labels match the samples in number.
pub(crate) fn check_labels(n: i64, y: &Tensor, what: &str) -> Result<()> {
    let m = y.size().first().copied().unwrap_or(0);
    if y.dim() != 1 || m != n {
        return Err(InputError::new(format!(
            "{what}: {m} labels (shape {:?}) for {n} samples; there must be one label per sample",
            y.size()
        ))
        .into());
    }
    Ok(())
}
