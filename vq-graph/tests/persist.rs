//! Saving and loading graphs over every storage, and hostile files: each finding of issue 18
//! item 1 forged into a file with valid checksums, which must load as a typed error (or as a
//! graph whose searches never panic), plus many deterministic mutations of a valid file.

mod common;
mod forge;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::clustered;
use forge::Section;
use vq_distance::Metric;
use vq_graph::{Error, FlatStorage, Hnsw, HnswParams, QuantizedStorage, VectorStorage};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{ProductQuantizer, Quantizer, ScalarQuantizer, SqType};

fn small_params() -> HnswParams {
    HnswParams { ef_construction: 40, ..HnswParams::with_m(4) }
}

/// A small flat graph saved to `dir/name`: (path, base vectors).
fn saved_flat(dir: &Path, name: &str, n: usize, dim: usize) -> (PathBuf, Vec<f32>) {
    let base = clustered(n, dim, 3);
    let index = Hnsw::new(dim, Metric::L2, small_params()).unwrap();
    index.add(&base).unwrap();
    let path = dir.join(name);
    index.save(&path).unwrap();
    (path, base)
}

/// Loads a forged file and, if it loads, searches it every way: nothing may panic.
fn load_and_use<S: VectorStorage>(path: &Path, queries: &[f32], dim: usize) -> Result<Hnsw<S>, Error> {
    let index = Hnsw::<S>::load(path)?;
    for q in queries.chunks_exact(dim).take(3) {
        for k in [1, 5, index.len() + 3] {
            let hits = index.search(q, k, Some(16)).unwrap();
            let mut ids: Vec<u64> = hits.iter().map(|h| h.0).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), hits.len(), "an id answered twice");
        }
        let _ = index.search_filtered(q, 3, None, &|id| id % 2 == 0).unwrap();
    }
    let _ = index.check_graph();
    // Compaction walks the lists of deleted nodes, which searches may never reach; on a copy,
    // so the caller gets the graph as loaded.
    let mut copy = Hnsw::<S>::load(path)?;
    copy.compact();
    let _ = copy.search(&queries[..dim], copy.len() + 1, None).unwrap();
    Ok(index)
}

fn levels_and_upper(path: &Path) -> (Vec<u8>, usize) {
    let sections = forge::read(path);
    let levels = sections.iter().find(|s| s.0 == "hnsw.levels").unwrap().2.clone().u8s().clone();
    let mut meta = sections.iter().find(|s| s.0 == "hnsw.meta").unwrap().2.clone();
    let m = meta.json()["params"]["m"].as_u64().unwrap() as usize;
    (levels, m)
}

fn is_corrupt<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::CorruptFile { .. }))
}

