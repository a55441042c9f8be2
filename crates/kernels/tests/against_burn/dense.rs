//! Inference as plain loops against the same layers through Burn's ops: an MLP's
//! ([`kernels::dense::DenseNetwork`]: random widths, depths, activations, layers with
//! and without bias, batches of one image to several tasks' worth, inputs mostly zero
//! as MNIST's are) and a CNN's ([`kernels::dense::ConvNetwork`]: random channels,
//! image sizes, kernels, paddings and poolings before such layers).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::{Distribution, activation};
use kernels::dense::{Activation, ConvBlockWeights, ConvNetwork, DenseNetwork, LayerWeights};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn numbers<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().expect("f32")
}

/// Burn's layers applied in order, `activation` after each but the last.
fn burns_forward(layers: &[Linear], activation: Activation, input: Tensor<2>) -> Tensor<2> {
    let last = layers.len() - 1;
    layers.iter().enumerate().fold(input, |x, (index, layer)| {
        let x = layer.forward(x);
        match (index == last, activation) {
            (true, _) => x,
            (false, Activation::Relu) => activation::relu(x),
            (false, Activation::Tanh) => activation::tanh(x),
            (false, Activation::Sigmoid) => activation::sigmoid(x),
        }
    })
}

fn weights_of(layer: &Linear) -> LayerWeights {
    let [inputs, outputs] = layer.weight.dims();
    LayerWeights {
        weight: numbers(layer.weight.val()),
        bias: layer.bias.as_ref().map(|bias| numbers(bias.val())),
        inputs,
        outputs,
    }
}

#[test]
fn dense_inference_equals_burns_layers_on_random_networks() {
    let device = Device::flex();
    for seed in 0..24 {
        let mut rng = StdRng::seed_from_u64(seed);
        device.seed(seed);
        let depth = rng.random_range(1..5);
        let mut widths = vec![rng.random_range(1..800)];
        widths.extend((0..depth).map(|_| rng.random_range(1..320)));
        let layers: Vec<Linear> = widths
            .windows(2)
            .map(|pair| {
                LinearConfig::new(pair[0], pair[1])
                    .with_bias(rng.random_bool(0.8))
                    .init(&device)
            })
            .collect();
        let activation =
            [Activation::Relu, Activation::Tanh, Activation::Sigmoid][seed as usize % 3];
        // One image, a few tiles and leftovers, or more than one thread's task.
        let batch = [1, 13, 130][rng.random_range(0..3)];
        let values =
            Tensor::<2>::random([batch, widths[0]], Distribution::Uniform(0.0, 1.0), &device);
        let keep =
            Tensor::<2>::random([batch, widths[0]], Distribution::Uniform(0.0, 1.0), &device)
                .greater_elem(0.8)
                .float();
        let input = values * keep;
        let weights: Vec<LayerWeights> = layers.iter().map(weights_of).collect();
        let dense = DenseNetwork::new(&weights, activation).expect("chained layers");
        let ours = dense.forward(&numbers(input.clone()));
        let burns = numbers(burns_forward(&layers, activation, input));
        assert_eq!(ours.len(), burns.len(), "seed {seed}");
        for (a, b) in ours.iter().zip(&burns) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "seed {seed}, widths {widths:?}: {a} against Burn's {b}"
            );
        }
    }
}

/// Burn's convolution, then `activation`, then max pooling of side `pool` (0: none).
fn burns_block(conv: &Conv2d, activation: Activation, pool: usize, maps: Tensor<4>) -> Tensor<4> {
    let maps = conv.forward(maps);
    let maps = match activation {
        Activation::Relu => activation::relu(maps),
        Activation::Tanh => activation::tanh(maps),
        Activation::Sigmoid => activation::sigmoid(maps),
    };
    match pool {
        0 => maps,
        pool => MaxPool2dConfig::new([pool, pool]).init().forward(maps),
    }
}

