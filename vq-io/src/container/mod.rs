//! The index container: one file holding an index's named sections.
//!
//! # Layout (format version 1, all numbers little-endian)
//! ```text
//! 0   magic  \x89VQIDX\r\n           (8 bytes; catches text-mode mangling, as PNG's does)
//! 8   format version: u32 = 1
//! 12  flags: u32 = 0 (reserved)
//! 16  file length: u64
//! 24  table offset: u64               (64-aligned; the table ends the file)
//! 32  section count: u32
//! 36  reserved: u32 = 0
//! 40  table checksum: u64             (xxh3-64 of bytes 0..40, then the table)
//! 48  reserved (16 bytes of 0)
//! 64  sections, each starting at a multiple of 64, zero padding between
//! ..  table: one 128-byte entry per section:
//!       0  name (UTF-8, 1..=64 bytes, zero-padded)    64  offset: u64
//!       72 length: u64                               80  checksum: u64 (xxh3-64)
//!       88 kind: u8 (1 JSON, 2 array, 3 bytes)        89  element type code: u8 (arrays)
//!       90 flags: u8 (bit 0: required)               92  section version: u32
//!       96 reserved (32 bytes of 0)
//! ```
//! xxh3 rather than crc32c: it needs no CPU extension to run at memory speed (tens of GB/s,
//! so verifying every checksum of a large index costs little beside reading it) and its
//! 64 bits make accidental matches negligible.
//!
//! The checksums cover every byte a reader uses: the header's fields and the table (one sum),
//! and each section. The header's last 16 reserved bytes and the zero padding between sections
//! are read by nothing and covered by nothing, on purpose: a flipped bit there changes no
//! answer, and refusing an intact index over it would make its owner rebuild for nothing.

mod kind;
mod mapped;
mod reader;
mod writer;

pub use kind::{INDEX_KIND_SECTION, IndexKind};
pub use mapped::MappedArray;
pub use reader::{ContainerReader, OpenOptions};
pub use writer::ContainerWriter;
pub(crate) use writer::create_temp;

use crate::ElementType;

/// The first 8 bytes of every container.
pub const MAGIC: [u8; 8] = *b"\x89VQIDX\r\n";
/// The container format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Section starts are multiples of this.
pub const ALIGN: u64 = 64;
/// Longest section name, in bytes.
pub const MAX_NAME: usize = 64;

pub(crate) const HEADER_LEN: u64 = 64;
pub(crate) const ENTRY_LEN: u64 = 128;

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// Parameters as JSON (serde).
    Json,
    /// A little-endian array of one [`ElementType`].
    Array(ElementType),
    /// Opaque bytes.
    Bytes,
}

impl SectionKind {
    pub(crate) fn codes(self) -> (u8, u8) {
        match self {
            Self::Json => (1, 0),
            Self::Array(t) => (2, t.code()),
            Self::Bytes => (3, 0),
        }
    }

    pub(crate) fn from_codes(kind: u8, elem: u8) -> Option<Self> {
        match (kind, elem) {
            (1, 0) => Some(Self::Json),
            (2, e) => ElementType::from_code(e).map(Self::Array),
            (3, 0) => Some(Self::Bytes),
            _ => None,
        }
    }
}

impl std::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json => f.write_str("JSON"),
            Self::Array(t) => write!(f, "an array of {t}"),
            Self::Bytes => f.write_str("bytes"),
        }
    }
}

/// One entry of a container's section table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// The section's name, unique in its container.
    pub name: String,
    /// What it holds.
    pub kind: SectionKind,
    /// The version of the section's layout, owned by the index type that writes it.
    pub version: u32,
    /// Whether a reader that does not know this section must refuse the file
    /// ([`ContainerReader::check_known`]).
    pub required: bool,
    /// Byte offset in the file (a multiple of [`ALIGN`]).
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// xxh3-64 of the section's bytes.
    pub checksum: u64,
}
