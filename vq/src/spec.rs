//! Factory strings, parsed into typed specs: Faiss' syntax for every index vq has.
//!
//! A spec is comma-separated components, read left to right:
//!
//! ```text
//! spec    := [ transform "," ] base [ "," refine ]
//! transform := "OPQ" m [ "_" d ]          (only before "IVF…")
//!          | "PCA" d | "PCAR" d           (before any base)
//! base    := "Flat" | codec | "HNSW" m [ "," ( "Flat" | codec ) ]
//!          | "IVF" nlist [ "_HNSW" m ] "," ( "Flat" | sq | "PQ" m [ "x" nbits ] | "PQ" m "x4fs" )
//! codec   := "SQ8" | "SQ6" | "SQ4" | "SQ4U" | "SQfp16" | "SQbf16"
//!          | "PQ" m [ "x" nbits ] | "PQ" m "x4fs" | "OPQ" m [ "_" d ] "," "PQ" m [ "x" nbits ]
//! refine  := "RFlat" | "Refine(" ( "Flat" | sq ) ")"
//! ```
//!
//! A transform before an inverted file (`OPQ16,IVF1024,PQ16`, Faiss' `IndexPreTransform`) rotates
//! every vector and query before the coarse quantizer and the codes see it; `OPQ16,PQ16`
//! (without `IVF`) is the OPQ codec, whose rotation belongs to the quantizer. `PCA64` projects
//! every vector and query to 64 dimensions before any index (`PCAR64`: then a random rotation
//! of those 64, Faiss' `PCAR`).
//!
//! `PQ{m}x4fs` (4-bit PQ in the fast-scan layout) is a flat scan or IVF lists
//! (`IVF1024,PQ64x4fs`, with refine the ScaNN-style index): graphs score one code at a time.
//!
//! Every spec prints back ([`Display`](std::fmt::Display)) in one canonical spelling that parses
//! to the same value: `PQ16x8` prints as `PQ16`, `HNSW32,Flat` as `HNSW32`, `Refine(Flat)` as
//! `RFlat`. Faiss spellings that change nothing in vq are accepted and dropped: a leading
//! `IDMap,` / `IDMap2,` (every vq index takes ids and reconstructs by id), PQ's `np` suffix (no
//! polysemous training), and `IVF{n}(HNSW{m})` reads as `IVF{n}_HNSW{m}`.

use std::fmt;
use std::str::FromStr;

use vq_quant::SqType;

/// What the factory accepts, listed in every parse error.
pub const ACCEPTED: &str = "Flat | SQ8|SQ6|SQ4|SQ4U|SQfp16|SQbf16 | PQ{m}[x{nbits}] | PQ{m}x4fs | OPQ{m}[_{d}],PQ{m}[x{nbits}] | RaBitQ[{bits}] | RaBitQfs[{bits}] \
                            | HNSW{m}[,Flat|,SQ…|,PQ…|,OPQ…] | [OPQ{m}[_{d}],]IVF{nlist}[_HNSW{m}],Flat|SQ…|PQ…|PQ{m}x4fs|RaBitQ[{bits}]|RaBitQfs[{bits}] — each optionally after PCA{d}, or PCAR{d}, and followed by ,RFlat or ,Refine(Flat|SQ…)";

/// Why `HNSW{m},RaBitQ` is refused (by the parser, and by the factory for a spec built in code).
pub(crate) const HNSW_OVER_RABITQ: &str =
    "graphs are not built over RaBitQ codes: use RaBitQ, RaBitQfs or IVF{nlist},RaBitQ (with ,RFlat to re-rank)";

/// A factory string that does not parse: the bad token and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index spec {spec:?}: {what} at {token:?} (accepted: {accepted})")]
pub struct SpecError {
    /// The whole string.
    pub spec: String,
    /// The component that failed.
    pub token: String,
    /// What was wrong with it.
    pub what: String,
    /// What the factory accepts.
    pub accepted: &'static str,
}

