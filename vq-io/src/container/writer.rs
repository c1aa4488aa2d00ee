//! Writing containers atomically.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::Xxh3;

use super::{ALIGN, ENTRY_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_NAME, SectionInfo, SectionKind};
use crate::{Element, Error, Result};

/// Writes a container: sections go to a temporary file in the target's directory as they are
/// added; [`finish`](Self::finish) writes the section table and header, syncs the file,
/// renames it over the target and syncs the directory.
///
/// Until `finish` returns, the target is untouched: an error, a panic, a dropped writer or a
/// crash at any point leaves the previous file (if any) byte-identical, and no half-written
/// file under the target's name. A dropped writer removes its temporary file; a crash may
/// leave one behind (named `.<target>.<pid>.<n>.vqtmp`).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("index.vq");
/// let mut w = vq_io::ContainerWriter::create(&path)?;
/// w.add_json("hnsw.params", 1, &serde_json::json!({ "m": 16, "ef_construction": 200 }))?;
/// w.add_array("hnsw.links", 1, &[1u32, 2, 3])?;
/// w.add_bytes("notes", 1, b"anything")?;
/// w.mark_optional("notes")?; // readers that do not know it may ignore it
/// w.finish()?;
/// # Ok::<(), vq_io::Error>(())
/// ```
#[derive(Debug)]
pub struct ContainerWriter {
    target: PathBuf,
    tmp: PathBuf,
    out: Option<Sink>,
    pos: u64,
    sections: Vec<SectionInfo>,
}

/// Where the bytes go: the temporary file, or a buffer ([`ContainerWriter::in_memory`]).
#[derive(Debug)]
enum Dest {
    File(BufWriter<File>),
    Memory(Vec<u8>),
}

/// The destination, with a failure switch for tests.
#[derive(Debug)]
struct Sink {
    dest: Dest,
    /// Bytes left before writes fail (tests only).
    #[cfg(test)]
    budget: Option<u64>,
}

impl Sink {
    fn new(dest: Dest) -> Self {
        Sink {
            dest,
            #[cfg(test)]
            budget: None,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.dest {
            Dest::File(f) => f.write_all(bytes),
            Dest::Memory(v) => {
                v.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(budget) = &mut self.budget {
            if (bytes.len() as u64) > *budget {
                let n = *budget as usize;
                *budget = 0;
                self.put(&bytes[..n])?;
                return Err(std::io::Error::other("injected failure"));
            }
            *budget -= bytes.len() as u64;
        }
        self.put(bytes)
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates a new temporary file beside `target`: `.<name>.<pid>.<n>.vqtmp`. Temporary files of
/// the same target left by writers that were killed are removed first ([`remove_stale_temps`]).
pub(crate) fn create_temp(target: &Path) -> Result<(File, PathBuf)> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::InvalidArgument { what: format!("{} names no file", target.display()) })?;
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    remove_stale_temps(dir, name);
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{n}.vqtmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        match File::options().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(Error::Io { file: tmp, error }),
        }
    }
}

/// Removes `dir`'s temporary files of target `name` (`.<name>.<pid>.<n>.vqtmp`) whose writing
/// process is gone: a writer killed before `finish` (or its `Drop`) leaves one behind, and
/// without this a directory of repeated crashed builds fills with them. Only where a process
/// table can be asked (`/proc`, Linux): elsewhere nothing is removed. Files of live processes,
/// this one included, are never touched; errors are ignored (cleaning is best effort).
fn remove_stale_temps(dir: &Path, name: &std::ffi::OsStr) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Some(name) = name.to_str() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let me = std::process::id();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| stale_temp_pid(f, name)) else { continue };
        if pid != me && !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The writer's pid if `file` is a temporary file of target `name`: `.<name>.<pid>.<n>.vqtmp`.
