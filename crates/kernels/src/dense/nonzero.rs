//! The positions of an image's (or a tile's) nonzero inputs, listed without a branch
//! per value.

/// Writes the positions where any of `images` is not zero into `nonzero` and says how
/// many there are; `nonzero` has room for all of them and [`LIST_SLACK`] more. Without
/// a branch per value, which mispredicts on a digit's strokes: with AVX-512, sixteen
/// at a time, a compare's mask compressing their positions into one store; elsewhere
/// one by one. (Both a per-value loop and a loop over each mask's bits were about half
/// of an MNIST forward pass.)
#[inline(always)]
pub(super) fn list_nonzero<const N: usize>(images: &[&[f32]; N], nonzero: &mut [u32]) -> usize {
    let length = images.first().map_or(0, |image| image.len());
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V4::try_new() {
        return simd.vectorize(|| {
            let zero = simd.splat_f32x16(0.0);
            let sixteen = simd.splat_u32x16(16);
            let mut positions = pulp::u32x16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let blocks = length / 16;
            let mut found = 0;
            for block in 0..blocks {
                let mask = images.iter().fold(0, |mask, image| {
                    let values: [f32; 16] = pulp::as_arrays::<16, f32>(image).0[block];
                    mask | !simd.cmp_eq_f32x16(pulp::cast(values), zero).0
                });
                let listed = simd
                    .avx512f
                    ._mm512_maskz_compress_epi32(mask, pulp::cast(positions));
                let listed: [u32; 16] = pulp::cast(listed);
                nonzero[found..found + 16].copy_from_slice(&listed);
                found += mask.count_ones() as usize;
                positions = simd.wrapping_add_u32x16(positions, sixteen);
            }
            found + list_nonzero_one_by_one(images, blocks * 16, &mut nonzero[found..])
        });
    }
    list_nonzero_one_by_one(images, 0, nonzero)
}

/// Room past the last input that [`list_nonzero`] may write to.
pub(super) const LIST_SLACK: usize = 16;

/// [`list_nonzero`] from position `from` on, one position at a time.
#[inline(always)]
fn list_nonzero_one_by_one<const N: usize>(
    images: &[&[f32]; N],
    from: usize,
    nonzero: &mut [u32],
) -> usize {
    let length = images.first().map_or(0, |image| image.len());
    let mut found = 0;
    for position in from..length {
        nonzero[found] = position as u32;
        found += usize::from(images.iter().any(|image| image[position] != 0.0));
    }
    found
}
