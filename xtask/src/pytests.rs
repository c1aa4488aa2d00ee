//! `cargo xtask test`: `cargo test --workspace`, then the Python wheel's tests.
//!
//! The Python half: a virtual environment under the target folder
//! (`target/vq-python-venv`) with pinned numpy, pytest and `ray[data]` from the package registry (installed
//! once; the pins are stamped in the venv), the extension module built with the **test**
//! profile and `cargo test`'s targets (so it reuses what `cargo test` just compiled instead of a
//! second, release build of every crate — release wheels come from `maturin build --release`;
//! `maturin develop --profile test` would build the module as a test harness), copied into
//! `vq-python/python/vq/` as maturin's `develop` would, and `pytest vq-python/tests` with the
//! package on `PYTHONPATH`. `VQ_SEARCH_INDEX` points the tests at the `search_index` example
//! (the Rust API's side of "same results as the Rust API"), which `cargo test` builds.
//!
//! No Python is needed for anything else: `cargo xtask bench` and `cargo test` never touch it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python packages the tests run on, pinned so a registry release cannot break CI.
/// `ray[data]` (with pyarrow and pandas) is for `vq.ray`'s tests on a local 2-CPU Ray.
const PINS: &[&str] = &["numpy==2.4.6", "pytest==9.2.0", "ray[data]==2.52.1"];

struct Options {
    rust: bool,
    python: bool,
    interpreter: String,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        rust: true,
        python: true,
        interpreter: std::env::var("VQ_PYTHON").unwrap_or_else(|_| "python3".into()),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-python" => o.python = false,
            "--python-only" => o.rust = false,
            "--python" => o.interpreter = it.next().ok_or("--python needs an interpreter path")?.clone(),
            "-h" | "--help" => {
                return Err("usage: cargo xtask test [--no-python | --python-only] [--python EXE]".into());
            }
            other => return Err(format!("test: unknown option `{other}`")),
        }
    }
    Ok(o)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask test: {cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() { Ok(()) } else { Err(format!("{:?} failed ({status})", cmd.get_program())) }
}

/// The workspace's root (this crate's parent folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// Where cargo puts its builds: `CARGO_TARGET_DIR` (relative to the root, as cargo reads it
/// when run there) or `target/`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The extension module's file name as cargo writes it and as Python imports it.
fn module_names() -> (&'static str, &'static str) {
    if cfg!(target_os = "windows") {
        ("_vq.dll", "_vq.pyd")
    } else if cfg!(target_os = "macos") {
        ("lib_vq.dylib", "_vq.abi3.so")
    } else {
        ("lib_vq.so", "_vq.abi3.so")
    }
}

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let root = root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if o.rust {
        run(Command::new(&cargo).current_dir(&root).args(["test", "--workspace"]))?;
    }
    if !o.python {
        return Ok(());
    }
    let target = target_dir(&root);
    let venv = target.join("vq-python-venv");
    let bin = if cfg!(windows) { venv.join("Scripts") } else { venv.join("bin") };
    let python = bin.join(if cfg!(windows) { "python.exe" } else { "python" });
    if !python.exists() {
        run(Command::new(&o.interpreter).args(["-m", "venv"]).arg(&venv))
            .map_err(|e| format!("{e}: the Python tests need Python 3.9+ with venv (--no-python skips them)"))?;
    }
    let stamp = venv.join("vq-pins.txt");
    let pins = PINS.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(pins.as_str()) {
        run(Command::new(&python).args(["-m", "pip", "install", "--disable-pip-version-check", "-q"]).args(PINS))?;
        std::fs::write(&stamp, &pins).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }

    // The targets `cargo test` builds, with its features: every crate is fresh from the test
    // run, so this compiles only PyO3 and the module. PYO3_BUILD_EXTENSION_MODULE is what
    // maturin sets: libpython stays unlinked, as an extension module needs.
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--profile", "test", "--workspace", "--lib", "--bins", "--tests", "--examples"])
        .env("PYO3_BUILD_EXTENSION_MODULE", "1")
        .env("PYO3_PYTHON", &python))?;
    let (built, module) = module_names();
    let built = target.join("debug").join(built);
    let dest = root.join("vq-python/python/vq").join(module);
    // Replace, never write through: a running Python may still have the old file mapped.
    let _ = std::fs::remove_file(&dest);
    std::fs::copy(&built, &dest).map_err(|e| format!("copy {} -> {}: {e}", built.display(), dest.display()))?;

    let search_index =
        target.join("debug/examples").join(if cfg!(windows) { "search_index.exe" } else { "search_index" });
    run(Command::new(&python)
        .current_dir(root.join("vq-python"))
        .args(["-m", "pytest", "tests", "-q", "-rs"])
        .env("PYTHONPATH", root.join("vq-python/python"))
        .env("VQ_SEARCH_INDEX", search_index))
}
