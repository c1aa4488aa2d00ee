//! The element types files hold.

use half::{bf16, f16};

/// The element type of a file, a container array section or a [`Matrix`](crate::Matrix),
/// known at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElementType {
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// IEEE half precision ([`half::f16`]).
    F16,
    /// bfloat16 ([`half::bf16`]); no npy dtype.
    Bf16,
    /// `u8`.
    U8,
    /// `i8`.
    I8,
    /// `u16`.
    U16,
    /// `i16`.
    I16,
    /// `u32`.
    U32,
    /// `i32`.
    I32,
    /// `u64`.
    U64,
    /// `i64`.
    I64,
}

impl ElementType {
    /// Every element type, in the order of their container codes.
    pub const ALL: [ElementType; 12] = [
        Self::F32,
        Self::F64,
        Self::F16,
        Self::Bf16,
        Self::U8,
        Self::I8,
        Self::U16,
        Self::I16,
        Self::U32,
        Self::I32,
        Self::U64,
        Self::I64,
    ];

    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::F16 | Self::Bf16 | Self::U16 | Self::I16 => 2,
            Self::F32 | Self::U32 | Self::I32 => 4,
            Self::F64 | Self::U64 | Self::I64 => 8,
        }
    }

    /// The Rust name (`"f32"`, `"u8"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::U64 => "u64",
            Self::I64 => "i64",
        }
    }

    /// The little-endian NumPy dtype descriptor, `None` for bf16.
    pub const fn npy_descr(self) -> Option<&'static str> {
        Some(match self {
            Self::F32 => "<f4",
            Self::F64 => "<f8",
            Self::F16 => "<f2",
            Self::Bf16 => return None,
            Self::U8 => "|u1",
            Self::I8 => "|i1",
            Self::U16 => "<u2",
            Self::I16 => "<i2",
            Self::U32 => "<u4",
            Self::I32 => "<i4",
            Self::U64 => "<u8",
            Self::I64 => "<i8",
        })
    }

    /// Parses a NumPy dtype descriptor (`"<f4"`, `"|u1"`, ...); `None` when unsupported.
    pub fn from_npy_descr(descr: &str) -> Option<Self> {
        let (order, code) = descr.split_at_checked(1)?;
        let t = Self::ALL.into_iter().find(|t| t.npy_descr().is_some_and(|d| d[1..] == *code))?;
        // One-byte types accept every byte-order mark; wider ones must be little-endian.
        let ok = match order {
            "<" => true,
            "|" | "=" | ">" => t.size() == 1 || (order == "=" && cfg!(target_endian = "little")),
            _ => false,
        };
        ok.then_some(t)
    }

    /// The code a container section table stores for this type (1-based; 0 means "no
    /// element type").
    pub(crate) fn code(self) -> u8 {
        Self::ALL.iter().position(|&t| t == self).map_or(0, |i| i as u8 + 1)
    }

    /// The type with container code `code`.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A plain little-endian number type files hold: `f32`, `f64`, [`f16`](struct@f16), [`bf16`](struct@bf16), `u8`,
/// `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`. Sealed.
pub trait Element: bytemuck::Pod + Send + Sync + sealed::Sealed + 'static {
    /// The run-time tag of this type.
    const TYPE: ElementType;
    /// The value as `f32` (rounded where `f32` cannot hold it exactly).
    fn to_f32(self) -> f32;
    /// `x` as this type, as Rust's `as` converts (rounded, saturated; exact for `f32`).
    fn from_f32(x: f32) -> Self;
}

macro_rules! element {
    ($t:ty, $tag:ident, $x:ident => $conv:expr, $y:ident => $back:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const TYPE: ElementType = ElementType::$tag;
            #[inline(always)]
            fn to_f32(self) -> f32 {
                let $x = self;
                $conv
            }
            #[inline(always)]
            fn from_f32($y: f32) -> Self {
                $back
            }
        }
    };
}

element!(f32, F32, x => x, y => y);
element!(f64, F64, x => x as f32, y => f64::from(y));
element!(f16, F16, x => x.to_f32(), y => f16::from_f32(y));
element!(bf16, Bf16, x => x.to_f32(), y => bf16::from_f32(y));
element!(u8, U8, x => f32::from(x), y => y as u8);
element!(i8, I8, x => f32::from(x), y => y as i8);
element!(u16, U16, x => f32::from(x), y => y as u16);
element!(i16, I16, x => f32::from(x), y => y as i16);
element!(u32, U32, x => x as f32, y => y as u32);
element!(i32, I32, x => x as f32, y => y as i32);
element!(u64, U64, x => x as f32, y => y as u64);
element!(i64, I64, x => x as f32, y => y as i64);

