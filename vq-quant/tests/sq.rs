//! Scalar quantizers: reconstruction bounds, asymmetric and symmetric distances against the
//! decoded vectors, every SIMD level against the portable twin, exhaustive-search recall,
//! input errors, and save/load.

use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use vq_distance::{Error as DError, Metric, SimdLevel, knn_exact};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{CodeScorer, Error, FlatCodes, Quantizer, ScalarQuantizer, SqType};

const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

/// `n × dim` values: per-dimension offsets and scales that differ, so per-dimension ranges
/// matter, plus a few outliers.
fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let unit = Normal::new(0.0f32, 1.0).unwrap();
    let shape: Vec<(f32, f32)> =
        (0..dim).map(|_| (rng.random_range(-5.0f32..5.0), rng.random_range(0.01f32..10.0))).collect();
    (0..n * dim)
        .map(|i| {
            let (offset, scale) = shape[i % dim];
            let outlier = if rng.random_range(0..50) == 0 { 4.0 } else { 1.0 };
            offset + scale * outlier * unit.sample(&mut rng)
        })
        .collect()
}

fn trained(dim: usize, metric: Metric, sq_type: SqType, sample: &[f32]) -> ScalarQuantizer {
    let mut sq = ScalarQuantizer::new(dim, metric, sq_type).unwrap();
    sq.train(sample).unwrap();
    sq
}

fn encode(sq: &ScalarQuantizer, vectors: &[f32]) -> Vec<u8> {
    let mut codes = vec![0u8; vectors.len() / sq.dim() * sq.code_size()];
    sq.encode(vectors, &mut codes).unwrap();
    codes
}

fn decode(sq: &ScalarQuantizer, codes: &[u8]) -> Vec<f32> {
    let mut out = vec![0f32; codes.len() / sq.code_size() * sq.dim()];
    sq.decode(codes, &mut out).unwrap();
    out
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    v.iter().map(|&x| (f64::from(x) / norm) as f32).collect()
}

/// The key from `query` to the vector `x`, computed in f64, and the size of the terms it
/// sums (for a tolerance).
fn exact_key(metric: Metric, query: &[f32], x: &[f32]) -> (f64, f64) {
    let q = if metric == Metric::Cosine { normalized(query) } else { query.to_vec() };
    match metric {
        Metric::L2 => {
            let d: f64 = q.iter().zip(x).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
            let size: f64 = q.iter().zip(x).map(|(&a, &b)| f64::from(a).powi(2) + f64::from(b).powi(2)).sum();
            (d, size)
        }
        _ => {
            let ip: f64 = q.iter().zip(x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let size: f64 = q.iter().zip(x).map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs()).sum();
            (-ip, size)
        }
    }
}

/// What folding the range offsets in another order than `decode` does may add to a key
/// between `a` and `b`, `b` decoded from a code: each decoded component then differs by a few
/// ulps of its range's largest end, which can dwarf a small component (seen: dim 1 and 2, SQ6).
fn offset_error(sq: &ScalarQuantizer, a: &[f32], b: &[f32]) -> f64 {
    let (vmin, step) = sq.ranges();
    (0..a.len())
        .map(|c| {
            let (lo, st) = match (vmin.get(c).or(vmin.first()), step.get(c).or(step.first())) {
                (Some(&lo), Some(&st)) => (f64::from(lo), f64::from(st)),
                _ => return 0.0,
            };
            let end = lo.abs().max((lo + 256.0 * st).abs());
            8.0 * f64::from(f32::EPSILON) * end * (f64::from(a[c].abs()) + f64::from(b[c].abs()) + end)
        })
        .sum()
}

/// [`scorer_matches_the_decoded_vectors`]' check for one case.
fn scorer_matches_the_decoded_vectors_for(dim: usize, n: usize, seed: u64) {
    let sample = data(32, dim, seed);
    let vectors = data(n, dim, seed ^ 7);
    let query = data(1, dim, seed ^ 9);
    for sq_type in SqType::ALL {
        for metric in METRICS {
            let sq = trained(dim, metric, sq_type, &sample);
            let codes = encode(&sq, &vectors);
            let decoded = decode(&sq, &codes);
            let scorer = sq.scorer(&query).unwrap();
            let mut block = vec![0f32; n];
            scorer.distances(&codes, &mut block);
            let q = if metric == Metric::Cosine { normalized(&query) } else { query.clone() };
            for (i, code) in codes.chunks(sq.code_size()).enumerate() {
                let x = &decoded[i * dim..(i + 1) * dim];
                let (want, size) = exact_key(metric, &query, x);
                let want = (want, size + offset_error(&sq, &q, x) / 2e-5);
                let what = format!("{sq_type} {metric} code {i}");
                assert_close(scorer.distance(code), want, &what);
                assert_close(block[i], want, &what);
            }
        }
    }
}

