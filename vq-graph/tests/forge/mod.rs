//! Forging containers for the hostile-file tests: every section is read back, `edit` may
//! change any of them, and the container is written anew, so the checksums are right and only
//! the structural checks of the reader stand between the forged fields and the graph.

use std::path::Path;

use vq_io::{ContainerReader, ContainerWriter, ElementType, SectionKind};

/// A section's content, typed as the reader sees it.
#[derive(Debug, Clone)]
pub(crate) enum Section {
    Json(serde_json::Value),
    U8(Vec<u8>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    Bytes(Vec<u8>),
}

impl Section {
    pub(crate) fn json(&mut self) -> &mut serde_json::Value {
        match self {
            Section::Json(v) => v,
            other => panic!("not JSON: {other:?}"),
        }
    }
    /// The bytes of a u8 array or of an opaque section.
    pub(crate) fn u8s(&mut self) -> &mut Vec<u8> {
        match self {
            Section::U8(v) | Section::Bytes(v) => v,
            other => panic!("not u8: {other:?}"),
        }
    }
    pub(crate) fn u32s(&mut self) -> &mut Vec<u32> {
        match self {
            Section::U32(v) => v,
            other => panic!("not u32: {other:?}"),
        }
    }
    pub(crate) fn u64s(&mut self) -> &mut Vec<u64> {
        match self {
            Section::U64(v) => v,
            other => panic!("not u64: {other:?}"),
        }
    }
    pub(crate) fn f32s(&mut self) -> &mut Vec<f32> {
        match self {
            Section::F32(v) => v,
            other => panic!("not f32: {other:?}"),
        }
    }
}

/// Every section of the container at `path`, in table order, with its version.
pub(crate) fn read(path: &Path) -> Vec<(String, u32, Section)> {
    let r = ContainerReader::open(path).unwrap();
    r.sections()
        .iter()
        .map(|s| {
            let n = s.name.as_str();
            let sec = match s.kind {
                SectionKind::Json => Section::Json(r.json(n).unwrap()),
                SectionKind::Array(ElementType::U8) => Section::U8(r.array(n).unwrap().to_vec()),
                SectionKind::Array(ElementType::U32) => Section::U32(r.array(n).unwrap().to_vec()),
                SectionKind::Array(ElementType::U64) => Section::U64(r.array(n).unwrap().to_vec()),
                SectionKind::Array(ElementType::F32) => Section::F32(r.array(n).unwrap().to_vec()),
                SectionKind::Bytes => Section::Bytes(r.bytes(n).unwrap().to_vec()),
                other => panic!("the forge does not handle {other}"),
            };
            (s.name.clone(), s.version, sec)
        })
        .collect()
}

/// Writes `sections` as a container at `path`.
pub(crate) fn write(path: &Path, sections: &[(String, u32, Section)]) {
    let mut w = ContainerWriter::create(path).unwrap();
    for (name, version, sec) in sections {
        match sec {
            Section::Json(v) => w.add_json(name, *version, v),
            Section::U8(v) => w.add_array(name, *version, v),
            Section::U32(v) => w.add_array(name, *version, v),
            Section::U64(v) => w.add_array(name, *version, v),
            Section::F32(v) => w.add_array(name, *version, v),
            Section::Bytes(v) => w.add_bytes(name, *version, v),
        }
        .unwrap();
    }
    w.finish().unwrap();
}

/// Copies the container `src` to `dst`, letting `edit` change any section on the way.
pub(crate) fn forge(src: &Path, dst: &Path, mut edit: impl FnMut(&str, &mut Section)) {
    let mut sections = read(src);
    for (name, _, sec) in &mut sections {
        edit(name, sec);
    }
    write(dst, &sections);
}
