//! A dense row-major matrix: what every dataset reader returns.

use crate::{Element, Error, Result};

/// `rows × dim` values in row-major order, `dim ≥ 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    data: Vec<T>,
    dim: usize,
}

impl<T: Element> Matrix<T> {
    /// Wraps `data` as rows of `dim` values; `dim` must be at least 1 and divide `data.len()`.
    pub fn new(data: Vec<T>, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidArgument { what: "dimension must be at least 1".into() });
        }
        if !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument {
                what: format!("{} values are not a whole number of rows of dimension {dim}", data.len()),
            });
        }
        Ok(Self { data, dim })
    }

    /// Built by the readers, which checked the shape.
    pub(crate) fn from_parts(data: Vec<T>, dim: usize) -> Self {
        debug_assert!(dim >= 1 && data.len().is_multiple_of(dim));
        Self { data, dim }
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// All values, row after row.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// Row `i`, `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[T]> {
        self.data.get(i.checked_mul(self.dim)?..(i + 1).checked_mul(self.dim)?)
    }

    /// The rows in order.
    pub fn iter_rows(&self) -> std::slice::ChunksExact<'_, T> {
        self.data.chunks_exact(self.dim)
    }

    /// The values, giving up the shape.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The values and the dimension.
    pub fn into_parts(self) -> (Vec<T>, usize) {
        (self.data, self.dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked() {
        assert!(matches!(Matrix::new(vec![1.0f32; 4], 0), Err(Error::InvalidArgument { .. })));
        assert!(matches!(Matrix::new(vec![1.0f32; 5], 2), Err(Error::InvalidArgument { .. })));
        let m = Matrix::new(vec![1u8, 2, 3, 4, 5, 6], 3).unwrap();
        assert_eq!((m.rows(), m.dim()), (2, 3));
        assert_eq!(m.row(1), Some(&[4u8, 5, 6][..]));
        assert_eq!(m.row(2), None);
        assert_eq!(m.row(usize::MAX), None);
        assert_eq!(m.iter_rows().count(), 2);
        assert_eq!(Matrix::new(Vec::<u8>::new(), 7).unwrap().rows(), 0);
    }
}
