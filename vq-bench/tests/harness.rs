//! The harness end to end on small generated and hand-written data: ground-truth cache, JSONL
//! round trip, plots, and the command line's error messages.

use std::path::{Path, PathBuf};

use vq_bench::dataset::{Dataset, GroundTruth, Synthetic, Vectors};
use vq_bench::record::{Rank, Record, append_jsonl, read_jsonl, summary_table};
use vq_bench::{cli, groundtruth, plot};
use vq_distance::Metric;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vq-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn write_texmex(path: &Path, dim: usize, rows: &[Vec<u8>]) {
    let mut out = Vec::new();
    for r in rows {
        out.extend_from_slice(&(dim as i32).to_le_bytes());
        out.extend_from_slice(r);
    }
    std::fs::write(path, out).unwrap();
}

fn write_ivecs(path: &Path, rows: &[Vec<i32>]) {
    let mut out = Vec::new();
    for r in rows {
        out.extend_from_slice(&(r.len() as i32).to_le_bytes());
        r.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn generated_data_is_deterministic_whatever_the_thread_count() {
    let generate = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| Synthetic::GaussClusters.generate(3000, 50, 24, 7, false))
    };
    let (a, b) = (generate(1), generate(2));
    assert_eq!(a.base, b.base);
    assert_eq!(a.queries, b.queries);
    let other_seed = Synthetic::GaussClusters.generate(3000, 50, 24, 8, false);
    assert_ne!(a.base, other_seed.base);
    let unit = Synthetic::Uniform.generate(10, 2, 5, 1, true);
    let Vectors::F32(v) = &unit.base else { panic!("generated data is f32") };
    for row in v.chunks_exact(5) {
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

#[test]
fn ground_truth_cache_is_reused_and_invalidated_when_the_data_changes() {
    let dir = scratch("gt-cache");
    let mut ds = Synthetic::GaussClusters.generate(500, 20, 8, 1, false);
    let first = groundtruth::ensure(&mut ds, 10, Metric::L2, &dir).unwrap();
    assert!(matches!(first, groundtruth::Origin::Computed(Some(_))), "{first:?}");
    let computed = ds.gt.clone().unwrap();
    assert_eq!(computed.depth, 100);

    // Same data: read back, identical.
    ds.gt = None;
    let second = groundtruth::ensure(&mut ds, 10, Metric::L2, &dir).unwrap();
    assert!(matches!(second, groundtruth::Origin::Cached(_)), "{second:?}");
    assert_eq!(ds.gt.as_ref().unwrap(), &computed);

    // One value changed: a different key, so the ground truth is computed again.
    let key_before = groundtruth::cache_key(&ds, 100, Metric::L2);
    if let Vectors::F32(b) = &mut ds.base {
        b[3] += 1.0;
    }
    assert_ne!(groundtruth::cache_key(&ds, 100, Metric::L2), key_before);
    ds.gt = None;
    let third = groundtruth::ensure(&mut ds, 10, Metric::L2, &dir).unwrap();
    assert!(matches!(third, groundtruth::Origin::Computed(_)), "{third:?}");
    // And another metric is another file.
    ds.gt = None;
    assert!(matches!(
        groundtruth::ensure(&mut ds, 10, Metric::InnerProduct, &dir).unwrap(),
        groundtruth::Origin::Computed(_)
    ));
}

fn record(algo: &str, recall: f64, qps: f64) -> Record {
    let mut bp = serde_json::Map::new();
    bp.insert("factory".into(), algo.into());
    Record {
        algo: algo.into(),
        library: "vq".into(),
        version: "0.1.0".into(),
        build_params: bp,
        search_params: serde_json::Map::new(),
        build_s: 1.5,
        train_s: Some(0.5),
        add_s: Some(1.0),
        build_cpu_s: Some(1.4),
        index_bytes: 1234,
        qps,
        recall: Some(recall),
        k: 10,
        threads: 1,
        nb: 100,
        nq: 10,
        dim: 4,
        metric: "l2".into(),
        p50_ms: Some(0.5),
        p99_ms: Some(0.9),
        mean_ms: Some(0.6),
        peak_rss_bytes: Some(1 << 20),
        cpu_s: Some(10.0 / qps),
        qps_cpu: Some(qps),
    }
}

#[test]
fn jsonl_lines_carry_every_peers_field_and_parse_back() {
    let dir = scratch("jsonl");
    let path = dir.join("r.jsonl");
    let written = vec![record("Flat", 1.0, 100.0), record("HNSW32", 0.95, 1000.0)];
    append_jsonl(&path, &written).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // The field list of shared/bench/peers.py's README, plus p50/p99.
    let fields = [
        "algo",
        "library",
        "version",
        "build_params",
        "search_params",
        "build_s",
        "index_bytes",
        "qps",
        "recall",
        "k",
        "threads",
        "nb",
        "nq",
        "dim",
        "metric",
        "p50_ms",
        "p99_ms",
        "cpu_s",
        "qps_cpu",
    ];
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for f in fields {
            assert!(v.get(f).is_some(), "field {f} missing in {line}");
        }
    }
    // A peers.py k-means line in the same file is skipped, not an error.
    std::fs::write(&path, format!("{text}{{\"algo\": \"faiss-kmeans\", \"wall_s\": 1.0}}\n")).unwrap();
    assert_eq!(read_jsonl(&path).unwrap(), written);
    std::fs::write(&path, "not json\n").unwrap();
    assert!(read_jsonl(&path).unwrap_err().to_string().contains("line 1"));
}

#[test]
fn lines_without_cpu_time_still_parse_and_show_a_dash() {
    let dir = scratch("nocpu");
    let path = dir.join("old.jsonl");
    let mut old = record("HNSW16", 0.97, 2000.0);
    // Lines written before the CPU and train/add fields existed.
    (old.cpu_s, old.qps_cpu, old.build_cpu_s) = (None, None, None);
    (old.train_s, old.add_s) = (None, None);
    append_jsonl(&path, std::slice::from_ref(&old)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("cpu") && !text.contains("train_s"), "{text}");
    let back = read_jsonl(&path).unwrap();
    assert_eq!(back, vec![old]);
    let table = summary_table(&back, Rank::Input);
    let row = table.lines().find(|l| l.contains("HNSW16")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    // library, algo, build s, B/vec, QPS@0.90, @0.95, @0.99 (-), cQPS x3 (all -), max rec
    assert_eq!(cells[4..10], ["2000", "2000", "-", "-", "-", "-"], "{table}");
}

#[test]
fn summaries_rank_by_wall_or_cpu_qps() {
    // A: faster by the wall clock (it ran on a quiet core); B: faster per CPU-second.
    let mut a = record("A", 0.96, 1000.0);
    a.qps_cpu = Some(1100.0);
    let mut b = record("B", 0.96, 800.0);
    b.qps_cpu = Some(1500.0);
    let c = record("C", 0.80, 9000.0); // never reaches 0.90: ranked last either way
    let rs = vec![c.clone(), b.clone(), a.clone()];
    let order = |rank: Rank| -> Vec<String> {
        summary_table(&rs, rank)
            .lines()
            .filter_map(|l| l.strip_prefix("vq ").map(|r| r.split_whitespace().next().unwrap().to_string()))
            .collect()
    };
    assert_eq!(order(Rank::Qps), ["A", "B", "C"]);
    assert_eq!(order(Rank::QpsCpu), ["B", "A", "C"]);
    assert_eq!(order(Rank::Input), ["C", "B", "A"]);
    let table = summary_table(&rs, Rank::QpsCpu);
    assert!(table.contains("ranked by cQPS@0.95"), "{table}");
    let b_row = table.lines().find(|l| l.starts_with("vq B")).unwrap();
    assert_eq!(b_row.split_whitespace().collect::<Vec<_>>()[4..10], ["800", "800", "-", "1500", "1500", "-"]);
    assert!("qps_cpu".parse::<Rank>().unwrap() == Rank::QpsCpu && "qps".parse::<Rank>().unwrap() == Rank::Qps);
    assert!("fastest".parse::<Rank>().unwrap_err().to_string().contains("`fastest`"));
}

#[test]
fn frontier_keeps_only_pareto_points_and_plots_are_written() {
    let rs =
        vec![record("A", 0.9, 1000.0), record("A", 0.95, 500.0), record("A", 0.93, 400.0), record("A", 0.99, 100.0)];
    let curves = plot::frontiers(&rs);
    assert_eq!(curves.len(), 1);
    // (0.93, 400) is beaten by (0.95, 500) in both recall and QPS.
    assert_eq!(curves[0].1, vec![(0.9, 1000.0), (0.95, 500.0), (0.99, 100.0)]);

    let dir = scratch("plot");
    let (svg, png) = plot::write_plots(&rs, &dir.join("p"), "test").unwrap();
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.contains("<svg") && svg_text.contains("vq A"), "legend text in the SVG");
    let png_bytes = std::fs::read(&png).unwrap();
    assert!(png_bytes.len() > 1000 && png_bytes.starts_with(b"\x89PNG"));
}

/// A tiny texmex folder: 6 base vectors of dimension 2, 2 queries, exact ground truth.
fn tiny_folder(dir: &Path) {
    let base: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i * 10, 0]).collect();
    write_texmex(&dir.join("base.bvecs"), 2, &base);
    write_texmex(&dir.join("query.bvecs"), 2, &[vec![1, 0], vec![52, 0]]);
    write_ivecs(&dir.join("gt.ivecs"), &[vec![0, 1, 2], vec![5, 4, 3]]);
}

