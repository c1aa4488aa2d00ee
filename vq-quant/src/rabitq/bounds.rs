//! Bounds on a code's set-bit sum `s = Σ_{b_j = 1} (P q)_j` from popcounts: the levels whose
//! exact sums go through a byte table (AVX2, NEON; [`super::bits`]) first estimate `s` of each
//! code's sign plane from the query quantized to [`QUERY_BITS`] bits, `ŝ`, with a bound on
//! `|s − ŝ|` that holds for every code, and sum exactly only the codes whose key that bound
//! cannot put above a scan's threshold: flat scans, and inverted lists while the bounds rule
//! out most codes (`RaBitQScorer`'s running pass rate).
//!
//! Why: the byte table is 48 KiB at d = 384 (the whole L1d of the AMD Zen 5 measured, 32 KiB on
//! Zen 4 and many Intel cores), and its `⌈d/8⌉` look-ups a code, about 28 cycles, were most of a
//! flat scan at AVX2; the estimate is five `popcnt`s per 64 bits of code. On textemb100k
//! (d = 384, one thread, `VQ_SIMD=avx2`) a flat `RaBitQ` scan runs about 1.5× as fast,
//! `RaBitQ4` 1.3× (BENCHMARKS.md). Faiss' `IndexRaBitQ` scores with such a quantized query
//! (`qb` bits) and keeps its error; here the quantized query only decides which codes need
//! their exact sum, so every key a scan returns is the exact one, and a code is skipped only
//! where even the bound's most favourable `s` puts it above the threshold.
//!
//! The bound: dimension `j` is quantized to `q̂_j = low + step · u_j`, `u_j` the nearest of
//! `0 ..= 2^QUERY_BITS − 1`, so with `e_j = q_j − q̂_j`, `s − ŝ = Σ_{b_j = 1} e_j` lies between
//! the sum of the negative `e_j` and the sum of the positive ones, whatever the code (plus a
//! slack for f32 rounding in `ŝ` and in the table's sums).

use vq_distance::SimdLevel;

/// Bits per dimension of the quantized query. Each bit is a popcount per 64 bits of code, and
/// halves the bound. On textemb100k at AVX2, 3 bits scanned 25–35 % slower than 4 (too many
/// codes summed exactly), 5 bits no faster.
const QUERY_BITS: usize = 4;

/// `|s − ŝ|` is also allowed this much per unit of `Σ_j |q_j|`: f32 rounding in `ŝ` (three
/// operations) and in the table's sums (`⌈d/8⌉ + 8` additions, each within 2⁻²⁴ of that
/// scale) stay below it up to d ≈ 10⁴ (vq's dense rotations stop at 4,096).
const ROUNDING_SLACK: f64 = 1e-4;

/// `out[i] = ŝ` of code `i` by `bounds`: codes `stride` bytes apart, each starting with its sign
/// plane.
type EstimateFn = fn(bounds: &SumBounds, codes: &[u8], stride: usize, out: &mut [f32]);

/// A query quantized for popcount estimates of its set-bit sums over codes' sign planes, and
/// the bound on their error.
#[derive(Debug, Clone)]
pub(crate) struct SumBounds {
    /// Per 64 dimensions, per bit `p` of the levels: the dimensions whose level has bit `p` set.
    levels: Vec<[u64; QUERY_BITS]>,
    /// `q̂_j = low + step · u_j`.
    low: f32,
    step: f32,
    /// `|s − ŝ| ≤ error` for every code.
    error: f32,
    /// Bytes of a code's sign plane (`⌈d/8⌉`).
    nbytes: usize,
    kernel: EstimateFn,
}

impl SumBounds {
    /// The bounds of the rotated query `pq` at the level vq-distance uses in this process:
    /// `None` where that level sums exactly without a table (AVX-512's masked adds: a flat
    /// one-bit scan with these estimates before them ran at 0.83× their speed alone) or has no
    /// fast popcount (portable x86-64).
    pub(crate) fn new(pq: &[f32]) -> Option<SumBounds> {
        Self::with_kernel(pq, kernel_for(vq_distance::simd_level())?)
    }