/// Cases proptest found: a key that is a small difference of terms the range offsets dominate.
#[test]
fn scorer_matches_the_decoded_vectors_where_offsets_dominate() {
    scorer_matches_the_decoded_vectors_for(2, 1, 17_618_640_959_465_305_445);
}

fn assert_close(got: f32, (want, size): (f64, f64), what: &str) {
    let tol = 2e-5 * size + 1e-5;
    assert!((f64::from(got) - want).abs() <= tol, "{what}: got {got}, want {want} (tolerance {tol})");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every component of a decoded vector is within half a cell of the value clipped to the
    /// trained range, for vectors inside and outside the training sample.
    #[test]
    fn integer_types_reconstruct_within_half_a_step(
        dim in 1usize..40, n in 1usize..24, seed in any::<u64>(), clip in prop::option::of(0.0f32..0.2),
    ) {
        let sample = data(n, dim, seed);
        let other = data(8, dim, seed ^ 1);
        for sq_type in [SqType::SQ8, SqType::SQ6, SqType::SQ4, SqType::SQ4U] {
            let mut sq = ScalarQuantizer::new(dim, Metric::L2, sq_type).unwrap().with_clip(clip).unwrap();
            sq.train(&sample).unwrap();
            let levels = (1u32 << sq_type.bits().unwrap()) as f32;
            let (vmin, step) = sq.ranges();
            prop_assert_eq!(vmin.len(), if sq_type == SqType::SQ4U { 1 } else { dim });
            for vectors in [&sample, &other] {
                let decoded = decode(&sq, &encode(&sq, vectors));
                for (i, (&x, &y)) in vectors.iter().zip(&decoded).enumerate() {
                    let r = if sq_type == SqType::SQ4U { 0 } else { i % dim };
                    let (lo, step) = (vmin[r], step[r]);
                    let clipped = x.clamp(lo, lo + levels * step);
                    let tol = 0.5 * step + 1e-5 * (lo.abs() + levels * step) + 1e-6;
                    prop_assert!((clipped - y).abs() <= tol,
                        "{sq_type} component {i}: {x} (clipped {clipped}) decoded {y}, step {step}");
                }
            }
        }
    }

    /// FP16 and BF16 round to nearest: relative error 2⁻¹¹ and 2⁻⁸.
    #[test]
    fn float_types_reconstruct_within_their_precision(dim in 1usize..40, n in 1usize..16, seed in any::<u64>()) {
        let vectors = data(n, dim, seed);
        for (sq_type, rel, abs) in [(SqType::FP16, 2f32.powi(-11), 2f32.powi(-25)), (SqType::BF16, 2f32.powi(-8), 0.0)] {
            let sq = ScalarQuantizer::new(dim, Metric::L2, sq_type).unwrap();
            prop_assert!(sq.is_trained());
            let decoded = decode(&sq, &encode(&sq, &vectors));
            for (&x, &y) in vectors.iter().zip(&decoded) {
                prop_assert!((x - y).abs() <= rel * x.abs() + abs, "{sq_type}: {x} decoded {y}");
            }
        }
    }

    /// The scorer's key equals the key to the decoded vector, for every type and metric,
    /// through `distance` and through blocks of every length around the kernels' 4-code step.
    #[test]
    fn scorer_matches_the_decoded_vectors(dim in 1usize..48, n in 1usize..11, seed in any::<u64>()) {
        scorer_matches_the_decoded_vectors_for(dim, n, seed);
    }

    /// `code_distance` equals the key between the two decoded vectors.
    #[test]
    fn code_distance_matches_the_decoded_vectors(dim in 1usize..48, seed in any::<u64>()) {
        let sample = data(32, dim, seed);
        let vectors = data(6, dim, seed ^ 3);
        for sq_type in SqType::ALL {
            for metric in METRICS {
                let sq = trained(dim, metric, sq_type, &sample);
                let codes = encode(&sq, &vectors);
                let decoded = decode(&sq, &codes);
                let size = sq.code_size();
                for i in 0..6 {
                    for j in 0..6 {
                        let (a, b) = (&decoded[i * dim..(i + 1) * dim], &decoded[j * dim..(j + 1) * dim]);
                        let want = match metric {
                            Metric::L2 => exact_key(Metric::L2, a, b),
                            _ => exact_key(Metric::InnerProduct, a, b),
                        };
                        let got = sq.code_distance(&codes[i * size..(i + 1) * size], &codes[j * size..(j + 1) * size]);
                        let (want, size) = want;
                        let size = size + offset_error(&sq, a, b) / 2e-5;
                        assert_close(got, (want, size), &format!("{sq_type} {metric} codes {i},{j}"));
                    }
                }
            }
        }
    }
}

