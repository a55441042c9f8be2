//! One image's Winograd passes, compiled for the CPU's widest vectors through
//! [`pulp`]: the tiles' transforms, each a vector of `lanes` channels, and the
//! products of the transformed tiles with the transformed kernels, one small matrix
//! product per point of the tile.

use pulp::Simd;

use super::Layout;
use super::matrices::{Filter, OUTPUTS, Transform};
use crate::conv::direct::load;

/// The vector at `values[at..]`: sliced to its length, so that no partial load is
/// compiled in.
#[inline(always)]
pub(super) fn load_at<S: Simd>(simd: S, values: &[f32], at: usize) -> S::f32s {
    load(simd, &values[at..at + S::F32_LANES])
}

#[inline(always)]
pub(super) fn store<S: Simd>(values: &mut [f32], vector: S::f32s) {
    S::as_mut_simd_f32s(&mut values[..S::F32_LANES]).0[0] = vector;
}

/// The `Q` x `Q` vectors of `plane` (`[row][column][lane]`, `columns` wide) whose
/// corner is tile `[ty, tx]`'s.
#[inline(always)]
fn square<S: Simd, const Q: usize>(
    simd: S,
    plane: &[f32],
    columns: usize,
    [ty, tx]: [usize; 2],
) -> [[S::f32s; Q]; Q] {
    let lanes = S::F32_LANES;
    let mut square = [[simd.splat_f32s(0.0); Q]; Q];
    for (u, vectors) in square.iter_mut().enumerate() {
        let row = &plane[((ty * OUTPUTS + u) * columns + tx * OUTPUTS) * lanes..];
        for (v, vector) in vectors.iter_mut().enumerate() {
            *vector = load_at(simd, row, v * lanes);
        }
    }
    square
}

/// `m · x · mᵀ` for a tile `x` of vectors, `m` applied to each column, then to each
/// row.
#[inline(always)]
pub(super) fn sandwich<S: Simd, T: Transform<P, Q>, const P: usize, const Q: usize>(
    simd: S,
    m: &T,
    x: &[[S::f32s; Q]; Q],
) -> [[S::f32s; P]; P] {
    let zero = simd.splat_f32s(0.0);
    let mut half = [[zero; Q]; P];
    // Index loops: an array built by a closure loses the vectors' target features.
    #[allow(clippy::needless_range_loop)]
    for j in 0..Q {
        let mut column = [zero; Q];
        for u in 0..Q {
            column[u] = x[u][j];
        }
        let column = m.apply(simd, column);
        for p in 0..P {
            half[p][j] = column[p];
        }
    }
    let mut out = [[zero; P]; P];
    for (out, half) in out.iter_mut().zip(half) {
        *out = m.apply(simd, half);
    }
    out
}

/// One of the tile's point-wise matrix products, `out = lhs · rhs`: `rhs` and `out`
/// are rows of `cols` floats, `lhs` either of its two layouts (so that it can be a
/// transpose).
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub(super) rows: usize,
    pub(super) inner: usize,
    pub(super) cols: usize,
    pub(super) lhs: Lhs,
    /// Rows computed together: 7 or 8, a divisor of `rows`.
    pub(super) row_block: usize,
}

/// Where `lhs[row][i]` is.
#[derive(Clone, Copy)]
pub(super) enum Lhs {
    /// At `row * stride + i`.
    Rows { stride: usize },
    /// At `i * stride + row`.
    Columns { stride: usize },
}

impl Product {
    #[inline(always)]
    pub(super) fn run<S: Simd>(&self, simd: S, lhs: &[f32], rhs: &[f32], out: &mut [f32]) {
        let pairs = self.cols.is_multiple_of(2 * S::F32_LANES);
        match (self.row_block, pairs) {
            (8, true) => self.blocks::<S, 8, 2>(simd, lhs, rhs, out),
            (8, false) => self.blocks::<S, 8, 1>(simd, lhs, rhs, out),
            (_, true) => self.blocks::<S, 7, 2>(simd, lhs, rhs, out),
            (_, false) => self.blocks::<S, 7, 1>(simd, lhs, rhs, out),
        }
    }

