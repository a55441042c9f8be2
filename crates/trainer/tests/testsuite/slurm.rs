//! Sweeps on a real Slurm cluster (`tests/slurm/cluster.sh start` makes a one-node
//! one): `trainer sweep --slurm` ranks exactly as a local sweep of the same file; a
//! trial cancelled with `scancel` and submitted again finishes from its checkpoint;
//! one longer than its time limit is warned, checkpoints, requeues itself and ends as
//! it would have uninterrupted.
//! They need a cluster, so they are ignored by default: `.ci/run` starts one and runs
//! them with `--ignored`.

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::common::{self, leaderboard_scores, mnist_dir, stdout, sweep};

/// The cluster has one node: one test's jobs at a time.
static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster, for this test's jobs alone while it is held.
fn cluster() -> MutexGuard<'static, ()> {
    let sinfo = Command::new("sinfo").arg("-h").output();
    assert!(
        sinfo.is_ok_and(|out| out.status.success()),
        "no Slurm cluster answers: start one with tests/slurm/cluster.sh start"
    );
    CLUSTER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The job ids `trainer sweep --slurm` printed: the array's and the collector's.
fn job_ids(out: &str) -> (String, String) {
    let word_after = |label: &str| {
        out.split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `{label}` in {out}"))
            .to_string()
    };
    (word_after("job array "), word_after("collect job "))
}

/// Waits until `job` has left the queue.
fn wait_for(job: &str) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        let queued = Command::new("squeue")
            .args(["-h", "-j", job])
            .output()
            .expect("squeue runs");
        if queued.stdout.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let shown = Command::new("scontrol")
        .args(["show", "job", job])
        .output()
        .expect("scontrol runs");
    panic!(
        "job {job} still queued after 10 minutes:\n{}",
        String::from_utf8_lossy(&shown.stdout)
    );
}

/// Submits the sweep with `--slurm` and `flags`: the job ids of its array and of its
/// collect job.
fn submit(spec: &Path, data: &Path, dir: &Path, flags: &[&str]) -> (String, String) {
    let submitted = sweep(spec, data, dir, &[&["--slurm"], flags].concat());
    assert!(submitted.status.success(), "{}", common::stderr(&submitted));
    job_ids(&stdout(&submitted))
}

/// Submits the sweep with `--slurm` and `flags` and waits for its collect job: the
/// array's job id and the seconds it all took.
fn swept_on_slurm(spec: &Path, data: &Path, dir: &Path, flags: &[&str]) -> (String, f64) {
    let started = Instant::now();
    let (array, collect) = submit(spec, data, dir, flags);
    wait_for(&collect);
    (array, started.elapsed().as_secs_f64())
}

/// Runs the sweep locally: the seconds it took.
fn swept_locally(spec: &Path, data: &Path, dir: &Path) -> f64 {
    let started = Instant::now();
    let plain = sweep(spec, data, dir, &[]);
    assert!(plain.status.success(), "{}", common::stderr(&plain));
    started.elapsed().as_secs_f64()
}

#[test]
#[ignore = "needs a Slurm cluster: start one with tests/slurm/cluster.sh start, then run with --ignored"]
fn a_sweep_on_slurm_ranks_exactly_as_a_local_sweep() {
    let data_dir = mnist_dir();
    let _one = cluster();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("sweep.json");
    std::fs::write(&spec, common::FOUR_TRIALS).expect("sweep file");
    let (on_slurm, local) = (tmp.path().join("slurm"), tmp.path().join("local"));

    let (array, slurm_seconds) = swept_on_slurm(
        &spec,
        &data_dir,
        &on_slurm,
        &["--max-parallel", "2", "--cpus-per-trial", "1"],
    );
    let local_seconds = swept_locally(&spec, &data_dir, &local);
    println!(
        "4 trials: {slurm_seconds:.1} s on Slurm (array {array}), {local_seconds:.1} s locally"
    );
    assert!(
        on_slurm.join("best.json").is_file(),
        "the collect job wrote best.json"
    );
    assert_eq!(leaderboard_scores(&on_slurm), leaderboard_scores(&local));
    for n in 1..=4 {
        let trial = on_slurm.join(format!("trial-00{n}"));
        let logs = std::fs::read_dir(&trial)
            .expect("trial dir")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("slurm-"))
            .count();
        assert_eq!(logs, 1, "one Slurm log in {}", trial.display());
    }
}

