//! A transform in front of an index (`OPQ16,IVF1024,PQ16`, Faiss' `IndexPreTransform` over an
//! `OPQMatrix`): every vector and query is rotated before the inner index sees it, so the
//! coarse quantizer and the residual codes of an inverted file both work on `R x`.

use vq_distance::{Metric, Neighbors, RangeResult};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{OpqParams, OpqRotation};

use crate::error::{Error, Result};
use crate::index::{
    Index, MemoryUsage, SearchDefault, SearchParams, check_k, downcast_for_merge, downcast_ref_for_merge,
    fingerprint_of, prepare, sections_fingerprint,
};
use crate::spec::{IndexSpec, TransformSpec};

/// An index behind a learned rotation (`OPQ{m},IVF…`). Training follows Faiss: the rotation
/// is learned on the training set first (OPQ's rounds with 8-bit sub-quantizers, as Faiss'
/// `OPQMatrix`), then the inner index is trained on the rotated training set. `R` is
/// orthogonal, so distances, inner products and norms are those of the input: scores need no
/// conversion, and a refine stage above (`OPQ16,IVF1024,PQ16,RFlat`) re-scores the original
/// vectors with the original queries.
///
/// Merging ([`Index::merge_from`]) needs the same rotation as well as the inner index's trained
/// state: a shard rotated differently is refused with [`Error::TrainedStateMismatch`].
pub struct PreTransformIndex {
    rotation: OpqRotation,
    inner: Box<dyn Index>,
}

impl PreTransformIndex {
    /// An OPQ rotation for `m` sub-spaces in front of `inner` (empty and untrained: the
    /// rotation is trained with it).
    pub fn opq(inner: Box<dyn Index>, m: usize) -> Result<Self> {
        let rotation = OpqRotation::new(inner.dim(), OpqParams::new(m, 8))?;
        Self::new(inner, rotation)
    }

    /// `rotation` in front of `inner`. The rotation's dimension must be the index's; an
    /// untrained rotation needs an empty, untrained `inner` (they are trained together).
    pub fn new(inner: Box<dyn Index>, rotation: OpqRotation) -> Result<Self> {
        if rotation.dim() != inner.dim() {
            return Err(Error::Parameter {
                name: "rotation",
                what: format!("rotates {} dimensions, the index has {}", rotation.dim(), inner.dim()),
            });
        }
        if !rotation.is_trained() && !inner.is_empty() {
            return Err(Error::Parameter {
                name: "rotation",
                what: "an untrained rotation in front of an index that holds vectors".into(),
            });
        }
        Ok(PreTransformIndex { rotation, inner })
    }

    /// The rotation.
    pub fn rotation(&self) -> &OpqRotation {
        &self.rotation
    }

    /// The index behind the rotation (it holds rotated vectors).
    pub fn inner(&self) -> &dyn Index {
        self.inner.as_ref()
    }

    fn transform(&self) -> TransformSpec {
        TransformSpec::Opq { m: self.rotation.params().pq.m, d: None }
    }

    fn rotation_fingerprint(&self) -> u64 {
        sections_fingerprint(&self.rotation.name(), |w| self.rotation.write_sections(w, "t"))
    }

    fn check_trained(&self) -> Result<()> {
        if self.is_trained() { Ok(()) } else { Err(Error::NotTrained { spec: self.spec().to_string() }) }
    }

    /// Checked (and, for cosine, normalized) rows of `data`, rotated.
    fn rotated(&self, what: &'static str, data: &[f32]) -> Result<Vec<f32>> {
        let rows = prepare(what, data, self.dim(), self.metric())?;
        Ok(self.rotation.apply(&rows)?)
    }

    /// Refuses `other` unless it is the same kind and rotated the same way; the inner indexes
    /// check the rest.
    fn check_rotation(&self, other: &PreTransformIndex) -> Result<()> {
        if self.rotation_fingerprint() != other.rotation_fingerprint() {
            return Err(Error::TrainedStateMismatch { ours: self.fingerprint(), theirs: other.fingerprint() });
        }
        Ok(())
    }

