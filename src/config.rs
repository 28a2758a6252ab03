//! The experiment file: one struct per YAML section, unknown keys rejected,
//! defaults filled in. `load` reads a file (plus `--set` overrides) and
//! `Experiment::check` rejects values that cannot work, naming the key.
//!
//! serde_yaml is archived upstream; it is used in this file only, so swapping it
//! touches nothing else.
use crate::error::InputError;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Run directory name under the output folder.
    pub name: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// auto | cpu | cuda | cuda:N
    #[serde(default = "default_device")]
    pub device: String,
    pub data: DataConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub noise: Option<NoiseConfig>,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub plots: PlotConfig,
    #[serde(default)]
    pub export: ExportConfig,
}

fn default_seed() -> u64 {
    42
}
fn default_device() -> String {
    "auto".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Idx,
    Csv,
    Npy,
    Synthetic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Leave values as they are (idx and integer images are always scaled to [0, 1]).
    None,
    /// Zero mean, unit variance per feature (statistics from the training split).
    Standardize,
    /// Each feature to [0, 1] (statistics from the training split).
    Minmax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Manifold {
    Linear,
    Nonlinear,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: Source,
    /// idx: folder with the four MNIST-format files; csv/npy: the file.
    #[serde(default)]
    pub path: Option<String>,
    /// npy: an optional labels file (one integer per sample).
    #[serde(default)]
    pub labels: Option<String>,
    /// csv: the column holding labels (its header name, or its 0-based index).
    #[serde(default)]
    pub label_column: Option<String>,
    /// csv: whether the first row is a header.
    #[serde(default = "yes")]
    pub header: bool,
    #[serde(default = "default_scale")]
    pub scale: Scale,
    /// `test` (the source's test split) or a fraction of the training data, like 0.1.
    #[serde(default = "default_validation")]
    pub validation: serde_yaml::Value,
    /// Cap on training samples (and on validation samples, at a sixth of it at least 100).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Class names for plots: `fashion`, `digits`, or a list. Default: guessed from the path.
    #[serde(default)]
    pub classes: Option<serde_yaml::Value>,
    /// synthetic: number of samples.
    #[serde(default = "default_samples")]
    pub samples: i64,
    /// synthetic: number of features.
    #[serde(default = "default_features")]
    pub features: i64,
    /// synthetic: dimension of the subspace the points lie on.
    #[serde(default = "default_intrinsic")]
    pub intrinsic: i64,
    /// synthetic: linear subspace or a smooth nonlinear map of it.
    #[serde(default = "default_manifold")]
    pub manifold: Manifold,
    /// synthetic: standard deviation of the added noise.
    #[serde(default)]
    pub noise: f64,
}

fn yes() -> bool {
    true
}
fn default_scale() -> Scale {
    Scale::None
}
fn default_validation() -> serde_yaml::Value {
    serde_yaml::Value::String("test".into())
}
fn default_samples() -> i64 {
    2000
}
fn default_features() -> i64 {
    10
}
fn default_intrinsic() -> i64 {
    4
}
fn default_manifold() -> Manifold {
    Manifold::Linear
}

/// How the validation split is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validation {
    Test,
    Fraction(f64),
}

