//! The trainer's integration tests, in one binary so that Burn is linked once: each
//! module tests one part through the library or the `trainer` binary, with the
//! helpers of `common`. Run one module, or one test, by its path:
//! `cargo test --release -p trainer --test testsuite -- serve_api::` (a filter matches
//! any part of a test's path). `wgpu_backend` is built only with `--features wgpu`.

mod common;

mod bench;
mod cli_errors;
mod cnn;
mod docs;
mod end_to_end;
mod experiments;
mod export_roundtrip;
mod folders;
mod hostile_inputs;
mod observability;
mod onnx_export;
mod reliability;
mod scale_out;
mod serve_api;
mod serve_hostile;
mod serve_ops;
mod slurm;
#[cfg(feature = "wgpu")]
mod wgpu_backend;
