//! Dataset files, read and written through `vq-io` (texmex, big-ann bin, npy).

use std::path::{Path, PathBuf};

use vq_io::{DatasetReader, ElementType, Format};

use crate::dataset::{GroundTruth, Vectors};
use crate::error::{Error, Result};

/// Vector file extensions a dataset folder is searched for, in this order.
const VECTOR_EXTS: [&str; 6] = ["bvecs", "u8bin", "fvecs", "fbin", "npy", "i8bin"];
/// Ground-truth file extensions.
const GT_EXTS: [&str; 3] = ["ivecs", "ibin", "npy"];

fn find(dir: &Path, stem: &str, exts: &[&str]) -> Option<PathBuf> {
    exts.iter().map(|ext| dir.join(format!("{stem}.{ext}"))).find(|p| p.exists())
}

/// `<dir>/<stem>.{bvecs,u8bin,fvecs,fbin,npy,i8bin}`, whichever exists first.
pub(crate) fn find_vectors(dir: &Path, stem: &str) -> Result<PathBuf> {
    find(dir, stem, &VECTOR_EXTS).ok_or_else(|| Error::Dataset {
        name: dir.display().to_string(),
        what: format!("no {stem}.{{{}}} in it", VECTOR_EXTS.join(",")),
    })
}

/// `<dir>/gt.{ivecs,ibin,npy}`, if any.
pub(crate) fn find_ground_truth(dir: &Path) -> Option<PathBuf> {
    find(dir, "gt", &GT_EXTS)
}

/// Reads a vector file: `u8` files stay `u8` (searched as stored), every other type is
/// converted to `f32`.
pub(crate) fn read_vectors(path: &Path) -> Result<(usize, Vectors)> {
    let r = DatasetReader::open(path)?;
    let dim = r.dim();
    let v = if r.element_type() == ElementType::U8 {
        Vectors::U8(r.read_all::<u8>()?.into_vec())
    } else {
        Vectors::F32(r.read_all::<f32>()?.into_vec())
    };
    Ok((dim, v))
}

/// Reads a ground truth: one row of neighbour ids per query.
pub(crate) fn read_ground_truth(path: &Path) -> Result<GroundTruth> {
    let m = vq_io::read::<i32>(path)?;
    let depth = m.dim();
    let ids = m.into_vec();
    if let Some(pos) = ids.iter().position(|&i| i < 0) {
        return Err(Error::bad_file(path, format!("row {} holds a negative id {}", pos / depth, ids[pos])));
    }
    Ok(GroundTruth { depth, ids: ids.into_iter().map(|i| i as u64).collect(), scores: None })
}

/// Writes an `.ivecs` file (atomically).
pub(crate) fn write_texmex_i32(path: &Path, dim: usize, values: &[i32]) -> Result<()> {
    Ok(vq_io::write(path, Format::Ivecs, values, dim)?)
}

/// Writes an `.fvecs` file (atomically).
pub(crate) fn write_texmex_f32(path: &Path, dim: usize, values: &[f32]) -> Result<()> {
    Ok(vq_io::write(path, Format::Fvecs, values, dim)?)
}