fn stale_temp_pid(file: &str, name: &str) -> Option<u32> {
    let rest = file.strip_prefix('.')?.strip_prefix(name)?.strip_prefix('.')?.strip_suffix(".vqtmp")?;
    let (pid, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

impl ContainerWriter {
    /// Starts a container that [`finish`](Self::finish) will place at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        crate::error::check_host()?;
        let target = path.as_ref().to_path_buf();
        let (file, tmp) = create_temp(&target)?;
        let sink = Sink::new(Dest::File(BufWriter::with_capacity(1 << 20, file)));
        let mut w = Self { target, tmp, out: Some(sink), pos: 0, sections: Vec::new() };
        w.write(&[0u8; HEADER_LEN as usize])?; // the header, rewritten by `finish`
        Ok(w)
    }

    /// Starts a container held in memory: the same bytes [`create`](Self::create) and
    /// [`finish`](Self::finish) would put in a file, returned by
    /// [`finish_to_bytes`](Self::finish_to_bytes) (Faiss' `serialize_index`: an index sent
    /// over a network or kept in an object store without touching a disk).
    ///
    /// ```
    /// let mut w = vq_io::ContainerWriter::in_memory()?;
    /// w.add_bytes("notes", 1, b"anything")?;
    /// let bytes = w.finish_to_bytes()?;
    /// let r = vq_io::ContainerReader::from_bytes(&bytes, true)?;
    /// assert_eq!(r.bytes("notes")?, b"anything");
    /// # Ok::<(), vq_io::Error>(())
    /// ```
    pub fn in_memory() -> Result<Self> {
        crate::error::check_host()?;
        // `tmp` stays empty: there is no file for drop to remove.
        let sink = Sink::new(Dest::Memory(Vec::new()));
        let mut w = Self {
            target: PathBuf::from("<memory>"),
            tmp: PathBuf::new(),
            out: Some(sink),
            pos: 0,
            sections: Vec::new(),
        };
        w.write(&[0u8; HEADER_LEN as usize])?; // the header, filled in by `finish_to_bytes`
        Ok(w)
    }

    /// Fails every write after `bytes` more bytes (crash-safety tests).
    #[cfg(test)]
    pub(crate) fn fail_after(&mut self, bytes: u64) {
        if let Some(s) = &mut self.out {
            s.budget = Some(bytes);
        }
    }

    /// The temporary file the sections go to.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(out) = &mut self.out else {
            return Err(Error::InvalidArgument { what: "the container writer failed earlier".into() });
        };
        if let Err(error) = out.write_all(bytes) {
            self.out = None; // poisoned: every later call fails, drop removes the file
            return Err(Error::Io { file: self.tmp.clone(), error });
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let pad = self.pos.next_multiple_of(ALIGN) - self.pos;
        self.write(&[0u8; ALIGN as usize][..pad as usize])
    }

    /// Adds a required section of `kind` holding the concatenation of `parts`, written and
    /// checksummed as they come: a section gathered from many places (an inverted file's lists,
    /// a graph's vectors) is never staged whole in memory.
    fn add<'a>(
        &mut self,
        name: &str,
        version: u32,
        kind: SectionKind,
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<()> {
        if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
            return Err(Error::InvalidArgument {
                what: format!("section name {name:?} must be 1..={MAX_NAME} bytes without NUL"),
            });
        }
        if self.sections.iter().any(|s| s.name == name) {
            return Err(Error::InvalidArgument { what: format!("section {name:?} added twice") });
        }
        self.pad()?;
        let offset = self.pos;
        // The streaming digest equals `xxh3_64` of the whole section, which readers compute.
        let mut checksum = Xxh3::new();
        for part in parts {
            checksum.update(part);
            self.write(part)?;
        }
        self.sections.push(SectionInfo {
            name: name.into(),
            kind,
            version,
            required: true,
            offset,
            len: self.pos - offset,
            checksum: checksum.digest(),
        });
        Ok(())
    }

    /// Adds a required section holding `value` as JSON; `version` is the section's layout
    /// version, owned by the caller.
    pub fn add_json<S: serde::Serialize + ?Sized>(&mut self, name: &str, version: u32, value: &S) -> Result<()> {
        let json = serde_json::to_vec(value).map_err(|error| Error::Json {
            file: self.target.clone(),
            name: name.into(),
            error,
        })?;
        self.add(name, version, SectionKind::Json, [&json[..]])
    }

    /// Adds a required section holding `values` as a little-endian array.
    pub fn add_array<T: Element>(&mut self, name: &str, version: u32, values: &[T]) -> Result<()> {
        self.add_array_parts(name, version, [values])
    }

    /// Adds a required array section holding the concatenation of `parts`, without gathering
    /// them first: the file is the one [`add_array`](Self::add_array) writes for the
    /// concatenated values.
    ///
    /// ```
    /// let lists: [&[u64]; 3] = [&[4, 7], &[], &[1]];
    /// let mut w = vq_io::ContainerWriter::in_memory()?;
    /// w.add_array_parts("ids", 1, lists)?;
    /// let r = vq_io::ContainerReader::from_bytes(&w.finish_to_bytes()?, true)?;
    /// assert_eq!(r.array::<u64>("ids")?, &[4, 7, 1]);
    /// # Ok::<(), vq_io::Error>(())
    /// ```
    pub fn add_array_parts<'a, T: Element + 'a>(
        &mut self,
        name: &str,
        version: u32,
        parts: impl IntoIterator<Item = &'a [T]>,
    ) -> Result<()> {
        self.add(name, version, SectionKind::Array(T::TYPE), parts.into_iter().map(bytemuck::cast_slice))
    }

    /// Adds a required section of opaque bytes.
    pub fn add_bytes(&mut self, name: &str, version: u32, bytes: &[u8]) -> Result<()> {
        self.add(name, version, SectionKind::Bytes, [bytes])
    }

    /// Marks section `name` optional: a reader that does not know it ignores it instead of
    /// refusing the file.
    pub fn mark_optional(&mut self, name: &str) -> Result<()> {
        match self.sections.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.required = false;
                Ok(())
            }
            None => Err(Error::InvalidArgument { what: format!("no section {name:?} to mark optional") }),
        }
    }

    /// The sections added so far.
    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }

    /// Writes the section table and returns the header that goes in front of it.
    fn seal(&mut self) -> Result<[u8; HEADER_LEN as usize]> {
        self.pad()?;
        let table_offset = self.pos;
        let count = u32::try_from(self.sections.len())
            .map_err(|_| Error::InvalidArgument { what: "more than 2^32 sections".into() })?;
        let mut table = Vec::with_capacity(self.sections.len() * ENTRY_LEN as usize);
        for s in &self.sections {
            let mut e = [0u8; ENTRY_LEN as usize];
            e[..s.name.len()].copy_from_slice(s.name.as_bytes());
            e[64..72].copy_from_slice(&s.offset.to_le_bytes());
            e[72..80].copy_from_slice(&s.len.to_le_bytes());
            e[80..88].copy_from_slice(&s.checksum.to_le_bytes());
            let (kind, elem) = s.kind.codes();
            e[88] = kind;
            e[89] = elem;
            e[90] = u8::from(s.required);
            e[92..96].copy_from_slice(&s.version.to_le_bytes());
            table.extend_from_slice(&e);
        }
        self.write(&table)?;
        let file_len = self.pos;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[16..24].copy_from_slice(&file_len.to_le_bytes());
        header[24..32].copy_from_slice(&table_offset.to_le_bytes());
        header[32..36].copy_from_slice(&count.to_le_bytes());
        let mut h = Xxh3::new();
        h.update(&header[..40]);
        h.update(&table);
        header[40..48].copy_from_slice(&h.digest().to_le_bytes());
        Ok(header)
    }

    /// Writes the table and header, syncs, and renames the file over the target. An
    /// [`in_memory`](Self::in_memory) container is finished by
    /// [`finish_to_bytes`](Self::finish_to_bytes) instead.
    pub fn finish(mut self) -> Result<()> {
        if matches!(self.out, Some(Sink { dest: Dest::Memory(_), .. })) {
            return Err(Error::InvalidArgument {
                what: "an in-memory container is finished with finish_to_bytes, not finish".into(),
            });
        }
        let header = self.seal()?;
        let tmp = self.tmp.clone();
        let io = |error| Error::Io { file: tmp.clone(), error };
        let Some(mut out) = self.out.take() else {
            return Err(Error::InvalidArgument { what: "the container writer failed earlier".into() });
        };
        if let Dest::File(file) = &mut out.dest {
            file.seek(SeekFrom::Start(0)).map_err(io)?;
        }
        out.write_all(&header).map_err(io)?;
        let Dest::File(file) = out.dest else {
            return Err(Error::InvalidArgument { what: "an in-memory container has no file to finish".into() });
        };
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.target).map_err(|error| Error::Io { file: self.target.clone(), error })?;
        self.tmp = PathBuf::new(); // renamed: nothing for drop to remove
        sync_dir(&self.target)
    }

    /// Writes the table and header of an [`in_memory`](Self::in_memory) container and returns
    /// its bytes (what [`ContainerReader::from_bytes`](crate::ContainerReader::from_bytes)
    /// reads).
    pub fn finish_to_bytes(mut self) -> Result<Vec<u8>> {
        if !matches!(self.out, Some(Sink { dest: Dest::Memory(_), .. })) && self.out.is_some() {
            return Err(Error::InvalidArgument {
                what: "a container written to a file is finished with finish, not finish_to_bytes".into(),
            });
        }
        let header = self.seal()?;
        match self.out.take() {
            Some(Sink { dest: Dest::Memory(mut bytes), .. }) => {
                bytes[..HEADER_LEN as usize].copy_from_slice(&header);
                Ok(bytes)
            }
            _ => Err(Error::InvalidArgument { what: "the container writer failed earlier".into() }),
        }
    }
}