/// Codes whose last byte is the last readable one before an unreadable page: a decoder whose
/// load reached past the end of its code (the SQ6 AVX-512 decoder loads 12 bytes through a
/// mask, which relies on the CPU suppressing faults on masked-off bytes) would crash here
/// instead of returning the portable kernel's keys.
#[cfg(target_os = "linux")]
#[test]
fn no_level_reads_past_the_last_code() {
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
                let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
                let base = libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0);
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

    let mut guarded = Guarded::new();
    for (seed, dim) in [1usize, 3, 8, 15, 16, 17, 31, 32, 33, 48, 100, 128].into_iter().enumerate() {
        let sample = data(64, dim, 300 + seed as u64);
        let vectors = data(5, dim, 400 + seed as u64);
        let query = data(1, dim, 500 + seed as u64);
        for sq_type in SqType::ALL {
            for metric in METRICS {
                let sq = trained(dim, metric, sq_type, &sample);
                let codes = encode(&sq, &vectors);
                let mut want = vec![0f32; 5];
                sq.scorer_for_level(&query, SimdLevel::Portable).unwrap().unwrap().distances(&codes, &mut want);
                let at_end = guarded.at_end(&codes);
                for level in SimdLevel::available() {
                    let mut got = vec![f32::NAN; 5];
                    sq.scorer_for_level(&query, level).unwrap().unwrap().distances(at_end, &mut got);
                    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                            "{level} {sq_type} {metric} dim {dim} code {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

/// Every SIMD level this CPU has gives the portable kernel's keys, for every type and metric,
/// at dimensions around the 8- and 16-lane boundaries and block lengths around the 4-code step.
#[test]
fn every_simd_level_matches_the_portable_twin() {
    let available = SimdLevel::available();
    for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
        if !available.contains(&level) {
            eprintln!("skipping {level}: this CPU does not have it");
        }
    }
    let dims = [1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23, 24, 31, 32, 33, 47, 48, 63, 64, 65, 100, 128, 131];
    for (seed, &dim) in dims.iter().enumerate() {
        let sample = data(64, dim, seed as u64);
        let vectors = data(13, dim, 100 + seed as u64);
        let query = data(1, dim, 200 + seed as u64);
        for sq_type in SqType::ALL {
            for metric in METRICS {
                let sq = trained(dim, metric, sq_type, &sample);
                let mut codes = encode(&sq, &vectors);
                // Garbage in the unused bits of the last byte must not change any key.
                let size = sq.code_size();
                let used_bits = dim
                    * match sq_type {
                        SqType::SQ6 => 6,
                        SqType::SQ4 | SqType::SQ4U => 4,
                        _ => 8,
                    };
                if used_bits % 8 != 0 {
                    for code in codes.chunks_mut(size) {
                        code[size - 1] |= 0xffu8 << (used_bits % 8);
                    }
                }
                let portable = sq.scorer_for_level(&query, SimdLevel::Portable).unwrap().unwrap();
                // Tolerance from the size of the summed terms (sums of different order differ
                // by a few ulps of that, not of the possibly cancelled result).
                let decoded = decode(&sq, &codes);
                let sizes: Vec<f64> = decoded.chunks(dim).map(|x| exact_key(metric, &query, x).1).collect();
                for n in 0..=13 {
                    let mut want = vec![0f32; n];
                    portable.distances(&codes[..n * size], &mut want);
                    for &level in &available {
                        let scorer = sq.scorer_for_level(&query, level).unwrap().unwrap();
                        let mut got = vec![f32::NAN; n];
                        scorer.distances(&codes[..n * size], &mut got);
                        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                            let tol = (1e-5 * sizes[i] + 1e-6) as f32;
                            assert!(
                                (g - w).abs() <= tol,
                                "{level} {sq_type} {metric} dim {dim} n {n} code {i}: {g} vs {w}"
                            );
                        }
                    }
                }
                // The garbage bits are ignored: the portable keys equal the decoded distance.
                let mut keys = vec![0f32; 13];
                portable.distances(&codes, &mut keys);
                for (i, &k) in keys.iter().enumerate() {
                    assert_close(k, exact_key(metric, &query, &decoded[i * dim..(i + 1) * dim]), "garbage bits");
                }
            }
        }
    }
}

/// `n × dim` points around 50 Gaussian centres.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let unit = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<f32> = (0..50 * dim).map(|_| 4.0 * unit.sample(&mut rng)).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.random_range(0..50usize);
        out.extend((0..dim).map(|j| centres[c * dim + j] + unit.sample(&mut rng)));
    }
    out
}

