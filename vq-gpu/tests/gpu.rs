//! GPU results against the CPU's exact search. Each test opens device 0 and, where there is no
//! GPU (CI), prints why and returns: the no-device path itself is checked by
//! `no_device_is_an_error_not_a_panic`.

use std::sync::Arc;

use vq_distance::{Metric, Neighbors, knn_exact};
use vq_gpu::{Error, Gpu, GpuFlat, GpuFlatOptions, GpuShards, GpuStorage, MAX_K};

fn gpu_or_skip(test: &str) -> Option<Arc<Gpu>> {
    match Gpu::new(0) {
        Ok(gpu) => Some(gpu),
        Err(Error::NoDevice { reason }) => {
            eprintln!("{test}: skipped, no GPU: {reason}");
            None
        }
        Err(e) => panic!("{test}: a GPU is present but unusable: {e}"),
    }
}

#[test]
fn no_device_is_an_error_not_a_panic() {
    match Gpu::new(0) {
        Ok(gpu) => eprintln!("a GPU is present ({}); the no-device path is not exercised here", gpu.name()),
        Err(Error::NoDevice { reason }) => assert!(!reason.is_empty()),
        Err(e) => panic!("expected NoDevice or a device, got {e}"),
    }
    // An ordinal past the last device is a NoDevice error too, never a panic.
    assert!(matches!(Gpu::new(usize::MAX), Err(Error::NoDevice { .. })));
}

/// Deterministic pseudo-random rows in [-1, 1).
fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n * dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Ids equal except where the CPU's scores at the two positions tie within `rel`; scores within
/// `rel` relative (absolute near zero).
fn assert_close(got: &Neighbors, want: &Neighbors, rel: f32, what: &str) {
    assert_eq!(got.num_queries(), want.num_queries(), "{what}");
    for (q, ((gi, gs), (wi, ws))) in got.iter().zip(want.iter()).enumerate() {
        assert_eq!(gi.len(), wi.len(), "{what} query {q}");
        for j in 0..gi.len() {
            let tol = rel * ws[j].abs().max(1.0);
            assert!((gs[j] - ws[j]).abs() <= tol, "{what} query {q} rank {j}: score {} vs {}", gs[j], ws[j]);
            if gi[j] != wi[j] {
                // A swap is fine only between (near-)tied scores, one tied with the last kept
                // score included (each side may cut between such ids differently).
                let at_cut = ws.last().is_some_and(|&last| (last - ws[j]).abs() <= tol);
                let tied = at_cut || ws.iter().zip(wi).any(|(&s, &id)| id == gi[j] && (s - ws[j]).abs() <= tol);
                assert!(tied, "{what} query {q} rank {j}: id {} vs {}", gi[j], wi[j]);
            }
        }
    }
}

#[test]
fn flat_equals_knn_exact_for_every_metric_and_tiling() {
    let Some(gpu) = gpu_or_skip("flat_equals_knn_exact") else { return };
    let (n, nq, dim) = (5_003, 97, 67);
    let base = rows(n, dim, 1);
    let queries = rows(nq, dim, 2);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        for (k, scratch) in [(1, None), (10, None), (100, Some(256 << 10)), (MAX_K, None)] {
            let options = GpuFlatOptions { storage: GpuStorage::F32, scratch_bytes: scratch };
            let mut index = GpuFlat::new(&gpu, dim, metric, options).unwrap();
            // Two adds: the grown buffer keeps the first rows.
            index.add(&base[..1000 * dim]).unwrap();
            index.add(&base[1000 * dim..]).unwrap();
            let got = index.search(&queries, k).unwrap();
            let mut want_base = base.clone();
            let mut want_queries = queries.clone();
            if metric == Metric::Cosine {
                vq_distance::normalize_l2(&mut want_base, dim).unwrap();
                vq_distance::normalize_l2(&mut want_queries, dim).unwrap();
            }
            let want = knn_exact(&want_base, &want_queries, dim, k, metric).unwrap();
            assert_close(&got, &want, 1e-4, &format!("{metric:?} k={k} scratch={scratch:?}"));
        }
    }
}

