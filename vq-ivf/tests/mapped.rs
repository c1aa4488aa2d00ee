//! IVF lists served from a memory-mapped file: the same answers as an index read into memory,
//! copy on write per list (the file is never written), and memory accounting that tells
//! mapped bytes from allocated ones.

use std::path::Path;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter, OpenOptions};
use vq_ivf::{FlatCodec, IvfCodec, IvfIndex, IvfMemory, IvfParams, IvfSearch, PqCodec, SqCodec};
use vq_quant::{Quantizer, SqType};

const DIM: usize = 16;
const NLIST: usize = 16;

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * DIM).map(|i| rng.random_range(-1.0f32..1.0) + ((i / DIM) % 7) as f32).collect()
}

fn write<C: IvfCodec>(index: &IvfIndex<C>, path: &Path) {
    let mut w = ContainerWriter::create(path).unwrap();
    index.write_sections(&mut w, "index").unwrap();
    w.finish().unwrap();
}

fn read<C: IvfCodec>(path: &Path, mmap: bool) -> IvfIndex<C> {
    let r = ContainerReader::open_with(path, OpenOptions { mmap, ..Default::default() }).unwrap();
    // The reader is dropped here: a mapped index keeps the map alive on its own.
    IvfIndex::read_sections(&r, "index").unwrap()
}

/// Ids and score bits of every query at several nprobe, batch (list-major where the codec
/// does it) and one query at a time.
fn answers<C: IvfCodec>(index: &IvfIndex<C>, queries: &[f32]) -> Vec<(Vec<u64>, Vec<u32>)> {
    let mut out = Vec::new();
    for nprobe in [1, 3, NLIST] {
        let opts = IvfSearch { nprobe: Some(nprobe), ..Default::default() };
        let batch = index.search(queries, 7, &opts).unwrap();
        out.push((batch.ids().to_vec(), batch.scores().iter().map(|s| s.to_bits()).collect()));
        let one = index.search(&queries[..DIM], 7, &opts).unwrap();
        out.push((one.ids().to_vec(), one.scores().iter().map(|s| s.to_bits()).collect()));
    }
    out
}

fn total(m: &IvfMemory) -> usize {
    m.codes + m.ids + m.trained + m.mapped
}

fn check<C: IvfCodec + Clone>(codec: C, metric: Metric) {
    let base = data(2_000, 1);
    let queries = data(300, 2);
    let mut index = IvfIndex::new(DIM, metric, IvfParams::new(NLIST), codec).unwrap();
    index.train(&base).unwrap();
    index.add(&base).unwrap();
    let name = index.name();
    let cs = index.codec().quantizer().code_size();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ivf.vq");
    write(&index, &path);
    let file = std::fs::read(&path).unwrap();

    let owned: IvfIndex<C> = read(&path, false);
    let mapped: IvfIndex<C> = read(&path, true);
    let expected = answers(&owned, &queries);
    assert_eq!(answers(&mapped, &queries), expected, "{name} {metric:?}: mapped vs read");
    assert_eq!(answers(&index, &queries), expected, "{name} {metric:?}: the written index");
    assert_eq!(mapped.reconstruct(77).unwrap(), owned.reconstruct(77).unwrap(), "{name}");

    // Accounting: the same total, but the lists mapped rather than allocated.
    let (mo, mm) = (owned.memory_usage(), mapped.memory_usage());
    assert_eq!(mo.mapped, 0, "{name}");
    assert_eq!(mo.codes, 2_000 * cs, "{name}");
    assert_eq!(mm.mapped, 2_000 * (cs + 8), "{name}");
    assert_eq!(mm.codes, 0, "{name}");
    assert_eq!(mm.ids + 2_000 * 8, mo.ids, "{name}");
    assert_eq!(total(&mm), total(&mo), "{name}");

    // Writes copy only the lists they touch; the twins stay equal; the file is unchanged.
    let (mut owned, mut mapped) = (owned, mapped);
    let nothing = |_id: u64| false;
    assert_eq!(mapped.remove_where(nothing), 0);
    assert_eq!(mapped.memory_usage(), mm, "{name}: a removal that removes nothing copies nothing");
    let gone = mapped.list_ids(5).unwrap().to_vec();
    assert!(!gone.is_empty(), "{name}: list 5 is empty, the test needs entries there");
    let in_list_5 = |id: u64| gone.contains(&id);
    assert_eq!(mapped.remove_where(in_list_5), owned.remove_where(in_list_5), "{name}");
    assert_eq!(mapped.list_ids(5), Some(&[][..]));
    let after_remove = mapped.memory_usage();
    assert_eq!(after_remove.mapped, mm.mapped - gone.len() * (cs + 8), "{name}: only list 5 was copied");
    let extra = data(40, 3);
    let new_ids: Vec<u64> = (0..40).map(|i| 50_000 + i).collect();
    mapped.add_with_ids(&extra, &new_ids).unwrap();
    owned.add_with_ids(&extra, &new_ids).unwrap();
    assert!(mapped.memory_usage().mapped < after_remove.mapped, "{name}: the lists added to were copied");
    assert!(mapped.memory_usage().codes >= 40 * cs);
    // A merge into a mapped index, and of a mapped index into another.
    let shard: IvfIndex<C> = read(&path, true);
    mapped.merge_from(shard.clone(), 100_000).unwrap();
    owned.merge_from(shard, 100_000).unwrap();
    assert_eq!(mapped.len(), 2_000 - gone.len() + 40 + 2_000);
    assert_eq!(answers(&mapped, &queries), answers(&owned, &queries), "{name}: after writes");
    mapped.shrink_to_fit();
    assert_eq!(std::fs::read(&path).unwrap(), file, "{name}: the mapped file was written");

    // A mapped index written over its own file (the writer renames a new file over it) reads
    // back the same, and the old map stays valid meanwhile.
    let untouched: IvfIndex<C> = read(&path, true);
    write(&untouched, &path);
    assert_eq!(answers(&untouched, &queries), expected, "{name}");
    assert_eq!(answers(&read::<C>(&path, true), &queries), expected, "{name}");
}

#[test]
fn every_codec_answers_the_same_from_a_map_and_copies_lists_on_write() {
    check(FlatCodec::new(DIM, Metric::L2).unwrap(), Metric::L2);
    check(FlatCodec::new(DIM, Metric::Cosine).unwrap(), Metric::Cosine);
    check(SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap(), Metric::L2);
    check(SqCodec::new(DIM, Metric::InnerProduct, SqType::SQ4).unwrap(), Metric::InnerProduct);
    check(PqCodec::new(DIM, Metric::L2, 4, 8).unwrap(), Metric::L2);
    check(PqCodec::new(DIM, Metric::InnerProduct, 8, 4).unwrap(), Metric::InnerProduct);
}

#[test]
fn a_trained_empty_index_reads_mapped() {
    let base = data(500, 4);
    let mut index =
        IvfIndex::new(DIM, Metric::L2, IvfParams::new(NLIST), PqCodec::new(DIM, Metric::L2, 4, 8).unwrap()).unwrap();
    index.train(&base).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.vq");
    write(&index, &path);
    let mut back: IvfIndex<PqCodec> = read(&path, true);
    assert_eq!((back.len(), back.memory_usage().mapped), (0, 0));
    back.add(&base).unwrap();
    assert_eq!(back.len(), 500);
    assert_eq!(back.memory_usage().mapped, 0);
}
