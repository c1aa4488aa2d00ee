//! Reading containers, by copy or by memory map.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Verify every section's checksum while opening (default `true`). The header and section
    /// table are always verified.
    pub verify_checksums: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self { mmap: false, verify_checksums: true }
    }
}

/// 64 bytes aligned to 64: the unit of the owned buffer, so section starts are aligned in
/// memory as in the file.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Block([u8; 64]);

enum Data {
    Owned(Vec<Block>, usize),
    /// Shared with every [`MappedArray`] handed out, which may outlive the reader.
    Mapped(Arc<memmap2::Mmap>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Owned(blocks, len) => &bytemuck::cast_slice::<Block, u8>(blocks)[..*len],
            Data::Mapped(m) => m,
        }
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Owned(_, len) => write!(f, "Owned({len} bytes)"),
            Data::Mapped(m) => write!(f, "Mapped({} bytes)", m.len()),
        }
    }
}

/// An open container whose header, section table and (unless turned off) section checksums
/// have been verified. Sections come out without copying: arrays as typed slices (every
/// section start is 64-byte aligned in memory, whether read or mapped), JSON decoded.
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
/// # Ok::<(), vq_io::Error>(())
/// ```
#[derive(Debug)]
pub struct ContainerReader {
    file: PathBuf,
    data: Data,
    version: u32,
    sections: Vec<SectionInfo>,
}

impl ContainerReader {
    /// Opens `path` by reading it whole, verifying every checksum.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens `path` as `options` say.
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self> {
        crate::error::check_host()?;
        let path = path.as_ref();
        let io = |error| Error::Io { file: path.into(), error };
        let mut f = File::open(path).map_err(io)?;
        let data = if options.mmap {
            // SAFETY: a read-only private map; `OpenOptions::mmap` documents that the file must
            // not be modified or truncated while mapped, which Rust cannot enforce.
            Data::Mapped(Arc::new(unsafe { memmap2::Mmap::map(&f) }.map_err(io)?))
        } else {
            let len = usize::try_from(f.metadata().map_err(io)?.len())
                .map_err(|_| Error::CorruptContainer { file: path.into(), what: "larger than memory".into() })?;
            // Huge pages where the kernel gives them (as the dataset readers' buffers): a
            // 50 MB index otherwise costs 12,800 page faults, most of a read's time.
            let mut blocks = Vec::new();
            crate::hugepage::reserve(&mut blocks, len.div_ceil(64));
            blocks.resize(len.div_ceil(64), Block([0; 64]));
            f.read_exact(&mut bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..len]).map_err(io)?;
            Data::Owned(blocks, len)
        };
        Self::parse(data, path.into(), options.verify_checksums)
    }

    /// Reads a container from bytes (copied into an aligned buffer); errors name `<memory>`.
    pub fn from_bytes(bytes: &[u8], verify_checksums: bool) -> Result<Self> {
        crate::error::check_host()?;
        let mut blocks = vec![Block([0; 64]); bytes.len().div_ceil(64)];
        bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..bytes.len()].copy_from_slice(bytes);
        Self::parse(Data::Owned(blocks, bytes.len()), crate::dataset::memory_name(), verify_checksums)
    }

    fn parse(data: Data, file: PathBuf, verify: bool) -> Result<Self> {
        let bytes = data.bytes();
        let len = bytes.len() as u64;
        let corrupt = |what: String| Error::CorruptContainer { file: file.clone(), what };
        if bytes.is_empty() {
            return Err(Error::Empty { file });
        }
        if bytes.len() < MAGIC.len() || bytes[..8] != MAGIC {
            return Err(Error::BadMagic { file });
        }
        if bytes.len() < HEADER_LEN as usize {
            return Err(corrupt(format!("{len} bytes, shorter than the {HEADER_LEN}-byte header")));
        }
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |b: &[u8], i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let version = u32_at(bytes, 8);
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { file, found: version, supported: FORMAT_VERSION });
        }
        if version == 0 {
            return Err(corrupt("format version 0".into()));
        }
        let file_len = u64_at(bytes, 16);
        if file_len != len {
            return Err(corrupt(format!("the header says {file_len} bytes, the file has {len} (truncated?)")));
        }
        let table_offset = u64_at(bytes, 24);
        let count = u64::from(u32_at(bytes, 32));
        let table_end = count.checked_mul(ENTRY_LEN).and_then(|t| t.checked_add(table_offset));
        if table_offset < HEADER_LEN || table_offset % ALIGN != 0 || table_end != Some(len) {
            return Err(corrupt(format!(
                "section table of {count} entries at {table_offset} does not end the {len}-byte file at a 64-byte boundary"
            )));
        }
        let table = &bytes[table_offset as usize..];
        let stored = u64_at(bytes, 40);
        let mut h = Xxh3::new();
        h.update(&bytes[..40]);
        h.update(table);
        let computed = h.digest();
        if stored != computed {
            return Err(Error::ChecksumMismatch { file, name: "<header>".into(), stored, computed });
        }

        let mut sections: Vec<SectionInfo> = Vec::with_capacity(count as usize); // ≤ len / 128
        for e in table.chunks_exact(ENTRY_LEN as usize) {
            let name_len = e[..MAX_NAME].iter().position(|&c| c == 0).unwrap_or(MAX_NAME);
            if name_len == 0 || e[name_len..MAX_NAME].iter().any(|&c| c != 0) {
                return Err(corrupt(format!("section {} has an empty or malformed name", sections.len())));
            }
            let name = std::str::from_utf8(&e[..name_len])
                .map_err(|_| corrupt(format!("section {} has a name that is not UTF-8", sections.len())))?
                .to_owned();
            let kind = SectionKind::from_codes(e[88], e[89]).ok_or_else(|| {
                corrupt(format!("section {name:?} has unknown kind {} / element type {}", e[88], e[89]))
            })?;
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
        let r = Self { file, data, version, sections };
        if verify {
            r.verify_checksums()?;
        }
        Ok(r)
    }

    /// Verifies every section's checksum (done by [`open`](Self::open) unless turned off).
    pub fn verify_checksums(&self) -> Result<()> {
        for s in &self.sections {
            self.verify_section(s)?;
        }
        Ok(())
    }

    fn verify_section(&self, s: &SectionInfo) -> Result<()> {
        let computed = xxh3_64(self.raw(s));
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

    fn raw(&self, s: &SectionInfo) -> &[u8] {
        // Bounds were checked against the file's length when the table was read.
        &self.data.bytes()[s.offset as usize..(s.offset + s.len) as usize]
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
        self.sections
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::MissingSection { file: self.file.clone(), name: name.into() })
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
        Ok(self.raw(self.section(name)?))
    }

    /// Array section `name` as a slice of `T`, without copying.
    pub fn array<T: Element>(&self, name: &str) -> Result<&[T]> {
        let s = self.section(name)?;
        if s.kind != SectionKind::Array(T::TYPE) {
            return Err(Error::SectionType {
                file: self.file.clone(),
                name: name.into(),
                expected: SectionKind::Array(T::TYPE).to_string(),
                found: s.kind.to_string(),
            });
        }
        bytemuck::try_cast_slice(self.raw(s)).map_err(|_| Error::CorruptContainer {
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
        let s = self.section(name)?;
        if s.kind != SectionKind::Json {
            return Err(Error::SectionType {
                file: self.file.clone(),
                name: name.into(),
                expected: SectionKind::Json.to_string(),
                found: s.kind.to_string(),
            });
        }
        serde_json::from_slice(self.raw(s)).map_err(|error| Error::Json {
            file: self.file.clone(),
            name: name.into(),
            error,
        })
    }
}
