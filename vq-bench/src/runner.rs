//! A sweep: build an index once, then measure every search setting.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vq_distance::Metric;

use crate::dataset::Dataset;
use crate::error::Result;
use crate::index::{self, BenchIndex, Params};
use crate::recall::recall_at_k;
use crate::record::Record;

/// How a sweep is measured.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Neighbours per query.
    pub k: usize,
    /// Worker threads for batch search (the single-query pass uses the same pool).
    pub threads: usize,
    /// Batch repetitions; QPS is from the fastest.
    pub reps: usize,
    /// Queries in the single-query latency pass (0 turns it off).
    pub latency_queries: usize,
    /// The metric searched.
    pub metric: Metric,
    /// Replacements for the index's default sweep, if any.
    pub sweep: Option<Vec<Params>>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { k: 10, threads: 1, reps: 3, latency_queries: 1000, metric: Metric::L2, sweep: None }
    }
}

/// A progress bar on stderr that appears only once the work has taken more than a second.
pub(crate) struct LateProgress {
    bar: ProgressBar,
    start: Instant,
}

impl LateProgress {
    pub(crate) fn new(len: u64, what: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        LateProgress { bar, start: Instant::now() }
    }

    pub(crate) fn set(&self, pos: u64) {
        if self.bar.is_hidden() && self.start.elapsed() > Duration::from_secs(1) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_position(pos);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time this process has used so far (all its threads), in seconds; `None` where the clock
/// cannot be read. Differences of two readings time a batch the way peers.py's
/// `time.process_time()` does, so `qps_cpu` lines of both tools compare.
pub fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec into memory we own and borrow mutably for
        // the call; the clock id is a constant of the C library.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Builds the index of `spec` over `ds` and measures every point of its sweep. `ds.gt` must
/// already hold the ground truth for `cfg.metric` (see [`crate::groundtruth::ensure`]), else
/// recall is `None`.
pub fn run_spec(ds: &Dataset, spec: &str, cfg: &RunConfig) -> Result<Vec<Record>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .build()
        .map_err(|e| crate::Error::Usage(format!("cannot start {} threads: {e}", cfg.threads)))?;
    let idx: BenchIndex = pool.install(|| index::build(spec, ds, cfg.metric))?;
    let times = idx.build_times();
    let build_s = times.train_s + times.add_s;

    // Converted once here, not inside every timed search (Faiss and hnswlib are handed f32 too).
    let queries = ds.queries.to_f32();
    let sweep = cfg.sweep.clone().unwrap_or_else(|| idx.default_sweep(cfg.k));
    let (nb, nq) = (ds.nb(), ds.nq());
    let mut out = Vec::with_capacity(sweep.len());
    for params in &sweep {
        let mut best = f64::INFINITY;
        let mut best_cpu: Option<f64> = None;
        let mut hits = None;
        for _ in 0..cfg.reps.max(1) {
            let c = process_cpu_seconds();
            let t = Instant::now();
            let h = pool.install(|| idx.search(&queries, cfg.k, params))?;
            best = best.min(t.elapsed().as_secs_f64());
            // The least CPU time over the repetitions, taken apart from the fastest wall time
            // as peers.py does: each is the pass least disturbed by other work.
            if let (Some(c0), Some(c1)) = (c, process_cpu_seconds()) {
                let used = (c1 - c0).max(0.0);
                best_cpu = Some(best_cpu.map_or(used, |b| b.min(used)));
            }
            hits = Some(h);
        }
        let hits = hits.expect("at least one repetition");
        let recall = ds.gt.as_ref().and_then(|gt| recall_at_k(hits.iter().map(|(ids, _)| ids), gt, cfg.k));

        let lat_n = cfg.latency_queries.min(nq);
        let mut lat: Vec<f64> = Vec::with_capacity(lat_n);
        for q in 0..lat_n {
            let one = &queries[q * ds.dim..(q + 1) * ds.dim];
            let t = Instant::now();
            let r = pool.install(|| idx.search(one, cfg.k, params))?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(r);
        }
        lat.sort_by(f64::total_cmp);
        let (p50, p99, mean) = if lat.is_empty() {
            (None, None, None)
        } else {
            (
                Some(percentile(&lat, 0.5)),
                Some(percentile(&lat, 0.99)),
                Some(lat.iter().sum::<f64>() / lat.len() as f64),
            )
        };

        out.push(Record {
            algo: idx.factory().to_string(),
            library: "vq".into(),
            version: vq_distance::VERSION.into(),
            build_params: idx.build_params(),
            search_params: params.clone(),
            build_s,
            train_s: Some(times.train_s),
            add_s: Some(times.add_s),
            build_cpu_s: times.cpu_s,
            index_bytes: idx.memory_bytes() as u64,
            qps: nq as f64 / best,
            cpu_s: best_cpu,
            // A clock tick shorter than the batch would give 0 s; 1 ns keeps the ratio finite.
            qps_cpu: best_cpu.map(|c| nq as f64 / c.max(1e-9)),
            recall,
            k: cfg.k,
            threads: cfg.threads,
            nb,
            nq,
            dim: ds.dim,
            metric: cfg.metric.name().into(),
            p50_ms: p50,
            p99_ms: p99,
            mean_ms: mean,
            peak_rss_bytes: peak_rss_bytes(),
        });
    }
    Ok(out)
}
