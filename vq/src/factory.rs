//! `index_factory`: a factory string (and optional parameters) to an empty index.

use serde::{Deserialize, Serialize};
use vq_distance::Metric;
use vq_graph::HnswParams;
use vq_ivf::{FlatCodec, IvfParams, PqCodec, RaBitQCodec, SqCodec};
use vq_quant::fastscan::{FastScanCodes, RaBitQFastScan};
use vq_quant::{OpqQuantizer, ProductQuantizer, RaBitQuantizer, ScalarQuantizer};

use crate::codes::CodesIndex;
use crate::error::{Error, Result};
use crate::flat::FlatIndex;
use crate::graph::{HnswCodesIndex, HnswFlatIndex};
use crate::index::Index;
use crate::ivf::{IvfFastScanIndex, IvfIndex};
use crate::refine::RefineIndex;
use crate::spec::{BaseSpec, CodecSpec, IndexSpec, StorageSpec, TransformSpec};
use crate::transform::PreTransformIndex;

/// Runs `$body` with `$q` bound to a new quantizer of `$codec`'s kind; `$body` is generic code
/// written once for every quantizer type (the `Quantizer` trait is not object safe: its
/// scorers are associated types, which is what keeps the scan loops monomorphic and fast).
macro_rules! with_new_quantizer {
    ($codec:expr, $dim:expr, $metric:expr, |$q:ident| $body:expr) => {
        match $codec {
            CodecSpec::Sq(t) => {
                let $q = ScalarQuantizer::new($dim, $metric, t)?;
                $body
            }
            CodecSpec::Pq { m, nbits } => {
                let $q = ProductQuantizer::new($dim, $metric, m, nbits)?;
                $body
            }
            CodecSpec::PqFastScan { m } => {
                let $q = ProductQuantizer::new($dim, $metric, m, 4)?;
                $body
            }
            CodecSpec::Opq { m, nbits, .. } => {
                let $q = OpqQuantizer::new($dim, $metric, m, nbits)?;
                $body
            }
            CodecSpec::RaBitQ { bits } => {
                let $q = RaBitQuantizer::new($dim, $metric)?.with_bits(bits)?;
                $body
            }
            CodecSpec::RaBitQFastScan { bits } => {
                let $q = RaBitQuantizer::new($dim, $metric)?.with_bits(bits)?;
                $body
            }
        }
    };
}

/// Runs `$body` with the type `$Q` naming `$codec`'s quantizer type.
macro_rules! with_quantizer_type {
    ($codec:expr, $Q:ident => $body:expr) => {
        match $codec {
            $crate::spec::CodecSpec::Sq(_) => {
                type $Q = vq_quant::ScalarQuantizer;
                $body
            }
            $crate::spec::CodecSpec::Pq { .. } | $crate::spec::CodecSpec::PqFastScan { .. } => {
                type $Q = vq_quant::ProductQuantizer;
                $body
            }
            $crate::spec::CodecSpec::Opq { .. } => {
                type $Q = vq_quant::OpqQuantizer;
                $body
            }
            $crate::spec::CodecSpec::RaBitQ { .. } | $crate::spec::CodecSpec::RaBitQFastScan { .. } => {
                type $Q = vq_quant::RaBitQuantizer;
                $body
            }
        }
    };
}
pub(crate) use with_quantizer_type;

