//! Reading dataset files: whole, by row range, or streamed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{Format, Layout, io_err, memory_name};
use crate::element::decode_into;
use crate::{Element, ElementType, Error, Matrix, Result};

/// Bytes read per system call when reading many rows: small enough to stay in a core's L2
/// cache while it is decoded.
const CHUNK_BYTES: u64 = 1 << 20;

/// Reads a whole dataset file as `T`: the file's own element type, or `f32` from any type
/// (e.g. `read::<f32>("base.bvecs")`). The format comes from the extension.
///
/// ```no_run
/// let base = vq_io::read::<f32>("imgsift100k/base.bvecs")?;   // u8 converted to f32
/// let gt = vq_io::read::<i32>("imgsift100k/gt.ivecs")?;
/// println!("{} x {}", base.rows(), base.dim());
/// # Ok::<(), vq_io::Error>(())
/// ```
pub fn read<T: Element>(path: impl AsRef<Path>) -> Result<Matrix<T>> {
    DatasetReader::open(path)?.read_all()
}

/// Reads rows `range` of a dataset file, without reading the rest of it.
pub fn read_rows<T: Element>(path: impl AsRef<Path>, range: Range<u64>) -> Result<Matrix<T>> {
    DatasetReader::open(path)?.read_rows(range)
}

/// Reads the first `n` rows of a dataset file (all of them if it has fewer), without reading
/// the rest.
pub fn read_first<T: Element>(path: impl AsRef<Path>, n: u64) -> Result<Matrix<T>> {
    let mut r = DatasetReader::open(path)?;
    let end = n.min(r.rows());
    r.read_rows(0..end)
}

/// An open dataset file: its header has been read and checked against the file's length.
///
/// Rows are read on demand, so a file larger than memory can be read in ranges or streamed.
/// Reads check every texmex row's dimension prefix. Values come out as the file's element
/// type `T`, or converted to `f32` from any type.
#[derive(Debug)]
pub struct DatasetReader<R = File> {
    src: R,
    file: PathBuf,
    layout: Layout,
    /// The next row [`next_chunk`](Self::next_chunk) returns.
    cursor: u64,
    /// Reused read buffer.
    buf: Vec<u8>,
}

impl DatasetReader<File> {
    /// Opens `path`, the format from its extension.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let format = Format::from_path(path).ok_or_else(|| Error::UnknownFormat { file: path.into() })?;
        Self::open_as(path, format)
    }

    /// Opens `path` as `format`, whatever its extension.
    pub fn open_as(path: impl AsRef<Path>, format: Format) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_err(path))?;
        Self::new(file, format, path)
    }
}

impl<'a> DatasetReader<std::io::Cursor<&'a [u8]>> {
    /// Reads from bytes in memory (errors name the file `<memory>`).
    pub fn from_bytes(bytes: &'a [u8], format: Format) -> Result<Self> {
        Self::new(std::io::Cursor::new(bytes), format, memory_name())
    }
}

impl<R: Read + Seek> DatasetReader<R> {
    /// Reads the header of `src` as `format`; `name` is the file named in errors.
    pub fn new(mut src: R, format: Format, name: impl Into<PathBuf>) -> Result<Self> {
        let file = name.into();
        let len = src.seek(SeekFrom::End(0)).map_err(io_err(&file))?;
        let layout = Layout::read(&mut src, len, format, &file)?;
        Ok(Self { src, file, layout, cursor: 0, buf: Vec::new() })
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.layout.format
    }

    /// The element type the file holds.
    pub fn element_type(&self) -> ElementType {
        self.layout.elem
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.layout.dim
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.layout.rows
    }

    /// The file named in errors.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Reads every row.
    pub fn read_all<T: Element>(mut self) -> Result<Matrix<T>> {
        self.read_rows(0..self.layout.rows)
    }

    /// Reads rows `range` (seeking to the first; nothing else is read).
    pub fn read_rows<T: Element>(&mut self, range: Range<u64>) -> Result<Matrix<T>> {
        let mut out = Vec::new();
        self.read_rows_into(range, &mut out)?;
        Ok(Matrix::from_parts(out, self.layout.dim))
    }

