//! One function a subcommand.
use crate::cli::{Cli, Command};
use anyhow::Result;
use std::path::{Path, PathBuf};

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(a) => {
            let opts = crate::run::RunOptions {
                out: a.out,
                overrides: a.overrides,
                force: a.force,
                quiet: a.quiet,
            };
            let dir = match a.resume {
                Some(dir) => crate::run::resume(&dir, &opts)?,
                None => {
                    let file = a
                        .experiment
                        .unwrap_or_else(|| PathBuf::from("experiments/fashion-mlp.yaml"));
                    crate::run::run(&file, &opts)?
                }
            };
            println!("run directory: {}", dir.display());
            if dir.join("plots").join("loss.png").exists() {
                println!("plots:         {}", dir.join("plots").display());
            }
            Ok(())
        }
        Command::Validate {
            experiment,
            overrides,
            deep,
        } => validate(&experiment, &overrides, deep),
        Command::Info => {
            info();
            Ok(())
        }
        Command::Plot { runs, compare, out } => {
            if compare {
                let png = crate::plot::compare(&runs, &out)?;
                println!("wrote {} (and .svg)", png.display());
                return Ok(());
            }
            for r in &runs {
                crate::run::run_config(r, "")?;
                let warnings = crate::plot::draw_all(r);
                for w in &warnings {
                    eprintln!("aelab: warning: {w}");
                }
                println!("plots: {}", r.join("plots").display());
            }
            Ok(())
        }
        Command::Export { run } => {
            for f in crate::run::export(&run)? {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Encode(a) => {
            crate::apply::apply(crate::apply::Op::Encode, &a.model, &a.input, &a.output)
        }
        Command::Decode(a) => {
            crate::apply::apply(crate::apply::Op::Decode, &a.model, &a.input, &a.output)
        }
        Command::Reconstruct(a) => {
            crate::apply::apply(crate::apply::Op::Reconstruct, &a.model, &a.input, &a.output)
        }
    }
}

fn validate(file: &Path, overrides: &[String], deep: bool) -> Result<()> {
    let exp = crate::config::load(file, overrides)?;
    if deep {
        let base = file.parent();
        let named = |e| crate::run::in_file(e, file);
        let data = crate::data::load(&exp, base).map_err(named)?;
        let model = crate::model::Model::build(&exp, &data.sample_shape, tch::Device::Cpu, base)
            .map_err(named)?;
        eprintln!(
            "aelab: {}: {} train / {} validation samples of shape {:?}; {} parameters, code size {}",
            data.description,
            data.train_x.size()[0],
            data.val_x.size()[0],
            data.sample_shape,
            model.parameter_count(),
            model.latent
        );
    }
    print!("{}", exp.to_yaml()?);
    eprintln!("aelab: {} is valid", file.display());
    Ok(())
}

fn gpu_names() -> Vec<String> {
    let mut names = vec![];
    if let Ok(entries) = std::fs::read_dir("/proc/driver/nvidia/gpus") {
        for e in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(e.path().join("information")) {
                if let Some(l) = text.lines().find(|l| l.starts_with("Model:")) {
                    names.push(l.trim_start_matches("Model:").trim().to_string());
                }
            }
        }
    }
    names
}

fn info() {
    let cuda = tch::Cuda::is_available();
    println!("aelab            {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch         {}", crate::util::libtorch_version());
    println!("CUDA available   {cuda}");
    println!("GPUs             {}", tch::Cuda::device_count());
    for (i, n) in gpu_names().iter().enumerate() {
        println!("  cuda:{i}         {n}");
    }
    println!("cuDNN available  {}", tch::Cuda::cudnn_is_available());
    println!("CPU threads      {}", tch::get_num_threads());
    let auto = crate::util::choose_device(crate::config::DeviceSpec::Auto)
        .map(|(_, note)| note)
        .unwrap_or_else(|e| e.to_string());
    println!("device: auto     {auto}");
}
