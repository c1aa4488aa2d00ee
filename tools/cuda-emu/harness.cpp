// vq-gpu's kernels, run on the CPU by emu.hpp with the launch shapes the Rust side uses, each
// against a plain reference. Built with -ffp-contract=off, so a reference written with the
// kernel's operations (its fmaf calls, its order of sums) must match it bit for bit.
#include "emu.hpp"

#include <algorithm>
#include <random>
#include <string>
#include <utility>

#include "kernels.inc"

static int checks = 0;
// --quick (the ThreadSanitizer run, where every barrier is slow): the selection at two k only.
static bool quick = false;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        ++checks;                                                          \
        if (!(cond)) {                                                     \
            std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            std::fprintf(stderr, __VA_ARGS__);                             \
            std::fputc('\n', stderr);                                      \
            std::exit(1);                                                  \
        }                                                                  \
    } while (0)

using u64 = unsigned long long;
static const u64 NO_ID = ~0ull;
static std::mt19937_64 rng(12345);

static float uniform() { return std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng); }
static unsigned below(unsigned n) { return std::uniform_int_distribution<unsigned>(0, n - 1)(rng); }

// A search filter as plan.rs' RowMask: one bit per row, 32-bit words, lowest bit first. Rows
// are kept with probability 2/3; `allows` reads it as the reference.
struct Mask {
    std::vector<unsigned> words;
    explicit Mask(u64 rows) : words((rows + 31) / 32) {
        for (u64 r = 0; r < rows; ++r)
            if (below(3) != 0) words[r / 32] |= 1u << (r % 32);
    }
    bool allows(u64 row) const { return (words[row / 32] >> (row % 32)) & 1u; }
};

// plan.rs / kernels.rs: the selection's shared capacity for k.
static unsigned select_capacity(unsigned k) {
    unsigned kp = std::max<unsigned>(k, 2 * VQ_RS_SELECT_THREADS), p = 1;
    while (p < kp) p <<= 1;
    return p;
}

// Rows of squared norms: f32 and f16 storage, rows not a multiple of the 8 warps per block.
static void row_norms() {
    const unsigned n = 37, dim = 45;
    std::vector<float> x(n * dim);
    std::vector<unsigned short> h(n * dim);
    for (auto& v : x) v = uniform();
    for (auto& v : h) v = static_cast<unsigned short>(below(0x7800));  // finite halves
    std::vector<float> out(n, NAN), out16(n, NAN);
    dim3 grid{(n + 7) / 8, 1, 1}, block{256, 1, 1};
    emu::launch(grid, block, 0, [&] { vq_row_norms_f32(x.data(), n, dim, out.data()); });
    emu::launch(grid, block, 0, [&] { vq_row_norms_f16(h.data(), n, dim, out16.data()); });
    for (unsigned r = 0; r < n; ++r) {
        double want = 0, want16 = 0;
        for (unsigned c = 0; c < dim; ++c) {
            want += double(x[r * dim + c]) * x[r * dim + c];
            double f = emu::half_to_float(h[r * dim + c]);
            want16 += f * f;
        }
        CHECK(std::abs(out[r] - want) <= 1e-5 * std::max(1.0, want), "norm %u: %g vs %g", r, out[r], want);
        CHECK(std::abs(out16[r] - want16) <= 1e-5 * std::max(1.0, want16), "f16 norm %u: %g vs %g", r, out16[r], want16);
    }
}

