//! Zero-copy memory-mapped views of `*bin` and `.npy` files.

use std::fs::File;
use std::marker::PhantomData;
use std::path::Path;

use super::{Format, Layout, io_err};
use crate::{Element, Error, Result};

/// Maps a `*bin` or `.npy` file holding `T` and returns a view of its rows without copying.
///
/// Opening costs the same for any file size: only the header is read. The file must not be
/// truncated or modified while the view lives (as with every memory map, doing so is
/// undefined behaviour; vq never does).
///
/// ```no_run
/// let base = vq_io::map::<f32>("deep10m/base.fbin")?;
/// let first = base.row(0).unwrap();
/// # Ok::<(), vq_io::Error>(())
/// ```
pub fn map<T: Element>(path: impl AsRef<Path>) -> Result<MappedMatrix<T>> {
    let path = path.as_ref();
    let format = Format::from_path(path).ok_or_else(|| Error::UnknownFormat { file: path.into() })?;
    MappedMatrix::open_as(path, format)
}

/// A dataset file mapped into memory: `rows × dim` values of `T`, row-major, borrowed from
/// the map ([`map`]).
#[derive(Debug)]
pub struct MappedMatrix<T> {
    map: memmap2::Mmap,
    offset: usize,
    len: usize,
    dim: usize,
    _t: PhantomData<T>,
}

impl<T: Element> MappedMatrix<T> {
    /// Maps `path` as `format` (not a texmex format: their rows are not contiguous).
    pub fn open_as(path: impl AsRef<Path>, format: Format) -> Result<Self> {
        let path = path.as_ref();
        if format.is_texmex() {
            return Err(Error::NotMappable { file: path.into(), what: "texmex rows carry a dimension prefix" });
        }
        let mut file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let layout = Layout::read(&mut file, len, format, path)?;
        if layout.elem != T::TYPE {
            return Err(Error::ElementType { file: path.into(), expected: T::TYPE.name(), found: layout.elem.name() });
        }
        let too_big = || Error::NotMappable { file: path.into(), what: "the file is larger than the address space" };
        let offset = usize::try_from(layout.data_offset).map_err(|_| too_big())?;
        let len = usize::try_from(layout.rows * layout.dim as u64).map_err(|_| too_big())?;
        // SAFETY: the map is read-only and private to this value; the file is not modified
        // through it. Another process truncating or writing the file while it is mapped is
        // outside what Rust can guard against: the type's documentation forbids it.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))?;
        let end = len.checked_mul(size_of::<T>()).and_then(|b| b.checked_add(offset));
        let bytes = end.and_then(|end| map.get(offset..end)).ok_or(Error::Truncated {
            file: path.into(),
            row: 0,
            needed: layout.row_bytes(),
            available: map.len().saturating_sub(offset) as u64,
        })?;
        if bytemuck::try_cast_slice::<u8, T>(bytes).is_err() {
            return Err(Error::NotMappable {
                file: path.into(),
                what: "the data does not start at a multiple of the element's alignment",
            });
        }
        Ok(Self { map, offset, len, dim: layout.dim, _t: PhantomData })
    }

    /// All values, row after row.
    pub fn as_slice(&self) -> &[T] {
        let bytes = &self.map[self.offset..self.offset + self.len * size_of::<T>()];
        // Alignment and length were checked when the view was made and the map does not move.
        bytemuck::cast_slice(bytes)
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.len / self.dim
    }

    /// Row `i`, `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[T]> {
        self.as_slice().get(i.checked_mul(self.dim)?..(i + 1).checked_mul(self.dim)?)
    }
}
