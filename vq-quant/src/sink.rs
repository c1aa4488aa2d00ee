//! Where a scan of codes puts what it scores: a k-NN selection or a range search's hits.

use vq_distance::{Metric, TopK};

/// What a scan of codes hands its `(key, id)` pairs to (keys "smaller is better"): a k-NN
/// selection ([`TopK`]) or every row under a fixed key ([`WithinKey`], a range search). A
/// scan may skip any row whose key is above [`threshold`](ScanSink::threshold) (the fast scan
/// does, in integers); `push` decides on the exact key.
pub trait ScanSink {
    /// Rows with a key above this cannot enter (it may only decrease during a scan).
    fn threshold(&self) -> f32;
    /// Offers `(key, id)`.
    fn push(&mut self, key: f32, id: u64);
    /// What was kept, as `(id, score)` under `metric`.
    fn into_hits(self, metric: Metric) -> Vec<(u64, f32)>;
}

impl ScanSink for TopK {
    #[inline]
    fn threshold(&self) -> f32 {
        TopK::threshold(self)
    }

    #[inline]
    fn push(&mut self, key: f32, id: u64) {
        TopK::push(self, key, id);
    }

    /// Best first, ties to the smaller id.
    fn into_hits(self, metric: Metric) -> Vec<(u64, f32)> {
        self.into_sorted().into_iter().map(|(key, id)| (id, metric.score_from_key(key))).collect()
    }
}

/// Every row whose key is strictly below `max_key` (a range search's radius as a key, as
/// `Metric::within` has it), in the order offered.
#[derive(Debug, Clone, Default)]
pub struct WithinKey {
    /// The radius' key.
    pub max_key: f32,
    /// `(id, key)` of every row kept.
    pub hits: Vec<(u64, f32)>,
}

impl WithinKey {
    /// An empty sink for keys below `max_key`.
    pub fn new(max_key: f32) -> Self {
        WithinKey { max_key, hits: Vec::new() }
    }
}

impl ScanSink for WithinKey {
    #[inline]
    fn threshold(&self) -> f32 {
        self.max_key
    }

    #[inline]
    fn push(&mut self, key: f32, id: u64) {
        if key < self.max_key {
            self.hits.push((id, key));
        }
    }

    /// In the order offered (`RangeResult::from_rows` sorts).
    fn into_hits(self, metric: Metric) -> Vec<(u64, f32)> {
        self.hits.into_iter().map(|(id, key)| (id, metric.score_from_key(key))).collect()
    }
}
