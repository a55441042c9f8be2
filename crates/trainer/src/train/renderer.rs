//! What the user sees while training: one plain line per epoch, readable on a terminal
//! and in a log file alike; within the epoch, a progress bar on a terminal, and a line
//! every logging interval elsewhere (logs, CI, `| tee`), whose figures also go to the
//! TensorBoard log.
//! It replaces Burn's fallback renderer, which prints a debug line per batch and no
//! metric values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, MetricName, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::{Interrupter, LearnerSummary};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::logger::history::{EpochRecorder, RunningMetrics, SharedRunningMetrics};
use super::logger::run_log::SharedRunLog;
use crate::console::Console;
use crate::epoch::EpochSummary;
use crate::report::thousands;

/// The names under which the Learner reports the two metrics a run records, as the
/// metrics themselves give them.
#[derive(Debug, Clone)]
pub(crate) struct MetricNames {
    pub(crate) loss: MetricName,
    pub(crate) accuracy: MetricName,
    /// The learning rate each training step used, as Burn's learner reports it.
    pub(crate) learning_rate: MetricName,
}

/// Where the training loss stopped being a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Divergence {
    pub(crate) loss: f64,
    pub(crate) epoch: usize,
    pub(crate) step: usize,
}

/// Set by the renderer when it stops a diverging run, read once training returns.
pub(crate) type DivergenceSlot = Arc<Mutex<Option<Divergence>>>;

/// How the steps within an epoch are reported.
#[derive(Debug)]
pub(crate) struct StepReporting {
    /// Steps of the whole run between reports.
    pub(crate) log_interval: usize,
    pub(crate) steps_per_epoch: usize,
    pub(crate) run_log: SharedRunLog,
    /// The epoch's training metrics so far, which the recorded epoch reports.
    pub(crate) running: SharedRunningMetrics,
}

/// Prints a line per epoch and hands it to the [`EpochRecorder`]; stops training
/// through the [`Interrupter`] when the loss stops being a number.
pub(crate) struct EpochRenderer {
    recorder: EpochRecorder,
    interrupter: Interrupter,
    names: MetricNames,
    divergence: DivergenceSlot,
    metric_ids: HashMap<MetricId, Metric>,
    total_epochs: usize,
    current: EpochSummary,
    train_steps: usize,
    epoch_started: Instant,
    /// When the training split of the current epoch started, while it runs.
    train_started: Option<Instant>,
    first_step: FirstStep,
    console: Console,
    /// Whether the console is a terminal, which shows the bar instead of step lines.
    watched: bool,
    progress: Option<ProgressBar>,
    steps: StepReporting,
    /// The loss of the last training batch.
    last_loss: f64,
    /// The learning rate of the last training step.
    last_lr: f64,
    /// When the split under way started.
    split_started: Instant,
    /// Images in the split under way.
    split_items: usize,
    /// The last step reported in this epoch.
    reported_step: usize,
}

/// When the first training step of a run finished, for start-up measurements.
pub(crate) type FirstStep = Arc<OnceLock<Instant>>;

impl std::fmt::Debug for EpochRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochRenderer")
            .field("total_epochs", &self.total_epochs)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Which of the recorded metrics a Burn metric id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Loss,
    Accuracy,
    LearningRate,
}

impl EpochRenderer {
    pub(crate) fn new(
        recorder: EpochRecorder,
        interrupter: Interrupter,
        names: MetricNames,
        divergence: DivergenceSlot,
        first_step: FirstStep,
        console: Console,
        steps: StepReporting,
    ) -> Self {
        Self {
            recorder,
            interrupter,
            names,
            divergence,
            metric_ids: HashMap::new(),
            total_epochs: 0,
            current: EpochSummary::default(),
            train_steps: 0,
            epoch_started: Instant::now(),
            train_started: None,
            first_step,
            console,
            watched: console.is_terminal(),
            progress: None,
            steps,
            last_loss: f64::NAN,
            last_lr: f64::NAN,
            split_started: Instant::now(),
            split_items: 0,
            reported_step: 0,
        }
    }

    /// Reports the training step just taken, `items` images into the epoch: on the
    /// bar, and every logging interval as a line (unless the bar shows it) and in the
    /// TensorBoard log.
    fn report_step(&mut self, items: usize) {
        let step = self.train_steps;
        let global = self.current.epoch.saturating_sub(1) * self.steps.steps_per_epoch + step;
        let due = step > 0
            && global.is_multiple_of(self.steps.log_interval)
            && step != self.reported_step;
        let bar = self.progress.as_ref().filter(|bar| !bar.is_hidden());
        // Most steps are neither reported nor shown: nothing is formatted for them.
        if !due && bar.is_none() {
            return;
        }
        let figures = format!(
            "loss {:.4} lr {} {}",
            self.last_loss,
            significant(self.last_lr),
            self.rate(items)
        );
        if let Some(bar) = bar {
            bar.set_message(figures.clone());
        }
        if !due {
            return;
        }
        self.reported_step = step;
        if let Ok(mut log) = self.steps.run_log.lock() {
            log.step(global as u64, self.last_loss, self.last_lr);
        }
        if !self.watched {
            self.console.line(format_args!(
                "epoch {}/{} [{items}/{}] {figures}",
                self.current.epoch, self.total_epochs, self.split_items
            ));
        }
    }