    /// [`Product::run`] for each of `points` products, the `n`-th of each operand
    /// `strides[..]` floats after the `n - 1`-th.
    #[inline(always)]
    pub(super) fn run_points<S: Simd>(
        &self,
        simd: S,
        points: usize,
        [lhs_stride, rhs_stride, out_stride]: [usize; 3],
        [lhs, rhs]: [&[f32]; 2],
        out: &mut [f32],
    ) {
        for point in 0..points {
            self.run(
                simd,
                &lhs[point * lhs_stride..],
                &rhs[point * rhs_stride..],
                &mut out[point * out_stride..][..out_stride],
            );
        }
    }

    /// `RB` rows by `KB` vectors of columns at a time, in registers; each slice
    /// sliced to its length first, so that the inner loop checks no index.
    #[inline(always)]
    fn blocks<S: Simd, const RB: usize, const KB: usize>(
        &self,
        simd: S,
        lhs: &[f32],
        rhs: &[f32],
        out: &mut [f32],
    ) {
        let lanes = S::F32_LANES;
        let zero = simd.splat_f32s(0.0);
        for c0 in (0..self.cols).step_by(lanes * KB) {
            for r0 in (0..self.rows).step_by(RB) {
                let mut sums = [[zero; KB]; RB];
                match self.lhs {
                    Lhs::Rows { stride } => {
                        let mut rows = [&lhs[..0]; RB];
                        for (r, row) in rows.iter_mut().enumerate() {
                            *row = &lhs[(r0 + r) * stride..][..self.inner];
                        }
                        for i in 0..self.inner {
                            let right = self.right::<S, KB>(simd, rhs, i, c0);
                            for (sums, row) in sums.iter_mut().zip(&rows) {
                                accumulate(simd, row[i], &right, sums);
                            }
                        }
                    }
                    Lhs::Columns { stride } => {
                        for i in 0..self.inner {
                            let right = self.right::<S, KB>(simd, rhs, i, c0);
                            let column = &lhs[i * stride + r0..][..RB];
                            for (sums, &left) in sums.iter_mut().zip(column) {
                                accumulate(simd, left, &right, sums);
                            }
                        }
                    }
                }
                for (r, sums) in sums.iter().enumerate() {
                    let row = &mut out[(r0 + r) * self.cols + c0..][..lanes * KB];
                    for (to, &sum) in row.chunks_exact_mut(lanes).zip(sums) {
                        store::<S>(to, sum);
                    }
                }
            }
        }
    }

    /// The `KB` vectors of `rhs`'s row `i` from column `c0` on.
    #[inline(always)]
    fn right<S: Simd, const KB: usize>(
        &self,
        simd: S,
        rhs: &[f32],
        i: usize,
        c0: usize,
    ) -> [S::f32s; KB] {
        let lanes = S::F32_LANES;
        let row = &rhs[i * self.cols + c0..][..lanes * KB];
        let mut right = [simd.splat_f32s(0.0); KB];
        for (right, values) in right.iter_mut().zip(row.chunks_exact(lanes)) {
            *right = load(simd, values);
        }
        right
    }
}

/// `sums += left · right`.
#[inline(always)]
fn accumulate<S: Simd, const KB: usize>(
    simd: S,
    left: f32,
    right: &[S::f32s; KB],
    sums: &mut [S::f32s; KB],
) {
    let left = simd.splat_f32s(left);
    for (sum, &right) in sums.iter_mut().zip(right) {
        *sum = simd.mul_add_e_f32s(left, right, *sum);
    }
}

impl Layout {
    /// `planes` (`[group][row][column][lane]`, zero borders) from `image`
    /// (`[channel][row][column]`), its rows and columns offset by the padding.
    pub(super) fn pad_into(&self, image: &[f32], planes: &mut [f32]) {
        let g = &self.g;
        let [(top, _), (left, _)] = g.padding;
        let maps = [g.in_channels, g.height, g.width];
        let lanes = self.lanes;
        self.rows_in_lanes(maps, self.padded, [top, left], |map, plane| {
            let to = &mut planes[plane..];
            for (x, &value) in image[map..][..g.width].iter().enumerate() {
                to[x * lanes] = value;
            }
        });
    }

