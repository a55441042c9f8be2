//! The [`Network`] as Burn's Learner trains it: a classifier scored by cross-entropy. It
//! lives in training rather than in the `model` crate because Burn's training traits
//! are a concern of training, not of the network.

use burn::prelude::*;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use data::MnistBatch;
use model::Network;

use kernels::cross_entropy::cross_entropy;

/// A [`Network`] whose steps return the cross-entropy loss (one fused op, see
/// [`cross_entropy`]) with the logits.
#[derive(Module, Debug)]
pub(crate) struct CrossEntropyClassifier {
    /// Named so since the first checkpoints, whose records hold `mlp.*` tensors.
    pub(crate) mlp: Network,
}

impl CrossEntropyClassifier {
    fn classify(&self, batch: MnistBatch) -> ClassificationOutput {
        let logits = self.mlp.forward(batch.images);
        let loss = cross_entropy(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl TrainStep for CrossEntropyClassifier {
    type Input = MnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: MnistBatch) -> TrainOutput<ClassificationOutput> {
        let output = self.classify(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for CrossEntropyClassifier {
    type Input = MnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: MnistBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}
