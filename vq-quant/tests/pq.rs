//! Product quantization and OPQ: look-up-table distances against explicit distances to the
//! reconstructions, the fast block scan against the per-code path, bit packing, OPQ's rotation,
//! exhaustive-search recall, errors and persistence.

use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal, StandardNormal};
use vq_distance::{Error as DError, Metric, knn_exact};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{
    CodeScorer, Error, FlatCodes, OpqParams, OpqQuantizer, OpqRotation, PcaMatrix, PcaParams, PqParams,
    ProductQuantizer, Quantizer, SDC_MAX_ENTRIES, pack_index, unpack_index,
};

const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

fn gaussian(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * dim).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// A random orthogonal matrix (Gram–Schmidt on Gaussian rows), row-major.
fn random_orthogonal(dim: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut q: Vec<f64> = (0..dim * dim).map(|_| StandardNormal.sample(&mut rng)).collect();
    for i in 0..dim {
        for j in 0..i {
            let d: f64 = (0..dim).map(|k| q[i * dim + k] * q[j * dim + k]).sum();
            for k in 0..dim {
                q[i * dim + k] -= d * q[j * dim + k];
            }
        }
        let norm = (0..dim).map(|k| q[i * dim + k].powi(2)).sum::<f64>().sqrt();
        for k in 0..dim {
            q[i * dim + k] /= norm;
        }
    }
    q
}

