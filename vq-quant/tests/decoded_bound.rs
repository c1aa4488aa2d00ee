//! `Quantizer::decoded_norm_sq_bound` against the slow twin it stands in for: decoding codes
//! and measuring them. `validate_codes` skips its per-code check on the strength of the bound,
//! so a bound below any code's real decoded norm would let a forged file through.

use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use vq_distance::Metric;
use vq_quant::{OpqParams, OpqQuantizer, PqParams, ProductQuantizer, Quantizer, ScalarQuantizer, SqType};

/// Skewed data: per-dimension offsets and scales, so SQ ranges and PQ codebooks differ by
/// dimension and the largest reconstruction is not at the origin.
fn data(n: usize, dim: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * dim)
        .map(|i| {
            let j = (i % dim) as f32;
            scale * (rng.random_range(-1.0f32..1.0) * (1.0 + j) + j - dim as f32 / 2.0)
        })
        .collect()
}

/// Every byte pattern, not only codes the encoder makes: random bytes plus all-zero and all-one.
fn codes(q: &impl Quantizer, rows: usize, seed: u64) -> Vec<u8> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let size = q.code_size();
    let mut codes: Vec<u8> = (0..rows * size).map(|_| rng.random()).collect();
    codes.extend(std::iter::repeat_n(0u8, size));
    codes.extend(std::iter::repeat_n(0xffu8, size));
    codes
}

fn check_bound(q: &impl Quantizer, seed: u64) {
    let bound = q.decoded_norm_sq_bound().unwrap_or_else(|| panic!("{} is trained and bounded", q.name()));
    let codes = codes(q, 200, seed);
    let mut out = vec![0f32; codes.len() / q.code_size() * q.dim()];
    q.decode(&codes, &mut out).unwrap();
    let largest = out
        .chunks_exact(q.dim())
        .map(|row| row.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
        .fold(0.0f64, f64::max);
    // f32 rounding in the decode may overshoot the exact bound by a few ulps.
    assert!(largest <= bound * (1.0 + 1e-5), "{}: decoded norm² {largest} above the bound {bound}", q.name());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn no_code_decodes_above_the_bound(
        dim in 1usize..24,
        scale_exp in -6i32..10,
        seed in any::<u64>(),
        sq_type in prop::sample::select(vec![SqType::SQ8, SqType::SQ6, SqType::SQ4, SqType::SQ4U]),
        nbits in prop::sample::select(vec![4u32, 6, 8]),
    ) {
        let scale = 10f32.powi(scale_exp);
        let train = data(300, dim, scale, seed);
        let mut sq = ScalarQuantizer::new(dim, Metric::L2, sq_type).unwrap();
        sq.train(&train).unwrap();
        check_bound(&sq, seed ^ 1);

        let m = if dim % 2 == 0 { 2 } else { 1 };
        let mut pq = ProductQuantizer::with_params(dim, Metric::L2, PqParams { iterations: 3, ..PqParams::new(m, nbits) }).unwrap();
        pq.train(&train).unwrap();
        check_bound(&pq, seed ^ 2);

        let params = OpqParams { niter: 1, niter_pq_0: 1, pq: PqParams { iterations: 2, ..PqParams::new(m, nbits) }, ..OpqParams::new(m, nbits) };
        let mut opq = OpqQuantizer::with_params(dim, Metric::L2, params).unwrap();
        opq.train(&train).unwrap();
        check_bound(&opq, seed ^ 3);
    }
}

#[test]
fn codes_that_can_hold_anything_have_no_bound() {
    let train = data(300, 8, 1.0, 5);
    for sq_type in [SqType::FP16, SqType::BF16] {
        let mut q = ScalarQuantizer::new(8, Metric::L2, sq_type).unwrap();
        q.train(&train).unwrap();
        assert_eq!(q.decoded_norm_sq_bound(), None, "{sq_type:?}");
    }
    let mut q = vq_quant::F32Quantizer::new(8, Metric::L2).unwrap();
    q.train(&train).unwrap();
    assert_eq!(q.decoded_norm_sq_bound(), None);
    // Untrained quantizers bound nothing either.
    assert_eq!(ScalarQuantizer::new(8, Metric::L2, SqType::SQ8).unwrap().decoded_norm_sq_bound(), None);
    assert_eq!(ProductQuantizer::new(8, Metric::L2, 2, 8).unwrap().decoded_norm_sq_bound(), None);
}
