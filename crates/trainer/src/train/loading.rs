//! A run's data: read, split into training, validation and test sets, with the
//! network's input size and class count fitted to it.

use std::time::{Duration, Instant};

use burn::data::dataset::Dataset;
use data::{Mnist, MnistDataset};
use model::Normalization;

use crate::TrainerError;
use crate::config::{ConfigError, TrainingConfig};
use crate::console::Console;
use crate::infer::warn_skipped;
use crate::report::model_summary;

/// The data of a run, split, with the config fitted to it.
pub(crate) struct Loaded {
    pub(crate) config: TrainingConfig,
    pub(crate) train_set: MnistDataset,
    pub(crate) valid_set: MnistDataset,
    pub(crate) test_set: MnistDataset,
    pub(crate) data_load: Duration,
}

/// Reads the data and fits the config to it, saying what was found and what will train.
pub(crate) fn load(
    config: TrainingConfig,
    data_dir: Option<&std::path::Path>,
    console: Console,
) -> Result<Loaded, TrainerError> {
    config.validate()?;
    let loading = Instant::now();
    let (mnist, split) =
        Mnist::load_split(data_dir, &config.split, config.limit_train, &config.data)?;
    let data_load = loading.elapsed();
    warn_skipped(&mnist.skipped);
    console.line(format_args!(
        "data {}: {} training and {} test images of {}x{}{}, {} classes",
        mnist.source,
        mnist.train.len(),
        mnist.test.len(),
        mnist.train.rows(),
        mnist.train.cols(),
        match mnist.train.channels() {
            1 => String::new(),
            channels => format!("x{channels}"),
        },
        mnist.num_classes()
    ));
    let config = fit_to_data(config, &mnist)?;
    config.check_memory()?;
    let (train_set, valid_set, test_set) = mnist.into_sets(split?);
    let config = fit_normalization(config, &train_set)?;
    console.line(format_args!(
        "training on {} images, validating on {}; model {} ({} parameters)\n{}",
        train_set.len(),
        valid_set.len(),
        config.model.architecture(),
        config.model.num_params(),
        model_summary(&config.model)
    ));
    Ok(Loaded {
        config,
        train_set,
        valid_set,
        test_set,
        data_load,
    })
}

/// The config with a `"dataset"` standardisation replaced by the training split's
/// own per-channel statistics, which the run then records; its standardisation
/// checked against the data's channels.
fn fit_normalization(
    mut config: TrainingConfig,
    train_set: &MnistDataset,
) -> Result<TrainingConfig, ConfigError> {
    if config.model.normalization == Normalization::Dataset {
        let (mean, std) = train_set
            .channel_statistics()
            .into_iter()
            // A channel of one value needs centring only: dividing by 0 would blow up.
            .map(|(mean, std)| (mean as f32, if std > 0.0 { std as f32 } else { 1.0 }))
            .unzip();
        config.model.normalization = Normalization::Channels { mean, std };
    }
    let [channels, _, _] = train_set.image_shape();
    match config.model.normalization.invalid(Some(channels)) {
        Some(reason) => Err(ConfigError::Normalization(reason)),
        None => Ok(config),
    }
}

/// Refuses labels that cannot be a data set's classes when the class count is taken
/// from them: a single class, or a largest label far above the others, such as one
/// 255 among digits (most of the classes it would make have no image). A data set
/// that leaves a class or two empty, as EMNIST's letters leave 0, passes.
fn check_labels_name_classes(mnist: &Mnist) -> Result<(), TrainerError> {
    let classes = mnist.num_classes();
    let mut seen = vec![false; classes];
    for &label in mnist.train.labels().iter().chain(mnist.test.labels()) {
        seen[usize::from(label)] = true;
    }
    let empty = seen.iter().filter(|&&seen| !seen).count();
    if classes - empty < 2 {
        return Err(TrainerError::OneClass(classes.saturating_sub(1)));
    }
    if empty * 2 <= classes {
        return Ok(());
    }
    let max_label = classes.saturating_sub(1);
    let at = |labels: &[u8]| labels.iter().position(|&l| usize::from(l) == max_label);
    let (split, index) = match at(mnist.train.labels()) {
        Some(index) => ("training", index),
        None => ("test", at(mnist.test.labels()).unwrap_or(0)),
    };
    Err(TrainerError::NotClasses {
        classes,
        empty,
        max_label,
        split,
        index,
    })
}

/// The config with the network's input size and class count taken from the data:
/// the pixels per image, and `num_classes` if configured, else the largest label
/// plus one. A folder of pictures also gives the class names (its folders'), and the
/// channels and size its pictures were made, recorded for the commands that read
/// pictures for the run later.
fn fit_to_data(mut config: TrainingConfig, mnist: &Mnist) -> Result<TrainingConfig, TrainerError> {
    let needed = mnist.num_classes();
    let train = &mnist.train;
    match &mnist.class_names {
        Some(names) => {
            config.class_names = Some(names.clone());
            config.data.channels = Some(train.channels());
            config.data.image_size = Some([train.rows(), train.cols()]);
            config.model.input_shape = Some([train.channels(), train.rows(), train.cols()]);
        }
        None => {
            // IDX images are what they are: nothing of the pictures' keys applies.
            config.data.channels = None;
            config.data.image_size = None;
            if config.num_classes.is_none() {
                check_labels_name_classes(mnist)?;
            }
        }
    }
    let classes = config.num_classes.unwrap_or(needed);
    if classes < needed {
        return Err(TrainerError::TooFewClasses {
            max_label: needed - 1,
            classes,
            needed,
        });
    }
    if let Some(names) = &config.class_names
        && names.len() != classes
    {
        return Err(TrainerError::Config(ConfigError::Invalid {
            field: "class_names",
            rule: "one name per class of the data",
            value: format!("{} names for {classes} classes", names.len()),
        }));
    }
    config.model.input_size = mnist.train.image_len();
    config.model.num_classes = classes;
    Ok(config)
}
