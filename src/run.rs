//! `aelab run`: experiment file → data → model → training → a run directory that
//! explains itself (config.yaml, metrics.csv, summary.json, weights, codes,
//! TorchScript, plots). Nothing is created before the file, the data and the model
//! have been checked, so a bad file leaves nothing behind.
use crate::checkpoint::{self, TrainState};
use crate::config::{self, Experiment};
use crate::data::{self, Dataset};
use crate::error::InputError;
use crate::model::Model;
use crate::optim::Optimizer;
use crate::util::{self, write_atomic, write_atomic_with};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

pub struct RunOptions {
    pub out: PathBuf,
    pub overrides: Vec<String>,
    pub force: bool,
    pub quiet: bool,
}

/// Rows of validation data kept for the reconstruction plots.
const KEEP_FOR_PLOTS: i64 = 16;
/// Tabular data: validation rows kept for the per-feature error chart.
const KEEP_TABULAR: i64 = 1000;

/// Everything a run needs, checked, before anything is written.
struct Prepared {
    exp: Experiment,
    data: Dataset,
    model: Model,
    device: Device,
    device_note: String,
}

fn prepare(exp: Experiment, base: Option<&Path>) -> Result<Prepared> {
    let (device, device_note) = util::choose_device(config::parse_device(&exp.device)?)?;
    if let Some(t) = exp.train.threads {
        tch::set_num_threads(t as i32);
    }
    let data = data::load(&exp, base)?;
    // the initial weights come from the global generator: seed it, or runs differ
    tch::manual_seed(exp.seed as i64);
    let model = Model::build(&exp, &data.sample_shape, device, base)?;
    if let Some(src) = &exp.model.init_from {
        let p = config::expand_path(src, base)?;
        let params = crate::export::read_parameters(&p)?;
        crate::export::load_parameters(&model, &params, &p.display().to_string())?;
    }
    Ok(Prepared {
        exp,
        data,
        model,
        device,
        device_note,
    })
}

/// Make the paths in the experiment absolute, so the saved config.yaml works from
/// anywhere.
fn absolutise(exp: &mut Experiment, base: Option<&Path>) -> Result<()> {
    let fix = |p: &mut Option<String>| -> Result<()> {
        if let Some(s) = p {
            let path = config::expand_path(s, base)?;
            let abs = std::fs::canonicalize(&path).unwrap_or(path);
            *s = abs.display().to_string();
        }
        Ok(())
    };
    fix(&mut exp.data.path)?;
    fix(&mut exp.data.labels)?;
    fix(&mut exp.model.encoder)?;
    fix(&mut exp.model.decoder)?;
    fix(&mut exp.model.init_from)?;
    if exp.data.path.is_none() && exp.data.source == config::Source::Idx {
        exp.data.path = Some(data::default_idx_path().display().to_string());
    }
    Ok(())
}

/// Pick the run directory: `out/name`, or `out/name-2`, `-3`, … when taken, unless --force.
fn choose_dir(out: &Path, name: &str, force: bool) -> Result<(PathBuf, Option<String>)> {
    let first = out.join(name);
    if !first.exists() {
        return Ok((first, None));
    }
    if force {
        std::fs::remove_dir_all(&first)
            .with_context(|| format!("--force: cannot remove {}", first.display()))?;
        return Ok((
            first.clone(),
            Some(format!("--force: replaced {}", first.display())),
        ));
    }
    for i in 2.. {
        let p = out.join(format!("{name}-{i}"));
        if !p.exists() {
            let note = format!(
                "{} exists, so this run goes to {} (use --resume {} to continue it, or --force to replace it)",
                first.display(),
                p.display(),
                first.display()
            );
            return Ok((p, Some(note)));
        }
    }
    unreachable!()
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("plots")).map_err(|e| {
        InputError::new(format!(
            "cannot create the run directory {}: {e}; choose another with --out",
            dir.display()
        ))
    })?;
    Ok(())
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // a second signal ends the process at once
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))?;
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// Name the experiment file in an input error raised while reading its data or
/// building its model (errors from the file itself already name it).
pub fn in_file(e: anyhow::Error, file: &Path) -> anyhow::Error {
    match e.downcast_ref::<InputError>() {
        Some(i) => InputError::new(format!("{}: {}", file.display(), i.0)).into(),
        None => e,
    }
}

/// Train a new run from an experiment file. Returns the run directory.
pub fn run(file: &Path, opts: &RunOptions) -> Result<PathBuf> {
    let mut exp = config::load(file, &opts.overrides)?;
    let base = file.parent().map(Path::to_path_buf);
    absolutise(&mut exp, base.as_deref())?;
    let p = prepare(exp, base.as_deref()).map_err(|e| in_file(e, file))?;
    let (dir, note) = choose_dir(&opts.out, &p.exp.name, opts.force)?;
    create_dir(&dir)?;
    if let Some(n) = note {
        eprintln!("aelab: {n}");
    }
    write_atomic(&dir.join("config.yaml"), p.exp.to_yaml()?.as_bytes())?;
    execute(p, &dir, TrainState::default(), opts.quiet, false)?;
    Ok(dir)
}

