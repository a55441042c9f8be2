//! A convolution block of the CNN: its config (channels, kernel, padding, batch norm,
//! activation, pooling, dropout), the shape arithmetic that checks it, and the module.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, PaddingConfig2d};
use burn::prelude::*;
use kernels::conv::conv2d_forward;
use kernels::norm_relu_pool::norm_relu_pool;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;

/// One block: a square convolution (stride 1), then batch norm, the activation, max
/// pooling and dropout, each optional but the convolution and the activation. In a
/// config file only `channels` is required; a key it does not know is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvBlockConfig {
    /// Output channels (feature maps).
    pub channels: usize,
    /// Side of the square kernel.
    #[serde(default = "default_kernel_size")]
    pub kernel_size: usize,
    /// Zeros added on each side of the input; 1 keeps a 3x3 convolution's map size.
    #[serde(default = "default_padding")]
    pub padding: usize,
    /// A batch norm between the convolution and the activation; the convolution then
    /// has no bias, which the norm's shift would cancel.
    #[serde(default)]
    pub batch_norm: bool,
    /// The non-linearity after the convolution (and the norm).
    #[serde(default)]
    pub activation: Activation,
    /// Side and stride of a square max pooling after the activation; 0 for none.
    #[serde(default)]
    pub pool: usize,
    /// Probability of zeroing each activation while training; 0 disables it.
    #[serde(default)]
    pub dropout: f64,
}

fn default_kernel_size() -> usize {
    3
}

fn default_padding() -> usize {
    1
}

impl ConvBlockConfig {
    /// A 3x3 convolution to `channels` maps, padded to keep its size, then a ReLU.
    pub fn new(channels: usize) -> Self {
        Self {
            channels,
            kernel_size: default_kernel_size(),
            padding: default_padding(),
            batch_norm: false,
            activation: Activation::Relu,
            pool: 0,
            dropout: 0.0,
        }
    }

    pub fn with_kernel_size(self, kernel_size: usize) -> Self {
        Self {
            kernel_size,
            ..self
        }
    }

    pub fn with_padding(self, padding: usize) -> Self {
        Self { padding, ..self }
    }

    pub fn with_batch_norm(self, batch_norm: bool) -> Self {
        Self { batch_norm, ..self }
    }

    pub fn with_pool(self, pool: usize) -> Self {
        Self { pool, ..self }
    }

    pub fn with_dropout(self, dropout: f64) -> Self {
        Self { dropout, ..self }
    }
}

/// Why a block cannot be built on its input: the key (within the block) and the
/// reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct BlockError {
    pub key: &'static str,
    pub reason: String,
}

impl ConvBlockConfig {
    /// The `[channels, height, width]` this block makes of `input`, or why it cannot.
    pub fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3], BlockError> {
        let error = |key, reason: String| Err(BlockError { key, reason });
        if self.channels == 0 {
            return error("channels", "is 0; a block needs at least 1".into());
        }
        if self.kernel_size == 0 {
            return error("kernel_size", "is 0; a kernel is at least 1x1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return error(
                "dropout",
                format!("is {}; it is a probability in [0, 1)", self.dropout),
            );
        }
        let [_, height, width] = input;
        let padded = height.min(width) + 2 * self.padding;
        if self.kernel_size > padded {
            return error(
                "kernel_size",
                format!(
                    "is {}, larger than its {height}x{width} input with padding {}",
                    self.kernel_size, self.padding
                ),
            );
        }
        let side = |n: usize| n + 2 * self.padding + 1 - self.kernel_size;
        let (height, width) = (side(height), side(width));
        if self.pool > height.min(width) {
            return error(
                "pool",
                format!("is {}, larger than its {height}x{width} input", self.pool),
            );
        }
        Ok(match self.pool {
            0 => [self.channels, height, width],
            pool => [self.channels, height / pool, width / pool],
        })
    }

    /// Parameters: the kernels, the bias or the norm's scale and shift.
    pub fn num_params(&self, in_channels: usize) -> usize {
        self.kernel_size * self.kernel_size * in_channels * self.channels
            + self.channels
            + if self.batch_norm { self.channels } else { 0 }
    }

    /// A short name, e.g. `conv32k3bn+pool2`.
    pub fn label(&self) -> String {
        let mut label = format!("conv{}k{}", self.channels, self.kernel_size);
        if self.batch_norm {
            label.push_str("bn");
        }
        if self.pool > 0 {
            label.push_str(&format!("+pool{}", self.pool));
        }
        label
    }

    /// Builds the block for `in_channels` input channels, freshly initialised.
    pub fn init(&self, in_channels: usize, device: &Device) -> ConvBlock {
        let kernel = [self.kernel_size, self.kernel_size];
        let padding =
            PaddingConfig2d::Explicit(self.padding, self.padding, self.padding, self.padding);
        ConvBlock {
            conv: Conv2dConfig::new([in_channels, self.channels], kernel)
                .with_padding(padding)
                .with_bias(!self.batch_norm)
                .init(device),
            norm: self
                .batch_norm
                .then(|| BatchNormConfig::new(self.channels).init(device)),
            pool: (self.pool > 0).then(|| MaxPool2dConfig::new([self.pool, self.pool]).init()),
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            activation: self.activation,
        }
    }
}

