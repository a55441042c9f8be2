//! The model summary `trainer summary` prints and training starts with: a row per
//! layer with its output shape and parameter count, as torchinfo prints for PyTorch.

use model::{Activation, MlpConfig};

/// The table for the network `config` describes.
pub fn model_summary(config: &MlpConfig) -> String {
    let activation = match config.activation {
        Activation::Relu => "ReLU",
        Activation::Gelu => "GELU",
        Activation::Tanh => "Tanh",
        Activation::Sigmoid => "Sigmoid",
    };
    let mut rows: Vec<(String, String, usize)> =
        vec![("input".to_string(), shape(config.input_size), 0)];
    if let Some((mean, std)) = config.normalization.statistics() {
        rows.push((
            format!("normalize (x - {mean}) / {std}"),
            shape(config.input_size),
            0,
        ));
    }
    let widths = config.widths();
    let layers = config.layer_names();
    for (index, ((_, name), pair)) in layers.iter().zip(widths.windows(2)).enumerate() {
        let (inputs, outputs) = (pair[0], pair[1]);
        rows.push((
            format!("{name} (Linear)"),
            shape(outputs),
            inputs * outputs + outputs,
        ));
        if index + 1 < layers.len() {
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
    let mut lines = vec![format!(
        "{:<width$}  {:<16}  {:>12}",
        "layer", "output shape", "parameters"
    )];
    lines.extend(rows.iter().map(|(name, shape, params)| {
        format!("{name:<width$}  {shape:<16}  {:>12}", thousands(*params))
    }));
    lines.push(format!(
        "total parameters: {} ({}), all trainable",
        thousands(total),
        config.architecture()
    ));
    lines.join("\n")
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
        let summary = model_summary(&MlpConfig::new());
        let lines: Vec<&str> = summary.lines().collect();
        assert!(lines[0].starts_with("layer"));
        assert!(lines[2].starts_with("fc1 (Linear)") && lines[2].ends_with("50,240"));
        assert!(lines[3].starts_with("relu (ReLU)") && lines[3].contains("[batch, 64]"));
        assert!(lines[6].starts_with("fc3 (Linear)") && lines[6].ends_with("650"));
        assert_eq!(
            lines.last().copied(),
            Some("total parameters: 55,050 (784-64-64-10), all trainable")
        );
        let burn = MlpConfig::new().init(&burn::prelude::Device::flex());
        assert_eq!(burn::module::Module::num_params(&burn), 55_050);
    }

    #[test]
    fn normalisation_dropout_and_other_widths_show() {
        let config = MlpConfig::new()
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
}
