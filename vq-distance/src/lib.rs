//! Distance metrics, SIMD kernels, top-k selection and exact k-NN: the lowest layer of
//! [vq](https://github.com/vq-rs/vq).
//!
//! **Owns:** [`Metric`] and the score convention every vq crate follows; per-pair kernels for
//! squared L2, dot product and cosine over `f32`, [`half::f16`], [`half::bf16`], `u8` and `i8`;
//! one-to-many and many-to-many scoring, and one vector against scattered rows four at a pass
//! ([`Kernels::score_rows`]); bounded top-k selection ([`TopK`]); exact search
//! ([`knn_exact`]), its result type ([`Neighbors`]), the one id filter type ([`IdFilter`])
//! and the id rules every index follows ([`NO_ID`] pads short answers, [`auto_ids`]);
//! exact range search ([`range_exact`], Faiss' `range_search`) and its result type
//! ([`RangeResult`]);
//! nearest-centroid search ([`nearest_centroids`], and [`PackedCentroids`]: the top-k of
//! centroids packed once, an inverted file's flat coarse search); a dense linear map packed
//! once ([`PackedMatrix`]: rotations and projections, outputs independent of the batch);
//! the software prefetch ([`prefetch_l2`], [`prefetch_l2_head`]) the memory-bound searches
//! above share.
//!
//! **Does not own:** indexes, quantizers, file formats (see `vq-graph`, `vq-quant`, `vq-io`).
//!
//! # Scores
//! [`Metric::L2`] scores are *squared* distances (smaller is better); inner product and cosine
//! scores are similarities (larger is better). Results are sorted best first, ties broken by
//! the smaller id.
//!
//! # SIMD
//! Kernels exist for AVX-512, AVX2+FMA, NEON and a portable baseline. The level is chosen once
//! per process at run time ([`simd_level`] tells which); `VQ_SIMD=portable|avx2|avx512|neon`
//! forces a lower one. The same binary runs on every x86-64.
//!
//! # Example
//! ```
//! use vq_distance::{knn_exact, l2_sq, Metric};
//!
//! let dim = 4;
//! let base: Vec<f32> = (0..400).map(|i| (i % 17) as f32).collect(); // 100 vectors
//! let queries = &base[8..16];                                        // vectors 2 and 3
//! let hits = knn_exact(&base, queries, dim, 5, Metric::L2)?;
//! let (ids, scores) = hits.get(0).unwrap();
//! assert_eq!(ids[0], 2);
//! assert_eq!(scores[0], 0.0);
//! assert_eq!(l2_sq(&base[..4], &base[4..8])?, scores_between(&base, 0, 1));
//! # fn scores_between(b: &[f32], i: usize, j: usize) -> f32 {
//! #     b[i * 4..i * 4 + 4].iter().zip(&b[j * 4..j * 4 + 4]).map(|(x, y)| (x - y) * (x - y)).sum()
//! # }
//! # Ok::<(), vq_distance::Error>(())
//! ```

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod assign;
mod element;
mod error;
mod filter;
mod gemm;
mod ids;
mod knn;
mod matrix;
mod merge;
mod metric;
mod portable;
mod prefetch;
mod probe;
mod range;
pub mod reference;
mod rows;
mod simd;
mod topk;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use assign::{PackedPoints, nearest_centroids, nearest_centroids_with};
pub use element::{Element, cosine, dot, l2_sq, score, score_one_to_many};
pub use error::{Error, Result};
pub use filter::{IdBitset, IdFilter, IdSet, sample_places};
pub use half::{bf16, f16};
pub use ids::{NO_ID, auto_ids, check_caller_ids, next_auto_id, shifted_id};
pub use knn::{Neighbors, knn_exact, knn_exact_with, score_many_to_many};
pub use matrix::PackedMatrix;
pub use merge::merge_topk;
pub use metric::{Metric, ParseMetricError, from_ordered_bits, ordered_bits};
pub use prefetch::{PREFETCH_HEAD_LINES, prefetch_l2, prefetch_l2_head};
pub use probe::PackedCentroids;
pub use range::{RangeResult, check_radii, check_radius, range_exact, range_exact_with};
pub use rows::{MAX_SQUARED_NORM, Rows, normalize_l2, prepare_row_into, prepare_rows, validate_rows};
pub use simd::{Kernels, Rows4Fn, SimdLevel, simd_level};
pub use topk::TopK;

/// This crate's version, as benchmark records carry it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
