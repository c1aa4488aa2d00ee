//! The `gpu` feature through the `Index` trait. Without a GPU (CI) every entry point must
//! return `vq::Error::Gpu(NoDevice)` and the device tests print why they skip.
#![cfg(feature = "gpu")]

use std::sync::Arc;

use vq::gpu::{GpuFlatIndex, index_cpu_to_gpu, index_gpu_to_cpu, open_gpu};
use vq::vq_gpu::{Gpu, GpuFlatOptions};
use vq::{Error, Index, Metric, SearchParams};

fn gpu_or_skip(test: &str) -> Option<Arc<Gpu>> {
    match open_gpu(0) {
        Ok(gpu) => Some(gpu),
        Err(Error::Gpu(vq::vq_gpu::Error::NoDevice { reason })) => {
            eprintln!("{test}: skipped, no GPU: {reason}");
            None
        }
        Err(e) => panic!("{test}: a GPU is present but unusable: {e}"),
    }
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

#[test]
fn no_device_is_a_typed_vq_error() {
    match open_gpu(0) {
        Ok(gpu) => eprintln!("a GPU is present ({}); the no-device path is not exercised here", gpu.name()),
        Err(Error::Gpu(vq::vq_gpu::Error::NoDevice { reason })) => {
            assert!(!reason.is_empty());
            // The message names what is missing.
            let msg = open_gpu(0).unwrap_err().to_string();
            assert!(msg.contains("no CUDA device"), "{msg}");
        }
        Err(e) => panic!("expected Gpu(NoDevice) or a device, got {e}"),
    }
    assert!(matches!(open_gpu(usize::MAX), Err(Error::Gpu(vq::vq_gpu::Error::NoDevice { .. }))));
}

/// GPU results against the CPU Flat index's, with external ids from `add_with_ids`.
fn assert_close(got: &vq::Neighbors, want: &vq::Neighbors, rel: f32) {
    for (q, ((gi, gs), (wi, ws))) in got.iter().zip(want.iter()).enumerate() {
        assert_eq!(gi.len(), wi.len(), "query {q}");
        for j in 0..gi.len() {
            let tol = rel * ws[j].abs().max(1.0);
            assert!((gs[j] - ws[j]).abs() <= tol, "query {q} rank {j}: {} vs {}", gs[j], ws[j]);
            // Near-ties, one with the last kept score included (each side may cut between
            // such ids differently).
            let at_cut = ws.last().is_some_and(|&last| (last - ws[j]).abs() <= tol);
            let tied =
                gi[j] == wi[j] || at_cut || ws.iter().zip(wi).any(|(&s, &id)| id == gi[j] && (s - ws[j]).abs() <= tol);
            assert!(tied, "query {q} rank {j}: id {} vs {}", gi[j], wi[j]);
        }
    }
}

#[test]
fn flat_moves_to_the_gpu_and_back_exactly() {
    let Some(gpu) = gpu_or_skip("flat_moves_to_the_gpu_and_back") else { return };
    let (n, nq, dim) = (2_000, 40, 24);
    let base = rows(n, dim, 1);
    let queries = rows(nq, dim, 2);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let mut cpu = vq::index_factory(dim, "Flat", metric).unwrap();
        cpu.add(&base[..500 * dim]).unwrap();
        let ids: Vec<u64> = (0..(n - 500) as u64).map(|i| 10_000 + 3 * i).collect();
        cpu.add_with_ids(&base[500 * dim..], &ids).unwrap();
        let mut gpu_index = index_cpu_to_gpu(&gpu, cpu.as_ref()).unwrap();
        assert_eq!((gpu_index.len(), gpu_index.spec().to_string()), (n, "Flat".to_string()));
        // A filter over external ids (dense below 500, sparse above) passing about half.
        let even = |id: u64| id.is_multiple_of(2);
        for k in [1, 10, 100] {
            assert_close(&gpu_index.search(&queries, k).unwrap(), &cpu.search(&queries, k).unwrap(), 1e-4);
            let params = SearchParams { k, filter: Some(&even), ..Default::default() };
            let got = gpu_index.search_with(&queries, &params).unwrap();
            assert_close(&got, &cpu.search_with(&queries, &params).unwrap(), 1e-4);
            assert!(got.ids().iter().all(|&id| id == u64::MAX || even(id)));
        }
        // Back to the CPU: the same file bytes as the original (vectors, ids, next id).
        let back = index_gpu_to_cpu(gpu_index.as_ref()).unwrap();
        assert_eq!(vq::write_index_to_bytes(back.as_ref()).unwrap(), vq::write_index_to_bytes(cpu.as_ref()).unwrap());
        assert_eq!(back.fingerprint(), cpu.fingerprint());
        // Adds continue the id sequence on both sides alike.
        gpu_index.add(&queries[..dim]).unwrap();
        cpu.add(&queries[..dim]).unwrap();
        assert_eq!(gpu_index.search(&queries[..dim], 1).unwrap().ids(), cpu.search(&queries[..dim], 1).unwrap().ids());
        // Removal on both sides: the same count, answers and file bytes after.
        let gone: Vec<u64> = (0..400).chain((0..300).map(|i| 10_000 + 6 * i)).collect();
        assert_eq!(gpu_index.remove_ids(&gone).unwrap(), cpu.remove_ids(&gone).unwrap());
        assert_close(&gpu_index.search(&queries, 10).unwrap(), &cpu.search(&queries, 10).unwrap(), 1e-4);
        let back = index_gpu_to_cpu(gpu_index.as_ref()).unwrap();
        assert_eq!(vq::write_index_to_bytes(back.as_ref()).unwrap(), vq::write_index_to_bytes(cpu.as_ref()).unwrap());
    }
}

