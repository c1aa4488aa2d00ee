//! `s = Σ_{b_j = 1} (P q)_j`, the rotated query summed over a code's set bits: the one
//! per-code sum of a RaBitQ scan, two ways chosen by SIMD level.
//!
//! - **Byte table** (portable, AVX2, NEON): per byte of bits the 256 sums of the query's eight
//!   values over every subset, so a code costs `⌈d/8⌉` look-ups; building the table costs
//!   `255 · ⌈d/8⌉` adds and `⌈d/8⌉` KiB per query (48 KiB at d = 384, past a 32 KiB L1). Flat
//!   scans at AVX2 and NEON look up only the codes that popcount estimates cannot rule out
//!   ([`super::bounds`]).
//! - **Masked adds** (AVX-512): two bytes of bits are the mask of a 16-lane add of the query's
//!   values, straight from the code: `⌈d/16⌉` adds a code and nothing built per query. On
//!   the AMD EPYC (Zen 5) measured, a scan of 100,000 codes takes 0.69× the
//!   table's time at d = 384 and 0.88× at d = 128 (`cargo bench -p vq-quant --bench
//!   rabitq_scan`). AVX2's 8-lane equivalents (a variable shift and a blend per eight bits, or
//!   a table of lane masks) measured slower than its byte table, so AVX2 keeps the table.
//!
//! Both are exact in the query (no query quantization, unlike Faiss' `qb` bits); they sum in
//! different orders, so their last bits differ between levels. Within a level a code's sum
//! does not depend on the codes scanned beside it.

use std::sync::OnceLock;

use vq_distance::SimdLevel;

/// Fills `table` (`2^w` entries for some `w ≥ dims.len()`) with the sums of `dims` over every
/// subset: entry `v` sums `dims[j]` over the bits `j` set in `v`. By doubling: the entries with
/// bit `j` set are those without it plus `dims[j]` (blocks of `2^j` contiguous sums, which the
/// compiler vectorizes). Bits past `dims` (a dimension that is not a multiple of the table's
/// width) add nothing: their codes' bits are zero, so those entries are never read, but they
/// stay the sums of the set bits.
pub(super) fn subset_sums(dims: &[f32], table: &mut [f32]) {
    table[0] = 0.0;
    let width = table.len().trailing_zeros() as usize;
    for j in 0..width {
        let (low, high) = table.split_at_mut(1 << j);
        let x = dims.get(j).copied().unwrap_or(0.0);
        high[..1 << j].iter_mut().zip(low.iter()).for_each(|(h, &l)| *h = l + x);
    }
}

/// `out[i] = s` of code `i`: codes `stride` bytes apart, each starting with its `nbytes`
/// (`⌈d/8⌉`) bytes of bits; `query` holds `d` values padded with zeros to a multiple of 16.
/// Outputs past the whole codes are left as they are.
type MaskedFn = fn(query: &[f32], codes: &[u8], stride: usize, nbytes: usize, out: &mut [f32]);

/// A query prepared for summing over the set bits of codes: of one plane of bits, or of
/// several planes weighted by powers of two ([`SetSums::refill`], multi-bit codes).
#[derive(Debug, Clone)]
pub(crate) enum SetSums {
    /// Per byte of bits `i`: entry `v` sums `(P q)_{8i+j}` over the bits `j` set in `v`; and
    /// per plane its first byte in a code and its weight. Every plane reads the same table
    /// (a plane's table is the first's times its power of two), summed per plane, weighted.
    Table { table: Vec<[f32; 256]>, planes: Vec<(usize, f32)> },
    /// The rotated query padded with zeros to whole 16-lane groups, its bytes of bits per
    /// code, and the masked-add kernel.
    Masked { query: Vec<f32>, nbytes: usize, kernel: MaskedFn },
}

impl SetSums {
    /// The sums of the rotated query `pq` at the level vq-distance uses in this process.
    pub(crate) fn new(pq: &[f32]) -> SetSums {
        Self::with(pq, &[0], pq.len().div_ceil(8), *Self::level_kernel())
    }