#[test]
fn every_storage_round_trips_through_write_to_and_read_from() {
    let dim = 16;
    let base = clustered(600, dim, 11);
    let queries = clustered(20, dim, 12);
    let dir = tempfile::tempdir().unwrap();

    fn check<S: VectorStorage>(index: &Hnsw<S>, dir: &Path, name: &str, queries: &[f32]) {
        // Through a container shared with other sections (as the umbrella writes it).
        let path = dir.join(name);
        let mut w = ContainerWriter::create(&path).unwrap();
        w.add_json("index.kind", 1, &"test").unwrap();
        index.write_to(&mut w, "x.graph").unwrap();
        w.finish().unwrap();
        let r = ContainerReader::open(&path).unwrap();
        let loaded = Hnsw::<S>::read_from(&r, "x.graph").unwrap();
        assert_eq!(loaded.len(), index.len(), "{name}");
        assert_eq!(loaded.params(), index.params(), "{name}");
        assert_eq!(loaded.check_graph(), index.check_graph(), "{name}");
        let (a, b) = (index.search_batch(queries, 10, Some(40)).unwrap(), loaded.search_batch(queries, 10, Some(40)));
        assert_eq!(a, b.unwrap(), "{name}");
        // And through save/load.
        let path = dir.join(format!("{name}.file"));
        index.save(&path).unwrap();
        let loaded = Hnsw::<S>::load(&path).unwrap();
        assert_eq!(
            index.search_batch(queries, 10, Some(40)).unwrap(),
            loaded.search_batch(queries, 10, Some(40)).unwrap()
        );
        // Storage sections live under the storage prefix.
        let r = ContainerReader::open(&path).unwrap();
        assert!(r.sections().iter().any(|s| s.name.starts_with("hnsw.storage.")), "{name}");
    }

    let flat = Hnsw::new(dim, Metric::InnerProduct, small_params()).unwrap();
    flat.add(&base).unwrap();
    flat.mark_deleted(3).unwrap();
    check(&flat, dir.path(), "flat", &queries);
    for t in [SqType::SQ8, SqType::FP16, SqType::SQ4U] {
        let mut q = ScalarQuantizer::new(dim, Metric::L2, t).unwrap();
        q.train(&base).unwrap();
        let index = Hnsw::with_storage(QuantizedStorage::new(q).unwrap(), small_params()).unwrap();
        index.add(&base).unwrap();
        check(&index, dir.path(), &format!("{t}"), &queries);
    }
    let mut pq = ProductQuantizer::new(dim, Metric::Cosine, 4, 8).unwrap();
    pq.train(&base).unwrap();
    let index = Hnsw::with_storage(QuantizedStorage::new(pq).unwrap(), small_params()).unwrap();
    index.add(&base).unwrap();
    check(&index, dir.path(), "pq", &queries);
}

#[test]
fn a_file_of_another_storage_or_a_missing_storage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved_flat(dir.path(), "g.vq", 50, 8);
    let r = Hnsw::<QuantizedStorage<ScalarQuantizer>>::load(&path);
    assert!(matches!(r, Err(Error::Quant(_)) | Err(Error::Io(_))), "{:?}", r.err());
    let bad = dir.path().join("nostorage.vq");
    let mut sections = forge::read(&path);
    sections.retain(|s| !s.0.starts_with("hnsw.storage"));
    forge::write(&bad, &sections);
    assert!(matches!(Hnsw::<FlatStorage>::load(&bad), Err(Error::Io(vq_io::Error::MissingSection { .. }))));
    // The storage's dimension must be the graph's.
    let bad = dir.path().join("dim.vq");
    forge::forge(&path, &bad, |name, s| {
        if name == "hnsw.storage.meta" {
            s.json()["dim"] = 4.into();
        } else if name == "hnsw.storage.vectors" {
            s.f32s().truncate(50 * 4);
        }
    });
    assert!(is_corrupt(&Hnsw::<FlatStorage>::load(&bad)));
    // An unknown required section outside the storage's prefix is refused.
    let bad = dir.path().join("unknown.vq");
    let mut sections = forge::read(&path);
    sections.push(("hnsw.future".into(), 1, Section::U8(vec![1])));
    forge::write(&bad, &sections);
    assert!(matches!(Hnsw::<FlatStorage>::load(&bad), Err(Error::Io(vq_io::Error::UnknownRequiredSection { .. }))));
}

#[test]
fn a_link_on_layer_l_to_a_node_below_level_l_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, base) = saved_flat(dir.path(), "g.vq", 300, 8);
    assert!(load_and_use::<FlatStorage>(&path, &base, 8).is_ok(), "the unforged file loads");
    let (levels, m) = levels_and_upper(&path);
    let low = levels.iter().position(|&l| l == 0).unwrap() as u32;
    // The first slot with a level above 0 owns the first upper list (layer 1).
    let high = levels.iter().position(|&l| l > 0).unwrap();
    assert!(high < levels.len());
    let bad = dir.path().join("bad.vq");
    forge::forge(&path, &bad, |name, s| {
        if name == "hnsw.upper" {
            let u = s.u32s();
            assert_eq!(u.len() % (1 + m), 0);
            u[0] = u[0].max(1);
            u[1] = low;
        }
    });
    let r = load_and_use::<FlatStorage>(&bad, &base, 8);
    assert!(is_corrupt(&r), "{:?}", r.err());
    assert!(r.err().unwrap().to_string().contains("whose level is 0"));
}