    /// `image`'s gradient (`[channel][row][column]`) from the padded planes'.
    pub(super) fn crop_from(&self, planes: &[f32], image: &mut [f32]) {
        let g = &self.g;
        let [(top, _), (left, _)] = g.padding;
        let maps = [g.in_channels, g.height, g.width];
        let lanes = self.lanes;
        self.rows_in_lanes(maps, self.padded, [top, left], |map, plane| {
            let from = &planes[plane..];
            for (x, value) in image[map..][..g.width].iter_mut().enumerate() {
                *value = from[x * lanes];
            }
        });
    }

    /// The output's gradient (`[channel][row][column]`) as `[group][row][column][lane]`
    /// over whole tiles, zero past the last row, column and channel.
    pub(super) fn grid_into(&self, out_grad: &[f32], grid: &mut [f32]) {
        let [out_height, out_width] = self.g.output();
        let maps = [self.g.out_channels, out_height, out_width];
        let lanes = self.lanes;
        self.rows_in_lanes(maps, self.grid(), [0, 0], |map, plane| {
            let to = &mut grid[plane..];
            for (x, &value) in out_grad[map..][..out_width].iter().enumerate() {
                to[x * lanes] = value;
            }
        });
    }

    /// `each(map, plane)` for every row of `[channels, height, width]` maps
    /// (`[channel][row][column]`): where it starts there, and in planes of `[rows,
    /// columns]` laid out `[group][row][column][lane]`, a channel to a lane, offset by
    /// `[top, left]` (its values a vector's lanes apart).
    #[inline(always)]
    fn rows_in_lanes(
        &self,
        [channels, height, width]: [usize; 3],
        [rows, columns]: [usize; 2],
        [top, left]: [usize; 2],
        mut each: impl FnMut(usize, usize),
    ) {
        let lanes = self.lanes;
        for c in 0..channels {
            let plane = (c / lanes) * rows * columns * lanes + c % lanes;
            for y in 0..height {
                let plane_row = ((top + y) * columns + left) * lanes;
                each((c * height + y) * width, plane + plane_row);
            }
        }
    }

    /// The padded planes' gradient from `transformed`'s (`[point][tile][channel]`):
    /// each tile through `B · dV · Bᵀ`, added where the tiles overlap. `planes` starts
    /// at zero.
    #[inline(always)]
    pub(super) fn transform_input_grads<
        S: Simd,
        F: Filter<R, A>,
        const R: usize,
        const A: usize,
    >(
        &self,
        simd: S,
        _: F,
        transformed: &[f32],
        planes: &mut [f32],
    ) {
        let lanes = S::F32_LANES;
        let [rows, columns] = self.padded;
        for group in 0..self.in_width / lanes {
            let plane = &mut planes[group * rows * columns * lanes..];
            for (tile, [ty, tx]) in self.tile_positions().enumerate() {
                let dv: [[S::f32s; A]; A] =
                    self.load_tile(simd, tile, group * lanes, self.in_width, transformed);
                let dd = sandwich(simd, &F::INPUT_T, &dv);
                for (u, dd) in dd.iter().enumerate() {
                    let row = &mut plane[((ty * OUTPUTS + u) * columns + tx * OUTPUTS) * lanes..];
                    for (v, &dd) in dd.iter().enumerate() {
                        let sum = simd.add_f32s(load_at(simd, row, v * lanes), dd);
                        store::<S>(&mut row[v * lanes..], sum);
                    }
                }
            }
        }
    }

