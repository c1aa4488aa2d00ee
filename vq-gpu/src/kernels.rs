//! The CUDA C sources of vq-gpu's kernels, compiled at run time with NVRTC.
//!
//! Why NVRTC and not PTX from a build script: the crate must build on machines without a CUDA
//! toolkit (CI has none), and NVRTC ships as one shared library that also runs without a GPU,
//! so the kernels are compiled (and their syntax and types checked) wherever libnvrtc loads.
//!
//! The sources use no headers (NVRTC's built-in header set differs between CUDA versions):
//! f16 conversions are one PTX instruction each, written inline.

use crate::error::{Error, Result};

/// The largest `k` the selection kernel supports. Its shared buffer holds `2 * kp` keys and ids,
/// `kp` the next power of two at or above `max(k, 2 * SELECT_THREADS)`: 24 KiB at `k` = 1024,
/// inside the 48 KiB every CUDA device gives a block without opting in.
pub const MAX_K: usize = 1024;

/// Threads per block of the selection kernel (a power of two, at most [`MAX_K`]).
pub(crate) const SELECT_THREADS: u32 = 256;

/// `vq_select_tile`'s `mode` (what its score tile holds): inner products, keyed as their
/// negation.
pub(crate) const MODE_IP: i32 = 0;
/// Inner products, keyed with the norms as squared L2 distances.
pub(crate) const MODE_L2: i32 = 1;
/// Keys already ("smaller is better"), with ids beside them.
pub(crate) const MODE_KEYS: i32 = 2;

/// Warps (candidates) per block of the IVF scan kernel.
pub(crate) const SCAN_WARPS: u32 = 8;

/// Parameters of `vq_row_norms_f32` / `vq_row_norms_f16`. Every launch pushes its arguments
/// through [`push_args!`], which refuses to compile a launch with another count; the NVRTC test
/// checks these against the PTX entries, so an argument left out or pushed twice fails CI
/// instead of shifting every later argument on the device.
pub(crate) const ROW_NORMS_ARGS: usize = 4;
/// Parameters of `vq_select_tile`.
pub(crate) const SELECT_ARGS: usize = 13;
/// Parameters of `vq_ivf_scan`.
pub(crate) const IVF_SCAN_ARGS: usize = 15;
/// Parameters of `vq_kmeans_update`.
pub(crate) const KMEANS_UPDATE_ARGS: usize = 6;
/// Parameters of `vq_ivfpq_scan`.
pub(crate) const IVFPQ_SCAN_ARGS: usize = 19;
/// Parameters of `vq_ivfsq_scan`.
pub(crate) const IVFSQ_SCAN_ARGS: usize = 20;
/// `vq_ivfsq_scan`'s `kind`: 8-bit codes with per-dimension ranges.
pub(crate) const SQ_KIND_SQ8: i32 = 0;
/// `vq_ivfsq_scan`'s `kind`: IEEE half codes.
pub(crate) const SQ_KIND_FP16: i32 = 1;
/// `vq_ivfsq_scan`'s `kind`: 6-bit codes, packed little-endian (component `j` at bit `6j`).
pub(crate) const SQ_KIND_SQ6: i32 = 2;
/// `vq_ivfsq_scan`'s `kind`: 4-bit codes, component `2i` in the low nibble of byte `i` (SQ4,
/// and SQ4U with its one range repeated per dimension).
pub(crate) const SQ_KIND_SQ4: i32 = 3;
/// `vq_ivfsq_scan`'s `kind`: bfloat16 codes.
pub(crate) const SQ_KIND_BF16: i32 = 4;

/// Threads per block of `vq_ivfpq_scan` (one block per probed list of a query).
pub(crate) const PQ_SCAN_THREADS: u32 = 256;
/// The dynamic shared memory every CUDA device gives a block without opting in: 48 KiB. An
/// IVF-PQ scan block (its `m × 256` table and the residual) may take more where the device
/// lets a kernel opt in ([`Gpu`](crate::Gpu) asks at open: 227 KiB on Hopper, 163 KiB on
/// Ampere's A100, 99 KiB on Ada); at 48 KiB, 8-bit codes allow `m` up to 47 at `dim` 128.
pub(crate) const DEFAULT_SHARED_PER_BLOCK: usize = 48 * 1024;

