//! A fixed dense linear map `y = M x` applied to many rows: the random rotation of RaBitQ, the
//! rotation of OPQ and PCA's projection.
//!
//! [`PackedMatrix`] packs `M` once (when the map is trained or read) into the panels of the
//! blocked micro-kernel, so applying it is the many-to-many kernel's multiply-adds with neither
//! a packing of `M` per call nor a horizontal sum per output (the per-output dot product it
//! replaces spent most of a RaBitQ add there).
//!
//! Every output is one multiply-add chain over the input's components in order, from zero —
//! in the micro-kernel's register tile for whole groups of rows, in a one-row kernel (`gemv`)
//! for the rest — so a row's outputs do not depend on the rows beside it, nor on how the
//! batch was split: a query mapped alone equals the same vector mapped with the base it is
//! searched against, to the bit. (A general matrix product, faer's, splits the chain by the
//! batch's shape; a range search's batch-against-alone test caught it.)

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::gemm::{PackedBase, ScanArgs, pack_queries};
use crate::rows::check_shape;
use crate::simd::{Kernels, kernels};

/// Signature of a level's one-row kernel.
pub(crate) type GemvFn = fn(&GemvArgs<'_>, &mut [f32]);

/// What a one-row kernel multiplies: `x` against `panels` packed panels of `nr` columns each
/// (`dim` values per column, k-major), writing `panels * nr` outputs.
pub(crate) struct GemvArgs<'a> {
    pub(crate) bpack: &'a [f32],
    pub(crate) panels: usize,
    pub(crate) dim: usize,
    pub(crate) x: &'a [f32],
}

impl GemvArgs<'_> {
    /// Checks the buffer sizes the kernels' pointer arithmetic relies on.
    pub(crate) fn check(&self, nr: usize, out: &[f32]) {
        assert!(self.bpack.len() >= self.panels * self.dim * nr, "matrix pack too short");
        assert!(self.x.len() >= self.dim, "row too short");
        assert!(out.len() >= self.panels * nr, "output too short");
    }
}

/// Packed panels are scanned in blocks of about this many bytes, so a block stays in L2
/// while every group of rows of a chunk passes over it.
const PANEL_BLOCK_BYTES: usize = 256 * 1024;

/// Rows per parallel task (rounded to whole register groups).
const ROW_CHUNK: usize = 1024;

/// A `rows × cols` row-major matrix packed once for `y = M x` over any number of rows.
///
/// Every output is one multiply-add chain over the row's components in order, from zero
/// (whole groups of rows in the many-to-many tile kernel, the rest in a one-row kernel), so a
/// row's outputs do not depend on the rows beside it or on how a batch is split: a query
/// mapped alone equals the same vector mapped in a batch, to the bit.
///
/// ```
/// use vq_distance::PackedMatrix;
/// // Swaps the two components and doubles the second.
/// let m = PackedMatrix::new(&[0.0, 1.0, 2.0, 0.0], 2)?;
/// let mut y = vec![0.0; 4];
/// m.apply(&[1.0, 2.0, 3.0, 4.0], &mut y)?;
/// assert_eq!(y, [2.0, 2.0, 4.0, 6.0]);
/// # Ok::<(), vq_distance::Error>(())
/// ```
#[derive(Clone)]
pub struct PackedMatrix<'k> {
    kern: &'k Kernels,
    rows: usize,
    cols: usize,
    packed: PackedBase,
}

impl std::fmt::Debug for PackedMatrix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("level", &self.kern.level)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl PackedMatrix<'static> {
    /// Packs `m` (row-major, `cols` wide: `m.len() / cols` outputs) for the kernels of this
    /// process ([`simd_level`](crate::simd_level)).
    ///
    /// Errors: [`Error::ZeroDimension`] for `cols == 0`, [`Error::RaggedBuffer`] (naming
    /// `"matrix"`) when `m` is not whole rows. Values are taken as given: a non-finite entry
    /// gives non-finite outputs.
    pub fn new(m: &[f32], cols: usize) -> Result<Self> {
        Self::new_with(kernels(), m, cols)
    }
}