/// Build parameters a factory string does not carry, by the names users know (Milvus' names
/// are accepted too: `efConstruction`, `refine_k`). One that no part of the index uses is an
/// [`Error::Parameter`] naming it, never silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexParams {
    /// HNSW beam width while building (default 200).
    #[serde(alias = "efConstruction")]
    pub ef_construction: Option<usize>,
    /// HNSW default search beam width (default 64).
    #[serde(alias = "efSearch")]
    pub ef: Option<usize>,
    /// Refine indexes: the default `refine_k` (default 1, as Faiss' `k_factor`).
    pub refine_k: Option<usize>,
    /// IVF indexes: lists scanned per query by default (default 1, as Faiss).
    pub nprobe: Option<usize>,
    /// `IVF…,PQ…x4fs`: code residuals `x − c` (default `true`, as Faiss' `by_residual`) or
    /// the vectors themselves. Other inverted files code one way (IVF-Flat the vectors, the
    /// rest residuals) and refuse the other value.
    pub by_residual: Option<bool>,
    /// `PQ…x4fs` and `IVF…,PQ…x4fs`: score-aware (anisotropic) PQ training and encoding with
    /// this threshold (ScaNN's `anisotropic_quantization_threshold`, 0.2 for unit vectors;
    /// default none: the plain reconstruction loss). Kept in the quantizer's parameters, so a
    /// written index reads back with it.
    #[serde(alias = "anisotropic_quantization_threshold")]
    pub anisotropic_threshold: Option<f32>,
    /// Refine indexes: re-score at least this many candidates (Milvus SCANN's `reorder_k`),
    /// `max(k, reorder_k)`, when a search gives no `refine_k`.
    pub reorder_k: Option<usize>,
}

impl IndexParams {
    fn hnsw(&self, m: usize) -> HnswParams {
        let mut p = HnswParams::with_m(m);
        if let Some(ef) = self.ef_construction {
            p.ef_construction = ef;
        }
        if let Some(ef) = self.ef {
            p.ef = ef;
        }
        p
    }

    /// A 4-bit fast-scan PQ's parameters.
    fn pq(&self, m: usize) -> vq_quant::PqParams {
        vq_quant::PqParams { anisotropic_threshold: self.anisotropic_threshold, ..vq_quant::PqParams::new(m, 4) }
    }

    pub(crate) fn ivf(&self, nlist: usize) -> Result<IvfParams> {
        let mut p = IvfParams::new(nlist);
        if let Some(nprobe) = self.nprobe {
            if nprobe == 0 {
                return Err(Error::Parameter { name: "nprobe", what: "must be at least 1".into() });
            }
            p.nprobe = nprobe;
        }
        Ok(p)
    }
}

/// An empty index of the kind `spec` names (Faiss' `index_factory`), with default parameters.
///
/// A leading `GPU` (device 0) or `GPU{ordinal}` component asks for the GPU version of `Flat` or
/// `IVF{nlist},Flat` (vq's `gpu` feature; without it, [`Error::Unsupported`] naming the
/// feature): `"GPU,IVF1024,Flat"`.
///
/// ```
/// let mut index = vq::index_factory(8, "HNSW16,SQ8,RFlat", vq::Metric::L2)?;
/// let data: Vec<f32> = (0..8 * 300).map(|i| ((i * 37) % 101) as f32).collect();
/// index.train(&data)?;
/// index.add(&data)?;
/// let hits = index.search(&data[..8], 3)?;
/// assert_eq!(hits.ids()[0], 0);
/// assert_eq!(index.spec().to_string(), "HNSW16,SQ8,RFlat");
/// # Ok::<(), vq::Error>(())
/// ```
pub fn index_factory(dim: usize, spec: &str, metric: Metric) -> Result<Box<dyn Index>> {
    index_factory_with(dim, spec, metric, &IndexParams::default())
}

/// [`index_factory`] with build parameters.
pub fn index_factory_with(dim: usize, spec: &str, metric: Metric, params: &IndexParams) -> Result<Box<dyn Index>> {
    match gpu_component(spec) {
        #[cfg(feature = "gpu")]
        Some((ordinal, rest)) => crate::gpu::index_factory_on_shared(ordinal, dim, rest, metric, params),
        #[cfg(not(feature = "gpu"))]
        Some(_) => Err(Error::Unsupported {
            spec: spec.trim().to_string(),
            what: "GPU indexes in this build (build vq with its `gpu` feature)".into(),
        }),
        None => build(dim, &spec.parse()?, metric, params),
    }
}

