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
    validate_code_blocks(quantizer, [codes], section)
}

/// [`validate_codes`] of several blocks of whole codes (an inverted file's lists, each
/// checked as one block): the trained parameters' bound on every reconstruction is computed
/// once, not per block (per list it was most of reading a 1,024-list IVF-PQ: 98 k
/// multiply-adds a list at m = 48).
pub fn validate_code_blocks<'a, Q: Quantizer>(
    quantizer: &Q,
    blocks: impl IntoIterator<Item = &'a [u8]>,
    section: &str,
) -> Result<()> {
    let mut bounded = None;
    blocks.into_iter().try_for_each(|codes| validate_block(quantizer, codes, section, &mut bounded))
}

/// One block of [`validate_code_blocks`]; `bounded` caches whether the quantizer's bound
/// settles every code.
fn validate_block<Q: Quantizer>(quantizer: &Q, codes: &[u8], section: &str, bounded: &mut Option<bool>) -> Result<()> {
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
    let within = || quantizer.decoded_norm_sq_bound().is_some_and(|bound| bound <= f64::from(f32::MAX) / 2.0);
    if *bounded.get_or_insert_with(within) {
        return Ok(());
    }
    let dim = quantizer.dim();
    // A row whose every |x| is at most sqrt(f32::MAX / 2 dim) has a squared norm within half
    // of f32's range: compared as bits (ordered like the magnitudes; a NaN or an infinity
    // lies above any finite value), one vectorized integer maximum per row settles nearly
    // every row of a real file; the rest get the exact sum.
    let settled = (f32::MAX / (2.0 * dim as f32)).sqrt().to_bits();
    let check = |rows: &[f32], first: usize| {
        for (i, row) in rows.chunks_exact(dim).enumerate() {
            if row.iter().fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff)) <= settled {
                continue;
            }
            // f64: the check itself must not overflow.
            let norm: f64 = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            if !norm.is_finite() || norm > f64::from(f32::MAX) {
                return Err(corrupt(
                    section,
                    format!(
                        "code {} decodes to a non-finite vector or one whose squared norm overflows f32",
                        first + i
                    ),
                ));
            }
        }
        Ok(())
    };
    // Raw f32 codes are checked where they lie.
    if let Some(checked) = quantizer.check_codes(codes) {
        return checked.map_err(|i| corrupt(section, format!("code {i} holds a value no encoder writes")));
    }
    if let Some(values) = quantizer.codes_as_f32(codes) {
        return check(values, 0);
    }
    let mut out = vec![0f32; VALIDATE_ROWS.min(codes.len() / size) * dim];
    for (block, chunk) in codes.chunks(VALIDATE_ROWS * size).enumerate() {
        let rows = chunk.len() / size;
        let out = &mut out[..rows * dim];
        quantizer.decode(chunk, out)?;
        check(out, block * VALIDATE_ROWS)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::F32Quantizer;
    use vq_distance::Metric;

    fn codes_of(rows: &[[f32; 8]]) -> Vec<u8> {
        rows.iter().flatten().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Rows past the one-maximum shortcut still get the exact check: large values whose
    /// squares sum within f32 pass, every square within f32 but their sum past it fails, as
    /// do an infinity and a NaN — at any row of a block, whether the f32 codes are read in
    /// place (aligned) or decoded block by block (not aligned for f32).
    #[test]
    fn rows_past_the_shortcut_get_the_exact_norm() {
        let q = F32Quantizer::new(8, Metric::L2).unwrap();
        let big = (f32::MAX / 16.0).sqrt() * 1.3; // past the shortcut; 8 of its squares fit
        let overflow = f32::MAX.sqrt() * 0.9; // each square fits, the eight together do not
        let mut rows = vec![[1.0f32; 8]; 300];
        rows[7] = [big, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, big];
        rows[8] = [-big; 8];
        assert!(8.0 * f64::from(big) * f64::from(big) <= f64::from(f32::MAX));
        // The codes at an offset of 0 (aligned, read in place) and of 1 byte (decoded).
        let placed = |rows: &[[f32; 8]], offset: usize| {
            let mut buf: Vec<f32> = vec![0.0; rows.len() * 8 + 1];
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
            bytes[offset..offset + rows.len() * 32].copy_from_slice(&codes_of(rows));
            (buf, offset, rows.len() * 32)
        };
        for offset in [0, 1] {
            let (buf, at, len) = placed(&rows, offset);
            let codes = &bytemuck::cast_slice::<f32, u8>(&buf)[at..at + len];
            assert_eq!(q.codes_as_f32(codes).is_some(), offset == 0);
            assert!(validate_codes(&q, codes, "c").is_ok());
            for (row, bad) in [(3, overflow), (270, -overflow), (0, f32::INFINITY), (299, f32::NAN)] {
                let mut forged = rows.clone();
                forged[row] = [bad; 8];
                let (buf, at, len) = placed(&forged, offset);
                let codes = &bytemuck::cast_slice::<f32, u8>(&buf)[at..at + len];
                let err = validate_codes(&q, codes, "c").unwrap_err().to_string();
                assert!(err.contains(&format!("code {row} ")), "offset {offset}, {bad}: {err}");
            }
        }
    }
}