/// Threads per block of `vq_kmeans_update` (one per component of a centroid).
pub(crate) const UPDATE_THREADS: u32 = 128;

/// Pushes a kernel's arguments onto a cudarc launch builder:
/// `push_args!(builder, SELECT_ARGS; a, b, ...)` does not compile unless there are exactly
/// `SELECT_ARGS` of them.
macro_rules! push_args {
    (@one $arg:expr) => {
        ()
    };
    ($builder:expr, $n:expr; $($arg:expr),+ $(,)?) => {{
        const _: () = assert!([$(push_args!(@one $arg)),+].len() == $n, "argument count differs from the kernel's");
        let builder = &mut $builder;
        $( builder.arg($arg); )+
    }};
}
pub(crate) use push_args;

/// Every kernel's entry point, as the module exports it.
#[cfg(test)]
const KERNEL_NAMES: [&str; 7] = [
    "vq_row_norms_f32",
    "vq_row_norms_f16",
    "vq_select_tile",
    "vq_ivf_scan",
    "vq_ivfsq_scan",
    "vq_ivfpq_scan",
    "vq_kmeans_update",
];

/// The module source: row norms (f32 and f16 storage), the tile top-k selection, the IVF-Flat,
/// IVF-SQ and IVF-PQ list scans and k-means' update step.
pub(crate) const SOURCE: &str = r#"
#define VQ_INF __int_as_float(0x7f800000)
#define VQ_NO_ID 0xffffffffffffffffull
#define VQ_MODE_IP 0
#define VQ_MODE_L2 1
#define VQ_MODE_KEYS 2

__device__ __forceinline__ float vq_to_f32(float v) { return v; }