/// A filtered search is the exact search over the accepted rows: `knn_exact` of the kept rows,
/// their positions mapped back, padded where fewer than `k` pass (k past the kept count, and a
/// filter that passes nothing).
#[test]
fn filtered_flat_equals_knn_exact_over_the_accepted_rows() {
    let Some(gpu) = gpu_or_skip("filtered_flat") else { return };
    let (n, nq, dim) = (4_099, 23, 19);
    let base = rows(n, dim, 21);
    let queries = rows(nq, dim, 22);
    for metric in [Metric::L2, Metric::InnerProduct] {
        let options = GpuFlatOptions { storage: GpuStorage::F32, scratch_bytes: Some(128 << 10) };
        let mut index = GpuFlat::new(&gpu, dim, metric, options).unwrap();
        index.add(&base).unwrap();
        for every in [1u64, 3, 1000, u64::MAX] {
            let keep = |row: u64| row % every == 7 % every && every != u64::MAX;
            let kept: Vec<usize> = (0..n).filter(|&r| keep(r as u64)).collect();
            let kept_base: Vec<f32> = kept.iter().flat_map(|&r| base[r * dim..(r + 1) * dim].to_vec()).collect();
            for k in [1, 10, 40] {
                let got = index.search_filtered(&queries, k, &keep).unwrap();
                let want = knn_exact(&kept_base, &queries, dim, k, metric).unwrap();
                let rows = want.iter().map(|(ids, scores)| {
                    ids.iter().map(|&i| kept[i as usize] as u64).zip(scores.iter().copied()).collect::<Vec<_>>()
                });
                let want = Neighbors::from_rows(k, metric, rows.collect::<Vec<_>>()).unwrap();
                assert_close(&got, &want, 1e-4, &format!("filtered {metric:?} every={every} k={k}"));
                assert!(got.ids().iter().all(|&id| id == u64::MAX || keep(id)), "a rejected row came back");
            }
        }
    }
}

/// Dropping rows packs the rest in order on the device: the same vectors as the host's kept
/// rows (bit for bit, both storages) and searches equal to knn_exact over them; dropping
/// nothing changes nothing; a mask of the wrong length is an error that changes nothing.
#[test]
fn retained_rows_are_the_kept_rows_in_order() {
    let Some(gpu) = gpu_or_skip("retained_rows") else { return };
    let (n, nq, dim, k) = (3_001, 17, 24, 10);
    let base = rows(n, dim, 31);
    let queries = rows(nq, dim, 32);
    for storage in [GpuStorage::F32, GpuStorage::F16] {
        let mut index = GpuFlat::new(&gpu, dim, Metric::L2, GpuFlatOptions { storage, scratch_bytes: None }).unwrap();
        index.add(&base).unwrap();
        let stored = index.to_host().unwrap();
        assert!(matches!(index.retain_rows(&[true; 3]), Err(Error::Distance(_))));
        assert_eq!(index.retain_rows(&vec![true; n]).unwrap(), 0);
        // Runs of every length: rows whose number has bit 2 or bit 5 set go.
        let keep: Vec<bool> = (0..n).map(|r| r & 0b100100 == 0).collect();
        let kept = keep.iter().filter(|&&k| k).count();
        assert_eq!(index.retain_rows(&keep).unwrap(), n - kept);
        assert_eq!(index.len(), kept);
        let want_rows: Vec<f32> =
            (0..n).filter(|&r| keep[r]).flat_map(|r| stored[r * dim..(r + 1) * dim].to_vec()).collect();
        assert_eq!(index.to_host().unwrap(), want_rows, "{storage:?}");
        let want = knn_exact(&want_rows, &queries, dim, k, Metric::L2).unwrap();
        assert_close(&index.search(&queries, k).unwrap(), &want, 1e-4, &format!("retained {storage:?}"));
        // Everything dropped: an empty index that still takes adds.
        assert_eq!(index.retain_rows(&vec![false; kept]).unwrap(), kept);
        assert!(index.is_empty() && index.search(&queries, 1).unwrap().ids().iter().all(|&i| i == u64::MAX));
        index.add(&base[..dim]).unwrap();
        assert_eq!(index.search(&base[..dim], 1).unwrap().ids(), &[0]);
    }
}

