//! Scoring a trained model on a labelled data set: loss, accuracy, per-class accuracy
//! and the confusion matrix.

use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::MnistDataset;
use model::Network;

use super::{Classifier, most_likely};
use crate::TrainerError;

/// How a model did on a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy per image.
    pub loss: f64,
    pub correct: usize,
    pub(crate) total: usize,
    /// `confusion[true_class][predicted_class]` counts images.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Percentage of images classified correctly.
    pub fn accuracy(&self) -> f64 {
        percent(self.correct, self.total)
    }

    /// The text `trainer eval` prints: the totals, each class's accuracy under its
    /// name, and the confusion matrix.
    pub fn report(&self, class_names: &[String]) -> String {
        let mut lines = vec![
            format!(
                "test loss {:.4}  accuracy {:.2}%  ({}/{} correct)",
                self.loss,
                self.accuracy(),
                self.correct,
                self.total
            ),
            "per-class accuracy:".to_string(),
        ];
        for (class, name) in class_names.iter().enumerate() {
            lines.push(match self.class_accuracy(class) {
                Some(accuracy) => format!("  {name:>2}: {accuracy:6.2}%"),
                None => format!("  {name:>2}:     - (no test images)"),
            });
        }
        lines.push("confusion matrix (rows: true class, columns: predicted):".to_string());
        let header: String = (0..self.confusion.len())
            .map(|c| format!("{c:>6}"))
            .collect();
        lines.push(format!("    {header}"));
        for (class, row) in self.confusion.iter().enumerate() {
            let cells: String = row.iter().map(|n| format!("{n:>6}")).collect();
            lines.push(format!("  {class:>2}{cells}"));
        }
        lines.join("\n")
    }

    /// Percentage of the images of `class` classified correctly; `None` if the data
    /// holds none of that class.
    pub(crate) fn class_accuracy(&self, class: usize) -> Option<f64> {
        let row = self.confusion.get(class)?;
        let total: usize = row.iter().sum();
        (total > 0).then(|| percent(row[class], total))
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Runs `model` over every image of `dataset` in batches of `batch_size`, through a
/// [`Classifier`] (the fused loops on the CPU, where the network allows them).
pub fn evaluate(
    model: &Network,
    dataset: &MnistDataset,
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation, TrainerError> {
    let classifier = Classifier::new(model.clone(), device);
    let mut loss_sum = 0.0;
    let mut correct = 0;
    let mut confusion: Vec<Vec<usize>> = Vec::new();
    let positions: Vec<usize> = (0..dataset.len()).collect();
    for chunk in positions.chunks(batch_size.max(1)) {
        let items = dataset
            .items_at(chunk)
            .ok_or_else(|| TrainerError::Batch(dataset.unavailable(chunk).to_string()))?;
        let images = items.iter().map(|(image, _)| image.as_ref());
        let pixels = kernels::gather::scaled_pixels(images, dataset.image_len());
        let logits = classifier.logits(&pixels, chunk.len())?;
        let classes = logits.len() / chunk.len();
        if confusion.is_empty() {
            confusion = vec![vec![0; classes]; classes];
        }
        for (row, &(_, label)) in logits.chunks(classes.max(1)).zip(&items) {
            let (truth, guess) = (usize::from(label), most_likely(row));
            loss_sum += cross_entropy(row, truth);
            correct += usize::from(truth == guess);
            if let Some(cell) = confusion.get_mut(truth).and_then(|row| row.get_mut(guess)) {
                *cell += 1;
            }
        }
    }
    let total = dataset.len();
    Ok(Evaluation {
        loss: if total == 0 {
            0.0
        } else {
            loss_sum / total as f64
        },
        correct,
        total,
        confusion,
    })
}

/// `-log softmax(logits)[truth]`, in `f64`; infinite for a class the logits lack.
fn cross_entropy(logits: &[f32], truth: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let max = f64::from(max);
    let sum: f64 = logits.iter().map(|&l| (f64::from(l) - max).exp()).sum();
    logits
        .get(truth)
        .map_or(f64::INFINITY, |&l| sum.ln() + max - f64::from(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracies_come_from_the_confusion_matrix() {
        let evaluation = Evaluation {
            loss: 0.5,
            correct: 5,
            total: 8,
            confusion: vec![vec![3, 1, 0], vec![2, 2, 0], vec![0, 0, 0]],
        };
        assert_eq!(evaluation.accuracy(), 62.5);
        assert_eq!(evaluation.class_accuracy(0), Some(75.0));
        assert_eq!(evaluation.class_accuracy(1), Some(50.0));
        assert_eq!(evaluation.class_accuracy(2), None);
        assert_eq!(evaluation.class_accuracy(3), None);
        let names = ["zero", "one", "two"].map(String::from);
        let report = evaluation.report(&names);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "test loss 0.5000  accuracy 62.50%  (5/8 correct)");
        assert_eq!(lines[2], "  zero:  75.00%");
        assert_eq!(lines[4], "  two:     - (no test images)");
        assert_eq!(lines[6], "         0     1     2");
        assert_eq!(lines[7], "   0     3     1     0");
        assert_eq!(lines.len(), 10);
    }

    #[test]
    fn batched_scores_match_scoring_image_by_image() {
        let device = Device::flex();
        device.seed(3);
        let pixels: Vec<u8> = (0..7 * 4).map(|i| (i * 37 % 256) as u8).collect();
        let labels = vec![0, 1, 2, 0, 1, 2, 1];
        let set =
            data::LabelledImages::from_parts(2, 2, pixels, labels.clone()).expect("parts agree");
        let dataset = MnistDataset::new(set);
        let model = model::NetworkConfig::new()
            .with_input_size(4)
            .with_hidden_sizes(vec![5])
            .with_num_classes(3)
            .init(&device);

        let mut expected_loss = 0.0;
        let mut expected_confusion = vec![vec![0; 3]; 3];
        for (index, &label) in labels.iter().enumerate() {
            let item = dataset.item(index).expect("in range");
            let input: Vec<f32> = item.pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
            let logits = model
                .forward(Tensor::from_data(TensorData::new(input, [1, 4]), &device))
                .try_into_vec_as::<f64>()
                .expect("readable");
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            let log_sum = logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln() + max;
            expected_loss += log_sum - logits[usize::from(label)];
            let guess = (0..3)
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                .expect("3 classes");
            expected_confusion[usize::from(label)][guess] += 1;
        }
        expected_loss /= labels.len() as f64;

        let evaluation = evaluate(&model, &dataset, 3, &device).expect("evaluates");
        assert_eq!(evaluation.total, 7);
        assert_eq!(evaluation.confusion, expected_confusion);
        let diagonal: usize = (0..3).map(|c| expected_confusion[c][c]).sum();
        assert_eq!(evaluation.correct, diagonal);
        assert!(
            (evaluation.loss - expected_loss).abs() < 1e-5,
            "{} vs {expected_loss}",
            evaluation.loss
        );
    }
}
