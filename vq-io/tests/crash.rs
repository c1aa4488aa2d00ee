//! Crash safety: a process killed in the middle of writing a container leaves the previous
//! file byte-identical, and the next write of that target removes the temporary file it left.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use vq_io::{ContainerReader, ContainerWriter};

const CHILD_ENV: &str = "VQ_IO_CRASH_CHILD_TARGET";

/// Run as a child process by `killed_writer_leaves_the_old_file`: starts overwriting the
/// target, reports how far it got, and waits to be killed. Does nothing in a normal run.
#[test]
fn crash_child() {
    let Ok(target) = std::env::var(CHILD_ENV) else { return };
    let mut w = ContainerWriter::create(&target).unwrap();
    // More than the writer's buffer, so bytes reach the temporary file.
    w.add_array("data", 1, &vec![2.0f32; 1 << 20]).unwrap();
    println!("WRITING {}", w.temp_path().display());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
    w.finish().unwrap();
}

#[test]
fn killed_writer_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("index.vq");
    let mut w = ContainerWriter::create(&target).unwrap();
    w.add_array("data", 1, &vec![1.0f32; 1000]).unwrap();
    w.finish().unwrap();
    let old = std::fs::read(&target).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &target)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // libtest may print `test crash_child ... ` before it on the same line.
    while !line.contains("WRITING ") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child ended before writing");
    }
    let tmp = line.split("WRITING ").nth(1).unwrap().trim().to_owned();
    // The child is mid-write: its temporary file holds part of the new container.
    assert!(std::fs::metadata(&tmp).unwrap().len() > 1 << 20);
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(std::fs::read(&target).unwrap(), old, "the target changed");
    let r = ContainerReader::open(&target).unwrap();
    assert_eq!(r.array::<f32>("data").unwrap(), &[1.0; 1000]);
    drop(r);

    // The killed writer's temporary file is still there; the next writer of the same target
    // removes it (its process is gone), but not the file of a writer still running (this
    // process's own, open below) nor temporary files of other targets.
    assert!(std::path::Path::new(&tmp).exists(), "the kill left the temporary file");
    let other = dir.path().join(".other.vq.4000000000.0.vqtmp"); // no such process
    std::fs::write(&other, b"x").unwrap();
    let live = ContainerWriter::create(&target).unwrap();
    if std::path::Path::new("/proc/self").exists() {
        assert!(!std::path::Path::new(&tmp).exists(), "the dead writer's temporary file was removed");
    }
    assert!(live.temp_path().exists(), "this writer's own file is there");
    let mut w = ContainerWriter::create(&target).unwrap();
    assert!(live.temp_path().exists(), "a live writer's file is kept");
    assert!(other.exists(), "another target's temporary file is kept");
    w.add_array("data", 1, &[3.0f32; 4]).unwrap();
    w.finish().unwrap();
    drop(live);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "the target and the other target's file: {names:?}");
}