#[test]
#[ignore = "needs a Slurm cluster: start one with tests/slurm/cluster.sh start, then run with --ignored"]
fn a_cancelled_trial_submitted_again_finishes_from_its_checkpoint() {
    let data_dir = mnist_dir();
    let _one = cluster();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("long.json");
    std::fs::write(
        &spec,
        r#"{"base": {"epochs": 8}, "method": "grid", "parameters": {"lr": [0.001]}}"#,
    )
    .expect("sweep file");
    let dir = tmp.path().join("sweep");
    let (array, collect) = submit(&spec, &data_dir, &dir, &[]);
    let trial = dir.join("trial-001");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !trial.join("checkpoint").join("model-1.bpk").exists() {
        assert!(
            Instant::now() < deadline,
            "no epoch checkpointed in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancelled = Command::new("scancel").args([&array, &collect]).status();
    assert!(cancelled.is_ok_and(|status| status.success()), "scancel");
    wait_for(&array);
    assert!(
        !trial.join("model.bpk").exists(),
        "cancelled before the end"
    );

    let (_, collect) = submit(&spec, &data_dir, &dir, &[]);
    wait_for(&collect);
    let log = std::fs::read_to_string(trial.join("train.log")).expect("train.log");
    // scancel's SIGTERM reaches the trial, which checkpoints where it is.
    assert!(log.contains("resuming "), "{log}");
    assert!(log.contains("epoch 8/8"), "{log}");
    assert!(dir.join("best.json").is_file());
}

#[test]
#[ignore = "needs a Slurm cluster: start one with tests/slurm/cluster.sh start, then run with --ignored"]
fn a_trial_longer_than_its_time_limit_requeues_itself_and_ends_as_if_uninterrupted() {
    let data_dir = mnist_dir();
    let _one = cluster();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("long.json");
    let long = |epochs: usize| {
        format!(
            r#"{{"base": {{"epochs": {epochs}, "model": {{"hidden_sizes": [512, 512]}}}},
                "method": "grid", "parameters": {{"lr": [0.001]}}}}"#
        )
    };
    // About two minutes of training, against a limit of one minute with the warning
    // due 50 s before it: Slurm checks its limits every 30 s, so the warning comes 10
    // to 40 s into each run of the task, always before the limit, and before the
    // training ends even if the probe below ran on a machine twice as loaded. The
    // epochs that take two minutes on this machine are measured first.
    std::fs::write(&spec, long(3)).expect("sweep file");
    let per_epoch = swept_locally(&spec, &data_dir, &tmp.path().join("probe")) / 3.0;
    let epochs = ((120.0 / per_epoch).ceil() as usize).clamp(5, 120);
    std::fs::write(&spec, long(epochs)).expect("sweep file");
    let (on_slurm, local) = (tmp.path().join("slurm"), tmp.path().join("local"));
    let (array, slurm_seconds) = swept_on_slurm(
        &spec,
        &data_dir,
        &on_slurm,
        &["--time", "1", "--requeue-before", "50"],
    );
    let log = std::fs::read_to_string(on_slurm.join("trial-001/train.log")).expect("train.log");
    let stops = log.matches("SIGTERM received").count();
    let within = log.matches("checkpointed there").count();
    assert!(stops >= 1, "warned before the limit and stopped: {log}");
    assert_eq!(
        log.matches("resuming ").count(),
        stops,
        "each stop resumed: {log}"
    );

    let local_seconds = swept_locally(&spec, &data_dir, &local);
    println!(
        "time-limited trial: {stops} stops ({within} within an epoch), {slurm_seconds:.1} s on Slurm (array {array}), {local_seconds:.1} s locally"
    );
    assert_eq!(leaderboard_scores(&on_slurm), leaderboard_scores(&local));
}
