//! Round trips through every dataset format and element type, and through the container,
//! with random shapes and values (values compared as bytes, so NaNs count too).

use proptest::prelude::*;
use vq_io::{
    ContainerReader, ContainerWriter, DatasetReader, DatasetWriter, Element, ElementType, Format, OpenOptions,
    SectionKind, bf16, f16,
};

/// Writes `values` in memory as `format`, reads them back every way, and checks each against
/// the input.
fn dataset_round_trip<T: Element>(format: Format, values: &[T], dim: usize) -> Result<(), TestCaseError> {
    let rows = (values.len() / dim) as u64;
    let mut w = DatasetWriter::<T, _>::in_memory(format, dim).unwrap();
    // Two calls, to exercise appending.
    let split = (rows as usize / 2) * dim;
    w.write_rows(&values[..split]).unwrap();
    w.write_rows(&values[split..]).unwrap();
    let bytes = w.finish().unwrap().into_inner();

    let mut r = DatasetReader::from_bytes(&bytes, format).unwrap();
    prop_assert_eq!((r.rows(), r.dim(), r.element_type()), (rows, dim, T::TYPE));
    let all = r.read_rows::<T>(0..rows).unwrap();
    prop_assert_eq!(bytemuck::cast_slice::<T, u8>(all.as_slice()), bytemuck::cast_slice::<T, u8>(values));

    // Any range reads exactly its rows.
    for (a, b) in [(0, rows), (rows / 3, rows / 2 + 1), (rows, rows)] {
        let b = b.min(rows);
        let part = r.read_rows::<T>(a..b).unwrap();
        prop_assert_eq!(
            bytemuck::cast_slice::<T, u8>(part.as_slice()),
            bytemuck::cast_slice::<T, u8>(&values[a as usize * dim..b as usize * dim])
        );
    }
    prop_assert!(matches!(r.read_rows::<T>(0..rows + 1), Err(vq_io::Error::RowRange { .. })), "range past the end");

    // Streaming, by rows and by chunks of 3, gives the same values.
    let streamed: Vec<T> = r.rows_iter::<T>().map(|row| row.unwrap()).collect::<Vec<_>>().concat();
    prop_assert_eq!(bytemuck::cast_slice::<T, u8>(&streamed), bytemuck::cast_slice::<T, u8>(values));
    r.seek_row(0).unwrap();
    let mut chunked = Vec::new();
    while let Some(c) = r.next_chunk::<T>(3).unwrap() {
        prop_assert!(c.rows() <= 3);
        chunked.extend_from_slice(c.as_slice());
    }
    prop_assert_eq!(bytemuck::cast_slice::<T, u8>(&chunked), bytemuck::cast_slice::<T, u8>(values));

    // Converted to f32, element by element.
    let f = DatasetReader::from_bytes(&bytes, format).unwrap().read_all::<f32>().unwrap();
    let expected: Vec<f32> = values.iter().map(|&v| v.to_f32()).collect();
    prop_assert_eq!(bytemuck::cast_slice::<f32, u8>(f.as_slice()), bytemuck::cast_slice::<f32, u8>(&expected));
    Ok(())
}

/// Random rows of random bytes, reinterpreted as `T`.
fn matrix(size: usize, min_rows: usize) -> impl Strategy<Value = (Vec<u8>, usize)> {
    (1usize..=13, min_rows..=17)
        .prop_flat_map(move |(dim, rows)| (proptest::collection::vec(any::<u8>(), dim * rows * size), Just(dim)))
}

