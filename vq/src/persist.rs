//! `write_index` / `read_index`: every index type in one container file that starts with an
//! `index.kind` section naming the index; the reader dispatches on it.
//!
//! Layout: `index.kind` (JSON: factory string, format version, dimension, metric), then the
//! index's own sections under the prefix `index` (a refine index puts its base under
//! `index.base` and its store under `index.refine`; a transform its parameters under
//! `….opq` and the index behind it under `….inner`). Each part owns its section names and
//! versions (vq-graph's `hnsw` sections, vq-quant's quantizer sections).

use std::path::Path;

use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter, IndexKind, OpenOptions};
use vq_ivf::{FlatCodec, PqCodec, RaBitQCodec, SqCodec};
use vq_quant::fastscan::{FastScanCodes, RaBitQFastScan};
use vq_quant::{ProductQuantizer, RaBitQuantizer};

use crate::codes::CodesIndex;
use crate::error::{Error, Result};
use crate::factory::with_quantizer_type;
use crate::flat::{FlatIndex, parse_metric};
use crate::graph::{HnswCodesIndex, HnswFlatIndex};
use crate::index::Index;
use crate::ivf::{IvfFastScanIndex, IvfIndex};
use crate::refine::RefineIndex;
use crate::spec::{BaseSpec, CodecSpec, IndexSpec, StorageSpec};
use crate::transform::PreTransformIndex;

/// The index format this build writes and the newest it reads.
pub const INDEX_FORMAT_VERSION: u32 = 1;

/// How [`read_index_with`] opens a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Map the file instead of reading it. Without a map the file is read section by section,
    /// the large arrays (vectors, codes, lists) straight into the index's own memory. With one,
    /// IVF indexes (`IVF…,Flat`, `…,SQ…`, `…,PQ…`, also behind an OPQ rotation) serve their
    /// lists' ids and codes straight from the map, and copy a list into their own memory only
    /// when it is written (add, remove, merge); their
    /// [`MemoryUsage::mapped`](crate::MemoryUsage::mapped) says how much is mapped. Every
    /// other part (and every other index kind, the 4-bit fast-scan IVF and refine stores
    /// included) is copied out of the map. Checksums are verified either way (a mapped file's
    /// when it is opened, which reads it whole once). A mapped file must not be modified or
    /// truncated while the index lives (writing a new index over it is safe: writes replace
    /// the file by a rename).
    pub mmap: bool,
}

/// Writes `index` to `path` atomically: a crash leaves the previous file (if any) intact.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("idx.vq");
/// let mut index = vq::index_factory(4, "Flat", vq::Metric::L2)?;
/// index.add(&[0.0, 0.0, 0.0, 1.0, 5.0, 5.0, 5.0, 5.0])?;
/// vq::write_index(index.as_ref(), &path)?;
/// let back = vq::read_index(&path)?;
/// assert_eq!(back.search(&[5.0; 4], 1)?.ids(), &[1]);
/// # Ok::<(), vq::Error>(())
/// ```
pub fn write_index(index: &dyn Index, path: impl AsRef<Path>) -> Result<()> {
    let mut w = ContainerWriter::create(path)?;
    write_contents(index, &mut w)?;
    Ok(w.finish()?)
}

/// The bytes [`write_index`] would write to a file, in memory (Faiss' `serialize_index`):
/// for sending an index to another process or keeping it in an object store.
/// [`read_index_from_bytes`] reads them back.
///
/// ```
/// let mut index = vq::index_factory(4, "Flat", vq::Metric::L2)?;
/// index.add(&[0.0, 0.0, 0.0, 1.0, 5.0, 5.0, 5.0, 5.0])?;
/// let bytes = vq::write_index_to_bytes(index.as_ref())?;
/// let back = vq::read_index_from_bytes(&bytes)?;
/// assert_eq!(back.search(&[5.0; 4], 1)?.ids(), &[1]);
/// # Ok::<(), vq::Error>(())
/// ```
pub fn write_index_to_bytes(index: &dyn Index) -> Result<Vec<u8>> {
    let mut w = ContainerWriter::in_memory()?;
    write_contents(index, &mut w)?;
    Ok(w.finish_to_bytes()?)
}

