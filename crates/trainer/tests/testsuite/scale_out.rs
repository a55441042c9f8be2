//! Scaling out: data-parallel training on two devices (two workers on flex's one
//! device here) learns as one does and resumes exactly after a kill; a sweep run in
//! the stages a cluster scheduler runs (`--plan`, `--trial N` each, `--collect`)
//! ranks exactly as a local sweep does.

use std::path::Path;

use crate::common::{
    self, Signal, assert_clean_failure, assert_resume_is_exact, leaderboard_scores, mnist_dir,
    path_str, signal_at, stdout, train_with_cli, trainer, trainer_owned,
};

#[test]
fn two_devices_train_the_default_run_to_the_tutorials_accuracy() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let output = train_with_cli(&data_dir, &run, &["--devices", "2"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let accuracy: f64 = out
        .lines()
        .find_map(|line| line.strip_prefix("test loss "))
        .and_then(|rest| {
            rest.split("accuracy ")
                .nth(1)?
                .split('%')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no test accuracy in {out}"));
    assert!(accuracy >= 96.8, "5 epochs on 2 devices: {accuracy}%");
    let config = std::fs::read_to_string(run.join("config.json")).expect("config");
    assert!(
        config.contains(r#""devices": "2""#),
        "the run records its devices: {config}"
    );
}

#[test]
fn two_devices_killed_mid_epoch_then_resumed_end_like_an_uninterrupted_run() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = |run: &Path| -> Vec<String> {
        [
            "train",
            "--devices",
            "2",
            "--epochs",
            "3",
            "--limit-train",
            "20000",
            "--no-test",
            "--set",
            "lr_schedule.name=cosine",
            "--data-dir",
            path_str(&data_dir),
            "--run",
            path_str(run),
        ]
        .map(String::from)
        .to_vec()
    };
    let killed =
        assert_resume_is_exact(&args, tmp.path(), ("epoch 2/3 [", Signal::KILL), &data_dir);

    // Another device count is another run: refused, naming the change.
    let other: Vec<String> = args(&killed)
        .into_iter()
        .map(|arg| if arg == "2" { "1".to_string() } else { arg })
        .chain(["--resume".into()])
        .collect();
    let line = assert_clean_failure(&trainer_owned(&other));
    assert!(line.contains(r#"devices (saved "2", asked "1")"#), "{line}");
}

/// The arguments of a run of `epochs` in `run`, long enough for a signal sent at its
/// first progress line of an epoch to land within that epoch.
fn short_run(data_dir: &Path, epochs: &str, extra: &[&str], run: &Path) -> Vec<String> {
    [
        "train",
        "--epochs",
        epochs,
        "--no-test",
        "--data-dir",
        path_str(data_dir),
        "--run",
        path_str(run),
    ]
    .iter()
    .chain(extra)
    .map(|arg| arg.to_string())
    .collect()
}

#[test]
fn a_run_stopped_by_sigterm_mid_epoch_checkpoints_there_and_resumes_exactly() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = |run: &Path| short_run(&data_dir, "2", &["--set", "lr_schedule.name=cosine"], run);
    let stopped =
        assert_resume_is_exact(&args, tmp.path(), ("epoch 2/2 [", Signal::TERM), &data_dir);
    assert!(
        !stopped.join("checkpoint/step").exists(),
        "a finished run keeps no step checkpoint"
    );
}

#[test]
fn two_devices_stopped_by_slurms_warning_in_their_first_epoch_resume_exactly() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = |run: &Path| short_run(&data_dir, "2", &["--devices", "2"], run);
    assert_resume_is_exact(&args, tmp.path(), ("epoch 1/2 [", Signal::USR1), &data_dir);
}

#[test]
fn a_damaged_step_checkpoint_is_named_with_the_way_out() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let args = short_run(&data_dir, "1", &["--log-interval", "10"], &run);
    let (_, stderr) = signal_at(&args, "epoch 1/1 [", Signal::TERM);
    assert!(stderr.contains("checkpointed there"), "{stderr}");
    let progress = run.join("checkpoint/step/progress.json");
    std::fs::write(&progress, b"{\"epoch\": 1, \"running\"").expect("damage");
    let line = assert_clean_failure(&trainer(&["train", "--run", path_str(&run), "--resume"]));
    assert!(line.contains("progress.json"), "{line}");
    assert!(line.contains("delete the folder"), "{line}");
}

#[test]
fn device_specs_that_cannot_be_met_are_one_line_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    for (spec, named) in [
        ("discrete:1", "discrete:1"),
        ("0", "devices"),
        ("3", "batch_size"),
        ("cpu,gpu7", "gpu7"),
    ] {
        let line = assert_clean_failure(&train_with_cli(tmp.path(), &run, &["--devices", spec]));
        assert!(line.contains(named), "--devices {spec}: {line}");
    }
}

#[test]
fn a_sweep_in_stages_ranks_exactly_as_a_local_sweep() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("sweep.json");
    std::fs::write(&spec, common::FOUR_TRIALS).expect("sweep file");
    let sweep = |dir: &Path, stage: &[&str]| common::sweep(&spec, &data_dir, dir, stage);
    let (local, staged) = (tmp.path().join("local"), tmp.path().join("staged"));
    let plain = sweep(&local, &[]);
    assert!(plain.status.success(), "{}", common::stderr(&plain));

    let planned = sweep(&staged, &["--plan"]);
    assert!(planned.status.success(), "{}", common::stderr(&planned));
    assert!(
        stdout(&planned).contains("planned 4 trials"),
        "{}",
        stdout(&planned)
    );
    for n in 1..=4 {
        let config = staged.join(format!("trial-00{n}")).join("trial.json");
        assert!(config.is_file(), "--plan writes {}", config.display());
    }
    assert!(
        !staged.join("trial-001").join("model.bpk").exists(),
        "--plan trains nothing"
    );
    // Trials write only their own directories: nothing of the sweep's own yet.
    for n in [3, 1, 4, 2] {
        let trial = sweep(&staged, &["--trial", &n.to_string()]);
        assert!(
            trial.status.success(),
            "trial {n}: {}",
            common::stderr(&trial)
        );
    }
    assert!(!staged.join("leaderboard.csv").exists());
    // Collected before every trial ran, the sweep names the ones missing and picks
    // no winner.
    let trial_2 = staged.join("trial-002");
    let aside = tmp.path().join("trial-002");
    std::fs::rename(&trial_2, &aside).expect("moved aside");
    let early = sweep(&staged, &["--collect"]);
    let line = assert_clean_failure(&early);
    assert!(
        line.contains("1 of 4 trials never ran (trial-002)") && line.contains("--trial N"),
        "{line}"
    );
    assert!(stdout(&early).contains("leaderboard"), "{}", stdout(&early));
    assert!(!staged.join("best.json").exists());
    std::fs::rename(&aside, &trial_2).expect("moved back");
    let collected = sweep(&staged, &["--collect"]);
    assert!(collected.status.success(), "{}", common::stderr(&collected));
    assert_eq!(leaderboard_scores(&staged), leaderboard_scores(&local));
    assert!(staged.join("best.json").is_file());

    let line = assert_clean_failure(&sweep(&staged, &["--trial", "9"]));
    assert!(
        line.contains("no trial 9") && line.contains("1 to 4"),
        "{line}"
    );
}
