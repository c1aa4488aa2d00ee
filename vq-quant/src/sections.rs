//! Checks shared by every quantizer's `read_sections`.

use vq_distance::Metric;

use crate::{Error, Quantizer, Result};

/// The metric a saved parameter section names.
pub(crate) fn metric(section: &str, name: &str) -> Result<Metric> {
    name.parse().map_err(|_| corrupt(section, format!("unknown metric {name:?}")))
}

/// [`Error::Corrupt`] for `section`.
pub(crate) fn corrupt(section: &str, what: String) -> Error {
    Error::Corrupt { section: section.into(), what }
}

/// Rows decoded at a time by [`validate_codes`]: bounds its scratch memory.
const VALIDATE_ROWS: usize = 256;

/// Checks codes read from a file before anything searches them: `codes` must be whole codes
/// of `quantizer` (trained), and every code must decode to finite values whose squared norm
/// fits in an f32. A forged FP16/BF16 code can hold an infinity or NaN, and a huge
/// reconstruction makes inner products overflow to `inf − inf`: either gives NaN keys, which
/// sorting and heaps cannot order. Decodes in blocks, so the scratch memory is bounded
/// whatever the number of codes. `section` names the codes in the error.
pub fn validate_codes<Q: Quantizer>(quantizer: &Q, codes: &[u8], section: &str) -> Result<()> {
    let size = quantizer.code_size();
    if size == 0 || !codes.len().is_multiple_of(size) {
        return Err(corrupt(section, format!("{} bytes, not a whole number of {size}-byte codes", codes.len())));
    }
    if codes.is_empty() {
        return Ok(());
    }
    if !quantizer.is_trained() {
        return Err(corrupt(section, format!("codes saved for an untrained {}", quantizer.name())));
    }
    // Where the trained parameters bound every code's reconstruction well inside f32 (PQ, SQ),
    // no code can fail the check below: skip decoding them all, the bulk of a read's time.
    if quantizer.decoded_norm_sq_bound().is_some_and(|bound| bound <= f64::from(f32::MAX) / 2.0) {
        return Ok(());
    }
    let dim = quantizer.dim();
    let mut out = vec![0f32; VALIDATE_ROWS.min(codes.len() / size) * dim];
    for (block, chunk) in codes.chunks(VALIDATE_ROWS * size).enumerate() {
        let rows = chunk.len() / size;
        let out = &mut out[..rows * dim];
        quantizer.decode(chunk, out)?;
        for (i, row) in out.chunks_exact(dim).enumerate() {
            // f64: the check itself must not overflow.
            let norm: f64 = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            if !norm.is_finite() || norm > f64::from(f32::MAX) {
                let row = block * VALIDATE_ROWS + i;
                return Err(corrupt(
                    section,
                    format!("code {row} decodes to a non-finite vector or one whose squared norm overflows f32"),
                ));
            }
        }
    }
    Ok(())
}