#[test]
fn f16_storage_is_within_half_precision() {
    let Some(gpu) = gpu_or_skip("f16_storage") else { return };
    let (n, nq, dim, k) = (3_000, 50, 128, 10);
    let base = rows(n, dim, 3);
    let queries = rows(nq, dim, 4);
    for metric in [Metric::L2, Metric::InnerProduct] {
        let options = GpuFlatOptions { storage: GpuStorage::F16, scratch_bytes: None };
        let mut index = GpuFlat::new(&gpu, dim, metric, options).unwrap();
        index.add(&base).unwrap();
        let got = index.search(&queries, k).unwrap();
        // The reference searches the f16-rounded vectors in f32: what the device multiplies.
        let round = |v: &[f32]| v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect::<Vec<_>>();
        let want = knn_exact(&round(&base), &round(&queries), dim, k, metric).unwrap();
        assert_close(&got, &want, 1e-3, &format!("f16 {metric:?}"));
        assert_eq!(index.to_host().unwrap(), round(&base));
    }
}

#[test]
fn input_errors_are_typed() {
    let Some(gpu) = gpu_or_skip("input_errors") else { return };
    let mut index = GpuFlat::new(&gpu, 4, Metric::L2, GpuFlatOptions::default()).unwrap();
    index.add(&[0.0; 8]).unwrap();
    assert!(matches!(index.search(&[0.0; 4], MAX_K + 1), Err(Error::KTooLarge { k, max: MAX_K }) if k == MAX_K + 1));
    assert!(matches!(index.search(&[0.0; 4], 0), Err(Error::Distance(_))));
    assert!(matches!(index.search(&[0.0; 5], 1), Err(Error::Distance(_))));
    assert!(matches!(index.add(&[f32::NAN; 4]), Err(Error::Distance(_))));
    // Fewer vectors than k: padding, as the CPU index pads.
    let hits = index.search(&[0.0; 4], 5).unwrap();
    assert_eq!(hits.get(0).unwrap().0, &[0, 1]);
    assert_eq!(hits.ids()[2], u64::MAX);
}

#[test]
fn shards_over_partitions_of_one_gpu_equal_knn_exact() {
    let Some(gpu) = gpu_or_skip("shards") else { return };
    let (n, nq, dim, k) = (4_001, 31, 32, 25);
    let base = rows(n, dim, 5);
    let queries = rows(nq, dim, 6);
    let mut shards =
        GpuShards::new(&[gpu.clone(), gpu.clone(), gpu], dim, Metric::L2, GpuFlatOptions::default()).unwrap();
    shards.add(&base[..1_500 * dim]).unwrap();
    shards.add(&base[1_500 * dim..]).unwrap();
    assert_eq!(shards.len(), n);
    assert!(matches!(shards.add(&[f32::NAN; 32]), Err(Error::Distance(_))));
    assert_eq!(shards.shards().iter().map(GpuFlat::len).sum::<usize>(), n);
    let got = shards.search(&queries, k).unwrap();
    let want = knn_exact(&base, &queries, dim, k, Metric::L2).unwrap();
    assert_close(&got, &want, 1e-4, "shards");
}

#[test]
fn assignment_equals_the_cpu_one() {
    let Some(gpu) = gpu_or_skip("assignment") else { return };
    let (n, k, dim) = (10_000, 300, 24);
    let points = rows(n, dim, 7);
    let centroids = rows(k, dim, 8);
    for metric in [Metric::L2, Metric::InnerProduct] {
        let (mut gl, mut gs) = (vec![0u32; n], vec![0f32; n]);
        vq_gpu::nearest_centroids(&gpu, &points, &centroids, dim, metric, &mut gl, &mut gs).unwrap();
        let (mut cl, mut cs) = (vec![0u32; n], vec![0f32; n]);
        vq_distance::nearest_centroids(&points, &centroids, dim, metric, &mut cl, &mut cs).unwrap();
        for i in 0..n {
            assert!(
                (gs[i] - cs[i]).abs() <= 1e-4 * cs[i].abs().max(1.0),
                "{metric:?} point {i}: {} vs {}",
                gs[i],
                cs[i]
            );
            if gl[i] != cl[i] {
                // Only a near-tie may pick the other centroid.
                let c = |j: u32| &centroids[j as usize * dim..(j as usize + 1) * dim];
                let p = &points[i * dim..(i + 1) * dim];
                let score = |j| vq_distance::score(metric, p, c(j)).unwrap();
                assert!((score(gl[i]) - score(cl[i])).abs() <= 1e-4 * cs[i].abs().max(1.0), "{metric:?} point {i}");
            }
        }
    }
    let (mut l, mut s) = (vec![0u32; 2], vec![0f32; 3]);
    assert!(vq_gpu::nearest_centroids(&gpu, &points[..2 * dim], &centroids, dim, Metric::L2, &mut l, &mut s).is_err());
}