fn recall(found: &vq_distance::Neighbors, exact: &vq_distance::Neighbors) -> f64 {
    let mut hits = 0;
    let mut total = 0;
    for ((ids, _), (truth, _)) in found.iter().zip(exact.iter()) {
        hits += ids.iter().filter(|id| truth.contains(id)).count();
        total += truth.len();
    }
    hits as f64 / total as f64
}

#[test]
fn sq8_exhaustive_search_reaches_recall_095() {
    let (dim, nb, nq, k) = (48, 20_000, 200, 10);
    let base = clustered(nb, dim, 1);
    let queries = clustered(nq, dim, 2);
    for metric in METRICS {
        let mut index = FlatCodes::new(ScalarQuantizer::new(dim, metric, SqType::SQ8).unwrap());
        index.train(&base[..5_000 * dim]).unwrap();
        index.add(&base).unwrap();
        let found = index.search(&queries, k).unwrap();
        let exact = knn_exact(&base, &queries, dim, k, metric).unwrap();
        let r = recall(&found, &exact);
        eprintln!("SQ8 {metric}: recall@10 {r:.4}");
        assert!(r >= 0.95, "SQ8 {metric}: recall@10 {r}");
        // Scores come back in the metric's convention: close to the exact ones.
        let (_, s) = found.get(0).unwrap();
        let (_, e) = exact.get(0).unwrap();
        assert!((s[0] - e[0]).abs() <= 0.05 * e[0].abs() + 0.05, "{metric}: {} vs {}", s[0], e[0]);
    }
}

/// Issue 18: finite values whose squares overflow f32 (±1e19, ±1e38) used to give NaN keys and
/// empty results; they are refused at the shared check, naming the argument and the row.
#[test]
fn values_too_large_for_f32_distances_are_refused() {
    let dim = 4;
    for big in [1e19f32, 1e38] {
        let data: Vec<f32> = (0..8 * dim).map(|i| if i % 2 == 0 { big } else { -big }).collect();
        for sq_type in [SqType::SQ8, SqType::SQ4] {
            for metric in [Metric::L2, Metric::InnerProduct] {
                let mut index = FlatCodes::new(ScalarQuantizer::new(dim, metric, sq_type).unwrap());
                assert!(matches!(
                    index.train(&data),
                    Err(Error::Input(DError::NormOverflow { what: "sample", row: 0, .. }))
                ));
                index.train(&data.iter().map(|v| v.signum()).collect::<Vec<_>>()).unwrap();
                assert!(matches!(
                    index.add(&data),
                    Err(Error::Input(DError::NormOverflow { what: "vectors", row: 0, .. }))
                ));
                assert!(matches!(
                    index.search(&data[..dim], 1),
                    Err(Error::Input(DError::NormOverflow { what: "queries", row: 0, .. }))
                ));
            }
            // Cosine normalizes first, so the same rows are fine.
            let mut cos = FlatCodes::new(ScalarQuantizer::new(dim, Metric::Cosine, sq_type).unwrap());
            cos.train(&data).unwrap();
            cos.add(&data).unwrap();
            let hits = cos.search(&data[..dim], 3).unwrap();
            assert_eq!(hits.get(0).unwrap().0.len(), 3);
            assert!(hits.scores().iter().all(|s| s.is_finite()));
        }
    }
}