/// A leading `GPU` (device 0) or `GPU{ordinal}` component: the ordinal and the rest of the spec.
fn gpu_component(spec: &str) -> Option<(usize, &str)> {
    let (first, rest) = spec.trim_start().split_once(',')?;
    let digits = first.trim_end().strip_prefix("GPU")?;
    let ordinal = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    Some((ordinal, rest))
}

/// `OPQ{m}_{d}` with `d` the input dimension is plain `OPQ{m}` (codec or transform); any other
/// `d` would ask for a dimension reduction vq's OPQ does not do, and is refused rather than
/// silently ignored.
fn canonical_opq(spec: &IndexSpec, dim: usize) -> Result<IndexSpec> {
    let reduction = |m: usize, d: usize| Error::Parameter {
        name: "OPQ",
        what: format!(
            "OPQ{m}_{d} maps {dim} dimensions to {d}: vq's OPQ codec keeps the dimension (write OPQ{m}); \
             only OPQ before an inverted file projects, to at most the input's dimension"
        ),
    };
    let fix = |codec: CodecSpec| match codec {
        CodecSpec::Opq { m, nbits, d: Some(d) } if d == dim => Ok(CodecSpec::Opq { m, nbits, d: None }),
        CodecSpec::Opq { m, d: Some(d), .. } => Err(reduction(m, d)),
        other => Ok(other),
    };
    let base = match spec.base {
        BaseSpec::Codes(c) => BaseSpec::Codes(fix(c)?),
        BaseSpec::Hnsw { m, storage: StorageSpec::Codec(c) } => {
            BaseSpec::Hnsw { m, storage: StorageSpec::Codec(fix(c)?) }
        }
        other => other,
    };
    let transform = match spec.transform {
        Some(TransformSpec::Opq { m, d: Some(d) }) if d == 0 || d > dim => return Err(reduction(m, d)),
        Some(TransformSpec::Opq { m, d: Some(d) }) if d < dim => Some(TransformSpec::Opq { m, d: Some(d) }),
        Some(TransformSpec::Opq { m, .. }) => Some(TransformSpec::Opq { m, d: None }),
        other => other,
    };
    Ok(IndexSpec { transform, base, ..*spec })
}

fn ivf(e: vq_ivf::Error) -> Error {
    crate::ivf::ivf_error(e, String::new)
}