/// How vectors are compressed: a `vq-quant` quantizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecSpec {
    /// A scalar quantizer (`SQ8`, `SQfp16`, …).
    Sq(SqType),
    /// Product quantization: `m` sub-quantizers of `nbits` bits (`PQ16`, `PQ32x4`).
    Pq {
        /// Sub-quantizers.
        m: usize,
        /// Bits per sub-quantizer id (Faiss' default 8).
        nbits: u32,
    },
    /// 4-bit product quantization in the fast-scan layout (`PQ32x4fs`, Faiss'
    /// `IndexPQFastScan`): the same codes as `PQ{m}x4`, scanned 32 at a time by byte shuffles
    /// against a byte-quantized table.
    PqFastScan {
        /// Sub-quantizers.
        m: usize,
    },
    /// A learned rotation before product quantization (`OPQ16,PQ16`).
    Opq {
        /// Sub-quantizers (the rotation is trained for this `m`).
        m: usize,
        /// Bits per sub-quantizer id.
        nbits: u32,
        /// Faiss' output dimension (`OPQ16_64`). vq's OPQ rotates within the input space, so
        /// the factory accepts only the input dimension here and then drops it (canonical form).
        d: Option<usize>,
    },
    /// RaBitQ (`RaBitQ`, Faiss' `IndexRaBitQ` / `IndexIVFRaBitQ`): one bit per dimension after
    /// a random rotation, plus three floats, scored by an unbiased estimate; `RaBitQ{bits}`
    /// (2 to 9, Faiss' spelling) is extended RaBitQ, `bits` bits per dimension.
    RaBitQ {
        /// Bits per dimension, `1 ..= 9`.
        bits: u8,
    },
    /// RaBitQ codes whose bits are scanned in the fast-scan layout (`RaBitQfs`, Faiss'
    /// `IndexRaBitQFastScan`): 32 codes at a time by byte shuffles against the query's
    /// byte-quantized nibble tables; flat or in inverted lists (`IVF1024,RaBitQfs`). With
    /// more than one bit (`RaBitQfs4`, `IVF1024,RaBitQfs4`, as Faiss' `IndexRaBitQFastScan` and
    /// `IndexIVFRaBitQFastScan` with `nb_bits`), the sign bits are scanned so and bound each
    /// code's key; the codes they pass are scored over every plane.
    RaBitQFastScan {
        /// Bits per dimension, 1 to 9.
        bits: u8,
    },
}

/// The vectors under an HNSW graph or in inverted lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageSpec {
    /// Full-precision f32.
    Flat,
    /// Codes of a quantizer.
    Codec(CodecSpec),
}

/// The index a search runs on, before any refine stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseSpec {
    /// Exact search over f32 vectors (Faiss `IndexFlat`).
    Flat,
    /// Exhaustive scan over codes (Faiss `IndexScalarQuantizer`, `IndexPQ`).
    Codes(CodecSpec),
    /// A graph (Faiss `IndexHNSWFlat`, `IndexHNSWSQ`, `IndexHNSWPQ`).
    Hnsw {
        /// Links per node (`HNSW32` → 32).
        m: usize,
        /// What the graph stores.
        storage: StorageSpec,
    },
    /// An inverted file (Faiss `IndexIVFFlat`, `IndexIVFScalarQuantizer`, `IndexIVFPQ`,
    /// `IndexIVFPQFastScan`): residual codes for SQ and PQ (and, by default, PQ…x4fs).
    Ivf {
        /// Lists (`IVF1024` → 1024).
        nlist: usize,
        /// `IVF65536_HNSW32` → `Some(32)`: an HNSW graph of 32 links per node over the
        /// centroids finds the lists; `None`: every centroid is scored.
        coarse_hnsw: Option<usize>,
        /// What the lists store: f32 vectors, SQ, PQ or fast-scan PQ codes (no OPQ).
        storage: StorageSpec,
    },
}

/// A transform applied to every vector and query before the index sees them (Faiss'
/// `IndexPreTransform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformSpec {
    /// An OPQ rotation trained for `m` sub-spaces (`OPQ16,IVF1024,PQ16`), as Faiss'
    /// `OPQMatrix`: learned on the training set first, then the index is trained on the
    /// rotated vectors.
    Opq {
        /// Sub-spaces the rotation is trained for.
        m: usize,
        /// Faiss' output dimension (`OPQ16_64`): below the input's, the transform projects to
        /// it (a `d × d_in` matrix of orthonormal rows); equal to it, it is dropped by the
        /// factory (canonical form).
        d: Option<usize>,
    },
    /// A PCA projection to `d` dimensions (`PCA64`), followed by a random rotation of them
    /// (`PCAR64`) when `random_rotation`, as Faiss' `PCAMatrix`.
    Pca {
        /// The output dimension.
        d: usize,
        /// `PCAR`: rotate the projection at random.
        random_rotation: bool,
    },
}

/// Where refine re-scores candidates from: f32 vectors, or cheaper scalar codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefineSpec {
    /// The original f32 vectors (`RFlat`, Faiss `IndexRefineFlat`).
    Flat,
    /// Scalar-quantized copies (`Refine(SQfp16)`, `Refine(SQ8)`: Milvus' `refine_type`).
    Sq(SqType),
}

