//! Input checks shared by every quantizer: whole rows, finite values, unit length for cosine.

use std::borrow::Cow;

use vq_distance::Metric;

use crate::{Error, Result};

/// Checks that `data` is whole rows of `dim` finite values and, for [`Metric::Cosine`],
/// returns the rows scaled to unit length (borrowed unchanged otherwise).
///
/// Every quantizer passes its training sample, the vectors it encodes and its queries through
/// this, so cosine codes always approximate unit vectors.
pub fn prepare_rows<'a>(what: &'static str, data: &'a [f32], dim: usize, metric: Metric) -> Result<Cow<'a, [f32]>> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::Dimension { what, len: data.len(), dim });
    }
    for (row, v) in data.chunks_exact(dim).enumerate() {
        if let Some(component) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite { what, row, component });
        }
    }
    if metric != Metric::Cosine {
        return Ok(Cow::Borrowed(data));
    }
    let mut out = data.to_vec();
    for (row, v) in out.chunks_exact_mut(dim).enumerate() {
        let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(Error::ZeroNorm { what, row });
        }
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ragged_non_finite_and_zero_norm() {
        assert!(matches!(prepare_rows("v", &[1.0; 5], 2, Metric::L2), Err(Error::Dimension { len: 5, dim: 2, .. })));
        assert!(matches!(
            prepare_rows("v", &[1.0, 2.0, f32::NAN, 0.0], 2, Metric::L2),
            Err(Error::NonFinite { row: 1, component: 0, .. })
        ));
        assert!(matches!(
            prepare_rows("v", &[1.0, 0.0, 0.0, 0.0], 2, Metric::Cosine),
            Err(Error::ZeroNorm { row: 1, .. })
        ));
    }

    #[test]
    fn cosine_rows_come_back_unit_length_and_others_untouched() {
        let data = [3.0, 4.0, 0.0, -2.0];
        let l2 = prepare_rows("v", &data, 2, Metric::L2).unwrap();
        assert!(matches!(l2, Cow::Borrowed(_)));
        let cos = prepare_rows("v", &data, 2, Metric::Cosine).unwrap();
        assert_eq!(&cos[..], &[0.6, 0.8, 0.0, -1.0]);
    }
}