#[test]
fn kmeans_on_the_gpu_equals_the_cpu_fit() {
    let Some(gpu) = gpu_or_skip("kmeans_on_the_gpu") else { return };
    let (n, dim) = (20_000, 16);
    let data = rows(n, dim, 9);
    for spherical in [false, true] {
        let km = vq_cluster::KMeans::new(64).iterations(10).seed(5).spherical(spherical);
        let want = km.fit(&data, dim).unwrap();
        let got = km.fit_with_assigner(&data, dim, &vq_gpu::GpuAssigner::new(&gpu)).unwrap();
        // Labels differ only at near-ties, so the centroids are (nearly) the CPU's.
        let worst = got.centroids().iter().zip(want.centroids()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-3, "spherical {spherical}: centroids differ by {worst}");
        let (g, w) = (got.objective().last().unwrap(), want.objective().last().unwrap());
        assert!((g - w).abs() <= 1e-4 * w.abs(), "objective {g} vs {w}");
    }
}

/// The device update step (a Lloyd session's) gives `update_means`' bits: groups of 64 rows,
/// empty clusters left alone, clusters far above 64 points, dims not a multiple of the block.
#[test]
fn session_update_equals_update_means_bit_for_bit() {
    use vq_cluster::{Assigner, ClusterMembers};
    let Some(gpu) = gpu_or_skip("session_update") else { return };
    let assigner = vq_gpu::GpuAssigner::new(&gpu);
    for (n, dim, k) in [(5_000, 130, 40), (3_000, 7, 1_000), (70, 1, 1)] {
        let points = rows(n, dim, 11);
        // Skewed labels: cluster 0 takes about half the points, some clusters stay empty.
        let labels: Vec<u32> = (0..n as u64)
            .map(|i| if i % 2 == 0 { 0 } else { ((i.wrapping_mul(2654435761) >> 7) % (k as u64)) as u32 / 2 * 2 })
            .collect();
        let members = ClusterMembers::from_labels(&labels, k).unwrap();
        let start = rows(k, dim, 12);
        let mut want = start.clone();
        vq_cluster::update_means(&points, dim, &members, &mut want);
        let mut session = assigner.session(&points, dim, Metric::L2).unwrap().expect("the GPU opens a session");
        let mut got = start.clone();
        session.update(&members, &mut got).unwrap();
        let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "n {n} dim {dim} k {k}");
        // The session's assignment is nearest_centroids' on the resident points.
        let (mut gl, mut gs) = (vec![0u32; n], vec![0f32; n]);
        session.nearest(&start, &mut gl, &mut gs).unwrap();
        let (mut cl, mut cs) = (vec![0u32; n], vec![0f32; n]);
        vq_gpu::nearest_centroids(&gpu, &points, &start, dim, Metric::L2, &mut cl, &mut cs).unwrap();
        // (Tiles may differ between the two calls, so a GEMM's rounding may too.)
        for i in 0..n {
            let tol = 1e-4 * cs[i].abs().max(1.0);
            assert!((gs[i] - cs[i]).abs() <= tol, "n {n} point {i}: {} vs {}", gs[i], cs[i]);
            assert!(gl[i] == cl[i] || (gs[i] - cs[i]).abs() <= tol, "n {n} point {i}: label {} vs {}", gl[i], cl[i]);
        }
        // Wrong lengths are typed errors, not launches past a buffer.
        let short = ClusterMembers::from_labels(&labels[..n - 1], k).unwrap();
        assert!(session.update(&short, &mut got).is_err());
        let short_centroids = got.len() - 1;
        assert!(session.update(&members, &mut got[..short_centroids]).is_err());
    }
}

