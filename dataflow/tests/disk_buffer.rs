//! Disk buffers through the real `sluice` binary: a file source → file sink with
//! `buffer = { type = "disk" }` delivers every line once and leaves its WAL under
//! `data_dir/buffers/<sink>/shard-<n>/`; records left unacknowledged in a WAL (written here
//! with the engine's WAL API, as a crashed run would leave them) are delivered at start
//! before new data, and not again after the next restart; a sink whose writes fail keeps
//! its records in the WAL and writes them again.

mod common;

use common::*;
use futures_lite::future::block_on;
use sluice_engine::wal::{StdIo, SyncMode, Wal, WalConfig};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// Kills the child when the test ends, even on panic.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &Path, input: &Path, out: &Path, port: u16, shards: usize) -> std::path::PathBuf {
    let cfg = dir.join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[engine]
shards = {shards}
data_dir = "{data}"
batch_size = 256

[api]
address = "127.0.0.1:{port}"

[sources.in]
type = "file"
include = ["{input}"]
checkpoint_interval = "100ms"

[sinks.out]
type = "file"
inputs = ["in"]
path = "{out}"
encoding = "text"
buffer = {{ type = "disk", max_size = "64MiB", segment_size = "1MiB", sync = "batch" }}
"#,
            data = dir.join("data").display(),
            input = input.display(),
            out = out.display()
        ),
    )
    .unwrap();
    cfg
}