    /// `out` (`[channel][row][column]`) = each tile of `products` (`[point][tile][channel]`)
    /// through `Aᵀ · M · A`, plus `bias` (one per padded channel).
    #[inline(always)]
    pub(super) fn transform_outputs<S: Simd, F: Filter<R, A>, const R: usize, const A: usize>(
        &self,
        simd: S,
        _: F,
        products: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) {
        let lanes = S::F32_LANES;
        let [out_height, out_width] = self.g.output();
        let mut lanes_of = [0.0f32; 64];
        for group in 0..self.out_width / lanes {
            let shift = load_at(simd, bias, group * lanes);
            let channels = (self.g.out_channels - group * lanes).min(lanes);
            for (tile, [ty, tx]) in self.tile_positions().enumerate() {
                let m: [[S::f32s; A]; A] =
                    self.load_tile(simd, tile, group * lanes, self.out_width, products);
                let y = sandwich(simd, &F::T.output, &m);
                for (a, y) in y.iter().enumerate() {
                    let row = ty * OUTPUTS + a;
                    for (b, &y) in y.iter().enumerate() {
                        let column = tx * OUTPUTS + b;
                        if row >= out_height || column >= out_width {
                            continue;
                        }
                        store::<S>(&mut lanes_of, simd.add_f32s(y, shift));
                        let at = row * out_width + column;
                        for (k, &value) in lanes_of[..channels].iter().enumerate() {
                            out[(group * lanes + k) * out_height * out_width + at] = value;
                        }
                    }
                }
            }
        }
    }

    /// `to` (`[point][tile][channel]`, `width` channels) = each tile of `planes`
    /// (`[group][row][column][lane]`, `[rows, columns]` a plane) through `m · x · mᵀ`,
    /// `x` its `Q` x `Q` vectors from the tile's corner on: the input's tiles through
    /// `Bᵀ` (`Q` = `P`, the padded planes), or the output gradient's through `A` (`Q`
    /// = 2, the grid of [`Layout::grid_into`]).
    #[inline(always)]
    pub(super) fn transform_tiles<S: Simd, T: Transform<P, Q>, const P: usize, const Q: usize>(
        &self,
        simd: S,
        m: &T,
        (planes, [rows, columns]): (&[f32], [usize; 2]),
        width: usize,
        to: &mut [f32],
    ) {
        let lanes = S::F32_LANES;
        for group in 0..width / lanes {
            let plane = &planes[group * rows * columns * lanes..];
            for (tile, [ty, tx]) in self.tile_positions().enumerate() {
                let x: [[S::f32s; Q]; Q] = square(simd, plane, columns, [ty, tx]);
                let transformed = sandwich(simd, m, &x);
                self.store_tile::<S, P>(&transformed, tile, group * lanes, width, to);
            }
        }
    }

    /// The rows and columns of the grid of [`Layout::grid_into`].
    pub(super) fn grid(&self) -> [usize; 2] {
        self.tiles.map(|count| count * OUTPUTS)
    }

    /// The tiles' top-left corners in tile units, row by row.
    fn tile_positions(&self) -> impl Iterator<Item = [usize; 2]> {
        let [rows, columns] = self.tiles;
        (0..rows).flat_map(move |ty| (0..columns).map(move |tx| [ty, tx]))
    }

    #[inline(always)]
    fn store_tile<S: Simd, const A: usize>(
        &self,
        tile_values: &[[S::f32s; A]; A],
        tile: usize,
        channel: usize,
        width: usize,
        to: &mut [f32],
    ) {
        let point_len = self.tile_rows * width;
        for (u, values) in tile_values.iter().enumerate() {
            for (v, &value) in values.iter().enumerate() {
                store::<S>(
                    &mut to[(u * A + v) * point_len + tile * width + channel..],
                    value,
                );
            }
        }
    }

    #[inline(always)]
    fn load_tile<S: Simd, const A: usize>(
        &self,
        simd: S,
        tile: usize,
        channel: usize,
        width: usize,
        from: &[f32],
    ) -> [[S::f32s; A]; A] {
        let point_len = self.tile_rows * width;
        let from = &from[tile * width + channel..];
        // Index loops of known bounds: every element is seen written, so the zeros
        // are not stored first (with an iterator's zip they were, by `memset`).
        let mut values = [[simd.splat_f32s(0.0); A]; A];
        #[allow(clippy::needless_range_loop)]
        for u in 0..A {
            for v in 0..A {
                values[u][v] = load_at(simd, from, (u * A + v) * point_len);
            }
        }
        values
    }
}
