//! Reading containers: section by section from the file, from bytes in memory, or by memory
//! map.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use super::{ALIGN, ENTRY_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_NAME, MappedArray, SectionInfo, SectionKind};
use crate::{Element, Error, Result};

/// How [`ContainerReader::open_with`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// Map the file instead of reading it (default `false`). Opening a mapped file without
    /// checksum verification reads only the header and table, whatever the file's size. The
    /// file must not be modified or truncated while mapped.
    pub mmap: bool,
    /// Verify every section's checksum (default `true`): when the file is opened, or, for the
    /// large sections of a file read without a map, when each is read. The header and section
    /// table are always verified.
    pub verify_checksums: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self { mmap: false, verify_checksums: true }
    }
}

/// Sections at least this long stay in the file when it is opened without a map, until asked
/// for: [`ContainerReader::read_array_parts`] and [`ContainerReader::array_vec`] then read
/// them straight into their final place, where borrowing them would read them into a buffer
/// to be copied from. Smaller ones are read (and their checksums verified) at open.
const DEFER_MIN: u64 = 64 << 10;

/// Bytes read at a time for parts smaller than this ([`ContainerReader::read_array_parts`]).
const BOUNCE: usize = 256 << 10;

/// 64 bytes aligned to 64: the unit of the owned buffers, so section starts are aligned in
/// memory as in the file.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// `len` zeroed bytes in blocks, backed by huge pages where large (as the dataset readers'
/// buffers): a fresh 50 MB buffer otherwise costs 12,800 page faults, most of a read's time.
fn blocks(len: usize) -> Vec<Block> {
    crate::hugepage::zeroed(len.div_ceil(64))
}

fn bytes_of(blocks: &[Block], len: usize) -> &[u8] {
    &bytemuck::cast_slice::<Block, u8>(blocks)[..len]
}

/// Fills `buf` from `file` at byte `offset`.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

enum Data {
    /// The whole container ([`ContainerReader::from_bytes`]).
    Owned(Vec<Block>, usize),
    /// Shared with every [`MappedArray`] handed out, which may outlive the reader.
    Mapped(Arc<memmap2::Mmap>),
    /// The open file and, per section, its bytes once read into memory.
    File { file: File, loaded: Vec<OnceLock<Vec<Block>>> },
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Owned(_, len) => write!(f, "Owned({len} bytes)"),
            Data::Mapped(m) => write!(f, "Mapped({} bytes)", m.len()),
            Data::File { loaded, .. } => {
                let read = loaded.iter().filter(|l| l.get().is_some()).count();
                write!(f, "File({read} of {} sections in memory)", loaded.len())
            }
        }
    }
}

/// An open container whose header and section table have been verified. Sections come out
/// borrowed from the reader (arrays as typed slices: every section start is 64-byte aligned
/// in memory, whether read or mapped), JSON decoded, or read into the caller's memory
/// ([`read_array_parts`](Self::read_array_parts), [`array_vec`](Self::array_vec)).
///
/// A file opened without a map is read section by section: sections under 64 KiB at once,
/// larger ones when first asked for, each checksum verified as its section is read (unless
/// turned off), so an index's large arrays are read once, into their final place. Mapped
/// files and bytes have every checksum verified at open.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("index.vq");
/// # let mut w = vq_io::ContainerWriter::create(&path)?;
/// # w.add_json("params", 1, &serde_json::json!({ "m": 16 }))?;
/// # w.add_array("ids", 1, &[7u64, 9])?;
/// # w.finish()?;
/// use vq_io::{ContainerReader, OpenOptions};
///
/// let r = ContainerReader::open_with(&path, OpenOptions { mmap: true, ..Default::default() })?;
/// r.check_known(&["params", "ids"])?; // refuses required sections this code does not know
/// let ids: &[u64] = r.array("ids")?;
/// let params: serde_json::Value = r.json("params")?;
/// assert_eq!((ids, params["m"].as_u64()), (&[7u64, 9][..], Some(16)));
/// let mut owned = [0u64; 2];
/// ContainerReader::open(&path)?.read_array_parts("ids", [&mut owned[..]])?;
/// assert_eq!(owned, [7, 9]);
/// # Ok::<(), vq_io::Error>(())
/// ```
#[derive(Debug)]
pub struct ContainerReader {
    file: PathBuf,
    data: Data,
    version: u32,
    sections: Vec<SectionInfo>,
    verify: bool,
}