#[test]
fn wrong_input_is_a_typed_error() {
    let dim = 4;
    assert!(matches!(ScalarQuantizer::new(0, Metric::L2, SqType::SQ8), Err(Error::Parameter { name: "dim", .. })));
    let sq = ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap();
    assert!(matches!(sq.clone().with_clip(Some(0.5)), Err(Error::Parameter { name: "clip", .. })));
    assert!(matches!(sq.clone().with_clip(Some(f32::NAN)), Err(Error::Parameter { name: "clip", .. })));
    assert!(!sq.is_trained());
    let mut codes = vec![0u8; 8];
    assert!(matches!(sq.encode(&[1.0; 8], &mut codes), Err(Error::NotTrained { .. })));
    assert!(matches!(sq.decode(&codes, &mut [0.0; 8]), Err(Error::NotTrained { .. })));
    assert!(matches!(sq.scorer(&[1.0; 4]), Err(Error::NotTrained { .. })));
    assert_eq!(sq.code_distance(&codes[..4], &codes[4..]), f32::INFINITY);

    let mut sq = sq;
    assert!(matches!(sq.train(&[]), Err(Error::TooFewTrainingPoints { needed: 1, got: 0, .. })));
    assert!(matches!(sq.train(&[1.0; 6]), Err(Error::Input(DError::RaggedBuffer { len: 6, dim: 4, .. }))));
    assert!(matches!(
        sq.train(&[1.0, 2.0, 3.0, 4.0, 5.0, f32::NAN, 7.0, 8.0]),
        Err(Error::Input(DError::NonFinite { row: 1, component: 1, .. }))
    ));
    assert!(!sq.is_trained());
    sq.train(&data(10, dim, 3)).unwrap();
    assert!(matches!(sq.encode(&[1.0; 7], &mut codes), Err(Error::Input(DError::RaggedBuffer { len: 7, .. }))));
    assert!(matches!(sq.encode(&[1.0; 8], &mut codes[..5]), Err(Error::CodeLength { len: 5, expected: 8, .. })));
    assert!(matches!(
        sq.encode(&[1.0, f32::INFINITY, 0.0, 0.0], &mut codes[..4]),
        Err(Error::Input(DError::NonFinite { .. }))
    ));
    assert!(matches!(sq.decode(&codes[..5], &mut [0.0; 8]), Err(Error::CodeLength { .. })));
    assert!(matches!(
        sq.decode(&codes, &mut [0.0; 7]),
        Err(Error::Input(DError::OutputLength { what: "out", got: 7, expected: 8 }))
    ));
    assert!(matches!(
        sq.scorer(&[1.0; 3]),
        Err(Error::Input(DError::Dimension { what: "query", got: 3, expected: 4 }))
    ));
    assert!(matches!(sq.scorer(&[1.0, f32::NAN, 0.0, 0.0]), Err(Error::Input(DError::NonFinite { .. }))));
    // A short code scores +inf instead of reading out of bounds.
    let scorer = sq.scorer(&[1.0; 4]).unwrap();
    assert_eq!(scorer.distance(&codes[..3]), f32::INFINITY);
    let mut out = [0.0; 3];
    scorer.distances(&codes[..6], &mut out);
    assert_eq!(out[1..], [f32::INFINITY, f32::INFINITY]);

    let cos = ScalarQuantizer::new(dim, Metric::Cosine, SqType::FP16).unwrap();
    assert!(matches!(cos.scorer(&[0.0; 4]), Err(Error::Input(DError::ZeroNorm { .. }))));
}

#[test]
fn names_parse_and_print_as_factory_strings() {
    for (name, sq_type, size) in [
        ("SQ8", SqType::SQ8, 10),
        ("SQ6", SqType::SQ6, 8),
        ("SQ4", SqType::SQ4, 5),
        ("SQ4U", SqType::SQ4U, 5),
        ("SQfp16", SqType::FP16, 20),
        ("SQbf16", SqType::BF16, 20),
    ] {
        assert_eq!(name.parse::<SqType>().unwrap(), sq_type);
        assert_eq!(sq_type.to_string(), name);
        let sq = ScalarQuantizer::new(10, Metric::L2, sq_type).unwrap();
        assert_eq!(sq.name(), name);
        assert_eq!(sq.code_size(), size, "{name}");
    }
    assert!(matches!("SQ7".parse::<SqType>(), Err(Error::Parameter { name: "sq_type", .. })));
}

fn save(sq: &ScalarQuantizer, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut w = ContainerWriter::create(&path).unwrap();
    sq.write_sections(&mut w, "q").unwrap();
    w.finish().unwrap();
    path
}

#[test]
fn save_and_load_give_identical_codes_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 19;
    let sample = data(100, dim, 5);
    let query = data(1, dim, 6);
    for sq_type in SqType::ALL {
        for metric in METRICS {
            let sq = ScalarQuantizer::new(dim, metric, sq_type).unwrap().with_clip(Some(0.01)).unwrap();
            // Untrained quantizers round-trip too.
            let path = save(&sq, dir.path(), "untrained.vq");
            let back = ScalarQuantizer::read_sections(&ContainerReader::open(&path).unwrap(), "q").unwrap();
            assert_eq!(back, sq);

            let mut sq = sq;
            sq.train(&sample).unwrap();
            let path = save(&sq, dir.path(), "trained.vq");
            let back = ScalarQuantizer::read_sections(&ContainerReader::open(&path).unwrap(), "q").unwrap();
            assert_eq!(back, sq);
            let codes = encode(&sq, &sample);
            assert_eq!(encode(&back, &sample), codes);
            let (mut a, mut b) = (vec![0f32; 100], vec![0f32; 100]);
            sq.scorer(&query).unwrap().distances(&codes, &mut a);
            back.scorer(&query).unwrap().distances(&codes, &mut b);
            assert_eq!(a, b);
        }
    }
}