/// A parsed factory string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexSpec {
    /// A transform before the index (`OPQ16,IVF…`), if any.
    pub transform: Option<TransformSpec>,
    /// The searched index.
    pub base: BaseSpec,
    /// The optional refine stage: `refine_k · k` candidates of the base index are re-scored.
    pub refine: Option<RefineSpec>,
}

impl IndexSpec {
    /// A spec without refine.
    pub fn new(base: BaseSpec) -> Self {
        IndexSpec { transform: None, base, refine: None }
    }

    /// This spec behind a transform.
    pub fn with_transform(mut self, transform: TransformSpec) -> Self {
        self.transform = Some(transform);
        self
    }

    /// This spec with a refine stage.
    pub fn with_refine(mut self, refine: RefineSpec) -> Self {
        self.refine = Some(refine);
        self
    }
}

impl fmt::Display for CodecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Faiss' default of 8 bits is left out, as Faiss users write it.
        let nbits = |nbits: u32| if nbits == 8 { String::new() } else { format!("x{nbits}") };
        match *self {
            CodecSpec::Sq(t) => f.write_str(t.factory_name()),
            CodecSpec::Pq { m, nbits: b } => write!(f, "PQ{m}{}", nbits(b)),
            CodecSpec::PqFastScan { m } => write!(f, "PQ{m}x4fs"),
            CodecSpec::Opq { m, nbits: b, d: None } => write!(f, "OPQ{m},PQ{m}{}", nbits(b)),
            CodecSpec::Opq { m, nbits: b, d: Some(d) } => write!(f, "OPQ{m}_{d},PQ{m}{}", nbits(b)),
            CodecSpec::RaBitQ { bits: 1 } => f.write_str("RaBitQ"),
            CodecSpec::RaBitQ { bits } => write!(f, "RaBitQ{bits}"),
            CodecSpec::RaBitQFastScan { bits: 1 } => f.write_str("RaBitQfs"),
            CodecSpec::RaBitQFastScan { bits } => write!(f, "RaBitQfs{bits}"),
        }
    }
}

impl fmt::Display for StorageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageSpec::Flat => f.write_str("Flat"),
            StorageSpec::Codec(c) => c.fmt(f),
        }
    }
}

impl fmt::Display for BaseSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseSpec::Flat => f.write_str("Flat"),
            BaseSpec::Codes(c) => c.fmt(f),
            BaseSpec::Hnsw { m, storage: StorageSpec::Flat } => write!(f, "HNSW{m}"),
            BaseSpec::Hnsw { m, storage } => write!(f, "HNSW{m},{storage}"),
            BaseSpec::Ivf { nlist, coarse_hnsw: None, storage } => write!(f, "IVF{nlist},{storage}"),
            BaseSpec::Ivf { nlist, coarse_hnsw: Some(m), storage } => write!(f, "IVF{nlist}_HNSW{m},{storage}"),
        }
    }
}

impl fmt::Display for RefineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefineSpec::Flat => f.write_str("RFlat"),
            RefineSpec::Sq(t) => write!(f, "Refine({})", t.factory_name()),
        }
    }
}

impl fmt::Display for TransformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransformSpec::Opq { m, d: None } => write!(f, "OPQ{m}"),
            TransformSpec::Opq { m, d: Some(d) } => write!(f, "OPQ{m}_{d}"),
            TransformSpec::Pca { d, random_rotation: false } => write!(f, "PCA{d}"),
            TransformSpec::Pca { d, random_rotation: true } => write!(f, "PCAR{d}"),
        }
    }
}

impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.transform {
            write!(f, "{t},")?;
        }
        self.base.fmt(f)?;
        match &self.refine {
            Some(r) => write!(f, ",{r}"),
            None => Ok(()),
        }
    }
}