impl DataConfig {
    pub fn validation(&self) -> Result<Validation> {
        match &self.validation {
            serde_yaml::Value::String(s) if s == "test" => Ok(Validation::Test),
            serde_yaml::Value::Number(n) => match n.as_f64() {
                Some(f) if f > 0.0 && f < 1.0 => Ok(Validation::Fraction(f)),
                _ => Err(bad(
                    "data.validation",
                    format!("a fraction must lie strictly between 0 and 1, got {n}"),
                )),
            },
            other => Err(bad(
                "data.validation",
                format!(
                    "expected `test` or a fraction like 0.1, got {}",
                    show(other)
                ),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Mlp,
    Conv,
    Vae,
    ConvVae,
    Torchscript,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    None,
    Relu,
    LeakyRelu,
    Elu,
    Gelu,
    Tanh,
    Sigmoid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// The decoder's last layer is squashed to [0, 1]; pairs with bce or mse.
    Sigmoid,
    /// The decoder's last layer is used as it is; pairs with mse.
    Linear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsample {
    /// Nearest-neighbour upsampling followed by a convolution (no checkerboard artifacts).
    Nearest,
    /// Transposed convolution with stride 2.
    Transposed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// mlp, vae: hidden layer sizes from the input towards the code.
    #[serde(default)]
    pub hidden: Vec<i64>,
    /// Size of the code. Optional for conv (then the code is the last feature map).
    #[serde(default)]
    pub latent: Option<i64>,
    #[serde(default = "default_activation")]
    pub activation: Activation,
    /// Activation applied to the code itself (mlp, conv).
    #[serde(default = "default_latent_activation")]
    pub latent_activation: Activation,
    #[serde(default = "default_output")]
    pub output: Output,
    /// conv, conv_vae: channels of each conv + max-pool stage.
    #[serde(default = "default_channels")]
    pub channels: Vec<i64>,
    /// conv, conv_vae: square kernel size (odd).
    #[serde(default = "default_kernel")]
    pub kernel: i64,
    #[serde(default = "default_upsample")]
    pub upsample: Upsample,
    /// torchscript: the encoder module's file.
    #[serde(default)]
    pub encoder: Option<String>,
    /// torchscript: the decoder module's file.
    #[serde(default)]
    pub decoder: Option<String>,
    /// Start from these weights: a TorchScript module (.pt), a safetensors file, or a run directory.
    #[serde(default)]
    pub init_from: Option<String>,
}

fn default_activation() -> Activation {
    Activation::Relu
}
fn default_latent_activation() -> Activation {
    Activation::None
}
fn default_output() -> Output {
    Output::Sigmoid
}
fn default_channels() -> Vec<i64> {
    vec![16, 8, 8]
}
fn default_kernel() -> i64 {
    3
}
fn default_upsample() -> Upsample {
    Upsample::Nearest
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Binary cross-entropy on the decoder's logits (numerically stable); needs output: sigmoid.
    Bce,
    /// Mean squared error.
    Mse,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    #[serde(default = "default_loss")]
    pub kind: LossKind,
    /// vae: weight of the KL term.
    #[serde(default = "one")]
    pub beta: f64,
    /// Weight of an L1 penalty on the code (sparse autoencoder); 0 turns it off.
    #[serde(default)]
    pub sparsity: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: default_loss(),
            beta: 1.0,
            sparsity: 0.0,
        }
    }
}
fn default_loss() -> LossKind {
    LossKind::Bce
}
fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    /// x + factor · N(0, 1), clipped to [0, 1] for sigmoid outputs.
    Gaussian,
    /// Each input value set to 0 with probability `factor`.
    Masking,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseConfig {
    pub kind: NoiseKind,
    pub factor: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    #[serde(default = "default_optimizer")]
    pub kind: OptimizerKind,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// sgd: momentum.
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// adam, adamw: (beta1, beta2).
    #[serde(default = "default_betas")]
    pub betas: (f64, f64),
    #[serde(default = "default_eps")]
    pub eps: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: default_optimizer(),
            lr: default_lr(),
            weight_decay: 0.0,
            momentum: default_momentum(),
            betas: default_betas(),
            eps: default_eps(),
        }
    }
}
fn default_optimizer() -> OptimizerKind {
    OptimizerKind::Adam
}
fn default_lr() -> f64 {
    1e-3
}
fn default_momentum() -> f64 {
    0.9
}
fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn default_eps() -> f64 {
    1e-8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    None,
    /// lr · gamma every `step_size` epochs.
    Step,
    /// Cosine decay from lr to `min_lr` over the run.
    Cosine,
    /// lr · gamma when the validation loss has not improved for `plateau_patience` epochs.
    Plateau,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    pub patience: i64,
    #[serde(default)]
    pub min_delta: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default = "default_epochs")]
    pub epochs: i64,
    #[serde(default = "default_batch")]
    pub batch_size: i64,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    #[serde(default = "default_step_size")]
    pub step_size: i64,
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    #[serde(default = "default_plateau_patience")]
    pub plateau_patience: i64,
    #[serde(default)]
    pub min_lr: f64,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub grad_clip: Option<f64>,
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[serde(default)]
    pub threads: Option<i64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: default_epochs(),
            batch_size: default_batch(),
            optimizer: OptimizerConfig::default(),
            schedule: default_schedule(),
            step_size: default_step_size(),
            gamma: default_gamma(),
            plateau_patience: default_plateau_patience(),
            min_lr: 0.0,
            grad_clip: None,
            early_stopping: None,
            threads: None,
        }
    }
}
fn default_epochs() -> i64 {
    10
}
fn default_batch() -> i64 {
    128
}
fn default_schedule() -> Schedule {
    Schedule::None
}
fn default_step_size() -> i64 {
    10
}
fn default_gamma() -> f64 {
    0.5
}
fn default_plateau_patience() -> i64 {
    3
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Projection {
    Pca,
    Tsne,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentPlot {
    #[serde(default = "default_projection")]
    pub method: Projection,
    /// At most this many validation codes are drawn (t-SNE: keep it to a few thousand).
    #[serde(default = "default_points")]
    pub points: i64,
}

impl Default for LatentPlot {
    fn default() -> Self {
        LatentPlot {
            method: default_projection(),
            points: default_points(),
        }
    }
}
fn default_projection() -> Projection {
    Projection::Pca
}
fn default_points() -> i64 {
    3000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub latent: LatentPlot,
    /// How many validation samples the reconstruction grid shows.
    #[serde(default = "default_recon")]
    pub reconstructions: i64,
}

impl Default for PlotConfig {
    fn default() -> Self {
        PlotConfig {
            enabled: true,
            latent: LatentPlot::default(),
            reconstructions: default_recon(),
        }
    }
}
fn default_recon() -> i64 {
    10
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Write encoder.pt, decoder.pt and autoencoder.pt after training.
    #[serde(default = "yes")]
    pub torchscript: bool,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig { torchscript: true }
    }
}

// ------------------------------------------------------------------ loading

fn bad(key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    InputError::new(format!("{key}: {msg}")).into()
}

fn show(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Read an experiment file, apply `--set key.path=value` overrides, check it.
pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("{file}: cannot read the experiment file: {e}")))?;
    let exp = parse(&text, overrides).map_err(|e| InputError::new(format!("{file}: {e:#}")))?;
    exp.check()
        .map_err(|e| InputError::new(format!("{file}: {e:#}")))?;
    Ok(exp)
}