fn wait_lines(path: &Path, n: usize, child: &mut Child) -> Vec<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.len() >= n {
            return lines;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sluice exited early with {status}");
        }
        assert!(
            start.elapsed() < LIMIT,
            "only {} of {n} lines arrived",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn file_to_disk_buffered_file_sink_delivers_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    let lines: Vec<String> = (0..20_000)
        .map(|i| format!("line {i:06} of the input"))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out.log");
    let port = free_port();
    let cfg = config(dir.path(), &input, &out, port, 2);
    let log = dir.path().join("sluice.log");
    let mut child = Guard(spawn_logged(sluice().arg("run").arg(&cfg), &log));
    wait_ready(&mut child.0, port, LIMIT);
    let mut got = wait_lines(&out, lines.len(), &mut child.0);
    assert_eq!(
        terminate(&mut child.0, LIMIT),
        0,
        "log: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    got.sort();
    assert_eq!(got, lines, "every line exactly once");
    let wal = dir.path().join("data/buffers/out/shard-0");
    let segments = std::fs::read_dir(&wal)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count();
    assert!(segments >= 1, "no WAL segment in {}", wal.display());
    assert!(wal.join("cursor").exists());
}

#[test]
fn unacknowledged_records_replay_before_new_data_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    // What a crashed run left: three durable, unacknowledged records in shard 0's WAL.
    let wal_dir = dir.path().join("data/buffers/out/shard-0");
    let wal = Wal::open(
        &wal_dir,
        WalConfig {
            segment_size: 1 << 20,
            sync: SyncMode::Batch,
        },
    )
    .unwrap();
    let w = block_on(wal.writer(StdIo)).unwrap();
    let out = dir.path().join("out.log");
    // The file sink's group key is its (static) path.
    let key = out.display().to_string();
    let mut payload = Vec::new();
    for r in 0..3 {
        let body = format!("replayed {r} a\nreplayed {r} b\n");
        sluice_connectors::sinks::disk_buffer::frame(
            &[(key.clone(), body.into_bytes())],
            &mut payload,
        );
        let t = block_on(w.append(2, &payload)).unwrap();
        block_on(w.durable(t)).unwrap();
    }
    drop(w);
    drop(wal);

    let input = dir.path().join("in.log");
    let lines: Vec<String> = (0..500).map(|i| format!("new {i:04}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let port = free_port();
    let cfg = config(dir.path(), &input, &out, port, 1);
    let log = dir.path().join("sluice.log");
    let mut child = Guard(spawn_logged(sluice().arg("run").arg(&cfg), &log));
    wait_ready(&mut child.0, port, LIMIT);
    let got = wait_lines(&out, 506, &mut child.0);
    assert_eq!(
        terminate(&mut child.0, LIMIT),
        0,
        "log: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    let want_first: Vec<String> = (0..3)
        .flat_map(|r| [format!("replayed {r} a"), format!("replayed {r} b")])
        .collect();
    assert_eq!(got[..6], want_first[..], "the replay comes first, in order");
    assert_eq!(got[6..], lines[..], "then the new data");

    // Restart: the replayed records were acknowledged, nothing is delivered twice.
    let port = free_port();
    let cfg = config(dir.path(), &input, &out, port, 1);
    let mut child = Guard(spawn_logged(sluice().arg("run").arg(&cfg), &log));
    wait_ready(&mut child.0, port, LIMIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        terminate(&mut child.0, LIMIT),
        0,
        "log: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    let again = std::fs::read_to_string(&out).unwrap();
    assert_eq!(again.lines().count(), 506, "nothing was delivered twice");
}

/// SIGKILL while lines flow (file source → disk-buffered file sink), then restart: every
/// input line is in the output (at least once; duplicates are counted and printed). A line
/// whose write the kill cut short stays as a fragment on a line of its own, followed later
/// by the whole line.
/// `SLUICE_DISK_KILLS` (default 3) kills, `SLUICE_DISK_LINES` (default 200,000) lines.
#[test]
fn sigkill_and_restart_loses_no_line() {
    let n: usize = std::env::var("SLUICE_DISK_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let kills: usize = std::env::var("SLUICE_DISK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    let lines: Vec<String> = (0..n).map(|i| format!("event {i:08} payload")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out.log");
    let log = dir.path().join("sluice.log");
    // (lines, distinct whole lines); a fragment (a write cut by the kill, its line ended by
    // the next start) is counted in neither.
    let whole = |l: &str| l.len() == 22 && l.starts_with("event ") && l.ends_with(" payload");
    let count = |out: &Path| {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        let mut uniq: Vec<&str> = text.lines().filter(|l| whole(l)).collect();
        let all = uniq.len();
        uniq.sort_unstable();
        uniq.dedup();
        (all, uniq.len())
    };
    for k in 0..kills {
        let port = free_port();
        let cfg = config(dir.path(), &input, &out, port, 2);
        let mut child = Guard(spawn_logged(sluice().arg("run").arg(&cfg), &log));
        wait_ready(&mut child.0, port, LIMIT);
        // Let some output appear past what the previous runs wrote, then kill -9.
        let before = count(&out).0;
        let start = Instant::now();
        while count(&out).0 <= before + (k + 1) * 1000 && count(&out).1 < n {
            assert!(start.elapsed() < LIMIT, "no progress in run {k}");
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.0.kill();
        let _ = child.0.wait();
    }
    let port = free_port();
    let cfg = config(dir.path(), &input, &out, port, 2);
    let mut child = Guard(spawn_logged(sluice().arg("run").arg(&cfg), &log));
    wait_ready(&mut child.0, port, LIMIT);
    let start = Instant::now();
    while count(&out).1 < n {
        assert!(
            start.elapsed() < LIMIT,
            "only {} of {n} distinct lines after the kills; log: {}",
            count(&out).1,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(terminate(&mut child.0, LIMIT), 0);
    let (all, uniq) = count(&out);
    eprintln!(
        "{kills} SIGKILLs: {uniq} distinct lines of {n}, {} duplicates",
        all - uniq
    );
    assert_eq!(uniq, n);
    // A fragment is the start of a line that is also there whole (its record was replayed).
    let text = std::fs::read_to_string(&out).unwrap();
    let fragments: Vec<&str> = text.lines().filter(|l| !whole(l)).collect();
    for f in &fragments {
        assert!(
            text.lines().any(|l| whole(l) && l.starts_with(f)),
            "torn line {f:?} is not the start of a delivered line"
        );
    }
    eprintln!("{} fragments of lines cut by a kill", fragments.len());
}

/// A write error does not lose what the disk buffer acknowledged. The sink's path lies
/// under `blocker`, a regular file, so every open fails (ENOTDIR): each record is tried
/// again with backoff (`sluice_sink_retries_total` grows, nothing counts as dropped) while
/// the source is acknowledged from the WAL. sluice stops with the records still failing
/// (they stay in the WAL), starts again still failing, and when `blocker` becomes a
/// directory the retries succeed: every line arrives, once.
#[test]
fn write_errors_are_retried_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    let lines: Vec<String> = (0..5_000)
        .map(|i| format!("line {i:06} of the input"))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let logs = [
        dir.path().join("sluice-0.log"),
        dir.path().join("sluice-1.log"),
    ];
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = blocker.join("out.log");
    let scrape = |port: u16| {
        let text = http_get(port, "/metrics").map(|r| r.1).unwrap_or_default();
        let get = |m: &str, l: &str| metric(&text, m, l).unwrap_or(0.0);
        (
            get("sluice_events_in_total", "component=\"out\""),
            get("sluice_sink_retries_total", "component=\"out\""),
            get(
                "sluice_events_dropped_total",
                "component=\"out\",reason=\"write_error\"",
            ),
        )
    };
    for (run, log) in logs.iter().enumerate() {
        let port = free_port();
        let cfg = config(dir.path(), &input, &out, port, 2);
        let mut child = Guard(spawn_logged(sluice().arg("run").arg(&cfg), log));
        wait_ready(&mut child.0, port, LIMIT);
        let start = Instant::now();
        loop {
            let (into_wal, retries, dropped) = scrape(port);
            assert_eq!(dropped, 0.0, "a failed write was dropped");
            // The first run buffers everything; the second has it in the WAL already.
            let buffered = run == 1 || into_wal as usize == lines.len();
            if buffered && retries >= 3.0 {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "run {run}: {into_wal} events buffered, {retries} retries; log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if run == 0 {
            assert_eq!(terminate(&mut child.0, LIMIT), 0);
            continue;
        }
        // Repair the destination while the sink keeps trying.
        std::fs::remove_file(&blocker).unwrap();
        std::fs::create_dir(&blocker).unwrap();
        wait_lines(&out, lines.len(), &mut child.0);
        // Give a duplicate time to show up before counting.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(terminate(&mut child.0, LIMIT), 0);
    }
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(
        text.contains("the batch stays in the disk buffer for the next start"),
        "no failing write at the first stop: {text}"
    );
    let mut got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    got.sort();
    assert_eq!(got, lines, "every line once");
}