fn write_contents(index: &dyn Index, w: &mut ContainerWriter) -> Result<()> {
    w.add_index_kind(&IndexKind {
        spec: index.spec().to_string(),
        format_version: INDEX_FORMAT_VERSION,
        dim: index.dim(),
        metric: index.metric().name().into(),
    })?;
    index.write_sections(w, "index")
}

/// Reads an index written by [`write_index`]; it answers every search exactly as the written
/// one did.
pub fn read_index(path: impl AsRef<Path>) -> Result<Box<dyn Index>> {
    read_index_with(path, ReadOptions::default())
}

/// [`read_index`] with options.
pub fn read_index_with(path: impl AsRef<Path>, options: ReadOptions) -> Result<Box<dyn Index>> {
    let r = ContainerReader::open_with(path, OpenOptions { mmap: options.mmap, ..Default::default() })?;
    read_index_from_container(&r)
}

/// Reads an index from the bytes of a file written by [`write_index`] (every checksum
/// verified).
pub fn read_index_from_bytes(bytes: &[u8]) -> Result<Box<dyn Index>> {
    read_index_from_container(&ContainerReader::from_bytes(bytes, true)?)
}

/// Reads an index from an open container (the bytes of a file written by [`write_index`]).
pub fn read_index_from_container(r: &ContainerReader) -> Result<Box<dyn Index>> {
    let kind = r.index_kind(INDEX_FORMAT_VERSION)?;
    let spec: IndexSpec = kind.spec.parse()?;
    let metric = parse_metric(&kind.metric)?;
    let index = match spec.refine {
        None => read_transformed(r, &spec, metric, "index")?,
        Some(refine) => {
            let base = read_transformed(r, &spec, metric, "index.base")?;
            Box::new(RefineIndex::read_sections(r, "index.refine", base, refine)?)
        }
    };
    // Each part validated its own sections; this checks they describe the index the kind
    // section names, so a file stitched from two indexes is refused.
    if index.spec() != spec || index.dim() != kind.dim || index.metric() != metric {
        return Err(Error::Corrupt {
            what: format!(
                "index.kind names {} (dimension {}, {}) but the sections hold {} (dimension {}, {})",
                kind.spec,
                kind.dim,
                kind.metric,
                index.spec(),
                index.dim(),
                index.metric()
            ),
        });
    }
    Ok(index)
}

/// The base index of `spec` under `prefix`, behind its transform if it has one (`metric`:
/// the file's, that of the vectors going in).
fn read_transformed(r: &ContainerReader, spec: &IndexSpec, metric: Metric, prefix: &str) -> Result<Box<dyn Index>> {
    Ok(match spec.transform {
        None => read_base(r, spec.base, prefix)?,
        Some(transform) => {
            let inner = read_base(r, spec.base, &PreTransformIndex::inner_prefix(prefix))?;
            Box::new(PreTransformIndex::read_sections(r, prefix, transform, metric, inner)?)
        }
    })
}

