//! PQ look-up tables: building a query's `m × 2^nbits` table, and summing it over codes.
//!
//! The scan is gather-free scalar code, as fast as the table loads allow: every id indexes a
//! table row of compile-time length (`[f32; 256]` at 8 bits, `[f32; 2^nbits]` below), so the
//! index is in bounds by its type and the loop carries no bounds check. Four codes are summed
//! together, each into two partial sums (even and odd sub-quantizers), so eight independent
//! addition chains hide the latency of the loads and adds. The single-code path adds in the
//! same order, so both give identical keys. (Faiss' `pq_estimators_from_tables` also sums four
//! codes at a time with scalar loads.) Run `cargo bench -p vq-quant --bench pq_scan` before and
//! after changing a kernel here.

use vq_distance::Metric;

/// Key of one code: `(table, code) -> key`.
pub(super) type OneFn = fn(&[f32], &[u8]) -> f32;
/// Keys of a block: `(table, codes, code_size, out)`; `out.len()` codes (fewer if `codes` is
/// shorter).
pub(super) type ManyFn = fn(&[f32], &[u8], usize, &mut [f32]);

/// The scan kernels of one `(m, nbits)`, chosen once per quantizer.
#[derive(Clone, Copy)]
pub(super) struct Kernels {
    pub(super) one: OneFn,
    pub(super) many: ManyFn,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kernels")
    }
}

impl Kernels {
    pub(super) fn new(m: usize, nbits: u32) -> Kernels {
        let (one, many): (OneFn, ManyFn) = match nbits {
            8 => (
                one8,
                match m {
                    8 => many8_fixed::<8>,
                    16 => many8_fixed::<16>,
                    32 => many8_fixed::<32>,
                    64 => many8_fixed::<64>,
                    _ => many8,
                },
            ),
            4 => (one_packed::<4, 16>, many_packed::<4, 16>),
            5 => (one_packed::<5, 32>, many_packed::<5, 32>),
            6 => (one_packed::<6, 64>, many_packed::<6, 64>),
            // Parameters are checked before this is called: only 7 is left.
            _ => (one_packed::<7, 128>, many_packed::<7, 128>),
        };
        Kernels { one, many }
    }
}

// ---- 8 bits: one byte per id ----

/// The reference order: even sub-quantizers into `s0`, odd into `s1`, then `s0 + s1`.
pub(super) fn one8(table: &[f32], code: &[u8]) -> f32 {
    let (rows, _) = table.as_chunks::<256>();
    let (row_pairs, row_rest) = rows.as_chunks::<2>();
    let (id_pairs, id_rest) = code.as_chunks::<2>();
    let (mut s0, mut s1) = (0f32, 0f32);
    for (t, c) in row_pairs.iter().zip(id_pairs) {
        s0 += t[0][c[0] as usize];
        s1 += t[1][c[1] as usize];
    }
    if let ([t], [c, ..]) = (row_rest, id_rest) {
        s0 += t[*c as usize];
    }
    s0 + s1
}

/// Four codes per step, any `m`.
fn many8(table: &[f32], codes: &[u8], m: usize, out: &mut [f32]) {
    let (rows, _) = table.as_chunks::<256>();
    if m == 0 || rows.len() != m {
        out.fill(f32::NAN);
        return;
    }
    let (row_pairs, row_rest) = rows.as_chunks::<2>();
    let n = out.len().min(codes.len() / m);
    let done = n / 4 * 4;
    for (c, o) in codes.chunks_exact(4 * m).zip(out[..done].chunks_exact_mut(4)) {
        let (c0, c) = c.split_at(m);
        let (c1, c) = c.split_at(m);
        let (c2, c3) = c.split_at(m);
        let mut a = [0f32; 8];
        let ids = c0.as_chunks::<2>().0.iter().zip(c1.as_chunks::<2>().0).zip(c2.as_chunks::<2>().0);
        for ((t, ((x0, x1), x2)), x3) in row_pairs.iter().zip(ids).zip(c3.as_chunks::<2>().0) {
            a[0] += t[0][x0[0] as usize];
            a[1] += t[1][x0[1] as usize];
            a[2] += t[0][x1[0] as usize];
            a[3] += t[1][x1[1] as usize];
            a[4] += t[0][x2[0] as usize];
            a[5] += t[1][x2[1] as usize];
            a[6] += t[0][x3[0] as usize];
            a[7] += t[1][x3[1] as usize];
        }
        if let [t] = row_rest {
            a[0] += t[c0[m - 1] as usize];
            a[2] += t[c1[m - 1] as usize];
            a[4] += t[c2[m - 1] as usize];
            a[6] += t[c3[m - 1] as usize];
        }
        o[0] = a[0] + a[1];
        o[1] = a[2] + a[3];
        o[2] = a[4] + a[5];
        o[3] = a[6] + a[7];
    }
    for (o, c) in out[done..n].iter_mut().zip(codes[done * m..].chunks_exact(m)) {
        *o = one8(table, c);
    }
}

