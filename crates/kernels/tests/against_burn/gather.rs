//! The batch gather ([`kernels::gather::scaled_pixels`]) against Burn's own cast and
//! division: every byte value, in images of odd lengths.

use burn::prelude::*;
use kernels::gather::scaled_pixels;

#[test]
fn scaled_pixels_are_burns_bytes_over_255_bit_for_bit() {
    let device = Device::flex();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(3 * 997).collect();
    let images: Vec<&[u8]> = bytes.chunks(997).collect();
    let ours = scaled_pixels(images.into_iter(), 997);
    let ints: Vec<i64> = bytes.iter().map(|&b| i64::from(b)).collect();
    let burns = Tensor::<1, Int>::from_data(TensorData::new(ints, [bytes.len()]), &device)
        .float()
        .div_scalar(255.0)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&ours), bits(&burns));
}