/// Checks a container's header (`head`: its first bytes, at most 64, of `len`): returns the
/// format version and the table's offset, which the checks make `len − 128 × count`.
fn check_header(file: &Path, head: &[u8], len: u64) -> Result<(u32, u64)> {
    let corrupt = |what: String| Error::CorruptContainer { file: file.into(), what };
    if len == 0 {
        return Err(Error::Empty { file: file.into() });
    }
    if head.len() < MAGIC.len() || head[..8] != MAGIC {
        return Err(Error::BadMagic { file: file.into() });
    }
    if len < HEADER_LEN {
        return Err(corrupt(format!("{len} bytes, shorter than the {HEADER_LEN}-byte header")));
    }
    let version = u32_at(head, 8);
    if version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { file: file.into(), found: version, supported: FORMAT_VERSION });
    }
    if version == 0 {
        return Err(corrupt("format version 0".into()));
    }
    let file_len = u64_at(head, 16);
    if file_len != len {
        return Err(corrupt(format!("the header says {file_len} bytes, the file has {len} (truncated?)")));
    }
    let table_offset = u64_at(head, 24);
    let count = u64::from(u32_at(head, 32));
    let table_end = count.checked_mul(ENTRY_LEN).and_then(|t| t.checked_add(table_offset));
    if table_offset < HEADER_LEN || !table_offset.is_multiple_of(ALIGN) || table_end != Some(len) {
        return Err(corrupt(format!(
            "section table of {count} entries at {table_offset} does not end the {len}-byte file at a 64-byte boundary"
        )));
    }
    Ok((version, table_offset))
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Checks the section `table` (at `table_offset`, ending the file) against the checksum in
/// `head` (the checked 64-byte header) and returns its entries.
fn read_table(file: &Path, head: &[u8], table: &[u8], table_offset: u64) -> Result<Vec<SectionInfo>> {
    let file = file.to_path_buf();
    let corrupt = |what: String| Error::CorruptContainer { file: file.clone(), what };
    let stored = u64_at(head, 40);
    let mut h = Xxh3::new();
    h.update(&head[..40]);
    h.update(table);
    let computed = h.digest();
    if stored != computed {
        return Err(Error::ChecksumMismatch { file, name: "<header>".into(), stored, computed });
    }
    let mut sections: Vec<SectionInfo> = Vec::with_capacity(table.len() / ENTRY_LEN as usize);
    for e in table.chunks_exact(ENTRY_LEN as usize) {
        let name_len = e[..MAX_NAME].iter().position(|&c| c == 0).unwrap_or(MAX_NAME);
        if name_len == 0 || e[name_len..MAX_NAME].iter().any(|&c| c != 0) {
            return Err(corrupt(format!("section {} has an empty or malformed name", sections.len())));
        }
        let name = std::str::from_utf8(&e[..name_len])
            .map_err(|_| corrupt(format!("section {} has a name that is not UTF-8", sections.len())))?
            .to_owned();
        let kind = SectionKind::from_codes(e[88], e[89])
            .ok_or_else(|| corrupt(format!("section {name:?} has unknown kind {} / element type {}", e[88], e[89])))?;
        let info = SectionInfo {
            offset: u64_at(e, 64),
            len: u64_at(e, 72),
            checksum: u64_at(e, 80),
            kind,
            required: e[90] & 1 != 0,
            version: u32_at(e, 92),
            name,
        };
        if !info.offset.is_multiple_of(ALIGN) {
            return Err(Error::SectionMisaligned { file, name: info.name, offset: info.offset });
        }
        let end = info.offset.checked_add(info.len);
        if info.offset < HEADER_LEN || end.is_none_or(|end| end > table_offset) {
            return Err(Error::SectionOutOfBounds {
                file,
                name: info.name,
                offset: info.offset,
                end: end.unwrap_or(u64::MAX),
                limit: table_offset,
            });
        }
        if let SectionKind::Array(t) = kind
            && !info.len.is_multiple_of(t.size() as u64)
        {
            return Err(corrupt(format!(
                "array section {:?} of {} bytes is not a whole number of {t}",
                info.name, info.len
            )));
        }
        if sections.iter().any(|s| s.name == info.name) {
            return Err(Error::DuplicateSection { file, name: info.name });
        }
        sections.push(info);
    }
    let mut order: Vec<&SectionInfo> = sections.iter().collect();
    order.sort_by_key(|s| (s.offset, s.len));
    for w in order.windows(2) {
        if w[0].offset + w[0].len > w[1].offset {
            return Err(Error::SectionOverlap { file, first: w[0].name.clone(), second: w[1].name.clone() });
        }
    }
    Ok(sections)
}

