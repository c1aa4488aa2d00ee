//! u8 L2 and dot kernels beside numkong's, interleaved: on a shared machine criterion's
//! back-to-back groups see different load, so this alternates vq (each SIMD level this CPU
//! runs) and numkong round by round on the same vectors and keeps each one's fastest round
//! (the round least disturbed by other work).
//!
//! `cargo run --release -p vq-distance --example u8_vs_numkong [ROUNDS]` (default 300).
//! numkong picks its own kernel at run time (icelake on an AVX-512 VNNI CPU); it has no switch
//! to force a lower level.

use std::hint::black_box;
use std::time::Instant;

use numkong::{Dot, Euclidean};
use vq_distance::{Kernels, SimdLevel};

const CALLS: usize = 2000;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(300);
    let levels: Vec<Kernels> =
        [SimdLevel::Avx2, SimdLevel::Avx512].into_iter().filter_map(Kernels::for_level).collect();
    println!("u8 kernels, ns per call (fastest of {rounds} interleaved rounds of {CALLS} calls); ratio = numkong / vq");
    for dim in [128usize, 768] {
        // Deterministic bytes over the whole range.
        let a: Vec<u8> = (0..dim).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        let b: Vec<u8> = (0..dim).map(|i| (i.wrapping_mul(40_503) >> 3) as u8).collect();
        for op in ["l2", "dot"] {
            let mut best = vec![f64::INFINITY; levels.len() + 1];
            for _ in 0..rounds {
                for (slot, k) in levels.iter().enumerate() {
                    let t = Instant::now();
                    for _ in 0..CALLS {
                        let r = if op == "l2" {
                            k.l2_sq_u8_exact(black_box(&a), black_box(&b)).unwrap()
                        } else {
                            k.dot_u8_exact(black_box(&a), black_box(&b)).unwrap()
                        };
                        black_box(r);
                    }
                    best[slot] = best[slot].min(t.elapsed().as_secs_f64());
                }
                let t = Instant::now();
                for _ in 0..CALLS {
                    let r = if op == "l2" {
                        u8::sqeuclidean(black_box(&a), black_box(&b)).unwrap()
                    } else {
                        <u8 as Dot>::dot(black_box(&a), black_box(&b)).unwrap()
                    };
                    black_box(r);
                }
                let last = best.len() - 1;
                best[last] = best[last].min(t.elapsed().as_secs_f64());
            }
            // Same answers, or the comparison means nothing.
            let want: u64 = if op == "l2" {
                a.iter().zip(&b).map(|(&x, &y)| (i64::from(x) - i64::from(y)).pow(2) as u64).sum()
            } else {
                a.iter().zip(&b).map(|(&x, &y)| u64::from(x) * u64::from(y)).sum()
            };
            let nk = if op == "l2" { u8::sqeuclidean(&a, &b).unwrap() } else { <u8 as Dot>::dot(&a, &b).unwrap() };
            assert_eq!(u64::from(nk), want);
            let ns = |s: f64| s * 1e9 / CALLS as f64;
            let nk_ns = ns(best[levels.len()]);
            for (slot, k) in levels.iter().enumerate() {
                let got = if op == "l2" { k.l2_sq_u8_exact(&a, &b).unwrap() } else { k.dot_u8_exact(&a, &b).unwrap() };
                assert_eq!(got, want, "{} {op}", k.level());
                println!(
                    "u8/{op}/{dim}  vq {:<7} {:>7.2} ns   numkong {:>7.2} ns   ratio {:.2}",
                    k.level().to_string(),
                    ns(best[slot]),
                    nk_ns,
                    nk_ns / ns(best[slot])
                );
            }
        }
    }
}
