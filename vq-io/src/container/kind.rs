//! The `index.kind` section every index file starts with: what index the file holds (its
//! factory string) and the layout version of the index format, so a reader can dispatch on
//! it and refuse a newer format with a clear message instead of misreading sections.

use serde::{Deserialize, Serialize};

use super::{ContainerReader, ContainerWriter};
use crate::{Error, Result};

/// The section name.
pub const INDEX_KIND_SECTION: &str = "index.kind";

/// What an index file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexKind {
    /// The index's factory string (`"HNSW32,SQ8,RFlat"`).
    pub spec: String,
    /// The index format version the sections follow (written as the section's version too).
    pub format_version: u32,
    /// Vector dimension.
    pub dim: usize,
    /// Metric name (`l2`, `ip`, `cosine`).
    pub metric: String,
}

impl ContainerWriter {
    /// Adds the `index.kind` section (write it first; readers look for it before anything else).
    pub fn add_index_kind(&mut self, kind: &IndexKind) -> Result<()> {
        self.add_json(INDEX_KIND_SECTION, kind.format_version, kind)
    }
}

impl ContainerReader {
    /// Reads the `index.kind` section, refusing a format version above `newest` (the newest
    /// this build reads).
    pub fn index_kind(&self, newest: u32) -> Result<IndexKind> {
        let section_version = self.section(INDEX_KIND_SECTION)?.version;
        let kind: IndexKind = self.json(INDEX_KIND_SECTION)?;
        if kind.format_version != section_version {
            return Err(Error::CorruptContainer {
                file: self.path().to_path_buf(),
                what: format!(
                    "index.kind says format {} in a section of version {section_version}",
                    kind.format_version
                ),
            });
        }
        if kind.format_version > newest {
            return Err(Error::UnsupportedVersion {
                file: self.path().to_path_buf(),
                found: kind.format_version,
                supported: newest,
            });
        }
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_round_trips_and_newer_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let kind = |v| IndexKind { spec: "HNSW32,SQ8".into(), format_version: v, dim: 8, metric: "l2".into() };
        for v in [1, 3] {
            let path = dir.path().join(format!("k{v}.vq"));
            let mut w = ContainerWriter::create(&path).unwrap();
            w.add_index_kind(&kind(v)).unwrap();
            w.finish().unwrap();
            let r = ContainerReader::open(&path).unwrap();
            match v {
                1 => assert_eq!(r.index_kind(2).unwrap(), kind(1)),
                _ => assert!(matches!(r.index_kind(2), Err(Error::UnsupportedVersion { found: 3, supported: 2, .. }))),
            }
        }
    }
}
