//! A single-query search allocates nothing per query beyond its result: the query check and
//! cosine normalization reuse pooled scratch (`prepare_row_into`), as do the visited set and
//! heaps. The only test in this binary, so no other thread allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use vq_distance::Metric;
use vq_graph::{Hnsw, HnswParams};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn search_allocates_only_its_result() {
    let dim = 16;
    let n = 2_000;
    // Unnormalized rows, so every cosine query needs the normalized copy.
    let data: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 997) as f32 - 400.0).collect();
    for metric in [Metric::Cosine, Metric::L2, Metric::InnerProduct] {
        let index = Hnsw::new(dim, metric, HnswParams::default()).unwrap();
        index.add(&data).unwrap();
        let queries = &data[..50 * dim];
        // Warm up: the scratch pool and its buffers reach their working size.
        for q in queries.chunks_exact(dim) {
            index.search(q, 10, Some(64)).unwrap();
        }
        let before = ALLOCS.load(Ordering::Relaxed);
        for q in queries.chunks_exact(dim) {
            let hits = index.search(q, 10, Some(64)).unwrap();
            assert_eq!(hits.len(), 10);
        }
        let per_query = (ALLOCS.load(Ordering::Relaxed) - before) as f64 / 50.0;
        assert!(per_query <= 1.0, "{metric}: {per_query} allocations per query (only the result may allocate)");
    }
}