// IEEE half bits to f32 (one PTX instruction; no header needed).
__device__ __forceinline__ float vq_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// Squared norm of each row accumulated in f32, one warp per row. The whole warp shares a row,
// so the early return leaves no lane of a live warp behind the shuffles.
template <typename T>
__device__ void vq_row_norms(const T* __restrict__ x, unsigned long long n, unsigned int dim,
                             float* __restrict__ out) {
    unsigned long long row = ((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    unsigned int lane = threadIdx.x & 31;
    if (row >= n) return;
    const T* r = x + row * dim;
    float s = 0.0f;
    for (unsigned int j = lane; j < dim; j += 32) {
        float v = vq_to_f32(r[j]);
        s = fmaf(v, v, s);
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0) out[row] = s;
}

extern "C" __global__ void vq_row_norms_f32(const float* __restrict__ x, unsigned long long n,
                                            unsigned int dim, float* __restrict__ out) {
    vq_row_norms(x, n, dim, out);
}

// Over f16 storage: the norms of the values the f16 GEMM multiplies, so L2 keys agree with it.
extern "C" __global__ void vq_row_norms_f16(const unsigned short* __restrict__ x, unsigned long long n,
                                            unsigned int dim, float* __restrict__ out) {
    vq_row_norms(x, n, dim, out);
}

// (key, id) order: smaller key first, ties to the smaller id (the vq convention).
__device__ __forceinline__ bool vq_after(float ka, unsigned long long ia, float kb, unsigned long long ib) {
    return ka > kb || (ka == kb && ia > ib);
}

// Whether row `pos` may be a result of a filtered search: bit pos of `allowed` (32-bit words,
// little bit first: plan::RowMask's layout), or every row when there is no filter (null).
__device__ __forceinline__ bool vq_allowed(const unsigned int* allowed, unsigned long long pos) {
    return !allowed || ((allowed[pos >> 5] >> (pos & 31)) & 1u) != 0;
}

// Bitonic sort of n (a power of two) (key, id) pairs in shared memory, ascending, by the whole
// block. Ends with a barrier.
__device__ void vq_bitonic_sort(float* keys, unsigned long long* ids, unsigned int n) {
    for (unsigned int size = 2; size <= n; size <<= 1) {
        for (unsigned int stride = size >> 1; stride > 0; stride >>= 1) {
            for (unsigned int t = threadIdx.x; t < n / 2; t += blockDim.x) {
                unsigned int i = 2 * stride * (t / stride) + (t % stride);
                unsigned int j = i + stride;
                bool ascending = (i & size) == 0;
                float ki = keys[i], kj = keys[j];
                unsigned long long ii = ids[i], ij = ids[j];
                if (vq_after(ki, ii, kj, ij) == ascending) {
                    keys[i] = kj; keys[j] = ki;
                    ids[i] = ij; ids[j] = ii;
                }
            }
            __syncthreads();
        }
    }
}

// One block per query: folds one tile of scores into the query's running top-k.
//
// ip: [nq][ntile] scores (row-major). What they are is `mode`'s:
//   VQ_MODE_IP (0): inner products (the GEMM's output); key -q.b;
//   VQ_MODE_L2 (1): inner products, with qnorms [nq] and bnorms [ntile] (the tile's slice):
//                   key max(|q|^2 + |b|^2 - 2 q.b, 0);
//   VQ_MODE_KEYS (2): the keys themselves (an IVF list scan's), +inf where there is no entry.
// Keys are "smaller is better". cand_ids [nq][ntile], when not null, gives each entry's id
// (VQ_NO_ID for none); otherwise ids of this tile are id0 + column, and `allowed` (null: no
// filter) says which of them may be results (a list scan filters its own entries and passes
// null here). run_keys / run_ids [nq][k]
// hold the running top-k sorted ascending (+inf / VQ_NO_ID padding).
//
// Shared memory: 2 * kp keys then 2 * kp ids (kp a power of two >= max(k, 2 * blockDim)). The lower
// half holds the current best (sorted), the upper half collects candidates that beat the k-th
// best; before a round could overflow the upper half, the whole buffer is sorted, which puts
// the best kp of both halves below. Every branch on shared state is taken by the whole block:
// the count is read into a register between two barriers.
extern "C" __global__ void vq_select_tile(const float* __restrict__ ip, const float* __restrict__ qnorms,
                                          const float* __restrict__ bnorms, unsigned int nq,
                                          unsigned int ntile, unsigned long long id0,
                                          const unsigned long long* __restrict__ cand_ids,
                                          const unsigned int* __restrict__ allowed, unsigned int k,
                                          unsigned int kp, int mode, float* __restrict__ run_keys,
                                          unsigned long long* __restrict__ run_ids) {
    extern __shared__ unsigned long long vq_smem[];
    unsigned long long* ids = vq_smem;
    float* keys = (float*)(vq_smem + 2 * kp);
    __shared__ unsigned int count;
    __shared__ float thr_key;
    __shared__ unsigned long long thr_id;

    unsigned int q = blockIdx.x;
    if (q >= nq) return;
    const unsigned long long rk = (unsigned long long)q * k;
    for (unsigned int i = threadIdx.x; i < 2 * kp; i += blockDim.x) {
        if (i < k) {
            keys[i] = run_keys[rk + i];
            ids[i] = run_ids[rk + i];
        } else {
            keys[i] = VQ_INF;
            ids[i] = VQ_NO_ID;
        }
    }
    if (threadIdx.x == 0) {
        count = 0;
        thr_key = run_keys[rk + k - 1];
        thr_id = run_ids[rk + k - 1];
    }
    __syncthreads();

    const float* row = ip + (unsigned long long)q * ntile;
    const unsigned long long* row_ids = cand_ids ? cand_ids + (unsigned long long)q * ntile : 0;
    const float qn = mode == VQ_MODE_L2 ? qnorms[q] : 0.0f;
    for (unsigned int start = 0; start < ntile; start += blockDim.x) {
        unsigned int j = start + threadIdx.x;
        if (j < ntile && (row_ids || vq_allowed(allowed, id0 + j))) {
            float v = row[j];
            float key = mode == VQ_MODE_L2 ? fmaxf(qn + bnorms[j] - 2.0f * v, 0.0f) : (mode == VQ_MODE_KEYS ? v : -v);
            unsigned long long id = row_ids ? row_ids[j] : id0 + j;
            if (key < thr_key || (key == thr_key && id < thr_id)) {
                unsigned int pos = atomicAdd(&count, 1u);
                keys[kp + pos] = key;
                ids[kp + pos] = id;
            }
        }
        __syncthreads();
        unsigned int c = count;
        __syncthreads();
        if (c + blockDim.x > kp) {
            vq_bitonic_sort(keys, ids, 2 * kp);
            for (unsigned int i = kp + threadIdx.x; i < 2 * kp; i += blockDim.x) {
                keys[i] = VQ_INF;
                ids[i] = VQ_NO_ID;
            }
            if (threadIdx.x == 0) {
                count = 0;
                thr_key = keys[k - 1];
                thr_id = ids[k - 1];
            }
            __syncthreads();
        }
    }
    vq_bitonic_sort(keys, ids, 2 * kp);
    for (unsigned int i = threadIdx.x; i < k; i += blockDim.x) {
        run_keys[rk + i] = keys[i];
        run_ids[rk + i] = ids[i];
    }
}

// Where candidate `pos` of a query is: the last probe whose first candidate is at or before
// pos (off[0] = 0 <= pos; empty lists share their successor's offset and are passed over) and
// the row it is at, or false past the query's last candidate. The host twin is `ivf::locate`.
__device__ __forceinline__ bool vq_locate(const unsigned long long* off, const unsigned int* probes,
                                          unsigned int nprobe, const unsigned long long* list_offsets,
                                          unsigned long long pos, unsigned int* probe, unsigned long long* row) {
    if (pos >= off[nprobe]) return false;
    unsigned int lo = 0, hi = nprobe - 1;
    while (lo < hi) {
        unsigned int mid = (lo + hi + 1) / 2;
        if (off[mid] <= pos) lo = mid; else hi = mid - 1;
    }
    *probe = lo;
    *row = list_offsets[probes[lo]] + (pos - off[lo]);
    return true;
}

// The candidate of the calling warp in a one-warp-per-candidate list scan: grid
// (ceil(ntile / warps per block), nq), warp j of the grid's row q takes position tile_start + j
// of query q, whose key and id go to out = q * ntile + j. False when the warp has nothing to
// score: past the grid's tile (nothing to write), or past the query's last candidate or at a
// row `allowed` filters out (lane 0 writes the padding, +inf and VQ_NO_ID). The whole warp shares the answer, so a warp that
// returns on false leaves no lane behind the shuffles.
__device__ __forceinline__ bool vq_warp_candidate(unsigned int nq, unsigned int ntile,
                                                  const unsigned long long* cand_offsets, const unsigned int* probes,
                                                  unsigned int nprobe, const unsigned long long* list_offsets,
                                                  const unsigned int* allowed, unsigned long long tile_start, float* keys,
                                                  unsigned long long* cand_ids, unsigned int* q, unsigned int* lane,
                                                  unsigned long long* out, unsigned int* probe,
                                                  unsigned long long* row) {
    *q = blockIdx.y;
    const unsigned int j = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    *lane = threadIdx.x & 31;
    if (*q >= nq || j >= ntile) return false;
    *out = (unsigned long long)*q * ntile + j;
    if (vq_locate(cand_offsets + (unsigned long long)*q * (nprobe + 1), probes + (unsigned long long)*q * nprobe,
                  nprobe, list_offsets, tile_start + j, probe, row) &&
        vq_allowed(allowed, *row))
        return true;
    if (*lane == 0) {
        keys[*out] = VQ_INF;
        cand_ids[*out] = VQ_NO_ID;
    }
    return false;
}

// IVF-Flat list scan: the keys of one tile of each query's candidates. A query's candidates are
// its probed lists' entries, list after list in probe order: candidate `pos` lies in probe p
// with cand_offsets[p] <= pos < cand_offsets[p + 1] (per query, nprobe + 1 prefix sums of the
// probed lists' sizes), at row list_offsets[probes[p]] + pos - cand_offsets[p] of `vectors` /
// `ids` (every list's rows, list after list).
//
// Grid (ceil(ntile / warps per block), nq); one warp per candidate (vq_warp_candidate).
// Writes keys [nq][ntile] (squared L2, or the negated inner product) and cand_ids [nq][ntile];
// past a query's last candidate, and at rows `allowed` filters out (null: none), +inf and
// VQ_NO_ID.
extern "C" __global__ void vq_ivf_scan(const float* __restrict__ queries, unsigned int nq, unsigned int dim,
                                       const float* __restrict__ vectors, const unsigned long long* __restrict__ ids,
                                       const unsigned int* __restrict__ allowed,
                                       const unsigned long long* __restrict__ list_offsets,
                                       const unsigned int* __restrict__ probes,
                                       const unsigned long long* __restrict__ cand_offsets, unsigned int nprobe,
                                       unsigned long long tile_start, unsigned int ntile, int l2,
                                       float* __restrict__ keys, unsigned long long* __restrict__ cand_ids) {
    unsigned int q, lane, p;
    unsigned long long out, row;
    if (!vq_warp_candidate(nq, ntile, cand_offsets, probes, nprobe, list_offsets, allowed, tile_start, keys,
                           cand_ids, &q, &lane, &out, &p, &row))
        return;
    const float* x = vectors + row * dim;
    const float* qv = queries + (unsigned long long)q * dim;
    float s = 0.0f;
    for (unsigned int c = lane; c < dim; c += 32) {
        float d = l2 ? qv[c] - x[c] : qv[c];
        s = fmaf(d, l2 ? d : x[c], s);
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0) {
        keys[out] = l2 ? s : -s;
        cand_ids[out] = ids[row];
    }
}

// Component c of a scalar-quantizer code, decoded as vq-quant decodes it: the float types are
// their value (VQ_SQFP16: IEEE half, VQ_SQBF16: bfloat16, two little-endian bytes each); the
// integer types' level l (VQ_SQ8: byte c; VQ_SQ6: 6 bits from bit 6c, little-endian across
// two bytes; VQ_SQ4: the low nibble of byte c / 2 for even c, the high for odd) decodes to
// ranges[c] + (l + 0.5) * ranges[dim + c], vq-quant's vmin and step (SQ4U's one range is
// uploaded once per dimension).
#define VQ_SQ8 0
#define VQ_SQFP16 1
#define VQ_SQ6 2
#define VQ_SQ4 3
#define VQ_SQBF16 4
__device__ __forceinline__ float vq_sq_component(int kind, const unsigned char* code, unsigned int c,
                                                 const float* ranges, unsigned int dim) {
    unsigned int level;
    switch (kind) {
    case VQ_SQFP16: return vq_to_f32((unsigned short)(code[2 * c] | (code[2 * c + 1] << 8)));
    case VQ_SQBF16: return __uint_as_float((unsigned int)(code[2 * c] | (code[2 * c + 1] << 8)) << 16);
    case VQ_SQ8: level = code[c]; break;
    case VQ_SQ6: {
        // Bits 6c .. 6c + 5; the next byte only when they cross into it (it then exists).
        const unsigned int byte = 6 * c / 8, shift = 6 * c % 8;
        level = code[byte] >> shift;
        if (shift > 2) level |= (unsigned int)code[byte + 1] << (8 - shift);
        level &= 63u;
        break;
    }
    default: level = (code[c / 2] >> ((c & 1) * 4)) & 15u; break;
    }
    return ranges[c] + ((float)level + 0.5f) * ranges[dim + c];
}

// IVF-SQ list scan over every scalar quantizer vq-quant has (`kind`, vq_sq_component). Codes
// are residuals from the list's centroid, as vq-ivf's IVF-SQ stores them: the L2 key is
// |(q - centroid) - r|^2; the inner-product key is probe_base (the negated coarse inner
// product) minus q.r. Layout, grid and padding as vq_ivf_scan.
extern "C" __global__ void vq_ivfsq_scan(const float* __restrict__ queries, unsigned int nq, unsigned int dim,
                                         const float* __restrict__ centroids, const float* __restrict__ ranges,
                                         int kind, unsigned int code_size, const unsigned char* __restrict__ codes,
                                         const unsigned long long* __restrict__ ids,
                                         const unsigned int* __restrict__ allowed,
                                         const unsigned long long* __restrict__ list_offsets,
                                         const unsigned int* __restrict__ probes,
                                         const float* __restrict__ probe_base,
                                         const unsigned long long* __restrict__ cand_offsets, unsigned int nprobe,
                                         unsigned long long tile_start, unsigned int ntile, int l2,
                                         float* __restrict__ keys, unsigned long long* __restrict__ cand_ids) {
    unsigned int q, lane, p;
    unsigned long long out, row;
    if (!vq_warp_candidate(nq, ntile, cand_offsets, probes, nprobe, list_offsets, allowed, tile_start, keys,
                           cand_ids, &q, &lane, &out, &p, &row))
        return;
    const unsigned int list = probes[(unsigned long long)q * nprobe + p];
    const unsigned char* code = codes + row * code_size;
    const float* cent = centroids + (unsigned long long)list * dim;
    const float* qv = queries + (unsigned long long)q * dim;
    float s = 0.0f;
    for (unsigned int c = lane; c < dim; c += 32) {
        float r = vq_sq_component(kind, code, c, ranges, dim);
        if (l2) {
            float d = (qv[c] - cent[c]) - r;
            s = fmaf(d, d, s);
        } else {
            s = fmaf(qv[c], r, s);
        }
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0) {
        keys[out] = l2 ? s : probe_base[(unsigned long long)q * nprobe + p] - s;
        cand_ids[out] = ids[row];
    }
}

// IVF-PQ list scan (8-bit codes, 256 entries per sub-table): the keys of one tile of each
// query's candidates, laid out as vq_ivf_scan's (probe p's entries at positions
// cand_offsets[p] .. cand_offsets[p + 1], rows list_offsets[list] + pos - cand_offsets[p]).
//
// Grid (nprobe, nq): one block per (probe, query). A block whose probe has entries in the tile
// builds the probe's table in shared memory: entry (j, c) is the squared L2 distance from the
// residual q - centroid[list] to codeword c of sub-quantizer j (l2), or minus the inner
// product of the query with it (inner product: codes of residuals, the list's own term is
// probe_base, the negated coarse inner product). An entry's key is then probe_base plus the m
// table entries its code selects; an entry at a row `allowed` filters out (null: none) gets
// the padding (+inf, VQ_NO_ID). The last probe's block also writes the padding of the tile's
// positions past the query's last candidate, so every position is written exactly once. Every branch around a barrier depends only on (p, q): whole blocks.
//
// codebooks [m][256][dim / m]; codes [n][m]; probe_base [nq][nprobe].
// Dynamic shared memory: m * 256 + dim floats.
extern "C" __global__ void vq_ivfpq_scan(const float* __restrict__ queries, unsigned int nq, unsigned int dim,
                                         const float* __restrict__ centroids, const float* __restrict__ codebooks,
                                         unsigned int m, const unsigned char* __restrict__ codes,
                                         const unsigned long long* __restrict__ ids,
                                         const unsigned int* __restrict__ allowed,
                                         const unsigned long long* __restrict__ list_offsets,
                                         const unsigned int* __restrict__ probes,
                                         const float* __restrict__ probe_base,
                                         const unsigned long long* __restrict__ cand_offsets, unsigned int nprobe,
                                         unsigned long long tile_start, unsigned int ntile, int l2,
                                         float* __restrict__ keys, unsigned long long* __restrict__ cand_ids) {
    extern __shared__ float vq_pq_smem[];
    float* table = vq_pq_smem;
    float* residual = vq_pq_smem + m * 256;
    const unsigned int p = blockIdx.x, q = blockIdx.y;
    if (p >= nprobe || q >= nq) return;
    const unsigned long long* off = cand_offsets + (unsigned long long)q * (nprobe + 1);
    const unsigned long long tile_end = tile_start + ntile;
    const bool last = p + 1 == nprobe;
    // Positions this block writes: its probe's entries, and for the last probe everything
    // after them too (the padding); clipped to the tile.
    const unsigned long long lo = off[p] > tile_start ? off[p] : tile_start;
    const unsigned long long hi = last ? tile_end : (off[p + 1] < tile_end ? off[p + 1] : tile_end);
    if (lo >= hi) return;
    const unsigned long long entries_end = off[p + 1] < hi ? off[p + 1] : hi;
    if (lo < entries_end) {
        const unsigned int list = probes[(unsigned long long)q * nprobe + p];
        const float* qv = queries + (unsigned long long)q * dim;
        const float* c = centroids + (unsigned long long)list * dim;
        for (unsigned int i = threadIdx.x; i < dim; i += blockDim.x) residual[i] = l2 ? qv[i] - c[i] : qv[i];
        __syncthreads();
        const unsigned int dsub = dim / m;
        for (unsigned int e = threadIdx.x; e < m * 256; e += blockDim.x) {
            const float* word = codebooks + (unsigned long long)e * dsub;
            const float* r = residual + (e / 256) * dsub;
            float s = 0.0f;
            for (unsigned int t = 0; t < dsub; ++t) {
                float d = l2 ? r[t] - word[t] : r[t];
                s = fmaf(d, l2 ? d : word[t], s);
            }
            table[e] = l2 ? s : -s;
        }
        __syncthreads();
        const float base = probe_base[(unsigned long long)q * nprobe + p];
        const unsigned long long first_row = list_offsets[list];
        for (unsigned long long pos = lo + threadIdx.x; pos < entries_end; pos += blockDim.x) {
            const unsigned long long row = first_row + (pos - off[p]);
            const unsigned long long out = (unsigned long long)q * ntile + (pos - tile_start);
            if (!vq_allowed(allowed, row)) {
                keys[out] = VQ_INF;
                cand_ids[out] = VQ_NO_ID;
                continue;
            }
            const unsigned char* code = codes + row * m;
            float s = base;
            for (unsigned int j = 0; j < m; ++j) s += table[j * 256 + code[j]];
            keys[out] = s;
            cand_ids[out] = ids[row];
        }
    }
    if (last) {
        const unsigned long long pad = off[nprobe] > lo ? off[nprobe] : lo;
        for (unsigned long long pos = pad + threadIdx.x; pos < hi; pos += blockDim.x) {
            const unsigned long long out = (unsigned long long)q * ntile + (pos - tile_start);
            keys[out] = VQ_INF;
            cand_ids[out] = VQ_NO_ID;
        }
    }
}

// k-means' update step, bit for bit vq_cluster::update_means: centroid c, component d becomes
// the mean of its points' component d. Per (c, d): the members in order, in groups of
// VQ_UPDATE_PARTIAL (vq_cluster::UPDATE_PARTIAL) summed in f32 from zero, each group's sum
// added into an f64 total from zero, then (total * (1.0 / count)) rounded to f32. Only
// additions in a fixed order and one multiplication, so nothing is contracted into an FMA and
// the CPU's results are reproduced. Clusters without points are left as they are.
//
// points [n][dim]; order: every point index, cluster after cluster, increasing within a
// cluster; offsets [k + 1]: cluster c's points are order[offsets[c] .. offsets[c + 1]].
// Grid (k, ceil(dim / blockDim.x)); one thread per (cluster, component): a warp reads 32
// consecutive components of one row, and each thread keeps 8 rows' loads in flight before
// adding them in order.
#define VQ_UPDATE_PARTIAL 64
extern "C" __global__ void vq_kmeans_update(const float* __restrict__ points, unsigned int dim,
                                            const unsigned int* __restrict__ order,
                                            const unsigned long long* __restrict__ offsets, unsigned int k,
                                            float* __restrict__ centroids) {
    unsigned int c = blockIdx.x;
    unsigned int d = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= k || d >= dim) return;
    const unsigned long long begin = offsets[c], end = offsets[c + 1];
    if (begin == end) return;
    double total = 0.0;
    for (unsigned long long g = begin; g < end; g += VQ_UPDATE_PARTIAL) {
        const unsigned long long group_end = g + VQ_UPDATE_PARTIAL < end ? g + VQ_UPDATE_PARTIAL : end;
        float part = 0.0f;
        unsigned long long i = g;
        for (; i + 8 <= group_end; i += 8) {
            float v[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) v[u] = points[(unsigned long long)order[i + u] * dim + d];
#pragma unroll
            for (int u = 0; u < 8; ++u) part += v[u];
        }
        for (; i < group_end; ++i) part += points[(unsigned long long)order[i] * dim + d];
        total += (double)part;
    }
    const double inv = 1.0 / (double)(end - begin);
    centroids[(unsigned long long)c * dim + d] = __double2float_rn(total * inv);
}
"#;

/// Whether libnvrtc can be loaded (by the names cudarc tries; see the crate README).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen libnvrtc under cudarc's candidate names and closes it again;
    // no symbol is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles the kernel sources to PTX with NVRTC. Needs libnvrtc, not a GPU: the PTX targets NVRTC's
/// default virtual architecture and the driver JIT-compiles it for the device on load.
///
/// # Errors
/// [`Error::NoDevice`] when libnvrtc cannot be loaded, [`Error::Compile`] with NVRTC's log when
/// the source does not compile.
pub fn compile_ptx() -> Result<cudarc::nvrtc::Ptx> {
    if !nvrtc_present() {
        return Err(Error::NoDevice { reason: "libnvrtc not found (searched cudarc's candidate names)".into() });
    }
    let opts = cudarc::nvrtc::CompileOptions { name: Some("vq_gpu.cu".into()), ..Default::default() };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
        .map_err(|e| Error::Compile { what: "vq_gpu.cu", log: format!("{e}") })
}

/// The shared-memory capacity `kp` of the selection kernel for `k`: the next power of two at or
/// above `max(k, 2 * SELECT_THREADS)`. At least one round of candidates must fit beside the
/// best (the kernel's invariant); twice that lets a small k collect several rounds of
/// candidates per sort.
pub(crate) fn select_capacity(k: usize) -> usize {
    k.max(2 * SELECT_THREADS as usize).next_power_of_two()
}

/// Dynamic shared memory of one selection block for `k`, in bytes (keys f32 + ids u64).
pub(crate) fn select_shared_bytes(k: usize) -> usize {
    2 * select_capacity(k) * (4 + 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_fits_the_default_block_limit_at_max_k() {
        assert!(select_shared_bytes(MAX_K) + 16 <= 48 * 1024);
        assert_eq!(select_capacity(1), 2 * SELECT_THREADS as usize);
        assert_eq!(select_capacity(MAX_K), MAX_K);
        assert_eq!(select_capacity(700), 1024);
    }

    /// NVRTC needs no GPU: wherever libnvrtc loads (CI points `LD_LIBRARY_PATH` at the pinned
    /// `nvidia-cuda-nvrtc` wheel), every kernel is compiled here and its entry checked in the PTX.
    #[test]
    fn kernels_compile_with_nvrtc() {
        if !nvrtc_present() {
            // CI sets VQ_GPU_REQUIRE_NVRTC=1 where it installed libnvrtc: a skip there is a failure.
            assert!(
                std::env::var_os("VQ_GPU_REQUIRE_NVRTC").is_none(),
                "VQ_GPU_REQUIRE_NVRTC is set but libnvrtc did not load"
            );
            eprintln!("skipped: libnvrtc not found (set LD_LIBRARY_PATH to a CUDA 13 or 12 lib folder)");
            return;
        }
        let ptx = compile_ptx().unwrap_or_else(|e| panic!("{e}"));
        let text = ptx.to_src();
        for name in KERNEL_NAMES {
            assert!(text.contains(&format!(".entry {name}(")), "{name} missing from the PTX");
        }
    }

    /// The parameter counts the launches are held to (`push_args!`) are the kernels' own.
    #[test]
    fn launch_argument_counts_match_the_ptx_entries() {
        if !nvrtc_present() {
            assert!(
                std::env::var_os("VQ_GPU_REQUIRE_NVRTC").is_none(),
                "VQ_GPU_REQUIRE_NVRTC is set but libnvrtc did not load"
            );
            eprintln!("skipped: libnvrtc not found");
            return;
        }
        let text = compile_ptx().unwrap_or_else(|e| panic!("{e}")).to_src();
        let expected = [
            ("vq_row_norms_f32", ROW_NORMS_ARGS),
            ("vq_row_norms_f16", ROW_NORMS_ARGS),
            ("vq_select_tile", SELECT_ARGS),
            ("vq_ivf_scan", IVF_SCAN_ARGS),
            ("vq_ivfsq_scan", IVFSQ_SCAN_ARGS),
            ("vq_ivfpq_scan", IVFPQ_SCAN_ARGS),
            ("vq_kmeans_update", KMEANS_UPDATE_ARGS),
        ];
        for (name, n) in expected {
            let start = text.find(&format!(".entry {name}(")).unwrap_or_else(|| panic!("{name} missing"));
            let params = &text[start..start + text[start..].find(')').expect("the entry's parameter list closes")];
            assert_eq!(params.matches(".param").count(), n, "{name}: {params}");
        }
    }

    /// The kernel's group size is vq-cluster's: both sides sum the same groups.
    #[test]
    fn the_update_kernel_groups_rows_as_vq_cluster_does() {
        assert!(SOURCE.contains(&format!("#define VQ_UPDATE_PARTIAL {}\n", vq_cluster::UPDATE_PARTIAL)));
    }

    #[test]
    fn every_kernel_name_is_defined_in_the_source() {
        for name in KERNEL_NAMES {
            assert!(SOURCE.contains(&format!("__global__ void {name}(")), "{name}");
        }
    }
}
