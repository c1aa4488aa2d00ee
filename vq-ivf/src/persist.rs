//! An [`IvfIndex`] as container sections (vq-io), under a prefix chosen by the caller:
//!
//! | section | content |
//! |---|---|
//! | `{p}.ivf` | JSON: dimension, metric, [`IvfParams`], codec name, ids ever added, fingerprint |
//! | `{p}.centroids` | `nlist × dim` f32 (empty if untrained) |
//! | `{p}.codec.*` | the quantizer's own sections |
//! | `{p}.coarse_hnsw.*` | `IVF{n}_HNSW{m}` only: the graph over the centroids (vq-graph's sections) |
//! | `{p}.list_sizes` | `nlist` u64 |
//! | `{p}.list_ids` | every list's ids, list after list, u64 |
//! | `{p}.list_codes` | every list's codes, in the same order, bytes |
//!
//! The reader checks everything before using it: shapes, finite centroids, codes that decode
//! to finite vectors, unique ids, and the fingerprint recomputed from what was read (a file
//! whose trained state was altered is refused rather than merged with others).

use serde::{Deserialize, Serialize};
use vq_distance::{Metric, validate_rows};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{Quantizer, validate_code_blocks};

use crate::coarse::HnswCoarse;
use crate::codec::IvfCodec;
use crate::error::{Error, Result};
use crate::ids::{IdTracker, repeated_id};
use crate::index::{Coarse, CoarseKind, IvfIndex, IvfParams, List};

const META_VERSION: u32 = 1;
const ARRAY_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Meta {
    dim: usize,
    metric: String,
    params: IvfParams,
    codec: String,
    added: u64,
    fingerprint: u64,
}

fn corrupt(section: &str, what: impl Into<String>) -> Error {
    Error::Corrupt { section: section.into(), what: what.into() }
}

