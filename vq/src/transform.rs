//! A transform in front of an index (Faiss' `IndexPreTransform`): every vector and query is
//! mapped before the inner index sees it. An OPQ rotation (`OPQ16,IVF1024,PQ16`, Faiss'
//! `OPQMatrix`), so the coarse quantizer and the residual codes of an inverted file both work
//! on `R x`; or a PCA projection to fewer dimensions (`PCA64,HNSW32`, `PCAR64,IVF1024,PQ16`,
//! Faiss' `PCAMatrix`) in front of any index.

use vq_distance::{Metric, Neighbors, RangeResult};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{OpqParams, OpqRotation, PcaMatrix, PcaParams};

use crate::error::{Error, Result};
use crate::index::{
    Index, MemoryUsage, PreparedAdd, SearchDefault, SearchParams, check_k, downcast_for_merge, downcast_ref_for_merge,
    fingerprint_of, prepare, sections_fingerprint, set_inner_search_default,
};
use crate::spec::{IndexSpec, TransformSpec};

/// An index behind a learned transform. Training follows Faiss: the transform is learned on
/// the training set first, then the inner index is trained on the transformed training set.
///
/// - `OPQ{m},IVF…`: OPQ's rounds with 8-bit sub-quantizers (as Faiss' `OPQMatrix`). `R` is
///   orthogonal, so distances, inner products and norms are those of the input: scores need
///   no conversion.
/// - `PCA{d},…` / `PCAR{d},…`: the inner index holds `d`-dimensional projections and its
///   scores are those of the projections, which approximate the input's (exact for vectors
///   in the kept subspace). Under L2 the projection is centred (Faiss' way); under inner
///   product and cosine it is not (centring would shift each score by `−⟨μ, x⟩` and change the
///   ranking), and a cosine index scores the inner product of the projected unit vectors.
///
/// A refine stage above (`OPQ16,IVF1024,PQ16,RFlat`, `PCA32,HNSW32,RFlat`) re-scores the
/// original vectors with the original queries. Merging ([`Index::merge_from`]) needs the same
/// transform as well as the inner index's trained state: a shard transformed differently is
/// refused with [`Error::TrainedStateMismatch`].
pub struct PreTransformIndex {
    transform: Transform,
    /// The metric of the input (the inner index's, except for cosine behind PCA).
    metric: Metric,
    inner: Box<dyn Index>,
}

/// [`PreTransformIndex::prepare_add`]'s work: the inner index's, for `mapped`, the batch as
/// transformed by the transform of fingerprint `transform`.
struct TransformedAdd {
    inner: PreparedAdd,
    mapped: Vec<f32>,
    transform: u64,
}

/// The learned map.
#[derive(Clone)]
enum Transform {
    Opq(OpqRotation),
    Pca(PcaMatrix),
}

impl Transform {
    fn d_in(&self) -> usize {
        match self {
            Transform::Opq(r) => r.dim(),
            Transform::Pca(p) => p.d_in(),
        }
    }

    fn d_out(&self) -> usize {
        match self {
            Transform::Opq(r) => r.d_out(),
            Transform::Pca(p) => p.d_out(),
        }
    }

    /// The metric of the index behind this transform of `metric` vectors: the same behind a
    /// rotation; behind a projection to fewer dimensions, `projected_metric`'s.
    fn inner_metric(&self, metric: Metric) -> Metric {
        match self {
            Transform::Opq(r) if r.d_out() == r.dim() => metric,
            _ => projected_metric(metric),
        }
    }

    fn is_trained(&self) -> bool {
        match self {
            Transform::Opq(r) => r.is_trained(),
            Transform::Pca(p) => p.is_trained(),
        }
    }

    fn train(&mut self, rows: &[f32]) -> vq_quant::Result<()> {
        match self {
            Transform::Opq(r) => r.train(rows),
            Transform::Pca(p) => p.train(rows),
        }
    }

    fn apply(&self, rows: &[f32]) -> vq_quant::Result<Vec<f32>> {
        match self {
            Transform::Opq(r) => r.apply(rows),
            Transform::Pca(p) => p.apply(rows),
        }
    }

