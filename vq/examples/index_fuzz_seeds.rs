//! Seeds the `read_index` fuzz target (`fuzz/fuzz_targets/read_index.rs`) with the golden
//! index files, one per kind: `cargo run -p vq --example index_fuzz_seeds -- fuzz/corpus`. Each file
//! goes in twice behind the target's selector byte: with checksums verified, and unverified
//! with the header checksum recomputed (so mutations reach the index readers' own checks).
//! Kinds without a golden file (the HNSW coarse quantizer of `IVF{n}_HNSW{m}`, whose parallel
//! build is not byte-stable, OPQ before an inverted file, and RaBitQ codes flat, packed and in
//! lists) are built here from a few vectors and written the same way.

use std::path::PathBuf;

/// Factory strings whose file layout no golden file covers.
const BUILT_SEEDS: &[(&str, &str)] = &[
    ("ivf4_hnsw4_flat", "IVF4_HNSW4,Flat"),
    ("ivf4_hnsw4_pq4x4fs", "IVF4_HNSW4,PQ4x4fs"),
    ("opq2_ivf4_pq2x4", "OPQ2,IVF4,PQ2x4"),
    ("rabitq_rflat", "RaBitQ,RFlat"),
    ("rabitqfs", "RaBitQfs"),
    ("ivf4_rabitq", "IVF4,RaBitQ"),
    ("ivf4_rabitqfs_rflat", "IVF4,RaBitQfs,RFlat"),
];

fn built_seed(spec: &str, path: &std::path::Path) -> Result<(), vq::Error> {
    // OPQ's rotation is trained with 8-bit sub-quantizers (256 centroids), so it needs 256 rows.
    let (dim, n) = (8, if spec.starts_with("OPQ") { 256 } else { 64 });
    // Deterministic spread-out rows (a splitmix-style hash), enough to train 4 lists.
    let data: Vec<f32> = (0..dim * n as u64)
        .map(|i| {
            let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            h as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let mut index = vq::index_factory(dim as usize, spec, vq::Metric::L2)?;
    index.train(&data)?;
    index.add(&data)?;
    vq::write_index(index.as_ref(), path)
}

fn main() -> std::io::Result<()> {
    let corpus = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into())).join("read_index");
    std::fs::create_dir_all(&corpus)?;
    let golden = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let mut n = 0;
    for entry in std::fs::read_dir(golden)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "vq") {
            let bytes = std::fs::read(&path)?;
            let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            for selector in [1u8, 2] {
                std::fs::write(corpus.join(format!("{stem}-{selector}")), [&[selector][..], &bytes].concat())?;
                n += 1;
            }
        }
    }
    for (stem, spec) in BUILT_SEEDS {
        let tmp = corpus.join(format!("{stem}.vq.tmp"));
        built_seed(spec, &tmp).map_err(|e| std::io::Error::other(format!("{spec}: {e}")))?;
        let bytes = std::fs::read(&tmp)?;
        std::fs::remove_file(&tmp)?;
        for selector in [1u8, 2] {
            std::fs::write(corpus.join(format!("{stem}-{selector}")), [&[selector][..], &bytes].concat())?;
            n += 1;
        }
    }
    println!("wrote {n} seeds to {}", corpus.display());
    Ok(())
}
