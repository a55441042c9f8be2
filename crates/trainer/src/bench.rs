//! `trainer bench`: the measurements compared with the PyTorch tutorial in
//! `bench/compare.sh`, under the same JSON keys as `bench/pytorch_*.py` print.
//! Training goes through the ordinary [`train`] path (Burn's Learner, checkpoints,
//! metrics), so the numbers are those of a real run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use burn::data::dataset::Dataset;
use data::MnistDataset;
use kernels::gather::scaled_pixels;
use serde::Serialize;

use crate::TrainerError;
use crate::backend::Backend;
use crate::config::TrainingConfig;
use crate::console::Console;
use crate::infer::{Classifier, most_likely, scale_pixels};
use crate::run_dir::RunDir;
use crate::stats::median;
use crate::stop::StopSignals;
use crate::train::{TrainRequest, train};

/// One benchmark run's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub(crate) implementation: String,
    /// The network timed, as `train` names it (`784-64-64-10`,
    /// `conv16k5bn+pool2-conv32k5bn+pool2-1568-128-10`).
    pub(crate) network: String,
    pub(crate) epochs: usize,
    /// Median over epochs of the training pass alone (validation excluded).
    pub(crate) epoch_seconds: f64,
    pub(crate) train_images_per_second: f64,
    /// The 10,000 test images at batch 1000: forward, argmax, read back.
    pub(crate) eval_images_per_second: f64,
    pub(crate) batch1_latency_median_us: f64,
    pub(crate) batch1_latency_p99_us: f64,
    /// From the process's creation to the end of the first optimisation step.
    pub(crate) startup_to_first_step_seconds: Option<f64>,
    pub(crate) data_load_seconds: f64,
    pub(crate) peak_rss_mb: Option<f64>,
    pub(crate) test_accuracy: f64,
    pub(crate) threads: usize,
}

/// Latency calls timed, after this many untimed ones.
const LATENCY_CALLS: usize = 2000;
const WARM_UP_CALLS: usize = 100;
/// Passes over the test set timed for evaluation: a pass takes 5-10 ms, and the first
/// few run slower, while caches and rayon's threads warm up.
const EVAL_PASSES: usize = 25;
const EVAL_BATCH: usize = 1000;

