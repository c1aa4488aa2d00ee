// A CPU stand-in for the few CUDA built-ins vq-gpu's kernels use, so the kernels' own source
// runs here: one OS thread per CUDA thread, the blocks of a grid one after another.
//
// What it models: threadIdx / blockIdx / blockDim / gridDim; __syncthreads (a barrier over the
// block's threads; a thread that returns early stops counting, as on the device);
// __shfl_down_sync over a warp of 32 (a full-mask shuffle with a lane that has exited is
// reported: undefined on the device); atomicAdd on 32-bit unsigned; static __shared__
// variables (blocks run one at a time, so a static is the block's); the dynamic shared
// buffer (allocated per block at the launch's exact size, so AddressSanitizer sees overruns).
// What it does not: inter-block concurrency, warp-synchronous timing, the device's FMA
// contraction (build with -ffp-contract=off and compare with references built the same way).
#pragma once

#include <atomic>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

namespace emu {

struct Warp {
    std::barrier<> bar;
    std::uint64_t slots[32] = {};
    std::atomic<bool> exited[32] = {};
    explicit Warp(std::ptrdiff_t n) : bar(n) {}
};

struct Block {
    std::barrier<> bar;
    std::vector<std::unique_ptr<Warp>> warps;
    void* dynamic = nullptr;
    explicit Block(std::ptrdiff_t n) : bar(n) {}
};

inline thread_local Block* current_block = nullptr;
inline thread_local Warp* current_warp = nullptr;
inline thread_local unsigned int lane = 0;

inline void* dynamic_smem() { return current_block->dynamic; }

inline float half_to_float(unsigned short h) {
    const unsigned sign = (h >> 15) & 1, exp = (h >> 10) & 31, frac = h & 1023;
    float v;
    if (exp == 0) {
        v = std::ldexp(static_cast<float>(frac), -24);
    } else if (exp == 31) {
        v = frac ? NAN : INFINITY;
    } else {
        v = std::ldexp(static_cast<float>(frac | 1024), static_cast<int>(exp) - 25);
    }
    return sign ? -v : v;
}

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "cuda-emu: %s\n", what);
    std::abort();
}

}  // namespace emu

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline void __syncthreads() { emu::current_block->bar.arrive_and_wait(); }

template <typename T>
inline T __shfl_down_sync(unsigned int mask, T v, unsigned int delta) {
    static_assert(sizeof(T) <= 8);
    emu::Warp* w = emu::current_warp;
    if (mask == 0xffffffffu) {
        for (auto& e : w->exited) {
            if (e.load()) emu::fail("__shfl_down_sync with a full mask after a lane of the warp returned");
        }
    }
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    w->slots[emu::lane] = bits;
    w->bar.arrive_and_wait();
    const unsigned int src = emu::lane + delta < 32 ? emu::lane + delta : emu::lane;
    std::uint64_t got = w->slots[src];
    w->bar.arrive_and_wait();
    T out;
    std::memcpy(&out, &got, sizeof(T));
    return out;
}

inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return std::atomic_ref<unsigned int>(*p).fetch_add(v); }

inline float __int_as_float(int v) { return std::bit_cast<float>(v); }
inline float __uint_as_float(unsigned v) { return std::bit_cast<float>(v); }
inline float __double2float_rn(double v) { return static_cast<float>(v); }

namespace emu {

// Runs `kernel` (a callable taking no arguments: a lambda around the kernel call) over `grid`
// x `block` threads with `shared_bytes` of dynamic shared memory per block. One OS thread per
// thread of a block, reused block after block (a launch-wide barrier between blocks, so one
// block's statics and buffer are never touched by the next one's threads early).
inline void launch(dim3 grid, dim3 block, std::size_t shared_bytes, const std::function<void()>& kernel) {
    if (block.y != 1 || block.z != 1 || block.x % 32 != 0 || block.x > 1024) fail("blocks must be 1-D, whole warps, <= 1024");
    if (shared_bytes > 48 * 1024) fail("dynamic shared memory above 48 KiB needs an opt-in the launches do not make");
    gridDim = grid;
    blockDim = block;
    const unsigned int n = block.x;
    const std::size_t bytes = shared_bytes ? shared_bytes : 1;
    std::vector<dim3> blocks;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
        for (unsigned int by = 0; by < grid.y; ++by)
            for (unsigned int bx = 0; bx < grid.x; ++bx) blocks.push_back(dim3{bx, by, bz});
    std::unique_ptr<Block> b;
    auto setup = [&](std::size_t i) {
        if (b) std::free(b->dynamic);
        b.reset();
        if (i == blocks.size()) return;
        b = std::make_unique<Block>(n);
        for (unsigned int w = 0; w < n / 32; ++w) b->warps.push_back(std::make_unique<Warp>(32));
        // Exactly the launch's size, filled with a pattern: a read before a write shows up as
        // garbage, an overrun under ASan.
        b->dynamic = std::malloc(bytes);
        std::memset(b->dynamic, 0xA5, bytes);
    };
    setup(0);
    std::barrier<> between(n);
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned int t = 0; t < n; ++t) {
        threads.emplace_back([&, t] {
            for (std::size_t i = 0; i < blocks.size(); ++i) {
                threadIdx = dim3{t, 0, 0};
                blockIdx = blocks[i];
                current_block = b.get();
                current_warp = b->warps[t / 32].get();
                lane = t % 32;
                kernel();
                current_warp->exited[lane].store(true);
                current_warp->bar.arrive_and_drop();
                current_block->bar.arrive_and_drop();
                between.arrive_and_wait();  // every thread is done with block i
                if (t == 0) setup(i + 1);
                between.arrive_and_wait();  // block i + 1 is ready
            }
        });
    }
    for (auto& th : threads) th.join();
}

}  // namespace emu
