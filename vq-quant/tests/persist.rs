//! `FlatCodes` through container sections, its filtered search and `retain`, and hostile
//! quantizer sections: sizes declared by a file never allocate beyond what its sections back,
//! and many mutations of valid sections load as errors or usable quantizers, never panics.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter, ElementType, SectionKind};
use vq_quant::{
    Error, FlatCodes, OpqParams, OpqQuantizer, PqParams, ProductQuantizer, Quantizer, RaBitQuantizer, ScalarQuantizer,
    SqType,
};

fn points(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * dim).map(|i| rng.random_range(-1.0f32..1.0) + (i % dim) as f32 * 0.1).collect()
}

/// A container written by `fill`, opened again.
fn container(dir: &Path, name: &str, fill: impl FnOnce(&mut ContainerWriter)) -> ContainerReader {
    let path = dir.join(name);
    let mut w = ContainerWriter::create(&path).unwrap();
    fill(&mut w);
    w.finish().unwrap();
    ContainerReader::open(&path).unwrap()
}

fn flat<Q: Quantizer>(mut q: Q, data: &[f32]) -> FlatCodes<Q> {
    q.train(data).unwrap();
    let mut f = FlatCodes::new(q);
    f.add(data).unwrap();
    f
}

fn round_trip<Q: Quantizer>(f: &FlatCodes<Q>, dir: &Path, queries: &[f32]) {
    let name = f.quantizer().name();
    let r = container(dir, "flat.vq", |w| f.write_sections(w, "idx").unwrap());
    let back = FlatCodes::<Q>::read_sections(&r, "idx").unwrap();
    assert_eq!(back.codes(), f.codes(), "{name}");
    // Whole codes in row order, however the store holds them.
    assert_eq!(r.array::<u8>("idx.codes").unwrap(), &f.codes()[..], "{name}");
    assert_eq!(back.memory_usage(), f.codes().len() + back.quantizer().memory_bytes(), "{name}");
    assert_eq!(back.quantizer().name(), name);
    assert_eq!(back.search(queries, 7).unwrap(), f.search(queries, 7).unwrap(), "{name}");
    let a =
        f.quantizer().code_distance(&f.codes()[..f.quantizer().code_size()], &f.codes()[f.quantizer().code_size()..]);
    let b = back
        .quantizer()
        .code_distance(&f.codes()[..f.quantizer().code_size()], &f.codes()[f.quantizer().code_size()..]);
    assert_eq!(a.to_bits(), b.to_bits(), "{name}: code_distance after loading");
}

#[test]
fn flat_codes_round_trip_through_sections() {
    let dim = 16;
    let data = points(400, dim, 1);
    let queries = points(5, dim, 2);
    let dir = tempfile::tempdir().unwrap();
    round_trip(
        &flat(ScalarQuantizer::new(dim, Metric::InnerProduct, SqType::SQ8).unwrap(), &data),
        dir.path(),
        &queries,
    );
    round_trip(&flat(ScalarQuantizer::new(dim, Metric::L2, SqType::FP16).unwrap(), &data), dir.path(), &queries);
    round_trip(&flat(ScalarQuantizer::new(dim, Metric::Cosine, SqType::SQ4U).unwrap(), &data), dir.path(), &queries);
    let pq = PqParams { iterations: 4, ..PqParams::new(4, 6) };
    round_trip(&flat(ProductQuantizer::with_params(dim, Metric::L2, pq.clone()).unwrap(), &data), dir.path(), &queries);
    let opq = OpqParams { niter: 2, niter_pq_0: 2, pq, ..OpqParams::new(4, 6) };
    round_trip(&flat(OpqQuantizer::with_params(dim, Metric::Cosine, opq).unwrap(), &data), dir.path(), &queries);
    // Multi-bit RaBitQ, whose codes the store splits (from 64 dimensions), and one-bit.
    let (wide, wide_queries) = (points(300, 64, 4), points(5, 64, 5));
    for bits in [1, 3] {
        let q = RaBitQuantizer::new(64, Metric::L2).unwrap().with_bits(bits).unwrap();
        round_trip(&flat(q, &wide), dir.path(), &wide_queries);
    }
    // An empty, untrained index too.
    let empty = FlatCodes::new(ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap());
    let r = container(dir.path(), "empty.vq", |w| empty.write_sections(w, "e").unwrap());
    let back = FlatCodes::<ScalarQuantizer>::read_sections(&r, "e").unwrap();
    assert!(back.is_empty() && !back.quantizer().is_trained());
}

