//! Milvus' index descriptions (`index_type`, `metric_type`, `params`) mapped onto vq's specs,
//! so a Milvus user's HNSW / HNSW_SQ / HNSW_PQ / FLAT settings build the same index here.

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
    /// Build and default search parameters (`efConstruction`, `ef`, `refine_k`).
    pub params: IndexParams,
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
    /// `nbits`); `params` may also sit at the top level. Refine (`refine: true`) re-scores from
    /// `refine_type`: `FP32` (f32 vectors, `RFlat`) or a scalar type. A parameter of the wrong
    /// type or an unknown index type is an error naming it.
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
            other => return Err(bad("index_type", format!("{other:?} is not one of FLAT, HNSW, HNSW_SQ, HNSW_PQ"))),
        };
        let refine = match params.get("refine") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(match text(params, "refine_type")?.unwrap_or("FP32") {
                "FP32" | "Flat" => RefineSpec::Flat,
                s => RefineSpec::Sq(sq_type("refine_type", s)?),
            }),
            Some(v) => return Err(bad("refine", format!("{v} is not true or false"))),
        };
        let index_params = IndexParams {
            ef_construction: uint(params, "efConstruction")?,
            ef: uint(params, "ef")?,
            refine_k: uint(params, "refine_k")?,
            nprobe: uint(params, "nprobe")?,
        };
        Ok(MilvusIndex { spec: IndexSpec { base, refine }, metric, params: index_params })
    }
}

impl MilvusIndex {
    /// The empty index it describes (L2 when the description names no metric).
    pub fn build(&self, dim: usize) -> Result<Box<dyn Index>> {
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