#[test]
fn the_entry_point_must_be_a_ready_slot_of_its_level() {
    let dir = tempfile::tempdir().unwrap();
    let (path, base) = saved_flat(dir.path(), "g.vq", 300, 8);
    let (levels, _) = levels_and_upper(&path);
    let low = levels.iter().position(|&l| l == 0).unwrap() as u64;
    let top = *levels.iter().max().unwrap() as u64;
    let entry = |e: u64| {
        let bad = dir.path().join(format!("entry{e:x}.vq"));
        forge::forge(&path, &bad, |name, s| {
            if name == "hnsw.meta" {
                s.json()["entry"] = e.into();
            }
        });
        load_and_use::<FlatStorage>(&bad, &base, 8)
    };
    // A level-0 node announced at the top level, a slot out of range, no entry at all.
    assert!(is_corrupt(&entry((top << 32) | low)));
    assert!(is_corrupt(&entry((top << 32) | 300)));
    assert!(is_corrupt(&entry(u64::MAX)));
    // A level-0 node at its true level is a valid (if poor) entry: it loads and answers.
    assert!(entry(low).is_ok());
    // The entry point's state must be ready.
    let bad = dir.path().join("state.vq");
    let sections = forge::read(&path);
    let mut meta = sections.iter().find(|s| s.0 == "hnsw.meta").unwrap().2.clone();
    let e = meta.json()["entry"].as_u64().unwrap() as u32 as usize;
    forge::forge(&path, &bad, |name, s| {
        if name == "hnsw.states" {
            s.u8s()[e] = 0;
        }
    });
    assert!(is_corrupt(&load_and_use::<FlatStorage>(&bad, &base, 8)));
}

#[test]
fn states_must_be_combinations_the_graph_produces() {
    let dir = tempfile::tempdir().unwrap();
    let (path, base) = saved_flat(dir.path(), "g.vq", 100, 8);
    for state in [2u8, 4, 5, 0x81, 0xff] {
        let bad = dir.path().join(format!("s{state}.vq"));
        forge::forge(&path, &bad, |name, s| {
            if name == "hnsw.states" {
                s.u8s()[7] = state;
            }
        });
        assert!(is_corrupt(&load_and_use::<FlatStorage>(&bad, &base, 8)), "state {state:#x}");
    }
    // Ready and deleted is a state the graph produces: it loads, and the slot never answers.
    let bad = dir.path().join("deleted.vq");
    forge::forge(&path, &bad, |name, s| {
        if name == "hnsw.states" {
            s.u8s()[7] = 3;
        }
    });
    let index = load_and_use::<FlatStorage>(&bad, &base, 8).unwrap();
    assert_eq!(index.len(), 99);
    assert!(index.search(&base[7 * 8..8 * 8], 100, None).unwrap().iter().all(|h| h.0 != 7));
}

/// Two live slots under one id are refused, whether the other ids are the slots' own numbers
/// (read without an id set) or were given; a deleted slot may share its replacement's id.
#[test]
fn live_slots_must_have_distinct_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (path, base) = saved_flat(dir.path(), "g.vq", 100, 8);
    let given = Hnsw::new(8, Metric::L2, small_params()).unwrap();
    given.add_with_ids(&base, &(0..100u64).map(|i| 1000 + 7 * i).collect::<Vec<_>>()).unwrap();
    let given_path = dir.path().join("given.vq");
    given.save(&given_path).unwrap();
    for (i, source) in [&path, &given_path].into_iter().enumerate() {
        let forged = |name: &str, deleted: bool| {
            let bad = dir.path().join(format!("{name}{i}.vq"));
            forge::forge(source, &bad, |name, s| match name {
                "hnsw.external" => s.u64s()[40] = s.u64s()[9],
                "hnsw.states" if deleted => s.u8s()[40] = 3,
                _ => {}
            });
            bad
        };
        assert!(is_corrupt(&load_and_use::<FlatStorage>(&forged("repeat", false), &base, 8)), "source {i}");
        let index = load_and_use::<FlatStorage>(&forged("replaced", true), &base, 8).unwrap();
        assert_eq!(index.len(), 99, "source {i}");
    }
}