impl<C: IvfCodec> IvfIndex<C> {
    /// Writes the index as sections named `{prefix}.*` (see the module docs). A trained,
    /// empty index written this way is the starting point of a sharded build: every worker
    /// reads it, adds its shard, and the shards are merged with [`IvfIndex::merge_from`].
    pub fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let (lists, ids) = self.parts();
        let meta = Meta {
            dim: self.dim(),
            metric: self.metric().name().into(),
            params: self.params().clone(),
            codec: self.codec().quantizer().name(),
            added: ids.added(),
            fingerprint: self.fingerprint(),
        };
        w.add_json(&format!("{prefix}.ivf"), META_VERSION, &meta)?;
        w.add_array(&format!("{prefix}.centroids"), ARRAY_VERSION, self.centroids())?;
        self.codec().write_sections(w, &format!("{prefix}.codec"))?;
        if let Some(Coarse::Hnsw(h)) = self.coarse_parts() {
            h.graph()
                .write_to(w, &format!("{prefix}.coarse_hnsw"))
                .map_err(|e| corrupt(&format!("{prefix}.coarse_hnsw"), e.to_string()))?;
        }
        let sizes: Vec<u64> = lists.iter().map(|l| l.ids().len() as u64).collect();
        w.add_array(&format!("{prefix}.list_sizes"), ARRAY_VERSION, &sizes)?;
        w.add_array_parts(&format!("{prefix}.list_ids"), ARRAY_VERSION, lists.iter().map(|l| l.ids()))?;
        w.add_array_parts(&format!("{prefix}.list_codes"), ARRAY_VERSION, lists.iter().map(|l| l.codes()))?;
        Ok(())
    }

    /// Reads what [`write_sections`](IvfIndex::write_sections) wrote under `prefix`,
    /// validating it.
    pub fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let names = ["ivf", "centroids", "list_sizes", "list_ids", "list_codes"].map(|s| format!("{prefix}.{s}"));
        let [meta_name, cent_name, sizes_name, ids_name, codes_name] = &names;
        r.check_versions(&[
            (meta_name, META_VERSION),
            (cent_name, ARRAY_VERSION),
            (sizes_name, ARRAY_VERSION),
            (ids_name, ARRAY_VERSION),
            (codes_name, ARRAY_VERSION),
        ])?;
        let meta: Meta = r.json(meta_name)?;
        let metric: Metric =
            meta.metric.parse().map_err(|_| corrupt(meta_name, format!("unknown metric {:?}", meta.metric)))?;
        if meta.dim == 0 || meta.dim > vq_io::MAX_DIM {
            return Err(corrupt(meta_name, format!("dimension {} is outside 1..={}", meta.dim, vq_io::MAX_DIM)));
        }
        meta.params.check().map_err(|e| corrupt(meta_name, e.to_string()))?;
        let codec = C::read_sections(r, &format!("{prefix}.codec"))?;
        let q = codec.quantizer();
        if q.dim() != meta.dim || q.name() != meta.codec || q.metric() != crate::codec::inner_metric(metric) {
            return Err(corrupt(
                meta_name,
                format!("the codec sections hold {} over dimension {}, not {}", q.name(), q.dim(), meta.codec),
            ));
        }
        let centroids: &[f32] = r.array(cent_name)?;
        let nlist = meta.params.nlist;
        let trained = !centroids.is_empty();
        if trained {
            if Some(centroids.len()) != nlist.checked_mul(meta.dim) {
                return Err(corrupt(
                    cent_name,
                    format!("{} values for nlist {nlist} × dimension {}", centroids.len(), meta.dim),
                ));
            }
            validate_rows("centroids", centroids, meta.dim, Metric::L2)
                .map_err(|e| corrupt(cent_name, e.to_string()))?;
            if !q.is_trained() {
                return Err(corrupt(meta_name, "trained centroids with an untrained codec"));
            }
        }
        let sizes: &[u64] = r.array(sizes_name)?;
        let n = r.array_len::<u64>(ids_name)?;
        let code_bytes = r.array_len::<u8>(codes_name)?;
        let cs = q.code_size();
        let expected_lists = if trained { nlist } else { 0 };
        if sizes.len() != expected_lists {
            return Err(corrupt(sizes_name, format!("{} lists, expected {expected_lists}", sizes.len())));
        }
        let total = sizes.iter().try_fold(0u64, |a, &s| a.checked_add(s));
        if total != Some(n as u64) {
            return Err(corrupt(sizes_name, format!("list sizes do not add up to the {n} ids")));
        }
        if Some(code_bytes) != n.checked_mul(cs) {
            return Err(corrupt(codes_name, format!("{code_bytes} bytes for {n} codes of {cs} bytes")));
        }
        // The sizes add up to the sections' lengths (checked above), so every list lies within
        // them. A mapped container: each list a view into the file, copied only when written;
        // otherwise each list is read from the file straight into its own vectors.
        let lists: Vec<List> = match (r.mapped_array::<u64>(ids_name)?, r.mapped_array::<u8>(codes_name)?) {
            (Some(ids), Some(codes)) => {
                let mut at = 0usize;
                let mut lists = Vec::with_capacity(expected_lists);
                for &s in sizes {
                    let (span, code_span) = (at..at + s as usize, at * cs..(at + s as usize) * cs);
                    lists.push(match (ids.slice(span), codes.slice(code_span)) {
                        _ if s == 0 => List::default(),
                        (Some(ids), Some(codes)) => List::Mapped { ids, codes },
                        _ => return Err(corrupt(sizes_name, "a list runs past the ids or codes")),
                    });
                    at += s as usize;
                }
                lists
            }
            _ => {
                let mut lists: Vec<List> = sizes
                    .iter()
                    .map(|&s| List::Owned { ids: vec![0; s as usize], codes: vec![0; s as usize * cs] })
                    .collect();
                r.read_array_parts(ids_name, lists.iter_mut().map(|l| &mut l.owned_mut().0[..]))?;
                r.read_array_parts(codes_name, lists.iter_mut().map(|l| &mut l.owned_mut().1[..]))?;
                lists
            }
        };
        validate_code_blocks(q, lists.iter().map(|l| l.codes()), codes_name)?;
        let all_ids = lists.iter().flat_map(|l| l.ids().iter().copied());
        if let Some(id) = repeated_id(all_ids.clone()) {
            return Err(corrupt(ids_name, format!("id {id} appears twice")));
        }
        let tracker = IdTracker::from_ids(all_ids, n, meta.added);
        let coarse = if !trained {
            None
        } else {
            let c = centroids.to_vec();
            let coarse_metric = crate::codec::inner_metric(metric);
            Some(match meta.params.coarse {
                CoarseKind::Flat => Coarse::Flat(
                    crate::coarse::FlatCoarse::new(c, meta.dim, coarse_metric)
                        .map_err(|e| corrupt(cent_name, e.to_string()))?,
                ),
                CoarseKind::Hnsw { .. } => {
                    let graph_name = format!("{prefix}.coarse_hnsw");
                    let graph =
                        vq_graph::Hnsw::read_from(r, &graph_name).map_err(|e| corrupt(&graph_name, e.to_string()))?;
                    Coarse::Hnsw(
                        HnswCoarse::from_graph(c, meta.dim, coarse_metric, graph)
                            .map_err(|e| corrupt(&graph_name, e.to_string()))?,
                    )
                }
            })
        };
        let index = IvfIndex::from_parts(meta.dim, metric, meta.params, coarse, codec, lists, tracker);
        if index.fingerprint() != meta.fingerprint {
            return Err(corrupt(
                meta_name,
                format!(
                    "fingerprint {:016x} does not match the trained state read ({:016x})",
                    meta.fingerprint,
                    index.fingerprint()
                ),
            ));
        }
        Ok(index)
    }
}
