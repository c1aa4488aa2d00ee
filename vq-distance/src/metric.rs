//! Metrics and the score convention shared by every vq crate.

/// How two vectors are compared.
///
/// Scores follow Faiss' convention, everywhere a result leaves a vq crate:
///
/// | metric | score | better |
/// |---|---|---|
/// | [`Metric::L2`] | squared Euclidean distance | smaller |
/// | [`Metric::InnerProduct`] | inner product | larger |
/// | [`Metric::Cosine`] | cosine similarity | larger |
///
/// Internally, selection works on a *key* that is always "smaller is better"
/// ([`Metric::key_from_score`]); the conversion happens once, at the API boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Metric {
    /// Squared Euclidean distance; smaller is better.
    #[default]
    L2,
    /// Inner product; larger is better.
    InnerProduct,
    /// Cosine similarity; larger is better. Vectors are normalized inside the search, so
    /// unnormalized input gives the right answer.
    Cosine,
}

impl Metric {
    /// `true` when a smaller score is a better match (only [`Metric::L2`]).
    #[inline]
    pub fn smaller_is_better(self) -> bool {
        matches!(self, Metric::L2)
    }

    /// The worst possible score: what padded result slots carry.
    #[inline]
    pub fn worst_score(self) -> f32 {
        if self.smaller_is_better() { f32::INFINITY } else { f32::NEG_INFINITY }
    }

    /// Converts a score into the "smaller is better" selection key.
    #[inline]
    pub fn key_from_score(self, score: f32) -> f32 {
        if self.smaller_is_better() { score } else { -score }
    }

    /// Converts a selection key back into a score (the inverse of [`Metric::key_from_score`]).
    #[inline]
    pub fn score_from_key(self, key: f32) -> f32 {
        self.key_from_score(key)
    }

    /// `true` if score `a` is strictly better than score `b` under this metric.
    #[inline]
    pub fn is_better(self, a: f32, b: f32) -> bool {
        if self.smaller_is_better() { a < b } else { a > b }
    }

    /// `true` if `score` lies within `radius` in the sense of a range search: strictly
    /// better than it (squared L2 below `radius`; inner product and cosine above it), Faiss'
    /// `range_search` convention. NaN is never within.
    #[inline]
    pub fn within(self, score: f32, radius: f32) -> bool {
        self.is_better(score, radius)
    }

    /// Sorts `(id, score)` hits best first, ties to the smaller id: the order of every vq
    /// result.
    pub fn sort_hits(self, hits: &mut [(u64, f32)]) {
        hits.sort_unstable_by(|a, b| self.key_from_score(a.1).total_cmp(&self.key_from_score(b.1)).then(a.0.cmp(&b.0)));
    }

    /// Short lowercase name as used in benchmark files: `l2`, `ip`, `cosine`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for [`Metric`]'s `FromStr`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric `{0}` (expected one of: l2, ip, inner_product, cosine)")]
pub struct ParseMetricError(pub String);

impl std::str::FromStr for Metric {
    type Err = ParseMetricError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" | "sqeuclidean" => Ok(Metric::L2),
            "ip" | "inner_product" | "innerproduct" | "dot" => Ok(Metric::InnerProduct),
            "cosine" | "cos" | "angular" => Ok(Metric::Cosine),
            _ => Err(ParseMetricError(s.to_owned())),
        }
    }
}
