//! What the user sees while training: one plain line per epoch, readable on a terminal
//! and in a log file alike, and a progress bar within the epoch on a terminal only.
//! It replaces Burn's fallback renderer, which prints a debug line per batch and no
//! metric values.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::{Interrupter, LearnerSummary};
use indicatif::{ProgressBar, ProgressStyle};

/// Where a run's progress lines go: stdout, or stderr when stdout carries a result
/// of its own (`trainer bench` prints its JSON there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Console {
    #[default]
    Stdout,
    Stderr,
}

impl Console {
    /// Writes one line. A closed stream must not stop training, so failures are
    /// ignored: the run's files record everything the lines say.
    pub fn line(self, text: impl std::fmt::Display) {
        let _ = match self {
            Self::Stdout => writeln!(std::io::stdout().lock(), "{text}"),
            Self::Stderr => writeln!(std::io::stderr().lock(), "{text}"),
        };
    }
}

/// The scores of one finished epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochSummary {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub valid_loss: f64,
    pub valid_accuracy: f64,
    /// The whole epoch: training, validation and checkpointing.
    pub duration: Duration,
    /// The training pass alone (not kept in `metrics.csv`).
    pub train_duration: Duration,
}

impl std::fmt::Display for EpochSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "train loss {:.4}  train acc {:.2}%  valid loss {:.4}  valid acc {:.2}%  {:.1}s",
            self.train_loss,
            self.train_accuracy,
            self.valid_loss,
            self.valid_accuracy,
            self.duration.as_secs_f64()
        )
    }
}

/// Epoch summaries shared between the renderer, which Burn runs on its own thread,
/// and the code that launched training.
pub type History = Arc<Mutex<Vec<EpochSummary>>>;

/// Called with the whole history after each epoch, to persist it; an error stops
/// training.
pub type EpochHook = Box<dyn Fn(&[EpochSummary]) -> Result<(), crate::TrainerError> + Send + Sync>;

/// Prints a line per epoch, records it in a [`History`], and stops training through
/// the [`Interrupter`] when the loss stops being a number.
pub struct EpochRenderer {
    history: History,
    on_epoch: EpochHook,
    interrupter: Interrupter,
    metric_names: HashMap<MetricId, String>,
    total_epochs: usize,
    current: EpochSummary,
    train_steps: usize,
    epoch_started: Instant,
    /// When the training split of the current epoch started, while it runs.
    train_started: Option<Instant>,
    first_step: FirstStep,
    console: Console,
    progress: Option<ProgressBar>,
}

/// When the first training step of a run finished, for start-up measurements.
pub type FirstStep = Arc<OnceLock<Instant>>;

impl std::fmt::Debug for EpochRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochRenderer")
            .field("total_epochs", &self.total_epochs)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl EpochRenderer {
    /// `history` starts with the epochs of an earlier run being resumed.
    pub fn new(
        history: History,
        on_epoch: EpochHook,
        interrupter: Interrupter,
        first_step: FirstStep,
        console: Console,
    ) -> Self {
        Self {
            history,
            on_epoch,
            interrupter,
            metric_names: HashMap::new(),
            total_epochs: 0,
            current: EpochSummary::default(),
            train_steps: 0,
            epoch_started: Instant::now(),
            train_started: None,
            first_step,
            console,
            progress: None,
        }
    }

    /// Stops training at the first training batch whose loss is not finite: the
    /// weights are ruined from there on, and the epoch must not be checkpointed.
    fn watch_loss(&mut self, state: &MetricState) {
        let MetricState::Numeric(entry, Some(value)) = state else {
            return;
        };
        if self.metric_names.get(&entry.metric_id).map(String::as_str) != Some("Loss") {
            return;
        }
        if !matches!(value, NumericEntry::Final(_)) {
            self.train_steps += 1;
        }
        let loss = value.current();
        if !loss.is_finite() && !self.interrupter.should_stop() {
            let advice = match self.current.epoch.saturating_sub(1) {
                0 => "no checkpoint was written; lower the learning rate (--lr) and start over with --overwrite".to_string(),
                last_good => format!("the last good checkpoint is epoch {last_good}; lower the learning rate (--lr) and continue with --resume"),
            };
            self.interrupter.stop(Some(&format!(
                "the training loss became {loss} at epoch {}, step {}; {advice}",
                self.current.epoch, self.train_steps
            )));
        }
    }

    /// Keeps the epoch-level value Burn sends when a split ends; per-batch values
    /// only serve the progress bar.
    fn record(&mut self, split: Split, state: MetricState) {
        let MetricState::Numeric(entry, Some(NumericEntry::Final(value))) = state else {
            return;
        };
        let name = self.metric_names.get(&entry.metric_id).map(String::as_str);
        let slot = match (split, name) {
            (Split::Train, Some("Loss")) => &mut self.current.train_loss,
            (Split::Train, Some("Accuracy")) => &mut self.current.train_accuracy,
            (Split::Valid, Some("Loss")) => &mut self.current.valid_loss,
            (Split::Valid, Some("Accuracy")) => &mut self.current.valid_accuracy,
            _ => return,
        };
        *slot = value;
    }
}

#[derive(Debug, Clone, Copy)]
enum Split {
    Train,
    Valid,
}

impl MetricsRendererTraining for EpochRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.first_step.get_or_init(Instant::now);
        self.watch_loss(&state);
        self.record(Split::Train, state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(Split::Valid, state);
    }

    fn on_train_end(
        &mut self,
        _: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for EpochRenderer {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}

    fn on_test_end(&mut self, _: Option<LearnerSummary>) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl TrainingProgressLogger for EpochRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _: Option<usize>,
        _: Option<&str>,
    ) {
        self.total_epochs = total_epochs;
        self.current.epoch = starting_epoch;
        self.epoch_started = Instant::now();
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.current.epoch = epoch;
        self.current.duration = self.epoch_started.elapsed();
        self.console.line(format_args!(
            "epoch {epoch}/{}  {}",
            self.total_epochs, self.current
        ));
        if let Ok(mut history) = self.history.lock() {
            history.push(self.current.clone());
            if let Err(error) = (self.on_epoch)(&history) {
                self.interrupter.stop(Some(&error.to_string()));
            }
        }
        self.current = EpochSummary {
            epoch: epoch + 1,
            ..EpochSummary::default()
        };
        self.epoch_started = Instant::now();
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        if split == "train" {
            self.train_steps = 0;
            self.train_started = Some(Instant::now());
        }
        let bar = ProgressBar::new(total_items as u64);
        let template = format!(
            "epoch {}/{} {split:5} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}",
            self.current.epoch, self.total_epochs
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        self.progress = Some(bar);
    }

    fn update_split(&mut self, items_processed: usize) {
        if let Some(bar) = &self.progress {
            bar.set_position(items_processed as u64);
        }
    }

    fn end_split(&mut self) {
        if let Some(started) = self.train_started.take() {
            self.current.train_duration = started.elapsed();
        }
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
    }

    fn end(&mut self) {
        self.end_split();
    }

    fn log_event_training(&mut self, _: String) {}
}

impl EvaluationProgressLogger for EpochRenderer {
    fn start_global_progress(&mut self, _: usize) {}
    fn start_test(&mut self, _: &str, _: usize) {}
    fn update_test_progress(&mut self, _: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _: String) {}
}

impl MetricsRenderer for EpochRenderer {
    fn manual_close(&mut self) {
        self.end_split();
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.metric_names
            .insert(definition.metric_id, definition.name.to_string());
    }
}