fn typed<T: Element>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(size_of::<T>()).map(bytemuck::pod_read_unaligned).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn texmex((bytes, dim) in matrix(4, 1), (bbytes, bdim) in matrix(1, 1)) {
        dataset_round_trip(Format::Fvecs, &typed::<f32>(&bytes), dim)?;
        dataset_round_trip(Format::Ivecs, &typed::<i32>(&bytes), dim)?;
        dataset_round_trip(Format::Bvecs, &bbytes, bdim)?;
    }

    #[test]
    fn big_ann_bin((bytes, dim) in matrix(4, 0), (bbytes, bdim) in matrix(1, 0)) {
        dataset_round_trip(Format::Fbin, &typed::<f32>(&bytes), dim)?;
        dataset_round_trip(Format::Ibin, &typed::<i32>(&bytes), dim)?;
        dataset_round_trip(Format::U8bin, &bbytes, bdim)?;
        dataset_round_trip(Format::I8bin, &typed::<i8>(&bbytes), bdim)?;
    }

    #[test]
    fn npy_every_type((b1, d1) in matrix(1, 0), (b2, d2) in matrix(2, 0), (b4, d4) in matrix(4, 0), (b8, d8) in matrix(8, 0)) {
        dataset_round_trip(Format::Npy, &typed::<u8>(&b1), d1)?;
        dataset_round_trip(Format::Npy, &typed::<i8>(&b1), d1)?;
        dataset_round_trip(Format::Npy, &typed::<f16>(&b2), d2)?;
        dataset_round_trip(Format::Npy, &typed::<u16>(&b2), d2)?;
        dataset_round_trip(Format::Npy, &typed::<i16>(&b2), d2)?;
        dataset_round_trip(Format::Npy, &typed::<f32>(&b4), d4)?;
        dataset_round_trip(Format::Npy, &typed::<i32>(&b4), d4)?;
        dataset_round_trip(Format::Npy, &typed::<u32>(&b4), d4)?;
        dataset_round_trip(Format::Npy, &typed::<f64>(&b8), d8)?;
        dataset_round_trip(Format::Npy, &typed::<i64>(&b8), d8)?;
        dataset_round_trip(Format::Npy, &typed::<u64>(&b8), d8)?;
    }

    #[test]
    fn files_and_memory_maps((bytes, dim) in matrix(4, 0), (bbytes, bdim) in matrix(1, 1)) {
        let dir = tempfile::tempdir().unwrap();
        let floats = typed::<f32>(&bytes);
        for format in [Format::Fbin, Format::Npy] {
            let path = dir.path().join(format!("x.{}", format.extension()));
            vq_io::write(&path, format, &floats, dim).unwrap();
            let m = vq_io::map::<f32>(&path).unwrap();
            prop_assert_eq!((m.rows(), m.dim()), (floats.len() / dim, dim));
            prop_assert_eq!(bytemuck::cast_slice::<f32, u8>(m.as_slice()), &bytes[..]);
            let read = vq_io::read::<f32>(&path).unwrap();
            prop_assert_eq!(bytemuck::cast_slice::<f32, u8>(read.as_slice()), &bytes[..]);
        }
        // bvecs read as u8 and as f32 (each byte's value, computed here independently).
        let path = dir.path().join("x.bvecs");
        vq_io::write(&path, Format::Bvecs, &bbytes, bdim).unwrap();
        prop_assert_eq!(vq_io::read::<u8>(&path).unwrap().into_vec(), bbytes.clone());
        let brows = bbytes.len() / bdim;
        for n in [0, 2, brows + 5] {
            let first = vq_io::read_first::<u8>(&path, n as u64).unwrap();
            prop_assert_eq!(first.into_vec(), bbytes[..n.min(brows) * bdim].to_vec());
        }
        let as_f32: Vec<f32> = bbytes.iter().map(|&b| f32::from(b)).collect();
        prop_assert_eq!(vq_io::read::<f32>(&path).unwrap().into_vec(), as_f32);
        prop_assert!(matches!(vq_io::read::<i32>(&path), Err(vq_io::Error::ElementType { .. })), "u8 as i32");
    }

    #[test]
    fn container(sections in proptest::collection::vec((0usize..5, proptest::collection::vec(any::<u8>(), 0..300), any::<bool>()), 0..8), mmap: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.vq");
        let mut w = ContainerWriter::create(&path).unwrap();
        let mut expected = Vec::new();
        for (i, (kind, bytes, optional)) in sections.iter().enumerate() {
            let name = format!("s{i}");
            let kind = match kind {
                0 => { w.add_bytes(&name, i as u32, bytes).unwrap(); SectionKind::Bytes }
                1 => { w.add_array(&name, 7, &typed::<f32>(&bytes[..bytes.len() / 4 * 4])).unwrap(); SectionKind::Array(ElementType::F32) }
                2 => { w.add_array(&name, 7, &typed::<u64>(&bytes[..bytes.len() / 8 * 8])).unwrap(); SectionKind::Array(ElementType::U64) }
                3 => { w.add_array(&name, 7, &typed::<bf16>(&bytes[..bytes.len() / 2 * 2])).unwrap(); SectionKind::Array(ElementType::Bf16) }
                _ => { w.add_json(&name, 3, &bytes).unwrap(); SectionKind::Json }
            };
            if *optional { w.mark_optional(&name).unwrap(); }
            expected.push((name, kind, bytes.clone(), !optional));
        }
        w.finish().unwrap();
        let r = ContainerReader::open_with(&path, OpenOptions { mmap, verify_checksums: true }).unwrap();
        prop_assert_eq!(r.sections().len(), expected.len());
        for (name, kind, bytes, required) in &expected {
            let info = r.section(name).unwrap();
            prop_assert_eq!(info.kind, *kind);
            prop_assert_eq!(info.required, *required);
            prop_assert_eq!(info.offset % 64, 0);
            match kind {
                SectionKind::Bytes => prop_assert_eq!(r.bytes(name).unwrap(), &bytes[..]),
                SectionKind::Array(ElementType::F32) => {
                    let a = r.array::<f32>(name).unwrap();
                    prop_assert_eq!(bytemuck::cast_slice::<f32, u8>(a), &bytes[..bytes.len() / 4 * 4]);
                    prop_assert_eq!(a.as_ptr() as usize % 64, 0);
                    prop_assert!(matches!(r.array::<u32>(name), Err(vq_io::Error::SectionType { .. })), "f32 as u32");
                }
                SectionKind::Array(ElementType::U64) => {
                    prop_assert_eq!(bytemuck::cast_slice::<u64, u8>(r.array::<u64>(name).unwrap()), &bytes[..bytes.len() / 8 * 8]);
                }
                SectionKind::Array(_) => {
                    prop_assert_eq!(bytemuck::cast_slice::<bf16, u8>(r.array::<bf16>(name).unwrap()), &bytes[..bytes.len() / 2 * 2]);
                }
                SectionKind::Json => prop_assert_eq!(&r.json::<Vec<u8>>(name).unwrap(), bytes),
            }
        }
        let known: Vec<&str> = expected.iter().map(|e| e.0.as_str()).collect();
        r.check_known(&known).unwrap();
        // Without the required sections' names, the first required one is refused.
        match expected.iter().find(|e| e.3) {
            Some(first) => match r.check_known(&[]) {
                Err(vq_io::Error::UnknownRequiredSection { name, .. }) => prop_assert_eq!(&name, &first.0),
                other => prop_assert!(false, "{other:?}"),
            },
            None => r.check_known(&[]).unwrap(),
        }
    }
}