    fn apply_inverse(&self, rows: &[f32]) -> vq_quant::Result<Vec<f32>> {
        match self {
            Transform::Opq(r) => r.apply_inverse(rows),
            Transform::Pca(p) => p.apply_inverse(rows),
        }
    }

    fn name(&self) -> String {
        match self {
            Transform::Opq(r) => r.name(),
            Transform::Pca(p) => p.name(),
        }
    }

    fn memory_bytes(&self) -> usize {
        match self {
            Transform::Opq(r) => r.memory_bytes(),
            Transform::Pca(p) => p.memory_bytes(),
        }
    }

    fn spec(&self) -> TransformSpec {
        match self {
            Transform::Opq(r) => {
                TransformSpec::Opq { m: r.params().pq.m, d: (r.d_out() < r.dim()).then_some(r.d_out()) }
            }
            Transform::Pca(p) => TransformSpec::Pca { d: p.d_out(), random_rotation: p.params().random_rotation },
        }
    }

    /// Sections `{prefix}.opq.*` or `{prefix}.pca.*`.
    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> vq_quant::Result<()> {
        match self {
            Transform::Opq(r) => r.write_sections(w, &format!("{prefix}.opq")),
            Transform::Pca(p) => p.write_sections(w, &format!("{prefix}.pca")),
        }
    }

    fn read_sections(r: &ContainerReader, prefix: &str, spec: TransformSpec) -> vq_quant::Result<Self> {
        Ok(match spec {
            TransformSpec::Opq { .. } => Transform::Opq(OpqRotation::read_sections(r, &format!("{prefix}.opq"))?),
            TransformSpec::Pca { .. } => Transform::Pca(PcaMatrix::read_sections(r, &format!("{prefix}.pca"))?),
        })
    }
}

/// The metric of the index behind a projection to fewer dimensions (PCA, or OPQ with an output
/// dimension) of `metric` vectors: cosine rows are normalized, then projected, and their
/// projections compared by inner product (their norms, below 1, say how much of each vector
/// the projection kept).
pub(crate) fn projected_metric(metric: Metric) -> Metric {
    if metric == Metric::Cosine { Metric::InnerProduct } else { metric }
}

impl PreTransformIndex {
    /// An OPQ rotation for `m` sub-spaces in front of `inner` (empty and untrained: the
    /// rotation is trained with it).
    pub fn opq(inner: Box<dyn Index>, m: usize) -> Result<Self> {
        let rotation = OpqRotation::new(inner.dim(), OpqParams::new(m, 8))?;
        Self::new(inner, rotation)
    }

    /// An untrained OPQ projection of `d_in`-dimensional `metric` vectors to `inner`'s (fewer)
    /// dimensions for `m` sub-spaces (`OPQ{m}_{d}`, Faiss' `OPQMatrix(d_in, m, d)`), in front
    /// of `inner`, which must be empty, untrained, and score the projections by inner product
    /// for cosine vectors, by the input's metric otherwise.
    pub fn opq_projection(inner: Box<dyn Index>, d_in: usize, metric: Metric, m: usize) -> Result<Self> {
        let rotation = OpqRotation::with_output(d_in, inner.dim(), OpqParams::new(m, 8))?;
        Self::with_transform(inner, Transform::Opq(rotation), metric)
    }

    /// `rotation` in front of `inner`, whose metric the input has. The rotation's output
    /// dimension must be the index's; an untrained rotation needs an empty, untrained `inner`
    /// (they are trained together).
    pub fn new(inner: Box<dyn Index>, rotation: OpqRotation) -> Result<Self> {
        let metric = inner.metric();
        Self::with_transform(inner, Transform::Opq(rotation), metric)
    }