/// Splits at top-level commas (a comma inside `Refine(…)` does not split).
fn components(spec: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in spec.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(spec[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(spec[start..].trim());
    out
}

/// A positive integer written right after `prefix` in `token`, and the rest of the token.
fn number_after<'a>(token: &'a str, prefix: &str) -> Option<Result<(usize, &'a str), String>> {
    let rest = token.strip_prefix(prefix)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if digits == 0 {
        return Some(Err(format!("{prefix} needs a number")));
    }
    Some(match rest[..digits].parse::<usize>() {
        Ok(0) => Err(format!("{prefix} needs a number of at least 1")),
        Ok(n) => Ok((n, &rest[digits..])),
        Err(_) => Err(format!("{prefix}'s number is too large")),
    })
}

/// `RaBitQ[{bits}]` or `RaBitQfs[{bits}]` → the codec, `None` if the token is not a RaBitQ token
/// at all (`RaBitQ1` is `RaBitQ`, as in Faiss).
fn parse_rabitq(token: &str) -> Option<Result<CodecSpec, String>> {
    let rest = token.strip_prefix("RaBitQ")?;
    let (fast_scan, digits) = match rest.strip_prefix("fs") {
        Some(digits) => (true, digits),
        None => (false, rest),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits = match digits {
        "" => 1,
        _ => match digits.parse::<u8>() {
            Ok(b @ 1..=vq_quant::RABITQ_MAX_BITS) => b,
            _ => return Some(Err(format!("RaBitQ takes 1 to {} bits per dimension", vq_quant::RABITQ_MAX_BITS))),
        },
    };
    Some(Ok(if fast_scan { CodecSpec::RaBitQFastScan { bits } } else { CodecSpec::RaBitQ { bits } }))
}

/// `PQ{m}[x{nbits}]` or `PQ{m}x4fs` → the codec, `None` if the token is not a PQ token at all.
fn parse_pq(token: &str) -> Option<Result<CodecSpec, String>> {
    if token.starts_with("OPQ") {
        return None;
    }
    Some(number_after(token, "PQ")?.and_then(|(m, rest)| {
        // Faiss' `np` (no polysemous training, which vq never runs) changes nothing here.
        let rest = match rest.strip_suffix("np") {
            Some(plain) if !plain.ends_with("fs") => plain,
            _ => rest,
        };
        match rest {
            "" => Ok(CodecSpec::Pq { m, nbits: 8 }),
            "x4fs" => Ok(CodecSpec::PqFastScan { m }),
            _ => match rest
                .strip_prefix('x')
                .map(|r| (r.strip_suffix("fs").is_some(), r.trim_end_matches("fs").parse::<u32>()))
            {
                Some((false, Ok(nbits))) => Ok(CodecSpec::Pq { m, nbits }),
                Some((true, Ok(_))) => Err("fast scan takes 4-bit codes: PQ{m}x4fs".into()),
                _ => Err("expected PQ{m}, PQ{m}x{nbits} or PQ{m}x4fs".into()),
            },
        }
    }))
}

/// `OPQ{m}` or `OPQ{m}_{d}` → `(m, d)`, `None` if the token is not an OPQ token at all. `d` is
/// Faiss' output dimension, checked against the input's by the factory.
fn parse_opq(token: &str) -> Option<Result<(usize, Option<usize>), String>> {
    Some(number_after(token, "OPQ")?.and_then(|(m, rest)| match rest {
        "" => Ok((m, None)),
        _ => match rest.strip_prefix('_').and_then(|d| d.parse::<usize>().ok()) {
            Some(d) => Ok((m, Some(d))),
            None => Err("expected OPQ{m} or OPQ{m}_{d}".into()),
        },
    }))
}

/// The parser's cursor over the components of one spec.
struct Parser<'a> {
    spec: &'a str,
    tokens: Vec<&'a str>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, token: &str, what: impl Into<String>) -> SpecError {
        SpecError { spec: self.spec.to_string(), token: token.to_string(), what: what.into(), accepted: ACCEPTED }
    }

    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.at).copied()
    }

    fn next(&mut self) -> Option<&'a str> {
        let t = self.peek();
        self.at += t.is_some() as usize;
        t
    }

    /// `PCA{d}` / `PCAR{d}`, or `OPQ{m}[_{d}]` followed by an `IVF…` token: a transform
    /// (consumed); anything else is left to [`base`](Parser::base) (`OPQ16,PQ16` is the OPQ
    /// codec).
    fn transform(&mut self) -> Result<Option<TransformSpec>, SpecError> {
        if let Some(token) = self.peek().filter(|t| t.starts_with("PCA")) {
            let (random_rotation, digits) = match token.strip_prefix("PCAR") {
                Some(rest) => (true, rest),
                None => (false, &token[3..]),
            };
            return match digits.parse::<usize>() {
                Ok(d) if d > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    self.at += 1;
                    Ok(Some(TransformSpec::Pca { d, random_rotation }))
                }
                _ => Err(self.error(token, "expected PCA{d} or PCAR{d}, d at least 1")),
            };
        }
        let (Some(token), Some(next)) = (self.peek(), self.tokens.get(self.at + 1)) else { return Ok(None) };
        if !next.starts_with("IVF") {
            return Ok(None);
        }
        let Some(opq) = parse_opq(token) else { return Ok(None) };
        let (m, d) = opq.map_err(|e| self.error(token, e))?;
        self.at += 1;
        Ok(Some(TransformSpec::Opq { m, d }))
    }

    /// A codec starting at the next token, or `None` (nothing consumed) if it is not one.
    fn codec(&mut self) -> Result<Option<CodecSpec>, SpecError> {
        let Some(token) = self.peek() else { return Ok(None) };
        if let Ok(t) = token.parse::<SqType>() {
            self.at += 1;
            return Ok(Some(CodecSpec::Sq(t)));
        }
        if let Some(rabitq) = parse_rabitq(token) {
            let codec = rabitq.map_err(|e| self.error(token, e))?;
            self.at += 1;
            return Ok(Some(codec));
        }
        if let Some(pq) = parse_pq(token) {
            let codec = pq.map_err(|e| self.error(token, e))?;
            self.at += 1;
            return Ok(Some(codec));
        }
        if let Some(opq) = parse_opq(token) {
            let (m, d) = opq.map_err(|e| self.error(token, e))?;
            self.at += 1;
            let Some(pq_token) = self.next() else {
                return Err(self.error(token, "OPQ must be followed by ,PQ{m}"));
            };
            let (pm, nbits) = match parse_pq(pq_token) {
                Some(Ok(CodecSpec::Pq { m, nbits })) => (m, nbits),
                Some(Ok(_)) => {
                    return Err(self.error(pq_token, "OPQ with fast scan is not supported yet: OPQ{m},PQ{m}x4"));
                }
                Some(Err(e)) => return Err(self.error(pq_token, e)),
                None => return Err(self.error(pq_token, "OPQ must be followed by ,PQ{m}")),
            };
            if pm != m {
                return Err(self.error(pq_token, format!("OPQ{m} is trained for PQ{m}, not PQ{pm}")));
            }
            return Ok(Some(CodecSpec::Opq { m, nbits, d }));
        }
        Ok(None)
    }

    fn base(&mut self) -> Result<BaseSpec, SpecError> {
        let Some(token) = self.peek() else { return Err(self.error("", "empty spec")) };
        if token == "Flat" {
            self.at += 1;
            return Ok(BaseSpec::Flat);
        }
        if let Some(hnsw) = number_after(token, "HNSW") {
            let (m, rest) = hnsw.map_err(|e| self.error(token, e))?;
            if !rest.is_empty() {
                return Err(self.error(token, "expected HNSW{m}"));
            }
            if m < 2 {
                return Err(self.error(token, "HNSW needs m of at least 2"));
            }
            self.at += 1;
            let storage = if self.peek() == Some("Flat") {
                self.at += 1;
                StorageSpec::Flat
            } else {
                let next = self.peek().unwrap_or("");
                match self.codec()? {
                    Some(CodecSpec::PqFastScan { m }) => {
                        return Err(self.error(
                            next,
                            format!("graphs score one code at a time: fast scan is for flat scans; use PQ{m}x4"),
                        ));
                    }
                    Some(CodecSpec::RaBitQ { .. } | CodecSpec::RaBitQFastScan { .. }) => {
                        return Err(self.error(next, HNSW_OVER_RABITQ));
                    }
                    codec => codec.map_or(StorageSpec::Flat, StorageSpec::Codec),
                }
            };
            return Ok(BaseSpec::Hnsw { m, storage });
        }
        if let Some(ivf) = number_after(token, "IVF") {
            let (nlist, rest) = ivf.map_err(|e| self.error(token, e))?;
            // `IVF{n}(HNSW{m})` is Faiss' newer spelling of `IVF{n}_HNSW{m}`.
            let coarse = rest.strip_prefix("(").and_then(|r| r.strip_suffix(")")).map(|inner| ("HNSW", inner));
            let coarse_hnsw = match coarse.unwrap_or(("_HNSW", rest)) {
                (_, "") => None,
                (prefix, hnsw) => match number_after(hnsw, prefix) {
                    Some(Ok((m, ""))) if m >= 2 => Some(m),
                    _ => {
                        return Err(self.error(
                            token,
                            "expected IVF{nlist}, IVF{nlist}_HNSW{m} or IVF{nlist}(HNSW{m}): the coarse quantizer is flat or an HNSW graph",
                        ));
                    }
                },
            };
            self.at += 1;
            let storage = match self.peek() {
                Some("Flat") => {
                    self.at += 1;
                    StorageSpec::Flat
                }
                next => match self.codec()? {
                    Some(CodecSpec::Opq { .. }) => {
                        return Err(self.error(
                            next.unwrap_or(""),
                            "IVF lists hold Flat, SQ or PQ codes; an OPQ rotation goes before the inverted file: OPQ{m},IVF{nlist},PQ{m}",
                        ));
                    }
                    Some(codec) => StorageSpec::Codec(codec),
                    None => {
                        return Err(self.error(
                            next.unwrap_or(token),
                            "IVF{nlist} must be followed by ,Flat ,SQ… ,PQ… ,RaBitQ or ,RaBitQfs",
                        ));
                    }
                },
            };
            return Ok(BaseSpec::Ivf { nlist, coarse_hnsw, storage });
        }
        match self.codec()? {
            Some(codec) => Ok(BaseSpec::Codes(codec)),
            None => Err(self.error(token, "unknown index")),
        }
    }

    fn refine(&mut self) -> Result<Option<RefineSpec>, SpecError> {
        let Some(token) = self.next() else { return Ok(None) };
        if token == "RFlat" {
            return Ok(Some(RefineSpec::Flat));
        }
        let Some(inner) = token.strip_prefix("Refine(").and_then(|t| t.strip_suffix(')')) else {
            return Err(self.error(token, "expected ,RFlat or ,Refine(…) here"));
        };
        match inner.trim() {
            "Flat" => Ok(Some(RefineSpec::Flat)),
            other => other
                .parse::<SqType>()
                .map(|t| Some(RefineSpec::Sq(t)))
                .map_err(|_| self.error(token, "refine from Flat or a scalar quantizer (SQ8, SQfp16, …)")),
        }
    }
}

