//! Performance figures of kneo-tui (DESIGN.md § 8), printed, never asserted:
//!
//! - time to first frame: five launches in a detached 80×24 tmux session; the binary appends its
//!   own timings to the file named by `KNEO_TUI_TIMING` (from `main`, and from process creation);
//! - CPU at `--refresh 1s`: `utime + stime` of the process over `KNEO_TUI_PERF_SECONDS` (30) of
//!   idle polling against a healthy local kneo server (embedded store), as a share of one core;
//! - memory: `VmRSS` and `VmHWM` at the end.
//!
//! Run: `cargo bench -p kneo-tui --bench perf` (release binaries; the server is started by
//! `kneo_testkit`, the dashboard with the operator key).

// A benchmark: it runs only under `cargo bench`, where a failed unwrap stops the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/tmux/support.rs"]
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kneo_testkit::server::{KneoServer, OPERATOR_KEY, ServerOptions};
use support::{Session, shell_quote, tui_command};

const LAUNCHES: usize = 5;

fn main() {
    let seconds: u64 = std::env::var("KNEO_TUI_PERF_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let server = KneoServer::start(ServerOptions::default());
    let dir = tempfile::tempdir().expect("temp dir");
    println!("kneo-tui performance ({})", support::kneo_tui().display());
    println!("server: {} (embedded store)", server.url);

    // ---- time to first frame ----
    let mut first = Vec::new();
    let mut first_exec = Vec::new();
    let mut first_data = Vec::new();
    for launch in 0..LAUNCHES {
        let timing = dir.path().join(format!("timing-{launch}.txt"));
        let session = start(&server.url, &timing, "1s");
        let values = wait_for_timing(&timing, "first_data_frame_ms", Duration::from_secs(10));
        drop(session);
        first.push(values.get("first_frame_ms").copied().unwrap_or(f64::NAN));
        first_exec.push(
            values
                .get("first_frame_ms_since_exec")
                .copied()
                .unwrap_or(f64::NAN),
        );
        first_data.push(
            values
                .get("first_data_frame_ms")
                .copied()
                .unwrap_or(f64::NAN),
        );
    }
    println!();
    println!("time to first frame over {LAUNCHES} launches (ms): min / median / max");
    report("  first frame, from main()", &mut first);
    report(
        "  first frame, from process creation (10 ms resolution)",
        &mut first_exec,
    );
    report(
        "  first frame with a poll's data, from main()",
        &mut first_data,
    );

    // ---- CPU and memory while idle-polling ----
    let timing = dir.path().join("timing-cpu.txt");
    let session = start(&server.url, &timing, "1s");
    wait_for_timing(&timing, "first_data_frame_ms", Duration::from_secs(10));
    let pid = find_tui_pid(&session).expect("the kneo-tui process");
    // Let start-up settle before measuring the steady state.
    std::thread::sleep(Duration::from_secs(2));
    let (ticks_before, at_before) = (cpu_ticks(pid).expect("stat"), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (ticks_after, at_after) = (cpu_ticks(pid).expect("stat"), Instant::now());
    let ticks_per_second = rustix::param::clock_ticks_per_second() as f64;
    let cpu_seconds = (ticks_after - ticks_before) as f64 / ticks_per_second;
    let wall = (at_after - at_before).as_secs_f64();
    let (rss, hwm) = memory_kib(pid).unwrap_or((0, 0));
    println!();
    println!("idle polling at --refresh 1s for {wall:.0} s (pid {pid}):");
    println!(
        "  CPU: {cpu_seconds:.2} s of CPU = {:.2} % of one core",
        cpu_seconds / wall * 100.0
    );
    println!(
        "  memory: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!();
    println!(
        "targets (DESIGN.md § 8): first frame < 150 ms, < 2 % of a core at 1 s refresh, < 30 MiB"
    );
    drop(session);
}

fn start(url: &str, timing: &Path, refresh: &str) -> Session {
    let command = format!(
        "env KNEO_TUI_TIMING={} {}",
        shell_quote(&timing.display().to_string()),
        tui_command(&[
            "--url",
            url,
            "--api-key",
            OPERATOR_KEY,
            "--refresh",
            refresh
        ])
    );
    Session::start(80, 24, &command)
}

fn wait_for_timing(
    path: &Path,
    key: &str,
    limit: Duration,
) -> std::collections::BTreeMap<String, f64> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let values: std::collections::BTreeMap<String, f64> = text
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
            .collect();
        if values.contains_key(key) {
            return values;
        }
        assert!(
            started.elapsed() < limit,
            "no {key} in {} after {limit:?}: {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn report(label: &str, values: &mut [f64]) {
    values.sort_by(f64::total_cmp);
    println!(
        "{label}: {:.1} / {:.1} / {:.1}",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    );
}

/// kneo-tui among the pane's process and its descendants.
fn find_tui_pid(session: &Session) -> Option<u32> {
    let mut queue = vec![session.pane_pid()?];
    while let Some(pid) = queue.pop() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "kneo-tui" {
            return Some(pid);
        }
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        queue.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    None
}

/// `utime + stime` of the whole process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: field 14 (utime) is index 11, field 15 (stime) index 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// `VmRSS` and `VmHWM` in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