#[test]
fn flat_codes_read_refuses_codes_that_do_not_fit() {
    let dim = 8;
    let data = points(50, dim, 3);
    let dir = tempfile::tempdir().unwrap();
    let f = flat(ScalarQuantizer::new(dim, Metric::L2, SqType::FP16).unwrap(), &data);
    let with_codes = |name: &str, codes: &[u8]| {
        let r = container(dir.path(), name, |w| {
            f.quantizer().write_sections(w, "x.quantizer").unwrap();
            w.add_array("x.codes", 1, codes).unwrap();
        });
        FlatCodes::<ScalarQuantizer>::read_sections(&r, "x")
    };
    assert!(with_codes("ok.vq", &f.codes()).is_ok(), "the unforged sections load");
    let r = with_codes("short.vq", &f.codes()[1..]);
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    // FP16 codes may hold an infinity or NaN: they would score NaN.
    for bits in [0x7c00u16, 0xfe00] {
        let mut codes = f.codes().to_vec();
        codes[2 * 17..2 * 17 + 2].copy_from_slice(&bits.to_le_bytes());
        let r = with_codes("nan.vq", &codes);
        assert!(matches!(&r, Err(Error::Corrupt { what, .. }) if what.contains("code 2")), "{r:?}");
    }
    // Codes for an untrained quantizer.
    let untrained = ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap();
    let r = container(dir.path(), "untrained.vq", |w| {
        untrained.write_sections(w, "u.quantizer").unwrap();
        w.add_array("u.codes", 1, &[0u8; 16]).unwrap();
    });
    assert!(matches!(FlatCodes::<ScalarQuantizer>::read_sections(&r, "u"), Err(Error::Corrupt { .. })));
}

#[test]
fn retain_drops_the_rejected_rows_and_keeps_the_order() {
    let dim = 8;
    let data = points(100, dim, 4);
    let mut f = flat(ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap(), &data);
    let size = f.quantizer().code_size();
    let before = f.codes().to_vec();
    let mut seen = Vec::new();
    let removed = f.retain(|row| {
        seen.push(row);
        row % 3 != 0
    });
    assert_eq!(seen, (0..100).collect::<Vec<_>>(), "each position once, in order");
    assert_eq!(removed, 34);
    assert_eq!(f.len(), 66);
    let expected: Vec<u8> =
        before.chunks_exact(size).enumerate().filter(|(row, _)| row % 3 != 0).flat_map(|(_, c)| c.to_vec()).collect();
    assert_eq!(f.codes(), &expected[..]);
    // Row 1 moved to position 0: the query of row 1 finds it there.
    let hits = f.search(&data[dim..2 * dim], 1).unwrap();
    assert_eq!(hits.get(0).unwrap().0, [0]);
    assert_eq!(f.retain(|_| true), 0);
    assert_eq!(f.retain(|_| false), 66);
    assert!(f.is_empty());
}