/// Anisotropic Gaussian (standard deviation of component `j` ∝ `(1 + j)^-decay`), randomly
/// rotated, around `centres` cluster centres: correlated components, like real descriptors.
fn correlated(n: usize, dim: usize, centres: usize, decay: f64, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let rot = random_orthogonal(dim, seed ^ 0x5eed);
    let spread = Normal::new(0.0, 1.0).unwrap();
    let c: Vec<f64> = (0..centres * dim).map(|_| spread.sample(&mut rng) * 0.5).collect();
    let scale: Vec<f64> = (0..dim).map(|j| (1.0 + j as f64).powf(-decay) * 3.0).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let k = rng.random_range(0..centres);
        let z: Vec<f64> = (0..dim).map(|j| spread.sample(&mut rng) * scale[j]).collect();
        for i in 0..dim {
            let v: f64 = (0..dim).map(|j| rot[i * dim + j] * z[j]).sum();
            out.push((v + c[k * dim + i]) as f32);
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = dot(v, v).sqrt();
    v.iter().map(|x| (f64::from(*x) / n) as f32).collect()
}

/// The key the quantizer should give between `query` and the reconstruction `rec`.
fn explicit_key(metric: Metric, query: &[f32], rec: &[f32]) -> f64 {
    match metric {
        Metric::L2 => query.iter().zip(rec).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum(),
        Metric::InnerProduct => -dot(query, rec),
        Metric::Cosine => -dot(&normalized(query), rec),
    }
}

fn close(got: f32, want: f64, scale: f64) -> bool {
    (f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs() + scale)
}

fn quick_params(m: usize, nbits: u32) -> PqParams {
    PqParams { iterations: 6, ..PqParams::new(m, nbits) }
}

fn encode_all<Q: Quantizer>(q: &Q, x: &[f32]) -> Vec<u8> {
    let mut codes = vec![0u8; x.len() / q.dim() * q.code_size()];
    q.encode(x, &mut codes).unwrap();
    codes
}

fn decode_all<Q: Quantizer>(q: &Q, codes: &[u8]) -> Vec<f32> {
    let mut out = vec![0f32; codes.len() / q.code_size() * q.dim()];
    q.decode(codes, &mut out).unwrap();
    out
}

/// Checks the LUT keys and the symmetric keys of `q` against explicit keys of reconstructions.
fn check_against_reconstructions<Q: Quantizer>(q: &Q, base: &[f32], queries: &[f32]) {
    let dim = q.dim();
    let codes = encode_all(q, base);
    let rec = decode_all(q, &codes);
    let cs = q.code_size();
    let n = base.len() / dim;
    for query in queries.chunks_exact(dim) {
        let scorer = q.scorer(query).unwrap();
        let mut keys = vec![0f32; n];
        scorer.distances(&codes, &mut keys);
        for (i, r) in rec.chunks_exact(dim).enumerate() {
            let want = explicit_key(q.metric(), query, r);
            let scale = dot(query, query).sqrt() * dot(r, r).sqrt();
            let got = scorer.distance(&codes[i * cs..][..cs]);
            assert!(close(got, want, scale), "{} {:?}: code {i}: LUT {got} vs explicit {want}", q.name(), q.metric());
            assert_eq!(keys[i].to_bits(), got.to_bits(), "{}: block scan and single code differ", q.name());
        }
    }
    // Symmetric distance: the key between the two reconstructions.
    for i in 0..n.min(12) {
        for j in 0..n.min(12) {
            let (a, b) = (&codes[i * cs..][..cs], &codes[j * cs..][..cs]);
            let (ra, rb) = (&rec[i * dim..][..dim], &rec[j * dim..][..dim]);
            let want = match q.metric() {
                Metric::L2 => ra.iter().zip(rb).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum(),
                _ => -dot(ra, rb),
            };
            let got = q.code_distance(a, b);
            let scale = dot(ra, ra).sqrt() * dot(rb, rb).sqrt();
            assert!(close(got, want, scale), "{}: code_distance({i}, {j}) {got} vs {want}", q.name());
        }
    }
}

#[test]
fn lut_distance_is_the_distance_to_the_reconstruction() {
    let dim = 48;
    let train = gaussian(600, dim, 1);
    let base = gaussian(70, dim, 2);
    let queries = gaussian(3, dim, 3);
    // 8 bits with an unrolled m (16) and a generic one (12); 4 and 6 bits with a whole number
    // of 8-id groups (m = 16) and with a partial last group (m = 12, 6).
    for (m, nbits) in [(16, 8), (12, 8), (16, 4), (12, 4), (12, 6), (6, 6), (8, 5), (24, 7)] {
        for metric in METRICS {
            let mut pq = ProductQuantizer::with_params(dim, metric, quick_params(m, nbits)).unwrap();
            pq.train(&train).unwrap();
            assert_eq!(pq.code_size(), (m * nbits as usize).div_ceil(8));
            check_against_reconstructions(&pq, &base, &queries);
        }
    }
}

/// Above `SDC_MAX_ENTRIES` the symmetric keys are computed from the codebooks per call: the
/// same keys as the table gives, bit for bit, and no table is allocated (a small file must not
/// make a reader allocate far more than its size: a PQ256x8 table would be 64 MiB).
#[test]
fn symmetric_keys_without_the_table_equal_the_tables() {
    let (dim, m) = (72, 72); // 72 · 256² entries: above the cap
    assert!(m * 256 * 256 > SDC_MAX_ENTRIES);
    let train = gaussian(600, dim, 7);
    let codes_of = |pq: &ProductQuantizer| encode_all(pq, &train[..40 * dim]);
    for metric in METRICS {
        let mut big = ProductQuantizer::with_params(dim, metric, quick_params(m, 8)).unwrap();
        big.train(&train).unwrap();
        let before = big.memory_bytes();
        check_against_reconstructions(&big, &train[..30 * dim], &train[30 * dim..32 * dim]);
        assert_eq!(big.memory_bytes(), before, "{metric:?}: no table was built");
        // The twin: the keys summed by hand from the codebooks (dsub = 1), in the order the
        // table path sums its entries (even sub-quantizers, odd ones, then the two).
        let codes = codes_of(&big);
        let books = big.centroids();
        let ksub = 256;
        for (i, a) in codes.chunks_exact(m).enumerate().take(8) {
            for b in codes.chunks_exact(m).take(8) {
                let (mut s0, mut s1) = (0f32, 0f32);
                for j in 0..m {
                    let (x, y) = (a[j] as usize, b[j] as usize);
                    let (cx, cy) = (books[j * ksub + x], books[j * ksub + y]);
                    let v = match metric {
                        Metric::L2 => (cx - cy) * (cx - cy),
                        _ => -(cx * cy),
                    };
                    if j % 2 == 0 { s0 += v } else { s1 += v }
                }
                assert_eq!(big.code_distance(a, b), s0 + s1, "{metric:?}: code {i}");
            }
        }
    }
}

#[test]
fn opq_lut_distance_is_the_distance_to_the_reconstruction() {
    let dim = 32;
    let data = correlated(853, dim, 5, 0.8, 4);
    let (train, rest) = data.split_at(800 * dim);
    let (base, queries) = rest.split_at(50 * dim);
    for metric in METRICS {
        for (m, nbits) in [(8, 8), (8, 4)] {
            let params = OpqParams { niter: 3, niter_pq_0: 5, pq: quick_params(m, nbits), ..OpqParams::new(m, nbits) };
            let mut opq = OpqQuantizer::with_params(dim, metric, params).unwrap();
            opq.train(train).unwrap();
            assert_eq!(opq.name(), format!("OPQ{m},PQ{m}x{nbits}"));
            check_against_reconstructions(&opq, base, queries);
        }
    }
}

#[test]
fn pq_reconstruction_is_the_nearest_centroid_per_sub_vector() {
    // Encoding picks, in every sub-space, the nearest centroid (up to float ties).
    let dim = 16;
    let mut pq = ProductQuantizer::with_params(dim, Metric::L2, quick_params(4, 5)).unwrap();
    pq.train(&gaussian(400, dim, 7)).unwrap();
    let x = gaussian(50, dim, 8);
    let codes = encode_all(&pq, &x);
    let (ksub, dsub) = (pq.ksub(), pq.dsub());
    for (row, code) in x.chunks_exact(dim).zip(codes.chunks_exact(pq.code_size())) {
        for j in 0..4 {
            let sub = &row[j * dsub..][..dsub];
            let d = |c: usize| -> f64 {
                let cent = &pq.centroids()[(j * ksub + c) * dsub..][..dsub];
                sub.iter().zip(cent).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum()
            };
            let chosen = d(unpack_index(code, j, 5) as usize);
            let best = (0..ksub).map(d).fold(f64::INFINITY, f64::min);
            assert!(chosen <= best + 1e-4 * (1.0 + best), "sub-quantizer {j}: {chosen} > {best}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn bit_packing_round_trips(nbits in 1u32..=8, ids in prop::collection::vec(any::<u32>(), 1..70)) {
        let mut code = vec![0u8; (ids.len() * nbits as usize).div_ceil(8)];
        for (j, &id) in ids.iter().enumerate() {
            pack_index(&mut code, j, nbits, id);
        }
        let mask = (1u32 << nbits) - 1;
        for (j, &id) in ids.iter().enumerate() {
            prop_assert_eq!(unpack_index(&code, j, nbits), id & mask);
        }
        // Bits past the last id stay zero.
        let used = ids.len() * nbits as usize;
        if !used.is_multiple_of(8) {
            prop_assert_eq!(code[code.len() - 1] >> (used % 8), 0);
        }
    }

    #[test]
    fn block_scan_equals_single_codes(
        m in prop::sample::select(vec![1usize, 2, 3, 5, 8, 9, 12, 16, 17, 24, 32, 64]),
        nbits in 4u32..=8,
        dsub in 1usize..4,
        n in 0usize..23,
        metric in prop::sample::select(METRICS.to_vec()),
        seed in any::<u64>(),
    ) {
        let dim = m * dsub;
        let mut pq = ProductQuantizer::new(dim, metric, m, nbits).unwrap();
        pq.set_centroids(gaussian(pq.ksub(), dim, seed)).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 1);
        // Arbitrary bytes are valid codes (bits past the last id are ignored).
        let codes: Vec<u8> = (0..n * pq.code_size()).map(|_| rng.random()).collect();
        let query = gaussian(1, dim, seed ^ 2);
        let scorer = pq.scorer(&query).unwrap();
        let mut keys = vec![f32::NAN; n];
        scorer.distances(&codes, &mut keys);
        for (i, code) in codes.chunks_exact(pq.code_size()).enumerate() {
            prop_assert_eq!(keys[i].to_bits(), scorer.distance(code).to_bits(), "code {}", i);
        }
    }
}

/// Mean squared reconstruction error per vector.
fn mse<Q: Quantizer>(q: &Q, x: &[f32]) -> f64 {
    let rec = decode_all(q, &encode_all(q, x));
    let n = x.len() / q.dim();
    x.iter().zip(&rec).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum::<f64>() / n as f64
}

#[test]
fn opq_rotation_is_orthogonal_and_beats_pq_on_correlated_data() {
    let (dim, m, nbits) = (32, 8, 5);
    // Far from the origin, like real descriptors: the rotation must not spend itself on the mean.
    let data: Vec<f32> = correlated(4000, dim, 1, 0.9, 11).iter().map(|v| v + 20.0).collect();
    let (train, test) = data.split_at(3000 * dim);
    let pq_params = PqParams { iterations: 10, ..PqParams::new(m, nbits) };
    let mut pq = ProductQuantizer::with_params(dim, Metric::L2, pq_params.clone()).unwrap();
    pq.train(train).unwrap();
    let params = OpqParams { niter: 12, pq: pq_params, ..OpqParams::new(m, nbits) };
    let mut opq = OpqQuantizer::with_params(dim, Metric::L2, params).unwrap();
    opq.train(train).unwrap();

    let r = opq.rotation();
    assert_eq!(r.len(), dim * dim);
    for i in 0..dim {
        for j in 0..dim {
            let rtr: f64 = (0..dim).map(|k| f64::from(r[k * dim + i]) * f64::from(r[k * dim + j])).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((rtr - want).abs() < 1e-4, "(RᵀR)[{i}][{j}] = {rtr}");
        }
    }
    // The rounds lower the training error (each step can only lower it, up to k-means noise).
    let obj = opq.training_objective();
    assert_eq!(obj.len(), 12);
    assert!(obj[obj.len() - 1] < obj[0], "objective {obj:?}");

    let (e_pq, e_opq) = (mse(&pq, test), mse(&opq, test));
    println!("held-out MSE: PQ{m}x{nbits} {e_pq:.4}, OPQ {e_opq:.4} ({:.3}x)", e_opq / e_pq);
    // On rotated anisotropic data, plain PQ cuts strongly correlated components apart and
    // gives every sub-space the same bits whatever its variance; OPQ decorrelates and balances
    // them. A 10% gain is far below what the rotation can win here, and far above noise.
    assert!(e_opq < 0.9 * e_pq, "OPQ MSE {e_opq} not clearly below PQ MSE {e_pq}");
}

#[test]
fn opq_rotation_alone_is_the_rotation_of_the_opq_quantizer_and_round_trips() {
    let (dim, m, nbits) = (16, 4, 5);
    let data: Vec<f32> = correlated(1500, dim, 3, 0.8, 31).iter().map(|v| v + 5.0).collect();
    let params = OpqParams { niter: 4, niter_pq_0: 6, pq: quick_params(m, nbits), ..OpqParams::new(m, nbits) };
    let mut rotation = OpqRotation::new(dim, params.clone()).unwrap();
    assert!(matches!(rotation.apply(&data[..dim]), Err(Error::NotTrained { .. })));
    assert!(matches!(rotation.train(&data[..31 * dim]), Err(Error::TooFewTrainingPoints { needed: 32, got: 31, .. })));
    assert!(!rotation.is_trained(), "a refused training leaves it untrained");
    rotation.train(&data).unwrap();
    let mut opq = OpqQuantizer::with_params(dim, Metric::L2, params).unwrap();
    opq.train(&data).unwrap();
    assert_eq!(rotation.matrix(), opq.rotation(), "the same rounds on the same sample");
    // The objective is a parallel f64 sum: equal up to the order of the additions.
    let (a, b) = (rotation.training_objective(), opq.training_objective());
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs()), "{a:?} vs {b:?}");

    // apply is R x, row by row, computed here in f64 from the matrix.
    let rows = &data[..5 * dim];
    let got = rotation.apply(rows).unwrap();
    let r = rotation.matrix();
    for (x, y) in rows.chunks(dim).zip(got.chunks(dim)) {
        for i in 0..dim {
            let want: f64 = (0..dim).map(|j| f64::from(r[i * dim + j]) * f64::from(x[j])).sum();
            assert!((f64::from(y[i]) - want).abs() < 1e-3 * (1.0 + want.abs()), "{} vs {want}", y[i]);
        }
    }
    assert!(matches!(rotation.apply(&data[..dim + 1]), Err(Error::Input(DError::RaggedBuffer { .. }))));

    let mut w = ContainerWriter::in_memory().unwrap();
    rotation.write_sections(&mut w, "t").unwrap();
    let bytes = w.finish_to_bytes().unwrap();
    let back = OpqRotation::read_sections(&ContainerReader::from_bytes(&bytes, true).unwrap(), "t").unwrap();
    assert_eq!(back.matrix(), rotation.matrix());
    assert_eq!(back.params(), rotation.params());

    // A matrix that is not a rotation is refused on read.
    let twice: Vec<f32> = rotation.matrix().iter().map(|v| 2.0 * v).collect();
    let mut w = ContainerWriter::in_memory().unwrap();
    let meta = serde_json::json!({ "transform": "opq", "dim": dim, "params": rotation.params(), "trained": true });
    w.add_json("t.meta", 1, &meta).unwrap();
    w.add_array("t.rotation", 1, &twice).unwrap();
    let bad = w.finish_to_bytes().unwrap();
    let read = OpqRotation::read_sections(&ContainerReader::from_bytes(&bad, true).unwrap(), "t");
    assert!(matches!(read, Err(Error::Corrupt { .. })), "{read:?}");
}

