//! Dataset files: texmex `fvecs`/`ivecs`/`bvecs`, big-ann `fbin`/`ibin`/`u8bin`/`i8bin` and
//! NumPy `.npy`.
//!
//! - [`read`] / [`read_first`] / [`read_rows`]: a whole file, its first rows, or a row range
//!   (reading nothing else), into a [`Matrix`](crate::Matrix), as the file's element type or converted to
//!   `f32`.
//! - [`DatasetReader`]: the same on an open file or any `Read + Seek`, plus streaming in
//!   chunks ([`DatasetReader::next_chunk`]) or rows ([`DatasetReader::rows_iter`]) for files
//!   larger than memory.
//! - [`map`]: a zero-copy memory-mapped view ([`MappedMatrix`]) of a `*bin` or `.npy` file.
//! - [`write`](fn@write) / [`DatasetWriter`]: writers for every format.

mod mmap;
pub(crate) mod npy;
mod reader;
mod writer;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use mmap::{MappedMatrix, map};
pub use reader::{DatasetReader, RowIter, read, read_first, read_rows};
pub use writer::{DatasetWriter, write};

use crate::{ElementType, Error, Result};

/// Largest dimension a dataset reader accepts (2^24 values per row); a larger value in a
/// header is refused before anything is allocated.
pub const MAX_DIM: usize = 1 << 24;

/// A dataset file format. [`Format::from_path`] picks it from the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// texmex `.fvecs`: per row a little-endian `i32` dimension, then `f32` values.
    Fvecs,
    /// texmex `.ivecs`: the same with `i32` values (ground truth files).
    Ivecs,
    /// texmex `.bvecs`: the same with `u8` values.
    Bvecs,
    /// big-ann `.fbin`: `u32` rows, `u32` dimension, then `f32` values.
    Fbin,
    /// big-ann `.ibin`: the same with `i32` values.
    Ibin,
    /// big-ann `.u8bin`: the same with `u8` values.
    U8bin,
    /// big-ann `.i8bin`: the same with `i8` values.
    I8bin,
    /// NumPy `.npy` (header versions 1–3, C order, 1-D or more; trailing axes form a row).
    Npy,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 8] =
        [Self::Fvecs, Self::Ivecs, Self::Bvecs, Self::Fbin, Self::Ibin, Self::U8bin, Self::I8bin, Self::Npy];

    /// The format named by `path`'s extension (ASCII case-insensitive), if any.
    pub fn from_path(path: impl AsRef<Path>) -> Option<Format> {
        let ext = path.as_ref().extension()?.to_str()?.to_ascii_lowercase();
        Self::ALL.into_iter().find(|f| f.extension() == ext)
    }

    /// The usual file extension, without the dot.
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Fvecs => "fvecs",
            Self::Ivecs => "ivecs",
            Self::Bvecs => "bvecs",
            Self::Fbin => "fbin",
            Self::Ibin => "ibin",
            Self::U8bin => "u8bin",
            Self::I8bin => "i8bin",
            Self::Npy => "npy",
        }
    }

    /// The element type the format stores; `None` for npy, whose header says.
    pub const fn element_type(self) -> Option<ElementType> {
        match self {
            Self::Fvecs | Self::Fbin => Some(ElementType::F32),
            Self::Ivecs | Self::Ibin => Some(ElementType::I32),
            Self::Bvecs | Self::U8bin => Some(ElementType::U8),
            Self::I8bin => Some(ElementType::I8),
            Self::Npy => None,
        }
    }

    /// Whether rows carry a dimension prefix (texmex).
    pub const fn is_texmex(self) -> bool {
        matches!(self, Self::Fvecs | Self::Ivecs | Self::Bvecs)
    }

    /// Whether a file of this format can be mapped without copying ([`map`]).
    pub const fn is_mappable(self) -> bool {
        !self.is_texmex()
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

/// Where a file's rows are, as its header says, checked against the file's length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub format: Format,
    pub elem: ElementType,
    pub dim: usize,
    pub rows: u64,
    /// Byte offset of row 0.
    pub data_offset: u64,
}

impl Layout {
    /// Bytes before each row's values: the texmex dimension.
    pub(crate) fn prefix(&self) -> u64 {
        if self.format.is_texmex() { 4 } else { 0 }
    }

    /// Bytes per row, prefix included (fits: `dim ≤ MAX_DIM`).
    pub(crate) fn row_bytes(&self) -> u64 {
        self.prefix() + self.dim as u64 * self.elem.size() as u64
    }

    /// Byte offset of row `row` (`row ≤ rows`).
    pub(crate) fn row_offset(&self, row: u64) -> u64 {
        self.data_offset + row * self.row_bytes()
    }

