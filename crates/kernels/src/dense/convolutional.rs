//! A CNN's inference as plain loops: each image through its convolution blocks (the
//! direct convolution of [`crate::conv`], with any batch norm already folded into its
//! kernels and bias by the caller), the activation and max pooling in one pass over
//! each block's output, then the fully connected head as a [`DenseNetwork`]. A batch
//! is split over the cores a few images per task; a few images run on the calling
//! thread, so that serving one image never waits for another thread.

use pulp::Simd;

use super::{Activation, DenseNetwork, split_over_cores};
use crate::conv::Padding;
use crate::conv::direct::{Geometry, convolve, packed};

/// Images per task when a batch is split over the cores: an image costs tens of
/// microseconds, so a handful makes the scheduling cost small and shares a thousand
/// images evenly.
const IMAGES_PER_TASK: usize = 8;

/// One convolution block's parameters, in eval mode: a square convolution of stride 1
/// whose kernels and bias already hold any batch norm, then the activation and max
/// pooling.
#[derive(Debug, Clone)]
pub struct ConvBlockWeights {
    /// `[out_channels, in_channels, kernel_size, kernel_size]`, as Burn's `Conv2d`.
    pub weight: Vec<f32>,
    /// `[out_channels]`.
    pub bias: Vec<f32>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: usize,
    /// Zeros on each side of the input.
    pub padding: usize,
    pub activation: Activation,
    /// Side and stride of the max pooling; 0 for none.
    pub pool: usize,
}

/// Convolution blocks, then fully connected layers: a CNN ready to map images to class
/// scores.
#[derive(Debug, Clone)]
pub struct ConvNetwork {
    /// Each input channel's `(means, standard deviations)`, taken from its pixels
    /// before the first block.
    standardization: Option<(Vec<f32>, Vec<f32>)>,
    /// The image: `[channels, height, width]`.
    input: [usize; 3],
    blocks: Vec<PackedBlock>,
    head: DenseNetwork,
}

#[derive(Debug, Clone)]
struct PackedBlock {
    geometry: Geometry,
    /// The kernels as [`packed`] lays them out.
    kernels: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
    pool: usize,
    /// `[channels, height, width]` after the pooling.
    output: [usize; 3],
}

impl ConvNetwork {
    /// The network of `blocks` over images of `input` (`[channels, height, width]`),
    /// then `head` over the last block's maps, flattened channel by channel, each
    /// input channel first standardised by its `(mean, std)` in `standardization`;
    /// `None` when the sizes do not chain.
    pub fn new(
        input: [usize; 3],
        standardization: Option<(Vec<f32>, Vec<f32>)>,
        blocks: &[ConvBlockWeights],
        head: DenseNetwork,
    ) -> Option<Self> {
        let mut shape = input;
        let mut packed_blocks = Vec::with_capacity(blocks.len());
        for block in blocks {
            let [channels, height, width] = shape;
            let k = block.kernel_size;
            let sized = channels == block.in_channels
                && block.weight.len() == block.out_channels * channels * k * k
                && block.bias.len() == block.out_channels
                && k > 0
                && height + 2 * block.padding >= k
                && width + 2 * block.padding >= k;
            if !sized {
                return None;
            }
            let padding: Padding = [(block.padding, block.padding); 2];
            let geometry = Geometry {
                in_channels: channels,
                height,
                width,
                out_channels: block.out_channels,
                kernel: [k, k],
                padding,
            };
            let [out_height, out_width] = geometry.output();
            let output = match block.pool {
                0 => [block.out_channels, out_height, out_width],
                pool if pool <= out_height.min(out_width) => {
                    [block.out_channels, out_height / pool, out_width / pool]
                }
                _ => return None,
            };
            packed_blocks.push(PackedBlock {
                geometry,
                kernels: packed(&block.weight, &geometry, false),
                bias: block.bias.clone(),
                activation: block.activation,
                pool: block.pool,
                output,
            });
            shape = output;
        }
        let per_channel = |values: &Vec<f32>| values.len() == input[0];
        if let Some((mean, std)) = &standardization
            && !(per_channel(mean) && per_channel(std))
        {
            return None;
        }
        let [channels, height, width] = shape;
        (head.input_size() == channels * height * width).then_some(Self {
            standardization,
            input,
            blocks: packed_blocks,
            head,
        })
    }

