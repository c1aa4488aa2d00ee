//! Minimal texmex readers (`.fvecs`, `.bvecs`, `.ivecs`) for the bench until `vq-io` exists.

use std::path::Path;

/// Rows of a texmex file: `(dim, values)`, values widened to `T`.
fn read_vecs<T>(path: &Path, elem_bytes: usize, conv: impl Fn(&[u8]) -> T) -> Result<(usize, Vec<T>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 4 {
        return Err(format!("{}: empty or truncated file", path.display()));
    }
    let dim = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as i64;
    if dim <= 0 || dim > 1 << 20 {
        return Err(format!("{}: row 0 has dimension {dim}", path.display()));
    }
    let dim = dim as usize;
    let row_bytes = 4 + dim * elem_bytes;
    if bytes.len() % row_bytes != 0 {
        return Err(format!("{}: size {} is not a whole number of {row_bytes}-byte rows", path.display(), bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / row_bytes * dim);
    for (r, row) in bytes.chunks_exact(row_bytes).enumerate() {
        let d = i32::from_le_bytes(row[..4].try_into().expect("4 bytes"));
        if d as i64 != dim as i64 {
            return Err(format!("{}: row {r} has dimension {d}, row 0 has {dim}", path.display()));
        }
        out.extend(row[4..].chunks_exact(elem_bytes).map(&conv));
    }
    Ok((dim, out))
}

pub(crate) fn read_bvecs(path: &Path) -> Result<(usize, Vec<u8>), String> {
    read_vecs(path, 1, |b| b[0])
}

pub(crate) fn read_fvecs(path: &Path) -> Result<(usize, Vec<f32>), String> {
    read_vecs(path, 4, |b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
}

pub(crate) fn read_ivecs(path: &Path) -> Result<(usize, Vec<i32>), String> {
    read_vecs(path, 4, |b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
}