impl FromStr for IndexSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let mut p = Parser { spec, tokens: components(spec.trim()), at: 0 };
        // Faiss' `IDMap` / `IDMap2` wrappers give flat indexes `add_with_ids` (and
        // `reconstruct` by id): every vq index has both, so they are accepted and dropped.
        if matches!(p.peek(), Some("IDMap" | "IDMap2")) {
            p.at += 1;
        }
        let transform = p.transform()?;
        let base = p.base()?;
        let refine = p.refine()?;
        if let Some(extra) = p.peek() {
            return Err(p.error(extra, "unexpected component"));
        }
        Ok(IndexSpec { transform, base, refine })
    }
}

/// A quantizer a codec spec names. Read back from a file, its type is the one the file's kind
/// section names and its parameters are its own sections': a file whose two disagree (`PQ8`
/// over a quantizer of 16 sub-quantizers) is corrupt, not an index to report the wrong spec of.
pub(crate) trait NamedByCodec: vq_quant::Quantizer {
    /// `true` if `codec` makes this quantizer: its type and parameters.
    fn named_by(&self, codec: CodecSpec) -> bool;
}

impl NamedByCodec for vq_quant::ScalarQuantizer {
    fn named_by(&self, codec: CodecSpec) -> bool {
        matches!(codec, CodecSpec::Sq(t) if t == self.sq_type())
    }
}