/// Trains `config` (the tutorial's by default) for `epochs` epochs in a scratch
/// directory and measures it; `process_age` tells how long the process has existed.
pub fn run_bench(
    config: TrainingConfig,
    data_dir: Option<PathBuf>,
    epochs: usize,
    backend: &Backend,
    process_age: impl Fn() -> Option<Duration>,
) -> Result<BenchReport, TrainerError> {
    let scratch = tempfile::tempdir().map_err(|error| TrainerError::Write {
        path: std::env::temp_dir(),
        error,
    })?;
    let run_dir = RunDir::new(scratch.path().join("bench"));
    let report = train(
        TrainRequest {
            config: config.with_epochs(epochs),
            data_dir,
            run_dir: run_dir.clone(),
            resume: false,
            overwrite: false,
            test: true,
            // Stdout carries the JSON alone.
            console: Console::Stderr,
            stop: StopSignals::default(),
        },
        backend,
    )?;
    let startup_to_first_step = report.first_step.and_then(|first_step| {
        process_age().map(|age| age.saturating_sub(first_step.elapsed()).as_secs_f64())
    });
    let mut train_seconds: Vec<f64> = report
        .epochs
        .iter()
        .map(|e| e.train_duration.as_secs_f64())
        .collect();
    let epoch_seconds = median(&mut train_seconds);
    let train_images = report.train_images as f64;

    // Prediction is timed on the saved model, loaded as `predict` and `serve` load it.
    let (trained, model) = run_dir.load_model(&backend.device)?;
    let test = &report.test_set;
    let classifier = Classifier::new(model, &backend.device);
    let eval_images_per_second = eval_throughput(&classifier, test)?;
    let first_image = test.item(0).map(|item| item.pixels).unwrap_or_default();
    let (latency_median, latency_p99) = latency(&classifier, &first_image)?;
    Ok(BenchReport {
        implementation: format!("burn-{}", backend.name),
        network: trained.model.architecture(),
        epochs,
        epoch_seconds,
        train_images_per_second: train_images / epoch_seconds,
        eval_images_per_second,
        batch1_latency_median_us: latency_median,
        batch1_latency_p99_us: latency_p99,
        startup_to_first_step_seconds: startup_to_first_step,
        data_load_seconds: report.data_load.as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
        test_accuracy: report.test.map_or(f64::NAN, |scores| scores.accuracy()),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// Images per second classifying `test` in batches of 1000 whose pixels are already
/// scaled in memory, as `eval` classifies (see [`Classifier`]): logits and their argmax,
/// the median of [`EVAL_PASSES`] passes.
fn eval_throughput(classifier: &Classifier, test: &MnistDataset) -> Result<f64, TrainerError> {
    let positions: Vec<usize> = (0..test.len()).collect();
    let batches: Vec<(Vec<f32>, usize)> = positions
        .chunks(EVAL_BATCH)
        .filter_map(|chunk| {
            let items = test.items_at(chunk)?;
            let images = items.iter().map(|(image, _)| image.as_ref());
            Some((scaled_pixels(images, test.image_len()), chunk.len()))
        })
        .collect();
    let mut seconds = Vec::with_capacity(EVAL_PASSES);
    for _ in 0..EVAL_PASSES {
        let started = Instant::now();
        for (pixels, count) in &batches {
            std::hint::black_box(classes(&classifier.logits(pixels, *count)?, *count));
        }
        seconds.push(started.elapsed().as_secs_f64());
    }
    Ok(test.len() as f64 / median(&mut seconds))
}

/// Median and 99th percentile, in microseconds, of classifying one image as `predict`
/// and `serve` do (see [`Classifier`]): its logits and their argmax.
fn latency(classifier: &Classifier, image: &[u8]) -> Result<(f64, f64), TrainerError> {
    let pixels = scale_pixels(image);
    let mut micros = Vec::with_capacity(LATENCY_CALLS);
    for call in 0..WARM_UP_CALLS + LATENCY_CALLS {
        let started = Instant::now();
        std::hint::black_box(classes(&classifier.logits(&pixels, 1)?, 1));
        if call >= WARM_UP_CALLS {
            micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    micros.sort_by(f64::total_cmp);
    let p99 = micros[(micros.len() * 99).div_ceil(100).saturating_sub(1)];
    Ok((median(&mut micros), p99))
}

/// The most probable class of each of `count` rows of logits.
fn classes(logits: &[f32], count: usize) -> Vec<usize> {
    logits
        .chunks(logits.len() / count.max(1))
        .map(most_likely)
        .collect()
}

/// The process's peak resident memory, from `/proc/self/status` (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// How long this process has existed (see [`process_age_of`]).
pub fn process_age() -> Option<Duration> {
    process_age_of("self")
}

/// How long process `pid` (a number, or `self`) has existed, from `/proc` (Linux): the
/// system's uptime minus the process's start time, in the kernel's 100 Hz ticks.
pub(crate) fn process_age_of(pid: &str) -> Option<Duration> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let after_name = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    Duration::try_from_secs_f64(uptime - start_ticks / 100.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_age_is_the_time_since_it_started() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep starts");
        std::thread::sleep(Duration::from_millis(1500));
        let age = process_age_of(&child.id().to_string()).expect("linux /proc");
        let _ = child.kill();
        let _ = child.wait();
        // The kernel counts in 10 ms ticks; the child started just before the sleep.
        assert!(
            (Duration::from_millis(1400)..Duration::from_millis(3000)).contains(&age),
            "{age:?}"
        );
    }
}