// The running top-k through several tiles, every mode, k from 1 to MAX_K, keys with many ties;
// the two modes over base rows (ids id0 + column) also with a filter (mode + 3 below).
static void select_tile() {
    const unsigned nq = 3;
    const unsigned tiles[] = {1000, 700, 1, 2500};
    const Mask mask(1000 + 700 + 1 + 2500);
    const std::vector<unsigned> ks = quick ? std::vector<unsigned>{7, 1024} : std::vector<unsigned>{1, 7, 100, 513, 1024};
    for (unsigned k : ks) {
        for (int variant : {0, 1, 2, 3, 4}) {
            const int mode = variant % 3;
            const Mask* allowed = variant >= 3 ? &mask : nullptr;
            const unsigned kp = select_capacity(k);
            std::vector<float> run_keys(nq * k, INFINITY);
            std::vector<u64> run_ids(nq * k, NO_ID);
            std::vector<float> qnorms(nq);
            for (auto& v : qnorms) v = float(below(50));
            std::vector<std::vector<std::pair<float, u64>>> all(nq);
            u64 id0 = 0;
            for (unsigned ntile : tiles) {
                // Small integers: many exact ties, so the id rule decides.
                std::vector<float> scores(nq * ntile), bnorms(ntile);
                std::vector<u64> cand(nq * ntile);
                for (auto& v : scores) v = float(int(below(40)) - 20);
                for (auto& v : bnorms) v = float(below(50));
                for (unsigned q = 0; q < nq; ++q)
                    for (unsigned j = 0; j < ntile; ++j) {
                        u64 id = mode == 2 ? u64(below(1u << 20)) * 8 + q : id0 + j;
                        // KEYS mode: some padding entries, as a scan writes past a query's end.
                        if (mode == 2 && below(10) == 0) {
                            scores[q * ntile + j] = INFINITY;
                            id = NO_ID;
                        }
                        cand[q * ntile + j] = id;
                        float v = scores[q * ntile + j];
                        float key = mode == 1 ? fmaxf(qnorms[q] + bnorms[j] - 2.0f * v, 0.0f) : (mode == 2 ? v : -v);
                        if (id != NO_ID && (!allowed || allowed->allows(id))) all[q].push_back({key, id});
                    }
                emu::launch(dim3{nq, 1, 1}, dim3{VQ_RS_SELECT_THREADS, 1, 1}, 2 * kp * 12, [&] {
                    vq_select_tile(scores.data(), qnorms.data(), bnorms.data(), nq, ntile, id0,
                                   mode == 2 ? cand.data() : nullptr, allowed ? allowed->words.data() : nullptr, k,
                                   kp, mode, run_keys.data(), run_ids.data());
                });
                id0 += ntile;
            }
            for (unsigned q = 0; q < nq; ++q) {
                auto& a = all[q];
                std::sort(a.begin(), a.end());
                // KEYS mode may draw one id twice: the kernel keeps both entries, as the sort does.
                for (unsigned i = 0; i < k; ++i) {
                    float wk = i < a.size() ? a[i].first : INFINITY;
                    u64 wi = i < a.size() ? a[i].second : NO_ID;
                    CHECK(run_keys[q * k + i] == wk && run_ids[q * k + i] == wi,
                          "select k=%u variant=%d query %u rank %u: (%g, %llu) vs (%g, %llu)", k, variant, q, i,
                          run_keys[q * k + i], run_ids[q * k + i], wk, wi);
                }
            }
        }
    }
}

// A query's lists: sizes (some empty), probes (one past the last list: padding), offsets.
struct Lists {
    std::vector<unsigned> sizes;
    std::vector<u64> list_offsets;
    std::vector<unsigned> probes;  // [nq][nprobe]
    std::vector<u64> cand_offsets; // [nq][nprobe + 1]
    std::vector<u64> ids;
    unsigned nprobe;
};

static Lists make_lists(unsigned nq, unsigned nlist, unsigned nprobe) {
    Lists l;
    l.nprobe = nprobe;
    for (unsigned i = 0; i < nlist; ++i) l.sizes.push_back(i % 3 == 1 ? 0 : below(40));
    l.list_offsets.push_back(0);
    for (unsigned s : l.sizes) l.list_offsets.push_back(l.list_offsets.back() + s);
    for (u64 i = 0; i < l.list_offsets.back(); ++i) l.ids.push_back(i * 7 + 3);
    for (unsigned q = 0; q < nq; ++q) {
        u64 acc = 0;
        l.cand_offsets.push_back(0);
        for (unsigned p = 0; p < nprobe; ++p) {
            unsigned list = (q == 1 && p == nprobe - 1) ? 0xffffffffu : below(nlist);  // padding probe
            l.probes.push_back(list);
            acc += list < nlist ? l.sizes[list] : 0;
            l.cand_offsets.push_back(acc);
        }
    }
    return l;
}

// The row of candidate pos of query q, or none past its last (ivf.rs' `locate`).
static bool locate(const Lists& l, unsigned q, u64 pos, u64& row, unsigned& probe) {
    const u64* off = &l.cand_offsets[q * (l.nprobe + 1)];
    if (pos >= off[l.nprobe]) return false;
    for (unsigned p = 0; p < l.nprobe; ++p)
        if (pos < off[p + 1]) {
            probe = p;
            row = l.list_offsets[l.probes[q * l.nprobe + p]] + (pos - off[p]);
            return true;
        }
    return false;
}