#[test]
fn a_slot_that_is_not_ready_never_answers_and_its_id_can_be_inserted_again() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let (path, base) = saved_flat(dir.path(), "g.vq", 200, dim);
    let (levels, _) = levels_and_upper(&path);
    let sections = forge::read(&path);
    let mut meta = sections.iter().find(|s| s.0 == "hnsw.meta").unwrap().2.clone();
    let (m0, entry) = (
        meta.json()["params"]["m0"].as_u64().unwrap() as usize,
        meta.json()["entry"].as_u64().unwrap() as u32 as usize,
    );
    let victim = (0..200).find(|&s| levels[s] == 0 && s != entry).unwrap();

    // Only its state forced to "not ready": others still link to it, which is refused.
    let linked = dir.path().join("linked.vq");
    forge::forge(&path, &linked, |name, s| {
        if name == "hnsw.states" {
            s.u8s()[victim] = 0;
        }
    });
    assert!(is_corrupt(&load_and_use::<FlatStorage>(&linked, &base, dim)));
    // Its own list emptied too, but others still link to it: it would answer searches.
    forge::forge(&path, &linked, |name, s| match name {
        "hnsw.states" => s.u8s()[victim] = 0,
        "hnsw.links0" => s.u32s()[victim * (1 + m0)] = 0,
        _ => {}
    });
    let r = load_and_use::<FlatStorage>(&linked, &base, dim);
    assert!(r.as_ref().is_err_and(|e| e.to_string().contains("not ready")), "{:?}", r.err());

    // Unlinked as well (as a slot of a failed batch is): it loads, and the slot is unreachable.
    let unlinked = dir.path().join("unlinked.vq");
    forge::forge(&path, &unlinked, |name, s| match name {
        "hnsw.states" => s.u8s()[victim] = 0,
        "hnsw.links0" => {
            for (slot, list) in s.u32s().chunks_exact_mut(1 + m0).enumerate() {
                let kept: Vec<u32> = if slot == victim {
                    vec![]
                } else {
                    list[1..=list[0] as usize].iter().copied().filter(|&x| x as usize != victim).collect()
                };
                list.fill(0);
                list[0] = kept.len() as u32;
                list[1..=kept.len()].copy_from_slice(&kept);
            }
        }
        _ => {}
    });
    let index = load_and_use::<FlatStorage>(&unlinked, &base, dim).unwrap();
    assert_eq!(index.len(), 199);
    let q = &base[victim * dim..(victim + 1) * dim];
    let id = victim as u64;
    for k in [1, 10, 500] {
        assert!(index.search(q, k, None).unwrap().iter().all(|h| h.0 != id), "k = {k}");
    }
    // Its id is free: inserting it again gives exactly one answer under that id.
    index.insert(id, q).unwrap();
    for k in [1, 10, 500] {
        let hits = index.search(q, k, None).unwrap();
        assert_eq!(hits.iter().filter(|h| h.0 == id).count(), 1, "k = {k}: {hits:?}");
        assert_eq!(hits[0], (id, 0.0));
    }
}

#[test]
fn wide_link_lists_in_a_tiny_file_cost_no_more_than_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 4;
    let index = Hnsw::new(dim, Metric::L2, small_params()).unwrap();
    index.add(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let path = dir.path().join("one.vq");
    index.save(&path).unwrap();
    let bad = dir.path().join("wide.vq");
    forge::forge(&path, &bad, |name, s| match name {
        "hnsw.meta" => s.json()["params"]["m0"] = 4096.into(),
        "hnsw.links0" => s.u32s().resize(4097, 0),
        _ => {}
    });
    let file = std::fs::metadata(&bad).unwrap().len() as usize;
    let loaded = load_and_use::<FlatStorage>(&bad, &[1.0, 2.0, 3.0, 4.0], dim).unwrap();
    let used = loaded.memory_usage();
    // The file is ~17 KB; rounding the arena up to a chunk of 1,024 slots cost 23 MB.
    assert!(used.total() < 2 * file + 16 * 1024, "{used:?} for a file of {file} bytes");
    // m0 without the links to back it is a length mismatch.
    forge::forge(&path, &bad, |name, s| {
        if name == "hnsw.meta" {
            s.json()["params"]["m0"] = 4096.into();
        }
    });
    assert!(is_corrupt(&Hnsw::<FlatStorage>::load(&bad)));
}

