//! The command line. Doc comments here are the help text.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// aelab — an autoencoder lab on libtorch.
///
/// Describe an experiment in YAML (data, encoder and decoder, loss, training), train it
/// with `aelab run`, and get a run directory with metrics, weights, plots and
/// TorchScript exports that PyTorch loads as they are.
#[derive(Parser, Debug)]
#[command(
    name = "aelab",
    version,
    propagate_version = true,
    after_help = "Environment:\n  AELAB_FUSED=0  train with ATen's stock operators instead of aelab's fused CPU kernels\n                 (Adam, BCE on logits) and channels-last conv weights; results agree\n                 to float rounding, only speed differs (scripts/bench compares both)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train the experiment a YAML file describes and write its run directory.
    ///
    /// The run goes to OUT/<name>; when that exists, to OUT/<name>-2 and so on,
    /// unless --force replaces it or --resume continues it. Ctrl-C finishes the
    /// current step, writes a checkpoint and exits with status 130.
    Run(RunArgs),
    /// Check an experiment file without training, and print it with every default filled in.
    Validate {
        /// The experiment file.
        experiment: PathBuf,
        /// Override a value, like --set train.epochs=5 (repeatable).
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        overrides: Vec<String>,
        /// Also read the data and build the model, to check shapes.
        #[arg(long)]
        deep: bool,
    },
    /// Print versions, CUDA and cuDNN availability, GPUs, CPU threads and the device `auto` picks.
    Info,
    /// Redraw a run's pictures from its files, or compare runs.
    Plot {
        /// Run directories. One redraws its plots/; with --compare, several share one chart.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Draw the validation loss of all RUNS on one chart.
        #[arg(long)]
        compare: bool,
        /// Where --compare writes compare.png and compare.svg.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// (Re)write a run's encoder.pt, decoder.pt and autoencoder.pt (TorchScript).
    Export {
        /// The run directory.
        run: PathBuf,
    },
    /// Map data to codes with a trained encoder.
    Encode(ApplyArgs),
    /// Map codes back to data with a trained decoder.
    Decode(ApplyArgs),
    /// Encode then decode data: the model's reconstruction of it.
    Reconstruct(ApplyArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The experiment file (default: experiments/fashion-mlp.yaml).
    pub experiment: Option<PathBuf>,
    /// Folder that holds run directories.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Override a value, like --set train.epochs=5 or --set data.limit=500 (repeatable).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub overrides: Vec<String>,
    /// Replace an existing run directory of the same name.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Continue the interrupted run in this directory from its checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "experiment")]
    pub resume: Option<PathBuf>,
    /// No progress bars or epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A run directory, or a TorchScript module (.pt) with encode / decode / forward methods.
    #[arg(long, short)]
    pub model: PathBuf,
    /// The input: .npy or .csv (numbers only, one row a sample), or an experiment .yaml
    /// whose data section is read (its validation split).
    #[arg(long, short)]
    pub input: PathBuf,
    /// The output: .npy or .csv. Images also get a PNG grid beside it.
    #[arg(long, short)]
    pub output: PathBuf,
}