// What every one-warp-per-candidate scan is checked for, at both metrics, without and with a
// filter, over tiles that start at 0, mid-way and run past the last candidate:
// `scan(start, ntile, l2, allowed, keys, cand)` runs the kernel's body (launched here with the
// Rust side's grid), then each position holds the padding past its query's last candidate or
// at a filtered-out row, or `want(q, probe, row, l2)` within `rel` and the row's id.
template <class Scan, class Want>
static void check_warp_scan(const char* what, const Lists& l, unsigned nq, double rel, Scan scan, Want want) {
    const Mask mask(l.list_offsets.back());
    for (const Mask* allowed : {static_cast<const Mask*>(nullptr), &mask})
    for (int l2 : {0, 1})
        for (std::pair<u64, unsigned> tile : {std::pair<u64, unsigned>{0, 200}, {5, 17}, {30, 9}}) {
            auto [start, ntile] = tile;
            std::vector<float> keys(nq * ntile, NAN);
            std::vector<u64> cand(nq * ntile, 0);
            dim3 grid{(ntile + VQ_RS_SCAN_WARPS - 1) / VQ_RS_SCAN_WARPS, nq, 1}, block{32 * VQ_RS_SCAN_WARPS, 1, 1};
            const unsigned* words = allowed ? allowed->words.data() : nullptr;
            emu::launch(grid, block, 0, [&] { scan(start, ntile, l2, words, keys.data(), cand.data()); });
            for (unsigned q = 0; q < nq; ++q)
                for (unsigned j = 0; j < ntile; ++j) {
                    u64 row;
                    unsigned p;
                    const float got = keys[q * ntile + j];
                    if (!locate(l, q, start + j, row, p) || (allowed && !allowed->allows(row))) {
                        CHECK(got == INFINITY && cand[q * ntile + j] == NO_ID, "%s padding q %u pos %llu", what, q,
                              start + j);
                        continue;
                    }
                    const double w = want(q, p, row, l2);
                    CHECK(std::abs(got - w) <= rel * std::max(1.0, std::abs(w)) && cand[q * ntile + j] == l.ids[row],
                          "%s l2=%d q %u pos %llu: %g vs %g", what, l2, q, start + j, got, w);
                }
        }
}

// IVF-Flat: the exact distance to each located row.
static void ivf_scan() {
    const unsigned nq = 3, nlist = 7, nprobe = 4, dim = 37;
    Lists l = make_lists(nq, nlist, nprobe);
    std::vector<float> vectors(l.list_offsets.back() * dim), queries(nq * dim);
    for (auto& v : vectors) v = uniform();
    for (auto& v : queries) v = uniform();
    check_warp_scan(
        "flat", l, nq, 1e-5,
        [&](u64 start, unsigned ntile, int l2, const unsigned* allowed, float* keys, u64* cand) {
            vq_ivf_scan(queries.data(), nq, dim, vectors.data(), l.ids.data(), allowed, l.list_offsets.data(),
                        l.probes.data(), l.cand_offsets.data(), nprobe, start, ntile, l2, keys, cand);
        },
        [&](unsigned q, unsigned, u64 row, int l2) {
            double want = 0;
            for (unsigned c = 0; c < dim; ++c) {
                double d = l2 ? double(queries[q * dim + c]) - vectors[row * dim + c] : queries[q * dim + c];
                want += d * (l2 ? d : vectors[row * dim + c]);
            }
            return l2 ? want : -want;
        });
}

