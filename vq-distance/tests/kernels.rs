//! Every SIMD level's kernels against the scalar oracle in `vq_distance::reference`, for
//! random dimensions 1..2048 (all tails) and unaligned slices.
//!
//! Levels this CPU cannot run are skipped with a printed reason.

use proptest::prelude::*;
use vq_distance::{Element, Kernels, SimdLevel, bf16, f16, reference};

const ALL_LEVELS: [SimdLevel; 4] = [SimdLevel::Portable, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512];

fn levels() -> Vec<Kernels> {
    ALL_LEVELS
        .iter()
        .filter_map(|&level| {
            let k = Kernels::for_level(level);
            if k.is_none() {
                eprintln!("skipping {level}: this CPU cannot run it");
            }
            k
        })
        .collect()
}

/// Floats accumulate in f32 in several lanes; the error of such a sum is bounded by a small
/// multiple of `ε · √n · Σ|aᵢbᵢ|` in practice. A kernel that drops or repeats one element is off
/// by about `Σ|aᵢbᵢ| / n`, far above this bound for the dimensions tested.
fn assert_close(what: &str, level: SimdLevel, got: f32, want: f64, magnitude: f64) {
    let tol = 4e-6 * magnitude + 1e-6;
    assert!((f64::from(got) - want).abs() <= tol, "{what} at {level}: got {got}, want {want} (tolerance {tol})");
}

fn check_floats<T: Element>(a: &[T], b: &[T]) {
    for k in levels() {
        let level = k.level();
        let l2 = k.l2_sq(a, b).unwrap();
        let diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| x.to_f32() - y.to_f32()).collect();
        assert_close("l2_sq", level, l2, reference::l2_sq(a, b), reference::dot_magnitude(&diff, &diff));
        assert_close("dot", level, k.dot(a, b).unwrap(), reference::dot(a, b), reference::dot_magnitude(a, b));
        let cos = k.cosine(a, b).unwrap();
        assert!(
            (f64::from(cos) - reference::cosine(a, b)).abs() <= 1e-4,
            "cosine at {level}: {cos} vs {}",
            reference::cosine(a, b)
        );
    }
}

/// Values in [-10, 10) in steps of 0.01 from a xorshift generator seeded by `seed` (not 0).
fn floats_from(mut seed: u32) -> impl FnMut() -> f32 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 2000) as f32 / 100.0 - 10.0
    }
}

fn floats(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-10.0f32..10.0, len)
}