/// `OPQ{m}_{d}`: a projection to fewer dimensions with orthonormal rows, trained from the
/// principal directions; PQ behind it reconstructs held-out vectors better than PQ behind the
/// plain PCA projection it started from (the rounds balance the variance across sub-spaces),
/// and it reads back from its sections (an old square rotation's meta, without `d_out`, too).
#[test]
fn opq_projection_to_fewer_dimensions_beats_pca_then_pq() {
    let (dim, d_out, m, nbits) = (32, 16, 4, 5);
    // Centred (a projection without a mean term loses the mean's part outside it; distances,
    // what an index needs, do not see it: `R x − R y = R (x − y)`).
    let mut data = correlated(5000, dim, 1, 0.9, 41);
    let mean: Vec<f32> = (0..dim).map(|j| data.iter().skip(j).step_by(dim).sum::<f32>() / 5000.0).collect();
    data.iter_mut().enumerate().for_each(|(i, v)| *v -= mean[i % dim]);
    let (train, test) = data.split_at(4000 * dim);
    let params = OpqParams { niter: 8, pq: quick_params(m, nbits), ..OpqParams::new(m, nbits) };
    assert!(matches!(OpqRotation::with_output(dim, 40, params.clone()), Err(Error::Parameter { name: "d_out", .. })));
    assert!(OpqRotation::with_output(dim, 18, params.clone()).is_err(), "4 does not divide 18");
    let mut opq = OpqRotation::with_output(dim, d_out, params).unwrap();
    opq.train(train).unwrap();
    assert_eq!((opq.dim(), opq.d_out(), opq.matrix().len(), opq.name().as_str()), (dim, d_out, d_out * dim, "OPQ4_16"));
    let r = opq.matrix();
    for i in 0..d_out {
        for j in 0..d_out {
            let d = dot(&r[i * dim..(i + 1) * dim], &r[j * dim..(j + 1) * dim]);
            assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-4, "rows {i}, {j}: {d}");
        }
    }
    // Held-out error of x ≈ Rᵀ PQ(R x), against the same PQ behind the PCA projection.
    let error_behind = |project: &dyn Fn(&[f32]) -> Vec<f32>, back: &dyn Fn(&[f32]) -> Vec<f32>| {
        let mut pq = ProductQuantizer::with_params(d_out, Metric::L2, quick_params(m, nbits)).unwrap();
        pq.train(&project(train)).unwrap();
        let rec = back(&decode_all(&pq, &encode_all(&pq, &project(test))));
        test.iter().zip(&rec).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum::<f64>() / 1000.0
    };
    let e_opq = error_behind(&|x| opq.apply(x).unwrap(), &|y| opq.apply_inverse(y).unwrap());
    let mut pca = PcaMatrix::new(dim, PcaParams::new(d_out, false)).unwrap();
    pca.train(train).unwrap();
    let e_pca = error_behind(&|x| pca.apply(x).unwrap(), &|y| pca.apply_inverse(y).unwrap());
    println!("held-out error: PCA{d_out} then PQ {e_pca:.4}, OPQ{m}_{d_out} then PQ {e_opq:.4}");
    assert!(e_opq < 0.95 * e_pca, "OPQ projection {e_opq} not below PCA then PQ {e_pca}");

    let write = |meta: serde_json::Value, matrix: &[f32]| {
        let mut w = ContainerWriter::in_memory().unwrap();
        w.add_json("t.meta", 1, &meta).unwrap();
        w.add_array("t.rotation", 1, matrix).unwrap();
        ContainerReader::from_bytes(&w.finish_to_bytes().unwrap(), true).unwrap()
    };
    let mut w = ContainerWriter::in_memory().unwrap();
    opq.write_sections(&mut w, "t").unwrap();
    let back =
        OpqRotation::read_sections(&ContainerReader::from_bytes(&w.finish_to_bytes().unwrap(), true).unwrap(), "t");
    assert_eq!(back.unwrap().matrix(), opq.matrix());
    let meta = |d_out: Option<usize>| {
        let mut m = serde_json::json!({ "transform": "opq", "dim": dim, "params": opq.params(), "trained": true });
        if let Some(d) = d_out {
            m["d_out"] = d.into();
        }
        m
    };
    // The projection read as a square rotation (no `d_out`) is refused: too few values.
    assert!(matches!(OpqRotation::read_sections(&write(meta(None), opq.matrix()), "t"), Err(Error::Corrupt { .. })));
    let stretched: Vec<f32> = opq.matrix().iter().map(|v| 1.5 * v).collect();
    assert!(matches!(
        OpqRotation::read_sections(&write(meta(Some(d_out)), &stretched), "t"),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn exhaustive_pq_search_recall_on_clustered_data() {
    let (dim, n, nq, k) = (32, 20_000, 100, 10);
    let data = correlated(n + nq, dim, 200, 0.6, 21);
    let (base, queries) = data.split_at(n * dim);
    let exact = knn_exact(base, queries, dim, k, Metric::L2).unwrap();
    for (m, nbits) in [(8, 8), (16, 8), (16, 4)] {
        let mut index = FlatCodes::new(ProductQuantizer::with_params(dim, Metric::L2, quick_params(m, nbits)).unwrap());
        index.train(&base[..10_000 * dim]).unwrap();
        index.add(base).unwrap();
        let hits = index.search(queries, k).unwrap();
        let mut found = 0;
        for (got, want) in hits.iter().zip(exact.iter()) {
            found += got.0.iter().filter(|id| want.0.contains(id)).count();
        }
        let recall = found as f64 / (nq * k) as f64;
        println!("PQ{m}x{nbits}, {n} x {dim}: recall@10 {recall:.3}");
        // Floors far below the measured values, high enough to catch a broken table or scan
        // (random ids would give 10 / 20,000): 4 bytes per 128-byte vector (PQ8x8) keep only a
        // coarse ranking inside a cluster; 16 bytes (PQ16x8) most of it.
        let floor = match (m, nbits) {
            (8, 8) => 0.35,
            (16, 8) => 0.7,
            _ => 0.3,
        };
        assert!(recall >= floor, "PQ{m}x{nbits} recall@10 {recall} below {floor}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    assert!(matches!(ProductQuantizer::new(30, Metric::L2, 4, 8), Err(Error::Parameter { name: "m", .. })));
    assert!(matches!(ProductQuantizer::new(32, Metric::L2, 4, 3), Err(Error::Parameter { name: "nbits", .. })));
    assert!(matches!(ProductQuantizer::new(32, Metric::L2, 4, 9), Err(Error::Parameter { name: "nbits", .. })));
    assert!(matches!(OpqQuantizer::new(30, Metric::L2, 4, 8), Err(Error::Parameter { name: "m", .. })));
    assert!(matches!(
        OpqQuantizer::with_params(32, Metric::L2, OpqParams { niter: 0, ..OpqParams::new(4, 8) }),
        Err(Error::Parameter { name: "niter", .. })
    ));
    // A dense d × d map of a dimension vq-io accepts (up to 2^24) would abort on allocation:
    // refused up front, for the quantizer, the rotation and the projection alike.
    for dim in [vq_quant::LINEAR_MAX_DIM + 4, 1 << 24] {
        assert!(matches!(OpqQuantizer::new(dim, Metric::L2, 4, 8), Err(Error::Parameter { name: "dim", .. })));
        assert!(matches!(OpqRotation::new(dim, OpqParams::new(4, 8)), Err(Error::Parameter { name: "dim", .. })));
        assert!(matches!(
            OpqRotation::with_output(dim, 64, OpqParams::new(4, 8)),
            Err(Error::Parameter { name: "dim", .. })
        ));
    }
    assert!(OpqRotation::with_output(vq_quant::LINEAR_MAX_DIM, 64, OpqParams::new(4, 8)).is_ok());

    let dim = 8;
    let mut pq = ProductQuantizer::new(dim, Metric::L2, 2, 6).unwrap();
    let x = gaussian(10, dim, 1);
    let mut codes = vec![0u8; 10 * pq.code_size()];
    assert!(matches!(pq.encode(&x, &mut codes), Err(Error::NotTrained { .. })));
    assert!(matches!(pq.scorer(&x[..dim]), Err(Error::NotTrained { .. })));
    assert!(matches!(pq.decode(&codes, &mut vec![0.0; 10 * dim]), Err(Error::NotTrained { .. })));
    assert!(pq.code_distance(&codes[..2], &codes[..2]).is_nan());
    // 2^6 = 64 centroids need at least 64 points.
    match pq.train(&gaussian(63, dim, 1)) {
        Err(Error::TooFewTrainingPoints { needed: 64, got: 63, .. }) => {}
        other => panic!("{other:?}"),
    }
    let mut opq = OpqQuantizer::new(dim, Metric::L2, 2, 6).unwrap();
    assert!(matches!(opq.encode(&x, &mut codes), Err(Error::NotTrained { .. })));
    assert!(matches!(opq.train(&gaussian(63, dim, 1)), Err(Error::TooFewTrainingPoints { needed: 64, .. })));

    pq.train(&gaussian(64, dim, 2)).unwrap();
    assert!(matches!(pq.encode(&x[..dim + 1], &mut codes), Err(Error::Input(DError::RaggedBuffer { .. }))));
    assert!(matches!(pq.encode(&x, &mut codes[1..]), Err(Error::CodeLength { .. })));
    assert!(matches!(pq.scorer(&x[..dim - 1]), Err(Error::Input(DError::Dimension { .. }))));
    let mut bad = x.clone();
    bad[13] = f32::NAN;
    assert!(matches!(pq.encode(&bad, &mut codes), Err(Error::Input(DError::NonFinite { row: 1, component: 5, .. }))));
    assert!(matches!(pq.train(&bad), Err(Error::Input(DError::NonFinite { .. }))));
    let mut cos = ProductQuantizer::new(dim, Metric::Cosine, 2, 4).unwrap();
    let mut zero = gaussian(64, dim, 3);
    zero[..dim].fill(0.0);
    assert!(matches!(cos.train(&zero), Err(Error::Input(DError::ZeroNorm { row: 0, .. }))));
}

fn save<Q: Quantizer>(q: &Q, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join(format!("{}.vq", q.name().replace(',', "_")));
    let mut w = ContainerWriter::create(&path).unwrap();
    q.write_sections(&mut w, "quant").unwrap();
    w.finish().unwrap();
    path
}

fn check_round_trip<Q: Quantizer>(q: &Q, x: &[f32], dir: &std::path::Path) {
    let back = Q::read_sections(&ContainerReader::open(save(q, dir)).unwrap(), "quant").unwrap();
    assert_eq!(back.name(), q.name());
    assert_eq!((back.dim(), back.metric(), back.code_size()), (q.dim(), q.metric(), q.code_size()));
    let codes = encode_all(q, x);
    assert_eq!(encode_all(&back, x), codes);
    assert_eq!(decode_all(&back, &codes), decode_all(q, &codes));
    let cs = q.code_size();
    for query in x.chunks_exact(q.dim()).take(3) {
        let (a, b) = (q.scorer(query).unwrap(), back.scorer(query).unwrap());
        for code in codes.chunks_exact(cs) {
            assert_eq!(a.distance(code).to_bits(), b.distance(code).to_bits());
        }
    }
    assert_eq!(q.code_distance(&codes[..cs], &codes[cs..2 * cs]), back.code_distance(&codes[..cs], &codes[cs..2 * cs]));
}

#[test]
fn save_and_load_give_identical_codes_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 16;
    let data = correlated(540, dim, 4, 0.7, 31);
    let (train, x) = data.split_at(500 * dim);
    for metric in METRICS {
        let mut pq = ProductQuantizer::with_params(dim, metric, quick_params(4, 6)).unwrap();
        pq.train(train).unwrap();
        check_round_trip(&pq, x, dir.path());
        let params = OpqParams { niter: 2, niter_pq_0: 4, pq: quick_params(8, 4), ..OpqParams::new(8, 4) };
        let mut opq = OpqQuantizer::with_params(dim, metric, params).unwrap();
        opq.train(train).unwrap();
        check_round_trip(&opq, x, dir.path());
    }
    // memory_bytes counts the codebooks (and their transposed copy), then the symmetric table
    // once code_distance has built it.
    let mut pq = ProductQuantizer::with_params(dim, Metric::L2, quick_params(4, 6)).unwrap();
    assert_eq!(pq.memory_bytes(), 0);
    pq.train(train).unwrap();
    let books = pq.centroids().len() * 4;
    assert!(pq.memory_bytes() >= 2 * books && pq.memory_bytes() < 3 * books, "{}", pq.memory_bytes());
    let codes = encode_all(&pq, &x[..2 * dim]);
    let _ = pq.code_distance(&codes[..pq.code_size()], &codes[pq.code_size()..]);
    assert!(pq.memory_bytes() >= 2 * books + 4 * 4 * 64 * 64, "{}", pq.memory_bytes());
    // An untrained quantizer saves and loads as untrained.
    let pq = ProductQuantizer::new(dim, Metric::L2, 4, 8).unwrap();
    let back =
        ProductQuantizer::read_sections(&ContainerReader::open(save(&pq, dir.path())).unwrap(), "quant").unwrap();
    assert!(!back.is_trained());
}

/// The sections as written, for crafting corrupt ones.
#[derive(serde::Serialize)]
struct Meta<P> {
    quantizer: &'static str,
    dim: usize,
    metric: &'static str,
    params: P,
    trained: bool,
}

fn write_pq(dir: &std::path::Path, meta: &Meta<PqParams>, centroids: &[f32]) -> ContainerReader {
    let path = dir.join("corrupt.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    w.add_json("quant.meta", 1, meta).unwrap();
    w.add_array("quant.centroids", 1, centroids).unwrap();
    w.finish().unwrap();
    ContainerReader::open(&path).unwrap()
}

#[test]
fn corrupt_sections_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let mut pq = ProductQuantizer::with_params(dim, Metric::L2, quick_params(2, 4)).unwrap();
    pq.train(&gaussian(100, dim, 41)).unwrap();
    let good = || Meta { quantizer: "pq", dim, metric: "l2", params: pq.params().clone(), trained: true };
    let c = pq.centroids().to_vec();
    assert!(ProductQuantizer::read_sections(&write_pq(dir.path(), &good(), &c), "quant").is_ok());

    let corrupt = |meta: Meta<PqParams>, cent: &[f32]| {
        let r = ProductQuantizer::read_sections(&write_pq(dir.path(), &meta, cent), "quant");
        assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    };
    corrupt(Meta { quantizer: "sq", ..good() }, &c);
    corrupt(Meta { metric: "hamming", ..good() }, &c);
    corrupt(Meta { dim: 9, ..good() }, &c);
    corrupt(Meta { params: PqParams { nbits: 9, ..pq.params().clone() }, ..good() }, &c);
    corrupt(Meta { params: PqParams { m: 3, ..pq.params().clone() }, ..good() }, &c);
    corrupt(Meta { params: PqParams { nbits: 5, ..pq.params().clone() }, ..good() }, &c);
    corrupt(Meta { dim: usize::MAX, params: PqParams { m: 1, ..pq.params().clone() }, ..good() }, &c);
    corrupt(good(), &c[1..]);
    corrupt(Meta { trained: false, ..good() }, &c);
    let mut nan = c.clone();
    nan[7] = f32::NAN;
    corrupt(good(), &nan);

    // A section of the wrong kind or a missing one is an error too (from the container).
    let path = dir.path().join("missing.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    w.add_json("quant.meta", 1, &good()).unwrap();
    w.finish().unwrap();
    assert!(ProductQuantizer::read_sections(&ContainerReader::open(&path).unwrap(), "quant").is_err());

    // OPQ: a rotation that is not orthogonal, or of the wrong size.
    let mut opq = OpqQuantizer::with_params(
        dim,
        Metric::L2,
        OpqParams { niter: 2, niter_pq_0: 3, pq: quick_params(2, 4), ..OpqParams::new(2, 4) },
    )
    .unwrap();
    opq.train(&gaussian(100, dim, 42)).unwrap();
    let mut rot = opq.rotation().to_vec();
    let write_opq = |rotation: &[f32]| {
        let path = dir.path().join("opq.vq");
        let mut w = ContainerWriter::create(&path).unwrap();
        let meta = Meta { quantizer: "opq", dim, metric: "l2", params: opq.params().clone(), trained: true };
        w.add_json("quant.meta", 1, &meta).unwrap();
        w.add_array("quant.rotation", 1, rotation).unwrap();
        opq.pq().write_sections(&mut w, "quant.pq").unwrap();
        w.finish().unwrap();
        OpqQuantizer::read_sections(&ContainerReader::open(&path).unwrap(), "quant")
    };
    assert!(write_opq(&rot).is_ok());
    assert!(matches!(write_opq(&rot[1..]), Err(Error::Corrupt { .. })));
    rot[3] += 0.1;
    assert!(matches!(write_opq(&rot), Err(Error::Corrupt { .. })));
}
