//! The README example: build an HNSW graph over SQ8 codes with exact refine, search it with
//! recall measured against exact search, save it, load it, get the same answers.

use vq::{Metric, SearchParams};

fn main() -> Result<(), vq::Error> {
    let (dim, n) = (32, 20_000);
    // Any f32 data, row-major; here deterministic pseudo-random vectors (a splitmix64 hash).
    let hash = |i: u64| {
        let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (z ^ (z >> 31)) >> 40
    };
    let data: Vec<f32> = (0..(dim * n) as u64).map(|i| hash(i) as f32 / (1u64 << 24) as f32).collect();
    let queries = &data[..100 * dim];

    let spec = std::env::args().nth(1).unwrap_or("HNSW32,SQ8,RFlat".into());
    let mut index = vq::index_factory(dim, &spec, Metric::L2)?;
    index.train(&data)?; // SQ8 learns its ranges; a no-op for indexes that need none
    index.add(&data)?; // ids 0..n
    let params = SearchParams { k: 10, ef: Some(64), refine_k: Some(4), ..Default::default() };
    let hits = index.search_with(queries, &params)?;

    // Recall@10 against exact search, never against another approximate index.
    let truth = vq::knn_exact(&data, queries, dim, 10, Metric::L2)?;
    let found: usize =
        hits.iter().zip(truth.iter()).map(|((h, _), (t, _))| h.iter().filter(|id| t.contains(id)).count()).sum();
    println!(
        "{}: recall@10 {:.3}, {} bytes/vector",
        index.spec(),
        found as f64 / 1_000.0,
        index.memory_usage().total() / n
    );

    let path = std::env::temp_dir().join("vq-quickstart.vq");
    vq::write_index(index.as_ref(), &path)?;
    let back = vq::read_index(&path)?;
    assert_eq!(back.search_with(queries, &params)?, hits); // identical answers after a round trip
    std::fs::remove_file(&path).ok();
    Ok(())
}