    fn level_kernel() -> &'static Option<MaskedFn> {
        static MASKED: OnceLock<Option<MaskedFn>> = OnceLock::new();
        MASKED.get_or_init(|| masked_for(vq_distance::simd_level()))
    }

    /// Sums over planes ([`SetSums::refill`]) at `level`, or `None` when this CPU cannot run
    /// it (tests compare levels).
    #[cfg(test)]
    pub(crate) fn for_level(pq: &[f32], planes: &[usize], nbytes: usize, level: SimdLevel) -> Option<SetSums> {
        SimdLevel::available().contains(&level).then(|| Self::with(pq, planes, nbytes, masked_for(level)))
    }

    /// Sums of nothing yet, at the level vq-distance uses in this process: for
    /// [`SetSums::refill`] to fill.
    pub(crate) fn unfilled() -> SetSums {
        Self::empty(*Self::level_kernel())
    }

    fn empty(masked: Option<MaskedFn>) -> SetSums {
        match masked {
            Some(kernel) => SetSums::Masked { query: Vec::new(), nbytes: 0, kernel },
            None => SetSums::Table { table: Vec::new(), planes: Vec::new() },
        }
    }

    fn with(pq: &[f32], planes: &[usize], nbytes: usize, masked: Option<MaskedFn>) -> SetSums {
        let mut sums = Self::empty(masked);
        sums.refill(pq, planes, nbytes);
        sums
    }

    /// The sums of `pq` over several planes of bits, `planes[i]` the byte of a code where plane
    /// `i` starts, plane `i` weighted `2^{n−1−i}` (`n` planes), the planes (and any bytes
    /// between them, which add nothing) taking `nbytes` bytes of a code; in place, at this
    /// one's level, reusing its memory (a fast-scan table's second stage is refilled per
    /// query: the byte table is 48 KiB at d = 384).
    pub(crate) fn refill(&mut self, pq: &[f32], planes: &[usize], nbytes: usize) {
        let weight = |i: usize| (1u32 << (planes.len() - 1 - i)) as f32;
        match self {
            // The query repeated under every plane, scaled by its weight (exactly: a power of
            // two), zeros elsewhere; padded to whole 16-lane groups.
            SetSums::Masked { query, nbytes: n, .. } => {
                query.clear();
                query.resize((8 * nbytes).next_multiple_of(16), 0.0);
                for (i, &at) in planes.iter().enumerate() {
                    let w = weight(i);
                    query[8 * at..][..pq.len()].iter_mut().zip(pq).for_each(|(o, &v)| *o = v * w);
                }
                *n = nbytes;
            }
            SetSums::Table { table, planes: weighted } => {
                // Every entry is written by `subset_sums`: no need to clear the old ones.
                table.resize(pq.len().div_ceil(8), [0f32; 256]);
                for (t, dims) in table.iter_mut().zip(pq.chunks(8)) {
                    subset_sums(dims, t);
                }
                weighted.clear();
                weighted.extend(planes.iter().enumerate().map(|(i, &at)| (at, weight(i))));
            }
        }
    }

    /// `s` of one code's bits (the `nbytes` bytes of its planes).
    #[inline]
    pub(crate) fn one(&self, bits: &[u8]) -> f32 {
        match self {
            SetSums::Table { table, planes } => planes_sum(table, planes, bits),
            &SetSums::Masked { ref query, nbytes, kernel } => {
                let mut out = [0f32];
                kernel(query, bits, nbytes, nbytes, &mut out);
                out[0]
            }
        }
    }

    /// `out[i] = finish(s, code)` for each code of `codes` (whole codes, `stride` bytes
    /// apart, bits first), `s` its set-bit sum. The table finishes each code as it sums it (two
    /// passes cost AVX2 6–18 %); the masked kernel sums all of them first, four codes at a time,
    /// then finishes them (finishing inside its loop measured ~10 % slower). Inlined, so that
    /// `finish` is too.
    #[inline(always)]
    pub(crate) fn map(&self, codes: &[u8], stride: usize, out: &mut [f32], finish: impl Fn(f32, &[u8]) -> f32) {
        match self {
            SetSums::Table { table, planes } => {
                for (code, o) in codes.chunks_exact(stride).zip(out.iter_mut()) {
                    *o = finish(planes_sum(table, planes, code), code);
                }
            }
            &SetSums::Masked { ref query, nbytes, kernel } => {
                kernel(query, codes, stride, nbytes, out);
                for (code, o) in codes.chunks_exact(stride).zip(out.iter_mut()) {
                    *o = finish(*o, code);
                }
            }
        }
    }
}

/// `s` of a code's planes by the table: each plane's sum times its weight (one plane: its
/// sum, as the weight is 1).
#[inline(always)]
fn planes_sum(table: &[[f32; 256]], planes: &[(usize, f32)], code: &[u8]) -> f32 {
    planes.iter().map(|&(at, w)| w * table_sum(table, &code[at..][..table.len()])).sum()
}