    /// Reads and checks the header of `src` (`len` bytes long) as `format`.
    pub(crate) fn read<R: Read + Seek>(src: &mut R, len: u64, format: Format, file: &Path) -> Result<Layout> {
        crate::error::check_host()?;
        if len == 0 {
            return Err(Error::Empty { file: file.into() });
        }
        let io = crate::error::io_err(file);
        let mut head = [0u8; 12];
        let got = read_at_most(src, 0, &mut head).map_err(io)?;
        let head = &head[..got];
        let bad_dim = |row, dim, reason| Error::BadDimension { file: file.into(), row, dim, reason };
        match format {
            Format::Fvecs | Format::Ivecs | Format::Bvecs => {
                let elem = format.element_type().unwrap_or(ElementType::U8);
                let Some(d) = head.get(..4) else {
                    return Err(Error::Truncated { file: file.into(), row: 0, needed: 4, available: len });
                };
                let dim = i32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                let dim = check_dim(i64::from(dim)).map_err(|reason| bad_dim(0, i64::from(dim), reason))?;
                let layout = Layout { format, elem, dim, rows: 0, data_offset: 0 };
                let row_bytes = layout.row_bytes();
                if row_bytes > len {
                    return Err(Error::Truncated { file: file.into(), row: 0, needed: row_bytes, available: len });
                }
                let rows = len / row_bytes;
                if !len.is_multiple_of(row_bytes) {
                    let mut d = [0u8; 4];
                    // The common case, a cut last row, costs one read: the last whole row
                    // still has the right dimension (after a row of another dimension, row
                    // boundaries are shifted and it almost never has).
                    src.seek(SeekFrom::Start((rows - 1) * row_bytes)).map_err(io_err(file))?;
                    src.read_exact(&mut d).map_err(io_err(file))?;
                    let last_ok = i64::from(i32::from_le_bytes(d)) == dim as i64;
                    // Otherwise find the first row whose dimension differs.
                    for row in (1..rows).filter(|_| !last_ok) {
                        src.seek(SeekFrom::Start(row * row_bytes)).map_err(io_err(file))?;
                        src.read_exact(&mut d).map_err(io_err(file))?;
                        let found = i32::from_le_bytes(d);
                        if i64::from(found) != dim as i64 {
                            return Err(Error::DimensionMismatch {
                                file: file.into(),
                                row,
                                expected: dim,
                                found: found.into(),
                            });
                        }
                    }
                    return Err(Error::Truncated {
                        file: file.into(),
                        row: rows,
                        needed: row_bytes,
                        available: len % row_bytes,
                    });
                }
                Ok(Layout { rows, ..layout })
            }
            Format::Fbin | Format::Ibin | Format::U8bin | Format::I8bin => {
                let elem = format.element_type().unwrap_or(ElementType::U8);
                let Some(h) = head.get(..8) else {
                    return Err(Error::BadHeader {
                        file: file.into(),
                        what: format!("the 8-byte header (rows, dimension) is cut short at {len} bytes"),
                    });
                };
                let rows = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                let dim = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
                let dim = check_dim(dim.into()).map_err(|reason| bad_dim(0, dim.into(), reason))?;
                Layout { format, elem, dim, rows: rows.into(), data_offset: 8 }.check_len(len, file)
            }
            Format::Npy => {
                let (version, start, hlen) =
                    npy::prefix(head).map_err(|what| Error::BadHeader { file: file.into(), what })?;
                if hlen > npy::MAX_HEADER {
                    return Err(Error::BadHeader {
                        file: file.into(),
                        what: format!("header of {hlen} bytes (at most {} are read)", npy::MAX_HEADER),
                    });
                }
                let data_offset = start + hlen;
                if data_offset > len {
                    return Err(Error::BadHeader {
                        file: file.into(),
                        what: format!("the {hlen}-byte header runs past the end of the file ({len} bytes)"),
                    });
                }
                let mut text = vec![0u8; hlen as usize]; // ≤ MAX_HEADER and ≤ len
                src.seek(SeekFrom::Start(start)).map_err(io_err(file))?;
                src.read_exact(&mut text).map_err(io_err(file))?;
                if version == 3 && std::str::from_utf8(&text).is_err() {
                    return Err(Error::BadHeader { file: file.into(), what: "version 3 header is not UTF-8".into() });
                }
                let h = npy::parse(&text).map_err(|what| Error::BadHeader { file: file.into(), what })?;
                let elem = h.descr.map_err(|descr| Error::UnsupportedDtype { file: file.into(), descr })?;
                if h.fortran_order && h.shape.iter().filter(|&&d| d != 1).count() > 1 {
                    return Err(Error::FortranOrder { file: file.into() });
                }
                let (rows, dim) = match h.shape.split_first() {
                    None => return Err(Error::BadHeader { file: file.into(), what: "0-d array (shape ())".into() }),
                    Some((&rows, [])) => (rows, 1),
                    Some((&rows, rest)) => {
                        let dim = rest.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX);
                        (rows, dim)
                    }
                };
                let dim = check_dim(i64::try_from(dim).unwrap_or(i64::MAX))
                    .map_err(|reason| bad_dim(0, i64::try_from(dim).unwrap_or(i64::MAX), reason))?;
                Layout { format, elem, dim, rows, data_offset }.check_len(len, file)
            }
        }
    }

    /// For headers that declare the row count: the file must hold exactly that many rows.
    fn check_len(self, len: u64, file: &Path) -> Result<Layout> {
        let body = len - self.data_offset;
        let row_bytes = self.row_bytes();
        let full = body / row_bytes;
        if full < self.rows {
            return Err(Error::Truncated {
                file: file.into(),
                row: full,
                needed: row_bytes,
                available: body - full * row_bytes,
            });
        }
        let extra = body - self.rows * row_bytes; // rows ≤ full: no overflow
        if extra != 0 {
            return Err(Error::TrailingBytes { file: file.into(), rows: self.rows, dim: self.dim, extra });
        }
        Ok(self)
    }
}

/// A dimension from a header, or why not.
fn check_dim(dim: i64) -> Result<usize, &'static str> {
    if dim < 1 {
        Err("must be at least 1")
    } else if dim as u64 > MAX_DIM as u64 {
        Err("larger than vq_io::MAX_DIM (2^24)")
    } else {
        Ok(dim as usize)
    }
}

/// Reads up to `buf.len()` bytes from `offset`, fewer only at the end of the source.
fn read_at_most<R: Read + Seek>(src: &mut R, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    src.seek(SeekFrom::Start(offset))?;
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn io_err(file: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |error| Error::Io { file: file.to_path_buf(), error }
}

/// The name used in errors for in-memory sources.
pub(crate) fn memory_name() -> PathBuf {
    PathBuf::from("<memory>")
}