/// Continue an interrupted run from its checkpoint.
pub fn resume(dir: &Path, opts: &RunOptions) -> Result<PathBuf> {
    let cfg = run_config(dir, "--resume: ")?;
    let exp = config::load(&cfg, &opts.overrides)?;
    if !checkpoint::path(dir).exists() {
        return Err(InputError::new(format!(
            "--resume: {} has no checkpoint (it stopped before its first epoch ended); start it again with aelab run --force",
            dir.display()
        ))
        .into());
    }
    let p = prepare(exp, Some(dir))?;
    if !opts.overrides.is_empty() {
        write_atomic(&dir.join("config.yaml"), p.exp.to_yaml()?.as_bytes())?;
    }
    execute(p, dir, TrainState::default(), opts.quiet, true)?;
    Ok(dir.to_path_buf())
}

fn execute(p: Prepared, dir: &Path, state: TrainState, quiet: bool, resuming: bool) -> Result<()> {
    let Prepared {
        exp,
        data,
        model,
        device,
        device_note,
    } = p;
    let wall = Instant::now();
    let mut opt = Optimizer::new(&exp.train.optimizer, model.named_parameters());
    let state = if resuming {
        checkpoint::load(dir, &model, &mut opt)?
    } else {
        state
    };
    if !quiet {
        eprintln!(
            "aelab: {} | device {device_note} | {} | {} train / {} validation samples of shape {:?} | {:?} model, {} parameters, code size {}",
            exp.name,
            data.description,
            data.train_x.size()[0],
            data.val_x.size()[0],
            data.sample_shape,
            exp.model.kind,
            model.parameter_count(),
            model.latent
        );
        if resuming {
            eprintln!(
                "aelab: resuming {} at epoch {}, step {}",
                dir.display(),
                state.epoch + 1,
                state.step
            );
        }
    }
    let train_x = data.train_x.to_device(device);
    let val_x = data.val_x.to_device(device);
    let stop = stop_flag()?;
    let outcome = if exp.train.epochs > 0 {
        Some(crate::train::train(
            &exp, &model, &mut opt, &train_x, &val_x, dir, state, &stop, quiet,
        )?)
    } else {
        None
    };
    finish(
        &exp,
        &model,
        &data,
        &val_x,
        dir,
        outcome,
        &device_note,
        wall.elapsed().as_secs_f64(),
        quiet,
    )
}