/// Four codes per step, `M` (even) known at compile time: fully unrolled, no bounds checks.
fn many8_fixed<const M: usize>(table: &[f32], codes: &[u8], code_size: usize, out: &mut [f32]) {
    let (rows, _) = table.as_chunks::<256>();
    let Ok(rows) = <&[[f32; 256]; M]>::try_from(rows) else {
        return many8(table, codes, code_size, out);
    };
    if code_size != M {
        return many8(table, codes, code_size, out);
    }
    let (codes, _) = codes.as_chunks::<M>();
    let (quads, rest) = codes.as_chunks::<4>();
    let (outs, out_rest) = out.as_chunks_mut::<4>();
    for (c, o) in quads.iter().zip(outs.iter_mut()) {
        let mut a = [0f32; 8];
        let mut j = 0;
        while j < M {
            a[0] += rows[j][c[0][j] as usize];
            a[1] += rows[j + 1][c[0][j + 1] as usize];
            a[2] += rows[j][c[1][j] as usize];
            a[3] += rows[j + 1][c[1][j + 1] as usize];
            a[4] += rows[j][c[2][j] as usize];
            a[5] += rows[j + 1][c[2][j + 1] as usize];
            a[6] += rows[j][c[3][j] as usize];
            a[7] += rows[j + 1][c[3][j + 1] as usize];
            j += 2;
        }
        *o = [a[0] + a[1], a[2] + a[3], a[4] + a[5], a[6] + a[7]];
    }
    for (o, c) in out_rest.iter_mut().zip(rest) {
        *o = one8(table, c);
    }
}

// ---- 4 to 7 bits: eight ids in NBITS bytes ----

/// The ids of group `g` (sub-quantizers `8g .. 8g + 8`) as one little-endian word: bytes
/// `g·NBITS ..` of the code, fewer at its end.
#[inline(always)]
fn group_word<const NBITS: usize>(code: &[u8], g: usize) -> u64 {
    let mut b = [0u8; 8];
    match code.get(g * NBITS..(g + 1) * NBITS) {
        Some(bytes) => b[..NBITS].copy_from_slice(bytes),
        None => {
            let tail = code.get(g * NBITS..).unwrap_or(&[]);
            let n = tail.len().min(8);
            b[..n].copy_from_slice(&tail[..n]);
        }
    }
    u64::from_le_bytes(b)
}

/// The reference order for packed codes (the same as [`one8`]'s).
pub(super) fn one_packed<const NBITS: usize, const K: usize>(table: &[f32], code: &[u8]) -> f32 {
    let (rows, _) = table.as_chunks::<K>();
    let (mut s0, mut s1) = (0f32, 0f32);
    for (g, group) in rows.chunks(8).enumerate() {
        let w = group_word::<NBITS>(code, g);
        for (i, row) in group.iter().enumerate() {
            let v = row[(w >> (i * NBITS)) as usize & (K - 1)];
            // j = 8g + i has the parity of i.
            if i % 2 == 0 {
                s0 += v;
            } else {
                s1 += v;
            }
        }
    }
    s0 + s1
}

/// Adds the eight entries of one full group (ids packed in `w`) into `even` and `odd`, in
/// sub-quantizer order.
#[inline(always)]
fn add_group<const NBITS: usize, const K: usize>(rows: &[[f32; K]; 8], w: u64, even: &mut f32, odd: &mut f32) {
    let mut i = 0;
    while i < 8 {
        *even += rows[i][(w >> (i * NBITS)) as usize & (K - 1)];
        *odd += rows[i + 1][(w >> ((i + 1) * NBITS)) as usize & (K - 1)];
        i += 2;
    }
}

