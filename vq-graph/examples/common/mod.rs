//! What the examples share: reading a texmex folder's matrices.

/// `<dir>/<stem>.bvecs` (bytes, widened) or `<dir>/<stem>.fvecs`, as f32 rows and their
/// dimension.
pub(crate) fn read_f32(dir: &std::path::Path, stem: &str) -> (Vec<f32>, usize) {
    let bytes = dir.join(format!("{stem}.bvecs"));
    let path = if bytes.exists() { bytes } else { dir.join(format!("{stem}.fvecs")) };
    vq_io::read::<f32>(path).expect(stem).into_parts()
}
