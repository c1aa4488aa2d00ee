//! Writes small valid files as seed corpora for the fuzz targets in `fuzz/`
//! (`cargo xtask fuzz` runs this): `io_fuzz_seeds DIR` fills `DIR/{texmex,bin,npy,container}`.
//! Each seed starts with the selector byte the target reads first.

use std::path::Path;

use vq_io::{ContainerWriter, DatasetWriter, Element, Format, f16};

fn dataset<T: Element>(format: Format, values: &[T], dim: usize) -> Vec<u8> {
    let mut w = DatasetWriter::<T, _>::in_memory(format, dim).expect("valid format");
    w.write_rows(values).expect("whole rows");
    w.finish().expect("in memory").into_inner()
}

fn seed(dir: &Path, target: &str, name: &str, selector: u8, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), [&[selector][..], bytes].concat())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: io_fuzz_seeds DIR")?;
    let dir = Path::new(&dir);
    let f: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    let i: Vec<i32> = (0..12).collect();
    let b: Vec<u8> = (0..12).collect();
    seed(dir, "texmex", "fvecs", 0, &dataset(Format::Fvecs, &f, 3))?;
    seed(dir, "texmex", "ivecs", 1, &dataset(Format::Ivecs, &i, 4))?;
    seed(dir, "texmex", "bvecs", 2, &dataset(Format::Bvecs, &b, 2))?;
    seed(dir, "bin", "fbin", 0, &dataset(Format::Fbin, &f, 3))?;
    seed(dir, "bin", "ibin", 1, &dataset(Format::Ibin, &i, 4))?;
    seed(dir, "bin", "u8bin", 2, &dataset(Format::U8bin, &b, 2))?;
    seed(dir, "bin", "i8bin", 3, &dataset(Format::I8bin, &[1i8, -1, 2, -2], 2))?;
    seed(dir, "npy", "f32", 0, &dataset(Format::Npy, &f, 3))?;
    let h: Vec<f16> = f.iter().map(|&x| f16::from_f32(x)).collect();
    seed(dir, "npy", "f16", 1, &dataset(Format::Npy, &h, 4))?;
    seed(dir, "npy", "u8", 2, &dataset(Format::Npy, &b, 6))?;
    seed(dir, "npy", "i8", 3, &dataset(Format::Npy, &[1i8, -1, 2, -2], 1))?;
    seed(dir, "npy", "i32", 4, &dataset(Format::Npy, &i, 2))?;
    seed(dir, "npy", "i64", 5, &dataset(Format::Npy, &[1i64, 2, 3], 3))?;

    let tmp = std::env::temp_dir().join(format!("vq-fuzz-seed-{}.vq", std::process::id()));
    let mut w = ContainerWriter::create(&tmp)?;
    w.add_json("params", 1, &serde_json::json!({ "m": 16, "name": "HNSW16" }))?;
    w.add_array("data", 1, &f)?;
    w.add_array("ids", 1, &[1u64, 2, 3])?;
    w.add_array("codes", 1, &b)?;
    w.add_bytes("extra", 2, b"opaque")?;
    w.mark_optional("extra")?;
    w.finish()?;
    let c = std::fs::read(&tmp)?;
    std::fs::remove_file(&tmp)?;
    for sel in 0..4 {
        seed(dir, "container", &format!("c{sel}"), sel, &c)?;
    }
    Ok(())
}
