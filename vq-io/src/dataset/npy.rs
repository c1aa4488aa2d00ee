//! NumPy `.npy` headers: parsing (versions 1–3) and writing (version 1.0).

use crate::ElementType;

/// The magic string every npy file starts with.
pub(crate) const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Largest header `vq-io` reads (NumPy itself refuses more than 10,000 bytes by default).
pub(crate) const MAX_HEADER: u64 = 1 << 16;
/// Bytes the writer gives every header (magic to the newline), room for any 64-bit shape.
pub(crate) const WRITTEN_HEADER: usize = 128;
/// Deepest nesting the header parser follows before giving up.
const MAX_DEPTH: usize = 8;

/// How long the fixed prefix (magic, version, header length) is and how many header bytes
/// follow it, from the first 12 bytes (fewer if the file is shorter).
pub(crate) fn prefix(start: &[u8]) -> Result<(u8, u64, u64), String> {
    if start.len() < 10 || &start[..6] != MAGIC {
        return Err("not an npy file (no \\x93NUMPY magic)".into());
    }
    match start[6] {
        1 => Ok((1, 10, u64::from(u16::from_le_bytes([start[8], start[9]])))),
        v @ (2 | 3) => {
            let Some(b) = start.get(8..12) else { return Err("header ends inside the header length".into()) };
            Ok((v, 12, u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))))
        }
        v => Err(format!("unsupported npy format version {v}.{}", start[7])),
    }
}

/// What an npy header says.
#[derive(Debug)]
pub(crate) struct Header {
    /// The dtype descriptor, verbatim.
    pub descr: Result<ElementType, String>,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
}

#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Int(u64),
    Seq(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    None,
}

impl Value {
    fn describe(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Int(i) => i.to_string(),
            Value::Seq(_) => "a list (structured dtype)".into(),
            Value::Dict(_) => "a dict".into(),
            Value::None => "None".into(),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {} of the header dictionary", self.i))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        self.ws();
        let Some(&c) = self.s.get(self.i) else { return self.err("unexpected end") };
        match c {
            b'\'' | b'"' => {
                let start = self.i + 1;
                let Some(len) = self.s[start..].iter().position(|&x| x == c) else {
                    return self.err("unterminated string");
                };
                self.i = start + len + 1;
                Ok(Value::Str(String::from_utf8_lossy(&self.s[start..start + len]).into_owned()))
            }
            b'0'..=b'9' => {
                let mut v: u64 = 0;
                while let Some(d) = self.s.get(self.i).filter(|d| d.is_ascii_digit()) {
                    v = match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d - b'0'))) {
                        Some(v) => v,
                        None => return self.err("integer too large"),
                    };
                    self.i += 1;
                }
                // Python 2 era files write `10L`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Ok(Value::Int(v))
            }
            b'(' | b'[' => {
                let close = if c == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    if !self.eat(b',') {
                        if self.eat(close) {
                            break;
                        }
                        return self.err("expected `,` or a closing bracket");
                    }
                }
                Ok(Value::Seq(items))
            }
            b'{' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b'}') {
                        break;
                    }
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        return self.err("expected `:`");
                    }
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    if !self.eat(b',') {
                        if self.eat(b'}') {
                            break;
                        }
                        return self.err("expected `,` or `}`");
                    }
                }
                Ok(Value::Dict(items))
            }
            _ => {
                for (word, v) in [("True", Value::Bool(true)), ("False", Value::Bool(false)), ("None", Value::None)] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(v);
                    }
                }
                self.err("unexpected character")
            }
        }
    }
}

/// Parses the header dictionary (the bytes after the length field).
pub(crate) fn parse(text: &[u8]) -> Result<Header, String> {
    let mut p = Parser { s: text, i: 0 };
    let Value::Dict(items) = p.value(0)? else { return Err("the header is not a dictionary".into()) };
    p.ws();
    if p.i != text.len() {
        return p.err("unexpected text after the dictionary");
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in items {
        let Value::Str(k) = k else { return Err("a header key is not a string".into()) };
        match k.as_str() {
            "descr" => descr = Some(v),
            "fortran_order" => fortran = Some(v),
            "shape" => shape = Some(v),
            other => return Err(format!("unknown header key {other:?}")),
        }
    }
    let descr = match descr.ok_or("no 'descr' key")? {
        Value::Str(s) => ElementType::from_npy_descr(&s).ok_or(s),
        other => Err(other.describe()),
    };
    let fortran_order = match fortran.ok_or("no 'fortran_order' key")? {
        Value::Bool(b) => b,
        other => return Err(format!("'fortran_order' is {}, not a boolean", other.describe())),
    };
    let Value::Seq(dims) = shape.ok_or("no 'shape' key")? else { return Err("'shape' is not a tuple".into()) };
    let shape = dims
        .into_iter()
        .map(|d| match d {
            Value::Int(i) => Ok(i),
            other => Err(format!("shape entry {} is not a non-negative integer", other.describe())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header { descr, fortran_order, shape })
}

/// A version 1.0 header of exactly [`WRITTEN_HEADER`] bytes for a C-order `rows × dim` array
/// (`descr` a dtype descriptor); `None` if it would not fit (it always fits 64-bit shapes).
pub(crate) fn write_header(descr: &str, rows: u64, dim: u64) -> Option<Vec<u8>> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let mut out = Vec::with_capacity(WRITTEN_HEADER);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    let hlen = WRITTEN_HEADER - 10;
    if dict.len() + 1 > hlen {
        return None;
    }
    out.extend_from_slice(&u16::try_from(hlen).ok()?.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(WRITTEN_HEADER - 1, b' ');
    out.push(b'\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_headers() {
        let h = parse(b"{'descr': '<f4', 'fortran_order': False, 'shape': (100, 128), }     \n").unwrap();
        assert_eq!(h.descr.unwrap(), ElementType::F32);
        assert!(!h.fortran_order);
        assert_eq!(h.shape, [100, 128]);
        let h = parse(b"{\"shape\": (7L,), \"fortran_order\": True, \"descr\": \"|u1\"}").unwrap();
        assert_eq!(h.shape, [7]);
        assert!(h.fortran_order);
        assert_eq!(parse(b"{'descr': '<f4', 'fortran_order': False, 'shape': ()}").unwrap().shape, Vec::<u64>::new());
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            &b""[..],
            b"{",
            b"{'descr': '<f4'",
            b"{'descr': '<f4', 'fortran_order': False}",
            b"{'descr': '<f4', 'fortran_order': 1, 'shape': (1,)}",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let h = parse(b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}").unwrap();
        assert!(h.descr.is_err());
    }

    #[test]
    fn written_header_is_64_aligned_and_parses_back() {
        let h = write_header("<f2", u64::MAX, u64::MAX).unwrap();
        assert_eq!(h.len() % 64, 0);
        assert_eq!(prefix(&h).unwrap(), (1, 10, (WRITTEN_HEADER - 10) as u64));
        let back = parse(&h[10..]).unwrap();
        assert_eq!(back.shape, [u64::MAX, u64::MAX]);
        assert_eq!(back.descr.unwrap(), ElementType::F16);
    }
}
