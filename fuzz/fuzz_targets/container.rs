//! The index container. The first byte's bit 0 turns checksum verification on; bit 1 makes
//! the target recompute the header checksum first, so that mutations of the header and
//! section table reach the table checks instead of stopping at the checksum.
#![no_main]

mod structured;

use libfuzzer_sys::fuzz_target;
use vq_io::{ElementType, SectionKind};

fuzz_target!(|data: &[u8]| {
    let Some((_, r)) = structured::container(data) else { return };
    let _ = r.verify_checksums();
    let _ = r.check_known(&["params", "data"]);
    for s in r.sections().to_vec() {
        let b = r.bytes(&s.name).unwrap();
        assert_eq!(b.len() as u64, s.len);
        match s.kind {
            SectionKind::Json => {
                let _ = r.json::<serde_json::Value>(&s.name);
            }
            SectionKind::Array(ElementType::F32) => assert_eq!(r.array::<f32>(&s.name).unwrap().len() * 4, b.len()),
            SectionKind::Array(ElementType::U64) => assert_eq!(r.array::<u64>(&s.name).unwrap().len() * 8, b.len()),
            SectionKind::Array(ElementType::F16) => {
                assert_eq!(r.array::<vq_io::f16>(&s.name).unwrap().len() * 2, b.len())
            }
            SectionKind::Array(ElementType::U8) => assert_eq!(r.array::<u8>(&s.name).unwrap(), b),
            SectionKind::Array(_) | SectionKind::Bytes => assert!(r.array::<u8>(&s.name).is_err()),
        }
    }
});