/// One list codec through `GpuIvf`, for L2, inner product and cosine: CPU → GPU → CPU gives
/// the same lists and fingerprint; searches equal vq-ivf's (within `rel`: Flat's keys are
/// exact, SQ decodes with a fused multiply-add, PQ builds its tables from the residual where
/// vq-ivf sums precomputed terms), with a scratch small enough to force many batches and
/// tiles; adding on the GPU to the same trained state stores the CPU's code for every vector
/// the device puts in the CPU's list (at least 99.9 % of them: near-ties may differ).
fn ivf_codec_round_trips<C: vq_gpu::GpuCodec + 'static>(
    gpu: &Arc<Gpu>,
    what: &str,
    dim: usize,
    codec: impl Fn(Metric) -> C,
) {
    let (n, nq, nlist) = (6_000, 40, 24);
    let base = rows(n, dim, 10);
    let queries = rows(nq, dim, 11);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let mut cpu = vq_ivf::IvfIndex::new(dim, metric, vq_ivf::IvfParams::new(nlist), codec(metric)).unwrap();
        cpu.train(&base).unwrap();
        cpu.add(&base).unwrap();
        // A tiny scratch budget forces many query batches and candidate tiles.
        for scratch in [None, Some(64 << 10)] {
            let index = vq_gpu::GpuIvf::from_cpu(gpu, &cpu, scratch).unwrap();
            for (k, nprobe) in [(1, 1), (10, 3), (50, nlist)] {
                let got = index.search(&queries, k, Some(nprobe)).unwrap();
                let opts = vq_ivf::IvfSearch { nprobe: Some(nprobe), ..Default::default() };
                let want = cpu.search(&queries, k, &opts).unwrap();
                assert_close(
                    &got,
                    &want,
                    1e-4,
                    &format!("{what} {metric:?} k={k} nprobe={nprobe} scratch={scratch:?}"),
                );
                // Filtered: the CPU's filtered search (rejected entries never scored).
                let keep = |id: u64| id % 3 == 1;
                let got = index.search_filtered(&queries, k, Some(nprobe), &keep).unwrap();
                let want = cpu.search(&queries, k, &vq_ivf::IvfSearch { filter: Some(&keep), ..opts }).unwrap();
                assert_close(&got, &want, 1e-4, &format!("{what} {metric:?} k={k} nprobe={nprobe} filtered"));
            }
            let back = index.to_cpu().unwrap();
            assert_eq!(back.fingerprint(), cpu.fingerprint(), "{what}");
            assert_eq!(back.list_ids(3), cpu.list_ids(3));
            assert_eq!(back.list_codes(3), cpu.list_codes(3));
            // A removal on both sides: the same lists after, and the same answers.
            let (mut index, mut cpu) = (index, cpu.clone());
            let gone: Vec<u64> = (0..n as u64).filter(|id| id % 7 < 3).chain([u64::MAX]).collect();
            assert_eq!(index.remove_ids(&gone).unwrap(), cpu.remove_ids(&gone), "{what}");
            assert_eq!(index.len(), cpu.len());
            let back = index.to_cpu().unwrap();
            for l in 0..nlist {
                assert_eq!(back.list_ids(l), cpu.list_ids(l), "{what} list {l}");
                assert_eq!(back.list_codes(l), cpu.list_codes(l), "{what} list {l}");
            }
            let opts = vq_ivf::IvfSearch { nprobe: Some(5), ..Default::default() };
            let (got, want) = (index.search(&queries, 10, Some(5)).unwrap(), cpu.search(&queries, 10, &opts).unwrap());
            assert_close(&got, &want, 1e-4, &format!("{what} {metric:?} after removal"));
            assert_eq!(index.remove_ids(&gone).unwrap(), 0, "{what}: removed twice");
            // A removed id is free again; a kept one is still taken.
            index.add_with_ids(&base[..dim], &[gone[0]]).unwrap();
            let taken = index.add_with_ids(&base[..dim], &[3]);
            assert!(matches!(taken, Err(Error::Ivf(vq_ivf::Error::DuplicateId(3)))), "{what}: {taken:?}");
        }
        let cs = {
            use vq_quant::Quantizer as _;
            cpu.codec().quantizer().code_size()
        };
        let lists = vec![(Vec::new(), Vec::new()); nlist];
        let (params, trained) = (vq_ivf::IvfParams::new(nlist), cpu.codec().clone());
        let empty =
            vq_ivf::IvfIndex::from_lists(dim, metric, params, trained, cpu.centroids().to_vec(), lists, 0).unwrap();
        let mut on_gpu = vq_gpu::GpuIvf::from_cpu(gpu, &empty, None).unwrap();
        on_gpu.add(&base).unwrap();
        let filled = on_gpu.to_cpu().unwrap();
        let (mut same, mut total) = (0, 0);
        for l in 0..nlist {
            let (gi, gc) = (filled.list_ids(l).unwrap(), filled.list_codes(l).unwrap());
            let (ci, cc) = (cpu.list_ids(l).unwrap(), cpu.list_codes(l).unwrap());
            for (j, id) in gi.iter().enumerate() {
                total += 1;
                if let Some(pos) = ci.iter().position(|x| x == id) {
                    assert_eq!(&gc[j * cs..(j + 1) * cs], &cc[pos * cs..(pos + 1) * cs], "{what} id {id}");
                    same += 1;
                }
            }
        }
        assert_eq!(total, n, "{what}");
        assert!(same * 1000 >= n * 999, "{what} {metric:?}: only {same} of {n} in the CPU's list");
    }
}

