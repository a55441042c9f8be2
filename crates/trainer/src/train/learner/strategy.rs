//! The loop the Learner runs (a custom `SupervisedLearningStrategy`): Burn's own on
//! one device, and data-parallel over several (each device takes its share of the
//! epoch, one batch per step; the gradients are summed on the first device, which
//! steps the optimizer). What Burn's loops lack: asked to stop by a signal, the run
//! checkpoints where it is, within an epoch too, and resumes from there.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use burn::data::dataloader::split::split_dataloader;
use burn::data::dataloader::{DataLoaderIterator, Progress};
use burn::optim::GradientsAccumulator;
use burn::prelude::*;
use burn::train::train::WorkerFailure;
use burn::train::{
    ClassificationOutput, EventProcessorTraining, InferenceStep, Interrupter, Learner,
    LearnerEvent, SupervisedLearningStrategy, SupervisedTrainingEventProcessor, TrainLoader,
    TrainOutput, TrainStep, TrainingComponents, TrainingError, TrainingItem, ValidLoader,
};
use data::MnistBatch;

use super::classifier::CrossEntropyClassifier;
use crate::run_dir::RunDir;
use crate::stop::StopSignals;
use crate::train::checkpoint::step::{self as step_checkpoint, EpochProgress};
use crate::train::logger::history::SharedRunningMetrics;

type Model = CrossEntropyClassifier;

/// Trains on `devices` (autodiff devices; the first steps the optimizer), stopping at
/// a step when `stop` says so.
pub(crate) struct ResumableTraining {
    pub(crate) devices: Vec<Device>,
    pub(crate) stop: StopSignals,
    pub(crate) run_dir: RunDir,
    /// The step checkpoint the run resumes from, whose steps the training loader skips.
    pub(crate) resume: Option<EpochProgress>,
    pub(crate) running: SharedRunningMetrics,
}

impl SupervisedLearningStrategy<Model> for ResumableTraining {
    fn fit(
        &self,
        components: TrainingComponents<Model>,
        mut learner: Learner<Model>,
        train_loader: TrainLoader<Model>,
        valid_loader: ValidLoader<Model>,
        starting_epoch: usize,
    ) -> (Model, SupervisedTrainingEventProcessor<Model>) {
        let main_device = &self.devices[0];
        let train_items = train_loader.num_items();
        let train_loaders = match self.devices.len() {
            1 => vec![train_loader.to_device(main_device)],
            _ => split_dataloader(train_loader, &self.devices),
        };
        let valid_loader = valid_loader.to_device(&main_device.clone().inner());
        let valid_items = valid_loader.num_items();
        learner.fork(main_device);
        if let Some(progress) = &self.resume {
            learner = step_checkpoint::restore(&self.run_dir, learner, progress.epoch);
        }
        let TrainingComponents {
            num_epochs,
            checkpointer: mut epoch_checkpointer,
            interrupter,
            mut early_stopping,
            event_processor: mut processor,
            event_store,
            ..
        } = components;
        let mut resume = self.resume;
        let workers = Workers::new(&self.devices[1..]);

        for epoch in starting_epoch..=num_epochs {
            let running = resume.take().map(|p| p.running).unwrap_or_default();
            if let Ok(mut shared) = self.running.lock() {
                *shared = running;
            }
            interrupter.fail_on_error(processor.process_train(LearnerEvent::StartSplit {
                epoch_number: epoch,
                total_items: train_items,
            }));
            let steps = self.train_epoch(
                &mut learner,
                &train_loaders,
                &workers,
                running.steps,
                &mut processor,
                &interrupter,
            );
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndSplit(epoch)));
            if interrupter.should_stop() {
                if let Some(signal) = self.stop.received() {
                    self.checkpoint_within(
                        &learner,
                        epoch,
                        steps,
                        signal,
                        &mut processor,
                        &interrupter,
                        &event_store,
                    );
                }
                break;
            }

