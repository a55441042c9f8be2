//! An MLP's inference as plain loops ([`kernels::dense::DenseNetwork`]) against the
//! same layers through Burn's `Linear` and activations: random widths, depths,
//! activations, layers with and without bias, batches of one image to several tasks'
//! worth, inputs mostly zero as MNIST's are.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, activation};
use kernels::dense::{Activation, DenseNetwork, LayerWeights};
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
