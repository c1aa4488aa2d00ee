//! The identity "quantizer": codes are the f32 vectors themselves (little-endian bytes), so
//! indexes generic over a [`Quantizer`] (inverted lists, flat scans) store full-precision
//! vectors through the same code path as compressed ones (Faiss' `IndexIVFFlat` beside
//! `IndexIVFScalarQuantizer`).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::{Kernels, Metric};
use vq_io::{ContainerReader, ContainerWriter};

use crate::sections::{self, corrupt};
use crate::{CodeScorer, Error, Quantizer, Result, prepare_row_into, prepare_rows};

/// Codes that are the vectors: `4 · dim` bytes, nothing to train, exact distances.
///
/// Cosine quantizers normalize what they encode and every query, as every quantizer does;
/// keys are squared L2 or negated inner products.
///
/// ```
/// use vq_distance::Metric;
/// use vq_quant::{CodeScorer, F32Quantizer, Quantizer};
///
/// let q = F32Quantizer::new(2, Metric::L2)?;
/// let mut codes = vec![0u8; 2 * q.code_size()];
/// q.encode(&[0.0, 0.0, 3.0, 4.0], &mut codes)?;
/// assert_eq!(q.scorer(&[0.0, 0.0])?.distance(&codes[8..]), 25.0);
/// # Ok::<(), vq_quant::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct F32Quantizer {
    dim: usize,
    metric: Metric,
}

impl F32Quantizer {
    /// The identity over `dim`-dimensional vectors scored by `metric`.
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        if dim == 0 || dim > vq_io::MAX_DIM {
            return Err(Error::Parameter { name: "dim", what: format!("{dim} is outside 1..={}", vq_io::MAX_DIM) });
        }
        Ok(F32Quantizer { dim, metric })
    }
}

/// A query against f32 codes: the query and the level's pair kernel.
#[derive(Debug, Clone)]
pub struct F32Scorer {
    query: Vec<f32>,
    /// `l2_sq` for L2, `dot` (then negated) for inner product and cosine.
    kernel: fn(&[f32], &[f32]) -> f32,
    negate: bool,
}

impl F32Scorer {
    #[inline]
    fn key(&self, row: &[f32]) -> f32 {
        let s = (self.kernel)(&self.query, row);
        if self.negate { -s } else { s }
    }
}

impl CodeScorer for F32Scorer {
    fn distance(&self, code: &[u8]) -> f32 {
        let mut out = [0f32];
        self.distances(code, &mut out);
        out[0]
    }

    fn distances(&self, codes: &[u8], out: &mut [f32]) {
        let dim = self.query.len();
        let n = out.len().min(codes.len() / (4 * dim));
        out[n..].fill(f32::INFINITY);
        let codes = &codes[..n * 4 * dim];
        // Code buffers come from `Vec<u8>`s whose rows start at multiples of 4 bytes; on a
        // little-endian machine they are the f32 rows themselves unless the allocation is
        // not 4-aligned, which the copying path below covers.
        if cfg!(target_endian = "little")
            && let Ok(rows) = bytemuck::try_cast_slice::<u8, f32>(codes)
        {
            for (o, row) in out.iter_mut().zip(rows.chunks_exact(dim)) {
                *o = self.key(row);
            }
            return;
        }
        let mut row = vec![0f32; dim];
        for (o, code) in out.iter_mut().zip(codes.chunks_exact(4 * dim)) {
            decode_row(code, &mut row);
            *o = self.key(&row);
        }
    }
}

