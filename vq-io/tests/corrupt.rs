//! Hand-made malformed files: each gives its own error, naming the file and the row or
//! section, and nothing panics.

use std::path::{Path, PathBuf};

use vq_io::{ContainerReader, ContainerWriter, DatasetReader, Error, Format, OpenOptions};

fn fvecs_row(dim: i32, values: &[f32]) -> Vec<u8> {
    let mut v = dim.to_le_bytes().to_vec();
    for x in values {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn open(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, Result<vq_io::Matrix<f32>, Error>) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let r = vq_io::read::<f32>(&path);
    if let Err(e) = &r {
        // Every message names the file.
        assert!(e.to_string().contains(name), "{e}");
    }
    (path, r)
}

fn bin(rows: u32, dim: u32, payload: usize) -> Vec<u8> {
    let mut v = rows.to_le_bytes().to_vec();
    v.extend_from_slice(&dim.to_le_bytes());
    v.resize(8 + payload, 7);
    v
}

fn npy(version: u8, dict: &str, payload: usize) -> Vec<u8> {
    let mut v = b"\x93NUMPY".to_vec();
    v.extend_from_slice(&[version, 0]);
    let mut text = dict.to_string();
    let prefix = if version == 1 { 10 } else { 12 };
    while !(prefix + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    if version == 1 {
        v.extend_from_slice(&(text.len() as u16).to_le_bytes());
    } else {
        v.extend_from_slice(&(text.len() as u32).to_le_bytes());
    }
    v.extend_from_slice(text.as_bytes());
    v.resize(v.len() + payload, 0);
    v
}

#[test]
fn empty_files() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["e.fvecs", "e.bvecs", "e.fbin", "e.u8bin", "e.npy"] {
        assert!(matches!(open(dir.path(), name, b"").1, Err(Error::Empty { .. })), "{name}");
    }
}

#[test]
fn texmex_truncated_last_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = [fvecs_row(3, &[1.0, 2.0, 3.0]), fvecs_row(3, &[4.0, 5.0, 6.0])].concat();
    bytes.extend_from_slice(&fvecs_row(3, &[7.0, 8.0])); // row 2 lacks a value
    match open(dir.path(), "t.fvecs", &bytes).1 {
        Err(e @ Error::Truncated { row: 2, needed: 16, available: 12, .. }) => {
            assert!(e.to_string().contains("row 2"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Shorter than one row, and shorter than the dimension prefix.
    assert!(matches!(open(dir.path(), "s.fvecs", &bytes[..10]).1, Err(Error::Truncated { row: 0, .. })));
    assert!(matches!(open(dir.path(), "p.fvecs", &bytes[..3]).1, Err(Error::Truncated { row: 0, .. })));
}

#[test]
fn texmex_row_with_another_dimension() {
    let dir = tempfile::tempdir().unwrap();
    // The total length is a whole number of rows: found while reading.
    let bytes = [fvecs_row(2, &[1.0, 2.0]), fvecs_row(2, &[3.0, 4.0]), fvecs_row(1, &[5.0, 6.0])].concat();
    match open(dir.path(), "d.fvecs", &bytes).1 {
        Err(e @ Error::DimensionMismatch { row: 2, expected: 2, found: 1, .. }) => {
            assert!(e.to_string().contains("row 2"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Reading only the rows before it succeeds.
    let path = dir.path().join("d.fvecs");
    assert_eq!(vq_io::read_rows::<f32>(&path, 0..2).unwrap().as_slice(), &[1.0, 2.0, 3.0, 4.0]);
    // The length is not a whole number of rows: the open names the row, not a truncation.
    let bytes = [fvecs_row(2, &[1.0, 2.0]), fvecs_row(3, &[3.0, 4.0, 5.0])].concat();
    assert!(matches!(open(dir.path(), "e.fvecs", &bytes).1, Err(Error::DimensionMismatch { row: 1, found: 3, .. })));
}

#[test]
fn bad_dimensions_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (dim, name) in [(0, "zero"), (-5, "negative"), (i32::MAX, "huge")] {
        let bytes = fvecs_row(dim, &[1.0; 4]);
        assert!(
            matches!(open(dir.path(), &format!("{name}.fvecs"), &bytes).1, Err(Error::BadDimension { row: 0, .. })),
            "{name}"
        );
    }
    // Allowed by MAX_DIM but longer than the file.
    let bytes = fvecs_row(1 << 20, &[1.0; 4]);
    assert!(
        matches!(open(dir.path(), "long.fvecs", &bytes).1, Err(Error::Truncated { row: 0, needed, .. }) if needed == 4 + (4 << 20))
    );
    // A big-ann header promising 4 billion rows of 2^24 values on a 100-byte file.
    let bytes = bin(u32::MAX, 1 << 24, 92);
    assert!(matches!(open(dir.path(), "huge.fbin", &bytes).1, Err(Error::Truncated { row: 0, .. })));
    assert!(matches!(open(dir.path(), "zero.u8bin", &bin(3, 0, 0)).1, Err(Error::BadDimension { dim: 0, .. })));
    assert!(matches!(
        open(dir.path(), "big.u8bin", &bin(1, u32::MAX, 0)).1,
        Err(Error::BadDimension { dim, .. }) if dim == i64::from(u32::MAX)
    ));
}

#[test]
fn big_ann_lengths() {
    let dir = tempfile::tempdir().unwrap();
    // 3 rows of 4 f32 promised, 2.5 present.
    match open(dir.path(), "t.fbin", &bin(3, 4, 40)).1 {
        Err(Error::Truncated { row: 2, needed: 16, available: 8, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(open(dir.path(), "x.fbin", &bin(2, 4, 33)).1, Err(Error::TrailingBytes { extra: 1, .. })));
    assert!(matches!(open(dir.path(), "h.fbin", &bin(2, 4, 0)[..5]).1, Err(Error::BadHeader { .. })));
    // Zero rows is a valid file.
    assert_eq!(open(dir.path(), "z.u8bin", &bin(0, 4, 0)).1.unwrap().rows(), 0);
}

#[test]
fn npy_headers() {
    let dir = tempfile::tempdir().unwrap();
    let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    for version in [1, 2, 3] {
        let m = open(dir.path(), &format!("ok{version}.npy"), &npy(version, ok, 24)).1.unwrap();
        assert_eq!((m.rows(), m.dim()), (2, 3));
    }
    type Check = fn(&Error) -> bool;
    let cases: &[(&str, Vec<u8>, Check)] = &[
        ("magic.npy", b"\x93NUMPX\x01\x00\x10\x00{}".to_vec(), |e| matches!(e, Error::BadHeader { .. })),
        ("version.npy", npy(4, ok, 24), |e| matches!(e, Error::BadHeader { .. })),
        (
            "big-endian.npy",
            npy(1, &ok.replace("<f4", ">f4"), 24),
            |e| matches!(e, Error::UnsupportedDtype { descr, .. } if descr == ">f4"),
        ),
        ("complex.npy", npy(1, &ok.replace("<f4", "<c8"), 48), |e| matches!(e, Error::UnsupportedDtype { .. })),
        ("object.npy", npy(1, &ok.replace("<f4", "|O"), 48), |e| matches!(e, Error::UnsupportedDtype { .. })),
        ("structured.npy", npy(1, &ok.replace("'<f4'", "[('a', '<f4')]"), 24), |e| {
            matches!(e, Error::UnsupportedDtype { .. })
        }),
        ("fortran.npy", npy(1, &ok.replace("False", "True"), 24), |e| matches!(e, Error::FortranOrder { .. })),
        ("scalar.npy", npy(1, &ok.replace("(2, 3)", "()"), 4), |e| matches!(e, Error::BadHeader { .. })),
        ("zero-dim.npy", npy(1, &ok.replace("(2, 3)", "(2, 0)"), 0), |e| {
            matches!(e, Error::BadDimension { dim: 0, .. })
        }),
        ("short.npy", npy(1, ok, 20), |e| matches!(e, Error::Truncated { row: 1, .. })),
        ("long.npy", npy(1, ok, 25), |e| matches!(e, Error::TrailingBytes { extra: 1, .. })),
        ("garbled.npy", npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", 24), |e| {
            matches!(e, Error::BadHeader { .. })
        }),
        ("huge-shape.npy", npy(1, &ok.replace("(2, 3)", "(4294967296, 4294967296, 4294967296)"), 0), |e| {
            matches!(e, Error::BadDimension { .. })
        }),
    ];
    for (name, bytes, check) in cases {
        let r = open(dir.path(), name, bytes).1;
        assert!(r.as_ref().is_err_and(check), "{name}: {r:?}");
    }
    // A header length past the end of the file (version 2: 32-bit length).
    let mut bytes = npy(2, ok, 24);
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(open(dir.path(), "hlen.npy", &bytes).1, Err(Error::BadHeader { .. })));
}

#[test]
fn formats_types_and_maps() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(open(dir.path(), "x.csv", b"1,2").1, Err(Error::UnknownFormat { .. })));
    let path = dir.path().join("x.fvecs");
    vq_io::write(&path, Format::Fvecs, &[1.0f32, 2.0], 2).unwrap();
    assert!(matches!(vq_io::map::<f32>(&path), Err(Error::NotMappable { .. })));
    assert!(matches!(vq_io::read::<u8>(&path), Err(Error::ElementType { expected: "u8", found: "f32", .. })));
    assert!(matches!(vq_io::write(&path, Format::Fvecs, &[1u8], 1), Err(Error::ElementType { .. })));
    assert!(matches!(vq_io::write(&path, Format::Fvecs, &[1.0f32; 3], 2), Err(Error::InvalidArgument { .. })));
    assert!(matches!(vq_io::write::<f32>(&path, Format::Fvecs, &[], 2), Err(Error::InvalidArgument { .. })));
    let npy_path = dir.path().join("x.npy");
    vq_io::write(&npy_path, Format::Npy, &[1u8, 2], 2).unwrap();
    assert!(matches!(vq_io::map::<f32>(&npy_path), Err(Error::ElementType { .. })));
    // An npy file whose data starts at an offset that is not a multiple of 4 reads but does
    // not map as f32.
    let mut odd = npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", 0);
    let hlen = u16::from_le_bytes([odd[8], odd[9]]) + 1;
    odd.insert(odd.len() - 1, b' ');
    odd[8..10].copy_from_slice(&hlen.to_le_bytes());
    odd.extend_from_slice(&[0u8; 8]);
    let path = dir.path().join("odd.npy");
    std::fs::write(&path, &odd).unwrap();
    assert_eq!(vq_io::read::<f32>(&path).unwrap().as_slice(), &[0.0, 0.0]);
    assert!(matches!(vq_io::map::<f32>(&path), Err(Error::NotMappable { .. })));
    // Reading from a reader whose rows were requested out of order.
    let mut r = DatasetReader::open(&npy_path).unwrap();
    assert!(matches!(r.read_rows::<u8>(std::ops::Range { start: 1, end: 0 }), Err(Error::RowRange { .. })));
    assert!(matches!(r.seek_row(1), Ok(())));
    assert!(matches!(r.seek_row(2), Err(Error::RowRange { .. })));
}

// ---------------------------------------------------------------------------------------------
// Containers

/// A valid container: `params` (JSON), `data` (f32 array), `extra` (optional bytes).
fn container(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("c.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    w.add_json("params", 1, &serde_json::json!({ "m": 16 })).unwrap();
    w.add_array("data", 1, &[1.0f32; 100]).unwrap();
    w.add_bytes("extra", 1, b"x").unwrap();
    w.mark_optional("extra").unwrap();
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}

/// Offset of table entry `i`.
fn entry(b: &[u8], i: usize) -> usize {
    u64_at(b, 24) as usize + 128 * i
}

/// Recomputes the header checksum after an edit of the header or table.
fn reseal(b: &mut [u8]) {
    let table = u64_at(b, 24) as usize;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&b[..40]);
    h.update(&b[table..]);
    let sum = h.digest();
    b[40..48].copy_from_slice(&sum.to_le_bytes());
}

/// Opens `bytes` from memory, and through a file read section by section, which must give
/// the same outcome (the same error, naming the file instead of `<memory>`).
fn open_c(bytes: &[u8]) -> Result<ContainerReader, Error> {
    let r = ContainerReader::from_bytes(bytes, true);
    if let Err(e) = &r {
        assert!(e.to_string().contains("<memory>"), "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read.vq");
    std::fs::write(&path, bytes).unwrap();
    let from_file = ContainerReader::open(&path);
    match (&r, &from_file) {
        (Ok(_), Ok(_)) => {}
        (Err(m), Err(f)) => {
            assert_eq!(std::mem::discriminant(m), std::mem::discriminant(f), "{m} / {f}");
            assert!(f.to_string().contains("read.vq"), "{f}");
        }
        _ => panic!("from memory {r:?}, from the file {from_file:?}"),
    }
    r
}

#[test]
fn container_header_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, good) = container(dir.path());
    assert!(open_c(&good).is_ok());
    assert!(matches!(open_c(&[]), Err(Error::Empty { .. })));
    assert!(matches!(open_c(b"PK\x03\x04 not a container"), Err(Error::BadMagic { .. })));
    assert!(matches!(open_c(&good[..20]), Err(Error::CorruptContainer { .. })));
    // Truncated anywhere: the header's length no longer matches.
    assert!(matches!(open_c(&good[..good.len() - 1]), Err(Error::CorruptContainer { .. })));
    let mut newer = good.clone();
    newer[8] = 2;
    assert!(matches!(open_c(&newer), Err(Error::UnsupportedVersion { found: 2, supported: 1, .. })));
    // A flipped byte in the table: the header checksum catches it.
    let mut flipped = good.clone();
    let at = entry(&good, 1) + 70;
    flipped[at] ^= 1;
    assert!(matches!(open_c(&flipped), Err(Error::ChecksumMismatch { name, .. }) if name == "<header>"));
    // The same through a file, mapped and read.
    std::fs::write(&path, &newer).unwrap();
    for mmap in [false, true] {
        let e = ContainerReader::open_with(&path, OpenOptions { mmap, verify_checksums: false }).unwrap_err();
        assert!(matches!(e, Error::UnsupportedVersion { .. }));
        assert!(e.to_string().contains("c.vq"), "{e}");
    }
}

#[test]
fn container_section_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = container(dir.path());
    let (params, data, extra) = (entry(&good, 0), entry(&good, 1), entry(&good, 2));

    // A flipped data byte: only that section's checksum catches it, and only when verifying.
    let mut bad = good.clone();
    let data_offset = u64_at(&good, data + 64) as usize;
    bad[data_offset + 5] ^= 0x40;
    assert!(matches!(open_c(&bad), Err(Error::ChecksumMismatch { name, .. }) if name == "data"));
    let r = ContainerReader::from_bytes(&bad, false).unwrap();
    assert!(matches!(r.verify_checksums(), Err(Error::ChecksumMismatch { name, .. }) if name == "data"));

    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        reseal(&mut b);
        open_c(&b)
    };
    // `data` made to start inside `params`.
    let r = edit(&|b| {
        let p = b[params + 64..params + 72].to_vec();
        b[data + 64..data + 72].copy_from_slice(&p);
    });
    assert!(
        matches!(&r, Err(Error::SectionOverlap { first, second, .. }) if first == "params" && second == "data"),
        "{r:?}"
    );
    // `extra` reaching into the table, or past the end of the file with an overflowing length.
    let r = edit(&|b| b[extra + 72..extra + 80].copy_from_slice(&1000u64.to_le_bytes()));
    assert!(matches!(&r, Err(Error::SectionOutOfBounds { name, .. }) if name == "extra"), "{r:?}");
    let r = edit(&|b| b[extra + 72..extra + 80].copy_from_slice(&u64::MAX.to_le_bytes()));
    assert!(matches!(&r, Err(Error::SectionOutOfBounds { end: u64::MAX, .. })), "{r:?}");
    let r = edit(&|b| b[extra + 64..extra + 72].copy_from_slice(&0u64.to_le_bytes()));
    assert!(matches!(&r, Err(Error::SectionOutOfBounds { offset: 0, .. })), "{r:?}");
    let r = edit(&|b| b[data + 64] += 4);
    assert!(matches!(&r, Err(Error::SectionMisaligned { name, .. }) if name == "data"), "{r:?}");
    let r = edit(&|b| b[extra..extra + 6].copy_from_slice(b"params"));
    assert!(matches!(&r, Err(Error::DuplicateSection { name, .. }) if name == "params"), "{r:?}");
    let r = edit(&|b| b[data + 89] = 200);
    assert!(matches!(&r, Err(Error::CorruptContainer { .. })), "{r:?}");
    let r = edit(&|b| b[data + 72] += 2); // 402 bytes of f32
    assert!(matches!(&r, Err(Error::CorruptContainer { .. })), "{r:?}");
    let r = edit(&|b| b[data] = 0xff); // name not UTF-8
    assert!(matches!(&r, Err(Error::CorruptContainer { .. })), "{r:?}");

    // Required and optional sections, names and types.
    let r = open_c(&good).unwrap();
    r.check_known(&["params", "data"]).unwrap(); // `extra` is optional
    assert!(matches!(r.check_known(&["params"]), Err(Error::UnknownRequiredSection { name, .. }) if name == "data"));
    assert!(matches!(r.array::<f32>("nope"), Err(Error::MissingSection { .. })));
    assert!(matches!(r.array::<f64>("data"), Err(Error::SectionType { .. })));
    assert!(matches!(r.json::<u32>("data"), Err(Error::SectionType { .. })));
    assert!(matches!(r.json::<Vec<u8>>("params"), Err(Error::Json { .. })));
    assert_eq!(r.array::<f32>("data").unwrap(), &[1.0; 100]);
}

/// A container whose `big` array is left in the file at open (64 KiB or more) beside small
/// sections: returns (path, bytes, the array).
fn with_large_section(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u32>) {
    let big: Vec<u32> = (0..100_000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
    let path = dir.join("large.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    w.add_json("params", 1, &serde_json::json!({ "n": big.len() })).unwrap();
    w.add_array("big", 1, &big).unwrap();
    w.add_array("small", 1, &[3u64, 4]).unwrap();
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes, big)
}

/// Large sections read straight into the caller's parts, borrowed, or as a vector give the
/// same values from a file, a map and bytes; parts that do not cover the section exactly and
/// the wrong element type are errors.
#[test]
fn large_sections_read_into_parts_every_way() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes, big) = with_large_section(dir.path());
    let readers = [
        ContainerReader::open(&path).unwrap(),
        ContainerReader::open_with(&path, OpenOptions { mmap: true, ..Default::default() }).unwrap(),
        ContainerReader::from_bytes(&bytes, true).unwrap(),
        ContainerReader::open(&path).unwrap(),
    ];
    for (i, r) in readers.iter().enumerate() {
        if i == 3 {
            // Borrowed first: the section is then in memory and the parts are copied from it.
            assert_eq!(r.array::<u32>("big").unwrap(), &big[..]);
        }
        let mut out = vec![0u32; big.len()];
        let (a, rest) = out.split_at_mut(7);
        let (b, c) = rest.split_at_mut(60_000);
        r.read_array_parts("big", [a, &mut [][..], b, c]).unwrap();
        assert_eq!(out, big, "reader {i}");
        assert_eq!(r.array_vec::<u32>("big").unwrap(), big, "reader {i}");
        assert_eq!(r.array_vec::<u64>("small").unwrap(), [3, 4], "reader {i}");
        assert_eq!(r.array::<u32>("big").unwrap(), &big[..], "reader {i}");
        let mut short = vec![0u32; big.len() - 1];
        assert!(matches!(r.read_array_parts("big", [&mut short[..]]), Err(Error::InvalidArgument { .. })));
        let mut long = vec![0u32; big.len() + 1];
        assert!(matches!(r.read_array_parts("big", [&mut long[..]]), Err(Error::InvalidArgument { .. })));
        let mut wrong = vec![0f32; big.len()];
        assert!(matches!(r.read_array_parts("big", [&mut wrong[..]]), Err(Error::SectionType { .. })));
        assert!(matches!(r.array_vec::<u32>("absent"), Err(Error::MissingSection { .. })));
        r.verify_checksums().unwrap();
    }
}

/// A flipped byte in a large section: a file read without a map opens (the section is still
/// in the file) and every way of reading the section reports the mismatch; without
/// verification the flipped value comes through.
#[test]
fn a_large_sections_checksum_is_verified_when_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes, big) = with_large_section(dir.path());
    let at = u64_at(&bytes, entry(&bytes, 1) + 64) as usize + 4 * 5000;
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let mismatch = |r: Result<(), Error>| matches!(r, Err(Error::ChecksumMismatch { name, .. }) if name == "big");
    assert!(mismatch(ContainerReader::from_bytes(&bytes, true).map(drop)));
    assert!(mismatch(ContainerReader::open_with(&path, OpenOptions { mmap: true, ..Default::default() }).map(drop)));
    let r = ContainerReader::open(&path).unwrap();
    let mut out = vec![0u32; big.len()];
    assert!(mismatch(r.read_array_parts("big", [&mut out[..]])));
    assert!(mismatch(r.array_vec::<u32>("big").map(drop)));
    assert!(mismatch(r.array::<u32>("big").map(drop)));
    assert!(mismatch(r.verify_checksums()));
    assert!(mismatch(ContainerReader::open(&path).unwrap().verify_checksums()));
    let unchecked =
        ContainerReader::open_with(&path, OpenOptions { verify_checksums: false, ..Default::default() }).unwrap();
    let read = unchecked.array_vec::<u32>("big").unwrap();
    assert_eq!(read.iter().zip(&big).filter(|(a, b)| a != b).count(), 1);
    assert!(mismatch(unchecked.verify_checksums()));
}

/// A file truncated after it was opened: reading its large section is an I/O error, not a
/// panic or a short array.
#[test]
fn a_file_truncated_after_open_is_an_error_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes, big) = with_large_section(dir.path());
    let r = ContainerReader::open(&path).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(bytes.len() as u64 / 2).unwrap();
    let mut out = vec![0u32; big.len()];
    let e = r.read_array_parts("big", [&mut out[..]]).unwrap_err();
    assert!(matches!(&e, Error::Io { .. }) && e.to_string().contains("large.vq"), "{e}");
    assert!(matches!(r.array::<u32>("big"), Err(Error::Io { .. })));
    assert_eq!(r.array::<u64>("small").unwrap(), &[3, 4], "read at open");
}