/// A dimension, two vectors of it with up to 3 extra leading elements (so the slices
/// that are compared start unaligned), and the offsets.
fn pair<T: std::fmt::Debug + Clone>(
    elem: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = (Vec<T>, Vec<T>, usize, usize)> {
    (1usize..2048, 0usize..4, 0usize..4).prop_flat_map(move |(dim, oa, ob)| {
        (
            prop::collection::vec(elem.clone(), dim + oa),
            prop::collection::vec(elem.clone(), dim + ob),
            Just(oa),
            Just(ob),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn f32_kernels_match_the_oracle((a, b, oa, ob) in pair(-10.0f32..10.0)) {
        check_floats(&a[oa..], &b[ob..]);
    }

    #[test]
    fn f16_kernels_match_the_oracle((a, b, oa, ob) in pair((-10.0f32..10.0).prop_map(f16::from_f32))) {
        check_floats(&a[oa..], &b[ob..]);
    }

    #[test]
    fn bf16_kernels_match_the_oracle((a, b, oa, ob) in pair((-10.0f32..10.0).prop_map(bf16::from_f32))) {
        check_floats(&a[oa..], &b[ob..]);
    }

    #[test]
    fn u8_kernels_are_exact((a, b, oa, ob) in pair(any::<u8>())) {
        let (a, b) = (&a[oa..], &b[ob..]);
        for k in levels() {
            prop_assert_eq!(k.l2_sq_u8_exact(a, b).unwrap() as f64, reference::l2_sq(a, b), "l2 at {}", k.level());
            prop_assert_eq!(k.dot_u8_exact(a, b).unwrap() as f64, reference::dot(a, b), "dot at {}", k.level());
        }
    }

    #[test]
    fn i8_kernels_are_exact((a, b, oa, ob) in pair(any::<i8>())) {
        let (a, b) = (&a[oa..], &b[ob..]);
        for k in levels() {
            prop_assert_eq!(k.l2_sq_i8_exact(a, b).unwrap() as f64, reference::l2_sq(a, b), "l2 at {}", k.level());
            prop_assert_eq!(k.dot_i8_exact(a, b).unwrap() as f64, reference::dot(a, b), "dot at {}", k.level());
        }
    }

    #[test]
    fn one_to_many_matches_per_pair(dim in 1usize..200, n in 0usize..20, seed in floats(4000)) {
        let query = &seed[..dim];
        let base = &seed[dim..dim + dim * n];
        for k in levels() {
            for metric in [vq_distance::Metric::L2, vq_distance::Metric::InnerProduct, vq_distance::Metric::Cosine] {
                let mut out = vec![0.0; n];
                k.score_one_to_many(metric, query, base, &mut out).unwrap();
                for (i, y) in base.chunks_exact(dim).enumerate() {
                    prop_assert_eq!(out[i], k.score(metric, query, y).unwrap());
                }
            }
        }
    }
}

/// The four-row kernels against the one-pair kernels of their level, to the bit: every
/// dimension to 300 (every tail and one to four of the widest loops) and a few wide ones,
/// rows at different offsets (unaligned, each starting elsewhere in a line), squared L2 and dot.
#[test]
fn four_row_kernels_equal_the_one_pair_kernels_to_the_bit() {
    let mut next = floats_from(0x2545_f491_u32);
    for k in levels() {
        let level = k.level();
        let (Some(l2_4), Some(dot_4)) = (k.f32_l2_sq_rows4_fn(), k.f32_dot_rows4_fn()) else {
            // Only the x86 levels have them; elsewhere callers make four one-pair calls.
            assert!(!matches!(level, SimdLevel::Avx2 | SimdLevel::Avx512), "{level} lost its four-row kernels");
            continue;
        };
        let (l2, dot) = (k.f32_l2_sq_fn(), k.f32_dot_fn());
        // Where callers get them: L2 and inner product, not cosine; AVX2 from 512 dimensions.
        use vq_distance::Metric;
        assert!(k.f32_rows4_fn(Metric::Cosine, 2048).is_none(), "{level}");
        let from = if level == SimdLevel::Avx2 { 512 } else { 1 };
        for metric in [Metric::L2, Metric::InnerProduct] {
            assert!(k.f32_rows4_fn(metric, from).is_some() && k.f32_rows4_fn(metric, 2048).is_some(), "{level}");
            assert_eq!(k.f32_rows4_fn(metric, from - 1).is_some(), from == 1, "{level} below {from}");
        }
        for dim in (1..=300).chain([767, 768, 1536, 1541]) {
            let q: Vec<f32> = (0..dim + 1).map(|_| next()).collect();
            let base: Vec<f32> = (0..4 * dim + 10).map(|_| next()).collect();
            let q = &q[1..];
            let rows: [&[f32]; 4] = std::array::from_fn(|r| &base[r * dim + r..(r + 1) * dim + r]);
            let (got_l2, got_dot) = (l2_4(q, rows), dot_4(q, rows));
            for r in 0..4 {
                assert_eq!(got_l2[r].to_bits(), l2(q, rows[r]).to_bits(), "l2 row {r} at d = {dim}, {level}");
                assert_eq!(got_dot[r].to_bits(), dot(q, rows[r]).to_bits(), "dot row {r} at d = {dim}, {level}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `score_rows` (four rows a pass where that pays) against `score` row by row, to the bit,
    /// for every metric and any number of rows (the four-row passes and the rest).
    #[test]
    fn scoring_rows_equals_scoring_each(dim in prop::sample::select(vec![1usize, 7, 64, 100, 511, 512, 600, 1536]), n in 0usize..11, seed in 0u32..1000) {
        let mut next = floats_from(seed.wrapping_mul(2_654_435_761) | 1);
        let query: Vec<f32> = (0..dim).map(|_| next()).collect();
        let base: Vec<f32> = (0..dim * n).map(|_| next()).collect();
        let rows: Vec<&[f32]> = base.chunks_exact(dim).rev().collect();
        for k in levels() {
            for metric in [vq_distance::Metric::L2, vq_distance::Metric::InnerProduct, vq_distance::Metric::Cosine] {
                let got = k.score_rows(metric, &query, &rows).unwrap();
                prop_assert_eq!(got.len(), rows.len());
                for (i, row) in rows.iter().enumerate() {
                    prop_assert_eq!(got[i].to_bits(), k.score(metric, &query, row).unwrap().to_bits(), "row {} {:?} {}", i, metric, k.level());
                }
            }
        }
    }
}

#[test]
fn scoring_rows_of_another_length_is_an_error() {
    let k = Kernels::active();
    let (q, short) = (vec![1.0f32; 600], vec![1.0f32; 599]);
    let rows: Vec<&[f32]> = vec![&q, &q, &short, &q, &q];
    assert!(k.score_rows(vq_distance::Metric::L2, &q, &rows).is_err());
}

/// Every dimension up to 200, not a sample: the end of each kernel (the chunks after the widest
/// loop, each into its own accumulator, and the masked or padded tail) differs with `d` modulo
/// 64, and small odd dimensions (d = 50) are where HNSW spends most of its time in it.
#[test]
fn f32_kernels_match_the_oracle_at_every_small_dimension() {
    let mut next = floats_from(0x9e37_79b9_u32);
    for dim in 1..=200 {
        // One element more than the dimension, compared from offset 1: unaligned starts.
        let a: Vec<f32> = (0..=dim).map(|_| next()).collect();
        let b: Vec<f32> = (0..=dim).map(|_| next()).collect();
        check_floats(&a[1..], &b[1..]);
        check_floats(&a[..dim], &b[..dim]);
    }
}

#[test]
fn integer_kernels_stay_exact_past_the_32_bit_chunk() {
    // 100,000 components of 255 vs 0: 6.5e9 overflows 32 bits; the chunked sum must not.
    let a = vec![255u8; 100_000];
    let b = vec![0u8; 100_000];
    let ai = vec![-128i8; 100_000];
    let bi = vec![127i8; 100_000];
    for k in levels() {
        assert_eq!(k.l2_sq_u8_exact(&a, &b).unwrap(), 255 * 255 * 100_000);
        assert_eq!(k.dot_u8_exact(&a, &a).unwrap(), 255 * 255 * 100_000);
        assert_eq!(k.l2_sq_i8_exact(&ai, &bi).unwrap(), 255 * 255 * 100_000);
        assert_eq!(k.dot_i8_exact(&ai, &bi).unwrap(), -128 * 127 * 100_000);
    }
}

#[test]
fn mismatched_lengths_are_an_error_not_a_panic() {
    let err = vq_distance::l2_sq(&[1.0f32, 2.0], &[1.0]).unwrap_err();
    assert_eq!(err, vq_distance::Error::LengthMismatch { left: 2, right: 1 });
    assert!(vq_distance::dot(&[1u8], &[]).is_err());
    assert!(Kernels::active().dot_i8_exact(&[1], &[1, 2]).is_err());
    let mut out = [0.0; 3];
    let e = vq_distance::score_one_to_many(vq_distance::Metric::L2, &[1.0f32, 2.0], &[0.0; 5], &mut out).unwrap_err();
    assert!(matches!(e, vq_distance::Error::RaggedBuffer { what: "base", len: 5, dim: 2 }));
    let e = vq_distance::score_one_to_many(vq_distance::Metric::L2, &[1.0f32, 2.0], &[0.0; 4], &mut out).unwrap_err();
    assert!(matches!(e, vq_distance::Error::OutputLength { got: 3, expected: 2, .. }));
}

#[test]
fn cosine_of_a_zero_vector_is_zero_and_scores_follow_the_convention() {
    assert_eq!(vq_distance::cosine(&[0.0f32; 5], &[1.0; 5]).unwrap(), 0.0);
    let c = vq_distance::cosine(&[3.0f32, 4.0], &[6.0, 8.0]).unwrap();
    assert!((c - 1.0).abs() < 1e-6);
    assert_eq!(vq_distance::score(vq_distance::Metric::InnerProduct, &[1.0f32, 2.0], &[3.0, 4.0]).unwrap(), 11.0);
}

#[test]
fn the_active_level_is_the_detected_one_unless_forced() {
    let active = vq_distance::simd_level();
    match std::env::var("VQ_SIMD").ok().and_then(|v| SimdLevel::from_name(&v)) {
        None => assert_eq!(active, SimdLevel::detected()),
        Some(forced) => assert!(active <= forced),
    }
    println!("active SIMD level: {active}");
}

/// Exact integer twins of the u8 / i8 kernels.
fn exact_l2<T: Copy + Into<i64>>(a: &[T], b: &[T]) -> u64 {
    a.iter().zip(b).map(|(&x, &y)| (x.into() - y.into()).pow(2) as u64).sum()
}
fn exact_dot<T: Copy + Into<i64>>(a: &[T], b: &[T]) -> i64 {
    a.iter().zip(b).map(|(&x, &y)| x.into() * y.into()).sum()
}

/// The u8 kernels on `a`, `b`, and the i8 ones on the same bytes read as i8.
fn check_ints(k: &Kernels, a: &[u8], b: &[u8]) {
    let (n, level) = (a.len(), k.level());
    assert_eq!(k.l2_sq_u8_exact(a, b).unwrap(), exact_l2(a, b), "u8 l2 at {level}, n = {n}");
    assert_eq!(k.dot_u8_exact(a, b).unwrap(), exact_dot(a, b) as u64, "u8 dot at {level}, n = {n}");
    // SAFETY: i8 and u8 have the same size and alignment, and every bit pattern is valid for both.
    let (ai, bi) = unsafe {
        (std::slice::from_raw_parts(a.as_ptr().cast::<i8>(), n), std::slice::from_raw_parts(b.as_ptr().cast::<i8>(), n))
    };
    assert_eq!(k.l2_sq_i8_exact(ai, bi).unwrap(), exact_l2(ai, bi), "i8 l2 at {level}, n = {n}");
    assert_eq!(k.dot_i8_exact(ai, bi).unwrap(), exact_dot(ai, bi), "i8 dot at {level}, n = {n}");
}

/// Every length 0..=800, not a sample: each kernel's end (the 128-, 64- and 32-byte steps after
/// the widest loop and the masked or padded tail) differs with the length modulo 128. Extreme
/// bytes (0, 127, 128, 255: the largest |a − b| and products, both signs as i8) and pseudo-random
/// ones, from aligned and unaligned starts, at every level this CPU runs.
#[test]
fn integer_kernels_are_exact_at_every_length_to_800() {
    let mut rng = 0x2545_f491_u32;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng as u8
    };
    let extremes = [0u8, 255, 128, 127, 255, 0, 1, 254];
    for k in levels() {
        for n in 0..=800usize {
            let a: Vec<u8> = (0..=n).map(|_| next()).collect();
            let b: Vec<u8> = (0..=n).map(|_| next()).collect();
            check_ints(&k, &a[1..], &b[..n]);
            let ea: Vec<u8> = (0..n).map(|i| extremes[i % 8]).collect();
            let eb: Vec<u8> = (0..n).map(|i| extremes[(i + 1) % 8]).collect();
            check_ints(&k, &ea, &eb);
            check_ints(&k, &ea, &ea);
        }
    }
}

/// Vectors that end exactly where an unreadable page begins: a kernel whose tail load spanned
/// past the end of its slice (an AVX-512 masked load relies on the CPU suppressing faults on
/// masked-off lanes) would crash here instead of returning.
#[cfg(target_os = "linux")]
#[test]
fn integer_kernels_never_read_past_the_end_of_a_page() {
    /// One readable page followed by an inaccessible one.
    struct Guarded {
        base: *mut u8,
        page: usize,
    }
    impl Guarded {
        fn new() -> Guarded {
            // SAFETY: plain libc calls; the result of each is checked before it is used.
            unsafe {
                let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
                let base = libc::mmap(
                    std::ptr::null_mut(),
                    2 * page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(base, libc::MAP_FAILED, "mmap failed");
                let guard = base.cast::<u8>().add(page).cast();
                assert_eq!(libc::mprotect(guard, page, libc::PROT_NONE), 0, "mprotect failed");
                Guarded { base: base.cast(), page }
            }
        }
        /// `data` copied so that its last byte is the last readable one.
        fn at_end(&mut self, data: &[u8]) -> &[u8] {
            assert!(data.len() <= self.page);
            // SAFETY: the first page is readable and writable, and `data` fits at its end.
            unsafe {
                let p = self.base.add(self.page - data.len());
                std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
                std::slice::from_raw_parts(p, data.len())
            }
        }
    }
    impl Drop for Guarded {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly the mapping `new` made.
            unsafe { libc::munmap(self.base.cast(), 2 * self.page) };
        }
    }

    let (mut ga, mut gb) = (Guarded::new(), Guarded::new());
    for k in levels() {
        for n in 0..=800usize {
            let a: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let b: Vec<u8> = (0..n).map(|i| (255 - i * 91 % 256) as u8).collect();
            let (pa, pb) = (ga.at_end(&a).as_ptr(), gb.at_end(&b).as_ptr());
            // SAFETY: both point at `n` initialized bytes inside the readable pages.
            let (sa, sb) = unsafe { (std::slice::from_raw_parts(pa, n), std::slice::from_raw_parts(pb, n)) };
            check_ints(&k, sa, sb);
        }
    }
}