/// Parse YAML text into an experiment (no semantic checks).
pub fn parse(text: &str, overrides: &[String]) -> Result<Experiment> {
    if text.trim().is_empty() {
        return Err(InputError::new(
            "the file is empty; an experiment needs at least name, data and model",
        )
        .into());
    }
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| InputError::new(format!("not valid YAML: {e}")))?;
    if !value.is_mapping() {
        return Err(InputError::new(format!(
            "expected a mapping of keys (name:, data:, model:, ...) at the top level, got {}",
            kind_of(&value)
        ))
        .into());
    }
    let result = if overrides.is_empty() {
        // From the text, so errors carry line numbers.
        serde_yaml::from_str::<Experiment>(text)
    } else {
        let mut value = value;
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        serde_yaml::from_value::<Experiment>(value)
    };
    result.map_err(|e| InputError::new(explain_serde(&e.to_string())).into())
}

fn kind_of(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

/// serde's messages, plus "did you mean" for unknown keys and variants.
fn explain_serde(msg: &str) -> String {
    let mut out = msg.to_string();
    let unknown = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|p| msg.find(p).map(|i| (i + p.len(), p)));
    if let Some((start, _)) = unknown {
        let rest = &msg[start..];
        if let Some(end) = rest.find('`') {
            let word = &rest[..end];
            let candidates: Vec<&str> = rest[end + 1..]
                .split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s)
                .collect();
            if let Some(best) = candidates
                .iter()
                .map(|c| (edit_distance(word, c), *c))
                .filter(|(d, c)| *d <= 2.max(c.len() / 3))
                .min()
            {
                out.push_str(&format!(" (did you mean `{}`?)", best.1));
            }
        }
    }
    out
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `train.epochs=3` sets value["train"]["epochs"] = 3 (the value is read as YAML).
pub fn apply_override(root: &mut serde_yaml::Value, spec: &str) -> Result<()> {
    let (key, raw) = spec.split_once('=').ok_or_else(|| {
        InputError::new(format!(
            "--set {spec}: expected key.path=value, like train.epochs=5"
        ))
    })?;
    let value: serde_yaml::Value = serde_yaml::from_str(raw)
        .map_err(|e| InputError::new(format!("--set {spec}: the value is not valid YAML: {e}")))?;
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(
            InputError::new(format!("--set {spec}: empty part in key path `{key}`")).into(),
        );
    }
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        if cur.is_null() {
            *cur = serde_yaml::Value::Mapping(Default::default());
        }
        let map = cur.as_mapping_mut().ok_or_else(|| {
            InputError::new(format!(
                "--set {spec}: `{}` is not a mapping, so it has no key `{part}`",
                parts[..i].join(".")
            ))
        })?;
        let k = serde_yaml::Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        cur = map.entry(k).or_insert(serde_yaml::Value::Null);
    }
    Ok(())
}

