//! Vector element types and the per-pair API.

use std::borrow::Cow;

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::simd::{INT_CHUNK, Kernels, Rows4Fn, SimdLevel, kernels, kernels_for_checked};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
}

/// A vector element type with SIMD kernels: `f32`, [`struct@f16`], [`struct@bf16`], `u8` and `i8`.
///
/// Floats accumulate in f32. `u8` and `i8` accumulate in integers, exactly; the `f32` results
/// of the generic functions are those exact integers rounded once (exact below 2²⁴), and the
/// `*_exact` functions of [`Kernels`] return them unrounded.
pub trait Element: Copy + Send + Sync + std::fmt::Debug + 'static + sealed::Sealed {
    /// Name of the type (`"f32"`, `"f16"`, …).
    const NAME: &'static str;
    /// The value as f32 (exact for every type here).
    fn to_f32(self) -> f32;
    /// `false` for NaN and infinities; integers are always finite.
    fn is_finite(self) -> bool;
    /// The values as f32: borrowed for `f32`, converted otherwise.
    #[doc(hidden)]
    fn slice_to_f32(s: &[Self]) -> Cow<'_, [f32]> {
        Cow::Owned(s.iter().map(|v| v.to_f32()).collect())
    }
    #[doc(hidden)]
    fn l2_sq_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> f32;
    #[doc(hidden)]
    fn dot_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> f32;
    #[doc(hidden)]
    fn cos_parts_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> [f32; 3];
}

macro_rules! float_element {
    ($t:ty, $field:ident, $name:literal, |$x:ident| $conv:expr $(, |$s:ident| $slice:expr)?) => {
        impl Element for $t {
            const NAME: &'static str = $name;
            $(
                #[inline]
                fn slice_to_f32($s: &[Self]) -> Cow<'_, [f32]> {
                    $slice
                }
            )?
            #[inline]
            fn to_f32(self) -> f32 {
                let $x = self;
                $conv
            }
            #[inline]
            fn is_finite(self) -> bool {
                self.is_finite()
            }
            #[inline]
            fn l2_sq_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> f32 {
                (k.$field.l2_sq)(a, b)
            }
            #[inline]
            fn dot_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> f32 {
                (k.$field.dot)(a, b)
            }
            #[inline]
            fn cos_parts_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> [f32; 3] {
                (k.$field.cos_parts)(a, b)
            }
        }
    };
}

float_element!(f32, f32, "f32", |x| x, |s| Cow::Borrowed(s));
float_element!(f16, f16, "f16", |x| x.to_f32());
float_element!(bf16, bf16, "bf16", |x| x.to_f32());

/// Exact squared L2 over any length: the level's kernel on chunks short enough for its 32-bit
/// lanes, summed in 64 bits.
///
/// The common case (one chunk) is a compare and one call; the chunk loop lives out of line so
/// that the inlined hot path keeps no loop state in callee-saved registers (at d = 128 the
/// pushes and pops of an inlined loop cost as much as a tenth of the kernel).
#[inline]
fn int_l2_sq<T>(f: fn(&[T], &[T]) -> u32, a: &[T], b: &[T]) -> u64 {
    if a.len() <= INT_CHUNK { u64::from(f(a, b)) } else { int_l2_sq_chunked(f, a, b) }
}

#[cold]
#[inline(never)]
fn int_l2_sq_chunked<T>(f: fn(&[T], &[T]) -> u32, a: &[T], b: &[T]) -> u64 {
    a.chunks(INT_CHUNK).zip(b.chunks(INT_CHUNK)).map(|(x, y)| u64::from(f(x, y))).sum()
}

/// Exact dot product over any length (see [`int_l2_sq`]).
#[inline]
fn int_dot<T>(f: fn(&[T], &[T]) -> i32, a: &[T], b: &[T]) -> i64 {
    if a.len() <= INT_CHUNK { i64::from(f(a, b)) } else { int_dot_chunked(f, a, b) }
}

#[cold]
#[inline(never)]
fn int_dot_chunked<T>(f: fn(&[T], &[T]) -> i32, a: &[T], b: &[T]) -> i64 {
    a.chunks(INT_CHUNK).zip(b.chunks(INT_CHUNK)).map(|(x, y)| i64::from(f(x, y))).sum()
}

macro_rules! int_element {
    ($t:ty, $field:ident, $name:literal) => {
        impl Element for $t {
            const NAME: &'static str = $name;
            #[inline]
            fn to_f32(self) -> f32 {
                f32::from(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                true
            }
            #[inline]
            fn l2_sq_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> f32 {
                int_l2_sq(k.$field.l2_sq, a, b) as f32
            }
            #[inline]
            fn dot_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> f32 {
                int_dot(k.$field.dot, a, b) as f32
            }
            #[inline]
            fn cos_parts_unchecked(k: &Kernels, a: &[Self], b: &[Self]) -> [f32; 3] {
                let f = k.$field.dot;
                [int_dot(f, a, b) as f32, int_dot(f, a, a) as f32, int_dot(f, b, b) as f32]
            }
        }
    };
}

int_element!(u8, u8, "u8");
int_element!(i8, i8, "i8");

/// Cosine similarity from `[a·b, a·a, b·b]`; 0 when either vector is zero.
#[inline]
pub(crate) fn cosine_from_parts([ab, aa, bb]: [f32; 3]) -> f32 {
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0)
}