    pub(crate) fn read_sections(r: &ContainerReader, prefix: &str, inner: Box<dyn Index>) -> Result<Self> {
        let rotation = OpqRotation::read_sections(r, &format!("{prefix}.opq"))?;
        if rotation.is_trained() != inner.is_trained() {
            return Err(Error::Corrupt {
                what: format!("{prefix}: the rotation and the index behind it disagree on whether they are trained"),
            });
        }
        Self::new(inner, rotation).map_err(|e| Error::Corrupt { what: format!("{prefix}: {e}") })
    }

    /// The sections' prefix of the inner index under this index's `prefix`.
    pub(crate) fn inner_prefix(prefix: &str) -> String {
        format!("{prefix}.inner")
    }
}

impl Index for PreTransformIndex {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn metric(&self) -> Metric {
        self.inner.metric()
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn is_trained(&self) -> bool {
        self.rotation.is_trained() && self.inner.is_trained()
    }

    /// Learns the rotation on `data`, then trains the inner index on the rotated `data`. On
    /// error (the inner index refusing, e.g. because it holds vectors) the rotation is left as
    /// it was.
    fn train(&mut self, data: &[f32]) -> Result<()> {
        let rows = prepare("training data", data, self.dim(), self.metric())?;
        let mut rotation = self.rotation.clone();
        rotation.train(&rows)?;
        self.inner.train(&rotation.apply(&rows)?)?;
        self.rotation = rotation;
        Ok(())
    }

    fn reserve(&mut self, additional: usize) {
        self.inner.reserve(additional);
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        self.check_trained()?;
        let rotated = self.rotated("vectors", data)?;
        self.inner.add(&rotated)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        self.check_trained()?;
        let rotated = self.rotated("vectors", data)?;
        self.inner.add_with_ids(&rotated, ids)
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        check_k(params)?;
        self.check_trained()?;
        let rotated = self.rotated("queries", queries)?;
        self.inner.search_with(&rotated, params)
    }

    /// The inner index's range search of the rotated queries (the rotation keeps distances
    /// and inner products, so the radius means the same).
    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        vq_distance::check_radius(radius)?;
        self.check_trained()?;
        let rotated = self.rotated("queries", queries)?;
        self.inner.range_search_with(&rotated, radius, params)
    }

    fn range_rows(&self, queries: &[f32], radii: &[f32], params: &SearchParams<'_>) -> Result<Vec<Vec<(u64, f32)>>> {
        self.check_trained()?;
        let rotated = self.rotated("queries", queries)?;
        self.inner.range_rows(&rotated, radii, params)
    }

    /// The inner index's vector, rotated back.
    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        self.reconstruct_batch(&[id])
    }

    fn reconstruct_batch(&self, ids: &[u64]) -> Result<Vec<f32>> {
        Ok(self.rotation.apply_inverse(&self.inner.reconstruct_batch(ids)?)?)
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        self.inner.remove_ids(ids)
    }

    fn reset(&mut self) -> Result<()> {
        self.inner.reset()
    }

    fn memory_usage(&self) -> MemoryUsage {
        self.inner.memory_usage() + MemoryUsage { trained: self.rotation.memory_bytes(), ..Default::default() }
    }

    fn spec(&self) -> IndexSpec {
        self.inner.spec().with_transform(self.transform())
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.rotation.write_sections(w, &format!("{prefix}.opq"))?;
        self.inner.write_sections(w, &Self::inner_prefix(prefix))
    }

    /// The inner index's fingerprint and the rotation's; 0 (as an untrained inverted file)
    /// until trained.
    fn fingerprint(&self) -> u64 {
        if !self.is_trained() {
            return 0;
        }
        fingerprint_of(
            &self.spec(),
            self.dim(),
            self.metric(),
            &[self.rotation_fingerprint(), self.inner.fingerprint()],
        )
    }

    fn merge_from(&mut self, other: Box<dyn Index>, shift_ids: u64) -> Result<()> {
        if !self.is_mergeable() {
            return Err(Error::NotMergeable { spec: self.spec().to_string() });
        }
        let other = downcast_for_merge(self, other)?;
        self.check_rotation(&other)?;
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
        self.check_rotation(other)?;
        self.inner.check_merge(other.inner.as_ref(), shift_ids)
    }

    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        self.inner.search_default(knob)
    }

    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        self.inner.set_search_default(knob, value)
    }
}