#[test]
fn conv_inference_equals_burns_convolutions_pooling_and_layers_on_random_networks() {
    let device = Device::flex();
    for seed in 0..24 {
        let mut rng = StdRng::seed_from_u64(seed);
        device.seed(seed);
        let activation =
            [Activation::Relu, Activation::Tanh, Activation::Sigmoid][seed as usize % 3];
        let channels = rng.random_range(1..4);
        let (height, width) = (rng.random_range(6..30), rng.random_range(6..30));
        let mut shape = [channels, height, width];
        let mut convs = Vec::new();
        let mut blocks = Vec::new();
        for _ in 0..rng.random_range(1..3) {
            let [in_channels, height, width] = shape;
            let kernel_size = rng.random_range(1..6).min(height).min(width);
            let padding = rng.random_range(0..3);
            let out_channels = rng.random_range(1..20);
            let conv = Conv2dConfig::new([in_channels, out_channels], [kernel_size; 2])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .init(&device);
            let [out_height, out_width] =
                [height, width].map(|side| side + 2 * padding + 1 - kernel_size);
            let pool = rng.random_range(0..4).min(out_height.min(out_width));
            shape = match pool {
                0 => [out_channels, out_height, out_width],
                pool => [out_channels, out_height / pool, out_width / pool],
            };
            blocks.push(ConvBlockWeights {
                weight: numbers(conv.weight.val()),
                bias: numbers(conv.bias.as_ref().expect("a bias").val()),
                in_channels,
                out_channels,
                kernel_size,
                padding,
                activation,
                pool,
            });
            convs.push((conv, pool));
        }
        let features: usize = shape.iter().product();
        let head = [features, rng.random_range(1..40), 7];
        let layers: Vec<Linear> = head
            .windows(2)
            .map(|pair| LinearConfig::new(pair[0], pair[1]).init(&device))
            .collect();
        let standardization = rng.random_bool(0.5).then(|| {
            let mean = (0..channels).map(|_| rng.random_range(0.0..0.5)).collect();
            let std = (0..channels).map(|_| rng.random_range(0.1..0.5)).collect();
            (mean, std)
        });
        // One image, a task and leftovers, several tasks.
        let batch = [1, 11, 30][rng.random_range(0..3)];
        let input = Tensor::<4>::random(
            [batch, channels, height, width],
            Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let weights: Vec<LayerWeights> = layers.iter().map(weights_of).collect();
        let network = ConvNetwork::new(
            [channels, height, width],
            standardization.clone(),
            &blocks,
            DenseNetwork::new(&weights, activation).expect("chained layers"),
        )
        .expect("chained blocks");
        let ours = network.forward(&numbers(input.clone()));
        let standardized = match standardization {
            Some((mean, std)) => {
                let per_channel = |values: Vec<f32>| {
                    Tensor::<1>::from_floats(values.as_slice(), &device)
                        .reshape([1, channels, 1, 1])
                };
                (input - per_channel(mean)) / per_channel(std)
            }
            None => input,
        };
        let maps = convs.iter().fold(standardized, |maps, (conv, pool)| {
            burns_block(conv, activation, *pool, maps)
        });
        let burns = numbers(burns_forward(&layers, activation, maps.flatten(1, 3)));
        assert_eq!(ours.len(), burns.len(), "seed {seed}");
        for (a, b) in ours.iter().zip(&burns) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "seed {seed}, blocks {blocks:?}: {a} against Burn's {b}"
            );
        }
    }
}

#[test]
fn conv_networks_whose_sizes_do_not_chain_are_refused() {
    let head = |inputs| {
        let layer = LayerWeights {
            weight: vec![0.5; inputs * 3],
            bias: None,
            inputs,
            outputs: 3,
        };
        DenseNetwork::new(&[layer], Activation::Relu).expect("one layer")
    };
    let block = ConvBlockWeights {
        weight: vec![0.1; 4 * 9],
        bias: vec![0.0; 4],
        in_channels: 1,
        out_channels: 4,
        kernel_size: 3,
        padding: 1,
        activation: Activation::Relu,
        pool: 2,
    };
    // 1x8x8 -> 4x8x8 -> pooled 4x4x4 = 64 features.
    assert!(ConvNetwork::new([1, 8, 8], None, std::slice::from_ref(&block), head(64)).is_some());
    assert!(ConvNetwork::new([1, 8, 8], None, std::slice::from_ref(&block), head(63)).is_none());
    assert!(ConvNetwork::new([2, 8, 8], None, std::slice::from_ref(&block), head(64)).is_none());
    let too_wide = ConvBlockWeights { pool: 9, ..block };
    assert!(ConvNetwork::new([1, 8, 8], None, &[too_wide], head(0)).is_none());
}