    /// `98,112 img/s`: the split's images so far over its time so far.
    fn rate(&self, items: usize) -> String {
        let seconds = self.split_started.elapsed().as_secs_f64().max(1e-9);
        format!(
            "{} img/s",
            thousands((items as f64 / seconds).round() as usize)
        )
    }

    /// Stops training at the first training batch whose loss is not finite: the
    /// weights are ruined from there on, and the epoch must not be checkpointed.
    fn watch_loss(&mut self, state: &MetricState) {
        let MetricState::Numeric(entry, Some(value)) = state else {
            return;
        };
        let metric = self.metric_ids.get(&entry.metric_id);
        if metric == Some(&Metric::LearningRate) && !matches!(value, NumericEntry::Final(_)) {
            self.last_lr = value.current();
        }
        if metric != Some(&Metric::Loss) {
            return;
        }
        let loss = value.current();
        if !matches!(value, NumericEntry::Final(_)) {
            self.train_steps += 1;
            self.last_loss = loss;
        }
        if !loss.is_finite() && !self.interrupter.should_stop() {
            let divergence = Divergence {
                loss,
                epoch: self.current.epoch,
                step: self.train_steps,
            };
            if let Ok(mut slot) = self.divergence.lock() {
                slot.get_or_insert(divergence);
            }
            self.interrupter
                .stop(Some(&format!("the training loss became {loss}")));
        }
    }

    /// Keeps the epoch-level values: for validation those Burn sends when the split
    /// ends; for training the sums of its batches, which include those of an earlier
    /// process when the epoch was resumed from within.
    fn record(&mut self, split: Split, state: MetricState) {
        let MetricState::Numeric(entry, Some(value)) = state else {
            return;
        };
        let metric = self.metric_ids.get(&entry.metric_id).copied();
        match (split, metric, value) {
            (Split::Train, Some(metric @ (Metric::Loss | Metric::Accuracy)), value) => {
                let Ok(mut running) = self.steps.running.lock() else {
                    return;
                };
                let mean = match metric {
                    Metric::Loss => &mut running.loss,
                    _ => &mut running.accuracy,
                };
                match value {
                    NumericEntry::Aggregated {
                        aggregated_value,
                        count,
                    } => mean.add(aggregated_value, count),
                    NumericEntry::Final(_) => {
                        let slot = match metric {
                            Metric::Loss => &mut self.current.train_loss,
                            _ => &mut self.current.train_accuracy,
                        };
                        *slot = mean.mean();
                    }
                    NumericEntry::Value(_) => {}
                }
            }
            (Split::Valid, Some(Metric::Loss), NumericEntry::Final(value)) => {
                self.current.valid_loss = value;
            }
            (Split::Valid, Some(Metric::Accuracy), NumericEntry::Final(value)) => {
                self.current.valid_accuracy = value;
            }
            _ => {}
        }
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
        if let Err(error) = self.recorder.record(self.current.clone()) {
            self.interrupter.stop(Some(&error.to_string()));
        }
        if let Ok(mut running) = self.steps.running.lock() {
            *running = RunningMetrics::default();
        }
        self.current = EpochSummary {
            epoch: epoch + 1,
            ..EpochSummary::default()
        };
        self.epoch_started = Instant::now();
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        if split == "train" {
            self.train_steps = self.steps.running.lock().map_or(0, |running| running.steps);
            self.reported_step = 0;
            self.train_started = Some(Instant::now());
        }
        self.split_started = Instant::now();
        self.split_items = total_items;
        // The bar goes where the lines go, so that one of the two always shows.
        let target = match self.console {
            Console::Stdout => ProgressDrawTarget::stdout(),
            Console::Stderr => ProgressDrawTarget::stderr(),
        };
        let bar = ProgressBar::with_draw_target(Some(total_items as u64), target);
        let template = format!(
            "epoch {}/{} {split:5} {{bar:40}} {{pos}}/{{len}} {{msg}} eta {{eta}}",
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
        if self.train_started.is_some() {
            self.report_step(items_processed);
        } else if let Some(bar) = &self.progress {
            bar.set_message(self.rate(items_processed));
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
        let metric = if definition.name == self.names.loss {
            Metric::Loss
        } else if definition.name == self.names.accuracy {
            Metric::Accuracy
        } else if definition.name == self.names.learning_rate {
            Metric::LearningRate
        } else {
            return;
        };
        self.metric_ids.insert(definition.metric_id, metric);
    }
}

/// `lr` to four significant digits, as a plain number: `0.001`, `0.0009877`.
fn significant(lr: f64) -> String {
    if !(lr.is_finite() && lr > 0.0) {
        return lr.to_string();
    }
    let scale = 10f64.powi(3 - lr.log10().floor() as i32);
    ((lr * scale).round() / scale).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rates_print_as_plain_numbers_of_four_digits() {
        assert_eq!(significant(0.001), "0.001");
        assert_eq!(significant(0.000_987_654_3), "0.0009877");
        assert_eq!(significant(0.5), "0.5");
        assert_eq!(significant(0.0), "0");
    }
}