/// The filtered search against a twin: a `FlatCodes` holding only the rows that pass, searched
/// unfiltered (the blocked kernel), its ids mapped back to the original rows.
fn check_filtered<Q: Quantizer + Clone>(f: &FlatCodes<Q>, queries: &[f32], keep: &(dyn Fn(usize) -> bool + Sync)) {
    let kept: Vec<usize> = (0..f.len()).filter(|&r| keep(r)).collect();
    let mut twin = f.clone();
    twin.retain(keep);
    assert_eq!(twin.len(), kept.len());
    for k in [1, 10, f.len() + 1] {
        let got = f.search_filtered(queries, k, Some(keep)).unwrap();
        let want = twin.search(queries, k).unwrap();
        for ((gi, gs), (wi, ws)) in got.iter().zip(want.iter()) {
            let mapped: Vec<u64> = wi.iter().map(|&i| kept[i as usize] as u64).collect();
            assert_eq!(gi, &mapped[..], "{} k = {k}", f.quantizer().name());
            assert_eq!(gi.len(), kept.len().min(k));
            for (a, b) in gs.iter().zip(ws) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}

#[test]
fn filtered_search_equals_a_brute_force_twin() {
    let dim = 16;
    let data = points(700, dim, 5);
    let queries = points(6, dim, 6);
    let sq = flat(ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap(), &data);
    let pq = flat(
        ProductQuantizer::with_params(dim, Metric::InnerProduct, PqParams { iterations: 3, ..PqParams::new(4, 8) })
            .unwrap(),
        &data,
    );
    let filters: [&(dyn Fn(usize) -> bool + Sync); 4] =
        [&|r| r % 3 == 1, &|r| r < 5, &|r| r == 699 || r == 256, &|r| r % 257 != 0];
    for keep in filters {
        check_filtered(&sq, &queries, keep);
        check_filtered(&pq, &queries, keep);
    }
    // Everything passing is the plain search; nothing passing is empty rows.
    assert_eq!(sq.search_filtered(&queries, 9, Some(&|_| true)).unwrap(), sq.search(&queries, 9).unwrap());
    let none = sq.search_filtered(&queries, 9, Some(&|_| false)).unwrap();
    assert!(none.iter().all(|(ids, _)| ids.is_empty()));
    assert!(sq.search_filtered(&queries, 0, Some(&|_| true)).is_err());
}

#[test]
fn sections_declaring_a_huge_dimension_allocate_nothing_until_used() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 1usize << 24;
    for (t, ranges) in [("FP16", 0), ("BF16", 0), ("SQ4U", 1)] {
        let r = container(dir.path(), "huge.vq", |w| {
            let params = serde_json::json!({ "sq_type": t, "dim": dim, "metric": "ip", "clip": null, "trained": true });
            w.add_json("q.sq", 1, &params).unwrap();
            w.add_array("q.vmin", 1, &vec![0.0f32; ranges]).unwrap();
            w.add_array("q.step", 1, &vec![0.5f32; ranges]).unwrap();
        });
        let file = std::fs::metadata(r.path()).unwrap().len() as usize;
        let q = ScalarQuantizer::read_sections(&r, "q").unwrap();
        assert_eq!(q.dim(), dim);
        // The per-dimension code-to-code parameters (2 · 4 · 2^24 bytes) wait for first use.
        assert!(q.memory_bytes() < 4 * file, "{t}: {} bytes held after reading {file}", q.memory_bytes());
    }
    // Built on first use, it gives what the eagerly built one gives.
    let small = 24;
    let data = points(60, small, 7);
    for t in [SqType::FP16, SqType::SQ4U, SqType::SQ8] {
        let mut q = ScalarQuantizer::new(small, Metric::L2, t).unwrap();
        q.train(&data).unwrap();
        let r = container(dir.path(), "small.vq", |w| q.write_sections(w, "q").unwrap());
        let back = ScalarQuantizer::read_sections(&r, "q").unwrap();
        let mut codes = vec![0u8; 2 * q.code_size()];
        q.encode(&data[..2 * small], &mut codes).unwrap();
        let (a, b) = codes.split_at(q.code_size());
        assert_eq!(back.code_distance(a, b).to_bits(), q.code_distance(a, b).to_bits(), "{t}");
        assert_eq!(back.memory_bytes(), q.memory_bytes(), "{t}: the table is held once built");
    }
}

#[test]
fn pq_and_opq_sizes_that_overflow_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let huge = 1usize << 61;
    let r = container(dir.path(), "pq.vq", |w| {
        let meta = serde_json::json!({ "quantizer": "pq", "dim": huge, "metric": "l2",
            "params": { "m": huge, "nbits": 8 }, "trained": false });
        w.add_json("q.meta", 1, &meta).unwrap();
        w.add_array::<f32>("q.centroids", 1, &[]).unwrap();
    });
    let e = ProductQuantizer::read_sections(&r, "q");
    assert!(matches!(e, Err(Error::Corrupt { .. })), "{e:?}");
    let r = container(dir.path(), "opq.vq", |w| {
        let params = serde_json::json!({ "m": huge, "nbits": 8 });
        let meta = serde_json::json!({ "quantizer": "opq", "dim": huge, "metric": "l2",
            "params": OpqParams { pq: PqParams::new(1, 8), ..OpqParams::new(1, 8) }, "trained": false });
        w.add_json("q.meta", 1, &meta).unwrap();
        w.add_array::<f32>("q.rotation", 1, &[]).unwrap();
        let pq_meta =
            serde_json::json!({ "quantizer": "pq", "dim": huge, "metric": "l2", "params": params, "trained": false });
        w.add_json("q.pq.meta", 1, &pq_meta).unwrap();
        w.add_array::<f32>("q.pq.centroids", 1, &[]).unwrap();
    });
    let e = OpqQuantizer::read_sections(&r, "q");
    assert!(matches!(e, Err(Error::Corrupt { .. })), "{e:?}");
}

