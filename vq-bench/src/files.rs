//! Reading dataset files: texmex `.fvecs`/`.bvecs`/`.ivecs`.
//!
//! Kept small on purpose: the full set of formats (fbin, u8bin, npy, memory maps, streaming)
//! belongs to `vq-io`, which this module defers to once it lands.

use std::path::{Path, PathBuf};

use crate::dataset::{GroundTruth, Vectors};
use crate::error::{Error, Result};

/// `<dir>/<stem>.bvecs` or `<dir>/<stem>.fvecs`, whichever exists.
pub(crate) fn find_vectors(dir: &Path, stem: &str) -> Result<PathBuf> {
    ["bvecs", "fvecs"].iter().map(|ext| dir.join(format!("{stem}.{ext}"))).find(|p| p.exists()).ok_or_else(|| {
        Error::Dataset { name: dir.display().to_string(), what: format!("no {stem}.bvecs or {stem}.fvecs in it") }
    })
}

/// Reads a texmex file of `elem_bytes`-byte values: every row a little-endian i32 dimension,
/// then the values. Checks every row's dimension and the file's length before allocating.
fn read_texmex<T>(path: &Path, elem_bytes: usize, conv: impl Fn(&[u8]) -> T) -> Result<(usize, Vec<T>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() < 4 {
        return Err(Error::bad_file(path, "empty or truncated file"));
    }
    let dim = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if dim <= 0 || dim > 1 << 20 {
        return Err(Error::bad_file(path, format!("row 0 has dimension {dim}")));
    }
    let dim = dim as usize;
    let row_bytes = 4 + dim * elem_bytes;
    if bytes.len() % row_bytes != 0 {
        return Err(Error::bad_file(
            path,
            format!("{} bytes is not a whole number of rows of {row_bytes} bytes (truncated last row?)", bytes.len()),
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / row_bytes * dim);
    for (r, row) in bytes.chunks_exact(row_bytes).enumerate() {
        let d = i32::from_le_bytes([row[0], row[1], row[2], row[3]]);
        if d as i64 != dim as i64 {
            return Err(Error::bad_file(path, format!("row {r} has dimension {d}, row 0 has {dim}")));
        }
        out.extend(row[4..].chunks_exact(elem_bytes).map(&conv));
    }
    Ok((dim, out))
}

/// Reads `.bvecs` (as u8) or `.fvecs` (as f32), by extension.
pub(crate) fn read_vectors(path: &Path) -> Result<(usize, Vectors)> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("bvecs") => read_texmex(path, 1, |b| b[0]).map(|(d, v)| (d, Vectors::U8(v))),
        Some("fvecs") => {
            read_texmex(path, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).map(|(d, v)| (d, Vectors::F32(v)))
        }
        _ => Err(Error::bad_file(path, "unsupported vector format (expected .bvecs or .fvecs)")),
    }
}

/// Reads an `.ivecs` ground truth: one row of neighbour ids per query.
pub(crate) fn read_ground_truth(path: &Path) -> Result<GroundTruth> {
    let (depth, ids) = read_texmex(path, 4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
    if let Some(pos) = ids.iter().position(|&i| i < 0) {
        return Err(Error::bad_file(path, format!("row {} holds a negative id {}", pos / depth, ids[pos])));
    }
    Ok(GroundTruth { depth, ids: ids.into_iter().map(|i| i as u64).collect(), scores: None })
}

/// Writes an `.ivecs` file (ids) beside an `.fvecs`-style scores file, for the cache.
pub(crate) fn write_texmex_i32(path: &Path, dim: usize, values: &[i32]) -> Result<()> {
    write_rows(path, dim, values.iter().map(|v| v.to_le_bytes()))
}

/// Writes an `.fvecs` file.
pub(crate) fn write_texmex_f32(path: &Path, dim: usize, values: &[f32]) -> Result<()> {
    write_rows(path, dim, values.iter().map(|v| v.to_le_bytes()))
}

fn write_rows(path: &Path, dim: usize, values: impl Iterator<Item = [u8; 4]>) -> Result<()> {
    let dim32 = i32::try_from(dim).map_err(|_| Error::bad_file(path, format!("dimension {dim} too large")))?;
    let mut out = Vec::new();
    for (i, v) in values.enumerate() {
        if i % dim == 0 {
            out.extend_from_slice(&dim32.to_le_bytes());
        }
        out.extend_from_slice(&v);
    }
    // Write beside the target and rename, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &out).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
