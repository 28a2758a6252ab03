//! aelab: YAML experiment → data → autoencoder → training → run directory.
//!
//!   config    the experiment file and its checks
//!   data      idx, csv, npy, synthetic → Dataset
//!   model     mlp, conv, vae, conv_vae, torchscript → Model
//!   optim     Adam, AdamW, SGD with state in tensors
//!   kernels   fused Adam, BCE-with-logits, channels-last weights (cpp/aelab_kernels.cpp)
//!   train     the loop; checkpoint: resumable state
//!   run       the pipeline and the run directory
//!   metrics   metrics.csv; pca: the baseline
//!   plot      pictures from run files
//!   export    TorchScript out and in
//!   apply     encode / decode / reconstruct new data
#[macro_use]
pub mod error;
pub mod apply;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod export;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod pca;
pub mod plot;
pub mod run;
pub mod train;
pub mod util;
