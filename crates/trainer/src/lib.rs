//! Training, evaluating and serving the MNIST MLP with Burn: the library behind the
//! `trainer` binary.

pub mod backend;
pub mod config;
mod error;
pub mod evaluation;
pub mod export;
pub mod inference;
pub mod preprocess;
pub mod renderer;
pub mod run_dir;
pub mod serve;
pub mod training;

pub use error::TrainerError;
