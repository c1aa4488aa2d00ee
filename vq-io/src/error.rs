//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can be wrong with a file `vq-io` reads or writes, or with the arguments of a
/// `vq-io` function.
///
/// Each variant names the file (`file`; `<memory>` for an in-memory source), and where it
/// applies the row or the section and what was wrong, so a message needs no guessing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused a read, write, rename or sync.
    #[error("{}: {error}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What the operating system said.
        #[source]
        error: std::io::Error,
    },
    /// This host stores numbers big-endian; vq files are little-endian and are never misread.
    #[error("vq-io needs a little-endian host: its files store little-endian numbers")]
    BigEndianHost,
    /// The file holds no bytes at all.
    #[error("{}: the file is empty", file.display())]
    Empty {
        /// The file.
        file: PathBuf,
    },
    /// The file's extension names no format `vq-io` knows.
    #[error("{}: unknown dataset format (expected .fvecs, .ivecs, .bvecs, .fbin, .ibin, .u8bin, .i8bin or .npy)", file.display())]
    UnknownFormat {
        /// The file.
        file: PathBuf,
    },
    /// A row's dimension is zero, negative or too large for the file or for [`MAX_DIM`](crate::MAX_DIM).
    #[error("{}: row {row}: invalid dimension {dim}: {reason}", file.display())]
    BadDimension {
        /// The file.
        file: PathBuf,
        /// The row whose header carries it (0 for a file-level header).
        row: u64,
        /// The dimension as stored.
        dim: i64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A texmex row's dimension differs from the first row's.
    #[error("{}: row {row}: dimension {found} differs from the first row's {expected}", file.display())]
    DimensionMismatch {
        /// The file.
        file: PathBuf,
        /// The row.
        row: u64,
        /// The first row's dimension.
        expected: usize,
        /// This row's.
        found: i64,
    },
    /// The file ends inside a row (or is shorter than its header says).
    #[error("{}: row {row} is truncated: it needs {needed} bytes, the file has {available} left", file.display())]
    Truncated {
        /// The file.
        file: PathBuf,
        /// The first incomplete row.
        row: u64,
        /// Bytes the row needs.
        needed: u64,
        /// Bytes the file still has from the row's start.
        available: u64,
    },
    /// The file is longer than its header says.
    #[error("{}: {extra} bytes after the last row ({rows} rows of dimension {dim})", file.display())]
    TrailingBytes {
        /// The file.
        file: PathBuf,
        /// Rows the header declares.
        rows: u64,
        /// Dimension the header declares.
        dim: usize,
        /// Bytes left over.
        extra: u64,
    },
    /// A header is malformed (npy dictionary, big-ann row count, ...).
    #[error("{}: bad header: {what}", file.display())]
    BadHeader {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// An npy file's dtype is not one `vq-io` reads (big-endian, structured, object, ...).
    #[error("{}: unsupported npy dtype {descr:?} (supported: <f4 <f8 <f2 |u1 |i1 <u2 <i2 <u4 <i4 <u8 <i8)", file.display())]
    UnsupportedDtype {
        /// The file.
        file: PathBuf,
        /// The dtype descriptor as stored.
        descr: String,
    },
    /// An npy array stored in Fortran (column-major) order.
    #[error("{}: npy array is in Fortran order; only C order is supported", file.display())]
    FortranOrder {
        /// The file.
        file: PathBuf,
    },
    /// The caller asked for an element type the file does not hold (and that is not a
    /// conversion `vq-io` makes).
    #[error("{}: holds {found} values, asked for {expected}", file.display())]
    ElementType {
        /// The file.
        file: PathBuf,
        /// What the caller asked for.
        expected: &'static str,
        /// What the file holds.
        found: &'static str,
    },
    /// A zero-copy view is impossible: the data does not start at a multiple of the element's
    /// alignment, or the format stores rows that are not contiguous.
    #[error("{}: cannot map without copying: {what}", file.display())]
    NotMappable {
        /// The file.
        file: PathBuf,
        /// Why.
        what: &'static str,
    },
    /// A requested row range lies outside the file.
    #[error("{}: rows {start}..{end} requested, the file has {rows}", file.display())]
    RowRange {
        /// The file.
        file: PathBuf,
        /// First row asked for.
        start: u64,
        /// One past the last row asked for.
        end: u64,
        /// Rows in the file.
        rows: u64,
    },
    /// An argument of a writer (or of [`Matrix::new`](crate::Matrix::new)) is invalid.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What is wrong.
        what: String,
    },
    /// A container does not start with the container magic bytes.
    #[error("{}: not a vq container (bad magic bytes)", file.display())]
    BadMagic {
        /// The file.
        file: PathBuf,
    },
    /// A container written by a newer format version than this build reads.
    #[error("{}: container format version {found} is newer than the supported {supported}", file.display())]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A container's header or section table is inconsistent (bad counts, names, lengths).
    #[error("{}: corrupt container: {what}", file.display())]
    CorruptContainer {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A section reaches past the end of the container (or into its header or table).
    #[error("{}: section {name:?} ({offset}..{end}) lies outside the data area 64..{limit}", file.display())]
    SectionOutOfBounds {
        /// The file.
        file: PathBuf,
        /// The section.
        name: String,
        /// Its start.
        offset: u64,
        /// Its end (may have overflowed to `u64::MAX`).
        end: u64,
        /// Where the data area ends.
        limit: u64,
    },
    /// A section does not start at a multiple of 64 bytes.
    #[error("{}: section {name:?} starts at {offset}, not a multiple of 64", file.display())]
    SectionMisaligned {
        /// The file.
        file: PathBuf,
        /// The section.
        name: String,
        /// Its start.
        offset: u64,
    },
    /// Two sections share bytes.
    #[error("{}: sections {first:?} and {second:?} overlap", file.display())]
    SectionOverlap {
        /// The file.
        file: PathBuf,
        /// One section.
        first: String,
        /// The other.
        second: String,
    },
    /// Two sections have the same name.
    #[error("{}: section {name:?} appears twice", file.display())]
    DuplicateSection {
        /// The file.
        file: PathBuf,
        /// The name.
        name: String,
    },
    /// A section's (or the section table's) checksum does not match its bytes.
    #[error("{}: checksum mismatch in {name}: stored {stored:#018x}, computed {computed:#018x}", file.display())]
    ChecksumMismatch {
        /// The file.
        file: PathBuf,
        /// The section, or `<header>` for the header and section table.
        name: String,
        /// The checksum in the file.
        stored: u64,
        /// The checksum of the bytes.
        computed: u64,
    },
    /// A section marked required that the reading code does not know.
    #[error("{}: unknown required section {name:?} (written by a newer version?)", file.display())]
    UnknownRequiredSection {
        /// The file.
        file: PathBuf,
        /// The section.
        name: String,
    },
    /// A section the caller asked for is not in the container.
    #[error("{}: no section {name:?}", file.display())]
    MissingSection {
        /// The file.
        file: PathBuf,
        /// The section.
        name: String,
    },
    /// A section's layout version is not the one this build reads.
    #[error("{}: section {name:?} has layout version {found}, this build reads {expected}", file.display())]
    SectionVersion {
        /// The file.
        file: PathBuf,
        /// The section.
        name: String,
        /// The version this build reads.
        expected: u32,
        /// The version in the file.
        found: u32,
    },
    /// A section holds another kind of data than the caller asked for.
    #[error("{}: section {name:?} holds {found}, asked for {expected}", file.display())]
    SectionType {
        /// The file.
        file: PathBuf,
        /// The section.
        name: String,
        /// What the caller asked for.
        expected: String,
        /// What the section holds.
        found: String,
    },
    /// A parameter section's JSON does not decode into the requested type (or a value does
    /// not encode).
    #[error("{}: section {name:?}: {error}", file.display())]
    Json {
        /// The file.
        file: PathBuf,
        /// The section.
        name: String,
        /// What serde_json said.
        #[source]
        error: serde_json::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Refuses a big-endian host: every reader and writer calls this first.
#[inline]
pub(crate) fn check_host() -> Result<()> {
    if cfg!(target_endian = "big") { Err(Error::BigEndianHost) } else { Ok(()) }
}

/// Wraps an `io::Error` with its file.
pub(crate) fn io_err(file: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io { file: file.to_path_buf(), error }
}
