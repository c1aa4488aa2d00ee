//! Datasets: generated ones with fixed seeds, and folders of files.

use std::path::{Path, PathBuf};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use vq_distance::Metric;

use crate::error::{Error, Result};
use crate::files;

/// Vectors as stored: `f32`, or `u8` (SIFT-style descriptors, searched as `u8`).
#[derive(Debug, Clone, PartialEq)]
pub enum Vectors {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// Bytes.
    U8(Vec<u8>),
}

impl Vectors {
    /// Number of scalar values.
    pub fn len(&self) -> usize {
        match self {
            Vectors::F32(v) => v.len(),
            Vectors::U8(v) => v.len(),
        }
    }

    /// `true` when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name.
    pub fn elem(&self) -> &'static str {
        match self {
            Vectors::F32(_) => "f32",
            Vectors::U8(_) => "u8",
        }
    }

    /// Bytes per element.
    pub fn elem_bytes(&self) -> usize {
        match self {
            Vectors::F32(_) => 4,
            Vectors::U8(_) => 1,
        }
    }

    /// The values as raw little-endian bytes (for hashing).
    pub(crate) fn bytes(&self) -> Vec<u8> {
        match self {
            Vectors::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Vectors::U8(v) => v.clone(),
        }
    }

    /// Keeps the first `rows` rows.
    pub fn truncate_rows(&mut self, rows: usize, dim: usize) {
        match self {
            Vectors::F32(v) => v.truncate(rows * dim),
            Vectors::U8(v) => v.truncate(rows * dim),
        }
    }

    /// The values as f32: borrowed when they are f32 already, converted otherwise.
    pub fn as_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        match self {
            Vectors::F32(v) => std::borrow::Cow::Borrowed(v),
            Vectors::U8(v) => std::borrow::Cow::Owned(v.iter().map(|&x| f32::from(x)).collect()),
        }
    }

    /// Converts to f32 (what Faiss searches).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Vectors::F32(v) => v.clone(),
            Vectors::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
        }
    }
}

/// Exact nearest neighbours of every query: `depth` ids per query, best first, and their
/// scores when known (texmex `gt.ivecs` files carry ids only).
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// Neighbours per query.
    pub depth: usize,
    /// `nq × depth` ids.
    pub ids: Vec<u64>,
    /// `nq × depth` scores, if known.
    pub scores: Option<Vec<f32>>,
}

impl GroundTruth {
    /// Number of queries covered.
    pub fn num_queries(&self) -> usize {
        self.ids.len().checked_div(self.depth).unwrap_or(0)
    }

    /// Keeps the first `nq` queries.
    pub fn truncate_queries(&mut self, nq: usize) {
        self.ids.truncate(nq * self.depth);
        if let Some(s) = &mut self.scores {
            s.truncate(nq * self.depth);
        }
    }
}

/// A base set, its queries, and (optionally) their exact neighbours.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Short name for tables and file names.
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// The vectors searched.
    pub base: Vectors,
    /// The queries.
    pub queries: Vectors,
    /// Exact neighbours for the dataset's metric, if the files had them.
    pub gt: Option<GroundTruth>,
    /// A separate training sample (`learn.*` in a folder), if the dataset has one.
    pub learn: Option<Vectors>,
    /// Where the data came from (for the ground-truth cache), `None` if generated.
    pub dir: Option<PathBuf>,
}

impl Dataset {
    /// Number of base vectors.
    pub fn nb(&self) -> usize {
        self.base.len() / self.dim
    }

    /// Number of queries.
    pub fn nq(&self) -> usize {
        self.queries.len() / self.dim
    }

    /// What trained indexes learn from: the `learn` set when there is one, else the base (as
    /// `shared/bench/peers.py` does, so both sides train on the same vectors).
    pub fn training_set(&self) -> &Vectors {
        self.learn.as_ref().unwrap_or(&self.base)
    }
}

/// The generated datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synthetic {
    /// Uniform in `[0, 1)` per component.
    Uniform,
    /// Gaussian clusters with anisotropic noise (the default: structure like real descriptors).
    GaussClusters,
}

impl Synthetic {
    /// Name as `--dataset` accepts it (`uniform`, `gauss`), with `-normalized` for unit vectors.
    pub fn parse(name: &str) -> Option<(Synthetic, bool)> {
        let (stem, normalized) = match name.strip_suffix("-normalized") {
            Some(stem) => (stem, true),
            None => (name, false),
        };
        let kind = match stem {
            "uniform" => Synthetic::Uniform,
            "gauss" | "gauss-clusters" => Synthetic::GaussClusters,
            _ => return None,
        };
        Some((kind, normalized))
    }