    /// Appends rows `range` to `out` (whose length should be a multiple of [`dim`](Self::dim)).
    pub fn read_rows_into<T: Element>(&mut self, range: Range<u64>, out: &mut Vec<T>) -> Result<()> {
        let l = self.layout;
        if range.start > range.end || range.end > l.rows {
            return Err(Error::RowRange { file: self.file.clone(), start: range.start, end: range.end, rows: l.rows });
        }
        self.check_type::<T>()?;
        let n = range.end - range.start;
        // Bounded by the file's length, which the header was checked against.
        crate::hugepage::reserve(out, (n as usize).saturating_mul(l.dim));
        let row_bytes = l.row_bytes();
        let chunk_rows = (CHUNK_BYTES / row_bytes).max(1);
        self.src.seek(SeekFrom::Start(l.row_offset(range.start))).map_err(io_err(&self.file))?;
        let mut row = range.start;
        while row < range.end {
            let rows = chunk_rows.min(range.end - row);
            let bytes = (rows * row_bytes) as usize;
            self.buf.resize(bytes, 0);
            if let Err(e) = self.src.read_exact(&mut self.buf) {
                return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    // The file shrank after its header was checked.
                    Error::Truncated { file: self.file.clone(), row, needed: row_bytes, available: 0 }
                } else {
                    Error::Io { file: self.file.clone(), error: e }
                });
            }
            if l.format.is_texmex() {
                for (i, r) in self.buf.chunks_exact(row_bytes as usize).enumerate() {
                    let found = i32::from_le_bytes([r[0], r[1], r[2], r[3]]);
                    if i64::from(found) != l.dim as i64 {
                        return Err(Error::DimensionMismatch {
                            file: self.file.clone(),
                            row: row + i as u64,
                            expected: l.dim,
                            found: found.into(),
                        });
                    }
                    decode_into(l.elem, &r[4..], out);
                }
            } else {
                decode_into(l.elem, &self.buf, out);
            }
            row += rows;
        }
        Ok(())
    }

    /// The next at most `max_rows` rows of a stream over the file (from row 0, or from where
    /// [`seek_row`](Self::seek_row) put it); `None` at the end.
    pub fn next_chunk<T: Element>(&mut self, max_rows: usize) -> Result<Option<Matrix<T>>> {
        if self.cursor >= self.layout.rows {
            return Ok(None);
        }
        let end = self.layout.rows.min(self.cursor.saturating_add(max_rows.max(1) as u64));
        let m = self.read_rows(self.cursor..end)?;
        self.cursor = end;
        Ok(Some(m))
    }

    /// Moves the stream of [`next_chunk`](Self::next_chunk) and [`rows_iter`](Self::rows_iter)
    /// to `row` (at most [`rows`](Self::rows)).
    pub fn seek_row(&mut self, row: u64) -> Result<()> {
        if row > self.layout.rows {
            return Err(Error::RowRange { file: self.file.clone(), start: row, end: row, rows: self.layout.rows });
        }
        self.cursor = row;
        Ok(())
    }

    /// Streams the remaining rows one at a time, reading the file in chunks of about 1 MiB.
    /// The iterator ends after the first error.
    pub fn rows_iter<T: Element>(&mut self) -> RowIter<'_, R, T> {
        RowIter { reader: self, chunk: None, next: 0, failed: false }
    }

    fn check_type<T: Element>(&self) -> Result<()> {
        if T::TYPE == self.layout.elem || T::TYPE == ElementType::F32 {
            Ok(())
        } else {
            Err(Error::ElementType {
                file: self.file.clone(),
                expected: T::TYPE.name(),
                found: self.layout.elem.name(),
            })
        }
    }
}

/// Rows of a [`DatasetReader`], one `Vec` each ([`DatasetReader::rows_iter`]).
#[derive(Debug)]
pub struct RowIter<'a, R, T> {
    reader: &'a mut DatasetReader<R>,
    chunk: Option<Matrix<T>>,
    next: usize,
    failed: bool,
}

impl<R: Read + Seek, T: Element> Iterator for RowIter<'_, R, T> {
    type Item = Result<Vec<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(row) = self.chunk.as_ref().and_then(|c| c.row(self.next)) {
                self.next += 1;
                return Some(Ok(row.to_vec()));
            }
            let chunk_rows = (CHUNK_BYTES / self.reader.layout.row_bytes()).max(1) as usize;
            match self.reader.next_chunk(chunk_rows) {
                Ok(Some(c)) => {
                    self.chunk = Some(c);
                    self.next = 0;
                }
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