// IVF-SQ, every code layout (8, 6 and 4 bits with per-dimension ranges, IEEE half, bfloat16):
// residual codes, decoded per component as vq-quant decodes them; inner product adds the
// probe's base. At dim 38 the last 6-bit component crosses into the row's last byte; at 37 it
// ends inside its own byte, so reading the next one would leave the code (AddressSanitizer:
// the codes end at the buffer's end).
static void ivfsq_scan(unsigned dim) {
    const unsigned nq = 3, nlist = 7, nprobe = 4;
    Lists l = make_lists(nq, nlist, nprobe);
    std::vector<float> queries(nq * dim), centroids(nlist * dim), ranges(2 * dim), base(nq * nprobe);
    for (auto& v : queries) v = uniform();
    for (auto& v : centroids) v = uniform();
    for (auto& v : ranges) v = uniform();
    for (auto& v : base) v = uniform();
    const std::pair<int, const char*> kinds[] = {
        {VQ_SQ8, "sq8"}, {VQ_SQ6, "sq6"}, {VQ_SQ4, "sq4"}, {VQ_SQFP16, "sqfp16"}, {VQ_SQBF16, "sqbf16"}};
    for (auto [kind, name] : kinds) {
        const bool float_type = kind == VQ_SQFP16 || kind == VQ_SQBF16;
        const unsigned code_size =
            float_type ? 2 * dim : kind == VQ_SQ8 ? dim : kind == VQ_SQ6 ? (6 * dim + 7) / 8 : (dim + 1) / 2;
        std::vector<unsigned char> codes(l.list_offsets.back() * code_size);
        for (std::size_t i = 0; i < codes.size(); ++i) {
            // High bytes of the float types: the sign, and an exponent that keeps the value finite
            // and moderate (half: below 0x78; bfloat16: 2^-7 .. 2^2).
            const unsigned sign = below(2) << 7;
            codes[i] = static_cast<unsigned char>(!float_type || i % 2 == 0 ? below(256)
                                                  : kind == VQ_SQFP16   ? sign | below(0x78)
                                                                        : sign | (0x3C + below(4)));
        }
        // vq-quant's decoders (Code::component), written from its formulas, not the kernel's.
        auto decode = [&](u64 row, unsigned c) {
            const unsigned char* code = &codes[row * code_size];
            unsigned level;
            switch (kind) {
            case VQ_SQFP16: return emu::half_to_float(static_cast<unsigned short>(code[2 * c] | (code[2 * c + 1] << 8)));
            case VQ_SQBF16: return std::bit_cast<float>(unsigned(code[2 * c] | (code[2 * c + 1] << 8)) << 16);
            case VQ_SQ8: level = code[c]; break;
            case VQ_SQ6: {
                const unsigned bit = 6 * c, hi = bit / 8 + 1 < code_size ? code[bit / 8 + 1] : 0;
                level = ((code[bit / 8] | (hi << 8)) >> (bit % 8)) & 63;
                break;
            }
            default: level = (code[c / 2] >> ((c & 1) * 4)) & 15; break;
            }
            return ranges[c] + (float(level) + 0.5f) * ranges[dim + c];
        };
        check_warp_scan(
            name, l, nq, 1e-4,
            [&](u64 start, unsigned ntile, int l2, const unsigned* allowed, float* keys, u64* cand) {
                vq_ivfsq_scan(queries.data(), nq, dim, centroids.data(), ranges.data(), kind, code_size, codes.data(),
                              l.ids.data(), allowed, l.list_offsets.data(), l.probes.data(), base.data(), l.cand_offsets.data(),
                              nprobe, start, ntile, l2, keys, cand);
            },
            [&](unsigned q, unsigned p, u64 row, int l2) {
                const unsigned list = l.probes[q * nprobe + p];
                double want = 0;
                for (unsigned c = 0; c < dim; ++c) {
                    double r = decode(row, c), qc = queries[q * dim + c];
                    double d = qc - centroids[list * dim + c] - r;
                    want += l2 ? d * d : qc * r;
                }
                return l2 ? want : base[q * nprobe + p] - want;
            });
    }
}

