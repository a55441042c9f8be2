//! The model summary `trainer summary` prints and training starts with: a row per
//! layer with its output shape and parameter count, as torchinfo prints for PyTorch.

use model::{Activation, NetworkConfig, Normalization};

/// The table for the network `config` describes.
pub fn model_summary(config: &NetworkConfig) -> String {
    let activation = name_of(config.activation);
    let mut rows: Vec<(String, String, usize)> =
        vec![("input".to_string(), shape(config.input_size), 0)];
    let channels = config.image_shape().map_or(1, |[channels, _, _]| channels);
    let standardization = config.normalization.per_channel(channels);
    let normalize = match (&config.normalization, standardization) {
        (Normalization::Dataset, _) => {
            Some("normalize per channel, by the training split's".into())
        }
        (_, None) => None,
        (_, Some(standardization)) => Some(match standardization.uniform() {
            Some((mean, std)) => format!("normalize (x - {mean}) / {std}"),
            None => format!(
                "normalize (x - {:?}) / {:?} per channel",
                standardization.mean, standardization.std
            ),
        }),
    };
    if let Some(normalize) = normalize {
        rows.push((normalize, shape(config.input_size), 0));
    }
    let maps = config.feature_maps().unwrap_or_default();
    let side = config.image_side().unwrap_or(0);
    let mut input = [1, side, side];
    for (index, (block, &[channels, height, width])) in config.conv.iter().zip(&maps).enumerate() {
        let number = index + 1;
        let k = block.kernel_size;
        let in_channels = input[0];
        let [_, conv_height, conv_width] = block
            .clone()
            .with_pool(0)
            .output_shape(input)
            .unwrap_or_default();
        let conv_shape = format!("[batch, {channels}, {conv_height}, {conv_width}]");
        let weights = k * k * in_channels * channels;
        let conv_name = format!("conv{number} (Conv2d {k}x{k}, padding {})", block.padding);
        if block.batch_norm {
            rows.push((conv_name, conv_shape.clone(), weights));
            rows.push((
                format!("bn{number} (BatchNorm2d)"),
                conv_shape.clone(),
                2 * channels,
            ));
        } else {
            rows.push((conv_name, conv_shape.clone(), weights + channels));
        }
        rows.push((
            format!(
                "{} ({})",
                name_of(block.activation).to_lowercase(),
                name_of(block.activation)
            ),
            conv_shape,
            0,
        ));
        let shape = format!("[batch, {channels}, {height}, {width}]");
        if block.pool > 0 {
            rows.push((
                format!("max_pool (MaxPool2d {})", block.pool),
                shape.clone(),
                0,
            ));
        }
        if block.dropout > 0.0 {
            rows.push((format!("dropout (p={})", block.dropout), shape, 0));
        }
        input = [channels, height, width];
    }
    let widths = config.widths();
    if !config.conv.is_empty() {
        rows.push(("flatten".to_string(), shape(widths[0]), 0));
    }
    let layers = config.layer_names();
    let fully_connected = &layers[layers.len() - (widths.len() - 1)..];
    for (index, ((_, name), pair)) in fully_connected.iter().zip(widths.windows(2)).enumerate() {
        let (inputs, outputs) = (pair[0], pair[1]);
        rows.push((
            format!("{name} (Linear)"),
            shape(outputs),
            inputs * outputs + outputs,
        ));
        if index + 1 < fully_connected.len() {
            rows.push((
                format!("{} ({activation})", activation.to_lowercase()),
                shape(outputs),
                0,
            ));
            if config.dropout > 0.0 {
                rows.push((format!("dropout (p={})", config.dropout), shape(outputs), 0));
            }
        }
    }
    let total = config.num_params();
    let width = rows
        .iter()
        .map(|(name, _, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let shapes = rows
        .iter()
        .map(|(_, shape, _)| shape.len())
        .max()
        .unwrap_or(0)
        .max(16);
    let mut lines = vec![format!(
        "{:<width$}  {:<shapes$}  {:>12}",
        "layer", "output shape", "parameters"
    )];
    lines.extend(rows.iter().map(|(name, shape, params)| {
        format!(
            "{name:<width$}  {shape:<shapes$}  {:>12}",
            thousands(*params)
        )
    }));
    lines.push(format!(
        "total parameters: {} ({}), all trainable",
        thousands(total),
        config.architecture()
    ));
    lines.join("\n")
}

/// PyTorch's name of the activation's module.
fn name_of(activation: Activation) -> &'static str {
    match activation {
        Activation::Relu => "ReLU",
        Activation::Gelu => "GELU",
        Activation::Tanh => "Tanh",
        Activation::Sigmoid => "Sigmoid",
    }
}

fn shape(width: usize) -> String {
    format!("[batch, {width}]")
}

/// `55050` as `55,050`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_network_has_55050_parameters_in_three_linear_layers() {
        let summary = model_summary(&NetworkConfig::new());
        let lines: Vec<&str> = summary.lines().collect();
        assert!(lines[0].starts_with("layer"));
        assert!(lines[2].starts_with("fc1 (Linear)") && lines[2].ends_with("50,240"));
        assert!(lines[3].starts_with("relu (ReLU)") && lines[3].contains("[batch, 64]"));
        assert!(lines[6].starts_with("fc3 (Linear)") && lines[6].ends_with("650"));
        assert_eq!(
            lines.last().copied(),
            Some("total parameters: 55,050 (784-64-64-10), all trainable")
        );
        let burn = NetworkConfig::new().init(&burn::prelude::Device::flex());
        assert_eq!(burn::module::Module::num_params(&burn), 55_050);
    }

    #[test]
    fn normalisation_dropout_and_other_widths_show() {
        let config = NetworkConfig::new()
            .with_hidden_sizes(vec![100])
            .with_dropout(0.2)
            .with_activation(Activation::Gelu)
            .with_normalization(model::Normalization::Mnist);
        let summary = model_summary(&config);
        assert!(
            summary.contains("normalize (x - 0.1307) / 0.3081"),
            "{summary}"
        );
        assert!(summary.contains("gelu (GELU)") && summary.contains("dropout (p=0.2)"));
        assert!(summary.ends_with("total parameters: 79,510 (784-100-10), all trainable"));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn a_cnn_shows_its_blocks_and_counts_as_burn_does() {
        let config = NetworkConfig::new()
            .with_kind(model::NetworkKind::Cnn)
            .with_conv(vec![
                model::ConvBlockConfig::new(8).with_batch_norm(true),
                model::ConvBlockConfig::new(16)
                    .with_kernel_size(5)
                    .with_padding(0)
                    .with_pool(2),
            ])
            .with_hidden_sizes(vec![32]);
        let summary = model_summary(&config);
        let row = |name: &str, shape: &str| {
            summary
                .lines()
                .any(|line| line.starts_with(name) && line.contains(shape))
        };
        assert!(
            row("conv1 (Conv2d 3x3, padding 1)", "[batch, 8, 28, 28]"),
            "{summary}"
        );
        assert!(row("bn1 (BatchNorm2d)", "[batch, 8, 28, 28]"), "{summary}");
        assert!(
            row("conv2 (Conv2d 5x5, padding 0)", "[batch, 16, 24, 24]"),
            "{summary}"
        );
        assert!(
            row("max_pool (MaxPool2d 2)", "[batch, 16, 12, 12]"),
            "{summary}"
        );
        assert!(row("flatten", "[batch, 2304]"), "{summary}");
        let rows: usize = summary
            .lines()
            .skip(1)
            .filter(|line| !line.starts_with("total"))
            .filter_map(|line| {
                line.rsplit("  ")
                    .next()?
                    .trim()
                    .replace(',', "")
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        assert_eq!(rows, config.num_params());
        // Burn also counts the batch norm's running mean and variance.
        let burn = config.init(&burn::prelude::Device::flex());
        assert_eq!(rows + 2 * 8, burn::module::Module::num_params(&burn));
    }
}
