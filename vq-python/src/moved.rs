//! What an index becomes after `merge_from` moved its contents into another: an empty index
//! of the same shape whose every use says so, instead of a Python object that still looks
//! like the index it was.

use vq::vq_io::ContainerWriter;
use vq::{Index, IndexSpec, MemoryUsage, Metric, Neighbors, SearchParams};

pub(crate) struct Moved {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) spec: IndexSpec,
}

impl Moved {
    /// The husk `index` is, if it is one.
    pub(crate) fn of(index: &dyn Index) -> Option<&Moved> {
        (index as &dyn std::any::Any).downcast_ref::<Moved>()
    }

    /// What every use but `ntotal` / `is_trained` / `repr` raises (`vq.VqError` in Python: the
    /// object's state, not an argument, is what is wrong).
    pub(crate) fn err(&self) -> vq::Error {
        vq::Error::Unsupported {
            spec: self.spec.to_string(),
            what: "use after merge_from: it was merged into another index (merge_from moves the contents, as \
                   Faiss' does) and holds nothing now"
                .into(),
        }
    }
}

impl Index for Moved {
    fn dim(&self) -> usize {
        self.dim
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn len(&self) -> usize {
        0
    }
    fn next_id(&self) -> u64 {
        0
    }
    fn is_trained(&self) -> bool {
        false
    }
    fn train(&mut self, _data: &[f32]) -> vq::Result<()> {
        Err(self.err())
    }
    fn add(&mut self, _data: &[f32]) -> vq::Result<()> {
        Err(self.err())
    }
    fn add_with_ids(&mut self, _data: &[f32], _ids: &[u64]) -> vq::Result<()> {
        Err(self.err())
    }
    fn search_with(&self, _queries: &[f32], _params: &SearchParams<'_>) -> vq::Result<Neighbors> {
        Err(self.err())
    }
    fn range_rows(
        &self,
        _queries: &[f32],
        _radii: &[f32],
        _params: &SearchParams<'_>,
    ) -> vq::Result<Vec<Vec<(u64, f32)>>> {
        Err(self.err())
    }
    fn reconstruct(&self, _id: u64) -> vq::Result<Vec<f32>> {
        Err(self.err())
    }
    fn remove_ids(&mut self, _ids: &[u64]) -> vq::Result<usize> {
        Err(self.err())
    }
    fn reset(&mut self) -> vq::Result<()> {
        Err(self.err())
    }
    fn memory_usage(&self) -> MemoryUsage {
        MemoryUsage::default()
    }
    fn spec(&self) -> IndexSpec {
        self.spec
    }
    fn write_sections(&self, _w: &mut ContainerWriter, _prefix: &str) -> vq::Result<()> {
        Err(self.err())
    }
    fn fingerprint(&self) -> u64 {
        0
    }
    fn merge_from(&mut self, _other: Box<dyn Index>, _shift_ids: u64) -> vq::Result<()> {
        Err(self.err())
    }
    fn is_mergeable(&self) -> bool {
        false
    }
    fn check_merge(&self, _other: &dyn Index, _shift_ids: u64) -> vq::Result<()> {
        Err(self.err())
    }
    fn set_search_default(&mut self, _knob: vq::SearchDefault, _value: usize) -> vq::Result<()> {
        Err(self.err())
    }
    fn set_ef_construction(&mut self, _value: usize) -> vq::Result<()> {
        Err(self.err())
    }
}