// IVF-PQ: one block per (probe, query); the table in shared memory at the launch's exact size.
static void ivfpq_scan() {
    const unsigned nq = 3, nlist = 7, nprobe = 4, m = 3, dsub = 5, dim = m * dsub;
    Lists l = make_lists(nq, nlist, nprobe);
    std::vector<float> queries(nq * dim), centroids(nlist * dim), codebooks(m * 256 * dsub);
    std::vector<float> base(nq * nprobe);
    std::vector<unsigned char> codes(l.list_offsets.back() * m);
    for (auto& v : queries) v = uniform();
    for (auto& v : centroids) v = uniform();
    for (auto& v : codebooks) v = uniform();
    for (auto& v : base) v = uniform();
    for (auto& v : codes) v = static_cast<unsigned char>(below(256));
    const Mask mask(l.list_offsets.back());
    for (const Mask* allowed : {static_cast<const Mask*>(nullptr), &mask})
    for (int l2 : {0, 1})
        for (std::pair<u64, unsigned> tile : {std::pair<u64, unsigned>{0, 200}, {5, 17}, {30, 9}, {0, 1}}) {
            auto [start, ntile] = tile;
            std::vector<float> keys(nq * ntile, NAN);
            std::vector<u64> cand(nq * ntile, 0);
            emu::launch(dim3{nprobe, nq, 1}, dim3{VQ_RS_PQ_SCAN_THREADS, 1, 1}, (m * 256 + dim) * 4, [&] {
                vq_ivfpq_scan(queries.data(), nq, dim, centroids.data(), codebooks.data(), m, codes.data(),
                              l.ids.data(), allowed ? allowed->words.data() : nullptr, l.list_offsets.data(), l.probes.data(), base.data(),
                              l.cand_offsets.data(), nprobe, start, ntile, l2, keys.data(), cand.data());
            });
            for (unsigned q = 0; q < nq; ++q)
                for (unsigned j = 0; j < ntile; ++j) {
                    u64 row;
                    unsigned p;
                    float got = keys[q * ntile + j];
                    if (!locate(l, q, start + j, row, p) || (allowed && !allowed->allows(row))) {
                        CHECK(got == INFINITY && cand[q * ntile + j] == NO_ID, "pq padding q %u pos %llu: %g", q,
                              start + j, got);
                        continue;
                    }
                    // The kernel's own arithmetic: fmaf per component, then base + table sums.
                    const unsigned list = l.probes[q * nprobe + p];
                    float s = base[q * nprobe + p];
                    for (unsigned sub = 0; sub < m; ++sub) {
                        const float* word = &codebooks[(sub * 256 + codes[row * m + sub]) * dsub];
                        float t = 0.0f;
                        for (unsigned c = 0; c < dsub; ++c) {
                            float qc = queries[q * dim + sub * dsub + c];
                            float r = l2 ? qc - centroids[list * dim + sub * dsub + c] : qc;
                            float d = l2 ? r - word[c] : r;
                            t = fmaf(d, l2 ? d : word[c], t);
                        }
                        s += l2 ? t : -t;
                    }
                    CHECK(got == s && cand[q * ntile + j] == l.ids[row], "pq l2=%d q %u pos %llu: %g vs %g", l2, q,
                          start + j, got, s);
                }
        }
}

// k-means' update: the documented arithmetic of vq_cluster::update_means, bit for bit.
static void kmeans_update() {
    const unsigned n = 300, dim = 130, k = 7;  // dim past one block of components
    std::vector<float> points(n * dim);
    for (auto& v : points) v = uniform() * 100.0f;
    std::vector<unsigned> labels(n);
    for (unsigned i = 0; i < n; ++i) labels[i] = i % 2 ? 0 : 1 + below(k - 2);  // cluster k - 1 empty, 0 large
    std::vector<u64> offsets(k + 1, 0);
    for (unsigned lab : labels) offsets[lab + 1]++;
    for (unsigned c = 0; c < k; ++c) offsets[c + 1] += offsets[c];
    std::vector<unsigned> order(n);
    std::vector<u64> fill(offsets.begin(), offsets.end() - 1);
    for (unsigned i = 0; i < n; ++i) order[fill[labels[i]]++] = i;
    std::vector<float> centroids(k * dim), start(k * dim);
    for (auto& v : start) v = uniform();
    centroids = start;
    emu::launch(dim3{k, (dim + VQ_RS_UPDATE_THREADS - 1) / VQ_RS_UPDATE_THREADS, 1}, dim3{VQ_RS_UPDATE_THREADS, 1, 1}, 0,
                [&] { vq_kmeans_update(points.data(), dim, order.data(), offsets.data(), k, centroids.data()); });
    for (unsigned c = 0; c < k; ++c)
        for (unsigned d = 0; d < dim; ++d) {
            float want = start[c * dim + d];
            if (offsets[c + 1] > offsets[c]) {
                double total = 0;
                for (u64 g = offsets[c]; g < offsets[c + 1]; g += 64) {
                    float part = 0;
                    for (u64 i = g; i < std::min<u64>(g + 64, offsets[c + 1]); ++i) part += points[order[i] * dim + d];
                    total += part;
                }
                want = float(total * (1.0 / double(offsets[c + 1] - offsets[c])));
            }
            CHECK(std::bit_cast<unsigned>(centroids[c * dim + d]) == std::bit_cast<unsigned>(want),
                  "update c %u d %u: %g vs %g", c, d, centroids[c * dim + d], want);
        }
}

int main(int argc, char** argv) {
    quick = argc > 1 && std::string(argv[1]) == "--quick";
    row_norms();
    select_tile();
    ivf_scan();
    ivfsq_scan(37);
    ivfsq_scan(38);
    ivfpq_scan();
    kmeans_update();
    std::printf("cuda-emu: every kernel matched its reference (%d checks)\n", checks);
    return 0;
}