    /// An untrained PCA projection of `d_in`-dimensional `metric` vectors to `inner`'s
    /// dimension, randomly rotated after (`PCAR`) or not, in front of `inner`, which must be
    /// empty, untrained, and score the projections by inner product for cosine vectors, by
    /// the input's metric otherwise.
    pub fn pca(inner: Box<dyn Index>, d_in: usize, metric: Metric, random_rotation: bool) -> Result<Self> {
        let params = PcaParams { random_rotation, ..PcaParams::new(inner.dim(), metric == Metric::L2) };
        Self::with_pca(inner, PcaMatrix::new(d_in, params)?, metric)
    }

    /// `pca` in front of `inner`, for `metric` vectors: centred exactly when `metric` is L2,
    /// projecting to `inner`'s dimension, `inner` scoring the projections as in
    /// [`pca`](PreTransformIndex::pca); an untrained projection needs an empty `inner`.
    pub fn with_pca(inner: Box<dyn Index>, pca: PcaMatrix, metric: Metric) -> Result<Self> {
        if pca.params().centered != (metric == Metric::L2) {
            return Err(Error::Parameter {
                name: "pca",
                what: format!("a {} projection of {metric} vectors (centred exactly for L2)", centred(&pca)),
            });
        }
        Self::with_transform(inner, Transform::Pca(pca), metric)
    }

    fn with_transform(inner: Box<dyn Index>, transform: Transform, metric: Metric) -> Result<Self> {
        if inner.metric() != transform.inner_metric(metric) {
            return Err(Error::Parameter {
                name: "transform",
                what: format!(
                    "the index behind {} of {metric} vectors must score {}, not {}",
                    transform.name(),
                    transform.inner_metric(metric),
                    inner.metric()
                ),
            });
        }
        if transform.d_out() != inner.dim() {
            return Err(Error::Parameter {
                name: "transform",
                what: format!(
                    "{} gives {} dimensions, the index behind it has {}",
                    transform.name(),
                    transform.d_out(),
                    inner.dim()
                ),
            });
        }
        if !transform.is_trained() && !inner.is_empty() {
            return Err(Error::Parameter {
                name: "transform",
                what: format!("an untrained {} in front of an index that holds vectors", transform.name()),
            });
        }
        Ok(PreTransformIndex { transform, metric, inner })
    }

    /// The OPQ rotation, if that is the transform.
    pub fn rotation(&self) -> Option<&OpqRotation> {
        match &self.transform {
            Transform::Opq(r) => Some(r),
            Transform::Pca(_) => None,
        }
    }

    /// The PCA projection, if that is the transform.
    pub fn pca_matrix(&self) -> Option<&PcaMatrix> {
        match &self.transform {
            Transform::Pca(p) => Some(p),
            Transform::Opq(_) => None,
        }
    }

    /// The index behind the transform (it holds transformed vectors).
    pub fn inner(&self) -> &dyn Index {
        self.inner.as_ref()
    }

    fn transform_fingerprint(&self) -> u64 {
        sections_fingerprint(&self.transform.name(), |w| self.transform.write_sections(w, "t"))
    }

    fn check_trained(&self) -> Result<()> {
        if self.is_trained() { Ok(()) } else { Err(Error::NotTrained { spec: self.spec().to_string() }) }
    }

    /// Checked (and, for cosine, normalized) rows of `data`, transformed.
    fn transformed(&self, what: &'static str, data: &[f32]) -> Result<Vec<f32>> {
        let rows = prepare(what, data, self.dim(), self.metric())?;
        Ok(self.transform.apply(&rows)?)
    }

    /// Refuses `other` unless it is the same kind and transformed the same way; the inner
    /// indexes check the rest.
    fn check_transform(&self, other: &PreTransformIndex) -> Result<()> {
        if self.transform_fingerprint() != other.transform_fingerprint() || self.metric != other.metric {
            return Err(Error::TrainedStateMismatch { ours: self.fingerprint(), theirs: other.fingerprint() });
        }
        Ok(())
    }