impl NamedByCodec for vq_quant::ProductQuantizer {
    fn named_by(&self, codec: CodecSpec) -> bool {
        match codec {
            CodecSpec::Pq { m, nbits } => m == self.m() && nbits == self.nbits(),
            CodecSpec::PqFastScan { m } => m == self.m() && self.nbits() == 4,
            _ => false,
        }
    }
}

impl NamedByCodec for vq_quant::OpqQuantizer {
    fn named_by(&self, codec: CodecSpec) -> bool {
        matches!(codec, CodecSpec::Opq { m, nbits, .. } if m == self.pq().m() && nbits == self.pq().nbits())
    }
}

impl NamedByCodec for vq_quant::RaBitQuantizer {
    fn named_by(&self, codec: CodecSpec) -> bool {
        matches!(codec, CodecSpec::RaBitQ { bits } | CodecSpec::RaBitQFastScan { bits } if bits == self.bits())
    }
}

/// `Ok` if `codec`, the spec a file's kind section names, makes `quantizer`, read from its
/// sections; the corrupt-file error otherwise.
pub(crate) fn check_codec<Q: NamedByCodec>(quantizer: &Q, codec: CodecSpec) -> crate::Result<()> {
    if quantizer.named_by(codec) {
        return Ok(());
    }
    Err(crate::Error::Corrupt { what: format!("index.kind names {codec} but its sections hold {}", quantizer.name()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faiss_spellings_parse_to_the_expected_specs() {
        let ivf_pq = BaseSpec::Ivf {
            nlist: 1024,
            coarse_hnsw: None,
            storage: StorageSpec::Codec(CodecSpec::Pq { m: 16, nbits: 8 }),
        };
        let cases: [(&str, IndexSpec); 11] = [
            ("OPQ16,IVF1024,PQ16", IndexSpec::new(ivf_pq).with_transform(TransformSpec::Opq { m: 16, d: None })),
            (
                "OPQ16_128,IVF1024,PQ16,RFlat",
                IndexSpec::new(ivf_pq)
                    .with_transform(TransformSpec::Opq { m: 16, d: Some(128) })
                    .with_refine(RefineSpec::Flat),
            ),
            ("Flat", IndexSpec::new(BaseSpec::Flat)),
            ("SQ8", IndexSpec::new(BaseSpec::Codes(CodecSpec::Sq(SqType::SQ8)))),
            ("PQ16", IndexSpec::new(BaseSpec::Codes(CodecSpec::Pq { m: 16, nbits: 8 }))),
            ("PQ32x4", IndexSpec::new(BaseSpec::Codes(CodecSpec::Pq { m: 32, nbits: 4 }))),
            ("PQ32x4fs", IndexSpec::new(BaseSpec::Codes(CodecSpec::PqFastScan { m: 32 }))),
            ("OPQ16_128,PQ16", IndexSpec::new(BaseSpec::Codes(CodecSpec::Opq { m: 16, nbits: 8, d: Some(128) }))),
            ("HNSW32,Flat", IndexSpec::new(BaseSpec::Hnsw { m: 32, storage: StorageSpec::Flat })),
            (
                "HNSW32,SQ8,RFlat",
                IndexSpec::new(BaseSpec::Hnsw { m: 32, storage: StorageSpec::Codec(CodecSpec::Sq(SqType::SQ8)) })
                    .with_refine(RefineSpec::Flat),
            ),
            (
                " HNSW16 , PQ8x4 , Refine(SQfp16) ",
                IndexSpec::new(BaseSpec::Hnsw { m: 16, storage: StorageSpec::Codec(CodecSpec::Pq { m: 8, nbits: 4 }) })
                    .with_refine(RefineSpec::Sq(SqType::FP16)),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<IndexSpec>(), Ok(want), "{text}");
        }
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (text, canonical) in [
            ("Flat", "Flat"),
            ("PQ16x8", "PQ16"),
            ("PQ16x4", "PQ16x4"),
            ("HNSW32,Flat", "HNSW32"),
            ("HNSW32,SQ8,Refine(Flat)", "HNSW32,SQ8,RFlat"),
            ("SQ8,Refine(SQ8)", "SQ8,Refine(SQ8)"),
            ("OPQ8,PQ8x6,RFlat", "OPQ8,PQ8x6,RFlat"),
            ("HNSW16,OPQ8,PQ8", "HNSW16,OPQ8,PQ8"),
            ("OPQ8_64,PQ8x4", "OPQ8_64,PQ8x4"),
            ("IVF1024,Flat", "IVF1024,Flat"),
            ("IVF64,SQfp16", "IVF64,SQfp16"),
            ("IVF1024,PQ16x8,Refine(Flat)", "IVF1024,PQ16,RFlat"),
            ("IVF256,PQ32x4,Refine(SQ8)", "IVF256,PQ32x4,Refine(SQ8)"),
            ("IVF65536_HNSW32,Flat", "IVF65536_HNSW32,Flat"),
            ("IVF1024_HNSW16,PQ16x8,Refine(Flat)", "IVF1024_HNSW16,PQ16,RFlat"),
            ("IVF1024,PQ64x4fs", "IVF1024,PQ64x4fs"),
            ("IVF1024,PQ64x4fs,Refine(Flat)", "IVF1024,PQ64x4fs,RFlat"),
            ("IVF512,PQ192x4fs,Refine(SQbf16)", "IVF512,PQ192x4fs,Refine(SQbf16)"),
            ("OPQ16,IVF1024,PQ16x8", "OPQ16,IVF1024,PQ16"),
            ("OPQ8_64,IVF256_HNSW16,PQ8x4fs,Refine(Flat)", "OPQ8_64,IVF256_HNSW16,PQ8x4fs,RFlat"),
            ("OPQ4,IVF16,Flat", "OPQ4,IVF16,Flat"),
            ("PCA64,Flat", "PCA64,Flat"),
            ("PCAR32,HNSW16,SQ8,Refine(Flat)", "PCAR32,HNSW16,SQ8,RFlat"),
            ("PCA64,IVF1024,PQ16x8,RFlat", "PCA64,IVF1024,PQ16,RFlat"),
            ("IDMap,Flat", "Flat"),
            ("IDMap2,HNSW32", "HNSW32"),
            ("IVF1024,PQ16np", "IVF1024,PQ16"),
            ("PQ8x4np,RFlat", "PQ8x4,RFlat"),
            ("IDMap2,OPQ16,IVF65536(HNSW32),PQ16np", "OPQ16,IVF65536_HNSW32,PQ16"),
            ("RaBitQ,Refine(Flat)", "RaBitQ,RFlat"),
            ("RaBitQfs,Refine(Flat)", "RaBitQfs,RFlat"),
            ("PCA64,RaBitQfs", "PCA64,RaBitQfs"),
            ("IVF1024,RaBitQfs,Refine(Flat)", "IVF1024,RaBitQfs,RFlat"),
            ("IVF1024_HNSW16,RaBitQfs", "IVF1024_HNSW16,RaBitQfs"),
            ("IVF1024,RaBitQfs4,RFlat", "IVF1024,RaBitQfs4,RFlat"),
            ("IVF16,RaBitQfs1", "IVF16,RaBitQfs"),
            ("RaBitQ1", "RaBitQ"),
            ("RaBitQfs1,RFlat", "RaBitQfs,RFlat"),
            ("RaBitQfs4", "RaBitQfs4"),
            ("RaBitQfs9,Refine(SQ8)", "RaBitQfs9,Refine(SQ8)"),
            ("RaBitQ4", "RaBitQ4"),
            ("PCA64,RaBitQ9,Refine(Flat)", "PCA64,RaBitQ9,RFlat"),
            ("IVF1024,RaBitQ2", "IVF1024,RaBitQ2"),
            ("IVF64_HNSW16,RaBitQ3,RFlat", "IVF64_HNSW16,RaBitQ3,RFlat"),
        ] {
            let spec: IndexSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), canonical, "{text}");
            assert_eq!(canonical.parse::<IndexSpec>(), Ok(spec), "{canonical}");
        }
    }

    #[test]
    fn bad_strings_name_the_bad_token() {
        for (text, token) in [
            ("", ""),
            ("HNSW", "HNSW"),
            ("HNSW1", "HNSW1"),
            ("HNSW16,Bogus", "Bogus"),
            ("PQx8", "PQx8"),
            ("PQ16x", "PQ16x"),
            ("OPQ16,PQ8", "PQ8"),
            ("OPQ16", "OPQ16"),
            ("Flat,RFlat,RFlat", "RFlat"),
            ("SQ8,Refine(PQ8)", "Refine(PQ8)"),
            ("IVF1024", "IVF1024"),
            ("IVF0,Flat", "IVF0"),
            ("IVF16x,Flat", "IVF16x"),
            ("IVF16,HNSW32", "HNSW32"),
            ("IVF16,OPQ4,PQ4", "OPQ4"),
            ("IVF16_HNSW,Flat", "IVF16_HNSW"),
            ("IVF16_HNSW1,Flat", "IVF16_HNSW1"),
            ("IVF16_HNSW8x,Flat", "IVF16_HNSW8x"),
            ("IVF16_PQ8,Flat", "IVF16_PQ8"),
            ("IVF16,PQ8x8fs", "PQ8x8fs"),
            ("OPQ,IVF16,Flat", "OPQ"),
            ("OPQ4_x,IVF16,PQ4", "OPQ4_x"),
            ("OPQ4,HNSW16", "HNSW16"),
            ("OPQ4,IVF16", "IVF16"),
            ("OPQ4,OPQ4,IVF16,Flat", "OPQ4"),
            ("PCA,Flat", "PCA"),
            ("PCA0,Flat", "PCA0"),
            ("PCAW64,Flat", "PCAW64"),
            ("PCA64x,Flat", "PCA64x"),
            ("PCA+64,Flat", "PCA+64"),
            ("PCA64", ""),
            ("PCA64,PCA32,Flat", "PCA32"),
            ("PCA64,OPQ16,IVF64,Flat", "IVF64"),
            ("IVF64(HNSW1),Flat", "IVF64(HNSW1)"),
            ("IVF64(PQ8),Flat", "IVF64(PQ8)"),
            ("IVF64(HNSW16,Flat", "IVF64(HNSW16,Flat"),
            ("IDMap,IDMap2,Flat", "IDMap2"),
            ("Flat,IDMap", "IDMap"),
            ("PQ8x4fsnp", "PQ8x4fsnp"),
            ("HNSW16,RaBitQfs", "RaBitQfs"),
            ("RaBitQFS", "RaBitQFS"),
            ("RaBitQ0", "RaBitQ0"),
            ("RaBitQ10", "RaBitQ10"),
            ("RaBitQ4x", "RaBitQ4x"),
            ("RaBitQfs10", "RaBitQfs10"),
            ("HNSW16,RaBitQ4", "RaBitQ4"),
        ] {
            let err = text.parse::<IndexSpec>().unwrap_err();
            assert_eq!(err.token, token, "{text}: {err}");
            assert!(err.to_string().contains("accepted"), "{err}");
        }
    }
}
