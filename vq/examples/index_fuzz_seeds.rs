//! Seeds the `read_index` fuzz target (`fuzz/fuzz_targets/read_index.rs`) with the golden
//! index files, one per kind: `cargo run -p vq --example index_fuzz_seeds -- fuzz/corpus`. Each file
//! goes in twice behind the target's selector byte: with checksums verified, and unverified
//! with the header checksum recomputed (so mutations reach the index readers' own checks).

use std::path::PathBuf;

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
    println!("wrote {n} seeds to {}", corpus.display());
    Ok(())
}
