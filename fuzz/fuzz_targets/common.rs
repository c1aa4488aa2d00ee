//! Shared by the dataset targets: read `data` as `format` every way a caller can.

use vq_io::{DatasetReader, Element, Format};

/// Reads `data` as `format`: all rows as the native type and as f32, a range, and streamed.
/// Any error is fine; a panic, a hang or an unbounded allocation is a finding.
pub fn read_all_ways<T: Element>(format: Format, sel: u8, data: &[u8]) {
    let Ok(mut r) = DatasetReader::from_bytes(data, format) else { return };
    let (rows, dim) = (r.rows(), r.dim());
    assert!(dim >= 1);
    if let Ok(m) = r.read_rows::<T>(0..rows) {
        assert_eq!(m.as_slice().len() as u64, rows * dim as u64);
    }
    let start = u64::from(sel) % (rows + 1);
    let _ = r.read_rows::<f32>(start..rows);
    let _ = r.read_rows::<f32>(start..rows + u64::from(sel & 1));
    let _ = r.seek_row(start);
    for (i, row) in r.rows_iter::<T>().enumerate() {
        match row {
            Ok(row) => assert_eq!(row.len(), dim),
            Err(_) => break,
        }
        if i > 1000 {
            break;
        }
    }
    let _ = r.seek_row(0);
    while let Ok(Some(c)) = r.next_chunk::<f32>(usize::from(sel) + 1) {
        assert_eq!(c.dim(), dim);
    }
}
