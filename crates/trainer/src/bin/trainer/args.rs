//! Options several subcommands share.

use std::path::PathBuf;

use clap::Args;

/// Where the data is and what to compute on: options every data-reading command takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Directory with the MNIST IDX files (raw or .gz): all four to train, the test
    /// split's two to evaluate or predict; or a folder of pictures: train/, test/
    /// (and optionally valid/), each with one folder of PNG, JPEG, BMP or WebP files
    /// per class. Without it, Burn's dataset cache is used, downloading into it if
    /// needed.
    #[arg(long, value_name = "DIR", env = "MNIST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Device of a GPU backend: `default`, `discrete[:N]`, `integrated[:N]`,
    /// `virtual[:N]` or `cpu` for wgpu; an index for cuda.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}
