"""Faiss' index classes by name, so code written against Faiss runs with ``faiss`` replaced
by ``vq``: ``vq.IndexFlatL2(d)``, ``vq.IndexHNSWFlat(d, 32)``, ``vq.IndexIVFPQ(quantizer, d,
nlist, m, 8)``, … Each takes Faiss' arguments and returns the ``vq.Index`` its factory string
makes (``index.spec`` says which), so ``isinstance(index, vq.IndexIVFFlat)`` is not a thing:
they are functions. Where vq cannot do what the arguments ask, a ``ValueError`` says why;
nothing is silently dropped.

What differs from Faiss, on purpose:

- An inverted file's ``quantizer`` says how lists are found (``IndexFlatL2``/``IndexFlatIP``:
  every centroid scored; ``IndexHNSWFlat(d, m)``: an HNSW graph over them, Faiss'
  ``IVF{nlist}_HNSW{m}``) and must be empty: ``index.train`` learns the centroids inside the
  index. It is not kept; ``index.nprobe`` is the index's.
- HNSW graphs start at vq's defaults (``efConstruction`` 200, ``efSearch`` 64; Faiss' are 40
  and 16): ``index.hnsw.efConstruction = 40`` before adding builds Faiss' graph.
- ``IndexIDMap(index)`` returns ``index`` itself: every vq index takes ``add_with_ids``.
- ``IndexRaBitQ`` and ``IndexIVFRaBitQ`` rotate the vectors first (Faiss' ``RR{d},RaBitQ``).
"""

from __future__ import annotations

from ._vq import METRIC_COSINE, METRIC_INNER_PRODUCT, METRIC_L2, Index, index_factory

__all__ = [
    "IndexFlat",
    "IndexFlatIP",
    "IndexFlatL2",
    "IndexHNSWFlat",
    "IndexHNSWPQ",
    "IndexHNSWSQ",
    "IndexIDMap",
    "IndexIDMap2",
    "IndexIVFFlat",
    "IndexIVFPQ",
    "IndexIVFPQFastScan",
    "IndexIVFRaBitQ",
    "IndexIVFScalarQuantizer",
    "IndexPQ",
    "IndexPQFastScan",
    "IndexRaBitQ",
    "IndexRefine",
    "IndexRefineFlat",
    "IndexScalarQuantizer",
    "ScalarQuantizer",
    "extract_index_ivf",
]


class ScalarQuantizer:
    """Faiss' ``ScalarQuantizer.QT_*`` numbers, with Faiss' values. vq has six of them
    (``SQ8``, ``SQ6``, ``SQ4``, ``SQ4U``, ``SQfp16``, ``SQbf16``); ``QT_8bit_uniform``,
    ``QT_8bit_direct`` and ``QT_8bit_direct_signed`` raise ``ValueError`` when an index is
    made with them."""

    QT_8bit = 0
    QT_4bit = 1
    QT_8bit_uniform = 2
    QT_4bit_uniform = 3
    QT_fp16 = 4
    QT_8bit_direct = 5
    QT_6bit = 6
    QT_bf16 = 7
    QT_8bit_direct_signed = 8


# Each QT number's factory name; the ones vq lacks map to None.
_SQ_NAMES = {
    ScalarQuantizer.QT_8bit: "SQ8",
    ScalarQuantizer.QT_4bit: "SQ4",
    ScalarQuantizer.QT_8bit_uniform: None,
    ScalarQuantizer.QT_4bit_uniform: "SQ4U",
    ScalarQuantizer.QT_fp16: "SQfp16",
    ScalarQuantizer.QT_8bit_direct: None,
    ScalarQuantizer.QT_6bit: "SQ6",
    ScalarQuantizer.QT_bf16: "SQbf16",
    ScalarQuantizer.QT_8bit_direct_signed: None,
}


def _sq(qtype: int) -> str:
    name = _SQ_NAMES.get(qtype) if isinstance(qtype, int) and not isinstance(qtype, bool) else None
    if name is None:
        known = ", ".join(f"QT_{n}" for n in ("8bit", "6bit", "4bit", "4bit_uniform", "fp16", "bf16"))
        raise ValueError(f"qtype {qtype!r}: vq has the scalar quantizers {known} (vq.ScalarQuantizer.QT_*)")
    return name


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return value


def _pq(m: int, nbits: int) -> str:
    _positive("M", m)
    _positive("nbits", nbits)
    return f"PQ{m}" if nbits == 8 else f"PQ{m}x{nbits}"


def _fast_scan(m: int, nbits: int, bbs: int) -> str:
    _positive("M", m)
    if nbits != 4:
        raise ValueError(f"nbits {nbits!r}: fast-scan PQ codes have 4 bits")
    if bbs != 32:
        raise ValueError(f"bbs {bbs!r}: vq's fast scan packs codes in blocks of 32")
    return f"PQ{m}x4fs"


