//! Data shared by the integration tests.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

/// `n` points around 50 Gaussian centres in `dim` dimensions (the centres depend on `seed`).
pub(crate) fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let unit = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<f32> = (0..50 * dim).map(|_| 3.0 * unit.sample(&mut rng)).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.random_range(0..50usize);
        out.extend((0..dim).map(|j| centres[c * dim + j] + unit.sample(&mut rng)));
    }
    out
}