    fn with_kernel(pq: &[f32], kernel: EstimateFn) -> Option<SumBounds> {
        let (min, max) = pq.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let top = ((1 << QUERY_BITS) - 1) as f32;
        let (low, step) = (min, (max - min) / top);
        // An empty or non-finite query (a range past f32) gets no bounds: exact sums only.
        if !(low.is_finite() && step.is_finite()) {
            return None;
        }
        let inverse = if step > 0.0 { 1.0 / step } else { 0.0 };
        let mut levels = vec![[0u64; QUERY_BITS]; pq.len().div_ceil(64)];
        let (mut above, mut below, mut scale) = (0f64, 0f64, 0f64);
        // Per query, so kept cheap: no division, no library rounding (baseline x86-64 has no
        // rounding instruction), no branch per dimension.
        for (planes, dims) in levels.iter_mut().zip(pq.chunks(64)) {
            for (i, &v) in dims.iter().enumerate() {
                // `v ≥ low`: truncating after adding ½ rounds to the nearest level.
                let u = (((v - low) * inverse + 0.5) as u32).min(top as u32);
                for (p, plane) in planes.iter_mut().enumerate() {
                    *plane |= u64::from((u >> p) & 1) << i;
                }
                // The bound holds for the levels chosen, nearest or not.
                let e = f64::from(v) - (f64::from(low) + f64::from(step) * f64::from(u));
                above += e.max(0.0);
                below += (-e).max(0.0);
                scale += f64::from(v.abs());
            }
        }
        // Rounded up to f32: the bound must not shrink in the conversion.
        let error = (above.max(below) + ROUNDING_SLACK * scale) * (1.0 + 1e-6);
        Some(SumBounds { levels, low, step, error: error as f32, nbytes: pq.len().div_ceil(8), kernel })
    }

    /// `|s − ŝ|` is at most this for every code.
    pub(crate) fn error(&self) -> f32 {
        self.error
    }

    /// `out[i] = ŝ` of code `i` of `codes` (`stride` bytes apart, each starting with its sign
    /// plane); outputs past the whole codes are left as they are.
    pub(crate) fn estimates(&self, codes: &[u8], stride: usize, out: &mut [f32]) {
        (self.kernel)(self, codes, stride, out);
    }
}

/// The estimate kernel of `level`, if it has one and this CPU runs it.
fn kernel_for(level: SimdLevel) -> Option<EstimateFn> {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if is_x86_feature_detected!("popcnt") => Some(x86::entry as EstimateFn),
        // aarch64's `count_ones` is the vector `cnt`: the portable loop is its kernel.
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => Some(estimates_portable as EstimateFn),
        _ => None,
    }
}

/// The estimates by the loop every level compiles (the test's slow twin checks it in f64).
#[cfg(any(test, target_arch = "aarch64"))]
fn estimates_portable(bounds: &SumBounds, codes: &[u8], stride: usize, out: &mut [f32]) {
    estimates_inline(bounds, codes, stride, out);
}