impl Experiment {
    /// Reject values that cannot work, before any data is read.
    pub fn check(&self) -> Result<()> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !self.name.starts_with('.');
        if !name_ok {
            return Err(bad(
                "name",
                format!(
                    "`{}` must be a non-empty folder name of letters, digits, '-', '_' or '.'",
                    self.name
                ),
            ));
        }
        parse_device(&self.device)?;
        let d = &self.data;
        d.validation()?;
        if let Some(l) = d.limit {
            if l < 1 {
                return Err(bad("data.limit", format!("must be at least 1, got {l}")));
            }
        }
        match d.source {
            Source::Csv | Source::Npy if d.path.is_none() => {
                return Err(bad(
                    "data.path",
                    "is required for csv and npy data (the file to read)",
                ));
            }
            Source::Synthetic => {
                positive("data.samples", d.samples)?;
                positive("data.features", d.features)?;
                positive("data.intrinsic", d.intrinsic)?;
                if d.intrinsic > d.features {
                    return Err(bad(
                        "data.intrinsic",
                        format!(
                            "must not exceed data.features ({}), got {}",
                            d.features, d.intrinsic
                        ),
                    ));
                }
                if d.samples < 10 {
                    return Err(bad(
                        "data.samples",
                        format!("must be at least 10, got {}", d.samples),
                    ));
                }
                if !(d.noise >= 0.0 && d.noise.is_finite()) {
                    return Err(bad(
                        "data.noise",
                        format!("must be zero or positive, got {}", d.noise),
                    ));
                }
            }
            _ => {}
        }
        let m = &self.model;
        if let Some(l) = m.latent {
            positive("model.latent", l)?;
        }
        for (i, h) in m.hidden.iter().enumerate() {
            positive(&format!("model.hidden[{i}]"), *h)?;
        }
        match m.kind {
            ModelKind::Mlp | ModelKind::Vae | ModelKind::ConvVae if m.latent.is_none() => {
                return Err(bad(
                    "model.latent",
                    format!("is required for kind {:?} (the size of the code)", m.kind)
                        .to_lowercase(),
                ));
            }
            ModelKind::Conv | ModelKind::ConvVae => {
                if m.channels.is_empty() {
                    return Err(bad(
                        "model.channels",
                        "needs at least one stage, like [16, 8, 8]",
                    ));
                }
                for (i, c) in m.channels.iter().enumerate() {
                    positive(&format!("model.channels[{i}]"), *c)?;
                }
                if m.kernel < 1 || m.kernel % 2 == 0 {
                    return Err(bad(
                        "model.kernel",
                        format!("must be a positive odd number, got {}", m.kernel),
                    ));
                }
            }
            ModelKind::Torchscript => {
                if m.encoder.is_none() || m.decoder.is_none() {
                    return Err(bad("model.encoder", "kind torchscript needs both model.encoder and model.decoder (paths to TorchScript modules)"));
                }
            }
            _ => {}
        }
        if self.loss.kind == LossKind::Bce && m.output == Output::Linear {
            return Err(bad("loss.kind", "bce needs model.output: sigmoid (targets in [0, 1]); use loss.kind: mse for linear outputs"));
        }
        if !(self.loss.beta >= 0.0 && self.loss.beta.is_finite()) {
            return Err(bad(
                "loss.beta",
                format!("must be zero or positive, got {}", self.loss.beta),
            ));
        }
        if !(self.loss.sparsity >= 0.0 && self.loss.sparsity.is_finite()) {
            return Err(bad(
                "loss.sparsity",
                format!("must be zero or positive, got {}", self.loss.sparsity),
            ));
        }
        if let Some(n) = &self.noise {
            let ok = match n.kind {
                NoiseKind::Gaussian => n.factor > 0.0 && n.factor.is_finite(),
                NoiseKind::Masking => n.factor > 0.0 && n.factor < 1.0,
            };
            if !ok {
                return Err(bad(
                    "noise.factor",
                    format!("must be > 0 (and < 1 for masking), got {}", n.factor),
                ));
            }
        }
        let t = &self.train;
        if t.epochs < 0 || (t.epochs == 0 && m.init_from.is_none()) {
            return Err(bad("train.epochs", format!("must be at least 1 (0 is allowed only with model.init_from, to evaluate), got {}", t.epochs)));
        }
        positive("train.batch_size", t.batch_size)?;
        let o = &t.optimizer;
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return Err(bad(
                "train.optimizer.lr",
                format!("must be a positive number, got {}", o.lr),
            ));
        }
        if !(o.weight_decay >= 0.0) {
            return Err(bad(
                "train.optimizer.weight_decay",
                format!("must be zero or positive, got {}", o.weight_decay),
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(bad(
                "train.optimizer.momentum",
                format!("must lie in [0, 1), got {}", o.momentum),
            ));
        }
        if !((0.0..1.0).contains(&o.betas.0) && (0.0..1.0).contains(&o.betas.1)) {
            return Err(bad(
                "train.optimizer.betas",
                format!(
                    "both must lie in [0, 1), got [{}, {}]",
                    o.betas.0, o.betas.1
                ),
            ));
        }
        if !(o.eps > 0.0) {
            return Err(bad(
                "train.optimizer.eps",
                format!("must be positive, got {}", o.eps),
            ));
        }
        positive("train.step_size", t.step_size)?;
        if !(t.gamma > 0.0 && t.gamma <= 1.0) {
            return Err(bad(
                "train.gamma",
                format!("must lie in (0, 1], got {}", t.gamma),
            ));
        }
        positive("train.plateau_patience", t.plateau_patience)?;
        if !(t.min_lr >= 0.0 && t.min_lr <= o.lr) {
            return Err(bad(
                "train.min_lr",
                format!("must lie in [0, lr], got {}", t.min_lr),
            ));
        }
        if let Some(c) = t.grad_clip {
            if !(c > 0.0) {
                return Err(bad("train.grad_clip", format!("must be positive, got {c}")));
            }
        }
        if let Some(es) = &t.early_stopping {
            positive("train.early_stopping.patience", es.patience)?;
            if !(es.min_delta >= 0.0) {
                return Err(bad(
                    "train.early_stopping.min_delta",
                    format!("must be zero or positive, got {}", es.min_delta),
                ));
            }
        }
        if let Some(th) = t.threads {
            positive("train.threads", th)?;
        }
        positive("plots.latent.points", self.plots.latent.points)?;
        if self.plots.reconstructions < 0 {
            return Err(bad(
                "plots.reconstructions",
                format!("must be zero or more, got {}", self.plots.reconstructions),
            ));
        }
        Ok(())
    }

    pub fn to_yaml(&self) -> Result<String> {
        Ok(serde_yaml::to_string(self)?)
    }

    /// Class names for plots, when the file names them.
    pub fn class_names(&self) -> Result<Option<Vec<String>>> {
        match &self.data.classes {
            None => Ok(None),
            Some(serde_yaml::Value::String(s)) if s == "fashion" => Ok(Some(fashion_names())),
            Some(serde_yaml::Value::String(s)) if s == "digits" => {
                Ok(Some((0..10).map(|i| i.to_string()).collect()))
            }
            Some(v @ serde_yaml::Value::Sequence(_)) => {
                serde_yaml::from_value::<Vec<String>>(v.clone())
                    .map(Some)
                    .map_err(|e| bad("data.classes", format!("expected a list of names: {e}")))
            }
            Some(v) => Err(bad(
                "data.classes",
                format!(
                    "expected `fashion`, `digits` or a list of names, got {}",
                    show(v)
                ),
            )),
        }
    }
}