/// An empty index for a parsed spec.
pub fn build(dim: usize, spec: &IndexSpec, metric: Metric, params: &IndexParams) -> Result<Box<dyn Index>> {
    if dim == 0 {
        return Err(vq_distance::Error::ZeroDimension.into());
    }
    let spec = &canonical_opq(spec, dim)?;
    check_params_apply(spec, params)?;
    let outer = (dim, metric);
    // Behind a projection (PCA, OPQ with an output dimension) the index holds fewer
    // dimensions, and cosine rows' projections are compared by inner product.
    let (dim, metric) = match spec.transform {
        Some(TransformSpec::Pca { d, .. }) if d == 0 || d > dim => {
            return Err(Error::Parameter {
                name: "PCA",
                what: format!("PCA{d} projects to {d} dimensions: 1 to the input's {dim}"),
            });
        }
        Some(TransformSpec::Pca { d, .. } | TransformSpec::Opq { d: Some(d), .. }) => {
            (d, crate::transform::projected_metric(metric))
        }
        _ => (dim, metric),
    };
    let base: Box<dyn Index> = match spec.base {
        BaseSpec::Flat => Box::new(FlatIndex::new(dim, metric)?),
        BaseSpec::Codes(codec @ CodecSpec::PqFastScan { m }) => {
            let store = FastScanCodes::new(ProductQuantizer::with_params(dim, metric, params.pq(m))?)?;
            Box::new(CodesIndex::with_store(codec, store))
        }
        BaseSpec::Codes(codec @ CodecSpec::RaBitQFastScan { bits }) => {
            let quantizer = RaBitQuantizer::new(dim, metric)?.with_bits(bits)?;
            Box::new(CodesIndex::with_store(codec, RaBitQFastScan::new(quantizer)?))
        }
        BaseSpec::Codes(codec) => with_new_quantizer!(codec, dim, metric, |q| Box::new(CodesIndex::new(codec, q))),
        BaseSpec::Hnsw { m, storage: StorageSpec::Flat } => Box::new(HnswFlatIndex::new(dim, metric, params.hnsw(m))?),
        BaseSpec::Hnsw { storage: StorageSpec::Codec(CodecSpec::PqFastScan { m }), .. } => {
            return Err(Error::Parameter {
                name: "HNSW",
                what: format!("graphs score one code at a time: fast scan is for flat scans; use PQ{m}x4"),
            });
        }
        BaseSpec::Hnsw {
            storage: StorageSpec::Codec(CodecSpec::RaBitQ { .. } | CodecSpec::RaBitQFastScan { .. }),
            ..
        } => {
            return Err(Error::Parameter { name: "HNSW", what: crate::spec::HNSW_OVER_RABITQ.into() });
        }
        BaseSpec::Hnsw { m, storage: StorageSpec::Codec(codec) } => {
            with_new_quantizer!(codec, dim, metric, |q| Box::new(HnswCodesIndex::new(codec, q, params.hnsw(m))?))
        }
        BaseSpec::Ivf { nlist, coarse_hnsw, storage } => ivf_index(dim, metric, params, nlist, coarse_hnsw, storage)?,
    };
    let base: Box<dyn Index> = match (spec.transform, spec.base) {
        (None, _) => base,
        (Some(TransformSpec::Opq { m, d: None }), BaseSpec::Ivf { .. }) => Box::new(PreTransformIndex::opq(base, m)?),
        (Some(TransformSpec::Opq { m, d: Some(_) }), BaseSpec::Ivf { .. }) => {
            Box::new(PreTransformIndex::opq_projection(base, outer.0, outer.1, m)?)
        }
        (Some(TransformSpec::Pca { random_rotation, .. }), _) => {
            Box::new(PreTransformIndex::pca(base, outer.0, outer.1, random_rotation)?)
        }
        (Some(t), other) => {
            return Err(Error::Parameter {
                name: "transform",
                what: format!("{t} goes before an inverted file (IVF…), not before {other}"),
            });
        }
    };
    let Some(refine) = spec.refine else { return Ok(base) };
    let mut index = RefineIndex::new(base, refine)?;
    if let Some(k) = params.refine_k {
        if k == 0 {
            return Err(Error::Parameter { name: "refine_k", what: "must be at least 1".into() });
        }
        index.set_default_refine_k(k);
    }
    if let Some(r) = params.reorder_k {
        if r == 0 {
            return Err(Error::Parameter { name: "reorder_k", what: "must be at least 1".into() });
        }
        index.set_default_reorder_k(r);
    }
    Ok(Box::new(index))
}

/// Refuses a parameter that no part of `spec` uses: a misplaced knob (`nprobe` for a graph,
/// `ef` for an inverted file) silently dropped builds another index than the caller meant.
fn check_params_apply(spec: &IndexSpec, params: &IndexParams) -> Result<()> {
    let graph = matches!(spec.base, BaseSpec::Hnsw { .. });
    let ivf = matches!(spec.base, BaseSpec::Ivf { .. });
    let fast_scan_pq = matches!(
        spec.base,
        BaseSpec::Codes(CodecSpec::PqFastScan { .. })
            | BaseSpec::Ivf { storage: StorageSpec::Codec(CodecSpec::PqFastScan { .. }), .. }
    );
    let refine = spec.refine.is_some();
    let (graphs, ivfs, refines) = (
        "HNSW graphs (an IVF…_HNSW coarse graph's beam is a search parameter)",
        "inverted files (IVF…)",
        "refine stages",
    );
    let knobs = [
        ("ef_construction", params.ef_construction.is_some(), graph, graphs),
        ("ef", params.ef.is_some(), graph, graphs),
        ("nprobe", params.nprobe.is_some(), ivf, ivfs),
        ("by_residual", params.by_residual.is_some(), ivf, ivfs),
        ("anisotropic_threshold", params.anisotropic_threshold.is_some(), fast_scan_pq, "fast-scan PQ (PQ…x4fs)"),
        ("refine_k", params.refine_k.is_some(), refine, refines),
        ("reorder_k", params.reorder_k.is_some(), refine, refines),
    ];
    match knobs.into_iter().find(|&(_, given, applies, _)| given && !applies) {
        Some((name, _, _, what)) => {
            Err(Error::Parameter { name, what: format!("{spec} has no part it applies to (it is for {what})") })
        }
        None => Ok(()),
    }
}

