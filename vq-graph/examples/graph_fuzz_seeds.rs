//! Writes small valid files as seed corpora for the index fuzz targets in `fuzz/`
//! (`cargo xtask fuzz` runs this): `graph_fuzz_seeds DIR` fills `DIR/hnsw` (graphs over flat, SQ8 and
//! FP16 storage, one with a deleted node) and `DIR/quantizers` (SQ8, SQ4U, FP16, PQ, OPQ and RaBitQ of one and three bits
//! under prefix `q`, with a `FlatCodes` of the same quantizer under prefix `f`).
//!
//! Each seed starts with the selector byte the targets read first: 2 (recompute the header
//! checksum, leave section checksums unverified), so that mutations reach the readers' own
//! checks; the first seed of each target also comes with selector 1 (verify everything).

use std::path::Path;

use vq_distance::Metric;
use vq_graph::{Hnsw, HnswParams, QuantizedStorage};
use vq_io::ContainerWriter;
use vq_quant::{
    FlatCodes, OpqParams, OpqQuantizer, PqParams, ProductQuantizer, Quantizer, RaBitQuantizer, ScalarQuantizer, SqType,
};

type Res = Result<(), Box<dyn std::error::Error>>;

/// `n` points of `dim` components, spread so that every quantizer trains.
fn points(n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim).map(|i| ((i * 7919 + i / dim * 104_729) % 1000) as f32 / 250.0 - 2.0).collect()
}

/// Writes a container through `fill` and stores it as seed `name` of `target`.
fn seed(dir: &Path, target: &str, name: &str, fill: impl FnOnce(&mut ContainerWriter) -> Res) -> Res {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    let tmp = d.join(format!("{name}.tmp"));
    let mut w = ContainerWriter::create(&tmp)?;
    fill(&mut w)?;
    w.finish()?;
    let bytes = std::fs::read(&tmp)?;
    std::fs::remove_file(&tmp)?;
    std::fs::write(d.join(name), [&[2u8][..], &bytes].concat())?;
    if !d.join("verified").exists() {
        std::fs::write(d.join("verified"), [&[1u8][..], &bytes].concat())?;
    }
    Ok(())
}

fn quantizer_seed<Q: Quantizer + Clone>(dir: &Path, name: &str, mut q: Q, data: &[f32]) -> Res {
    q.train(data)?;
    let mut flat = FlatCodes::new(q.clone());
    flat.add(&data[..8 * q.dim()])?;
    seed(dir, "quantizers", name, |w| {
        q.write_sections(w, "q")?;
        flat.write_sections(w, "f")?;
        Ok(())
    })
}

fn main() -> Res {
    let dir = std::env::args().nth(1).ok_or("usage: graph_fuzz_seeds DIR")?;
    let dir = Path::new(&dir);
    let dim = 8;
    let data = points(64, dim);
    let params = HnswParams { ef_construction: 20, ..HnswParams::with_m(4) };

    let flat = Hnsw::new(dim, Metric::L2, params.clone())?;
    flat.add(&data[..24 * dim])?;
    seed(dir, "hnsw", "flat", |w| Ok(flat.write_to(w, "hnsw")?))?;
    let cosine = Hnsw::new(dim, Metric::Cosine, params.clone())?;
    cosine.add(&data[..12 * dim])?;
    cosine.mark_deleted(3)?;
    seed(dir, "hnsw", "cosine-deleted", |w| Ok(cosine.write_to(w, "hnsw")?))?;
    for (name, t) in [("sq8", SqType::SQ8), ("fp16", SqType::FP16)] {
        let mut q = ScalarQuantizer::new(dim, Metric::InnerProduct, t)?;
        q.train(&data)?;
        let index = Hnsw::with_storage(QuantizedStorage::new(q)?, params.clone())?;
        index.add(&data[..16 * dim])?;
        seed(dir, "hnsw", name, |w| Ok(index.write_to(w, "hnsw")?))?;
    }

    for (name, t) in [("sq8", SqType::SQ8), ("sq4u", SqType::SQ4U), ("fp16", SqType::FP16)] {
        quantizer_seed(dir, name, ScalarQuantizer::new(dim, Metric::L2, t)?, &data)?;
    }
    let pq = PqParams { iterations: 2, ..PqParams::new(2, 4) };
    quantizer_seed(dir, "pq", ProductQuantizer::with_params(dim, Metric::L2, pq.clone())?, &data)?;
    let opq = OpqParams { niter: 1, niter_pq_0: 1, pq, ..OpqParams::new(2, 4) };
    quantizer_seed(dir, "opq", OpqQuantizer::with_params(dim, Metric::InnerProduct, opq)?, &data)?;
    // Read by the target as RaBitQ's FlatCodes and as its fast-scan store (the same sections);
    // 13 dimensions: a last byte of bits partly used.
    quantizer_seed(dir, "rabitq", RaBitQuantizer::new(13, Metric::Cosine)?, &points(64, 13))?;
    // Three bits a dimension: version 2 meta, three planes of bits.
    quantizer_seed(dir, "rabitq3", RaBitQuantizer::new(13, Metric::L2)?.with_bits(3)?, &points(64, 13))?;
    // Two bits in 64 dimensions: codes the flat store splits (heads apart) as it reads them.
    quantizer_seed(dir, "rabitq2-split", RaBitQuantizer::new(64, Metric::L2)?.with_bits(2)?, &points(24, 64))?;
    // Residual codes with their sign bits' factors (version 3 meta: an inverted file's
    // `RaBitQfs{b}` lists), coded about the origin here.
    let residual = RaBitQuantizer::for_residuals(13, Metric::InnerProduct)?.with_bits(2)?.with_sign_factors();
    quantizer_seed(dir, "rabitq2-residual-factors", residual, &points(64, 13))?;
    Ok(())
}
