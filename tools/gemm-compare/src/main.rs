//! Times the dot-product matrix of all queries against all base vectors with the `gemm` crate
//! (the GEMM alone, with no selection: a lower bound for a gemm-based exact search) beside
//! vq's `knn_exact` (blocked micro-kernel *and* top-k selection), same data, same threads.

use std::time::Instant;

fn read_bvecs(path: &str) -> (usize, Vec<f32>) {
    let bytes = std::fs::read(path).expect("readable bvecs");
    let dim = i32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let rows = bytes.len() / (4 + dim);
    let mut out = Vec::with_capacity(rows * dim);
    for r in bytes.chunks_exact(4 + dim) {
        out.extend(r[4..].iter().map(|&b| f32::from(b)));
    }
    (dim, out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("usage: gemm-compare DIR THREADS");
    let threads: usize = args.get(2).map_or(1, |t| t.parse().expect("threads"));
    let (dim, base) = read_bvecs(&format!("{dir}/base.bvecs"));
    let (_, queries) = read_bvecs(&format!("{dir}/query.bvecs"));
    let (nb, nq) = (base.len() / dim, queries.len() / dim);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let par = if threads == 1 { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(threads) };

    // gemm crate: C (nq x block) = Q (nq x dim) . B_block^T, base in blocks of 4096 rows.
    const BLOCK: usize = 4096;
    let mut c = vec![0f32; nq * BLOCK];
    let mut best_gemm = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        pool.install(|| {
            for b in base.chunks(BLOCK * dim) {
                let n = b.len() / dim;
                // SAFETY: every pointer/stride pair describes a buffer of the stated shape.
                unsafe {
                    gemm::gemm(
                        nq, n, dim,
                        c.as_mut_ptr(), 1, n as isize, false,
                        queries.as_ptr(), 1, dim as isize,
                        b.as_ptr(), dim as isize, 1,
                        0.0, 1.0, false, false, false, par,
                    );
                }
                std::hint::black_box(&c);
            }
        });
        best_gemm = best_gemm.min(t.elapsed().as_secs_f64());
    }

    let mut best_vq = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let r = pool.install(|| vq_distance::knn_exact(&base, &queries, dim, 10, vq_distance::Metric::L2).unwrap());
        std::hint::black_box(r);
        best_vq = best_vq.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{nq} queries x {nb} base x {dim}, {threads} thread(s): gemm crate (dot-product matrix only) {best_gemm:.3} s = {:.0} QPS; vq knn_exact (kernel + top-10) {best_vq:.3} s = {:.0} QPS; ratio {:.2}",
        nq as f64 / best_gemm,
        nq as f64 / best_vq,
        best_gemm / best_vq
    );
}