    /// Reads the transform `spec` names (the index behind it read already) for an index of
    /// `metric` vectors.
    pub(crate) fn read_sections(
        r: &ContainerReader,
        prefix: &str,
        spec: TransformSpec,
        metric: Metric,
        inner: Box<dyn Index>,
    ) -> Result<Self> {
        let transform = Transform::read_sections(r, prefix, spec)?;
        // Training trains the transform first and the inner index on its output, so a trained
        // transform has a trained index behind it; an untrained one may have one that needs no
        // training (`PCA4,Flat`, `PCA4,HNSW8`), but never vectors.
        if transform.is_trained() && !inner.is_trained() {
            return Err(Error::Corrupt {
                what: format!("{prefix}: the transform is trained but the index behind it is not"),
            });
        }
        if !transform.is_trained() && !inner.is_empty() {
            return Err(Error::Corrupt {
                what: format!("{prefix}: the transform is not trained but the index behind it holds vectors"),
            });
        }
        let index = match transform {
            Transform::Opq(_) => Self::with_transform(inner, transform, metric),
            Transform::Pca(pca) => Self::with_pca(inner, pca, metric),
        };
        index.map_err(|e| Error::Corrupt { what: format!("{prefix}: {e}") })
    }

    /// The sections' prefix of the inner index under this index's `prefix`.
    pub(crate) fn inner_prefix(prefix: &str) -> String {
        format!("{prefix}.inner")
    }
}

impl Index for PreTransformIndex {
    fn dim(&self) -> usize {
        self.transform.d_in()
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
    fn next_id(&self) -> u64 {
        self.inner.next_id()
    }

    fn is_trained(&self) -> bool {
        self.transform.is_trained() && self.inner.is_trained()
    }

    /// Learns the transform on `data`, then trains the inner index on the transformed `data`.
    /// On error (the inner index refusing, e.g. because it holds vectors) the transform is
    /// left as it was.
    fn train(&mut self, data: &[f32]) -> Result<()> {
        let rows = prepare("training data", data, self.dim(), self.metric())?;
        let mut transform = self.transform.clone();
        transform.train(&rows)?;
        self.inner.train(&transform.apply(&rows)?)?;
        self.transform = transform;
        Ok(())
    }

    fn reserve(&mut self, additional: usize) {
        self.inner.reserve(additional);
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        self.check_trained()?;
        let mapped = self.transformed("vectors", data)?;
        self.inner.add(&mapped)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        self.check_trained()?;
        let mapped = self.transformed("vectors", data)?;
        self.inner.add_with_ids(&mapped, ids)
    }

    /// The inner index's part of the add of the transformed batch (an inverted file's codes),
    /// kept with the transformed vectors and the transform they came from.
    fn prepare_add(&self, data: &[f32]) -> Option<Result<PreparedAdd>> {
        if !self.is_trained() {
            return None;
        }
        let mapped = match self.transformed("vectors", data) {
            Ok(mapped) => mapped,
            Err(e) => return Some(Err(e)),
        };
        let inner = self.inner.prepare_add(&mapped)?;
        let transform = self.transform_fingerprint();
        Some(inner.map(|inner| PreparedAdd::new(TransformedAdd { inner, mapped, transform })))
    }

    /// With the prepared work where it was made for this batch under the same transform;
    /// else as `add` / `add_with_ids`.
    fn add_prepared(&mut self, prepared: PreparedAdd, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
        self.check_trained()?;
        let rows = data.len() / self.dim();
        let (inner, mapped) = match prepared.take::<TransformedAdd>() {
            Some(t)
                if t.transform == self.transform_fingerprint()
                    && data.len().is_multiple_of(self.dim())
                    && t.mapped.len() == rows * self.transform.d_out() =>
            {
                (t.inner, t.mapped)
            }
            _ => (PreparedAdd::new(()), self.transformed("vectors", data)?),
        };
        self.inner.add_prepared(inner, &mapped, ids)
    }

    /// Through `&self` where the inner index adds that way (a graph behind PCA).
    fn add_shared(&self, data: &[f32], ids: Option<&[u64]>) -> Option<Result<()>> {
        if !self.inner.adds_shared() {
            return None;
        }
        match self.check_trained().and_then(|()| self.transformed("vectors", data)) {
            Ok(mapped) => self.inner.add_shared(&mapped, ids),
            Err(e) => Some(Err(e)),
        }
    }

    fn adds_shared(&self) -> bool {
        self.inner.adds_shared()
    }

    fn pack(&mut self) {
        self.inner.pack();
    }

    fn prepare_pack(&self) -> bool {
        self.inner.prepare_pack()
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        check_k(params)?;
        self.check_trained()?;
        let mapped = self.transformed("queries", queries)?;
        self.inner.search_with(&mapped, params)
    }

    /// The inner index's range search of the transformed queries (a rotation keeps distances
    /// and inner products, so the radius means the same; behind PCA it applies to the
    /// projections' scores).
    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        vq_distance::check_radius(radius)?;
        self.check_trained()?;
        let mapped = self.transformed("queries", queries)?;
        self.inner.range_search_with(&mapped, radius, params)
    }