impl Drop for ContainerWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Makes the rename durable: syncs the directory holding `path` (Unix; a no-op elsewhere).
fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let d = File::open(dir).map_err(|error| Error::Io { file: dir.into(), error })?;
        d.sync_all().map_err(|error| Error::Io { file: dir.into(), error })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stale_temp_names_are_matched_by_target_exactly() {
        assert_eq!(super::stale_temp_pid(".index.vq.123.4.vqtmp", "index.vq"), Some(123));
        assert_eq!(super::stale_temp_pid(".index.vq.123.4.vqtmp", "index"), None, "target index.vq, not index");
        assert_eq!(super::stale_temp_pid(".index.vq.123.vqtmp", "index.vq"), None);
        assert_eq!(super::stale_temp_pid("index.vq.123.4.vqtmp", "index.vq"), None);
        assert_eq!(super::stale_temp_pid(".index.vq.x.4.vqtmp", "index.vq"), None);
        assert_eq!(super::stale_temp_pid(".index.vq.123.4.tmp", "index.vq"), None);
    }

    use super::*;
    use crate::ContainerReader;

    /// Writes the same sections every time, failing after `fail_after` bytes if given.
    fn write(path: &Path, fail_after: Option<u64>, seed: u8) -> Result<()> {
        let mut w = ContainerWriter::create(path)?;
        if let Some(n) = fail_after {
            w.fail_after(n);
        }
        w.add_json("params", 1, &serde_json::json!({ "seed": seed }))?;
        w.add_array("data", 1, &vec![f32::from(seed); 5000])?;
        w.add_bytes("tail", 1, &[seed; 100])?;
        w.finish()
    }

    /// The in-memory writer produces the very bytes the file writer does, and each refuses
    /// the other's finish.
    #[test]
    fn in_memory_bytes_equal_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.vq");
        write(&path, None, 7).unwrap();
        let mut w = ContainerWriter::in_memory().unwrap();
        w.add_json("params", 1, &serde_json::json!({ "seed": 7 })).unwrap();
        w.add_array("data", 1, &vec![7f32; 5000]).unwrap();
        w.add_bytes("tail", 1, &[7; 100]).unwrap();
        let bytes = w.finish_to_bytes().unwrap();
        assert_eq!(bytes, std::fs::read(&path).unwrap());
        let r = ContainerReader::from_bytes(&bytes, true).unwrap();
        assert_eq!(r.array::<f32>("data").unwrap(), &vec![7f32; 5000][..]);
        assert!(ContainerWriter::in_memory().unwrap().finish().is_err());
        assert!(ContainerWriter::create(dir.path().join("d.vq")).unwrap().finish_to_bytes().is_err());
        assert!(!dir.path().join("d.vq").exists());
        let mut failing = ContainerWriter::in_memory().unwrap();
        failing.fail_after(10);
        assert!(failing.add_bytes("tail", 1, &[7; 100]).is_err());
        assert!(failing.finish_to_bytes().is_err(), "a writer that failed cannot be finished");
    }

    /// The file `add_array` writes for `values`.
    fn whole(values: &[u32]) -> Vec<u8> {
        let mut w = ContainerWriter::in_memory().unwrap();
        w.add_array("v", 1, values).unwrap();
        w.finish_to_bytes().unwrap()
    }

    proptest::proptest! {
        /// A section written in parts is the section written whole, checksum included (the
        /// streaming digest across xxh3's short-input, stripe and block boundaries).
        #[test]
        fn parts_write_the_whole_section(
            values in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..1200),
            cuts in proptest::collection::vec(0usize..1200, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(values.len())).collect();
            cuts.push(0);
            cuts.push(values.len());
            cuts.sort_unstable();
            let mut w = ContainerWriter::in_memory().unwrap();
            w.add_array_parts("v", 1, cuts.windows(2).map(|c| &values[c[0]..c[1]])).unwrap();
            let bytes = w.finish_to_bytes().unwrap();
            proptest::prop_assert_eq!(&bytes, &whole(&values));
            let r = ContainerReader::from_bytes(&bytes, true).unwrap();
            proptest::prop_assert_eq!(r.array::<u32>("v").unwrap(), &values[..]);
        }
    }

    /// Parts larger and smaller than the file writer's buffer, into a file.
    #[test]
    fn parts_into_a_file_equal_the_whole() {
        let values: Vec<u32> = (0..700_000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.vq");
        let mut w = ContainerWriter::create(&path).unwrap();
        let parts = [&values[..3], &values[3..3], &values[3..400_000], &values[400_000..400_001], &values[400_001..]];
        w.add_array_parts("v", 1, parts).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), whole(&values));
        assert_eq!(ContainerReader::open(&path).unwrap().array::<u32>("v").unwrap(), &values[..]);
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_failure_at_any_point_leaves_the_old_file_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.vq");
        write(&path, None, 1).unwrap();
        let old = std::fs::read(&path).unwrap();
        let total = old.len() as u64;
        // After `create` (which writes a placeholder header) the writer writes `total` more
        // bytes: sections and table, then the real header. Fail anywhere in them, including
        // inside the table and in the final header rewrite.
        for fail_after in (0..total).step_by(997).chain([total - HEADER_LEN - 1, total - HEADER_LEN, total - 1]) {
            let err = write(&path, Some(fail_after), 2).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), old, "failure after {fail_after} bytes changed the file");
            assert_eq!(files_in(dir.path()), ["index.vq"], "temporary file left behind");
        }
        // The old file is still a valid container with the old contents.
        let r = ContainerReader::open(&path).unwrap();
        assert_eq!(r.bytes("tail").unwrap(), &[1u8; 100]);
        // And a write that does not fail replaces it.
        write(&path, None, 3).unwrap();
        assert_eq!(ContainerReader::open(&path).unwrap().bytes("tail").unwrap(), &[3u8; 100]);
        assert_eq!(files_in(dir.path()), ["index.vq"]);
    }

    #[test]
    fn a_dropped_or_failed_writer_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.vq");
        let mut w = ContainerWriter::create(&path).unwrap();
        w.add_bytes("a", 1, b"x").unwrap();
        assert!(w.temp_path().exists());
        drop(w);
        assert!(files_in(dir.path()).is_empty());
        // A value serde cannot encode as JSON fails the call, and the writer can be dropped.
        let mut w = ContainerWriter::create(&path).unwrap();
        let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert!(matches!(w.add_json("bad", 1, &bad), Err(Error::Json { .. })));
        assert!(matches!(w.add_bytes("", 1, b""), Err(Error::InvalidArgument { .. })));
        assert!(matches!(w.add_bytes(&"n".repeat(65), 1, b""), Err(Error::InvalidArgument { .. })));
        w.add_bytes("a", 1, b"x").unwrap();
        assert!(matches!(w.add_bytes("a", 1, b"y"), Err(Error::InvalidArgument { .. })));
        drop(w);
        assert!(files_in(dir.path()).is_empty());
    }
}