/// At 50 vectors every section is read when the file is opened; at 4,500 the vectors and
/// codes (over 64 KiB) are read later, straight into the storage: either way a forged value is
/// refused.
#[test]
fn forged_vectors_and_codes_that_would_give_nan_distances_are_refused() {
    for n in [50, 4500] {
        forged_vectors_and_codes_are_refused(n);
    }
}

fn forged_vectors_and_codes_are_refused(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (path, base) = saved_flat(dir.path(), "g.vq", n, 8);
    for (v, at) in [(f32::NAN, 9), (f32::INFINITY, 8 * n - 3), (1e30, 8 * n / 2)] {
        let bad = dir.path().join("v.vq");
        forge::forge(&path, &bad, |name, s| {
            if name == "hnsw.storage.vectors" {
                s.f32s()[at] = v;
            }
        });
        assert!(is_corrupt(&load_and_use::<FlatStorage>(&bad, &base, 8)), "{v} at {at} of {n}");
    }
    // FP16 codes holding an infinity (0x7c00).
    let mut q = ScalarQuantizer::new(8, Metric::InnerProduct, SqType::FP16).unwrap();
    q.train(&base).unwrap();
    let index = Hnsw::with_storage(QuantizedStorage::new(q).unwrap(), small_params()).unwrap();
    index.add(&base).unwrap();
    let path = dir.path().join("fp16.vq");
    index.save(&path).unwrap();
    assert!(load_and_use::<QuantizedStorage<ScalarQuantizer>>(&path, &base, 8).is_ok());
    let bad = dir.path().join("fp16bad.vq");
    forge::forge(&path, &bad, |name, s| {
        if name == "hnsw.storage.codes" {
            let at = s.u8s().len() - 6;
            s.u8s()[at..at + 2].copy_from_slice(&[0x00, 0x7c]);
        }
    });
    let r = load_and_use::<QuantizedStorage<ScalarQuantizer>>(&bad, &base, 8);
    assert!(matches!(r, Err(Error::Quant(vq_quant::Error::Corrupt { .. }))), "{:?}", r.err());
    // Codes of the wrong length.
    forge::forge(&path, &bad, |name, s| {
        if name == "hnsw.storage.codes" {
            s.u8s().pop();
        }
    });
    assert!(is_corrupt(&Hnsw::<QuantizedStorage<ScalarQuantizer>>::load(&bad)));
}