#[test]
fn ivf_flat_round_trips_and_searches_as_vq_ivf() {
    let Some(gpu) = gpu_or_skip("ivf_flat_round_trips") else { return };
    ivf_codec_round_trips(&gpu, "IVF-Flat", 20, |metric| vq_ivf::FlatCodec::new(20, metric).unwrap());
}

#[test]
fn ivf_sq_round_trips_and_searches_as_vq_ivf() {
    let Some(gpu) = gpu_or_skip("ivf_sq_round_trips") else { return };
    // dim 21: SQ6's last component crosses into its code's last byte, SQ4's last byte is half used.
    for sq in vq_quant::SqType::ALL {
        ivf_codec_round_trips(&gpu, &format!("IVF-{sq:?}"), 21, |metric| vq_ivf::SqCodec::new(21, metric, sq).unwrap());
    }
}

#[test]
fn ivf_pq_round_trips_and_searches_as_vq_ivf() {
    let Some(gpu) = gpu_or_skip("ivf_pq_round_trips") else { return };
    let (dim, m) = (32, 8);
    ivf_codec_round_trips(&gpu, "IVF-PQ8", dim, |metric| vq_ivf::PqCodec::new(dim, metric, m, 8).unwrap());
    // 4-bit codes and tables past shared memory are refused, not launched.
    let pq4 = vq_ivf::PqCodec::new(dim, Metric::L2, m, 4).unwrap();
    let params = vq_ivf::IvfParams::new(4);
    assert!(vq_gpu::GpuIvfPq::with_codec(&gpu, dim, Metric::L2, params.clone(), pq4, None).is_err());
    let wide = vq_ivf::PqCodec::new(256, Metric::L2, 256, 8).unwrap(); // 257 KiB of table: no device has it
    assert!(matches!(
        vq_gpu::GpuIvfPq::with_codec(&gpu, 256, Metric::L2, params.clone(), wide, None),
        Err(Error::TooLarge { .. })
    ));
    // PQ64 at dim 128 (66 KiB of table): past the 48 KiB default, on devices that let the scan
    // opt in to more (every one since Volta).
    let pq64 = |metric| vq_ivf::PqCodec::new(128, metric, 64, 8).unwrap();
    match vq_gpu::GpuIvfPq::with_codec(&gpu, 128, Metric::L2, params, pq64(Metric::L2), None) {
        Ok(_) => ivf_codec_round_trips(&gpu, "IVF-PQ64", 128, pq64),
        Err(Error::TooLarge { got, max, .. }) => eprintln!("PQ64 skipped: {got} bytes of table, {max} on this device"),
        Err(e) => panic!("PQ64: {e}"),
    }
}