impl<'k> PackedMatrix<'k> {
    /// [`PackedMatrix::new`] with the kernels of a chosen level.
    pub fn new_with(kern: &'k Kernels, m: &[f32], cols: usize) -> Result<Self> {
        let rows = check_shape("matrix", m, cols)?;
        let mut packed = PackedBase::default();
        packed.pack(m, cols, kern.gemm.nr, None, &vec![0.0; rows]);
        Ok(PackedMatrix { kern, rows, cols, packed })
    }

    /// Outputs per row (`M`'s rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inputs per row (`M`'s columns).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of the packed copy.
    pub fn memory_bytes(&self) -> usize {
        4 * (self.packed.data.capacity() + self.packed.bias.capacity())
    }

    /// `y = M x` for every row of `x` (`cols` values each) into `y` (`rows` values each),
    /// in parallel over chunks of rows.
    ///
    /// Errors: [`Error::RaggedBuffer`] (naming `"rows"`) when `x` is not whole rows,
    /// [`Error::OutputLength`] when `y` does not hold their outputs.
    pub fn apply(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        let n = check_shape("rows", x, self.cols)?;
        if y.len() != n * self.rows {
            return Err(Error::OutputLength { what: "y", got: y.len(), expected: n * self.rows });
        }
        if y.is_empty() {
            return Ok(());
        }
        let mr = self.kern.gemm.mr;
        let chunk = ROW_CHUNK.div_ceil(mr) * mr;
        if n <= chunk {
            // One task: no hand-off to the pool (a single query's map costs microseconds).
            self.apply_chunk(x, y);
            return Ok(());
        }
        x.par_chunks(chunk * self.cols)
            .zip(y.par_chunks_mut(chunk * self.rows))
            .for_each(|(x, y)| self.apply_chunk(x, y));
        Ok(())
    }

    /// [`PackedMatrix::apply`] into a new vector.
    pub fn apply_to_vec(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut y = vec![0.0; x.len() / self.cols.max(1) * self.rows];
        self.apply(x, &mut y)?;
        Ok(y)
    }

