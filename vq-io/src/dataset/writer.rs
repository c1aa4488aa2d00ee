//! Writing dataset files.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::{Format, MAX_DIM, io_err, memory_name, npy};
use crate::{Element, Error, Result};

/// Writes `data` (rows of `dim` values) to `path` as `format`, which must store `T`
/// (`Format::Fvecs` for `f32`, `Format::Npy` for every type but bf16, ...).
///
/// A texmex file cannot hold zero rows (the dimension is stored per row): that is an error.
pub fn write<T: Element>(path: impl AsRef<Path>, format: Format, data: &[T], dim: usize) -> Result<()> {
    let mut w = DatasetWriter::<T>::create(path, format, dim)?;
    w.write_rows(data)?;
    w.finish()?;
    Ok(())
}

/// Writes a dataset file row by row; [`finish`](Self::finish) completes the header.
///
/// A writer made by [`create`](Self::create) writes to a temporary file beside the target
/// and renames it over the target in `finish`: the target is replaced whole or not at all
/// (dropping the writer removes the temporary file). The file is not synced; call
/// `sync_all` on the returned writer's file if it must survive a power loss.
#[derive(Debug)]
pub struct DatasetWriter<T, W: Write + Seek = BufWriter<File>> {
    out: W,
    /// The temporary file `finish` renames to `file`.
    temp: TempGuard,
    file: PathBuf,
    format: Format,
    dim: usize,
    rows: u64,
    buf: Vec<u8>,
    _t: PhantomData<T>,
}

impl<T: Element> DatasetWriter<T> {
    /// Starts a file that [`finish`](Self::finish) places at `path` (replacing any file there).
    pub fn create(path: impl AsRef<Path>, format: Format, dim: usize) -> Result<Self> {
        let path = path.as_ref();
        Self::check(format, dim, path)?;
        // Writing a new file and renaming it is also faster than truncating a cached one.
        let (f, tmp) = crate::container::create_temp(path)?;
        let guard = TempGuard(Some(tmp));
        let mut w = Self::new(BufWriter::with_capacity(1 << 20, f), format, dim, path)?;
        w.temp = guard;
        Ok(w)
    }
}

impl<T: Element> DatasetWriter<T, std::io::Cursor<Vec<u8>>> {
    /// Writes into memory; [`finish`](Self::finish) returns the cursor.
    pub fn in_memory(format: Format, dim: usize) -> Result<Self> {
        Self::new(std::io::Cursor::new(Vec::new()), format, dim, memory_name())
    }
}

impl<T: Element, W: Write + Seek> DatasetWriter<T, W> {
    /// Writes to `out` (at its current position, which must be 0 for the header to be found);
    /// `name` is the file named in errors.
    pub fn new(mut out: W, format: Format, dim: usize, name: impl Into<PathBuf>) -> Result<Self> {
        let file = name.into();
        Self::check(format, dim, &file)?;
        let header = Self::header(format, dim, 0);
        out.write_all(&header).map_err(io_err(&file))?;
        Ok(Self { out, temp: TempGuard(None), file, format, dim, rows: 0, buf: Vec::new(), _t: PhantomData })
    }

    fn check(format: Format, dim: usize, file: &Path) -> Result<()> {
        crate::error::check_host()?;
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::InvalidArgument { what: format!("dimension {dim} is not in 1..=2^24") });
        }
        let ok = match format.element_type() {
            Some(t) => t == T::TYPE,
            None => T::TYPE.npy_descr().is_some(),
        };
        if !ok {
            return Err(Error::ElementType {
                file: file.into(),
                expected: T::TYPE.name(),
                found: format.element_type().map_or("a type npy has", |t| t.name()),
            });
        }
        Ok(())
    }

    fn header(format: Format, dim: usize, rows: u64) -> Vec<u8> {
        match format {
            Format::Fvecs | Format::Ivecs | Format::Bvecs => Vec::new(),
            Format::Npy => {
                // Always fits: any u64 shape fits the fixed header.
                npy::write_header(T::TYPE.npy_descr().unwrap_or("|u1"), rows, dim as u64).unwrap_or_default()
            }
            _ => [(rows as u32).to_le_bytes(), (dim as u32).to_le_bytes()].concat(),
        }
    }

    /// Appends rows; `data.len()` must be a multiple of the dimension.
    pub fn write_rows(&mut self, data: &[T]) -> Result<()> {
        if !data.len().is_multiple_of(self.dim) {
            return Err(Error::InvalidArgument {
                what: format!("{} values are not a whole number of rows of dimension {}", data.len(), self.dim),
            });
        }
        let n = (data.len() / self.dim) as u64;
        let limit = if matches!(self.format, Format::Fbin | Format::Ibin | Format::U8bin | Format::I8bin) {
            u64::from(u32::MAX)
        } else {
            u64::MAX
        };
        if self.rows.checked_add(n).is_none_or(|r| r > limit) {
            return Err(Error::InvalidArgument { what: format!("{} holds at most {limit} rows", self.format) });
        }
        if self.format.is_texmex() {
            let prefix = (self.dim as i32).to_le_bytes();
            let row_bytes = 4 + self.dim * size_of::<T>();
            let rows_per_chunk = ((1 << 20) / row_bytes).max(1);
            for rows in data.chunks(rows_per_chunk * self.dim) {
                self.buf.clear();
                for row in rows.chunks_exact(self.dim) {
                    self.buf.extend_from_slice(&prefix);
                    self.buf.extend_from_slice(bytemuck::cast_slice(row));
                }
                self.out.write_all(&self.buf).map_err(io_err(&self.file))?;
            }
        } else {
            self.out.write_all(bytemuck::cast_slice(data)).map_err(io_err(&self.file))?;
        }
        self.rows += n;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the final header and flushes; returns the sink.
    pub fn finish(mut self) -> Result<W> {
        let io = io_err(&self.file);
        if self.format.is_texmex() {
            if self.rows == 0 {
                return Err(Error::InvalidArgument {
                    what: format!("a {} file cannot hold 0 rows (the dimension is stored per row)", self.format),
                });
            }
        } else {
            let header = Self::header(self.format, self.dim, self.rows);
            self.out.seek(SeekFrom::Start(0)).map_err(io)?;
            self.out.write_all(&header).map_err(io_err(&self.file))?;
            self.out.seek(SeekFrom::End(0)).map_err(io_err(&self.file))?;
        }
        self.out.flush().map_err(io_err(&self.file))?;
        if let Some(tmp) = &self.temp.0 {
            std::fs::rename(tmp, &self.file).map_err(io_err(&self.file))?;
            self.temp.0 = None;
        }
        Ok(self.out)
    }
}

/// Removes a temporary file on drop unless it was renamed.
#[derive(Debug)]
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