#[test]
fn corrupt_sections_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let sq = trained(dim, Metric::L2, SqType::SQ8, &data(50, dim, 8));
    let (vmin, step) = (sq.ranges().0.to_vec(), sq.ranges().1.to_vec());
    #[derive(serde::Serialize, Clone)]
    struct Params {
        sq_type: &'static str,
        dim: usize,
        metric: &'static str,
        clip: Option<f32>,
        trained: bool,
    }
    let params = |sq_type, dim, metric, clip, trained| Params { sq_type, dim, metric, clip, trained };
    let mut neg = step.clone();
    neg[3] = -1.0;
    let mut nan = vmin.clone();
    nan[0] = f32::NAN;
    let good = params("SQ8", dim, "l2", None, true);
    let cases: Vec<(&str, Params, Vec<f32>, Vec<f32>)> = vec![
        ("unknown type", params("SQ7", dim, "l2", None, true), vmin.clone(), step.clone()),
        ("unknown metric", params("SQ8", dim, "hamming", None, true), vmin.clone(), step.clone()),
        ("zero dim", params("SQ8", 0, "l2", None, true), vec![], vec![]),
        ("huge dim", params("SQ8", usize::MAX, "l2", None, true), vmin.clone(), step.clone()),
        ("bad clip", params("SQ8", dim, "l2", Some(0.7), true), vmin.clone(), step.clone()),
        ("short ranges", good.clone(), vmin[..7].to_vec(), step[..7].to_vec()),
        ("ranges but untrained", params("SQ8", dim, "l2", None, false), vmin.clone(), step.clone()),
        ("untrained float type", params("FP16", dim, "l2", None, false), vec![], vec![]),
        ("ranges on a float type", params("BF16", dim, "l2", None, true), vmin.clone(), step.clone()),
        ("negative step", good.clone(), vmin.clone(), neg),
        ("NaN vmin", good.clone(), nan, step.clone()),
        ("infinite range", good.clone(), vmin.clone(), vec![f32::MAX; dim]),
    ];
    for (what, json, vmin, step) in cases {
        let path = dir.path().join("bad.vq");
        let mut w = ContainerWriter::create(&path).unwrap();
        w.add_json("q.sq", 1, &json).unwrap();
        w.add_array("q.vmin", 1, &vmin).unwrap();
        w.add_array("q.step", 1, &step).unwrap();
        w.finish().unwrap();
        let reader = ContainerReader::open(&path).unwrap();
        assert!(ScalarQuantizer::read_sections(&reader, "q").is_err(), "{what} was accepted");
    }
    // The good parameters are accepted (so the cases above fail for their own reason).
    let path = dir.path().join("good.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    w.add_json("q.sq", 1, &good).unwrap();
    w.add_array("q.vmin", 1, &vmin).unwrap();
    w.add_array("q.step", 1, &step).unwrap();
    w.finish().unwrap();
    assert_eq!(ScalarQuantizer::read_sections(&ContainerReader::open(&path).unwrap(), "q").unwrap(), sq);
    // Wrong section kinds, versions and missing sections.
    let path = dir.path().join("kinds.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    w.add_bytes("q.sq", 1, b"{").unwrap();
    w.add_json("q.vmin", 1, &vmin).unwrap();
    w.add_array("q.step", 2, &step).unwrap();
    w.add_json("r.sq", 1, &good).unwrap();
    w.add_json("r.vmin", 1, &vmin).unwrap();
    w.add_array("r.step", 1, &step).unwrap();
    w.finish().unwrap();
    let reader = ContainerReader::open(&path).unwrap();
    // q.step has layout version 2: refused by vq-io's version check, naming the section.
    assert!(matches!(
        ScalarQuantizer::read_sections(&reader, "q"),
        Err(Error::Io(vq_io::Error::SectionVersion { ref name, expected: 1, found: 2, .. })) if name == "q.step"
    ));
    assert!(matches!(ScalarQuantizer::read_sections(&reader, "r"), Err(Error::Io(_))));
    assert!(matches!(ScalarQuantizer::read_sections(&reader, "other"), Err(Error::Io(_))));
}

#[test]
fn constant_dimensions_and_clipping_behave() {
    // A dimension with one value has step 0: every code decodes to it exactly.
    let dim = 3;
    let sample = [1.0, 5.0, -2.0, 1.0, 6.0, 2.0, 1.0, 7.0, 0.0];
    for sq_type in [SqType::SQ8, SqType::SQ6, SqType::SQ4] {
        let sq = trained(dim, Metric::L2, sq_type, &sample);
        assert_eq!(sq.ranges().1[0], 0.0);
        let decoded = decode(&sq, &encode(&sq, &[1.0, 6.0, 0.0, 9.0, 6.0, 0.0]));
        assert_eq!(decoded[0], 1.0);
        assert_eq!(decoded[3], 1.0);
        let scorer = sq.scorer(&[3.0, 6.0, 0.0]).unwrap();
        let key = scorer.distance(&encode(&sq, &[1.0, 6.0, 0.0]));
        assert!((key - 4.0).abs() < 0.2, "{sq_type}: {key}");
    }
    // An all-constant SQ4U sample.
    let sq = trained(2, Metric::L2, SqType::SQ4U, &[3.0; 8]);
    let code = encode(&sq, &[3.0, 3.0]);
    assert_eq!(sq.scorer(&[4.0, 5.0]).unwrap().distance(&code), 5.0);

    // A clip narrows the range to the sample's quantiles.
    let sample: Vec<f32> = (0..=100).map(|i| i as f32).collect();
    let plain = trained(1, Metric::L2, SqType::SQ8, &sample);
    let mut clipped = ScalarQuantizer::new(1, Metric::L2, SqType::SQ8).unwrap().with_clip(Some(0.1)).unwrap();
    clipped.train(&sample).unwrap();
    // 256 cells centred on 0, 100/255, …, 100 (the ends reconstruct exactly).
    let step = (100.0f64 / 255.0) as f32;
    assert_eq!(plain.ranges().1, [step]);
    assert_eq!(plain.ranges().0, [(-0.5 * 100.0f64 / 255.0) as f32]);
    assert_eq!(clipped.ranges().1, [(80.0f64 / 255.0) as f32]);
    assert_eq!(clipped.ranges().0, [(10.0 - 0.5 * 80.0f64 / 255.0) as f32]);
    let ends = decode(&plain, &encode(&plain, &[0.0, 100.0]));
    assert!(ends[0].abs() < 1e-4 && (ends[1] - 100.0).abs() < 1e-4, "{ends:?}");
    // Integers spanning 0..=255 in every dimension are coded losslessly by SQ8.
    let ints: Vec<f32> = (0..1024).map(|i| ((i / 4 * 7) % 256) as f32).collect();
    let sq = trained(4, Metric::L2, SqType::SQ8, &ints);
    let back = decode(&sq, &encode(&sq, &ints));
    assert!(back.iter().zip(&ints).all(|(a, b)| (a - b).abs() < 1e-3));
}

/// The 8-bit query path: every level gives the portable twin's keys bit for bit (the sums are
/// exact integers), including dimensions long enough to widen the 32-bit lanes mid-code.
#[test]
fn int8_levels_match_the_portable_twin_exactly() {
    for (seed, &dim) in [1usize, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 4200, 8300].iter().enumerate() {
        let sample = data(40, dim, 300 + seed as u64);
        let query = data(1, dim, 400 + seed as u64);
        for metric in METRICS {
            let sq = trained(dim, metric, SqType::SQ8, &sample);
            let codes = encode(&sq, &sample);
            let portable = sq.scorer_int8_for_level(&query, SimdLevel::Portable).unwrap().unwrap();
            let mut want = vec![0f32; 40];
            portable.distances(&codes, &mut want);
            for level in SimdLevel::available() {
                let scorer = sq.scorer_int8_for_level(&query, level).unwrap().unwrap();
                let mut got = vec![0f32; 40];
                scorer.distances(&codes, &mut got);
                assert_eq!(got, want, "{level} {metric} dim {dim}");
                assert_eq!(scorer.distance(&codes[..dim]), want[0]);
                assert_eq!(scorer.distance(&codes[..dim - 1]), f32::INFINITY);
            }
        }
    }
}

/// With equal ranges in every dimension and a query on the code grid, nothing is rounded:
/// the 8-bit path gives the float path's L2 keys.
#[test]
fn int8_l2_is_exact_on_the_grid() {
    let dim = 24;
    let mut sample = data(50, dim, 11);
    sample[..dim].fill(-3.0);
    sample[dim..2 * dim].fill(5.0);
    let sq = trained(dim, Metric::L2, SqType::SQ8, &sample.iter().map(|x| x.clamp(-3.0, 5.0)).collect::<Vec<_>>());
    let codes = encode(&sq, &sample);
    let query = decode(&sq, &codes[7 * dim..8 * dim]);
    let (exact, int8) = (sq.scorer(&query).unwrap(), sq.scorer_int8(&query).unwrap());
    for code in codes.chunks(dim) {
        let (a, b) = (exact.distance(code), int8.distance(code));
        assert!((a - b).abs() <= 1e-4 * a.max(1.0), "{a} vs {b}");
    }
}

/// The 8-bit path ranks like the float path: recall@10 against the float SQ8 scan.
#[test]
fn int8_scan_keeps_the_float_scans_top_10() {
    let (dim, nb, nq, k) = (48, 10_000, 50, 10);
    let base = clustered(nb, dim, 3);
    let queries = clustered(nq, dim, 4);
    for metric in METRICS {
        let sq = trained(dim, metric, SqType::SQ8, &base);
        let codes = encode(&sq, &base);
        let top = |keys: &[f32]| {
            let mut t = vq_distance::TopK::new(k);
            for (i, &key) in keys.iter().enumerate() {
                t.push(key, i as u64);
            }
            t.into_sorted().into_iter().map(|(_, id)| id).collect::<Vec<_>>()
        };
        let mut hits = 0;
        for q in queries.chunks(dim) {
            let (mut a, mut b) = (vec![0f32; nb], vec![0f32; nb]);
            sq.scorer(q).unwrap().distances(&codes, &mut a);
            sq.scorer_int8(q).unwrap().distances(&codes, &mut b);
            let (ta, tb) = (top(&a), top(&b));
            hits += tb.iter().filter(|id| ta.contains(id)).count();
        }
        let r = hits as f64 / (nq * k) as f64;
        eprintln!("SQ8 int8 {metric}: recall@10 against the float scan {r:.3}");
        assert!(r >= 0.9, "{metric}: {r}");
    }
    let sq4 = trained(4, Metric::L2, SqType::SQ4, &data(10, 4, 1));
    assert!(matches!(sq4.scorer_int8(&[0.0; 4]), Err(Error::Parameter { name: "sq_type", .. })));
    let untrained = ScalarQuantizer::new(4, Metric::L2, SqType::SQ8).unwrap();
    assert!(matches!(untrained.scorer_int8(&[0.0; 4]), Err(Error::NotTrained { .. })));
}

/// SQ4U over data spanning 10⁻³⁰ scored a query of 1 in steps of 10⁻³¹: every key overflowed
/// to +∞ and a search returned only padding. Such queries are scored by differences now: every
/// row is found, at its decoded distance (about 1 here). Queries inside the range keep the
/// form in steps (the same keys as before).
#[test]
fn sq4u_scores_queries_far_outside_a_tiny_range() {
    let dim = 4;
    for scale in [1e-20f32, 1e-30, 1e-38] {
        let sample: Vec<f32> = (0..400).map(|i| ((i * 37 % 101) as f32 - 50.0) * scale).collect();
        let sq = trained(dim, Metric::L2, SqType::SQ4U, &sample);
        let mut index = FlatCodes::new(sq.clone());
        index.add(&sample).unwrap();
        let hits = index.search(&[1.0, 0.0, 0.0, 0.0], 3).unwrap();
        let (ids, scores) = hits.get(0).unwrap();
        assert!(ids.len() == 3 && ids.iter().all(|&id| id < 100), "scale {scale}: {ids:?}");
        let decoded = decode(&sq, &encode(&sq, &sample));
        for (&id, &score) in ids.iter().zip(scores) {
            let (want, _) = exact_key(Metric::L2, &[1.0, 0.0, 0.0, 0.0], &decoded[id as usize * dim..][..dim]);
            assert!((f64::from(score) - want).abs() <= 1e-6, "scale {scale}: {score} for {want}");
        }
    }
}

/// SQfp16 stored components beyond ±65,504 as ±65,504: vectors of 10⁵, 2·10⁵ and 10⁶ all
/// decoded to 65,504 and tied in every search. Such a vector is refused by row and component
/// now, and nothing of its batch is added; SQbf16 takes it.
#[test]
fn sqfp16_refuses_components_beyond_half_precision() {
    let dim = 2;
    let sq = ScalarQuantizer::new(dim, Metric::L2, SqType::FP16).unwrap();
    let mut index = FlatCodes::new(sq);
    index.add(&[1.0, 2.0, 65_504.0, -65_504.0]).unwrap();
    let err = index.add(&[3.0, 4.0, 0.0, 1e5]).unwrap_err();
    assert!(matches!(err, Error::Parameter { name: "vectors", .. }), "{err}");
    assert!(err.to_string().contains("row 1, component 1 is 100000"), "{err}");
    assert_eq!(index.len(), 2, "nothing of the refused batch is added");
    let mut bf16 = FlatCodes::new(ScalarQuantizer::new(dim, Metric::L2, SqType::BF16).unwrap());
    bf16.add(&[3.0, 4.0, 0.0, 1e5]).unwrap();
    assert_eq!(bf16.len(), 2);
}