/// Deterministic stand-in for the fuzz target on stable: many mutations of a valid file, each
/// rewritten with correct checksums so that the structural checks are what gets exercised.
#[test]
fn mutated_files_load_as_errors_or_usable_graphs_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 4;
    let (path, base) = saved_flat(dir.path(), "g.vq", 40, dim);
    let mut sq = ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap();
    sq.train(&base).unwrap();
    let qindex = Hnsw::with_storage(QuantizedStorage::new(sq).unwrap(), small_params()).unwrap();
    qindex.add(&base).unwrap();
    qindex.mark_deleted(5).unwrap();
    let qpath = dir.path().join("q.vq");
    qindex.save(&qpath).unwrap();

    let values: [u64; 9] = [0, 1, 2, 3, 39, 40, 255, u32::MAX as u64, u64::MAX];
    let json_fields: [&[&str]; 7] = [
        &["params", "m"],
        &["params", "m0"],
        &["params", "ef"],
        &["slots"],
        &["entry"],
        &["dim"],
        &["params", "level_mult"],
    ];
    let mut outcomes = [0usize; 2];
    let bad = dir.path().join("bad.vq");
    for (src, flat) in [(&path, true), (&qpath, false)] {
        let sections = forge::read(src);
        let mut mutants: Vec<Vec<(String, u32, Section)>> = Vec::new();
        for (i, (name, _, sec)) in sections.iter().enumerate() {
            let mut push = |f: &dyn Fn(&mut Section)| {
                let mut m = sections.clone();
                f(&mut m[i].2);
                mutants.push(m);
            };
            match sec {
                Section::Json(_) => {
                    for field in json_fields {
                        for &v in &values {
                            push(&|s| {
                                let mut j = s.json();
                                for (d, key) in field.iter().enumerate() {
                                    if d + 1 == field.len() {
                                        j[*key] = v.into();
                                    } else {
                                        j = &mut j[*key];
                                    }
                                }
                            });
                        }
                    }
                }
                Section::U8(v) | Section::Bytes(v) => {
                    for at in (0..v.len()).step_by(v.len() / 16 + 1) {
                        for x in [0u8, 1, 2, 3, 4, 0x7c, 0xff] {
                            push(&|s| s.u8s()[at] = x);
                        }
                    }
                    push(&|s| s.u8s().truncate(v.len().saturating_sub(1)));
                }
                Section::U32(v) => {
                    for at in (0..v.len()).step_by(v.len() / 24 + 1) {
                        for &x in &values {
                            push(&|s| s.u32s()[at] = x as u32);
                        }
                    }
                    push(&|s| {
                        s.u32s().pop();
                    });
                    push(&|s| s.u32s().push(0));
                }
                Section::U64(v) => {
                    for at in (0..v.len()).step_by(v.len() / 8 + 1) {
                        push(&|s| match s {
                            Section::U64(v) => v[at] = v[(at + 1) % v.len()],
                            _ => unreachable!(),
                        });
                    }
                }
                Section::F32(v) => {
                    for at in (0..v.len()).step_by(v.len() / 16 + 1) {
                        for x in [f32::NAN, f32::NEG_INFINITY, 3e38, -0.0, 1e-40] {
                            push(&|s| s.f32s()[at] = x);
                        }
                    }
                    push(&|s| {
                        s.f32s().pop();
                    });
                }
            }
            let _ = name;
        }
        // Whole sections dropped.
        for i in 0..sections.len() {
            let mut m = sections.clone();
            m.remove(i);
            mutants.push(m);
        }
        assert!(mutants.len() > 200, "{}", mutants.len());
        for m in &mutants {
            forge::write(&bad, m);
            let start = Instant::now();
            let ok = if flat {
                load_and_use::<FlatStorage>(&bad, &base, dim).is_ok()
            } else {
                load_and_use::<QuantizedStorage<ScalarQuantizer>>(&bad, &base, dim).is_ok()
            };
            outcomes[usize::from(ok)] += 1;
            assert!(start.elapsed() < Duration::from_secs(2), "a mutant took {:?}", start.elapsed());
        }
    }
    // Both outcomes happen: the mutations reach the checks, and some are harmless.
    assert!(outcomes[0] > 100 && outcomes[1] > 10, "{outcomes:?}");
}

/// A graph saves the same bytes as the graph loaded from its file: upper-layer lists that
/// shrank while the graph was built keep stale ids past their count in memory, which the file
/// must not carry (zeros past the count, as layer 0).
#[test]
fn a_loaded_graph_saves_the_bytes_it_was_loaded_from() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let base = clustered(3000, dim, 5);
    let index = Hnsw::new(dim, Metric::L2, small_params()).unwrap();
    for batch in base.chunks(500 * dim) {
        index.add(batch).unwrap();
    }
    let (first, second) = (dir.path().join("a.vq"), dir.path().join("b.vq"));
    index.save(&first).unwrap();
    Hnsw::<FlatStorage>::load(&first).unwrap().save(&second).unwrap();
    let (a, b) = (std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    assert!(a == b, "the second save differs from the first");
}