/// A section's content, for the mutation test.
#[derive(Clone)]
enum Section {
    Json(serde_json::Value),
    F32(Vec<f32>),
    U8(Vec<u8>),
}

fn read_all(r: &ContainerReader) -> Vec<(String, u32, Section)> {
    r.sections()
        .iter()
        .map(|s| {
            let sec = match s.kind {
                SectionKind::Json => Section::Json(r.json(&s.name).unwrap()),
                SectionKind::Array(ElementType::F32) => Section::F32(r.array(&s.name).unwrap().to_vec()),
                SectionKind::Array(ElementType::U8) => Section::U8(r.array(&s.name).unwrap().to_vec()),
                other => panic!("unexpected section kind {other}"),
            };
            (s.name.clone(), s.version, sec)
        })
        .collect()
}

fn write_all(path: &Path, sections: &[(String, u32, Section)]) {
    let mut w = ContainerWriter::create(path).unwrap();
    for (name, version, sec) in sections {
        match sec {
            Section::Json(v) => w.add_json(name, *version, v),
            Section::F32(v) => w.add_array(name, *version, v),
            Section::U8(v) => w.add_array(name, *version, v),
        }
        .unwrap();
    }
    w.finish().unwrap();
}

/// Reads `f` back from mutated sections; any that loads is searched.
fn mutate_and_read<Q: Quantizer>(f: &FlatCodes<Q>, dir: &Path) -> [usize; 2] {
    let dim = f.quantizer().dim();
    let src = container(dir, "src.vq", |w| f.write_sections(w, "f").unwrap());
    let sections = read_all(&src);
    let mut mutants = Vec::new();
    let ints: [i64; 8] = [0, 1, 2, 3, 7, 255, 1 << 24, 1 << 61];
    for (i, (_, _, sec)) in sections.iter().enumerate() {
        let mut push = |f: &dyn Fn(&mut Section)| {
            let mut m = sections.clone();
            f(&mut m[i].2);
            mutants.push(m);
        };
        match sec {
            Section::Json(v) => {
                let mut keys: Vec<Vec<String>> = Vec::new();
                for (k, x) in v.as_object().unwrap() {
                    match x.as_object() {
                        Some(inner) => keys.extend(inner.keys().map(|k2| vec![k.clone(), k2.clone()])),
                        None => keys.push(vec![k.clone()]),
                    }
                }
                for key in &keys {
                    let values = ints.iter().map(|&n| serde_json::json!(n)).chain([
                        serde_json::json!(-1),
                        serde_json::json!(0.75),
                        serde_json::json!("SQ4U"),
                        serde_json::json!("cosine"),
                        serde_json::json!(true),
                        serde_json::json!(false),
                        serde_json::Value::Null,
                    ]);
                    for val in values {
                        push(&|s| {
                            let Section::Json(v) = s else { unreachable!() };
                            let slot = key.iter().fold(v, |v, k| &mut v[k.as_str()]);
                            *slot = val.clone();
                        });
                    }
                }
            }
            Section::F32(v) => {
                for at in (0..v.len()).step_by(v.len() / 12 + 1) {
                    for x in [f32::NAN, f32::INFINITY, -3e38, 0.0, 1e-42] {
                        push(&|s| {
                            let Section::F32(v) = s else { unreachable!() };
                            v[at] = x;
                        });
                    }
                }
                push(&|s| {
                    let Section::F32(v) = s else { unreachable!() };
                    v.pop();
                });
            }
            Section::U8(v) => {
                for at in (0..v.len()).step_by(v.len() / 12 + 1) {
                    for x in [0u8, 0x7c, 0x7f, 0xff] {
                        push(&|s| {
                            let Section::U8(v) = s else { unreachable!() };
                            v[at] = x;
                        });
                    }
                }
                push(&|s| {
                    let Section::U8(v) = s else { unreachable!() };
                    v.pop();
                });
            }
        }
    }
    for i in 0..sections.len() {
        let mut m = sections.clone();
        m.remove(i);
        mutants.push(m);
    }
    let path = dir.join("mutant.vq");
    let query: Vec<f32> = (0..dim).map(|i| i as f32 * 0.25 - 1.0).collect();
    let mut outcomes = [0usize; 2];
    for m in &mutants {
        write_all(&path, m);
        let start = Instant::now();
        let r = ContainerReader::open(&path).unwrap();
        let ok = match FlatCodes::<Q>::read_sections(&r, "f") {
            Ok(mut back) => {
                if back.quantizer().dim() <= 4096 {
                    let q: Vec<f32> = query.iter().copied().cycle().take(back.quantizer().dim()).collect();
                    let _ = back.search(&q, 5);
                    let _ = back.search_filtered(&q, back.len() + 1, Some(&|r| r % 2 == 0));
                    back.retain(|r| r % 2 == 1);
                    let _ = back.search(&q, 3);
                }
                true
            }
            Err(_) => false,
        };
        outcomes[usize::from(ok)] += 1;
        assert!(start.elapsed() < Duration::from_secs(2), "a mutant took {:?}", start.elapsed());
    }
    outcomes
}