fn read_base(r: &ContainerReader, base: BaseSpec, prefix: &str) -> Result<Box<dyn Index>> {
    Ok(match base {
        BaseSpec::Ivf { storage: StorageSpec::Codec(codec @ CodecSpec::Opq { .. }), .. }
        | BaseSpec::Hnsw {
            storage:
                StorageSpec::Codec(
                    codec
                    @ (CodecSpec::PqFastScan { .. } | CodecSpec::RaBitQ { .. } | CodecSpec::RaBitQFastScan { .. }),
                ),
            ..
        } => {
            return Err(Error::Corrupt {
                what: format!("index.kind names an index over {codec} codes of a kind vq does not write"),
            });
        }
        BaseSpec::Flat => Box::new(FlatIndex::read_sections(r, prefix)?),
        BaseSpec::Codes(codec @ CodecSpec::PqFastScan { .. }) => {
            Box::new(CodesIndex::<ProductQuantizer, FastScanCodes>::read_sections(r, prefix, codec)?)
        }
        BaseSpec::Codes(codec @ CodecSpec::RaBitQFastScan { .. }) => {
            Box::new(CodesIndex::<RaBitQuantizer, RaBitQFastScan>::read_sections(r, prefix, codec)?)
        }
        BaseSpec::Codes(codec) => {
            with_quantizer_type!(codec, Q => Box::new(CodesIndex::<Q>::read_sections(r, prefix, codec)?))
        }
        BaseSpec::Hnsw { storage: StorageSpec::Flat, .. } => Box::new(HnswFlatIndex::read_sections(r, prefix)?),
        BaseSpec::Hnsw { storage: StorageSpec::Codec(codec), .. } => {
            with_quantizer_type!(codec, Q => Box::new(HnswCodesIndex::<Q>::read_sections(r, prefix, codec)?))
        }
        BaseSpec::Ivf { storage: StorageSpec::Flat, .. } => Box::new(IvfIndex::<FlatCodec>::read_sections(r, prefix)?),
        BaseSpec::Ivf { storage: StorageSpec::Codec(CodecSpec::Sq(_)), .. } => {
            Box::new(IvfIndex::<SqCodec>::read_sections(r, prefix)?)
        }
        BaseSpec::Ivf { storage: StorageSpec::Codec(CodecSpec::Pq { .. }), .. } => {
            Box::new(IvfIndex::<PqCodec>::read_sections(r, prefix)?)
        }
        BaseSpec::Ivf {
            storage: StorageSpec::Codec(CodecSpec::PqFastScan { .. } | CodecSpec::RaBitQFastScan { .. }),
            ..
        } => Box::new(IvfFastScanIndex::read_sections(r, prefix)?),
        BaseSpec::Ivf { storage: StorageSpec::Codec(CodecSpec::RaBitQ { .. }), .. } => {
            Box::new(IvfIndex::<RaBitQCodec>::read_sections(r, prefix)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index_factory;

    /// A file whose kind section names another quantizer than its sections hold (RaBitQ of
    /// other bits, PQ of other sub-quantizers or bits, another scalar type; flat, graphs and
    /// fast scan, where the spec is the kind's, and inverted lists, where it is the codec's) is
    /// refused, either way round.
    #[test]
    fn the_kind_must_name_the_quantizer_its_sections_hold() {
        let data: Vec<f32> = (0..8 * 40).map(|i| ((i * 7 % 13) as f32).sin()).collect();
        for (written, claimed) in [
            ("RaBitQ", "RaBitQ4"),
            ("RaBitQ3", "RaBitQ"),
            ("IVF2,RaBitQ", "IVF2,RaBitQ2"),
            ("IVF2,RaBitQ5", "IVF2,RaBitQ"),
            ("RaBitQfs", "RaBitQfs4"),
            ("RaBitQfs3", "RaBitQfs"),
            ("SQ8", "SQ4"),
            ("PQ4x4", "PQ2x4"),
            ("PQ4x4", "PQ4x5"),
            ("PQ4x4fs", "PQ2x4fs"),
            ("OPQ2,PQ2x4", "OPQ4,PQ4x4"),
            ("HNSW8,SQ8", "HNSW8,SQfp16"),
            ("HNSW8,PQ2x4", "HNSW8,PQ4x4"),
        ] {
            let mut index = index_factory(8, written, Metric::L2).unwrap();
            index.train(&data).unwrap();
            index.add(&data).unwrap();
            let honest = write_index_to_bytes(index.as_ref()).unwrap();
            assert_eq!(read_index_from_bytes(&honest).unwrap().spec().to_string(), written);
            let mut w = ContainerWriter::in_memory().unwrap();
            w.add_index_kind(&IndexKind {
                spec: claimed.into(),
                format_version: INDEX_FORMAT_VERSION,
                dim: 8,
                metric: Metric::L2.name().into(),
            })
            .unwrap();
            index.write_sections(&mut w, "index").unwrap();
            let err = read_index_from_bytes(&w.finish_to_bytes().unwrap()).err().unwrap();
            assert!(matches!(err, Error::Corrupt { .. }), "{written} as {claimed}: {err}");
        }
    }
}
