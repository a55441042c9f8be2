//! Training, evaluating, serving and exporting MNIST classifiers with Burn: the library
//! behind the `trainer` binary, laid out as Burn's guide is (model and data in their
//! own crates; here training, inference and what is built on them).

pub mod backend;
pub mod bench;
pub mod config;
pub mod console;
mod epoch;
mod error;
mod fs;
pub mod infer;
pub mod interop;
pub mod report;
pub mod run_dir;
mod seal;
pub mod serve;
mod stats;
pub mod stop;
pub mod sweep;
pub mod train;
mod weights;

pub use error::TrainerError;