            interrupter.fail_on_error(processor.process_valid(LearnerEvent::StartSplit {
                epoch_number: epoch,
                total_items: valid_items,
            }));
            validate(&learner, &valid_loader, &mut processor, &interrupter);
            interrupter.fail_on_error(processor.process_valid(LearnerEvent::EndSplit(epoch)));
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndEpoch(epoch)));
            // The epoch's record (metrics.csv) is written before its checkpoint.
            interrupter.fail_on_error(processor.flush());
            if interrupter.should_stop() {
                break;
            }
            if let Some(checkpointer) = &mut epoch_checkpointer {
                checkpointer.checkpoint(&learner, epoch, &event_store);
            }
            if let Some(early_stopping) = &mut early_stopping
                && early_stopping.should_stop(epoch, &event_store)
            {
                break;
            }
            if let Some(signal) = self.stop.received() {
                interrupter.stop(Some(&format!("{signal} received after epoch {epoch}")));
                break;
            }
        }
        (learner.model(), processor)
    }
}

impl ResumableTraining {
    /// Trains one epoch from step `first_step` on (the steps before it were taken by
    /// the run resumed), and returns the steps it has taken when it ends or stops.
    fn train_epoch(
        &self,
        learner: &mut Learner<Model>,
        loaders: &[TrainLoader<Model>],
        workers: &Workers,
        first_step: usize,
        processor: &mut SupervisedTrainingEventProcessor<Model>,
        interrupter: &Interrupter,
    ) -> usize {
        let mut iterators: Vec<_> = loaders.iter().map(|loader| loader.iter()).collect();
        let mut step = first_step;
        loop {
            let mut batches = Vec::with_capacity(iterators.len());
            for iterator in &mut iterators {
                match iterator.next() {
                    Some(Ok(batch)) => batches.push(batch),
                    Some(Err(error)) => {
                        interrupter.fail(error);
                        return step;
                    }
                    None => {}
                }
            }
            if batches.is_empty() {
                return step;
            }
            let progress = combined_progress(&iterators);
            let outputs = match self.forward_backward(learner, workers, batches) {
                Ok(outputs) => outputs,
                Err(failure) => {
                    interrupter.fail(TrainingError::Workers(vec![failure]));
                    return step;
                }
            };
            let (grads, items) = self.gather(learner, outputs);
            learner.lr_step();
            learner.optimizer_step(grads);
            step += 1;
            for item in items {
                let item = TrainingItem::new(
                    item,
                    progress.clone(),
                    Some(step),
                    Some(learner.lr_current()),
                );
                interrupter
                    .fail_on_error(processor.process_train(LearnerEvent::ProcessedItem(item)));
            }
            if interrupter.should_stop() {
                return step;
            }
            if let Some(signal) = self.stop.received() {
                interrupter.stop(Some(signal));
                return step;
            }
        }
    }

    /// Each device's forward and backward pass on its batch, in device order: the
    /// first device's on this thread, the others' on their workers. With several, each
    /// pass runs on a fork of the model, whose autodiff graph is its own.
    fn forward_backward(
        &self,
        learner: &Learner<Model>,
        workers: &Workers,
        batches: Vec<MnistBatch>,
    ) -> Result<Vec<TrainOutput<ClassificationOutput>>, WorkerFailure> {
        let model = learner.model();
        let mut batches = batches.into_iter();
        let Some(first) = batches.next() else {
            return Ok(Vec::new());
        };
        if batches.len() == 0 {
            return Ok(vec![TrainStep::step(&model, first)]);
        }
        let lanes: Vec<_> = batches
            .zip(&workers.lanes)
            .map(|(batch, lane)| (lane, lane.input.send((model.clone(), batch)).is_ok()))
            .collect();
        let mut outputs = vec![TrainStep::step(&model.fork(&self.devices[0]), first)];
        for (index, (lane, sent)) in lanes.into_iter().enumerate() {
            let failure = |message: String| WorkerFailure {
                device_id: index + 1,
                message,
            };
            let answer = sent.then(|| lane.output.recv().ok()).flatten();
            match answer {
                Some(Ok(output)) => outputs.push(output),
                Some(Err(panic)) => return Err(failure(panic_message(panic.as_ref()))),
                None => return Err(failure("its worker thread has ended".into())),
            }
        }
        Ok(outputs)
    }