#[test]
fn f16_npy_reads_as_f32() {
    let values = [f16::from_f32(1.5), f16::from_f32(-2.0), f16::from_f32(65504.0)];
    let mut w = DatasetWriter::<f16, _>::in_memory(Format::Npy, 3).unwrap();
    w.write_rows(&values).unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let m = DatasetReader::from_bytes(&bytes, Format::Npy).unwrap().read_all::<f32>().unwrap();
    assert_eq!(m.as_slice(), &[1.5, -2.0, 65504.0]);
}

#[test]
fn dataset_writer_replaces_the_file_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.fvecs");
    vq_io::write(&path, Format::Fvecs, &[1.0f32, 2.0], 2).unwrap();
    let old = std::fs::read(&path).unwrap();
    let names = || std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>();
    let mut w = DatasetWriter::<f32>::create(&path, Format::Fvecs, 2).unwrap();
    w.write_rows(&[9.0; 4]).unwrap();
    drop(w); // never finished
    assert_eq!(std::fs::read(&path).unwrap(), old);
    assert_eq!(names(), ["x.fvecs"]);
    let mut w = DatasetWriter::<f32>::create(&path, Format::Fvecs, 2).unwrap();
    w.write_rows(&[9.0; 4]).unwrap();
    w.finish().unwrap();
    assert_eq!(vq_io::read::<f32>(&path).unwrap().into_vec(), [9.0; 4]);
    assert_eq!(names(), ["x.fvecs"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `read_array_parts` fills any split of a section (up to 700 KB: parts below, across and
    /// above the reader's 256 KiB window, empty ones included) with the section's values, from
    /// the file and from a map, and `array_vec` returns them whole.
    #[test]
    fn array_parts_of_any_split(len in 0usize..700_000, seed: u64, cuts in proptest::collection::vec(0.0f64..1.0, 0..12), mmap: bool) {
        let values: Vec<u8> = (0..len as u64).map(|i| (i.wrapping_mul(seed | 1) >> 7) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.vq");
        let mut w = ContainerWriter::create(&path).unwrap();
        w.add_array("v", 1, &values).unwrap();
        w.finish().unwrap();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| (c * len as f64) as usize).chain([0, len]).collect();
        cuts.sort_unstable();
        let mut out = vec![0u8; len];
        let mut parts = Vec::new();
        let mut rest = &mut out[..];
        for c in cuts.windows(2) {
            let (part, tail) = rest.split_at_mut(c[1] - c[0]);
            parts.push(part);
            rest = tail;
        }
        let r = ContainerReader::open_with(&path, OpenOptions { mmap, verify_checksums: true }).unwrap();
        r.read_array_parts("v", parts).unwrap();
        prop_assert!(out == values);
        prop_assert!(r.array_vec::<u8>("v").unwrap() == values);
    }
}
