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

/// `distinct` clustered points, then `copies` rounds of `groups` more (`seed` as in
/// [`clustered`]): the base, and the groups' vectors. Id `distinct + r · groups + g` is a copy
/// of group `g`'s vector.
#[allow(dead_code)] // (not every test binary holds copies)
pub(crate) fn with_copies(
    distinct: usize,
    groups: usize,
    copies: usize,
    dim: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let points = clustered(distinct + groups, dim, seed);
    let (mut base, special) = (points[..distinct * dim].to_vec(), points[distinct * dim..].to_vec());
    for _ in 0..copies {
        base.extend_from_slice(&special);
    }
    (base, special)
}

/// A rayon pool of `threads` threads.
#[allow(dead_code)] // (not every test binary builds in a pool of its own)
pub(crate) fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}