/// Decodes little-endian bytes of type `from` into `out` (cleared first) as `T`: a plain copy
/// when `T` is `from`, a conversion when `T` is `f32`; `false` for any other pair.
///
/// `bytes.len()` must be a multiple of `from.size()` (checked by the callers).
pub(crate) fn decode_into<T: Element>(from: ElementType, bytes: &[u8], out: &mut Vec<T>) -> bool {
    debug_assert_eq!(bytes.len() % from.size(), 0);
    if from == T::TYPE {
        let n = bytes.len() / from.size();
        let start = out.len();
        out.resize(start + n, T::zeroed());
        bytemuck::cast_slice_mut::<T, u8>(&mut out[start..]).copy_from_slice(bytes);
        return true;
    }
    if T::TYPE != ElementType::F32 {
        return false;
    }
    fn conv<S: Element, T: Element>(bytes: &[u8], out: &mut Vec<T>) {
        // `T` is f32 here (checked by the caller), so `from_f32` is the identity.
        match bytemuck::try_cast_slice::<u8, S>(bytes) {
            Ok(src) => out.extend(src.iter().map(|&s| T::from_f32(s.to_f32()))),
            // Unaligned source: read element by element.
            Err(_) => out.extend(
                bytes.chunks_exact(size_of::<S>()).map(|s| T::from_f32(bytemuck::pod_read_unaligned::<S>(s).to_f32())),
            ),
        }
    }
    match from {
        ElementType::F32 => conv::<f32, T>(bytes, out),
        ElementType::F64 => conv::<f64, T>(bytes, out),
        ElementType::F16 => conv::<f16, T>(bytes, out),
        ElementType::Bf16 => conv::<bf16, T>(bytes, out),
        ElementType::U8 => conv::<u8, T>(bytes, out),
        ElementType::I8 => conv::<i8, T>(bytes, out),
        ElementType::U16 => conv::<u16, T>(bytes, out),
        ElementType::I16 => conv::<i16, T>(bytes, out),
        ElementType::U32 => conv::<u32, T>(bytes, out),
        ElementType::I32 => conv::<i32, T>(bytes, out),
        ElementType::U64 => conv::<u64, T>(bytes, out),
        ElementType::I64 => conv::<i64, T>(bytes, out),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_start_at_one() {
        for t in ElementType::ALL {
            assert!(t.code() >= 1);
            assert_eq!(ElementType::from_code(t.code()), Some(t));
        }
        assert_eq!(ElementType::from_code(0), None);
        assert_eq!(ElementType::from_code(13), None);
    }

    #[test]
    fn npy_descriptors() {
        assert_eq!(ElementType::from_npy_descr("<f4"), Some(ElementType::F32));
        assert_eq!(ElementType::from_npy_descr("|u1"), Some(ElementType::U8));
        assert_eq!(ElementType::from_npy_descr("<u1"), Some(ElementType::U8));
        assert_eq!(ElementType::from_npy_descr(">i1"), Some(ElementType::I8));
        assert_eq!(ElementType::from_npy_descr(">f4"), None);
        assert_eq!(ElementType::from_npy_descr("<c8"), None);
        assert_eq!(ElementType::from_npy_descr(""), None);
        assert_eq!(ElementType::from_npy_descr("<"), None);
        assert_eq!(ElementType::from_npy_descr("é4"), None);
    }

    #[test]
    fn decode_copies_same_type_and_converts_to_f32() {
        let bytes = [1u8, 0, 2, 0];
        let mut same: Vec<u16> = Vec::new();
        assert!(decode_into(ElementType::U16, &bytes, &mut same));
        assert_eq!(same, [1, 2]);
        let mut f: Vec<f32> = Vec::new();
        assert!(decode_into(ElementType::U8, &bytes, &mut f));
        assert_eq!(f, [1.0, 0.0, 2.0, 0.0]);
        let mut wrong: Vec<i32> = Vec::new();
        assert!(!decode_into(ElementType::U8, &bytes, &mut wrong));
    }
}
