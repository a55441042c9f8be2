//! Training, evaluating and serving the MNIST MLP with Burn: the library behind the
//! `trainer` binary.

pub mod backend;
pub mod bench;
pub mod config;
mod early_stopping;
mod error;
pub mod evaluation;
pub mod explain;
pub mod export;
pub mod inference;
pub mod optimizer;
pub mod plots;
pub mod preprocess;
pub mod renderer;
pub mod run_dir;
pub mod schedule;
pub mod serve;
pub mod stats;
pub mod sweep;
pub mod training;

pub use error::TrainerError;