    /// The pixels each image has.
    pub fn input_size(&self) -> usize {
        self.input.iter().product()
    }

    /// Maps images to unnormalised class scores, as the network would through Burn.
    ///
    /// # Shapes
    /// - `images`: `[batch * channels * height * width]`, each image channel by channel,
    ///   row by row
    /// - returns: `[batch * num_classes]`, row-major
    pub fn forward(&self, images: &[f32]) -> Vec<f32> {
        let sizes = [self.input_size(), self.head.num_classes()];
        split_over_cores(images, sizes, IMAGES_PER_TASK, |images, logits| {
            self.forward_on_this_thread(images, logits)
        })
    }

    fn forward_on_this_thread(&self, images: &[f32], logits: &mut [f32]) {
        let count = images.len() / self.input_size().max(1);
        let mut features = vec![0.0; count * self.head.input_size()];
        pulp::Arch::new().dispatch(Blocks {
            network: self,
            images,
            features: &mut features,
        });
        self.head.forward_on_this_thread(&features, logits);
    }
}

/// The convolution blocks over a run of images, compiled again for each instruction
/// set pulp detects at run time.
struct Blocks<'a> {
    network: &'a ConvNetwork,
    images: &'a [f32],
    /// `[images, head inputs]`: the last block's maps of each image.
    features: &'a mut [f32],
}

impl pulp::WithSimd for Blocks<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let network = self.network;
        let input_size = network.input_size().max(1);
        let feature_size = network.head.input_size().max(1);
        // Each block's padded input keeps its zero borders from one image to the
        // next: only the inside is written again.
        let mut planes: Vec<Vec<f32>> = network
            .blocks
            .iter()
            .map(|block| vec![0.0; block.geometry.padded_len()])
            .collect();
        let mut convolved = Vec::new();
        let mut maps = Vec::new();
        for (image, features) in self
            .images
            .chunks_exact(input_size)
            .zip(self.features.chunks_exact_mut(feature_size))
        {
            maps.clear();
            match &network.standardization {
                Some((means, stds)) => {
                    let [_, height, width] = network.input;
                    let planes = image.chunks_exact((height * width).max(1));
                    for ((plane, mean), std) in planes.zip(means).zip(stds) {
                        maps.extend(plane.iter().map(|x| (x - mean) / std));
                    }
                }
                None => maps.extend_from_slice(image),
            }
            for (block, planes) in network.blocks.iter().zip(&mut planes) {
                let g = &block.geometry;
                g.pad_into(&maps, planes);
                let [out_height, out_width] = g.output();
                convolved.resize(g.out_channels * out_height * out_width, 0.0);
                convolve(
                    simd,
                    planes,
                    &block.kernels,
                    Some(&block.bias),
                    g,
                    &mut convolved,
                );
                block.activate_and_pool(&convolved, &mut maps);
            }
            features.copy_from_slice(&maps);
        }
    }
}

impl PackedBlock {
    /// `maps` = the activation of the max pooling of `convolved`, which holds
    /// the convolution's output. The activations are monotonic, so pooling first
    /// gives the same values for a quarter of the evaluations.
    fn activate_and_pool(&self, convolved: &[f32], maps: &mut Vec<f32>) {
        let [out_height, out_width] = self.geometry.output();
        maps.clear();
        if self.pool == 0 {
            maps.extend_from_slice(convolved);
        } else {
            let [_, height, width] = self.output;
            let pool = self.pool;
            for channel in convolved.chunks_exact(out_height * out_width) {
                for y in 0..height {
                    let rows = &channel[y * pool * out_width..][..pool * out_width];
                    for x in 0..width {
                        let window = rows
                            .chunks_exact(out_width)
                            .flat_map(|row| &row[x * pool..][..pool]);
                        maps.push(window.fold(f32::NEG_INFINITY, |top, &v| top.max(v)));
                    }
                }
            }
        }
        self.activation.apply_in_place(maps);
    }
}
