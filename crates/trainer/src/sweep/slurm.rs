//! A sweep submitted to Slurm: a job array whose tasks each train one trial, and a
//! job that collects them once the array has ended, both written as sbatch scripts
//! into the sweep's directory and submitted with `sbatch`.

use std::path::Path;
use std::process::Command;

use super::{SlurmError, SweepError};
use super::{SweepRequest, plan_sweep};
use crate::TrainerError;

/// What the sbatch scripts ask of Slurm; `None` leaves a setting to the cluster's
/// defaults.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Each task's time limit, as sbatch reads it (`30`, `2:00:00`, `1-0`).
    pub time: Option<String>,
    pub cpus_per_trial: Option<u16>,
    /// Tasks running at once (`--array=1-N%K`).
    pub max_parallel: Option<u16>,
    /// Seconds before the time limit at which Slurm warns a task, which then stops
    /// its trial and requeues itself to continue from the trial's checkpoints.
    pub warning_seconds: u32,
}

/// The jobs a submission made.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub trials: usize,
    pub array_job: String,
    pub collect_job: String,
}

/// Plans the sweep (its trials' directories and configs), writes the two scripts into
/// `<sweep>/slurm/` and submits them: the array, then the collecting job with
/// `--dependency=afterany` on it.
pub fn submit_to_slurm(
    request: &SweepRequest,
    options: &SlurmOptions,
) -> Result<Submitted, SweepError> {
    let trials = plan_sweep(request)?;
    // Absolute paths: the tasks run on other machines, from Slurm's working directory.
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = absolute(&request.dir);
    let mut sweep = vec![
        quote(&request.trainer.display().to_string()),
        "sweep".into(),
        "--config".into(),
        quote(&absolute(&request.spec_path).display().to_string()),
        "--run".into(),
        quote(&dir.display().to_string()),
    ];
    if let Some(data_dir) = &request.data_dir {
        sweep.extend([
            "--data-dir".into(),
            quote(&absolute(data_dir).display().to_string()),
        ]);
    }
    if let Some(device) = &request.device {
        sweep.extend(["--device".into(), quote(device)]);
    }
    let sweep = sweep.join(" ");
    let name = request
        .spec_path
        .file_stem()
        .map_or("sweep".into(), |stem| stem.to_string_lossy().into_owned());
    let mut common = Vec::new();
    if let Some(partition) = &options.partition {
        common.push(format!("#SBATCH --partition={partition}"));
    }
    if let Some(cpus) = options.cpus_per_trial {
        common.push(format!("#SBATCH --cpus-per-task={cpus}"));
    }
    let common = common.join("\n");
    let concurrency = options
        .max_parallel
        .map_or(String::new(), |k| format!("%{k}"));
    let time = options
        .time
        .as_ref()
        .map_or(String::new(), |t| format!("#SBATCH --time={t}\n"));
    let array = format!(
        r#"#!/bin/bash
#SBATCH --job-name={name}
#SBATCH --array=1-{trials}{concurrency}
#SBATCH --output={dir}/trial-%3a/slurm-%A_%a.log
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@{warning}
{time}{common}
# One trial per task. Warned before its time limit, the task stops its trial (which
# checkpoints where it is) and requeues itself; run again, the trial resumes from
# that checkpoint.
# Slurm checks its limits every 30 s and warns up to that much early, so a task run
# again can be warned within a second of starting: it trains on until the warning's
# time is really there, so that every run makes progress.
seconds_left() {{
  local left days=0 hours=0 minutes=0 seconds=0 a b c
  left=$(squeue -h -j "$SLURM_JOB_ID" -o %L 2>/dev/null) && [ -n "$left" ] || return 1
  case "$left" in *-*) days=${{left%%-*}}; left=${{left#*-}} ;; esac
  IFS=: read -r a b c <<<"$left"
  if [ -n "$c" ]; then hours=$a minutes=$b seconds=$c
  elif [ -n "$b" ]; then minutes=$a seconds=$b
  else seconds=$a; fi
  case "$days$hours$minutes$seconds" in *[!0-9]*) return 1 ;; esac
  echo $(( ((10#$days * 24 + 10#$hours) * 60 + 10#$minutes) * 60 + 10#$seconds ))
}}
requeue() {{
  local left
  if left=$(seconds_left) && [ "$left" -gt {warning} ]; then
    sleep $(( left - {warning} )) & wait $!
  fi
  if ! kill -0 "$trial" 2>/dev/null; then
    wait "$trial"
    exit $?
  fi
  kill -TERM "$trial" 2>/dev/null
  wait "$trial"
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
  exit 0
}}
trap requeue USR1
{sweep} --trial "$SLURM_ARRAY_TASK_ID" &
trial=$!
wait "$trial"
"#,
        dir = dir.display(),
        warning = options.warning_seconds,
    );
    let collect = format!(
        r#"#!/bin/bash
#SBATCH --job-name={name}-collect
#SBATCH --output={dir}/slurm-collect-%j.log
{common}
{sweep} --collect
"#,
        dir = dir.display(),
    );
    let scripts = dir.join("slurm");
    std::fs::create_dir_all(&scripts).map_err(|error| TrainerError::Write {
        path: scripts.clone(),
        error,
    })?;
    let (array_script, collect_script) =
        (scripts.join("array.sbatch"), scripts.join("collect.sbatch"));
    crate::fs::write_atomically(&array_script, array.as_bytes())?;
    crate::fs::write_atomically(&collect_script, collect.as_bytes())?;
    let array_job = sbatch(&array_script, &[])?;
    let collect_job = sbatch(
        &collect_script,
        &[format!("--dependency=afterany:{array_job}")],
    )?;
    Ok(Submitted {
        trials,
        array_job,
        collect_job,
    })
}

/// Submits `script`, returning its job id.
fn sbatch(script: &Path, flags: &[String]) -> Result<String, SweepError> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(flags)
        .arg(script)
        .output()
        .map_err(SlurmError::NoSbatch)?;
    let refused = |reason: String| SlurmError::Refused {
        script: script.to_path_buf(),
        reason,
    };
    if !output.status.success() {
        let reason = String::from_utf8_lossy(&output.stderr)
            .trim()
            .replace('\n', "; ");
        return Err(refused(reason).into());
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let printed = String::from_utf8_lossy(&output.stdout);
    let id = printed
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        return Err(refused("it printed no job id".into()).into());
    }
    Ok(id)
}

/// `value` as one shell word.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_quotes_and_spaces() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