#[inline]
fn same_len<T>(a: &[T], b: &[T]) -> Result<()> {
    if a.len() == b.len() { Ok(()) } else { Err(Error::LengthMismatch { left: a.len(), right: b.len() }) }
}

/// The kernels of one SIMD level.
///
/// [`Kernels::active`] is the set every free function of this crate uses (chosen once per
/// process, see [`crate::simd_level`]); [`Kernels::for_level`] gives any other level this CPU
/// can run, so tests and benchmarks can compare levels in one process.
impl Kernels {
    /// The kernels in use in this process.
    pub fn active() -> &'static Kernels {
        kernels()
    }

    /// The kernels of `level`, or `None` if this CPU cannot run it.
    pub fn for_level(level: SimdLevel) -> Option<Kernels> {
        kernels_for_checked(level)
    }

    /// The level these kernels are compiled for.
    pub fn level(&self) -> SimdLevel {
        self.level
    }

    /// Squared Euclidean distance.
    #[inline]
    pub fn l2_sq<T: Element>(&self, a: &[T], b: &[T]) -> Result<f32> {
        same_len(a, b)?;
        Ok(T::l2_sq_unchecked(self, a, b))
    }

    /// Dot (inner) product.
    #[inline]
    pub fn dot<T: Element>(&self, a: &[T], b: &[T]) -> Result<f32> {
        same_len(a, b)?;
        Ok(T::dot_unchecked(self, a, b))
    }

    /// Cosine similarity, in `[-1, 1]`; 0 when either vector is all zeros.
    #[inline]
    pub fn cosine<T: Element>(&self, a: &[T], b: &[T]) -> Result<f32> {
        same_len(a, b)?;
        Ok(cosine_from_parts(T::cos_parts_unchecked(self, a, b)))
    }

    /// The score of `metric` (see [`Metric`] for the convention).
    #[inline]
    pub fn score<T: Element>(&self, metric: Metric, a: &[T], b: &[T]) -> Result<f32> {
        match metric {
            Metric::L2 => self.l2_sq(a, b),
            Metric::InnerProduct => self.dot(a, b),
            Metric::Cosine => self.cosine(a, b),
        }
    }

    /// Scores `query` against each of `rows` (scattered f32 vectors, as a re-ranking stage
    /// reads them), each score equal to the bit to [`Kernels::score`]'s: four rows a pass
    /// where this level's four-row kernel pays at this dimension (squared L2 and inner product;
    /// see [`Kernels::f32_rows4_fn`]), one at a time otherwise.
    pub fn score_rows(&self, metric: Metric, query: &[f32], rows: &[&[f32]]) -> Result<Vec<f32>> {
        for row in rows {
            same_len(query, row)?;
        }
        let four = self.f32_rows4_fn(metric, query.len());
        let mut out = Vec::with_capacity(rows.len());
        let rest = match four {
            Some(four) => {
                let mut quads = rows.chunks_exact(4);
                for quad in &mut quads {
                    out.extend(four(query, [quad[0], quad[1], quad[2], quad[3]]));
                }
                quads.remainder()
            }
            None => rows,
        };
        for row in rest {
            out.push(self.score(metric, query, row)?);
        }
        Ok(out)
    }

    /// Scores `query` against each of the `base.len() / query.len()` contiguous vectors of
    /// `base`, writing one score per vector into `out`.
    pub fn score_one_to_many<T: Element>(
        &self,
        metric: Metric,
        query: &[T],
        base: &[T],
        out: &mut [f32],
    ) -> Result<()> {
        let dim = query.len();
        let n = crate::rows::check_shape("base", base, dim)?;
        if out.len() != n {
            return Err(Error::OutputLength { what: "out", got: out.len(), expected: n });
        }
        let rows = base.chunks_exact(dim).zip(out.iter_mut());
        match metric {
            Metric::L2 => rows.for_each(|(y, o)| *o = T::l2_sq_unchecked(self, query, y)),
            Metric::InnerProduct => rows.for_each(|(y, o)| *o = T::dot_unchecked(self, query, y)),
            Metric::Cosine => {
                let qq = T::dot_unchecked(self, query, query);
                rows.for_each(|(y, o)| {
                    *o = cosine_from_parts([T::dot_unchecked(self, query, y), qq, T::dot_unchecked(self, y, y)]);
                });
            }
        }
        Ok(())
    }

    /// The f32 squared-L2 kernel of this level as a plain function pointer, for the hot loops
    /// of index crates that already guarantee equal lengths. Given slices of different
    /// lengths it compares the shorter length (memory-safe, but a caller bug).
    pub fn f32_l2_sq_fn(&self) -> fn(&[f32], &[f32]) -> f32 {
        self.f32.l2_sq
    }

    /// The f32 dot-product kernel of this level as a plain function pointer (see
    /// [`Kernels::f32_l2_sq_fn`]).
    pub fn f32_dot_fn(&self) -> fn(&[f32], &[f32]) -> f32 {
        self.f32.dot
    }

    /// This level's kernel for one f32 vector against four rows, squared L2, when it has one:
    /// each of the four sums is [`Kernels::f32_l2_sq_fn`]'s to the bit, and the vector is
    /// loaded once for the four rows (`None`: call the one-pair kernel four times). See
    /// [`Kernels::f32_rows4_fn`] for where it pays.
    pub fn f32_l2_sq_rows4_fn(&self) -> Option<Rows4Fn> {
        self.rows4.as_ref().map(|k| k.l2_sq)
    }

    /// [`Kernels::f32_l2_sq_rows4_fn`] for the dot product.
    pub fn f32_dot_rows4_fn(&self) -> Option<Rows4Fn> {
        self.rows4.as_ref().map(|k| k.dot)
    }

    /// The four-row kernel of `metric`'s f32 score (squared L2 or inner product; `None` for
    /// cosine, which needs the norms) where this level has one that pays at `dim`: it was
    /// measured faster than four one-pair calls, scoring a graph node's neighbours, at every
    /// dimension at AVX-512 and from 512 at AVX2 (whose 16 registers hold three rows'
    /// accumulators, so its four-row pass spills, which costs below that).
    pub fn f32_rows4_fn(&self, metric: Metric, dim: usize) -> Option<Rows4Fn> {
        let k = self.rows4.as_ref().filter(|k| dim >= k.min_dim)?;
        match metric {
            Metric::L2 => Some(k.l2_sq),
            Metric::InnerProduct => Some(k.dot),
            Metric::Cosine => None,
        }
    }

    /// Exact squared L2 distance of two `u8` vectors.
    #[inline]
    pub fn l2_sq_u8_exact(&self, a: &[u8], b: &[u8]) -> Result<u64> {
        same_len(a, b)?;
        Ok(int_l2_sq(self.u8.l2_sq, a, b))
    }

    /// Exact dot product of two `u8` vectors.
    #[inline]
    pub fn dot_u8_exact(&self, a: &[u8], b: &[u8]) -> Result<u64> {
        same_len(a, b)?;
        // Every product is non-negative, so the sum is too.
        Ok(int_dot(self.u8.dot, a, b) as u64)
    }

    /// Exact squared L2 distance of two `i8` vectors.
    #[inline]
    pub fn l2_sq_i8_exact(&self, a: &[i8], b: &[i8]) -> Result<u64> {
        same_len(a, b)?;
        Ok(int_l2_sq(self.i8.l2_sq, a, b))
    }

    /// Exact dot product of two `i8` vectors.
    #[inline]
    pub fn dot_i8_exact(&self, a: &[i8], b: &[i8]) -> Result<i64> {
        same_len(a, b)?;
        Ok(int_dot(self.i8.dot, a, b))
    }
}