    /// The step's gradients, summed on the first device, and its outputs.
    fn gather(
        &self,
        learner: &Learner<Model>,
        mut outputs: Vec<TrainOutput<ClassificationOutput>>,
    ) -> (burn::optim::GradientsParams, Vec<ClassificationOutput>) {
        if outputs.len() == 1
            && let Some(only) = outputs.pop()
        {
            return (only.grads, vec![only.item]);
        }
        let model = learner.model();
        let mut accumulator = GradientsAccumulator::new();
        let mut items = Vec::with_capacity(outputs.len());
        for output in outputs {
            accumulator.accumulate(&model, output.grads.to_device(&self.devices[0], &model));
            items.push(output.item);
        }
        (accumulator.grads(), items)
    }

    /// Saves the step checkpoint of a run stopped by `signal` `steps` into `epoch`, and
    /// says so in the interruption's reason.
    #[allow(clippy::too_many_arguments)]
    fn checkpoint_within(
        &self,
        learner: &Learner<Model>,
        epoch: usize,
        steps: usize,
        signal: &str,
        processor: &mut SupervisedTrainingEventProcessor<Model>,
        interrupter: &Interrupter,
        store: &Arc<burn::train::metric::store::EventStoreClient>,
    ) {
        // The renderer has summed every step's metrics once the events are processed.
        interrupter.fail_on_error(processor.flush());
        let running = self.running.lock().map(|mut running| {
            running.steps = steps;
            *running
        });
        let Ok(running) = running else { return };
        let progress = EpochProgress { epoch, running };
        match step_checkpoint::save(&self.run_dir, learner, &progress, store) {
            Ok(()) => interrupter.stop(Some(&format!(
                "{signal} received at epoch {epoch}, step {steps}; checkpointed there"
            ))),
            Err(error) => interrupter.stop(Some(&format!(
                "{signal} received at epoch {epoch}, step {steps}, but the checkpoint failed: {error}"
            ))),
        }
    }
}

/// Burn's validation pass: the model without autodiff over the validation batches.
fn validate(
    learner: &Learner<Model>,
    loader: &ValidLoader<Model>,
    processor: &mut SupervisedTrainingEventProcessor<Model>,
    interrupter: &Interrupter,
) {
    let model = learner.model().valid();
    let mut iterator = loader.iter();
    let mut iteration = 0;
    while let Some(batch) = iterator.next() {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                interrupter.fail(error);
                return;
            }
        };
        iteration += 1;
        let progress = iterator.progress();
        let item = TrainingItem::new(
            InferenceStep::step(&model, batch),
            progress,
            Some(iteration),
            None,
        );
        interrupter.fail_on_error(processor.process_valid(LearnerEvent::ProcessedItem(item)));
        if interrupter.should_stop() {
            return;
        }
    }
}

/// The epoch's progress over all devices' shares.
fn combined_progress(iterators: &[Box<dyn DataLoaderIterator<MnistBatch> + '_>]) -> Progress {
    let (done, total) = iterators.iter().fold((0, 0), |(done, total), iterator| {
        let progress = iterator.progress();
        (
            done + progress.items_processed,
            total + progress.items_total,
        )
    });
    Progress::new(done, total, Some("items".into()))
}

/// A thread for each device after the first, kept for the whole run: spawning one
/// per step costs more than a step's share of the work.
struct Workers {
    lanes: Vec<Lane>,
}

struct Lane {
    input: Sender<(Model, MnistBatch)>,
    output: Receiver<std::thread::Result<TrainOutput<ClassificationOutput>>>,
}

impl Workers {
    fn new(devices: &[Device]) -> Self {
        let lanes = devices
            .iter()
            .map(|device| {
                let (input, work) = channel::<(Model, MnistBatch)>();
                let (done, output) = channel();
                let device = device.clone();
                std::thread::spawn(move || {
                    while let Ok((model, batch)) = work.recv() {
                        let step = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            TrainStep::step(&model.fork(&device), batch)
                        }));
                        if done.send(step).is_err() {
                            return;
                        }
                    }
                });
                Lane { input, output }
            })
            .collect();
        Self { lanes }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a training worker panicked".into())
}