    /// Generates `nb` base vectors and `nq` queries of dimension `dim`, deterministically from
    /// `seed` (the same on every machine and for any thread count); `normalized` scales every
    /// vector to unit length (for cosine / inner product).
    pub fn generate(self, nb: usize, nq: usize, dim: usize, seed: u64, normalized: bool) -> Dataset {
        let centres = 1000.min(nb.max(1));
        // Noise standard deviation per dimension decays like a real descriptor's spectrum, so
        // the data has a lower intrinsic dimension than `dim`.
        let sigma: Vec<f32> = (0..dim).map(|j| 0.5 * (1.0 + j as f32).powf(-0.3)).collect();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let unit = Normal::new(0.0f32, 1.0).expect("valid normal");
        let centre: Vec<f32> = (0..centres * dim).map(|_| unit.sample(&mut rng)).collect();
        let rows = |n: usize, stream: u64| -> Vec<f32> {
            let mut out = vec![0f32; n * dim];
            out.par_chunks_mut(dim.max(1) * 1024).enumerate().for_each(|(block, chunk)| {
                // One RNG per block of rows, seeded from (seed, stream, block): independent
                // of the thread count.
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                    seed ^ (stream << 56) ^ (block as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                for row in chunk.chunks_exact_mut(dim) {
                    match self {
                        Synthetic::Uniform => row.iter_mut().for_each(|v| *v = rng.random::<f32>()),
                        Synthetic::GaussClusters => {
                            let c = rng.random_range(0..centres);
                            for (j, v) in row.iter_mut().enumerate() {
                                *v = centre[c * dim + j] + sigma[j] * unit.sample(&mut rng);
                            }
                        }
                    }
                    if normalized {
                        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                        if norm > 0.0 {
                            row.iter_mut().for_each(|v| *v /= norm);
                        }
                    }
                }
            });
            out
        };
        let base = rows(nb, 1);
        let queries = rows(nq, 2);
        let kind = match self {
            Synthetic::Uniform => "uniform",
            Synthetic::GaussClusters => "gauss",
        };
        let norm = if normalized { "-normalized" } else { "" };
        Dataset {
            name: format!("{kind}{norm}-{nb}x{dim}"),
            dim,
            base: Vectors::F32(base),
            queries: Vectors::F32(queries),
            gt: None,
            learn: None,
            dir: None,
        }
    }
}

/// Where `--dataset` points.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A generated dataset.
    Synthetic {
        /// Which generator.
        kind: Synthetic,
        /// Unit-length vectors.
        normalized: bool,
    },
    /// A folder `<dir>/{base,query}.{bvecs,u8bin,fvecs,fbin,npy}` with optional
    /// `gt.{ivecs,ibin,npy}`.
    Folder(PathBuf),
    /// A base file, with the queries (and ground truth) named separately.
    Files {
        /// Base vectors.
        base: PathBuf,
        /// Queries.
        query: PathBuf,
        /// Ground truth, if any.
        gt: Option<PathBuf>,
    },
}

impl Source {
    /// Resolves a `--dataset` value: a generator name, a folder under `data_dir`, a folder
    /// path, or a base file (then `query` must be given).
    pub fn resolve(name: &str, data_dir: &Path, query: Option<&Path>, gt: Option<&Path>) -> Result<Source> {
        if let Some((kind, normalized)) = Synthetic::parse(name) {
            return Ok(Source::Synthetic { kind, normalized });
        }
        let as_path = PathBuf::from(name);
        let candidates = [data_dir.join(name), as_path.clone()];
        if let Some(dir) = candidates.iter().find(|p| p.is_dir()) {
            return Ok(Source::Folder(dir.clone()));
        }
        if as_path.is_file() {
            let query = query.ok_or_else(|| Error::Dataset {
                name: name.into(),
                what: "is a single file: name the queries with --query".into(),
            })?;
            return Ok(Source::Files { base: as_path, query: query.to_path_buf(), gt: gt.map(Path::to_path_buf) });
        }
        Err(Error::Dataset {
            name: name.into(),
            what: format!(
                "not a generator (gauss, uniform, …-normalized), not a folder in {} and not a file",
                data_dir.display()
            ),
        })
    }
}

/// Loads a folder or files dataset (generated ones come from [`Synthetic::generate`]).
pub fn load(source: &Source, nq: Option<usize>) -> Result<Dataset> {
    let (name, dir, base_path, query_path, gt_path, learn_path) = match source {
        Source::Synthetic { .. } => {
            return Err(Error::Usage("internal: generated datasets are not loaded from files".into()));
        }
        Source::Folder(dir) => {
            let find = |stem: &str| files::find_vectors(dir, stem);
            let learn = find("learn").ok();
            (folder_name(dir), Some(dir.clone()), find("base")?, find("query")?, files::find_ground_truth(dir), learn)
        }
        Source::Files { base, query, gt } => {
            (folder_name(base), base.parent().map(Path::to_path_buf), base.clone(), query.clone(), gt.clone(), None)
        }
    };
    let (dim, base) = files::read_vectors(&base_path)?;
    let (qdim, mut queries) = files::read_vectors(&query_path)?;
    if qdim != dim {
        return Err(Error::Mismatch(format!(
            "{} has dimension {qdim} but {} has {dim}",
            query_path.display(),
            base_path.display()
        )));
    }
    let mut gt = match &gt_path {
        Some(p) => Some(files::read_ground_truth(p)?),
        None => None,
    };
    let available = queries.len() / dim;
    let nq = nq.unwrap_or(available).min(available);
    queries.truncate_rows(nq, dim);
    if let Some(g) = &mut gt {
        if g.num_queries() < nq {
            return Err(Error::Mismatch(format!(
                "{} has ground truth for {} queries, {} has {nq}",
                gt_path.as_ref().expect("gt came from a path").display(),
                g.num_queries(),
                query_path.display()
            )));
        }
        g.truncate_queries(nq);
    }
    let learn = match &learn_path {
        Some(p) => {
            let (ldim, learn) = files::read_vectors(p)?;
            if ldim != dim {
                return Err(Error::Mismatch(format!("{} has dimension {ldim} but the base has {dim}", p.display())));
            }
            Some(learn)
        }
        None => None,
    };
    Ok(Dataset { name, dim, base, queries, gt, learn, dir })
}

fn folder_name(p: &Path) -> String {
    p.file_stem().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The metric a dataset's shipped ground truth was computed for: texmex `gt.ivecs` is L2.
pub(crate) fn shipped_gt_metric() -> Metric {
    Metric::L2
}