#[test]
fn gpu_index_errors_are_typed() {
    let Some(gpu) = gpu_or_skip("gpu_index_errors") else { return };
    let mut index = GpuFlatIndex::new(&gpu, 4, Metric::L2, GpuFlatOptions::default()).unwrap();
    index.add(&[0.0; 8]).unwrap();
    assert!(matches!(index.search(&[0.0; 4], 0), Err(Error::Distance(_))));
    assert!(matches!(index.search(&[0.0; 5], 1), Err(Error::Distance(_))));
    assert!(matches!(index.search(&[0.0; 4], vq::gpu::MAX_K + 1), Err(Error::Gpu(_))));
    assert!(matches!(index.add(&[f32::NAN; 4]), Err(Error::Distance(_))));
    assert!(matches!(index.add_with_ids(&[1.0; 4], &[0]), Err(Error::DuplicateId(0))));
    // A filter: the nearest accepted vector, and padding when none is accepted.
    let not_zero = |id: u64| id != 0;
    let params = SearchParams { k: 2, filter: Some(&not_zero), ..Default::default() };
    assert_eq!(index.search_with(&[0.0; 4], &params).unwrap().ids(), &[1, u64::MAX]);
    let none = |_: u64| false;
    let params = SearchParams { k: 1, filter: Some(&none), ..Default::default() };
    assert_eq!(index.search_with(&[0.0; 4], &params).unwrap().ids(), &[u64::MAX]);
    let hnsw = vq::index_factory(4, "HNSW8", Metric::L2).unwrap();
    assert!(matches!(index_cpu_to_gpu(&gpu, hnsw.as_ref()), Err(Error::Unsupported { .. })));
}

#[test]
fn ivf_flat_moves_to_the_gpu_and_back_exactly() {
    let Some(gpu) = gpu_or_skip("ivf_flat_moves_to_the_gpu_and_back") else { return };
    let (n, nq, dim) = (5_000, 50, 32);
    let base = rows(n, dim, 3);
    let queries = rows(nq, dim, 4);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let mut cpu = vq::index_factory(dim, "IVF32,Flat", metric).unwrap();
        cpu.train(&base).unwrap();
        cpu.add(&base[..3_000 * dim]).unwrap();
        cpu.add_with_ids(&base[3_000 * dim..], &(0..2_000u64).map(|i| 1_000_000 - i).collect::<Vec<_>>()).unwrap();
        let gpu_index = index_cpu_to_gpu(&gpu, cpu.as_ref()).unwrap();
        assert_eq!(gpu_index.fingerprint(), cpu.fingerprint());
        for (k, nprobe) in [(1, 1), (10, 4), (100, 32), (vq::gpu::MAX_K, 8)] {
            let params = SearchParams { k, nprobe: Some(nprobe), ..Default::default() };
            let got = gpu_index.search_with(&queries, &params).unwrap();
            let want = cpu.search_with(&queries, &params).unwrap();
            assert_close(&got, &want, 1e-4);
            let in_range = |id: u64| (1_000..999_500).contains(&id);
            let params = SearchParams { filter: Some(&in_range), ..params };
            assert_close(
                &gpu_index.search_with(&queries, &params).unwrap(),
                &cpu.search_with(&queries, &params).unwrap(),
                1e-4,
            );
        }
        let back = index_gpu_to_cpu(gpu_index.as_ref()).unwrap();
        assert_eq!(vq::write_index_to_bytes(back.as_ref()).unwrap(), vq::write_index_to_bytes(cpu.as_ref()).unwrap());
        // Removal on both sides: the same file bytes after.
        let (mut gpu_index, mut cpu_after) =
            (gpu_index, vq::read_index_from_bytes(&vq::write_index_to_bytes(cpu.as_ref()).unwrap()).unwrap());
        let gone: Vec<u64> = (0..1_000).chain(999_000..999_900).collect();
        assert_eq!(gpu_index.remove_ids(&gone).unwrap(), cpu_after.remove_ids(&gone).unwrap());
        let back = index_gpu_to_cpu(gpu_index.as_ref()).unwrap();
        assert_eq!(
            vq::write_index_to_bytes(back.as_ref()).unwrap(),
            vq::write_index_to_bytes(cpu_after.as_ref()).unwrap()
        );

        // Trained (assignment on the GPU) and filled on the GPU: with every list probed the
        // search is exhaustive, so it answers as the CPU's whatever near-ties moved.
        let mut on_gpu = vq::gpu::GpuIvfFlatIndex::new(&gpu, dim, metric, vq::vq_ivf::IvfParams::new(32)).unwrap();
        assert!(matches!(on_gpu.add(&base[..dim]), Err(Error::NotTrained { .. })));
        on_gpu.train(&base).unwrap();
        assert_ne!(on_gpu.fingerprint(), 0);
        on_gpu.add(&base[..3_000 * dim]).unwrap();
        on_gpu.add_with_ids(&base[3_000 * dim..], &(0..2_000u64).map(|i| 1_000_000 - i).collect::<Vec<_>>()).unwrap();
        assert!(matches!(on_gpu.add_with_ids(&base[..dim], &[7]), Err(Error::DuplicateId(7))));
        let params = SearchParams { k: 10, nprobe: Some(32), ..Default::default() };
        assert_close(
            &on_gpu.search_with(&queries, &params).unwrap(),
            &cpu.search_with(&queries, &params).unwrap(),
            1e-4,
        );
    }
}