/// Write the weights, codes, summary, TorchScript and plots of a trained model.
#[allow(clippy::too_many_arguments)]
fn finish(
    exp: &Experiment,
    model: &Model,
    data: &Dataset,
    val_x: &Tensor,
    dir: &Path,
    outcome: Option<crate::train::Outcome>,
    device_note: &str,
    wall: f64,
    quiet: bool,
) -> Result<()> {
    let params = model.named_parameters();
    write_atomic(
        &dir.join("model.safetensors"),
        &checkpoint::to_bytes(&params, None)?,
    )?;
    // validation codes, for re-plotting without the model
    let codes = tch::no_grad(|| {
        let n = val_x.size()[0];
        let mut parts = vec![];
        let mut s = 0;
        while s < n {
            let len = 4096.min(n - s);
            parts.push(
                model
                    .encode(&val_x.narrow(0, s, len))
                    .to_device(Device::Cpu),
            );
            s += len;
        }
        Tensor::cat(&parts, 0)
    });
    write_npy(&dir.join("latents.npy"), &codes)?;
    if let Some(y) = &data.val_y {
        write_npy(&dir.join("labels.npy"), y)?;
    }
    let kept = if data.is_image() {
        KEEP_FOR_PLOTS
    } else {
        KEEP_TABULAR
    };
    let keep = data.val_x.narrow(0, 0, kept.min(data.val_x.size()[0]));
    write_npy(&dir.join("plots").join("inputs.npy"), &keep)?;
    if let Some(nz) = &exp.noise {
        tch::manual_seed(util::seed_for(exp.seed, -1, 0));
        let noisy = crate::train::corrupt(&keep, nz, exp.model.output);
        write_npy(&dir.join("plots").join("inputs_noisy.npy"), &noisy)?;
    }

    let ev = crate::train::evaluate(exp, model, val_x);
    let pca = crate::pca::baseline_mse(&data.train_x, &data.val_x, model.latent, 20000);
    let rows = outcome.as_ref().map(|o| o.rows.clone()).unwrap_or_default();
    let last = rows.last();
    let sps: Vec<f64> = rows.iter().filter_map(|r| r.get("samples_per_s")).collect();
    let mut summary = json!({
        "name": exp.name,
        "aelab_version": env!("CARGO_PKG_VERSION"),
        "libtorch_version": util::libtorch_version(),
        "device": device_note,
        "data": data.description,
        "train_samples": data.train_x.size()[0],
        "validation_samples": data.val_x.size()[0],
        "sample_shape": data.sample_shape,
        "model": format!("{:?}", exp.model.kind).to_lowercase(),
        "parameters": model.parameter_count(),
        "latent": model.latent,
        "epochs_run": rows.len(),
        "final_train_loss": last.and_then(|r| r.get("train_loss")),
        "final_val_loss": ev.loss,
        "final_val_mse": ev.mse,
        "pca_val_mse": pca,
        "pca_components": model.latent,
        "best_epoch": outcome.as_ref().and_then(|o| o.best_epoch),
        "stopped_early": outcome.as_ref().map(|o| o.stopped_early).unwrap_or(false),
        "train_seconds": outcome.as_ref().map(|o| o.train_seconds),
        "samples_per_s": if sps.is_empty() { None } else { Some(sps.iter().sum::<f64>() / sps.len() as f64) },
        "wall_seconds": wall,
        "peak_rss_mib": util::peak_rss_mib(),
    });
    for (k, v) in &ev.terms {
        summary[format!("final_val_{k}")] = json!(v);
    }
    if let Some(nm) = ev.noisy_mse {
        summary["noisy_input_mse"] = json!(nm);
    }
    let mut warnings = vec![];
    if exp.export.torchscript {
        match export_run_model(exp, model, &keep, dir) {
            Ok(files) => summary["torchscript"] = json!(files),
            Err(e) => warnings.push(format!("TorchScript export failed: {e:#}")),
        }
    }
    write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if exp.plots.enabled {
        warnings.extend(crate::plot::draw_all(dir));
    }
    for w in &warnings {
        eprintln!("aelab: warning: {w}");
    }
    if !quiet {
        eprintln!(
            "aelab: validation mse {:.6} (PCA with {} components: {:.6}){}",
            ev.mse,
            model.latent,
            pca,
            ev.noisy_mse
                .map(|n| format!(", noisy input {n:.6}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Export from a CPU copy of the model (TorchScript is traced on the CPU).
fn export_run_model(
    exp: &Experiment,
    model: &Model,
    example: &Tensor,
    dir: &Path,
) -> Result<Vec<String>> {
    let example = example.narrow(0, 0, 2.min(example.size()[0]));
    let files = if model.vs.device() == Device::Cpu {
        crate::export::export_torchscript(model, &example, dir)?
    } else {
        let cpu = Model::build(exp, &model.sample_shape, Device::Cpu, None)?;
        crate::export::load_parameters(&cpu, &model.named_parameters(), "the trained model")?;
        crate::export::export_torchscript(&cpu, &example, dir)?
    };
    Ok(files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect())
}

pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let t = t.to_device(Device::Cpu).contiguous();
    write_atomic_with(path, |tmp| Ok(t.write_npy(tmp)?))
}

/// A run directory's config.yaml, or an error that says this is no run directory.
pub fn run_config(dir: &Path, context: &str) -> Result<PathBuf> {
    let cfg = dir.join("config.yaml");
    if !cfg.exists() {
        return Err(InputError::new(format!(
            "{context}{} has no config.yaml; it is not an aelab run directory",
            dir.display()
        ))
        .into());
    }
    Ok(cfg)
}

/// A finished run's experiment and model, on the CPU, from its files alone.
pub fn load_run(dir: &Path) -> Result<(Experiment, Model)> {
    let exp = config::load(&run_config(dir, "")?, &[])?;
    let weights = dir.join("model.safetensors");
    let inputs =
        crate::data::read_array(&dir.join("plots").join("inputs.npy")).with_context(|| {
            format!(
                "{} lacks plots/inputs.npy (an unfinished run?)",
                dir.display()
            )
        })?;
    let model = Model::build(&exp, &inputs.size()[1..], Device::Cpu, Some(dir))?;
    let bytes =
        std::fs::read(&weights).with_context(|| format!("cannot read {}", weights.display()))?;
    let (tensors, _) = checkpoint::from_bytes(&bytes)?;
    let list: Vec<(String, Tensor)> = tensors.into_iter().collect();
    crate::export::load_parameters(&model, &list, &weights.display().to_string())?;
    Ok((exp, model))
}

/// `aelab export RUN_DIR`: (re)write the run's TorchScript files.
pub fn export(dir: &Path) -> Result<Vec<PathBuf>> {
    let (_, model) = load_run(dir)?;
    let inputs =
        crate::data::read_array(&dir.join("plots").join("inputs.npy"))?.to_kind(Kind::Float);
    crate::export::export_torchscript(&model, &inputs.narrow(0, 0, 2.min(inputs.size()[0])), dir)
}
