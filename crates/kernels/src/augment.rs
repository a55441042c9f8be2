//! Random geometric augmentation of training images: for each image one affine warp
//! (rotation, shear, scale, translation, a random crop's shift and a horizontal flip
//! folded into one matrix), sampled bilinearly with zeros outside the image, drawn
//! from a seed, so that a (seed, epoch, image) triple always gives the same picture
//! and a resumed run sees what an uninterrupted one saw.

use std::f32::consts::PI;

/// How far each transform may go; 0 (or `[1, 1]` for the scale, `false` for the flip)
/// turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranges {
    /// Rotation, uniform in `[-r, r]` degrees.
    pub rotation_degrees: f32,
    /// Horizontal shear, uniform in `[-s, s]` degrees.
    pub shear_degrees: f32,
    /// Zoom factor, uniform in `[low, high]`.
    pub scale: [f32; 2],
    /// Shift along each axis, uniform in `[-t, t]` times the image's side.
    pub translate: f32,
    /// A random crop of the image padded by this many zero pixels on each side: a
    /// whole-pixel shift in `[-p, p]` along each axis.
    pub crop_padding: usize,
    /// Mirrored left to right with probability one half.
    pub horizontal_flip: bool,
}

impl Ranges {
    /// No transform at all.
    pub fn none() -> Self {
        Self {
            rotation_degrees: 0.0,
            shear_degrees: 0.0,
            scale: [1.0, 1.0],
            translate: 0.0,
            crop_padding: 0,
            horizontal_flip: false,
        }
    }
}

/// One image's warp: output pixel `(x, y)` takes the input at `matrix * (x, y) +
/// offset`, in pixels (x the column, y the row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    matrix: [[f32; 2]; 2],
    offset: [f32; 2],
}

/// SplitMix64: a small generator whose whole stream follows from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high]`.
    fn uniform(&mut self, low: f32, high: f32) -> f32 {
        // The top 24 bits: every f32 in [0, 1) a multiple of 2^-24.
        let unit = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        low + (high - low) * unit
    }
}