    /// One chunk, on this thread: whole register groups through the tile kernel, block of
    /// panels by block, and the rows after the last whole group one by one.
    fn apply_chunk(&self, x: &[f32], y: &mut [f32]) {
        let (gemm, cols, rows) = (&self.kern.gemm, self.cols, self.rows);
        let (mr, nr) = (gemm.mr, gemm.nr);
        let whole = x.len() / cols / mr * mr;
        if whole > 0 {
            let mut qpack = Vec::new();
            let groups = pack_queries(&x[..whole * cols], cols, mr, &mut qpack);
            let mut thresholds = vec![f32::INFINITY; groups * mr];
            let block = (PANEL_BLOCK_BYTES / (4 * cols * nr)).max(1);
            for p0 in (0..self.packed.panels).step_by(block) {
                let panels = block.min(self.packed.panels - p0);
                let args = ScanArgs {
                    qpack: &qpack,
                    groups,
                    bpack: &self.packed.data[p0 * cols * nr..],
                    panels,
                    dim: cols,
                    bias: &self.packed.bias[p0 * nr..],
                    alpha: 1.0,
                    keep_all: true,
                };
                (gemm.scan)(&args, &mut thresholds, &mut |row, col, keys, _| {
                    let first = p0 * nr + col;
                    let valid = rows.saturating_sub(first).min(keys.len());
                    y[row * rows + first..][..valid].copy_from_slice(&keys[..valid]);
                    f32::INFINITY
                });
            }
        }
        if whole * cols == x.len() {
            return;
        }
        let mut out = vec![0f32; self.packed.panels * nr];
        for (xr, yr) in x[whole * cols..].chunks_exact(cols).zip(y[whole * rows..].chunks_exact_mut(rows)) {
            let args = GemvArgs { bpack: &self.packed.data, panels: self.packed.panels, dim: cols, x: xr };
            (gemm.gemv)(&args, &mut out);
            // `+ 0.0` is the tile's `fma(acc, 1, 0)`: it turns −0 into +0 and leaves every
            // other value as it is, so both paths give the same bits.
            yr.iter_mut().zip(&out).for_each(|(o, &v)| *o = v + 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::simd::SimdLevel;

    /// Values with a full mantissa (so rounding differs between summation orders).
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// At every level: every output is the f64 dot product of its row of `M` and its input
        /// row within f32 rounding, and the multiply-add chain in order over `k` from zero,
        /// to the bit (the slow twin of both the tile and the one-row kernel); and the outputs
        /// of a batch do not depend on how it is split (alone, at an arbitrary cut, or past a
        /// parallel chunk), for shapes around the tile's and the panel block's edges.
        #[test]
        fn outputs_are_the_ordered_chain_whatever_the_batch(
            cols in 1usize..80, rows in 1usize..80, n in 1usize..40, seed in any::<u64>(),
            cut in 0usize..40, far in any::<bool>(),
        ) {
            let m = values(seed, rows * cols);
            let n = if far { n + ROW_CHUNK } else { n };
            let x = values(seed ^ 0x9e37, n * cols);
            for level in SimdLevel::available() {
                let kern = Kernels::for_level(level).expect("available");
                let fused = level != SimdLevel::Portable;
                let packed = PackedMatrix::new_with(&kern, &m, cols).unwrap();
                prop_assert_eq!((packed.rows(), packed.cols()), (rows, cols));
                let mut y = vec![0f32; n * rows];
                packed.apply(&x, &mut y).unwrap();
                for (i, (yr, xr)) in y.chunks_exact(rows).zip(x.chunks_exact(cols)).enumerate() {
                    for (j, (&v, mj)) in yr.iter().zip(m.chunks_exact(cols)).enumerate() {
                        let chain = mj.iter().zip(xr).fold(0f32, |acc, (&a, &b)| {
                            if fused { b.mul_add(a, acc) } else { b * a + acc }
                        }) + 0.0;
                        prop_assert_eq!(v.to_bits(), chain.to_bits(), "{:?} row {} output {}", level, i, j);
                        let want: f64 = mj.iter().zip(xr).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                        prop_assert!((f64::from(v) - want).abs() <= 1e-5 * cols as f64, "{:?} row {} output {}", level, i, j);
                    }
                }
                let cut = cut.min(n);
                let mut split = vec![0f32; n * rows];
                let (y0, y1) = split.split_at_mut(cut * rows);
                packed.apply(&x[..cut * cols], y0).unwrap();
                packed.apply(&x[cut * cols..], y1).unwrap();
                prop_assert_eq!(&split, &y, "{:?} split at {}", level, cut);
                let alone = packed.apply_to_vec(&x[(n - 1) * cols..]).unwrap();
                prop_assert_eq!(&alone[..], &y[(n - 1) * rows..], "{:?} last row alone", level);
            }
        }
    }

    #[test]
    fn shapes_are_checked() {
        assert_eq!(PackedMatrix::new(&[1.0; 6], 0).unwrap_err(), Error::ZeroDimension);
        assert_eq!(
            PackedMatrix::new(&[1.0; 5], 2).unwrap_err(),
            Error::RaggedBuffer { what: "matrix", len: 5, dim: 2 }
        );
        let m = PackedMatrix::new(&[1.0; 6], 3).unwrap();
        let mut y = vec![0.0; 3];
        assert_eq!(m.apply(&[1.0; 4], &mut y).unwrap_err(), Error::RaggedBuffer { what: "rows", len: 4, dim: 3 });
        assert_eq!(m.apply(&[1.0; 6], &mut y).unwrap_err(), Error::OutputLength { what: "y", got: 3, expected: 4 });
        // No rows in, none out; a 0 × cols matrix maps every row to nothing.
        assert_eq!(m.apply_to_vec(&[]).unwrap(), Vec::<f32>::new());
        let empty = PackedMatrix::new(&[], 3).unwrap();
        assert_eq!(empty.apply_to_vec(&[1.0; 6]).unwrap(), Vec::<f32>::new());
    }
}