impl ContainerReader {
    /// Opens `path` to be read section by section, verifying every checksum.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens `path` as `options` say.
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self> {
        crate::error::check_host()?;
        let path = path.as_ref();
        let io = |error| Error::Io { file: path.into(), error };
        let f = File::open(path).map_err(io)?;
        if options.mmap {
            // SAFETY: a read-only private map; `OpenOptions::mmap` documents that the file must
            // not be modified or truncated while mapped, which Rust cannot enforce.
            let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.map_err(io)?);
            return Self::from_data(Data::Mapped(map), path.into(), options.verify_checksums);
        }
        let len = f.metadata().map_err(io)?.len();
        let mut head = [0u8; HEADER_LEN as usize];
        let head = &mut head[..len.min(HEADER_LEN) as usize];
        read_at(&f, head, 0).map_err(io)?;
        let (version, table_offset) = check_header(path, head, len)?;
        // The header checks make the table end the file: `len − table_offset` is its size.
        let mut table = vec![0u8; (len - table_offset) as usize];
        read_at(&f, &mut table, table_offset).map_err(io)?;
        let sections = read_table(path, head, &table, table_offset)?;
        let loaded = sections.iter().map(|_| OnceLock::new()).collect();
        let data = Data::File { file: f, loaded };
        let r = Self { file: path.into(), data, version, sections, verify: options.verify_checksums };
        for i in (0..r.sections.len()).filter(|&i| r.sections[i].len < DEFER_MIN) {
            r.raw(i)?;
        }
        Ok(r)
    }

    /// Reads a container from bytes (copied into an aligned buffer); errors name `<memory>`.
    pub fn from_bytes(bytes: &[u8], verify_checksums: bool) -> Result<Self> {
        crate::error::check_host()?;
        let mut blocks = vec![Block([0; 64]); bytes.len().div_ceil(64)];
        bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..bytes.len()].copy_from_slice(bytes);
        Self::from_data(Data::Owned(blocks, bytes.len()), crate::dataset::memory_name(), verify_checksums)
    }

    /// A reader over a whole container in memory (bytes or a map), every checksum verified if
    /// `verify`.
    fn from_data(data: Data, file: PathBuf, verify: bool) -> Result<Self> {
        let whole = match &data {
            Data::Owned(blocks, len) => bytes_of(blocks, *len),
            Data::Mapped(map) => &map[..],
            Data::File { .. } => unreachable!("a file is read section by section, not through from_data"),
        };
        let len = whole.len() as u64;
        let head = &whole[..len.min(HEADER_LEN) as usize];
        let (version, table_offset) = check_header(&file, head, len)?;
        let sections = read_table(&file, head, &whole[table_offset as usize..], table_offset)?;
        let r = Self { file, data, version, sections, verify };
        if verify {
            r.verify_checksums()?;
        }
        Ok(r)
    }

    /// Verifies every section's checksum (done by [`open`](Self::open) unless turned off; a
    /// large section of a file read without a map is read into memory for it).
    pub fn verify_checksums(&self) -> Result<()> {
        for i in 0..self.sections.len() {
            let bytes = self.raw(i)?;
            // A file's sections were verified as they were read, if verification is on.
            if !(self.verify && matches!(self.data, Data::File { .. })) {
                self.check_sum(&self.sections[i], xxh3_64(bytes))?;
            }
        }
        Ok(())
    }

    fn check_sum(&self, s: &SectionInfo, computed: u64) -> Result<()> {
        if computed != s.checksum {
            return Err(Error::ChecksumMismatch {
                file: self.file.clone(),
                name: s.name.clone(),
                stored: s.checksum,
                computed,
            });
        }
        Ok(())
    }

    fn io(&self, error: std::io::Error) -> Error {
        Error::Io { file: self.file.clone(), error }
    }

    /// The bytes of section `i`, read from the file first if they are not in memory yet.
    fn raw(&self, i: usize) -> Result<&[u8]> {
        let s = &self.sections[i];
        // Bounds were checked against the file's length when the table was read.
        let (start, len) = (s.offset as usize, s.len as usize);
        let (file, loaded) = match &self.data {
            Data::Owned(blocks, all) => return Ok(&bytes_of(blocks, *all)[start..start + len]),
            Data::Mapped(map) => return Ok(&map[start..start + len]),
            Data::File { file, loaded } => (file, &loaded[i]),
        };
        if let Some(blocks) = loaded.get() {
            return Ok(bytes_of(blocks, len));
        }
        let mut buf = blocks(len);
        read_at(file, &mut bytemuck::cast_slice_mut::<Block, u8>(&mut buf)[..len], s.offset).map_err(|e| self.io(e))?;
        if self.verify {
            self.check_sum(s, xxh3_64(bytes_of(&buf, len)))?;
        }
        // Another thread may have read it meanwhile: either copy serves.
        let _ = loaded.set(buf);
        match loaded.get() {
            Some(blocks) => Ok(bytes_of(blocks, len)),
            None => unreachable!("the section was just stored"),
        }
    }

    /// The index of section `name`.
    fn find(&self, name: &str) -> Result<usize> {
        self.sections
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| Error::MissingSection { file: self.file.clone(), name: name.into() })
    }

    /// The index of array section `name` of `T`s.
    fn find_array<T: Element>(&self, name: &str) -> Result<usize> {
        let i = self.find(name)?;
        let kind = self.sections[i].kind;
        if kind != SectionKind::Array(T::TYPE) {
            return Err(Error::SectionType {
                file: self.file.clone(),
                name: name.into(),
                expected: SectionKind::Array(T::TYPE).to_string(),
                found: kind.to_string(),
            });
        }
        Ok(i)
    }

    /// Fills `parts`, in order, with the values of array section `name`: the parts must
    /// cover the section exactly. Where the section is still in the file, it is read straight
    /// into them (its checksum verified over what was read), so a large array reaches its
    /// final place without a buffer in between; otherwise it is copied. On an error the parts
    /// hold unspecified values.
    pub fn read_array_parts<'a, T: Element + 'a>(
        &self,
        name: &str,
        parts: impl IntoIterator<Item = &'a mut [T]>,
    ) -> Result<()> {
        let i = self.find_array::<T>(name)?;
        let s = &self.sections[i];
        let short = |at: u64| Error::InvalidArgument {
            what: format!("section {name:?} of {} bytes read into parts of {at} bytes or more", s.len),
        };
        let in_file = match &self.data {
            Data::File { file, loaded } if loaded[i].get().is_none() => Some(file),
            _ => None,
        };
        let mut at = 0u64;
        match in_file {
            Some(file) => {
                let mut sum = Xxh3::new();
                // Parts under `BOUNCE` bytes (an inverted file's lists) are filled from a window
                // read `BOUNCE` bytes at a time, so many small parts cost few system calls;
                // the rest of a larger part is read straight into it.
                let mut window = Vec::new();
                let (mut window_at, mut window_len) = (0u64, 0usize);
                for part in parts {
                    let bytes: &mut [u8] = bytemuck::cast_slice_mut(part);
                    let end = at + bytes.len() as u64;
                    if end > s.len {
                        return Err(short(end));
                    }
                    let mut filled = 0;
                    while filled < bytes.len() {
                        let pos = at + filled as u64;
                        // Parts are filled in order: the window never starts past `pos`.
                        let held = (window_at + window_len as u64).saturating_sub(pos) as usize;
                        let rest = bytes.len() - filled;
                        if held > 0 {
                            let n = held.min(rest);
                            let from = (pos - window_at) as usize;
                            bytes[filled..filled + n].copy_from_slice(&window[from..from + n]);
                            filled += n;
                        } else if rest >= BOUNCE {
                            read_at(file, &mut bytes[filled..], s.offset + pos).map_err(|e| self.io(e))?;
                            filled = bytes.len();
                        } else {
                            window.resize(BOUNCE, 0);
                            (window_at, window_len) = (pos, BOUNCE.min((s.len - pos) as usize));
                            read_at(file, &mut window[..window_len], s.offset + pos).map_err(|e| self.io(e))?;
                        }
                    }
                    sum.update(bytes);
                    at = end;
                }
                if at == s.len && self.verify {
                    self.check_sum(s, sum.digest())?;
                }
            }
            None => {
                let source = self.raw(i)?;
                for part in parts {
                    let bytes: &mut [u8] = bytemuck::cast_slice_mut(part);
                    let end = at + bytes.len() as u64;
                    if end > s.len {
                        return Err(short(end));
                    }
                    bytes.copy_from_slice(&source[at as usize..end as usize]);
                    at = end;
                }
            }
        }
        if at != s.len {
            return Err(Error::InvalidArgument {
                what: format!("section {name:?} of {} bytes read into parts of {at} bytes", s.len),
            });
        }
        Ok(())
    }

    /// The number of `T`s in array section `name` (an error if it holds another type).
    pub fn array_len<T: Element>(&self, name: &str) -> Result<usize> {
        Ok(self.sections[self.find_array::<T>(name)?].len as usize / size_of::<T>())
    }

    /// Array section `name` as a vector of its own (read straight into it where the section
    /// is still in the file: see [`read_array_parts`](Self::read_array_parts)).
    pub fn array_vec<T: Element>(&self, name: &str) -> Result<Vec<T>> {
        let mut v = crate::hugepage::zeroed(self.array_len::<T>(name)?);
        self.read_array_parts(name, [&mut v[..]])?;
        Ok(v)
    }

    /// The file's container format version.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// The file named in errors.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Every section, in table order.
    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Result<&SectionInfo> {
        Ok(&self.sections[self.find(name)?])
    }

    /// Whether the container has a section called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.sections.iter().any(|s| s.name == name)
    }

    /// Refuses the file if it has a required section whose name is not in `known`: the
    /// reading code would misread what a newer writer meant.
    pub fn check_known(&self, known: &[&str]) -> Result<()> {
        match self.sections.iter().find(|s| s.required && !known.contains(&s.name.as_str())) {
            Some(s) => Err(Error::UnknownRequiredSection { file: self.file.clone(), name: s.name.clone() }),
            None => Ok(()),
        }
    }

    /// The bytes of section `name`, whatever it holds.
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        self.raw(self.find(name)?)
    }

    /// Array section `name` as a slice of `T`, without copying.
    pub fn array<T: Element>(&self, name: &str) -> Result<&[T]> {
        let i = self.find_array::<T>(name)?;
        bytemuck::try_cast_slice(self.raw(i)?).map_err(|_| Error::CorruptContainer {
            file: self.file.clone(),
            what: format!("section {name:?} is not aligned in memory"),
        })
    }

    /// Array section `name` as a view that keeps the mapping alive ([`MappedArray`]), when
    /// the container was opened with [`OpenOptions::mmap`]; `None` when it was read into
    /// memory (then [`array`](Self::array) borrows it from the reader). Checked as `array`
    /// checks it.
    pub fn mapped_array<T: Element>(&self, name: &str) -> Result<Option<MappedArray<T>>> {
        let Data::Mapped(map) = &self.data else { return Ok(None) };
        let len = self.array::<T>(name)?.len();
        let s = self.section(name)?;
        // The section is within the file and aligned: `array` just checked both.
        MappedArray::new(Arc::clone(map), s.offset as usize, len).map(Some).ok_or_else(|| Error::CorruptContainer {
            file: self.file.clone(),
            what: format!("section {name:?} is not aligned in memory"),
        })
    }

    /// Whether the container is memory-mapped ([`OpenOptions::mmap`]) rather than read.
    pub fn is_mapped(&self) -> bool {
        matches!(self.data, Data::Mapped(_))
    }

    /// Fails unless each named section exists with the layout version this build reads: the
    /// one check every index part runs before reading its sections.
    pub fn check_versions(&self, expected: &[(&str, u32)]) -> Result<()> {
        for &(name, version) in expected {
            let found = self.section(name)?.version;
            if found != version {
                return Err(Error::SectionVersion {
                    file: self.file.clone(),
                    name: name.into(),
                    expected: version,
                    found,
                });
            }
        }
        Ok(())
    }

    /// JSON section `name` decoded as `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let i = self.find(name)?;
        let kind = self.sections[i].kind;
        if kind != SectionKind::Json {
            return Err(Error::SectionType {
                file: self.file.clone(),
                name: name.into(),
                expected: SectionKind::Json.to_string(),
                found: kind.to_string(),
            });
        }
        serde_json::from_slice(self.raw(i)?).map_err(|error| Error::Json {
            file: self.file.clone(),
            name: name.into(),
            error,
        })
    }
}
