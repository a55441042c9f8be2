//! Pictures as the networks take them: the channels of an image one plane after
//! another (`[channels, height, width]`), where decoders give them interleaved
//! (`[height, width, channels]`).

/// The planes of `interleaved`, an image whose pixels each hold `channels` bytes:
/// every pixel's first byte, then every pixel's second, and so on.
pub fn to_planes(interleaved: &[u8], channels: usize) -> Vec<u8> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    let pixels = interleaved.len() / channels;
    let mut planes = vec![0; pixels * channels];
    for (pixel, values) in interleaved.chunks_exact(channels).enumerate() {
        for (channel, &value) in values.iter().enumerate() {
            planes[channel * pixels + pixel] = value;
        }
    }
    planes
}

/// A grey image (one plane) as `channels` identical planes, so that it can sit among
/// colour images whose three channels it then shows equally.
pub fn repeat_plane(grey: &[u8], channels: usize) -> Vec<u8> {
    grey.repeat(channels.max(1))
}

/// The mean of the `channels` planes of `values` (each a `len / channels` run of it),
/// as one plane: a colour image, or a map over one, shown in grey.
pub fn mean_planes(values: &[f32], channels: usize) -> Vec<f32> {
    let channels = channels.max(1);
    let plane = values.len() / channels;
    let mut mean = vec![0.0; plane];
    for values in values.chunks_exact(plane.max(1)).take(channels) {
        for (sum, &value) in mean.iter_mut().zip(values) {
            *sum += value;
        }
    }
    mean.iter_mut().for_each(|sum| *sum /= channels as f32);
    mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_rgb_becomes_three_planes() {
        // Two pixels: (1, 2, 3) and (4, 5, 6).
        assert_eq!(to_planes(&[1, 2, 3, 4, 5, 6], 3), [1, 4, 2, 5, 3, 6]);
        assert_eq!(to_planes(&[7, 8, 9], 1), [7, 8, 9]);
    }

    #[test]
    fn planes_average_into_one() {
        assert_eq!(mean_planes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3), [3.0, 4.0]);
        assert_eq!(mean_planes(&[1.0, 2.0], 1), [1.0, 2.0]);
    }

    #[test]
    fn a_grey_plane_repeats_into_each_channel() {
        assert_eq!(repeat_plane(&[1, 2], 3), [1, 2, 1, 2, 1, 2]);
        assert_eq!(repeat_plane(&[1, 2], 1), [1, 2]);
    }
}
