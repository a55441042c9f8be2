//! The sweep's results as files: `leaderboard.csv` and `leaderboard.md`, a row per
//! configuration with the medians over its finished trials.

use std::path::Path;

use super::plan::show;
use super::ranking::{Outcome, Ranked};
use crate::TrainerError;

/// Writes `leaderboard.csv` and `leaderboard.md`, and returns the latter.
pub(crate) fn write_leaderboards<'a>(
    dir: &Path,
    ranked: &[Ranked],
    keys: impl Iterator<Item = &'a String>,
) -> Result<String, TrainerError> {
    let keys: Vec<&String> = keys.collect();
    let mut header = vec!["rank".to_string(), "trials".to_string()];
    header.extend(keys.iter().map(|k| k.to_string()));
    header.extend(
        [
            "valid_accuracy",
            "valid_loss",
            "finished",
            "seconds",
            "status",
        ]
        .map(String::from),
    );
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .enumerate()
        .map(|(rank, entry)| {
            let mut row = vec![(rank + 1).to_string(), entry.trial_names()];
            row.extend(entry.settings.iter().map(|(_, value)| show(value)));
            let finished = entry.finished().count();
            let seconds: f64 = entry
                .trials
                .iter()
                .map(|(_, outcome)| match outcome {
                    Outcome::Finished { seconds, .. } => *seconds,
                    Outcome::Failed(_) => 0.0,
                })
                .sum();
            let failure = entry
                .trials
                .iter()
                .find_map(|(trial, outcome)| match outcome {
                    Outcome::Failed(reason) => Some(format!("{} failed: {reason}", trial.name())),
                    Outcome::Finished { .. } => None,
                });
            row.extend([
                entry
                    .valid_accuracy()
                    .map_or_else(String::new, |a| format!("{a:.2}")),
                entry
                    .valid_loss()
                    .map_or_else(String::new, |l| format!("{l:.4}")),
                format!("{finished}/{}", entry.trials.len()),
                format!("{seconds:.1}"),
                failure.unwrap_or_else(|| "finished".into()),
            ]);
            row
        })
        .collect();
    let csv_field = |field: &String| {
        if field.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.clone()
        }
    };
    let csv: String = std::iter::once(&header)
        .chain(&rows)
        .map(|row| row.iter().map(csv_field).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let md_cell = |cell: &String| cell.replace('|', "\\|").replace(['\n', '\r'], " ");
    let md_row = |row: &Vec<String>| {
        let cells: Vec<String> = row.iter().map(md_cell).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let markdown: String = std::iter::once(md_row(&header))
        .chain(std::iter::once(format!(
            "|{}\n",
            "---|".repeat(header.len())
        )))
        .chain(rows.iter().map(md_row))
        .collect();
    for (name, contents) in [("leaderboard.csv", &csv), ("leaderboard.md", &markdown)] {
        crate::fs::write_atomically(&dir.join(name), contents.as_bytes())?;
    }
    Ok(markdown)
}
