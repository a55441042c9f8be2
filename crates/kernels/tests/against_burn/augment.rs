//! The augmentation's warp ([`kernels::augment::Warp`]) against Burn's bilinear
//! `grid_sample_2d` (zeros outside, corners aligned) sampling the same source
//! positions, on random warps, sizes and channels.

use burn::prelude::*;
use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode};
use kernels::augment::{Ranges, Warp, image_seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn the_warp_samples_as_burns_grid_sample() {
    let device = Device::flex();
    let ranges = Ranges {
        rotation_degrees: 30.0,
        shear_degrees: 15.0,
        scale: [0.8, 1.2],
        translate: 0.15,
        crop_padding: 2,
        horizontal_flip: true,
    };
    for seed in 0..16 {
        let mut rng = StdRng::seed_from_u64(seed);
        let channels = rng.random_range(1..4);
        let [height, width] = [rng.random_range(5..30), rng.random_range(5..30)];
        let image: Vec<u8> = (0..channels * height * width)
            .map(|_| rng.random_range(0..=255))
            .collect();
        let warp = Warp::random(&ranges, [height, width], image_seed(seed, 1, 2));
        let mut ours = vec![0.0; image.len()];
        warp.apply(&image, [channels, height, width], &mut ours);
        // Source positions in [-1, 1], corners aligned: x = 2 * column / (width - 1) - 1.
        let grid: Vec<f32> = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .flat_map(|(x, y)| {
                let [sx, sy] = warp.source(x, y);
                [
                    2.0 * sx / (width as f32 - 1.0) - 1.0,
                    2.0 * sy / (height as f32 - 1.0) - 1.0,
                ]
            })
            .collect();
        let pixels: Vec<f32> = image.iter().map(|&v| f32::from(v) / 255.0).collect();
        let input = Tensor::<4>::from_data(
            TensorData::new(pixels, [1, channels, height, width]),
            &device,
        );
        let grid = Tensor::<4>::from_data(TensorData::new(grid, [1, height, width, 2]), &device);
        let options = GridSampleOptions::new(InterpolateMode::Bilinear)
            .with_padding_mode(GridSamplePaddingMode::Zeros)
            .with_align_corners(true);
        let burns = input
            .grid_sample_2d(grid, options)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        for (a, b) in ours.iter().zip(&burns) {
            assert!((a - b).abs() <= 1e-5, "seed {seed}: {a} against Burn's {b}");
        }
    }
}