/// Squared Euclidean distance with the active kernels.
///
/// ```
/// let d = vq_distance::l2_sq(&[1.0f32, 2.0, 3.0], &[1.0, 0.0, 3.0]).unwrap();
/// assert_eq!(d, 4.0);
/// ```
#[inline]
pub fn l2_sq<T: Element>(a: &[T], b: &[T]) -> Result<f32> {
    kernels().l2_sq(a, b)
}

/// Dot (inner) product with the active kernels.
#[inline]
pub fn dot<T: Element>(a: &[T], b: &[T]) -> Result<f32> {
    kernels().dot(a, b)
}

/// Cosine similarity with the active kernels; 0 when either vector is all zeros.
#[inline]
pub fn cosine<T: Element>(a: &[T], b: &[T]) -> Result<f32> {
    kernels().cosine(a, b)
}

/// The score of `metric` between `a` and `b` with the active kernels.
#[inline]
pub fn score<T: Element>(metric: Metric, a: &[T], b: &[T]) -> Result<f32> {
    kernels().score(metric, a, b)
}

/// Scores `query` against every vector of `base` (contiguous, `query.len()` wide) into `out`.
pub fn score_one_to_many<T: Element>(metric: Metric, query: &[T], base: &[T], out: &mut [f32]) -> Result<()> {
    kernels().score_one_to_many(metric, query, base, out)
}