fn decode_row(code: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(code.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    quantizer: String,
    dim: usize,
    metric: String,
}

const META_VERSION: u32 = 1;

impl Quantizer for F32Quantizer {
    type Scorer<'a> = F32Scorer;

    fn name(&self) -> String {
        "Flat".into()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn code_size(&self) -> usize {
        4 * self.dim
    }

    fn is_trained(&self) -> bool {
        true
    }

    fn train(&mut self, sample: &[f32]) -> Result<()> {
        prepare_rows("sample", sample, self.dim, self.metric).map(drop).map_err(Into::into)
    }

    fn encode(&self, vectors: &[f32], codes: &mut [u8]) -> Result<()> {
        let x = prepare_rows("vectors", vectors, self.dim, self.metric)?;
        let expected = x.len() * self.code_size();
        if codes.len() != expected {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected });
        }
        codes.par_chunks_mut(4 * self.dim).zip(x.as_slice().par_chunks(self.dim)).with_min_len(256).for_each(
            |(code, row)| {
                for (b, v) in code.chunks_exact_mut(4).zip(row) {
                    b.copy_from_slice(&v.to_le_bytes());
                }
            },
        );
        Ok(())
    }

    fn codes_as_f32<'a>(&self, codes: &'a [u8]) -> Option<&'a [f32]> {
        // Little-endian f32, as `decode_row` reads them (vq-io refuses big-endian hosts).
        bytemuck::try_cast_slice(codes).ok()
    }

    fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        let size = self.code_size();
        if !codes.len().is_multiple_of(size) {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected: codes.len() / size * size });
        }
        if out.len() != codes.len() / 4 {
            return Err(
                vq_distance::Error::OutputLength { what: "out", got: out.len(), expected: codes.len() / 4 }.into()
            );
        }
        decode_row(codes, out);
        Ok(())
    }

    fn scorer(&self, query: &[f32]) -> Result<F32Scorer> {
        let mut normalized = Vec::new();
        let q = prepare_row_into("query", query, self.dim, self.metric, &mut normalized)?.to_vec();
        let kern = Kernels::active();
        let (kernel, negate) = match self.metric {
            Metric::L2 => (kern.f32_l2_sq_fn(), false),
            Metric::InnerProduct | Metric::Cosine => (kern.f32_dot_fn(), true),
        };
        Ok(F32Scorer { query: q, kernel, negate })
    }

    fn code_distance(&self, a: &[u8], b: &[u8]) -> f32 {
        let size = self.code_size();
        if a.len() < size || b.len() < size {
            return f32::NAN;
        }
        let (mut x, mut y) = (vec![0f32; self.dim], vec![0f32; self.dim]);
        decode_row(&a[..size], &mut x);
        decode_row(&b[..size], &mut y);
        let s = F32Scorer { query: x, kernel: Kernels::active().f32_l2_sq_fn(), negate: false };
        match self.metric {
            Metric::L2 => s.key(&y),
            Metric::InnerProduct | Metric::Cosine => -(Kernels::active().f32_dot_fn())(&s.query, &y),
        }
    }

    fn memory_bytes(&self) -> usize {
        0
    }

    fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let saved = Saved { quantizer: "flat".into(), dim: self.dim, metric: self.metric.name().into() };
        writer.add_json(&format!("{prefix}.meta"), META_VERSION, &saved)?;
        Ok(())
    }

    fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.meta");
        reader.check_versions(&[(&name, META_VERSION)])?;
        let saved: Saved = reader.json(&name)?;
        if saved.quantizer != "flat" {
            return Err(corrupt(&name, format!("holds a {:?} quantizer, not \"flat\"", saved.quantizer)));
        }
        let metric = sections::metric(&name, &saved.metric)?;
        F32Quantizer::new(saved.dim, metric).map_err(|e| corrupt(&name, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The aligned fast path and the copying path give the same keys as the reference.
        #[test]
        fn keys_match_the_reference(dim in 1usize..40, n in 1usize..20, seed in 0u64..1000, ip in any::<bool>()) {
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            let q = F32Quantizer::new(dim, metric).unwrap();
            let x: Vec<f32> = (0..n * dim).map(|i| ((i as u64 * 2654435761 + seed) % 97) as f32 / 9.0 - 5.0).collect();
            let mut codes = vec![0u8; n * q.code_size() + 1];
            q.encode(&x, &mut codes[..n * dim * 4]).unwrap();
            let query = &x[..dim];
            let scorer = q.scorer(query).unwrap();
            let mut aligned = vec![0f32; n];
            scorer.distances(&codes[..n * dim * 4], &mut aligned);
            // One byte in: the rows are not 4-aligned, so the copying path runs.
            codes.copy_within(..n * dim * 4, 1);
            let mut shifted = vec![0f32; n];
            scorer.distances(&codes[1..], &mut shifted);
            for (i, row) in x.chunks_exact(dim).enumerate() {
                let want = vq_distance::reference::score(metric, query, row) as f32;
                let want = metric.key_from_score(want);
                prop_assert!((aligned[i] - want).abs() <= 1e-3 * want.abs().max(1.0), "{} vs {}", aligned[i], want);
                prop_assert_eq!(aligned[i], shifted[i]);
            }
            let mut back = vec![0f32; n * dim];
            q.decode(&codes[1..=n * dim * 4], &mut back).unwrap();
            prop_assert_eq!(back, x);
        }
    }
}