/// A seed for one image of one epoch of a run seeded `seed`.
pub fn image_seed(seed: u64, epoch: usize, image: usize) -> u64 {
    let mut mix = SplitMix(seed);
    let run = mix.next();
    let mut mix = SplitMix(run ^ (epoch as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    let epoch = mix.next();
    SplitMix(epoch ^ (image as u64).wrapping_mul(0x8cb9_2ba7_2f3d_8dd7)).next()
}

impl Warp {
    /// Every pixel where it is.
    pub fn identity() -> Self {
        Self {
            matrix: [[1.0, 0.0], [0.0, 1.0]],
            offset: [0.0, 0.0],
        }
    }

    /// A warp drawn within `ranges` for an image of `[height, width]` from `seed`
    /// (see [`image_seed`]). The rotation, shear and scale turn about the image's
    /// centre; the translation and the crop's shift move it after them.
    pub fn random(ranges: &Ranges, [height, width]: [usize; 2], seed: u64) -> Self {
        let mut draw = SplitMix(seed);
        let angle = draw.uniform(-ranges.rotation_degrees, ranges.rotation_degrees) * PI / 180.0;
        let shear = draw.uniform(-ranges.shear_degrees, ranges.shear_degrees) * PI / 180.0;
        let scale = draw.uniform(ranges.scale[0], ranges.scale[1]);
        let [max_x, max_y] = [width, height].map(|side| ranges.translate * side as f32);
        let mut shift = [draw.uniform(-max_x, max_x), draw.uniform(-max_y, max_y)];
        let padding = ranges.crop_padding as u64;
        for axis in &mut shift {
            // Whole pixels in [-p, p].
            *axis += (draw.next() % (2 * padding + 1)) as f32 - padding as f32;
        }
        let flip = ranges.horizontal_flip && draw.next() & 1 == 1;
        // The forward map is rotation * shear * scale about the centre, then the
        // shift; its inverse takes an output pixel back to its source.
        let (sin, cos) = angle.sin_cos();
        let tan = shear.tan();
        let inverse_scale = 1.0 / scale.max(f32::MIN_POSITIVE);
        // (shear)^-1 (rotation)^-1 / scale: [[1, -tan], [0, 1]] [[cos, sin], [-sin, cos]].
        let matrix = [
            [
                (cos + tan * sin) * inverse_scale,
                (sin - tan * cos) * inverse_scale,
            ],
            [-sin * inverse_scale, cos * inverse_scale],
        ];
        let centre = [(width as f32 - 1.0) / 2.0, (height as f32 - 1.0) / 2.0];
        let moved = [centre[0] + shift[0], centre[1] + shift[1]];
        let mut warp = Self {
            matrix,
            offset: [
                centre[0] - matrix[0][0] * moved[0] - matrix[0][1] * moved[1],
                centre[1] - matrix[1][0] * moved[0] - matrix[1][1] * moved[1],
            ],
        };
        if flip {
            // The source column mirrored: x -> (width - 1) - x.
            warp.matrix[0] = [-warp.matrix[0][0], -warp.matrix[0][1]];
            warp.offset[0] = (width as f32 - 1.0) - warp.offset[0];
        }
        warp
    }

    /// The input position output pixel `(x, y)` takes: `[x, y]` in pixels.
    pub fn source(&self, x: usize, y: usize) -> [f32; 2] {
        let [x, y] = [x as f32, y as f32];
        [
            self.matrix[0][0] * x + self.matrix[0][1] * y + self.offset[0],
            self.matrix[1][0] * x + self.matrix[1][1] * y + self.offset[1],
        ]
    }

    /// Warps `image` (bytes, `[channels, height, width]`) into `out` (as many floats),
    /// each pixel scaled to [0, 1] as the network takes it: the bilinear blend of the
    /// four input pixels around its source, those outside the image counted as 0.
    pub fn apply(&self, image: &[u8], [channels, height, width]: [usize; 3], out: &mut [f32]) {
        let plane = height * width;
        for y in 0..height {
            for x in 0..width {
                let [sx, sy] = self.source(x, y);
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let taps = [
                    (x0, y0, (1.0 - fx) * (1.0 - fy)),
                    (x0 + 1.0, y0, fx * (1.0 - fy)),
                    (x0, y0 + 1.0, (1.0 - fx) * fy),
                    (x0 + 1.0, y0 + 1.0, fx * fy),
                ];
                for channel in 0..channels {
                    let input = &image[channel * plane..][..plane];
                    let mut value = 0.0f32;
                    for &(tx, ty, weight) in &taps {
                        let inside = tx >= 0.0 && ty >= 0.0;
                        let (tx, ty) = (tx as usize, ty as usize);
                        if inside && tx < width && ty < height && weight != 0.0 {
                            value += weight * f32::from(input[ty * width + tx]);
                        }
                    }
                    out[channel * plane + y * width + x] = value / 255.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ranges_give_the_identity_and_the_image_as_it_is() {
        let image: Vec<u8> = (0..2 * 5 * 7).map(|v| (v * 3) as u8).collect();
        for seed in 0..20 {
            let warp = Warp::random(&Ranges::none(), [5, 7], seed);
            let mut out = vec![0.0; image.len()];
            warp.apply(&image, [2, 5, 7], &mut out);
            let expected: Vec<f32> = image.iter().map(|&v| f32::from(v) / 255.0).collect();
            for (a, b) in out.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-6, "seed {seed}: {a} against {b}");
            }
        }
    }

    #[test]
    fn a_crop_shifts_by_whole_pixels_and_a_flip_mirrors() {
        let ranges = Ranges {
            crop_padding: 3,
            ..Ranges::none()
        };
        let mut shifts = std::collections::HashSet::new();
        for seed in 0..1000 {
            let [sx, sy] = Warp::random(&ranges, [10, 10], image_seed(seed, 0, 0)).source(4, 4);
            let (dx, dy) = (sx - 4.0, sy - 4.0);
            assert!(dx.fract() == 0.0 && dy.fract() == 0.0 && dx.abs() <= 3.0 && dy.abs() <= 3.0);
            shifts.insert((dx as i32, dy as i32));
        }
        assert_eq!(shifts.len(), 49, "every shift in [-3, 3]^2 is drawn");
        let flip = Ranges {
            horizontal_flip: true,
            ..Ranges::none()
        };
        let flipped: Vec<[f32; 2]> = (0..40)
            .map(|seed| Warp::random(&flip, [6, 9], seed).source(2, 1))
            .collect();
        assert!(flipped.contains(&[6.0, 1.0]) && flipped.contains(&[2.0, 1.0]));
    }

    #[test]
    fn seeds_decide_the_warp() {
        let ranges = Ranges {
            rotation_degrees: 15.0,
            shear_degrees: 10.0,
            scale: [0.9, 1.1],
            translate: 0.1,
            crop_padding: 2,
            horizontal_flip: true,
        };
        let warp = |seed| Warp::random(&ranges, [28, 28], seed);
        assert_eq!(warp(image_seed(1, 2, 3)), warp(image_seed(1, 2, 3)));
        let seeds = [
            image_seed(1, 2, 3),
            image_seed(1, 2, 4),
            image_seed(1, 3, 3),
        ];
        assert_ne!(warp(seeds[0]), warp(seeds[1]));
        assert_ne!(warp(seeds[0]), warp(seeds[2]));
        assert_ne!(image_seed(2, 2, 3), seeds[0]);
    }
}
