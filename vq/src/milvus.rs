//! Milvus' index descriptions (`index_type`, `metric_type`, `params`) mapped onto vq's specs,
//! so a Milvus user's HNSW / HNSW_SQ / HNSW_PQ / IVF_FLAT / IVF_SQ8 / IVF_PQ / IVF_RABITQ /
//! SCANN / FLAT settings build the same index here.

use serde_json::{Map, Value};
use vq_distance::Metric;
use vq_quant::SqType;

use crate::error::{Error, Result};
use crate::factory::IndexParams;
use crate::index::Index;
use crate::spec::{BaseSpec, CodecSpec, IndexSpec, RefineSpec, StorageSpec};

/// A Milvus index description, translated.
#[derive(Debug, Clone, PartialEq)]
pub struct MilvusIndex {
    /// The index it describes (`HNSW_SQ` with `sq_type: SQ8`, `refine_type: FP32` →
    /// `HNSW{M},SQ8,RFlat`).
    pub spec: IndexSpec,
    /// Its metric, if `metric_type` was given.
    pub metric: Option<Metric>,
    /// Build and default search parameters (`efConstruction`, `ef`, `refine_k`, `nprobe`,
    /// `reorder_k`).
    pub params: IndexParams,
    /// The vector dimension, if the description gave one (`dim`, as Milvus' index configs
    /// carry it); [`MilvusIndex::build`] refuses another. SCANN needs it: its sub-quantizer
    /// count is `dim / sub_dim`.
    pub dim: Option<usize>,
}

fn bad(name: &'static str, what: impl Into<String>) -> Error {
    Error::Parameter { name, what: what.into() }
}

fn uint(params: &Map<String, Value>, name: &'static str) -> Result<Option<usize>> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        // Milvus clients send numbers as strings too (`"M": "16"`).
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad(name, format!("{s:?} is not a whole number"))),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| bad(name, format!("{v} is not a whole number"))),
    }
}

fn text<'a>(params: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad(name, format!("{v} is not a string"))),
    }
}

/// Milvus' scalar types: `SQ4U`, `SQ6`, `SQ8`, `FP16`, `BF16` (and vq's own names).
fn sq_type(name: &'static str, s: &str) -> Result<SqType> {
    s.parse().map_err(|_| bad(name, format!("{s:?} is not one of SQ4U, SQ6, SQ8, FP16, BF16")))
}

