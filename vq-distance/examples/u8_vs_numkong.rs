//! u8 L2 and dot kernels beside numkong's, level by level, interleaved: on a shared machine
//! criterion's back-to-back groups see different load, so this alternates vq and numkong round by
//! round on the same vectors (numkong first in even rounds, vq first in odd ones) and keeps each
//! one's fastest round (the round least disturbed by other work).
//!
//! `cargo run --release -p vq-distance --features peer-numkong --example u8_vs_numkong [ROUNDS]` (default 300).
//!
//! Like is compared with like: vq's AVX2 table against numkong's haswell kernels, vq's AVX-512
//! table (VNNI where the CPU has it) against numkong's best (icelake on an AVX-512 VNNI CPU).
//! numkong's Rust API has no switch for its level, but its C library exports
//! `nk_dispatch_table_update(capabilities)`, which refills the table its public functions jump
//! through; each pair's rounds run with numkong's table set to that pair's capabilities, and
//! `nk_find_kernel_punned` reports which kernel that table holds.

use std::ffi::c_int;
use std::hint::black_box;
use std::time::Instant;

use numkong::{Dot, Euclidean, cap, capabilities};
use vq_distance::{Kernels, SimdLevel};

const CALLS: usize = 2000;

// numkong's C API (`include/numkong/capabilities.h`), linked through the numkong crate.
unsafe extern "C" {
    fn nk_dispatch_table_update(capabilities: u64);
    fn nk_find_kernel_punned(
        kind: c_int,
        dtype: c_int,
        viable: u64,
        kernel: *mut Option<unsafe extern "C" fn()>,
        capability: *mut u64,
    );
}

/// `nk_kernel_kind_t` and `nk_dtype_t` values of the kernels compared here.
const NK_KERNEL_DOT: c_int = b'i' as c_int;
const NK_KERNEL_SQEUCLIDEAN: c_int = b'2' as c_int;
const NK_DTYPE_U8: c_int = 1 << 6;

/// The capability numkong's table uses for `kind` on u8 when limited to `viable`.
fn numkong_kernel(kind: c_int, viable: u64) -> u64 {
    let (mut kernel, mut used) = (None, 0u64);
    // SAFETY: the signature matches the C declaration; both out-pointers are valid locals.
    unsafe { nk_find_kernel_punned(kind, NK_DTYPE_U8, viable, &mut kernel, &mut used) };
    assert!(kernel.is_some(), "numkong has no u8 kernel of kind {kind} for capabilities {viable:#x}");
    used
}

fn cap_name(c: u64) -> &'static str {
    match c {
        cap::SERIAL => "serial",
        cap::HASWELL => "haswell",
        cap::SKYLAKE => "skylake",
        cap::ICELAKE => "icelake",
        cap::ALDER => "alder",
        cap::SIERRA => "sierra",
        _ => "other",
    }
}

/// Points numkong's public functions at the kernels `caps` allows.
fn numkong_limit(caps: u64) {
    // SAFETY: a plain C call; the table it rewrites is only read by numkong calls made after
    // it returns, on this thread.
    unsafe { nk_dispatch_table_update(caps) };
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(300);
    let all = capabilities::available();
    // Each vq level beside the numkong capabilities that match it.
    let pairs: Vec<(Kernels, u64)> = [(SimdLevel::Avx2, cap::SERIAL | cap::HASWELL), (SimdLevel::Avx512, all)]
        .into_iter()
        .filter_map(|(level, caps)| Kernels::for_level(level).map(|k| (k, caps)))
        .collect();
    #[cfg(target_arch = "x86_64")]
    println!("CPU: avx512vnni {}", std::arch::is_x86_feature_detected!("avx512vnni"));
    println!(
        "u8 kernels, ns per call (fastest of {rounds} interleaved rounds of {CALLS} calls); ratio = numkong / vq (> 1: vq faster)"
    );
    for dim in [128usize, 768] {
        // Deterministic bytes over the whole range.
        let a: Vec<u8> = (0..dim).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        let b: Vec<u8> = (0..dim).map(|i| (i.wrapping_mul(40_503) >> 3) as u8).collect();
        for op in ["l2", "dot"] {
            let l2 = op == "l2";
            let vq_call = |k: &Kernels, x: &[u8], y: &[u8]| {
                if l2 { k.l2_sq_u8_exact(x, y).unwrap() } else { k.dot_u8_exact(x, y).unwrap() }
            };
            let nk_call = |x: &[u8], y: &[u8]| -> u64 {
                u64::from(if l2 { u8::sqeuclidean(x, y).unwrap() } else { <u8 as Dot>::dot(x, y).unwrap() })
            };
            // Per pair: vq's fastest round, numkong's fastest round.
            let mut best = vec![[f64::INFINITY; 2]; pairs.len()];
            for round in 0..rounds {
                for ((k, caps), best) in pairs.iter().zip(&mut best) {
                    numkong_limit(*caps);
                    for side in [round % 2, 1 - round % 2] {
                        let t = Instant::now();
                        if side == 0 {
                            for _ in 0..CALLS {
                                black_box(nk_call(black_box(&a), black_box(&b)));
                            }
                        } else {
                            for _ in 0..CALLS {
                                black_box(vq_call(k, black_box(&a), black_box(&b)));
                            }
                        }
                        best[side] = best[side].min(t.elapsed().as_secs_f64());
                    }
                }
            }
            // Same answers, or the comparison means nothing.
            let want: u64 = if l2 {
                a.iter().zip(&b).map(|(&x, &y)| (i64::from(x) - i64::from(y)).pow(2) as u64).sum()
            } else {
                a.iter().zip(&b).map(|(&x, &y)| u64::from(x) * u64::from(y)).sum()
            };
            let ns = |s: f64| s * 1e9 / CALLS as f64;
            for ((k, caps), best) in pairs.iter().zip(&best) {
                numkong_limit(*caps);
                assert_eq!(nk_call(&a, &b), want, "numkong {op} at {caps:#x}");
                assert_eq!(vq_call(k, &a, &b), want, "vq {op} at {}", k.level());
                let used = numkong_kernel(if l2 { NK_KERNEL_SQEUCLIDEAN } else { NK_KERNEL_DOT }, *caps);
                println!(
                    "u8/{op}/{dim}  vq {:<7} {:>7.2} ns   numkong {:<8} {:>7.2} ns   ratio {:.2}",
                    k.level().to_string(),
                    ns(best[1]),
                    cap_name(used),
                    ns(best[0]),
                    best[0] / best[1]
                );
            }
        }
    }
    numkong_limit(all);
}