/// A full group's word: `NBITS` bytes, little-endian.
#[inline(always)]
fn full_word<const NBITS: usize>(bytes: &[u8; NBITS]) -> u64 {
    let mut b = [0u8; 8];
    b[..NBITS].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// Four packed codes per step: full groups of eight ids unrolled with the accumulators in
/// registers, then the partial last group (if `m` is not a multiple of 8) as [`one_packed`]
/// adds it.
fn many_packed<const NBITS: usize, const K: usize>(table: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    let (rows, _) = table.as_chunks::<K>();
    if cs == 0 {
        out.fill(f32::NAN);
        return;
    }
    let (groups, tail_rows) = rows.as_chunks::<8>();
    let full = groups.len();
    let n = out.len().min(codes.len() / cs);
    let done = n / 4 * 4;
    for (c, o) in codes.chunks_exact(4 * cs).zip(out[..done].chunks_exact_mut(4)) {
        let (c0, c) = c.split_at(cs);
        let (c1, c) = c.split_at(cs);
        let (c2, c3) = c.split_at(cs);
        let (mut e0, mut o0, mut e1, mut o1, mut e2, mut o2, mut e3, mut o3) =
            (0f32, 0f32, 0f32, 0f32, 0f32, 0f32, 0f32, 0f32);
        for (g, rows8) in groups.iter().enumerate() {
            let at = |c: &[u8]| c.as_chunks::<NBITS>().0.get(g).map_or(0, full_word::<NBITS>);
            add_group::<NBITS, K>(rows8, at(c0), &mut e0, &mut o0);
            add_group::<NBITS, K>(rows8, at(c1), &mut e1, &mut o1);
            add_group::<NBITS, K>(rows8, at(c2), &mut e2, &mut o2);
            add_group::<NBITS, K>(rows8, at(c3), &mut e3, &mut o3);
        }
        if !tail_rows.is_empty() {
            let acc = [(&mut e0, &mut o0, c0), (&mut e1, &mut o1, c1), (&mut e2, &mut o2, c2), (&mut e3, &mut o3, c3)];
            for (even, odd, c) in acc {
                let w = group_word::<NBITS>(c, full);
                for (i, row) in tail_rows.iter().enumerate() {
                    let v = row[(w >> (i * NBITS)) as usize & (K - 1)];
                    if i % 2 == 0 {
                        *even += v;
                    } else {
                        *odd += v;
                    }
                }
            }
        }
        o.copy_from_slice(&[e0 + o0, e1 + o1, e2 + o2, e3 + o3]);
    }
    for (o, c) in out[done..n].iter_mut().zip(codes[done * cs..].chunks_exact(cs)) {
        *o = one_packed::<NBITS, K>(table, c);
    }
}

// ---- two tables summed: IVF-PQ's per-list table ----

/// `out = a + b`, entry by entry (IVF-PQ's list terms plus query terms). Element-wise
/// additions round the same at every vector width, so the wider paths equal the portable one.
pub(super) fn add_tables(a: &[f32], b: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match vq_distance::simd_level() {
        vq_distance::SimdLevel::Avx512 => {
            // SAFETY: `simd_level()` reports AVX-512 only when the CPU has AVX-512F (checked
            // once per process by vq-distance).
            unsafe { add_tables_avx512(a, b, out) };
            return;
        }
        vq_distance::SimdLevel::Avx2 => {
            // SAFETY: as above, AVX2 only when the CPU has it.
            unsafe { add_tables_avx2(a, b, out) };
            return;
        }
        _ => {}
    }
    add_tables_portable(a, b, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn add_tables_avx512(a: &[f32], b: &[f32], out: &mut [f32]) {
    add_tables_portable(a, b, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_tables_avx2(a: &[f32], b: &[f32], out: &mut [f32]) {
    add_tables_portable(a, b, out);
}

/// The key the scan kernels give `code` over the table `a + b` (summed entry by entry, as
/// [`add_tables`] does), without building that table: each sub-quantizer's entry is summed
/// where it is used, and the entries are accumulated in the reference order ([`one8`],
/// [`one_packed`]: even sub-quantizers into one sum, odd into another, then the two), so the
/// key is the same to the bit. For a few codes, `m` look-ups each cost less than the table's `m · 2^nbits`
/// sums. Lengths are the caller's (`m` ids in `code`, `m · 2^nbits` entries in each table).
pub(super) fn one_sum(a: &[f32], b: &[f32], m: usize, nbits: u32, code: &[u8]) -> f32 {
    let ksub = 1usize << nbits;
    let (mut s0, mut s1) = (0f32, 0f32);
    for j in 0..m {
        let id = super::unpack_index(code, j, nbits) as usize;
        let v = a[j * ksub + id] + b[j * ksub + id];
        if j % 2 == 0 {
            s0 += v;
        } else {
            s1 += v;
        }
    }
    s0 + s1
}

/// Inlined into each target-feature wrapper so the compiler vectorizes it for that level.
#[inline(always)]
fn add_tables_portable(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

// ---- the table ----

/// Fills `table` (`m × ksub`) with the keys of the sub-vectors of `query` (prepared: finite,
/// unit length for cosine) against every centroid: squared L2, or negated dot products.
///
/// `centroids_t` is transposed per codebook (`m × dsub × ksub`), so each query component
/// updates a whole row of keys with contiguous, vectorizable arithmetic. The difference form
/// `Σ (q − c)²` is used rather than `‖q‖² − 2q·c + ‖c‖²`: it costs one more operation per term
/// but cannot cancel, and the table is a small part of a scan.
pub(super) fn build_table(
    metric: Metric,
    query: &[f32],
    centroids_t: &[f32],
    m: usize,
    dsub: usize,
    ksub: usize,
    table: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if matches!(vq_distance::simd_level(), vq_distance::SimdLevel::Avx2 | vq_distance::SimdLevel::Avx512) {
        // SAFETY: `simd_level()` reports AVX2 only when the CPU has AVX2 and FMA (checked
        // once per process by vq-distance).
        unsafe { build_table_avx2(metric, query, centroids_t, m, dsub, ksub, table) };
        return;
    }
    build_table_portable(metric, query, centroids_t, m, dsub, ksub, table);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn build_table_avx2(
    metric: Metric,
    query: &[f32],
    centroids_t: &[f32],
    m: usize,
    dsub: usize,
    ksub: usize,
    table: &mut [f32],
) {
    build_table_portable(metric, query, centroids_t, m, dsub, ksub, table);
}

/// The table build; inlined into each target-feature wrapper so the compiler vectorizes it
/// for that level.
#[inline(always)]
pub(super) fn build_table_portable(
    metric: Metric,
    query: &[f32],
    centroids_t: &[f32],
    m: usize,
    dsub: usize,
    ksub: usize,
    table: &mut [f32],
) {
    let rows = table.chunks_exact_mut(ksub).zip(query.chunks_exact(dsub)).zip(centroids_t.chunks_exact(dsub * ksub));
    for ((row, q), book) in rows.take(m) {
        row.fill(0.0);
        let cols = q.iter().zip(book.chunks_exact(ksub));
        if metric == Metric::L2 {
            for (&qd, col) in cols {
                row.iter_mut().zip(col).for_each(|(r, &c)| {
                    let t = qd - c;
                    *r += t * t;
                });
            }
        } else {
            for (&qd, col) in cols {
                row.iter_mut().zip(col).for_each(|(r, &c)| *r -= qd * c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values spread over several binades with many distinct bits, so a different summation
    /// order would show in the last bits.
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 22) as f32 - 2.0) * (1 + (x & 7)) as f32
            })
            .collect()
    }

    proptest! {
        /// The block scan equals the single-code scan bit for bit, for every `(m, nbits)`
        /// kernel, block lengths around the four-code step included.
        #[test]
        fn block_scan_equals_single_codes(
            m in prop::sample::select(vec![1usize, 2, 3, 7, 8, 9, 16, 17, 32, 64]),
            nbits in 4u32..=8,
            n in 0usize..11,
            seed in any::<u64>(),
        ) {
            let k = Kernels::new(m, nbits);
            let ksub = 1usize << nbits;
            let table = values(seed, m * ksub);
            let cs = (m * nbits as usize).div_ceil(8);
            let codes: Vec<u8> = values(seed.rotate_left(17), n * cs).iter().map(|v| v.to_bits() as u8).collect();
            let (mut block, mut single) = (vec![0f32; n], vec![0f32; n]);
            (k.many)(&table, &codes, cs, &mut block);
            for (o, c) in single.iter_mut().zip(codes.chunks_exact(cs)) {
                *o = (k.one)(&table, c);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&block), bits(&single));
        }

        /// The dispatched table addition equals the portable loop bit for bit.
        #[test]
        fn add_tables_equals_portable(n in 0usize..600, seed in any::<u64>()) {
            let (a, b) = (values(seed, n), values(!seed, n));
            let (mut fast, mut slow) = (vec![0f32; n], vec![0f32; n]);
            add_tables(&a, &b, &mut fast);
            add_tables_portable(&a, &b, &mut slow);
            prop_assert_eq!(
                fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                slow.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }

        /// The dispatched table build (AVX2 where the CPU has it) equals its portable twin bit
        /// for bit: the wrapper only widens the vectors, it fuses no multiply-add.
        #[test]
        fn table_build_equals_portable(
            m in 1usize..9,
            dsub in 1usize..6,
            nbits in 4u32..=8,
            metric in prop::sample::select(vec![Metric::L2, Metric::InnerProduct, Metric::Cosine]),
            seed in any::<u64>(),
        ) {
            let ksub = 1usize << nbits;
            let mut x = seed | 1;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 22) as f32 - 2.0
            };
            let query: Vec<f32> = (0..m * dsub).map(|_| next()).collect();
            let cents: Vec<f32> = (0..m * dsub * ksub).map(|_| next()).collect();
            let (mut fast, mut slow) = (vec![0f32; m * ksub], vec![0f32; m * ksub]);
            build_table(metric, &query, &cents, m, dsub, ksub, &mut fast);
            build_table_portable(metric, &query, &cents, m, dsub, ksub, &mut slow);
            prop_assert_eq!(
                fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                slow.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