/// `ŝ = low · |b| + step · Σ_p 2^p |b ∧ level plane p|` per code, the counts exact in
/// integers. A sign plane whose length is not a multiple of eight bytes is read zero-padded.
#[inline(always)]
fn estimates_inline(bounds: &SumBounds, codes: &[u8], stride: usize, out: &mut [f32]) {
    let SumBounds { ref levels, low, step, nbytes, .. } = *bounds;
    if stride < nbytes || stride == 0 {
        return;
    }
    let whole = nbytes / 8;
    for (code, o) in codes.chunks(stride).filter(|c| c.len() >= nbytes).zip(out.iter_mut()) {
        // One count per plane, weighted once a code: five independent sums per word.
        let (mut ones, mut counts) = (0u32, [0u32; QUERY_BITS]);
        let mut count = |bits: u64, planes: &[u64; QUERY_BITS]| {
            ones += bits.count_ones();
            for (c, &plane) in counts.iter_mut().zip(planes) {
                *c += (bits & plane).count_ones();
            }
        };
        let (head, tail) = code[..nbytes].split_at(8 * whole);
        for (word, planes) in head.chunks_exact(8).zip(levels) {
            count(u64::from_le_bytes(word.try_into().expect("eight bytes")), planes);
        }
        if !tail.is_empty() {
            let mut last = [0u8; 8];
            last[..tail.len()].copy_from_slice(tail);
            count(u64::from_le_bytes(last), &levels[whole]);
        }
        let weighted: u32 = counts.iter().enumerate().map(|(p, &c)| c << p).sum();
        *o = low * ones as f32 + step * weighted as f32;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{SumBounds, estimates_inline};

    pub(super) fn entry(bounds: &SumBounds, codes: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: `kernel_for` hands this kernel out only where `popcnt` was detected.
        unsafe { with_popcnt(bounds, codes, stride, out) }
    }

    /// The portable loop compiled with `popcnt` (without it `count_ones` is a dozen shifts and
    /// masks: the estimates then cost more than the table).
    ///
    /// # Safety
    /// The CPU has `popcnt`.
    #[target_feature(enable = "popcnt")]
    unsafe fn with_popcnt(bounds: &SumBounds, codes: &[u8], stride: usize, out: &mut [f32]) {
        estimates_inline(bounds, codes, stride, out);
    }
}

/// The bounds of `pq` by every kernel this CPU runs, and by the portable loop.
#[cfg(test)]
pub(super) fn every_kernel(pq: &[f32]) -> Vec<SumBounds> {
    tests::kernels().into_iter().filter_map(|k| SumBounds::with_kernel(pq, k)).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every level with a kernel, and the portable loop (the only one on a CPU without them).
    pub(super) fn kernels() -> Vec<EstimateFn> {
        let mut all: Vec<EstimateFn> = SimdLevel::available().into_iter().filter_map(kernel_for).collect();
        all.push(estimates_portable);
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every kernel's `ŝ` equals the quantized query summed over the set bits (in f64),
        /// and the exact sum lies within the error bound of it, for codes `stride` apart with
        /// bytes between them.
        #[test]
        fn estimates_bound_the_exact_sums(
            dim in 1usize..300,
            scale in prop_oneof![Just(1e-3f32), Just(1.0f32), Just(1e4f32)],
            shift in -2.0f32..2.0,
            gap in 0usize..5,
            n in 1usize..12,
            seed in any::<u64>(),
        ) {
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let pq: Vec<f32> = (0..dim).map(|_| ((next() % 20001) as f32 / 10000.0 - 1.0 + shift) * scale).collect();
            let nbytes = dim.div_ceil(8);
            let stride = nbytes + gap;
            let mut codes = vec![0u8; n * stride];
            for code in codes.chunks_exact_mut(stride) {
                for (j, _) in pq.iter().enumerate() {
                    code[j / 8] |= ((next() & 1) as u8) << (j % 8);
                }
                for b in &mut code[nbytes..] {
                    *b = next() as u8;
                }
            }
            let bounds = SumBounds::with_kernel(&pq, estimates_portable).expect("a finite query");
            // Each dimension's level, read back from the planes: the nearest one.
            let level = |j: usize| (0..QUERY_BITS).map(|p| ((bounds.levels[j / 64][p] >> (j % 64)) & 1) << p).sum::<u64>();
            for (j, &v) in pq.iter().enumerate() {
                let rebuilt = f64::from(bounds.low) + f64::from(bounds.step) * level(j) as f64;
                let off = (f64::from(v) - rebuilt).abs();
                prop_assert!(off <= 0.5001 * f64::from(bounds.step) + 1e-6 * f64::from(v.abs()), "dimension {j}: {v} at level {}", level(j));
            }
            let magnitude: f64 = pq.iter().map(|&v| f64::from(v.abs())).sum();
            for kernel in kernels() {
                let mut out = vec![f32::NAN; n + 1];
                kernel(&bounds, &codes, stride, &mut out);
                prop_assert!(out[n].is_nan(), "an output past the codes was written");
                for (code, &est) in codes.chunks_exact(stride).zip(&out) {
                    let (mut quantized, mut exact) = (0f64, 0f64);
                    for (j, &v) in pq.iter().enumerate() {
                        if code[j / 8] >> (j % 8) & 1 == 1 {
                            quantized += f64::from(bounds.low) + f64::from(bounds.step) * level(j) as f64;
                            exact += f64::from(v);
                        }
                    }
                    prop_assert!((f64::from(est) - quantized).abs() <= 1e-5 * magnitude, "ŝ {est} against {quantized}");
                    prop_assert!((f64::from(est) - exact).abs() <= f64::from(bounds.error()), "s {exact}, ŝ {est}, bound {}", bounds.error());
                }
            }
        }
    }

    /// At d = 384, values spread evenly over `[−1, 1]`, the bound is the larger one-signed sum
    /// of the rounding errors, about `d · step / 8` (`step` = 2/15) against `Σ |q_j| ≈ d / 2`:
    /// below 1/20 of it (the sum of every `|e_j|`, a looser bound, would not be).
    #[test]
    fn the_bound_is_a_small_part_of_the_sums() {
        let pq: Vec<f32> = (0..384).map(|j| ((j * 7919) % 384) as f32 / 191.5 - 1.0).collect();
        let bounds = SumBounds::with_kernel(&pq, estimates_portable).expect("a finite query");
        let magnitude: f32 = pq.iter().map(|v| v.abs()).sum();
        assert!(bounds.error() < magnitude / 20.0, "bound {} against Σ|q| {magnitude}", bounds.error());
        assert!(bounds.error() > 0.0);
    }

    #[test]
    fn queries_without_a_finite_range_have_no_bounds() {
        assert!(SumBounds::with_kernel(&[], estimates_portable).is_none());
        assert!(SumBounds::with_kernel(&[f32::MAX, -f32::MAX], estimates_portable).is_none());
        let flat = SumBounds::with_kernel(&[0.5; 20], estimates_portable).expect("a constant query");
        let mut out = [0f32];
        flat.estimates(&[0b1011, 0, 0], 3, &mut out);
        assert_eq!(out[0], 1.5);
    }
}
