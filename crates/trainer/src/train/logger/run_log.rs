//! What a training run logs for TensorBoard in `<run>/tensorboard/`: the training loss
//! and learning rate every logging interval, each epoch's scores, and the test scores,
//! all on one axis of optimisation steps that a resumed run continues.

use std::sync::{Arc, Mutex};

use crate::console::Console;
use crate::epoch::EpochSummary;
use crate::infer::Evaluation;
use crate::report::tensorboard::{EventWriter, prune_after};
use crate::run_dir::RunDir;

/// A run's TensorBoard log. The files only show what `metrics.csv` and the log lines
/// hold, so a failure to write them warns once and training goes on without them.
#[derive(Debug)]
pub(crate) struct RunLog {
    writer: Option<EventWriter>,
}

/// The log, shared by the renderer on Burn's thread and the code that launched it.
pub(crate) type SharedRunLog = Arc<Mutex<RunLog>>;

impl RunLog {
    /// Opens a new event file for `run`, after removing the points a killed run logged
    /// past `resumed_after_step`, which this one logs again.
    pub(crate) fn open(run: &RunDir, resumed_after_step: u64) -> Self {
        let dir = run.tensorboard_dir();
        let writer = prune_after(&dir, resumed_after_step).and_then(|()| EventWriter::create(&dir));
        match writer {
            Ok(writer) => Self {
                writer: Some(writer),
            },
            Err(error) => {
                Console::warn(format_args!(
                    "no TensorBoard log for this run: {}: {error}",
                    dir.display()
                ));
                Self { writer: None }
            }
        }
    }

    /// The training loss of the batch of `step` and the learning rate it used.
    pub(crate) fn step(&mut self, step: u64, loss: f64, lr: f64) {
        self.write(step, &[("train/loss", loss), ("train/lr", lr)]);
    }

    /// An epoch's scores, at the step that ended it.
    pub(crate) fn epoch(&mut self, step: u64, epoch: &EpochSummary) {
        self.write(
            step,
            &[
                ("epoch/train_loss", epoch.train_loss),
                ("epoch/train_accuracy", epoch.train_accuracy),
                ("epoch/valid_loss", epoch.valid_loss),
                ("epoch/valid_accuracy", epoch.valid_accuracy),
            ],
        );
    }

    /// The final model's test scores, at the run's last step.
    pub fn test(&mut self, step: u64, scores: &Evaluation) {
        self.write(
            step,
            &[
                ("test/loss", scores.loss),
                ("test/accuracy", scores.accuracy()),
            ],
        );
    }

    fn write(&mut self, step: u64, scalars: &[(&str, f64)]) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        let written = scalars
            .iter()
            .try_for_each(|(tag, value)| writer.scalar(tag, step, *value))
            .and_then(|()| writer.flush());
        if let Err(error) = written {
            Console::warn(format_args!(
                "stopped writing the TensorBoard log {}: {error}",
                writer.path().display()
            ));
            self.writer = None;
        }
    }
}