def IndexFlat(d: int, metric=METRIC_L2) -> Index:
    """Exact search (``"Flat"``)."""
    return index_factory(d, "Flat", metric)


def IndexFlatL2(d: int) -> Index:
    """Exact search by squared L2 distance."""
    return index_factory(d, "Flat", METRIC_L2)


def IndexFlatIP(d: int) -> Index:
    """Exact search by inner product (normalize the vectors first, or use ``vq.METRIC_COSINE``
    with ``vq.IndexFlat``, for cosine)."""
    return index_factory(d, "Flat", METRIC_INNER_PRODUCT)


def IndexHNSWFlat(d: int, M: int = 32, metric=METRIC_L2) -> Index:
    """An HNSW graph over the vectors (``"HNSW{M}"``)."""
    return index_factory(d, f"HNSW{_positive('M', M)}", metric)


def IndexHNSWSQ(d: int, qtype: int, M: int = 32, metric=METRIC_L2) -> Index:
    """An HNSW graph over scalar codes (``"HNSW{M},SQ8"``, …)."""
    return index_factory(d, f"HNSW{_positive('M', M)},{_sq(qtype)}", metric)


def IndexHNSWPQ(d: int, pq_m: int, M: int = 32, pq_nbits: int = 8, metric=METRIC_L2) -> Index:
    """An HNSW graph over PQ codes (``"HNSW{M},PQ{pq_m}"``)."""
    return index_factory(d, f"HNSW{_positive('M', M)},{_pq(pq_m, pq_nbits)}", metric)


def IndexScalarQuantizer(d: int, qtype: int, metric=METRIC_L2) -> Index:
    """An exhaustive scan over scalar codes (``"SQ8"``, …)."""
    return index_factory(d, _sq(qtype), metric)


def IndexPQ(d: int, M: int, nbits: int = 8, metric=METRIC_L2) -> Index:
    """An exhaustive scan over PQ codes (``"PQ{M}"``, ``"PQ{M}x{nbits}"``)."""
    return index_factory(d, _pq(M, nbits), metric)


def IndexPQFastScan(d: int, M: int, nbits: int = 4, metric=METRIC_L2, bbs: int = 32) -> Index:
    """4-bit PQ codes scanned 32 at a time (``"PQ{M}x4fs"``)."""
    return index_factory(d, _fast_scan(M, nbits, bbs), metric)


def IndexRaBitQ(d: int, metric=METRIC_L2) -> Index:
    """One bit a dimension after a random rotation (``"RaBitQ"``, Faiss' ``RR{d},RaBitQ``)."""
    return index_factory(d, "RaBitQ", metric)


def _coarse(quantizer: Index, d: int, nlist: int, metric) -> str:
    """``IVF{nlist}`` or ``IVF{nlist}_HNSW{m}`` for an empty quantizer that fits the index."""
    if not isinstance(quantizer, Index):
        raise TypeError(f"quantizer must be a vq index (vq.IndexFlatL2(d), …), got {type(quantizer).__name__}")
    _positive("nlist", nlist)
    if quantizer.d != d:
        raise ValueError(f"quantizer has dimension {quantizer.d}, the index {d}")
    if quantizer.ntotal:
        raise ValueError(
            f"quantizer holds {quantizer.ntotal} vectors: vq learns the coarse centroids in index.train(x); "
            "give an empty quantizer"
        )
    # The index's metric as a number (a name or a bad value goes through the factory's check).
    number = index_factory(1, "Flat", metric).metric_type
    # A cosine index finds its lists by inner product over unit centroids: an IP quantizer fits.
    fits = quantizer.metric_type == number or (
        number == METRIC_COSINE and quantizer.metric_type == METRIC_INNER_PRODUCT
    )
    if not fits:
        raise ValueError(
            f"quantizer scores by {quantizer.metric}, the index by metric {metric!r}: vq's coarse step "
            "uses the index's metric, so give a quantizer of the same metric"
        )
    spec = quantizer.spec
    if spec == "Flat":
        return f"IVF{nlist}"
    if spec.startswith("HNSW") and spec[4:].isdigit():
        return f"IVF{nlist}_{spec}"
    raise ValueError(f"quantizer {spec!r}: vq's coarse quantizers are Flat and HNSW{{m}} graphs")


def IndexIVFFlat(quantizer: Index, d: int, nlist: int, metric=METRIC_L2) -> Index:
    """An inverted file of f32 vectors (``"IVF{nlist},Flat"``)."""
    return index_factory(d, f"{_coarse(quantizer, d, nlist, metric)},Flat", metric)