impl IndexParams {
    /// Translates a Milvus index description:
    ///
    /// ```
    /// let json = serde_json::json!({
    ///     "index_type": "HNSW_SQ", "metric_type": "COSINE",
    ///     "params": { "M": 32, "efConstruction": 200, "sq_type": "SQ8", "refine": true, "refine_type": "FP16", "refine_k": 3 }
    /// });
    /// let m = vq::IndexParams::from_milvus(&json)?;
    /// let index = m.build(128)?;
    /// assert_eq!(index.metric(), vq::Metric::Cosine);
    /// assert_eq!(m.spec.to_string(), "HNSW32,SQ8,Refine(SQfp16)");
    /// assert_eq!(m.metric, Some(vq::Metric::Cosine));
    /// assert_eq!((m.params.ef_construction, m.params.refine_k), (Some(200), Some(3)));
    /// # Ok::<(), vq::Error>(())
    /// ```
    ///
    /// `index_type`: `FLAT`, `HNSW`, `HNSW_SQ` (`sq_type`, default SQ8), `HNSW_PQ` (`m`,
    /// `nbits`), `IVF_FLAT`, `IVF_SQ8`, `IVF_PQ` (`nlist`, default 128; `m`, `nbits`),
    /// `IVF_RABITQ` (`IVF{nlist},RaBitQ`, with `refine` as the HNSW types; `rbq_query_bits`
    /// is accepted, 0 to 8, and changes nothing: vq scores the query unquantized, Milvus' 0), and
    /// `SCANN`: `IVF{nlist},PQ{dim/sub_dim}x4fs` (`sub_dim` default 2, as Knowhere; needs
    /// `dim`) with, when `with_raw_data` (default `true`), a refine stage over the f32 vectors
    /// (or over `refine_type`'s codes) that re-scores `reorder_k` candidates (default `k`);
    /// Knowhere's default `nprobe` of 8 unless given. `params` may also sit at the top level.
    /// Refine of the HNSW types and `IVF_RABITQ` (`refine: true`) re-scores from `refine_type`: `FP32` (f32
    /// vectors, `RFlat`) or a scalar type. A parameter of the wrong type or an unknown index
    /// type is an error naming it.
    ///
    /// ```
    /// let json = serde_json::json!({
    ///     "index_type": "SCANN", "metric_type": "IP",
    ///     "params": { "nlist": 1024, "with_raw_data": true, "reorder_k": 100, "nprobe": 32, "dim": 384 }
    /// });
    /// let m = vq::IndexParams::from_milvus(&json)?;
    /// assert_eq!(m.spec.to_string(), "IVF1024,PQ192x4fs,RFlat");
    /// assert_eq!((m.params.reorder_k, m.params.nprobe), (Some(100), Some(32)));
    /// assert!(m.build(128).is_err(), "another dimension than the description's");
    /// # Ok::<(), vq::Error>(())
    /// ```
    pub fn from_milvus(json: &Value) -> Result<MilvusIndex> {
        let top = json.as_object().ok_or_else(|| bad("index", "a Milvus index description is a JSON object"))?;
        let params = match top.get("params") {
            Some(Value::Object(p)) => p,
            Some(other) => return Err(bad("params", format!("{other} is not an object"))),
            None => top,
        };
        let metric = match text(top, "metric_type")? {
            None => None,
            Some(m) => Some(match m.to_ascii_uppercase().as_str() {
                "L2" => Metric::L2,
                "IP" => Metric::InnerProduct,
                "COSINE" => Metric::Cosine,
                other => return Err(bad("metric_type", format!("{other:?} is not one of L2, IP, COSINE"))),
            }),
        };
        let index_type = text(top, "index_type")?.unwrap_or("HNSW_SQ").to_ascii_uppercase();
        let m = uint(params, "M")?.unwrap_or(16);
        let dim = match uint(params, "dim")? {
            Some(d) => Some(d),
            None => uint(top, "dim")?,
        };
        let nlist = uint(params, "nlist")?.unwrap_or(128);
        if nlist == 0 {
            return Err(bad("nlist", "must be at least 1"));
        }
        let refine_type = |default: &str| -> Result<RefineSpec> {
            Ok(match text(params, "refine_type")?.unwrap_or(default) {
                "FP32" | "Flat" => RefineSpec::Flat,
                s => RefineSpec::Sq(sq_type("refine_type", s)?),
            })
        };
        let mut nprobe_default = None;
        let mut scann_refine = None;
        let base = match index_type.as_str() {
            "FLAT" => BaseSpec::Flat,
            "HNSW" => BaseSpec::Hnsw { m, storage: StorageSpec::Flat },
            "HNSW_SQ" => {
                let t = text(params, "sq_type")?.map_or(Ok(SqType::SQ8), |s| sq_type("sq_type", s))?;
                BaseSpec::Hnsw { m, storage: StorageSpec::Codec(CodecSpec::Sq(t)) }
            }
            "HNSW_PQ" => {
                // Milvus' HNSW_PQ names the sub-quantizer count `m` (lower case) beside `M`.
                let pm = uint(params, "m")?.ok_or_else(|| bad("m", "HNSW_PQ needs m, the number of sub-quantizers"))?;
                let nbits = uint(params, "nbits")?.unwrap_or(8) as u32;
                BaseSpec::Hnsw { m, storage: StorageSpec::Codec(CodecSpec::Pq { m: pm, nbits }) }
            }
            "IVF_FLAT" => BaseSpec::Ivf { nlist, coarse_hnsw: None, storage: StorageSpec::Flat },
            "IVF_SQ8" => {
                BaseSpec::Ivf { nlist, coarse_hnsw: None, storage: StorageSpec::Codec(CodecSpec::Sq(SqType::SQ8)) }
            }
            "IVF_PQ" => {
                let pm = uint(params, "m")?.ok_or_else(|| bad("m", "IVF_PQ needs m, the number of sub-quantizers"))?;
                let nbits = uint(params, "nbits")?.unwrap_or(8) as u32;
                BaseSpec::Ivf { nlist, coarse_hnsw: None, storage: StorageSpec::Codec(CodecSpec::Pq { m: pm, nbits }) }
            }
            "IVF_RABITQ" => {
                if uint(params, "rbq_query_bits")?.is_some_and(|b| b > 8) {
                    return Err(bad("rbq_query_bits", "must be 0 to 8"));
                }
                BaseSpec::Ivf { nlist, coarse_hnsw: None, storage: StorageSpec::Codec(CodecSpec::RaBitQ { bits: 1 }) }
            }
            "SCANN" => {
                let sub_dim = uint(params, "sub_dim")?.unwrap_or(2);
                let d = dim.ok_or_else(|| bad("dim", "SCANN needs the vector dimension: m = dim / sub_dim"))?;
                if sub_dim == 0 || d == 0 || !d.is_multiple_of(sub_dim) {
                    return Err(bad("sub_dim", format!("{sub_dim} does not divide the dimension {d}")));
                }
                scann_refine = match params.get("with_raw_data") {
                    None | Some(Value::Null) | Some(Value::Bool(true)) => Some(refine_type("FP32")?),
                    Some(Value::Bool(false)) => None,
                    Some(v) => return Err(bad("with_raw_data", format!("{v} is not true or false"))),
                };
                nprobe_default = Some(8);
                BaseSpec::Ivf {
                    nlist,
                    coarse_hnsw: None,
                    storage: StorageSpec::Codec(CodecSpec::PqFastScan { m: d / sub_dim }),
                }
            }
            other => {
                return Err(bad(
                    "index_type",
                    format!(
                        "{other:?} is not one of FLAT, HNSW, HNSW_SQ, HNSW_PQ, IVF_FLAT, IVF_SQ8, IVF_PQ, IVF_RABITQ, SCANN"
                    ),
                ));
            }
        };
        let refine = if index_type == "SCANN" {
            scann_refine
        } else {
            match params.get("refine") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => None,
                Some(Value::Bool(true)) => Some(refine_type("FP32")?),
                Some(v) => return Err(bad("refine", format!("{v} is not true or false"))),
            }
        };
        let index_params = IndexParams {
            ef_construction: uint(params, "efConstruction")?,
            ef: uint(params, "ef")?,
            refine_k: uint(params, "refine_k")?,
            nprobe: uint(params, "nprobe")?.or(nprobe_default),
            by_residual: None,
            anisotropic_threshold: None,
            reorder_k: uint(params, "reorder_k")?,
        };
        Ok(MilvusIndex { spec: IndexSpec { transform: None, base, refine }, metric, params: index_params, dim })
    }
}