/// A convolution, optional batch norm, activation, optional max pooling and dropout.
#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub norm: Option<BatchNorm>,
    pool: Option<MaxPool2d>,
    dropout: Option<Dropout>,
    #[module(skip)]
    pub(crate) activation: Activation,
}

impl ConvBlock {
    /// # Shapes
    /// - `maps`: `[batch, in_channels, height, width]`
    /// - returns: `[batch, channels, height', width']`, `height'` being
    ///   `(height + 2 * padding - kernel_size + 1) / pool`, and likewise `width'`
    pub fn forward(&self, maps: Tensor<4>) -> Tensor<4> {
        let maps = conv2d_forward(&self.conv, maps);
        let maps = match (&self.norm, self.activation, self.square_pool()) {
            // The CNN's usual block: one op, forward and backward.
            (Some(norm), Activation::Relu, Some(pool)) => norm_relu_pool(norm, maps, pool),
            (norm, activation, _) => {
                let maps = match norm {
                    Some(norm) => norm.forward(maps),
                    None => maps,
                };
                let maps = activation.apply(maps);
                match &self.pool {
                    Some(pool) => pool.forward(maps),
                    None => maps,
                }
            }
        };
        match &self.dropout {
            Some(dropout) => dropout.forward(maps),
            None => maps,
        }
    }
}

impl ConvBlock {
    /// The side of the max pooling (0 for none) where it is a square window moved by
    /// its own side over the maps without padding, as blocks build it; `None` for
    /// another pooling (from a hand-made record).
    pub(crate) fn square_pool(&self) -> Option<usize> {
        let Some(pool) = &self.pool else {
            return Some(0);
        };
        let [side, other] = pool.kernel_size;
        let square = side == other
            && pool.stride == [side, side]
            && pool.dilation == [1, 1]
            && !pool.ceil_mode
            && matches!(pool.padding, PaddingConfig2d::Valid);
        square.then_some(side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_kernel_padding_and_pooling() {
        let block = ConvBlockConfig::new(32);
        assert_eq!(block.output_shape([1, 28, 28]), Ok([32, 28, 28]));
        let pooled = ConvBlockConfig::new(8)
            .with_kernel_size(5)
            .with_padding(0)
            .with_pool(2);
        assert_eq!(pooled.output_shape([1, 28, 28]), Ok([8, 12, 12]));
        let device = Device::flex();
        let maps = pooled
            .init(1, &device)
            .forward(Tensor::zeros([2, 1, 28, 28], &device));
        assert_eq!(maps.dims(), [2, 8, 12, 12]);
    }

    #[test]
    fn impossible_blocks_name_their_key() {
        let key = |block: ConvBlockConfig, input| block.output_shape(input).map_err(|e| e.key);
        assert_eq!(key(ConvBlockConfig::new(0), [1, 28, 28]), Err("channels"));
        assert_eq!(
            key(
                ConvBlockConfig::new(4).with_kernel_size(9).with_padding(0),
                [4, 7, 7]
            ),
            Err("kernel_size")
        );
        assert_eq!(
            key(ConvBlockConfig::new(4).with_pool(8), [1, 7, 7]),
            Err("pool")
        );
        assert_eq!(
            key(ConvBlockConfig::new(4).with_dropout(1.0), [1, 7, 7]),
            Err("dropout")
        );
    }

    #[test]
    fn parameters_are_counted_as_pytorch_counts_trainable_ones() {
        let device = Device::flex();
        for (block, running_statistics) in [
            (ConvBlockConfig::new(16), 0),
            (
                ConvBlockConfig::new(16)
                    .with_batch_norm(true)
                    .with_kernel_size(5),
                2 * 16,
            ),
        ] {
            // Burn also counts a batch norm's running mean and variance.
            let burn = block.init(3, &device).num_params();
            assert_eq!(block.num_params(3), burn - running_statistics);
        }
    }
}
