//! Reads an index written by `write_index` and searches it: a quick way to query a saved
//! index, and the Rust side of the Python wheel's "same results as the Rust API" test
//! (`vq-python/tests`).
//!
//! `cargo run --release -p vq --example search_index -- INDEX QUERIES K [ef=N] [nprobe=N] [refine_k=N] [reps=R]`
//!
//! `QUERIES` is any dataset file vq-io reads (`.npy`, `.fvecs`, `.fbin`, …). Prints one line
//! per query: `id:score` pairs, best first (scores in Rust's shortest round-trip form), `-`
//! where the row is padded. With `reps=R` it prints instead the wall time of the fastest of R
//! searches of the whole batch and its QPS: the Rust-side figure for the same saved index that
//! `python -m vq.bench`'s wheel-vs-Rust comparison reads (threads as rayon's default, so set
//! `RAYON_NUM_THREADS`).

use std::process::ExitCode;

use vq::SearchParams;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("search_index: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [index, queries, k, knobs @ ..] = args.as_slice() else {
        return Err("usage: search_index INDEX QUERIES K [ef=N] [nprobe=N] [refine_k=N] [reps=R]".into());
    };
    let index = vq::read_index(index)?;
    let queries = vq::vq_io::dataset::read::<f32>(queries)?;
    let mut params = SearchParams::new(k.parse()?);
    let mut reps = None;
    for knob in knobs {
        let (name, value) = knob.split_once('=').ok_or_else(|| format!("`{knob}`: expected NAME=VALUE"))?;
        let value = Some(value.parse()?);
        match name {
            "ef" => params.ef = value,
            "nprobe" => params.nprobe = value,
            "refine_k" => params.refine_k = value,
            "reps" => reps = value,
            _ => return Err(format!("unknown knob `{name}` (ef, nprobe, refine_k, reps)").into()),
        }
    }
    if let Some(reps) = reps {
        let mut best = f64::INFINITY;
        for _ in 0..reps.max(1) {
            let start = std::time::Instant::now();
            std::hint::black_box(index.search_with(queries.as_slice(), &params)?);
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!("best_s {best:.6} qps {:.1}", queries.rows() as f64 / best);
        return Ok(());
    }
    let hits = index.search_with(queries.as_slice(), &params)?;
    let mut out = String::new();
    for (ids, scores) in hits.iter() {
        let row: Vec<String> = ids
            .iter()
            .zip(scores)
            .map(|(&id, s)| if id == u64::MAX { "-".to_string() } else { format!("{id}:{s:?}") })
            .collect();
        out.push_str(&row.join(" "));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