#[test]
fn a_texmex_folder_runs_end_to_end_with_its_own_ground_truth() {
    let dir = scratch("folder");
    let data = dir.join("tiny");
    std::fs::create_dir_all(&data).unwrap();
    tiny_folder(&data);
    let out = dir.join("out");
    let a = args(&["--dataset", "tiny", "--data-dir", dir.to_str().unwrap(), "--k", "3", "--threads", "1"]);
    let mut a = a;
    a.extend(args(&["--out", out.to_str().unwrap(), "--reps", "1", "--latency-queries", "2"]));
    a.extend(args(&["--index", "Flat", "--index", "HNSW8"]));
    cli::main(&a).unwrap();
    let records = read_jsonl(&out.join("tiny-l2-k3-1t.jsonl")).unwrap();
    assert_eq!(records[0].algo, "Flat");
    assert_eq!(records[0].recall, Some(1.0));
    assert_eq!((records[0].nb, records[0].nq, records[0].dim), (6, 2, 2));
    // Six 2-d vectors, stored by vq's Flat index as f32.
    assert_eq!(records[0].index_bytes, (6 * 2 * std::mem::size_of::<f32>()) as u64);
    // Every point carries the CPU time of its batch, and qps_cpu is nq over it.
    for r in &records {
        let (cpu, qps_cpu) = (r.cpu_s.unwrap(), r.qps_cpu.unwrap());
        assert!(cpu >= 0.0 && (qps_cpu * cpu.max(1e-9) - r.nq as f64).abs() < 1e-6 * r.nq as f64, "{r:?}");
        // Train and add are timed apart and make up build_s; Flat and HNSW need no training.
        let (train, add) = (r.train_s.unwrap(), r.add_s.unwrap());
        assert!(train >= 0.0 && add > 0.0 && (train + add - r.build_s).abs() < 1e-12, "{r:?}");
        assert!(r.build_cpu_s.is_some_and(|c| c >= 0.0), "{r:?}");
    }
    // HNSW: one record per ef of the default sweep, each with recall measured (6 vectors: exact).
    let hnsw: Vec<_> = records.iter().filter(|r| r.algo == "HNSW8").collect();
    assert_eq!(hnsw.len(), vq_bench::index::EF_SWEEP.len());
    assert!(hnsw.iter().all(|r| r.recall == Some(1.0) && r.search_params.contains_key("ef")));
}

