//! The dev stack's own guarantees: servers start on demand and leave nothing behind.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use devstack::process::GuardedProcess;
use devstack::{postgres, scratch_dir};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn postgres_starts_and_accepts_queries() {
    let pg = postgres();
    assert_eq!(pg.psql("postgres", "select 40 + 2").unwrap(), "42");
    let version: u32 = pg
        .psql("postgres", "show server_version_num")
        .unwrap()
        .parse()
        .unwrap();
    assert!(version >= 150_000, "{version}");
    pg.psql("postgres", "create database devstack_smoke")
        .unwrap();
    assert!(pg.url("devstack_smoke").ends_with("/devstack_smoke"));
}

#[test]
fn a_guarded_server_is_stopped_and_its_scratch_removed_on_drop() {
    let scratch = scratch_dir("guard-test").unwrap();
    let pid_file = scratch.join("pid");
    // Written then renamed: the test must never read a created but still empty file (it did,
    // once, and then looked for a process called "").
    let script = format!(
        "echo $$ > {0}.tmp && mv {0}.tmp {0}; exec sleep 600",
        pid_file.display()
    );
    let process = GuardedProcess::spawn(
        Path::new("sh"),
        &["-c".into(), script],
        &[],
        &std::env::temp_dir().join("auditkit-guard-test.log"),
        "TERM",
        Some(&scratch),
    )
    .unwrap();
    let start = Instant::now();
    while !pid_file.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(pid.parse::<u32>().is_ok(), "pid file holds {pid:?}");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "server running"
    );

    drop(process);
    assert!(!scratch.exists(), "scratch directory removed");
    // The server may linger as a zombie for a moment; it must not keep running.
    let start = Instant::now();
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.is_empty() || state.contains(") Z ") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server {pid} still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
