//! vq-io's figures (issue 3), run with `cargo bench -p vq-io --bench io`:
//!
//! 1. Reading a `.bvecs` file as f32 and writing it back as `.fvecs`, in MB/s, beside numpy
//!    (`benches/numpy_io.py`, run with `VQ_PYTHON`, default `~/.cache/vq/peers-venv/bin/python`)
//!    on the same file in the same run. `VQ_BVECS` names the file (default
//!    `~/.cache/vq/data/imgsift100k/base.bvecs`). Both sides read a file in the page cache.
//! 2. Opening a 10 MB and a 1 GB container by memory map without checksum verification
//!    (and, for contrast, with it), written under `VQ_BENCH_TMP` (default the system
//!    temporary folder) and removed afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vq_io::{ContainerReader, ContainerWriter, Format, OpenOptions};

/// Median and best of `reps` timed calls.
fn time<T>(reps: usize, f: impl FnMut() -> T) -> (Duration, Duration) {
    time_after(reps, || {}, f)
}

/// Median and best of `reps` timed calls of `f`, each after an untimed call of `setup`.
fn time_after<T>(reps: usize, mut setup: impl FnMut(), mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut t: Vec<Duration> = (0..reps)
        .map(|_| {
            setup();
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    t.sort();
    (t[reps / 2], t[0])
}

fn mbs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

fn dataset_figure(tmp: &Path) {
    let bvecs = std::env::var_os("VQ_BVECS")
        .map_or_else(|| home().join(".cache/vq/data/imgsift100k/base.bvecs"), PathBuf::from);
    if !bvecs.exists() {
        println!("skipping the dataset figure: {} not found (set VQ_BVECS)", bvecs.display());
        return;
    }
    let reps = 15;
    let size = std::fs::metadata(&bvecs).unwrap().len();
    let m = vq_io::read::<f32>(&bvecs).unwrap(); // warms the page cache
    let (read_med, read_best) = time(reps, || vq_io::read::<f32>(&bvecs).unwrap());
    let out = tmp.join("vq-io-bench-base.fvecs");
    let write = || vq_io::write(&out, Format::Fvecs, m.as_slice(), m.dim()).unwrap();
    // Overwriting an existing file (ext4 then flushes the new data at the rename, or for
    // numpy at the truncating open and close), and writing a new file.
    let (write_med, write_best) = time(reps, write);
    let (new_med, new_best) = time_after(reps, || drop(std::fs::remove_file(&out)), write);
    let out_size = std::fs::metadata(&out).unwrap().len();
    // The written file reads back equal.
    assert_eq!(vq_io::read::<f32>(&out).unwrap(), m);
    std::fs::remove_file(&out).unwrap();

    println!("{} ({} rows x {}, {size} bytes), median (best) of {reps}:", bvecs.display(), m.rows(), m.dim());
    println!("  MB/s, median (best)     read bvecs->f32     overwrite fvecs ({out_size} B)   write new fvecs");
    println!(
        "  vq-io                  {:>7.1} ({:>7.1})   {:>7.1} ({:>7.1})            {:>7.1} ({:>7.1})",
        mbs(size, read_med),
        mbs(size, read_best),
        mbs(out_size, write_med),
        mbs(out_size, write_best),
        mbs(out_size, new_med),
        mbs(out_size, new_best)
    );
    let python =
        std::env::var_os("VQ_PYTHON").map_or_else(|| home().join(".cache/vq/peers-venv/bin/python"), PathBuf::from);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/numpy_io.py");
    let out = Command::new(&python).arg(script).arg(&bvecs).arg(reps.to_string()).output();
    let Some(line) = out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    else {
        println!("  numpy: not run ({} with numpy not found; set VQ_PYTHON)", python.display());
        return;
    };
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let f = |k: &str| Duration::from_secs_f64(v[k].as_f64().unwrap());
    let (np_read, np_write, np_new) = (f("read_median_s"), f("write_median_s"), f("new_median_s"));
    let wb = v["write_bytes"].as_u64().unwrap();
    println!(
        "  numpy {:<16} {:>7.1} ({:>7.1})   {:>7.1} ({:>7.1})            {:>7.1} ({:>7.1})",
        v["numpy"].as_str().unwrap_or("?"),
        mbs(size, np_read),
        mbs(size, f("read_best_s")),
        mbs(wb, np_write),
        mbs(wb, f("write_best_s")),
        mbs(wb, np_new),
        mbs(wb, f("new_best_s"))
    );
    let r = |np: Duration, vq: Duration| np.as_secs_f64() / vq.as_secs_f64();
    println!(
        "  ratio vq-io / numpy (medians): read {:.2}x, overwrite {:.2}x, write new {:.2}x",
        r(np_read, read_med),
        r(np_write, write_med),
        r(np_new, new_med)
    );
}

fn container_figure(tmp: &Path) {
    println!("container open by memory map (median of 21 opens):");
    for (label, bytes) in [("10 MB", 10_000_000usize), ("1 GB", 1_000_000_000)] {
        // The same sections in both: parameters, one vector array, ids.
        let path = tmp.join(format!("vq-io-bench-{}.vq", bytes));
        let data = vec![1.5f32; bytes / 4 - 1000];
        let ids: Vec<u64> = (0..500).collect();
        let mut w = ContainerWriter::create(&path).unwrap();
        w.add_json("params", 1, &serde_json::json!({ "bytes": bytes })).unwrap();
        w.add_array("vectors", 1, &data).unwrap();
        w.add_array("ids", 1, &ids).unwrap();
        w.finish().unwrap();
        drop(data);
        let i = 2;
        let size = std::fs::metadata(&path).unwrap().len();
        let open = |verify| {
            time(21, || {
                let r =
                    ContainerReader::open_with(&path, OpenOptions { mmap: true, verify_checksums: verify }).unwrap();
                r.sections().len()
            })
        };
        let (fast, fast_best) = open(false);
        let (checked, _) = time(3, || {
            ContainerReader::open_with(&path, OpenOptions { mmap: true, verify_checksums: true })
                .unwrap()
                .sections()
                .len()
        });
        println!(
            "  {label:>5} ({size} bytes, {i} array sections + JSON): no verification {:>9.1} us (best {:.1}); verifying every checksum {:>9.1} ms",
            fast.as_secs_f64() * 1e6,
            fast_best.as_secs_f64() * 1e6,
            checked.as_secs_f64() * 1e3
        );
        std::fs::remove_file(&path).unwrap();
    }
}

fn main() {
    let tmp = std::env::var_os("VQ_BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    dataset_figure(&tmp);
    container_figure(&tmp);
}