#[test]
fn bad_input_gives_a_one_line_error() {
    let dir = scratch("errors");
    let data = dir.join("tiny");
    std::fs::create_dir_all(&data).unwrap();
    tiny_folder(&data);
    let out = dir.join("out");
    let run = |extra: &[&str]| {
        let mut a = args(&["--data-dir", dir.to_str().unwrap(), "--out", out.to_str().unwrap(), "--reps", "1"]);
        a.extend(args(extra));
        cli::main(&a).unwrap_err().to_string()
    };
    let sweep = run(&["--dataset", "tiny", "--index", "Flat", "--sweep", "ef"]);
    assert!(sweep.contains("KEY=V1,V2"), "{sweep}");
    let missing = run(&["--dataset", "nope"]);
    assert!(missing.contains("dataset `nope`"), "{missing}");
    let spec = run(&["--index", "HNSW9000,Magic"]);
    assert!(
        spec.contains("\"HNSW9000,Magic\"") && spec.contains("at \"Magic\"") && spec.contains("accepted"),
        "{spec}"
    );
    let deep = run(&["--dataset", "tiny", "--k", "5"]);
    assert!(deep.contains("3 neighbours per query, fewer than k = 5"), "{deep}");
    assert!(run(&["--k", "0"]).contains("--k must be at least 1"));
    assert!(run(&["--frobnicate"]).contains("unknown option `--frobnicate`"));

    // Queries of another dimension than the base.
    write_texmex(&data.join("query.bvecs"), 3, &[vec![1, 2, 3]]);
    let mismatch = run(&["--dataset", "tiny"]);
    assert!(mismatch.contains("dimension 3") && mismatch.contains("has 2"), "{mismatch}");
    // A truncated base file.
    std::fs::write(data.join("base.bvecs"), [2u8, 0, 0, 0, 1]).unwrap();
    let truncated = run(&["--dataset", "tiny"]);
    assert!(truncated.contains("base.bvecs") && truncated.contains("truncated"), "{truncated}");
    for msg in [missing, mismatch, truncated] {
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

#[test]
fn ground_truth_without_scores_counts_only_ids() {
    // The dataset type keeps what files carry: ids only for texmex ground truth.
    let ds = Dataset {
        name: "x".into(),
        dim: 1,
        base: Vectors::F32(vec![0.0, 1.0]),
        queries: Vectors::F32(vec![0.0]),
        gt: Some(GroundTruth { depth: 2, ids: vec![0, 1], scores: None }),
        learn: None,
        dir: None,
    };
    assert_eq!(ds.nb(), 2);
    assert_eq!(vq_bench::recall::recall_at_k([&[1u64, 0][..]], ds.gt.as_ref().unwrap(), 1), Some(0.0));
}

#[test]
fn big_ann_and_npy_folders_load_through_vq_io() {
    let dir = scratch("formats");
    let base: Vec<f32> = (0..40).map(|i| (i / 2) as f32).collect(); // 20 vectors of dim 2
    let queries = [0.1f32, 0.0, 18.9, 19.0];
    for (name, fmt, gfmt, ext) in [
        ("bin", vq_io::Format::Fbin, vq_io::Format::Ibin, ["fbin", "ibin"]),
        ("npy", vq_io::Format::Npy, vq_io::Format::Npy, ["npy", "npy"]),
    ] {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).unwrap();
        vq_io::write(data.join(format!("base.{}", ext[0])), fmt, &base, 2).unwrap();
        vq_io::write(data.join(format!("query.{}", ext[0])), fmt, &queries, 2).unwrap();
        vq_io::write(data.join(format!("gt.{}", ext[1])), gfmt, &[0i32, 1, 19, 18], 2).unwrap();
        let out = dir.join(format!("out-{name}"));
        let mut a = args(&["--dataset", name, "--data-dir", dir.to_str().unwrap(), "--k", "2", "--threads", "1"]);
        a.extend(args(&["--index", "Flat", "--out", out.to_str().unwrap(), "--reps", "1", "--latency-queries", "0"]));
        cli::main(&a).unwrap();
        let r = read_jsonl(&out.join(format!("{name}-l2-k2-1t.jsonl"))).unwrap();
        assert_eq!((r[0].nb, r[0].nq, r[0].dim, r[0].recall), (20, 2, 2, Some(1.0)), "{name}");
    }
}

#[test]
fn the_process_clock_counts_work_not_sleep() {
    let Some(c0) = vq_bench::runner::process_cpu_seconds() else {
        return; // no process clock on this platform: the records carry no cpu_s (tested above)
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let c1 = vq_bench::runner::process_cpu_seconds().unwrap();
    // Busy work until 30 ms of wall time pass: most of it is CPU time even on a loaded core.
    let t = std::time::Instant::now();
    let mut x = 0u64;
    while t.elapsed() < std::time::Duration::from_millis(30) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    let c2 = vq_bench::runner::process_cpu_seconds().unwrap();
    assert!(c1 >= c0 && c2 >= c1);
    // Sleeping 50 ms costs far less CPU than spinning 30 ms.
    assert!(c2 - c1 > c1 - c0, "sleep {} s, spin {} s of CPU", c1 - c0, c2 - c1);
}

#[test]
fn kmeans_mode_writes_peers_fields_and_a_table_beside_faiss() {
    let dir = scratch("kmeans");
    let data = dir.join("km");
    std::fs::create_dir_all(&data).unwrap();
    // Two tight groups of 2-d u8 points in the learn set; the base is the tiny folder's.
    tiny_folder(&data);
    let learn: Vec<Vec<u8>> = (0..40u8).map(|i| if i < 20 { vec![i % 3, 0] } else { vec![200 + i % 3, 100] }).collect();
    write_texmex(&data.join("learn.bvecs"), 2, &learn);
    let out = dir.join("out");
    // A peers.py line of the same setting, to be read back as the reference.
    let faiss = r#"{"algo": "faiss-kmeans", "library": "faiss", "version": "1.15.1", "params": {"k": 2, "niter": 5, "max_points_per_centroid": 256, "seed": 1234, "spherical": false, "on": "learn"}, "wall_s": 0.5, "n": 40, "n_used": 40, "dim": 2, "threads": 1, "metric": "l2", "objective": 100.0, "objective_final": 100.0, "mse_final": 2.5, "iterations": 5, "imbalance_factor": 1.0}"#;
    let peers = dir.join("peers.jsonl");
    std::fs::write(&peers, format!("{faiss}\n")).unwrap();
    let mut a = args(&["--kmeans", "--dataset", "km", "--data-dir", dir.to_str().unwrap(), "--k", "2"]);
    a.extend(args(&["--niter", "5", "--kmeans-on", "learn", "--threads", "1", "--out", out.to_str().unwrap()]));
    a.extend(args(&["--with", peers.to_str().unwrap()]));
    cli::main(&a).unwrap();
    cli::main(&a).unwrap(); // appended, not replaced
    let lines = vq_bench::kmeans::read_jsonl(&out.join("km-kmeans.jsonl")).unwrap();
    assert_eq!(lines.len(), 2);
    let v = &lines[0];
    for f in ["wall_s", "objective", "objective_final", "n", "n_used", "dim", "threads", "iterations"] {
        assert!(v.get(f).is_some_and(|x| !x.is_null()), "{f} missing in {v}");
    }
    assert_eq!((v["n"].as_u64(), v["dim"].as_u64(), v["params"]["k"].as_u64()), (Some(40), Some(2), Some(2)));
    assert_eq!((v["params"]["niter"].as_u64(), v["params"]["on"].as_str()), (Some(5), Some("learn")));
    // The two groups found: each point is within 2 of its centroid, so the sum is at most 40 * 2².
    let fin = v["objective_final"].as_f64().unwrap();
    assert!(fin <= 160.0, "{v}");
    assert!((v["mse_final"].as_f64().unwrap() - fin / 40.0).abs() < 1e-9);
    // The same seed gives the same objective in both runs.
    assert_eq!(lines[0]["objective_final"], lines[1]["objective_final"]);

    // summarize reads both kinds of line; the ratios are to the Faiss line.
    let mut all = lines.clone();
    all.extend(vq_bench::kmeans::read_jsonl(&peers).unwrap());
    let table = vq_bench::kmeans::summary_table(&all);
    let vq_row = table.lines().find(|l| l.starts_with("vq ")).unwrap();
    let want = format!("{:.4}", fin / 100.0);
    assert!(vq_row.trim_end().ends_with(&want), "{table}");
    assert!(table.lines().any(|l| l.starts_with("faiss ") && l.contains("1.0000")), "{table}");

    let err = |extra: &[&str]| {
        let mut b = args(&["--kmeans", "--dataset", "km", "--data-dir", dir.to_str().unwrap()]);
        b.extend(args(&["--out", out.to_str().unwrap()]));
        b.extend(args(extra));
        cli::main(&b).unwrap_err().to_string()
    };
    assert!(err(&["--k", "41", "--kmeans-on", "learn"]).contains("n = 40"));
    assert!(err(&["--k", "2", "--niter", "0"]).contains("--niter"));
    assert!(err(&["--k", "2", "--kmeans-on", "test"]).contains("`test`"));
    std::fs::remove_file(data.join("learn.bvecs")).unwrap();
    assert!(err(&["--k", "2", "--kmeans-on", "learn"]).contains("no learn file"));
}