def IndexIVFScalarQuantizer(
    quantizer: Index, d: int, nlist: int, qtype: int, metric=METRIC_L2, by_residual: bool = True
) -> Index:
    """An inverted file of scalar codes of residuals (``"IVF{nlist},SQ8"``, …)."""
    spec = f"{_coarse(quantizer, d, nlist, metric)},{_sq(qtype)}"
    return index_factory(d, spec, metric, by_residual=by_residual)


def IndexIVFPQ(quantizer: Index, d: int, nlist: int, M: int, nbits_per_idx: int = 8, metric=METRIC_L2) -> Index:
    """An inverted file of PQ codes of residuals (``"IVF{nlist},PQ{M}"``)."""
    return index_factory(d, f"{_coarse(quantizer, d, nlist, metric)},{_pq(M, nbits_per_idx)}", metric)


def IndexIVFPQFastScan(
    quantizer: Index, d: int, nlist: int, M: int, nbits: int = 4, metric=METRIC_L2, bbs: int = 32
) -> Index:
    """An inverted file of 4-bit PQ codes scanned 32 at a time (``"IVF{nlist},PQ{M}x4fs"``)."""
    return index_factory(d, f"{_coarse(quantizer, d, nlist, metric)},{_fast_scan(M, nbits, bbs)}", metric)


def IndexIVFRaBitQ(quantizer: Index, d: int, nlist: int, metric=METRIC_L2) -> Index:
    """An inverted file of RaBitQ codes (``"IVF{nlist},RaBitQ"``)."""
    return index_factory(d, f"{_coarse(quantizer, d, nlist, metric)},RaBitQ", metric)


def _wrappable(base: Index, what: str) -> str:
    """``base``'s spec, when a stage can still be put on it: vq builds the whole index from one
    factory string, so the base must be as the factory made it (untrained, empty)."""
    if not isinstance(base, Index):
        raise TypeError(f"{what} takes a vq index, got {type(base).__name__}")
    spec = base.spec
    fresh = index_factory(base.d, spec, base.metric_type)
    if base.ntotal or base.is_trained != fresh.is_trained:
        raise ValueError(
            f"{what} over {spec!r}: vq makes the base and the stage as one index, so wrap the base "
            "before training or adding (then train and add the result)"
        )
    if ",RFlat" in spec or ",Refine(" in spec:
        raise ValueError(f"{what} over {spec!r}: it already has a refine stage")
    return spec


def _refined(base: Index, refine: str, what: str) -> Index:
    spec = _wrappable(base, what)
    index = index_factory(base.d, f"{spec},{refine}", base.metric_type)
    # The base's search defaults, which Faiss' wrapper would leave on the base.
    for knob in ("nprobe", "ef", "ef_construction"):
        if hasattr(base, knob):
            setattr(index, knob, getattr(base, knob))
    return index


def IndexRefineFlat(base_index: Index) -> Index:
    """``base_index`` with an exact re-ranking stage (``"…,RFlat"``); ``index.refine_k`` is
    Faiss' ``k_factor``. ``base_index`` must not be trained or hold vectors yet."""
    return _refined(base_index, "RFlat", "IndexRefineFlat")


def IndexRefine(base_index: Index, refine_index: Index) -> Index:
    """``base_index`` re-ranked from ``refine_index``'s vectors: an ``IndexFlat`` (``"…,RFlat"``)
    or an ``IndexScalarQuantizer`` (``"…,Refine(SQfp16)"``, …), both empty."""
    if not isinstance(refine_index, Index):
        raise TypeError(f"refine_index must be a vq index, got {type(refine_index).__name__}")
    if refine_index.ntotal:
        raise ValueError("refine_index holds vectors: give an empty one (the result stores them)")
    if (refine_index.d, refine_index.metric) != (base_index.d, base_index.metric):
        raise ValueError(
            f"refine_index has dimension {refine_index.d} and metric {refine_index.metric}, "
            f"base_index {base_index.d} and {base_index.metric}"
        )
    spec = refine_index.spec
    if spec == "Flat":
        return _refined(base_index, "RFlat", "IndexRefine")
    if spec.startswith("SQ"):
        return _refined(base_index, f"Refine({spec})", "IndexRefine")
    raise ValueError(f"refine_index {spec!r}: vq re-ranks from Flat or scalar-quantized (SQ…) vectors")


def IndexIDMap(index: Index) -> Index:
    """``index`` itself: every vq index keeps the ids given to ``add_with_ids``."""
    if not isinstance(index, Index):
        raise TypeError(f"IndexIDMap takes a vq index, got {type(index).__name__}")
    return index


IndexIDMap2 = IndexIDMap


def extract_index_ivf(index: Index) -> Index:
    """``index`` itself when it has inverted lists: ``index.nprobe`` reaches them through a
    refine stage or a transform (``ValueError`` otherwise, as Faiss' raises)."""
    if not hasattr(index, "nprobe"):
        raise ValueError(f"{index.spec!r} has no inverted file")
    return index