/// An empty inverted file of `nlist` lists over `storage`.
fn ivf_index(
    dim: usize,
    metric: Metric,
    params: &IndexParams,
    nlist: usize,
    coarse_hnsw: Option<usize>,
    storage: StorageSpec,
) -> Result<Box<dyn Index>> {
    // Only fast-scan PQ lists take `by_residual`; the others code one way, and a value they
    // would not follow is refused rather than ignored.
    let fixed = match storage {
        StorageSpec::Flat => Some(false),
        StorageSpec::Codec(CodecSpec::PqFastScan { .. }) => None,
        StorageSpec::Codec(_) => Some(true),
    };
    if let (Some(wanted), Some(fixed)) = (params.by_residual, fixed)
        && wanted != fixed
    {
        return Err(Error::Parameter {
            name: "by_residual",
            what: format!(
                "IVF{nlist},{storage} lists always code {} (by_residual = {fixed}); only IVF…,PQ…x4fs lists take either",
                if fixed { "residuals from their centroid" } else { "the vectors as given" }
            ),
        });
    }
    let mut p = params.ivf(nlist)?;
    if let Some(m) = coarse_hnsw {
        p = p.with_hnsw(m);
    }
    Ok(match storage {
        StorageSpec::Flat => Box::new(IvfIndex::new(dim, metric, p, FlatCodec::new(dim, metric).map_err(ivf)?)?),
        StorageSpec::Codec(CodecSpec::Sq(t)) => {
            Box::new(IvfIndex::new(dim, metric, p, SqCodec::new(dim, metric, t).map_err(ivf)?)?)
        }
        StorageSpec::Codec(CodecSpec::Pq { m, nbits }) => {
            Box::new(IvfIndex::new(dim, metric, p, PqCodec::new(dim, metric, m, nbits).map_err(ivf)?)?)
        }
        StorageSpec::Codec(CodecSpec::PqFastScan { m }) => {
            Box::new(IvfFastScanIndex::with_pq(dim, metric, p, params.pq(m), params.by_residual.unwrap_or(true))?)
        }
        StorageSpec::Codec(CodecSpec::RaBitQ { bits }) => {
            Box::new(IvfIndex::new(dim, metric, p, RaBitQCodec::with_bits(dim, metric, bits).map_err(ivf)?)?)
        }
        StorageSpec::Codec(CodecSpec::RaBitQFastScan { bits }) => {
            Box::new(IvfFastScanIndex::with_rabitq_bits(dim, metric, p, bits)?)
        }
        StorageSpec::Codec(CodecSpec::Opq { .. }) => {
            return Err(Error::Parameter {
                name: "IVF",
                what: format!(
                    "IVF lists hold Flat, SQ, PQ or PQ…x4fs codes; an OPQ rotation goes before the inverted file: OPQ{m},IVF{nlist},PQ{m}",
                    m = match storage {
                        StorageSpec::Codec(CodecSpec::Opq { m, .. }) => m,
                        _ => 0,
                    }
                ),
            });
        }
    })
}
