//! checkpoint/state.safetensors: weights, optimizer state, best weights, and the
//! loop's own state (epoch, step, schedule, early stopping, metrics so far) as JSON
//! metadata. One file, written atomically: SIGKILL at any moment leaves either the
//! previous checkpoint or the new one. The random state needs no saving: every
//! step reseeds from (seed, epoch, step).
use crate::metrics::{self, Row};
use crate::model::Model;
use crate::optim::Optimizer;
use anyhow::{anyhow, Context, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

#[derive(Default, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs finished (the next epoch to run, counting from 0).
    pub epoch: i64,
    /// Steps finished within `epoch` (non-zero only after an interruption).
    pub step: i64,
    pub opt_step: i64,
    pub plateau_lr: Option<f64>,
    pub plateau_best: Option<f64>,
    pub plateau_wait: i64,
    pub best_val: Option<f64>,
    pub best_epoch: Option<i64>,
    pub es_wait: i64,
    pub stopped_early: bool,
    pub metrics_csv: String,
    #[serde(skip)]
    pub rows: Vec<Row>,
    /// Sum of the training loss over the finished steps of `epoch`.
    #[serde(skip)]
    pub loss_sum: Option<Tensor>,
    #[serde(skip)]
    pub best_weights: Option<Vec<Tensor>>,
}

pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint").join("state.safetensors")
}

fn dtype(k: Kind) -> Result<Dtype> {
    Ok(match k {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Int64 => Dtype::I64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        other => return Err(anyhow!("cannot store tensors of kind {other:?}")),
    })
}

fn kind(d: Dtype) -> Result<Kind> {
    Ok(match d {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        other => return Err(anyhow!("unsupported dtype {other:?}")),
    })
}

/// Serialise named tensors (and string metadata) to safetensors bytes.
pub fn to_bytes(
    tensors: &[(String, Tensor)],
    meta: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut bufs = vec![];
    for (name, t) in tensors {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let n = t.numel();
        let mut buf = vec![0u8; n * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut buf, n);
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        bufs.push((name.clone(), dtype(t.kind())?, shape, buf));
    }
    let views = bufs
        .iter()
        .map(|(n, d, s, b)| {
            Ok((
                n.clone(),
                TensorView::new(*d, s.clone(), b).map_err(|e| anyhow!("{e:?}"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, &meta).map_err(|e| anyhow!("cannot serialise tensors: {e:?}"))
}

/// Named tensors and metadata from safetensors bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("not a valid safetensors file: {e:?}"))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        out.insert(
            name,
            Tensor::from_data_size(view.data(), &shape, kind(view.dtype())?),
        );
    }
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| anyhow!("bad safetensors header: {e:?}"))?;
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

pub fn save(run_dir: &Path, model: &Model, opt: &Optimizer, state: &TrainState) -> Result<()> {
    let dir = run_dir.join("checkpoint");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let params = model.named_parameters();
    let mut tensors: Vec<(String, Tensor)> = params
        .iter()
        .map(|(n, t)| (format!("model.{n}"), t.shallow_clone()))
        .collect();
    tensors.extend(opt.state());
    if let Some(best) = &state.best_weights {
        for ((n, _), t) in params.iter().zip(best) {
            tensors.push((format!("best.{n}"), t.shallow_clone()));
        }
    }
    if let Some(l) = &state.loss_sum {
        tensors.push(("loop.loss_sum".into(), l.shallow_clone()));
    }
    let mut st = serde_json::to_value(state)?;
    st["metrics_csv"] = serde_json::Value::String(metrics::to_csv(&state.rows));
    let meta = HashMap::from([("aelab_state".to_string(), st.to_string())]);
    crate::util::write_atomic(&path(run_dir), &to_bytes(&tensors, Some(meta))?)
}

/// Restore model and optimizer from a run's checkpoint; returns the loop state.
pub fn load(run_dir: &Path, model: &Model, opt: &mut Optimizer) -> Result<TrainState> {
    let p = path(run_dir);
    let bytes =
        std::fs::read(&p).with_context(|| format!("cannot read the checkpoint {}", p.display()))?;
    let (tensors, meta) =
        from_bytes(&bytes).with_context(|| format!("checkpoint {} is damaged", p.display()))?;
    let json = meta
        .get("aelab_state")
        .ok_or_else(|| anyhow!("{} has no aelab state", p.display()))?;
    let mut state: TrainState = serde_json::from_str(json)?;
    state.rows = metrics::from_csv(&state.metrics_csv)?;
    let device = model.vs.device();
    let params = model.named_parameters();
    tch::no_grad(|| -> Result<()> {
        for (n, t) in &params {
            let src = tensors
                .get(&format!("model.{n}"))
                .ok_or_else(|| anyhow!("checkpoint lacks model.{n}"))?;
            t.shallow_clone().copy_(&src.to_device(device));
        }
        Ok(())
    })?;
    opt.restore(
        &|k| tensors.get(k).map(|t| t.to_device(device)),
        state.opt_step,
    )?;
    if tensors.contains_key(&format!(
        "best.{}",
        params.first().map(|p| p.0.as_str()).unwrap_or("")
    )) {
        state.best_weights = Some(
            params
                .iter()
                .filter_map(|(n, _)| {
                    tensors
                        .get(&format!("best.{n}"))
                        .map(|t| t.to_device(device))
                })
                .collect(),
        );
    }
    state.loss_sum = tensors.get("loop.loss_sum").map(|t| t.to_device(device));
    Ok(state)
}