pub fn fashion_names() -> Vec<String> {
    [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn positive(key: &str, v: i64) -> Result<()> {
    if v < 1 {
        return Err(bad(key, format!("must be at least 1, got {v}")));
    }
    Ok(())
}

/// The device a `device:` string asks for; None means auto.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeviceSpec {
    Auto,
    Cpu,
    Cuda(usize),
}

pub fn parse_device(s: &str) -> Result<DeviceSpec> {
    match s {
        "auto" => Ok(DeviceSpec::Auto),
        "cpu" => Ok(DeviceSpec::Cpu),
        "cuda" => Ok(DeviceSpec::Cuda(0)),
        _ => match s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => Ok(DeviceSpec::Cuda(n)),
            None => Err(bad(
                "device",
                format!("expected auto, cpu, cuda or cuda:N, got `{s}`"),
            )),
        },
    }
}

/// Expand `~` and `${VAR}` in a path from the experiment file. Relative paths are
/// taken relative to the experiment file's folder when they exist there, else to
/// the working directory.
pub fn expand_path(raw: &str, base: Option<&Path>) -> Result<PathBuf> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| InputError::new(format!("path `{raw}`: unclosed ${{")))?;
        let var = &after[..end];
        let val = std::env::var(var).map_err(|_| {
            InputError::new(format!(
                "path `{raw}` uses ${{{var}}}, but that environment variable is not set"
            ))
        })?;
        out.push_str(&val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if out == "~" || out.starts_with("~/") {
        if let Ok(home) = std::env::var("HOME") {
            out = format!("{home}{}", &out[1..]);
        }
    }
    let p = PathBuf::from(&out);
    if p.is_relative() {
        if let Some(b) = base {
            let joined = b.join(&p);
            if joined.exists() {
                return Ok(joined);
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "name: t\ndata: {source: synthetic}\nmodel: {kind: mlp, latent: 2, output: linear}\nloss: {kind: mse}\n";

    #[test]
    fn minimal_file_gets_defaults() {
        let e = parse(MIN, &[]).unwrap();
        e.check().unwrap();
        assert_eq!(e.train.epochs, 10);
        assert_eq!(e.seed, 42);
    }

    #[test]
    fn unknown_key_suggests_nearest() {
        let err = parse(&MIN.replace("latent: 2", "latnt: 2"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("latnt") && err.contains("did you mean `latent`"),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn override_sets_nested_value() {
        let e = parse(
            MIN,
            &["train.epochs=3".into(), "train.optimizer.lr=0.01".into()],
        )
        .unwrap();
        assert_eq!(e.train.epochs, 3);
        assert_eq!(e.train.optimizer.lr, 0.01);
        let err = parse(MIN, &["name.x=1".into()]).unwrap_err().to_string();
        assert!(err.contains("not a mapping"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (set, key) in [
            ("train.epochs=0", "train.epochs"),
            ("train.batch_size=-1", "train.batch_size"),
            ("train.optimizer.lr=0", "train.optimizer.lr"),
            ("model.latent=0", "model.latent"),
            ("device=gpu", "device"),
            ("data.validation=2", "data.validation"),
        ] {
            let e = parse(MIN, &[set.into()]).unwrap();
            let err = e.check().unwrap_err().to_string();
            assert!(err.starts_with(key), "{set}: {err}");
        }
    }

    #[test]
    fn expands_env_vars() {
        std::env::set_var("AELAB_TEST_DIR", "/x");
        assert_eq!(
            expand_path("${AELAB_TEST_DIR}/y", None).unwrap(),
            PathBuf::from("/x/y")
        );
        assert!(expand_path("${AELAB_NOT_SET_EVER}/y", None).is_err());
    }
}