impl MilvusIndex {
    /// The empty index it describes (L2 when the description names no metric).
    pub fn build(&self, dim: usize) -> Result<Box<dyn Index>> {
        if let Some(d) = self.dim.filter(|&d| d != dim) {
            return Err(bad("dim", format!("the description is for dimension {d}, not {dim}")));
        }
        crate::factory::build(dim, &self.spec, self.metric.unwrap_or(Metric::L2), &self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_milvus_type_maps_to_its_spec() {
        for (desc, spec) in [
            (json!({"index_type": "FLAT"}), "Flat"),
            (json!({"index_type": "HNSW", "params": {"M": "24"}}), "HNSW24"),
            (json!({"index_type": "HNSW_SQ", "M": 32, "sq_type": "SQ4U"}), "HNSW32,SQ4U"),
            (json!({"index_type": "HNSW_SQ", "params": {"refine": true}}), "HNSW16,SQ8,RFlat"),
            (
                json!({"index_type": "HNSW_SQ", "params": {"refine": true, "refine_type": "BF16"}}),
                "HNSW16,SQ8,Refine(SQbf16)",
            ),
            (
                json!({"index_type": "hnsw_pq", "params": {"M": 8, "m": 16, "nbits": 4, "refine": false}}),
                "HNSW8,PQ16x4",
            ),
            (json!({"index_type": "IVF_FLAT", "params": {"nlist": 64}}), "IVF64,Flat"),
            (json!({"index_type": "IVF_SQ8"}), "IVF128,SQ8"),
            (json!({"index_type": "IVF_PQ", "params": {"nlist": 32, "m": 8, "nbits": 4}}), "IVF32,PQ8x4"),
            (json!({"index_type": "SCANN", "dim": 128}), "IVF128,PQ64x4fs,RFlat"),
            (json!({"index_type": "IVF_RABITQ", "params": {"nlist": 64}}), "IVF64,RaBitQ"),
            (
                json!({"index_type": "IVF_RABITQ", "params": {"refine": true, "refine_type": "SQ8", "rbq_query_bits": 0}}),
                "IVF128,RaBitQ,Refine(SQ8)",
            ),
            (
                json!({"index_type": "SCANN", "params": {"dim": 96, "sub_dim": 4, "with_raw_data": false}}),
                "IVF128,PQ24x4fs",
            ),
            (
                json!({"index_type": "SCANN", "params": {"dim": 8, "nlist": 16, "refine_type": "BF16"}}),
                "IVF16,PQ4x4fs,Refine(SQbf16)",
            ),
        ] {
            assert_eq!(IndexParams::from_milvus(&desc).unwrap().spec.to_string(), spec, "{desc}");
        }
    }

    #[test]
    fn wrong_milvus_parameters_name_themselves() {
        for (desc, name) in [
            (json!({"index_type": "DISKANN"}), "index_type"),
            (json!({"index_type": "HNSW", "params": {"M": -3}}), "M"),
            (json!({"index_type": "HNSW_SQ", "sq_type": "SQ9"}), "sq_type"),
            (json!({"index_type": "HNSW_SQ", "refine": "yes"}), "refine"),
            (json!({"index_type": "HNSW_PQ"}), "m"),
            (json!({"index_type": "SCANN"}), "dim"),
            (json!({"index_type": "SCANN", "dim": 9}), "sub_dim"),
            (json!({"index_type": "SCANN", "dim": 8, "with_raw_data": 1}), "with_raw_data"),
            (json!({"index_type": "IVF_FLAT", "nlist": 0}), "nlist"),
            (json!({"index_type": "IVF_RABITQ", "rbq_query_bits": 9}), "rbq_query_bits"),
            (json!({"metric_type": "HAMMING"}), "metric_type"),
            (json!([1, 2]), "index"),
        ] {
            match IndexParams::from_milvus(&desc) {
                Err(Error::Parameter { name: got, .. }) => assert_eq!(got, name, "{desc}"),
                other => panic!("{desc}: {other:?}"),
            }
        }
    }
}

#[cfg(test)]
mod scann_tests {
    use super::*;
    use serde_json::json;

    /// Milvus' SCANN search parameters reach the index: `reorder_k` candidates are re-scored
    /// (more of them can only find more of the exact top-k), `nprobe` defaults to Knowhere's 8.
    #[test]
    fn scann_parameters_reach_the_index() {
        let dim = 8;
        let data: Vec<f32> = (0..dim * 1200).map(|i| ((i * 7919) % 1009) as f32 / 97.0).collect();
        let desc = |reorder_k: usize| {
            json!({"index_type": "SCANN", "metric_type": "L2",
                   "params": {"dim": dim, "nlist": 16, "with_raw_data": true, "reorder_k": reorder_k}})
        };
        let queries = &data[..20 * dim];
        let truth = crate::knn_exact(&data, queries, dim, 10, Metric::L2).unwrap();
        let mut recalls = Vec::new();
        for reorder_k in [10, 200] {
            let m = IndexParams::from_milvus(&desc(reorder_k)).unwrap();
            assert_eq!(m.params.nprobe, Some(8));
            let mut index = m.build(dim).unwrap();
            index.train(&data).unwrap();
            index.add(&data).unwrap();
            let hits = index.search(queries, 10).unwrap();
            let found: usize = hits
                .iter()
                .zip(truth.iter())
                .map(|((h, _), (t, _))| h.iter().filter(|id| t.contains(id)).count())
                .sum();
            recalls.push(found as f64 / 200.0);
        }
        assert!(recalls[1] > recalls[0], "reorder_k 200 re-scores more candidates than 10: {recalls:?}");
        assert!(recalls[1] >= 0.9, "{recalls:?}");
    }
}
