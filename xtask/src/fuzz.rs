//! `cargo xtask fuzz [TARGET] [--seconds N]`: runs the cargo-fuzz targets of vq's readers
//! (`fuzz/`): vq-io's formats and container, HNSW files, quantizer sections, `vq::read_index`.
//!
//! Installs what it needs itself: a nightly toolchain (`rustup toolchain install nightly
//! --profile minimal`) and cargo-fuzz (`cargo install cargo-fuzz --locked`). Seeds each
//! target's corpus with small valid files (`cargo run -p vq-io --example io_fuzz_seeds`,
//! `cargo run -p vq-graph --example graph_fuzz_seeds` and `cargo run -p vq --example index_fuzz_seeds`:
//! vq's golden index files), then
//! runs each target with one job for N seconds (default 60) and prints libFuzzer's run count.
//! A crash, a timeout (10 s per input) or an allocation over 2 GiB is a finding: the input is
//! kept under `fuzz/artifacts/TARGET/` and the command fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The targets in `fuzz/fuzz_targets/`.
const TARGETS: [&str; 7] = ["texmex", "bin", "npy", "container", "hnsw", "quantizers", "read_index"];

const USAGE: &str = "usage: cargo xtask fuzz [TARGET] [--seconds N]

Runs the cargo-fuzz targets of vq's readers (all of them, or TARGET) for N seconds each
(default 60), one job each. Targets: texmex, bin, npy, container, hnsw, quantizers, read_index.";

/// Entry point for `cargo xtask fuzz ARGS`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut targets: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a value")?;
                seconds = v.parse().map_err(|_| format!("--seconds: not a number: {v}"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => return Err(format!("unknown fuzz target or option `{other}`\n\n{USAGE}")),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_tools(&cargo)?;
    let corpus = root.join("fuzz/corpus");
    // One seed writer per crate; distinct example names keep their binaries apart in target/.
    for (package, example) in [("vq-io", "io_fuzz_seeds"), ("vq-graph", "graph_fuzz_seeds"), ("vq", "index_fuzz_seeds")]
    {
        run(Command::new(&cargo)
            .current_dir(&root)
            .args(["run", "-q", "-p", package, "--example", example, "--"])
            .arg(&corpus))?;
    }

    let mut summary = Vec::new();
    for t in targets {
        println!("xtask fuzz: {t} for {seconds} s");
        let (runs, ok) = fuzz_one(&root, &corpus, t, seconds)?;
        summary.push(format!(
            "{t}: {} executions in {seconds} s, {}",
            runs.as_deref().unwrap_or("?"),
            if ok { "no findings" } else { "FAILED (see fuzz/artifacts)" }
        ));
        if !ok {
            println!("{}", summary.join("\n"));
            return Err(format!("fuzz target {t} found a failing input"));
        }
    }
    println!("xtask fuzz summary:\n  {}", summary.join("\n  "));
    Ok(())
}

/// Installs nightly and cargo-fuzz when missing.
fn ensure_tools(cargo: &str) -> Result<(), String> {
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_nightly {
        println!("xtask fuzz: installing the nightly toolchain");
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    let has_fuzz = Command::new(cargo)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fuzz {
        println!("xtask fuzz: installing cargo-fuzz");
        run(Command::new(cargo).args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// Runs one target; returns libFuzzer's execution count and whether it ended cleanly.
fn fuzz_one(root: &Path, corpus: &Path, target: &str, seconds: u64) -> Result<(Option<String>, bool), String> {
    let mut child = Command::new("cargo")
        .current_dir(root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz", target])
        .arg(corpus.join(target))
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-max_len=65536",
            "-print_final_stats=1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let mut runs = None;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    for line in BufReader::new(stderr).lines() {
        let line = line.map_err(|e| e.to_string())?;
        // libFuzzer's final line: "Done 123456 runs in 60 second(s)".
        if let Some(rest) = line.strip_prefix("Done ") {
            runs = rest.split_whitespace().next().map(str::to_owned);
        }
        let keep = ["Done ", "stat::", "ERROR", "SUMMARY", "panicked", "artifact", "DONE", "Compiling vq", "error"];
        if keep.iter().any(|k| line.contains(k)) && !line.contains("NEW_FUNC") {
            eprintln!("  {line}");
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok((runs, status.success()))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed ({status})")) }
}
