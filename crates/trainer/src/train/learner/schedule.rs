//! A learning-rate schedule ([`ScheduleConfig`]) applied to a run of known length. It
//! counts optimisation steps and keeps that count in its checkpoint record, so a
//! resumed run continues exactly where the interrupted one stopped.

use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::LearningRate;

use crate::config::{ScheduleConfig, ScheduleName};

/// A [`ScheduleConfig`] applied to a run of known length.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    config: ScheduleConfig,
    lr: LearningRate,
    steps_per_epoch: u64,
    total_steps: u64,
    warmup_steps: u64,
    steps_taken: u64,
}

/// The record key of the number of steps taken.
const STEPS_TAKEN: &str = "steps_taken";

impl Schedule {
    /// `config` for a run of `epochs` epochs of `steps_per_epoch` steps each,
    /// peaking at `lr`.
    pub(crate) fn new(
        config: &ScheduleConfig,
        lr: LearningRate,
        steps_per_epoch: usize,
        epochs: usize,
    ) -> Self {
        let steps_per_epoch = steps_per_epoch.max(1) as u64;
        Schedule {
            config: config.clone(),
            lr,
            steps_per_epoch,
            total_steps: steps_per_epoch * epochs as u64,
            warmup_steps: (config.warmup_epochs * steps_per_epoch as f64).round() as u64,
            steps_taken: 0,
        }
    }

    /// The learning rate of optimisation step `step` (counting from 0).
    pub(crate) fn lr_at(&self, step: u64) -> LearningRate {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.config.name {
            ScheduleName::Constant => self.lr,
            ScheduleName::Step => {
                // Epochs of the schedule proper, which starts after warm-up.
                let epoch = (step - self.warmup_steps) / self.steps_per_epoch;
                let decays = epoch / self.config.step_epochs.max(1) as u64;
                self.lr * self.config.gamma.powi(decays.min(i32::MAX as u64) as i32)
            }
            ScheduleName::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let progress = (step - self.warmup_steps).min(span) as f64 / span as f64;
                let min_lr = self.config.min_lr;
                min_lr + (self.lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

impl LrScheduler for Schedule {
    fn step(&mut self) -> LearningRate {
        let lr = self.lr_at(self.steps_taken);
        self.steps_taken += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar(STEPS_TAKEN, self.steps_taken)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(steps) = record.scalar::<u64>(STEPS_TAKEN) {
            self.steps_taken = steps;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(config: ScheduleConfig, steps_per_epoch: usize, epochs: usize) -> Vec<f64> {
        let mut schedule = Schedule::new(&config, 0.1, steps_per_epoch, epochs);
        (0..steps_per_epoch * epochs)
            .map(|_| schedule.step())
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn constant_is_the_learning_rate_throughout() {
        assert!(rates(ScheduleConfig::new(), 3, 2).iter().all(|&r| r == 0.1));
    }

    #[test]
    fn step_decays_by_gamma_every_step_epochs() {
        let config = ScheduleConfig::new()
            .with_name(ScheduleName::Step)
            .with_step_epochs(2)
            .with_gamma(0.5);
        let rates = rates(config, 2, 5);
        let per_epoch: Vec<f64> = rates.chunks(2).map(|epoch| epoch[0]).collect();
        let expected = [0.1, 0.1, 0.05, 0.05, 0.025];
        assert!(
            per_epoch.iter().zip(expected).all(|(&a, b)| close(a, b)),
            "{per_epoch:?}"
        );
    }

    #[test]
    fn step_counts_its_epochs_from_the_end_of_warm_up() {
        let config = ScheduleConfig::new()
            .with_name(ScheduleName::Step)
            .with_warmup_epochs(2.0)
            .with_gamma(0.5);
        let rates = rates(config, 1, 5);
        let expected = [0.05, 0.1, 0.1, 0.05, 0.025];
        assert!(
            rates.iter().zip(expected).all(|(&a, b)| close(a, b)),
            "{rates:?}"
        );
    }

    #[test]
    fn cosine_warms_up_then_falls_to_min_lr() {
        let config = ScheduleConfig::new()
            .with_name(ScheduleName::Cosine)
            .with_warmup_epochs(1.0)
            .with_min_lr(0.001);
        let rates = rates(config, 4, 3);
        // Warm-up: 0.025, 0.05, 0.075, 0.1; then the cosine from 0.1 down.
        assert!(close(rates[0], 0.025) && close(rates[3], 0.1), "{rates:?}");
        assert!(close(rates[4], 0.1), "{rates:?}");
        assert!(rates[4..].windows(2).all(|w| w[1] < w[0]), "{rates:?}");
        // Half-way through the cosine the rate is the mean of its ends.
        assert!(close(rates[8], (0.1 + 0.001) / 2.0), "{rates:?}");
        assert!(rates[11] > 0.001 && rates[11] < 0.01, "{rates:?}");
    }

    #[test]
    fn a_restored_record_continues_the_sequence() {
        let config = ScheduleConfig::new().with_name(ScheduleName::Cosine);
        let mut original = Schedule::new(&config, 0.1, 5, 2);
        let head: Vec<f64> = (0..4).map(|_| original.step()).collect();
        let mut restored = Schedule::new(&config, 0.1, 5, 2);
        restored.load_record(original.to_record());
        let tail: Vec<f64> = (0..6).map(|_| restored.step()).collect();
        let uninterrupted = rates(config, 5, 2);
        assert_eq!([head, tail].concat(), uninterrupted);
    }
}
