use burn::prelude::*;
use burn::tensor::Distribution;

use super::*;
use crate::{ConvBlockConfig, NetworkConfig, NetworkKind, Normalization};

/// Images with about four in five pixels zero, as in MNIST.
fn images(batch: usize, size: usize, device: &Device) -> Tensor<2> {
    let values = Tensor::<2>::random([batch, size], Distribution::Uniform(0.0, 1.0), device);
    let keep = Tensor::<2>::random([batch, size], Distribution::Uniform(0.0, 1.0), device)
        .greater_elem(0.8)
        .float();
    values * keep
}

fn assert_close(dense: &[f32], burn: &[f32]) {
    assert_eq!(dense.len(), burn.len());
    for (d, b) in dense.iter().zip(burn) {
        let scale = b.abs().max(1.0);
        assert!((d - b).abs() <= 1e-5 * scale, "{d} against Burn's {b}");
    }
}

#[test]
fn dense_inference_equals_burns_forward_on_random_networks() {
    let device = Device::flex();
    device.seed(11);
    let cases = [
        (vec![64, 64], Activation::Relu, Normalization::Unit, 1),
        (vec![64, 64], Activation::Relu, Normalization::Mnist, 1000),
        (vec![], Activation::Relu, Normalization::Unit, 3),
        (vec![128, 7, 33], Activation::Tanh, Normalization::Unit, 130),
        (vec![70], Activation::Relu, Normalization::Mnist, 33),
        // 304 outputs: whole and one-vector column blocks; 13 images: two tiles and
        // one image left over.
        (vec![300], Activation::Relu, Normalization::Mnist, 13),
        (
            vec![20],
            Activation::Sigmoid,
            Normalization::Standard {
                mean: 0.2,
                std: 0.5,
            },
            65,
        ),
    ];
    for (hidden, activation, normalization, batch) in cases {
        let network = NetworkConfig::new()
            .with_input_size(100)
            .with_num_classes(7)
            .with_hidden_sizes(hidden.clone())
            .with_activation(activation)
            .with_normalization(normalization)
            .init(&device);
        let dense = DenseNetwork::of(&network).expect("an MLP");
        let input = images(batch, 100, &device);
        let expected = network
            .forward(input.clone())
            .try_into_vec_as::<f32>()
            .expect("floats");
        let pixels = input.try_into_vec_as::<f32>().expect("floats");
        assert_close(&dense.forward(&pixels), &expected);
    }
}

#[test]
fn a_batch_split_over_threads_and_tiles_gives_each_image_the_scores_it_gets_alone() {
    let device = Device::flex();
    device.seed(5);
    let network = NetworkConfig::new()
        .with_input_size(50)
        .with_hidden_sizes(vec![200, 20])
        .init(&device);
    let dense = DenseNetwork::of(&network).expect("an MLP");
    let pixels = images(IMAGES_PER_TASK * 3 + 5, 50, &device)
        .try_into_vec_as::<f32>()
        .expect("floats");
    let alone: Vec<f32> = pixels
        .chunks(50)
        .flat_map(|image| dense.forward(image))
        .collect();
    assert_eq!(dense.forward(&pixels), alone);
}

#[test]
fn networks_the_loops_do_not_compute_are_refused() {
    let device = Device::flex();
    let gelu = NetworkConfig::new()
        .with_activation(Activation::Gelu)
        .init(&device);
    assert!(DenseNetwork::of(&gelu).is_none());
    let cnn = NetworkConfig::new()
        .with_kind(NetworkKind::Cnn)
        .with_conv(vec![ConvBlockConfig::new(4).with_pool(2)])
        .init(&device);
    assert!(DenseNetwork::of(&cnn).is_none());
}