/// Deterministic stand-in for the `quantizers` fuzz target on stable: every field of every
/// section forged, arrays poisoned and shortened, sections dropped.
#[test]
fn mutated_quantizer_sections_load_as_errors_or_usable_indexes_never_panics() {
    let dim = 8;
    let data = points(80, dim, 8);
    let dir = tempfile::tempdir().unwrap();
    let mut total = [0usize; 2];
    let mut add = |o: [usize; 2]| {
        total[0] += o[0];
        total[1] += o[1];
    };
    for t in [SqType::SQ8, SqType::SQ4U, SqType::FP16, SqType::BF16, SqType::SQ6] {
        add(mutate_and_read(
            &flat(ScalarQuantizer::new(dim, Metric::InnerProduct, t).unwrap(), &data[..20 * dim]),
            dir.path(),
        ));
    }
    let pq = PqParams { iterations: 2, ..PqParams::new(2, 4) };
    add(mutate_and_read(&flat(ProductQuantizer::with_params(dim, Metric::L2, pq.clone()).unwrap(), &data), dir.path()));
    let opq = OpqParams { niter: 1, niter_pq_0: 1, pq, ..OpqParams::new(2, 4) };
    add(mutate_and_read(&flat(OpqQuantizer::with_params(dim, Metric::Cosine, opq).unwrap(), &data), dir.path()));
    // Both outcomes happen: the mutations reach the checks, and some are harmless.
    assert!(total[0] > 300 && total[1] > 50, "{total:?}");
}