    fn range_rows(&self, queries: &[f32], radii: &[f32], params: &SearchParams<'_>) -> Result<Vec<Vec<(u64, f32)>>> {
        self.check_trained()?;
        let mapped = self.transformed("queries", queries)?;
        self.inner.range_rows(&mapped, radii, params)
    }

    fn range_scan_size(&self, params: &SearchParams<'_>) -> Option<usize> {
        self.inner.range_scan_size(params)
    }

    /// The inner index's vector, mapped back (behind PCA: the nearest point of the kept
    /// subspace).
    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        self.reconstruct_batch(&[id])
    }

    fn reconstruct_batch(&self, ids: &[u64]) -> Result<Vec<f32>> {
        Ok(self.transform.apply_inverse(&self.inner.reconstruct_batch(ids)?)?)
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        self.inner.remove_ids(ids)
    }

    fn reset(&mut self) -> Result<()> {
        self.inner.reset()
    }

    fn memory_usage(&self) -> MemoryUsage {
        self.inner.memory_usage() + MemoryUsage { trained: self.transform.memory_bytes(), ..Default::default() }
    }

    fn spec(&self) -> IndexSpec {
        self.inner.spec().with_transform(self.transform.spec())
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.transform.write_sections(w, prefix)?;
        self.inner.write_sections(w, &Self::inner_prefix(prefix))
    }

    /// The inner index's fingerprint and the transform's; 0 (as an untrained inverted file)
    /// until trained.
    fn fingerprint(&self) -> u64 {
        if !self.is_trained() {
            return 0;
        }
        fingerprint_of(
            &self.spec(),
            self.dim(),
            self.metric(),
            &[self.transform_fingerprint(), self.inner.fingerprint()],
        )
    }

    fn merge_from(&mut self, other: Box<dyn Index>, shift_ids: u64) -> Result<()> {
        if !self.is_mergeable() {
            return Err(Error::NotMergeable { spec: self.spec().to_string() });
        }
        let other = downcast_for_merge(self, other)?;
        self.check_transform(&other)?;
        self.inner.merge_from(other.inner, shift_ids)
    }

    fn is_mergeable(&self) -> bool {
        self.inner.is_mergeable()
    }

    fn check_merge(&self, other: &dyn Index, shift_ids: u64) -> Result<()> {
        if !self.is_mergeable() {
            return Err(Error::NotMergeable { spec: self.spec().to_string() });
        }
        let other = downcast_ref_for_merge(self, other)?;
        self.check_transform(other)?;
        self.inner.check_merge(other.inner.as_ref(), shift_ids)
    }

    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        self.inner.search_default(knob)
    }

    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        set_inner_search_default(self.spec(), self.inner.as_mut(), knob, value)
    }

    fn ef_construction(&self) -> Option<usize> {
        self.inner.ef_construction()
    }

    fn set_ef_construction(&mut self, value: usize) -> Result<()> {
        self.inner.set_ef_construction(value)
    }
}

fn centred(pca: &PcaMatrix) -> &'static str {
    if pca.params().centered { "centred" } else { "uncentred" }
}