/// `s` by the table, four bytes at a time in separate sums.
#[inline(always)]
fn table_sum(table: &[[f32; 256]], bits: &[u8]) -> f32 {
    let mut acc = [0f32; 4];
    let mut rows = table.chunks_exact(4);
    let mut bytes = bits.chunks_exact(4);
    for (t, b) in (&mut rows).zip(&mut bytes) {
        for ((s, t), &b) in acc.iter_mut().zip(t).zip(b) {
            *s += t[usize::from(b)];
        }
    }
    for ((s, t), &b) in acc.iter_mut().zip(rows.remainder()).zip(bytes.remainder()) {
        *s += t[usize::from(b)];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// The masked-add kernel of `level`, if it has one and this CPU runs it.
fn masked_for(level: SimdLevel) -> Option<MaskedFn> {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => avx512::checked(),
        _ => None,
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::MaskedFn;

    /// Codes summed side by side: independent add chains hide the add's latency. (Folding
    /// the four horizontal sums together measured slower: the masked adds are the bound.)
    const LANES: usize = 4;

    pub(super) fn checked() -> Option<MaskedFn> {
        is_x86_feature_detected!("avx512f").then_some(entry as MaskedFn)
    }

    fn entry(query: &[f32], codes: &[u8], stride: usize, nbytes: usize, out: &mut [f32]) {
        // Whole codes only: the last code needs its `nbytes` bytes of bits, no more.
        let n = match codes.len().checked_sub(nbytes) {
            Some(rest) if stride >= nbytes && stride > 0 => out.len().min(rest / stride + 1),
            _ => 0,
        };
        assert!(query.len().is_multiple_of(16) && query.len() >= 8 * nbytes);
        let (mut groups, at) = (out[..n].chunks_exact_mut(LANES), codes.as_ptr());
        for (g, out) in (&mut groups).enumerate() {
            // SAFETY: `checked` found AVX-512 F; codes `4g .. 4g + 4` are below `n`, so each
            // has its `nbytes` bytes within `codes` (`(n − 1) · stride + nbytes ≤ codes.len()`);
            // `query` has 16 values per two bytes of bits (asserted above).
            unsafe { sums::<LANES>(query, at.add(LANES * g * stride), stride, nbytes, out) };
        }
        let rest = groups.into_remainder();
        let first = n - rest.len();
        for (i, out) in rest.chunks_exact_mut(1).enumerate() {
            // SAFETY: as above, for the one code `first + i < n`.
            unsafe { sums::<1>(query, at.add((first + i) * stride), stride, nbytes, out) };
        }
    }

    /// The sums of the `C` codes at `codes`, `stride` apart, into `out` (`C` values): each its
    /// own accumulator, the same masked adds in the same order and one horizontal sum
    /// whatever `C`, so a code's sum does not depend on the codes beside it.
    ///
    /// # Safety
    /// AVX-512 F; `nbytes` readable bytes at `codes + c · stride` for `c < C`; `query` holds at
    /// least `8 · nbytes` values, rounded up to 16.
    #[target_feature(enable = "avx512f")]
    unsafe fn sums<const C: usize>(query: &[f32], codes: *const u8, stride: usize, nbytes: usize, out: &mut [f32]) {
        let mut acc = [_mm512_setzero_ps(); C];
        let q = query.as_ptr();
        // (One loop with the odd last byte inside measured 5 % faster than peeling it.)
        let mut byte = 0;
        while byte < nbytes {
            // SAFETY: 16 values at `q + 8 · byte` (`byte` is even and below `nbytes`: within the
            // query's length, a multiple of 16 of at least `8 · nbytes`).
            let v = unsafe { _mm512_loadu_ps(q.add(8 * byte)) };
            for (c, a) in acc.iter_mut().enumerate() {
                // SAFETY: byte `byte` of code `c` and, when below `nbytes`, byte `byte + 1`.
                let mask = unsafe {
                    let p = codes.add(c * stride + byte);
                    if byte + 1 < nbytes { p.cast::<u16>().read_unaligned() } else { u16::from(*p) }
                };
                *a = _mm512_mask_add_ps(*a, mask, *a, v);
            }
            byte += 2;
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = _mm512_reduce_add_ps(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Several planes, with bytes between them that add nothing: every level's sum is the
        /// planes' f64 sums weighted by powers of two, a code alone equals it in a batch, and
        /// sums refilled in place from others equal it to the bit.
        #[test]
        fn every_level_sums_weighted_planes(
            dim in 1usize..100,
            planes in 2usize..5,
            gap in prop::sample::select(vec![0usize, 12]),
            n in 0usize..7,
            seed in any::<u64>(),
        ) {
            let mix = |i: u64| crate::linear::mix(seed ^ i);
            let pq: Vec<f32> = (0..dim as u64).map(|j| (mix(j) % 2001) as f32 / 100.0 - 10.0).collect();
            let pb = dim.div_ceil(8);
            let offsets: Vec<usize> = (0..planes).map(|p| p * pb + if p > 0 { gap } else { 0 }).collect();
            let nbytes = planes * pb + gap;
            let stride = nbytes + 3;
            let mut codes: Vec<u8> = (0..n * stride).map(|i| mix(1 << 40 | i as u64) as u8).collect();
            for code in codes.chunks_exact_mut(stride) {
                for &at in &offsets {
                    if dim % 8 != 0 {
                        code[at + pb - 1] &= (1u8 << (dim % 8)) - 1;
                    }
                }
            }
            let slow: Vec<f64> = codes
                .chunks_exact(stride)
                .map(|c| {
                    offsets.iter().enumerate().map(|(i, &at)| {
                        let w = f64::from(1u32 << (planes - 1 - i));
                        w * (0..dim).filter(|&j| c[at + j / 8] >> (j % 8) & 1 == 1).map(|j| f64::from(pq[j])).sum::<f64>()
                    }).sum()
                })
                .collect();
            let bound = 1e-5 * f64::from(1u32 << planes) * pq.iter().map(|v| f64::from(v.abs())).sum::<f64>();
            for level in SimdLevel::available() {
                let sums = SetSums::for_level(&pq, &offsets, nbytes, level).unwrap();
                let mut out = vec![f32::NAN; n];
                sums.map(&codes, stride, &mut out, |s, _| s);
                for (i, (&got, want)) in out.iter().zip(&slow).enumerate() {
                    prop_assert!((f64::from(got) - want).abs() <= bound, "{level:?} code {i}: {got} vs {want}");
                    let alone = sums.one(&codes[i * stride..][..nbytes]);
                    prop_assert_eq!(alone.to_bits(), got.to_bits(), "{:?} code {} alone", level, i);
                }
                // Refilled from other sums (longer, one plane, other values): the same sums.
                let other: Vec<f32> = (0..300).map(|j| j as f32 - 7.5).collect();
                let mut refilled = SetSums::for_level(&other, &[0], 38, level).unwrap();
                refilled.refill(&pq, &offsets, nbytes);
                let mut again = vec![f32::NAN; n];
                refilled.map(&codes, stride, &mut again, |s, _| s);
                prop_assert_eq!(
                    again.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{:?} refilled", level
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every level's sums equal the sum over the set bits in f64 (within f32 rounding),
        /// one code alone equals it in a batch to the bit, and codes packed end to end (no
        /// bytes after the last one's bits) are read within bounds.
        #[test]
        fn every_level_sums_the_set_bits(
            dim in 1usize..300,
            n in 0usize..11,
            pad in 0usize..14,
            seed in any::<u64>(),
        ) {
            let mix = |i: u64| crate::linear::mix(seed ^ i);
            let pq: Vec<f32> = (0..dim as u64).map(|j| (mix(j) % 2001) as f32 / 100.0 - 10.0).collect();
            let nbytes = dim.div_ceil(8);
            let stride = nbytes + pad;
            let mut codes: Vec<u8> = (0..n * stride).map(|i| mix(1 << 40 | i as u64) as u8).collect();
            // Bits past the dimension are zero in real codes.
            for code in codes.chunks_exact_mut(stride) {
                if dim % 8 != 0 {
                    code[nbytes - 1] &= (1u8 << (dim % 8)) - 1;
                }
            }
            let slow: Vec<f64> = codes
                .chunks_exact(stride)
                .map(|c| (0..dim).filter(|&j| c[j / 8] >> (j % 8) & 1 == 1).map(|j| f64::from(pq[j])).sum())
                .collect();
            let bound = 1e-6 * pq.iter().map(|v| f64::from(v.abs())).sum::<f64>();
            for level in SimdLevel::available() {
                let sums = SetSums::for_level(&pq, &[0], nbytes, level).unwrap();
                let mut out = vec![f32::NAN; n];
                sums.map(&codes, stride, &mut out, |s, code| {
                    assert_eq!(code.len(), stride);
                    s
                });
                for (i, (&got, want)) in out.iter().zip(&slow).enumerate() {
                    prop_assert!((f64::from(got) - want).abs() <= bound, "{level:?} code {i}: {got} vs {want}");
                    let alone = sums.one(&codes[i * stride..][..nbytes]);
                    prop_assert_eq!(alone.to_bits(), got.to_bits(), "{:?} code {} alone", level, i);
                }
                // The masked kernel on codes packed end to end (the last code's bits end the
                // buffer): every code summed, none read past.
                if let &SetSums::Masked { ref query, nbytes, kernel } = &sums {
                    let mut tight_out = vec![f32::NAN; n];
                    kernel(query, &codes[..codes.len().saturating_sub(pad)], stride, nbytes, &mut tight_out);
                    prop_assert_eq!(tight_out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                }
            }
        }
    }
}
