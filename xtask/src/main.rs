//! `cargo xtask`: the workspace's developer commands.
//!
//! - `cargo xtask bench [OPTIONS]`: the main job: builds and searches vq's indexes on a
//!   dataset and reports build time, QPS and recall@k against exact ground truth, as a table
//!   and as JSON lines in the schema of `../shared/bench/peers.py`.
//! - `cargo xtask test`: the README's test command: `cargo test --workspace`, then the Python
//!   wheel's pytest suite (see [`pytests`]).
//! - `cargo xtask ci`: runs `.ci/run` (tests, formatting, clippy, docs, packaging).

mod fuzz;
mod pytests;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => vq_bench::cli::main(&args[1..]).map_err(|e| e.to_string()),
        Some("test") => pytests::main(&args[1..]),
        Some("ci") => ci(),
        Some("fuzz") => fuzz::main(&args[1..]),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <command>

commands:
  bench   measure vq's indexes (recall@k against exact ground truth, QPS); --help for options
  test    cargo test --workspace, then the Python wheel's pytest suite (--no-python: Rust only,
          --python-only: pytest only, --python EXE: the interpreter for the venv)
  ci      run the checks of .ci/run: tests, cargo fmt --check, clippy -D warnings
  fuzz    run vq-io's cargo-fuzz targets: fuzz [TARGET] [--seconds N] (installs nightly, cargo-fuzz)";

/// Runs `.ci/run`, the one list of CI's checks (tests, the portable-SIMD pass, fmt, clippy,
/// docs, packaging), so this command and CI never drift apart.
fn ci() -> Result<(), String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/run");
    println!("xtask ci: bash {}", script.display());
    let status = Command::new("bash").arg(&script).status().map_err(|e| format!("cannot run bash: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{} failed ({status})", script.display())) }
}

#[cfg(test)]
mod tests {
    /// The README's example is `vq/examples/quickstart.rs`, which `cargo test` builds;
    /// this keeps the two from drifting apart.
    #[test]
    fn readme_example_is_the_quickstart_example() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
        let example = std::fs::read_to_string(format!("{root}/vq/examples/quickstart.rs")).unwrap();
        assert!(
            readme.contains(&format!("```rust\n{example}```")),
            "README.md's example differs from examples/quickstart.rs"
        );
    }
}
