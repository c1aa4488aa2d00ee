//! Behaviour of `KMeans::fit` and `Clustering::assign` on small generated data sets.

use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use vq_cluster::{ClusterMembers, Clustering, Error, Init, IterationStats, KMeans, UPDATE_PARTIAL, Warning};
use vq_distance::Error as DError;

/// `per` points around each of `centres` (row-major), Gaussian noise of deviation `sigma`;
/// returns the points and their true labels.
fn planted(centres: &[f32], dim: usize, per: usize, sigma: f32, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, sigma).unwrap();
    let mut data = Vec::new();
    let mut truth = Vec::new();
    for (c, centre) in centres.chunks(dim).enumerate() {
        for _ in 0..per {
            data.extend(centre.iter().map(|v| v + normal.sample(&mut rng)));
            truth.push(c);
        }
    }
    (data, truth)
}

fn uniform(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.random::<f32>()).collect()
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum()
}

/// Adjusted Rand index of two labelings.
fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    let ka = a.iter().max().unwrap() + 1;
    let kb = b.iter().max().unwrap() + 1;
    let mut table = vec![0f64; ka * kb];
    for (&x, &y) in a.iter().zip(b) {
        table[x * kb + y] += 1.0;
    }
    let pairs = |v: f64| v * (v - 1.0) / 2.0;
    let rows: f64 = (0..ka).map(|i| pairs((0..kb).map(|j| table[i * kb + j]).sum())).sum();
    let cols: f64 = (0..kb).map(|j| pairs((0..ka).map(|i| table[i * kb + j]).sum())).sum();
    let index: f64 = table.iter().map(|&v| pairs(v)).sum();
    let expected = rows * cols / pairs(a.len() as f64);
    (index - expected) / ((rows + cols) / 2.0 - expected)
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn planted_clusters_are_recovered() {
    let dim = 16;
    let k = 8;
    // Centres 20 apart on the axes (and one at the origin), noise deviation 0.3 per component.
    let mut centres = vec![0f32; k * dim];
    for c in 1..k {
        centres[c * dim + c] = 20.0;
    }
    let (data, truth) = planted(&centres, dim, 150, 0.3, 7);
    // Random init (the default) can put two seeds in one cluster and stay there: not tested here.
    // Batched k-means++ draws several seeds at once, so it needs about as many rounds as
    // clusters to be as reliable as k-means++ on data this well separated.
    for init in [Init::KMeansPlusPlus, Init::KMeansParallel { rounds: 8 }] {
        let result = KMeans::new(k).iterations(20).nredo(3).init(init.clone()).fit(&data, dim).unwrap();
        // Every true centre has a found centroid close to it, and the matching is one to one.
        let mut matched = vec![false; k];
        for centre in centres.chunks(dim) {
            let (best, d) = result
                .centroids()
                .chunks(dim)
                .enumerate()
                .map(|(j, c)| (j, sq_dist(c, centre)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            // The mean of 150 points deviates by 0.3/√150 per component: ‖·‖² ≈ 0.01.
            assert!(d < 0.5, "{init:?}: centre {centre:?} is {d} from its nearest centroid");
            assert!(!matched[best], "{init:?}: centroid {best} matched twice");
            matched[best] = true;
        }
        let labels: Vec<usize> = result.assign(&data).unwrap().iter().map(|&l| l as usize).collect();
        let ari = adjusted_rand_index(&labels, &truth);
        assert!(ari > 0.99, "{init:?}: adjusted Rand index {ari}");
        assert_eq!(result.sizes().iter().sum::<usize>(), data.len() / dim);
    }
}

#[test]
fn adjusted_rand_index_is_one_only_for_equal_partitions() {
    assert!((adjusted_rand_index(&[0, 0, 1, 1, 2], &[2, 2, 0, 0, 1]) - 1.0).abs() < 1e-12);
    assert!(adjusted_rand_index(&[0, 0, 1, 1, 2, 2], &[0, 1, 0, 1, 0, 1]) < 0.5);
}

#[test]
fn objective_never_increases() {
    let dim = 8;
    let data = uniform(3000, dim, 3);
    for init in [Init::Random, Init::KMeansPlusPlus, Init::default()] {
        let result = KMeans::new(40).iterations(15).init(init.clone()).fit(&data, dim).unwrap();
        let obj = result.objective();
        assert_eq!(obj.len(), 15);
        assert_eq!(result.empty_splits(), 0, "{init:?}: this data should not need splits");
        for (i, w) in obj.windows(2).enumerate() {
            assert!(w[1] <= w[0] * (1.0 + 1e-6), "{init:?}: objective rose at iteration {}: {w:?}", i + 1);
        }
        assert!(obj[14] < obj[0]);
        // The objective is the sum of the squared distances at the assignment step.
        let direct: f64 = data
            .chunks(dim)
            .map(|x| result.centroids().chunks(dim).map(|c| sq_dist(x, c)).fold(f64::MAX, f64::min))
            .sum();
        assert!(direct <= obj[14] * (1.0 + 1e-5), "final centroids are no worse than the last assignment");
    }
    // Spherical: the summed similarity never decreases, centroids have unit norm.
    let result = KMeans::new(20).iterations(10).spherical(true).init(Init::Random).fit(&data, dim).unwrap();
    assert_eq!(result.metric(), vq_distance::Metric::InnerProduct);
    for w in result.objective().windows(2) {
        assert!(w[1] >= w[0] * (1.0 - 1e-6), "spherical objective fell: {w:?}");
    }
    for c in result.centroids().chunks(dim) {
        assert!((c.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn same_seed_gives_the_same_centroids_with_one_and_two_threads() {
    let dim = 12;
    let data: Vec<u8> = uniform(5000, dim, 11).iter().map(|v| (v * 255.0) as u8).collect();
    for init in [Init::Random, Init::KMeansPlusPlus, Init::KMeansParallel { rounds: 4 }] {
        // max_points_per_centroid 80 samples the 5000 points down to 4000.
        let km = KMeans::new(50).iterations(6).seed(99).init(init.clone()).max_points_per_centroid(80).nredo(2);
        let one = in_pool(1, || km.fit(&data, dim).unwrap());
        let two = in_pool(2, || km.fit(&data, dim).unwrap());
        assert_eq!(one.n_used(), 4000);
        let bits = |r: &Clustering| r.centroids().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&one), bits(&two), "{init:?}");
        assert_eq!(one.objective(), two.objective());
        assert_eq!(one.sizes(), two.sizes());
        // And another seed gives other centroids.
        let other = in_pool(2, || km.clone().seed(100).fit(&data, dim).unwrap());
        assert_ne!(bits(&one), bits(&other), "{init:?}");
    }
}

#[test]
fn u8_input_gives_the_same_result_as_its_f32_copy() {
    let dim = 10;
    let data: Vec<u8> = uniform(2000, dim, 5).iter().map(|v| (v * 255.0) as u8).collect();
    let as_f32: Vec<f32> = data.iter().map(|&v| f32::from(v)).collect();
    let km = KMeans::new(30).iterations(8).init(Init::KMeansPlusPlus);
    let a = km.fit(&data, dim).unwrap();
    let b = km.fit(&as_f32, dim).unwrap();
    assert_eq!(a, b);
}

#[test]
fn an_empty_cluster_is_split_from_the_largest_and_none_stays_empty() {
    let dim = 4;
    let a = [0.0f32; 4];
    let b = [10.0f32; 4];
    let (data, _) = planted(&[a, b].concat(), dim, 100, 1.0, 2);
    // Third initial centroid far from everything: nothing is assigned to it at first.
    let init = [a, b, [1000.0; 4]].concat();
    let mut stats: Vec<IterationStats> = Vec::new();
    let result = KMeans::new(3)
        .iterations(10)
        .init(Init::Centroids(init))
        .fit_with_callback(&data, dim, |s| stats.push(*s))
        .unwrap();
    assert_eq!(stats[0].empty_splits, 1, "the far centroid is empty after the first assignment");
    assert!(result.empty_splits() >= 1);
    assert!(result.sizes().iter().all(|&s| s > 0), "sizes {:?}", result.sizes());
    let labels = result.assign(&data).unwrap();
    for c in 0..3 {
        assert!(labels.contains(&c), "cluster {c} is empty after training");
    }
    // The split centroid went to one of the two groups: no centroid is near (1000, …) anymore.
    assert!(result.centroids().iter().all(|&v| v < 100.0));
}

#[test]
fn the_callback_sees_every_iteration_of_every_run_and_the_best_run_is_kept() {
    let dim = 6;
    let data = uniform(1500, dim, 8);
    let mut stats = Vec::new();
    let result = KMeans::new(25)
        .iterations(5)
        .nredo(3)
        .init(Init::Random)
        .fit_with_callback(&data, dim, |s| stats.push(*s))
        .unwrap();
    assert_eq!(stats.len(), 15);
    for (i, s) in stats.iter().enumerate() {
        assert_eq!((s.redo, s.iteration), (i / 5, i % 5));
    }
    assert!(stats.windows(2).all(|w| w[1].seconds >= w[0].seconds));
    let finals: Vec<f64> = stats.iter().filter(|s| s.iteration == 4).map(|s| s.objective).collect();
    assert_eq!(result.redo_objectives(), &finals[..]);
    let best = finals.iter().copied().fold(f64::MAX, f64::min);
    assert_eq!(result.final_objective(), best);
    let kept = finals.iter().position(|&f| f == best).unwrap();
    let kept_run: Vec<f64> = stats[kept * 5..kept * 5 + 5].iter().map(|s| s.objective).collect();
    assert_eq!(result.objective(), &kept_run[..]);
    assert!(finals.iter().any(|&f| f != best), "different seeds should give different runs");
}

#[test]
fn sampling_and_the_too_few_points_warning_are_reported() {
    let dim = 3;
    let data = uniform(1000, dim, 4);
    let r = KMeans::new(10).iterations(2).max_points_per_centroid(20).fit(&data, dim).unwrap();
    assert_eq!((r.n_points(), r.n_used(), r.sampled()), (1000, 200, true));
    assert_eq!(r.warnings(), &[Warning::TooFewPoints { n: 200, k: 10, min_points_per_centroid: 39 }]);
    assert_eq!(r.sizes().iter().sum::<usize>(), 200);
    let r = KMeans::new(10).iterations(2).min_points_per_centroid(5).fit(&data, dim).unwrap();
    assert_eq!((r.n_used(), r.sampled()), (1000, false));
    assert!(r.warnings().is_empty());
}

#[test]
fn bad_input_is_a_typed_error() {
    let data = uniform(20, 2, 1);
    let fit = |km: KMeans, data: &[f32], dim| km.fit(data, dim).unwrap_err();
    assert_eq!(fit(KMeans::new(0), &data, 2), Error::Input(DError::ZeroK));
    assert_eq!(fit(KMeans::new(21), &data, 2), Error::KExceedsPoints { k: 21, n: 20 });
    assert_eq!(fit(KMeans::new(2), &data, 0), Error::Input(DError::ZeroDimension));
    assert_eq!(fit(KMeans::new(2), &data, 3), Error::Input(DError::RaggedBuffer { what: "data", len: 40, dim: 3 }));
    assert_eq!(
        fit(KMeans::new(2).iterations(0), &data, 2),
        Error::Parameter { name: "iterations", what: "must be at least 1".into() }
    );
    assert!(matches!(fit(KMeans::new(2).nredo(0), &data, 2), Error::Parameter { name: "nredo", .. }));
    assert!(matches!(
        fit(KMeans::new(2).max_points_per_centroid(0), &data, 2),
        Error::Parameter { name: "max_points_per_centroid", .. }
    ));
    assert!(matches!(
        fit(KMeans::new(2).init(Init::KMeansParallel { rounds: 0 }), &data, 2),
        Error::Parameter { name: "rounds", .. }
    ));
    assert_eq!(
        fit(KMeans::new(2).init(Init::Centroids(vec![0.0; 3])), &data, 2),
        Error::Parameter { name: "init", what: "expected 4 values (k × dim), got 3".into() }
    );
    assert_eq!(
        fit(KMeans::new(2).init(Init::Centroids(vec![0.0, 1.0, f32::NAN, 0.0])), &data, 2),
        Error::Input(DError::NonFinite { what: "init centroids", row: 1, component: 0 })
    );
    let mut bad = data.clone();
    bad[13] = f32::INFINITY;
    assert_eq!(fit(KMeans::new(2), &bad, 2), Error::Input(DError::NonFinite { what: "data", row: 6, component: 1 }));
    bad[13] = f32::NAN;
    assert_eq!(fit(KMeans::new(2), &bad, 2), Error::Input(DError::NonFinite { what: "data", row: 6, component: 1 }));
    // Finite but huge: squared distances would overflow f32, so the row is refused up front.
    let mut huge = data.clone();
    huge[7] = 1e16;
    assert!(matches!(
        fit(KMeans::new(2), &huge, 2),
        Error::Input(DError::NormOverflow { what: "data", row: 3, squared_norm }) if squared_norm >= 1e32
    ));
    let huge: Vec<f32> = data.iter().map(|v| v * 1e30).collect();
    assert!(matches!(fit(KMeans::new(2), &huge, 2), Error::Input(DError::NormOverflow { .. })));
    // assign checks its input too
    let r = KMeans::new(2).iterations(1).fit(&data, 2).unwrap();
    assert_eq!(r.assign(&data[..3]).unwrap_err(), Error::Input(DError::RaggedBuffer { what: "data", len: 3, dim: 2 }));
    assert!(matches!(r.assign(&bad).unwrap_err(), Error::Input(DError::NonFinite { what: "data", row: 6, .. })));
}

#[test]
fn parameters_read_from_json_with_faiss_names_and_defaults() {
    let km: KMeans = serde_json::from_str(r#"{"k": 64, "niter": 10, "spherical": true}"#).unwrap();
    assert_eq!(km, KMeans::new(64).iterations(10).spherical(true));
    assert_eq!((km.max_points_per_centroid, km.min_points_per_centroid, km.nredo), (256, 39, 1));
    let back: KMeans = serde_json::from_str(&serde_json::to_string(&km.clone().init(Init::Random)).unwrap()).unwrap();
    assert_eq!(back.init, Init::Random);
}

/// `update_means`' documented arithmetic, one component at a time: what vq-gpu's update
/// kernel computes per thread.
fn update_means_as_documented(points: &[f32], dim: usize, members: &ClusterMembers, centroids: &mut [f32]) {
    for c in 0..members.k() {
        let of = members.of(c);
        if of.is_empty() {
            continue;
        }
        for d in 0..dim {
            let mut total = 0f64;
            for group in of.chunks(UPDATE_PARTIAL) {
                let mut part = 0f32;
                for &i in group {
                    part += points[i as usize * dim + d];
                }
                total += f64::from(part);
            }
            centroids[c * dim + d] = (total * (1.0 / of.len() as f64)) as f32;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// `update_means` computes what its doc says, component by component (vq-gpu's kernel
    /// relies on that to give the same bits).
    #[test]
    fn update_means_is_its_documented_arithmetic(
        n in 1usize..400, dim in 1usize..12, k in 1usize..9, seed in any::<u64>(),
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let points: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1e3f32..1e3)).collect();
        // Cluster k - 1 is often empty: its draws go to cluster 0 half the time.
        let labels: Vec<u32> = (0..n)
            .map(|_| {
                let l = rng.random_range(0..k as u32);
                if l + 1 == k as u32 && rng.random::<bool>() { 0 } else { l }
            })
            .collect();
        let members = ClusterMembers::from_labels(&labels, k).unwrap();
        let start: Vec<f32> = (0..k * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let (mut got, mut want) = (start.clone(), start.clone());
        vq_cluster::update_means(&points, dim, &members, &mut got);
        update_means_as_documented(&points, dim, &members, &mut want);
        let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&got), bits(&want));
    }

    /// `assign` agrees with a naive nearest-centroid search: the same label, except where the
    /// naive best and the chosen centroid are within rounding of each other.
    #[test]
    fn assign_matches_a_naive_search(
        dim in 1usize..20, n in 2usize..120, k_frac in 0.05f64..1.0, seed in any::<u64>(), use_u8 in any::<bool>(),
    ) {
        let k = ((n as f64 * k_frac) as usize).max(1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let data: Vec<u8> = (0..n * dim).map(|_| rng.random_range(0..16u8)).collect();
        let as_f32: Vec<f32> = data.iter().map(|&v| f32::from(v)).collect();
        let r = KMeans::new(k).iterations(3).seed(seed).fit(&as_f32, dim).unwrap();
        let (labels, dists) = if use_u8 { r.assign_with_distances(&data).unwrap() } else { r.assign_with_distances(&as_f32).unwrap() };
        prop_assert_eq!(labels.len(), n);
        for (i, x) in as_f32.chunks(dim).enumerate() {
            let all: Vec<f64> = r.centroids().chunks(dim).map(|c| sq_dist(x, c)).collect();
            let (best, best_d) = all.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(j, d)| (j, *d)).unwrap();
            let tol = 1e-4 * (1.0 + best_d);
            let chosen = labels[i] as usize;
            prop_assert!(chosen == best || all[chosen] <= best_d + tol, "point {}: chose {} ({}), best {} ({})", i, chosen, all[chosen], best, best_d);
            prop_assert!((f64::from(dists[i]) - all[chosen]).abs() <= 1e-3 * (1.0 + all[chosen]));
        }
    }
}

#[test]
fn a_run_at_a_fixed_point_stops_early_with_the_centroids_of_a_longer_run() {
    let dim = 5;
    let centres: Vec<f32> = (0..6 * dim).map(|i| ((i * 7) % 11) as f32 * 3.0).collect();
    let (data, _) = planted(&centres, dim, 60, 0.5, 9);
    let long = KMeans::new(6).iterations(100).init(Init::KMeansPlusPlus).fit(&data, dim).unwrap();
    let m = long.objective().len();
    assert!(long.converged() && m < 100, "converged after {m} iterations");
    // A run one iteration shorter does not detect the fixed point but ends at the same place.
    let short = KMeans::new(6).iterations(m - 1).init(Init::KMeansPlusPlus).fit(&data, dim).unwrap();
    assert!(!short.converged());
    assert_eq!(short.centroids(), long.centroids());
    assert_eq!(short.sizes(), long.sizes());
}