/// A CPU index given to `index_gpu_to_cpu` comes back as a copy (no device needed).
#[test]
fn gpu_to_cpu_of_a_cpu_index_is_a_copy() {
    let mut cpu = vq::index_factory(4, "Flat", Metric::L2).unwrap();
    cpu.add(&[0.0, 0.0, 0.0, 1.0, 5.0, 5.0, 5.0, 5.0]).unwrap();
    let copy = index_gpu_to_cpu(cpu.as_ref()).unwrap();
    assert_eq!(copy.search(&[5.0; 4], 2).unwrap(), cpu.search(&[5.0; 4], 2).unwrap());
}

/// `GPU[{ordinal}],{spec}` factory strings: kinds without a GPU version are refused before any
/// device is opened; the others are GPU indexes (or `Gpu(NoDevice)` without a GPU) that answer
/// as the CPU index of the same spec.
#[test]
fn the_factory_spells_gpu_indexes() {
    for spec in [
        "GPU,HNSW32,Flat",
        "GPU,Flat,RFlat",
        "GPU,IVF64_HNSW32,Flat",
        "GPU,OPQ4,IVF8,Flat",
        "GPU,IVF16,PQ4x4",
        "GPU,IVF16,PQ4x4fs",
    ] {
        match vq::index_factory(8, spec, Metric::L2) {
            Err(Error::Unsupported { what, .. }) => assert!(what.contains("GPU version"), "{spec}: {what}"),
            other => panic!("{spec:?}: {:?}", other.map(|i| i.spec())),
        }
    }
    assert!(matches!(vq::index_factory(8, "GPUx,Flat", Metric::L2), Err(Error::Spec(_))));
    let (dim, n) = (8, 2_000);
    let data = rows(n, dim, 21);
    let cases = [
        ("GPU,Flat", "Flat"),
        ("GPU0,IVF16,Flat", "IVF16,Flat"),
        ("GPU,IVF16,SQ8", "IVF16,SQ8"),
        ("GPU,IVF16,SQfp16", "IVF16,SQfp16"),
        ("GPU,IVF16,SQ6", "IVF16,SQ6"),
        ("GPU,IVF16,SQ4U", "IVF16,SQ4U"),
        ("GPU,IVF16,SQbf16", "IVF16,SQbf16"),
        ("GPU,IVF16,PQ4", "IVF16,PQ4"),
    ];
    for (spec, cpu_spec) in cases {
        let mut gpu = match vq::index_factory(dim, spec, Metric::L2) {
            Ok(index) => index,
            Err(Error::Gpu(vq::vq_gpu::Error::NoDevice { reason })) => {
                eprintln!("the_factory_spells_gpu_indexes: {spec} skipped, no GPU: {reason}");
                continue;
            }
            Err(e) => panic!("{spec}: {e}"),
        };
        assert_eq!(gpu.spec().to_string(), cpu_spec, "a GPU index keeps its CPU spec");
        gpu.train(&data).unwrap();
        // The CPU twin: the trained, empty GPU index brought back (for IVF, the same centroids).
        let mut cpu = index_gpu_to_cpu(gpu.as_ref()).unwrap();
        assert_eq!(cpu.spec().to_string(), cpu_spec);
        gpu.add(&data).unwrap();
        cpu.add(&data).unwrap();
        let params = SearchParams { k: 10, nprobe: Some(4), ..Default::default() };
        let (g, c) = (
            gpu.search_with(&data[..50 * dim], &params).unwrap(),
            cpu.search_with(&data[..50 * dim], &params).unwrap(),
        );
        assert_close(&g, &c, 1e-4);
    }
}
