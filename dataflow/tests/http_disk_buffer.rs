//! The `http` sink with `buffer = { type = "disk" }` through the real binary: a `file` source
//! → disk-buffered `http` sink → a hand-built HTTP/1.1 test server (a thread per connection,
//! in `common`, answering 200 and recording every event line in arrival order) that is down
//! (nothing listens on its port: connection refused) for the first part of each test.
//!
//! - `stop_while_down_then_replay_in_order_before_new_events`: with the endpoint down, the
//!   events go to the WAL and the source is acknowledged (its checkpoint reaches the end of
//!   the file); sluice stops (SIGTERM) with them undelivered; the next run, endpoint up, reads
//!   a different file, so every old event can only come from the WAL: each arrives, and (one
//!   shard, one request at a time) all of them before any new one.
//! - `sigkill_while_down_loses_nothing`: the same with two shards and four requests in flight,
//!   sluice killed with SIGKILL while the endpoint is down; after the restart every event
//!   arrives (duplicates allowed, counted and printed).
//!
//! `SLUICE_HTTP_DISK_EVENTS` (default 20,000) sets the events of each run.

mod common;

use common::*;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn events() -> u64 {
    std::env::var("SLUICE_HTTP_DISK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Every event line the server received, in arrival order.
type Received = Arc<Mutex<Vec<String>>>;

/// Starts the test server on `port` (retrying the bind briefly: the port was only reserved).
fn serve(port: u16) -> Received {
    let start = Instant::now();
    let l = loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => break l,
            Err(e) => {
                assert!(start.elapsed() < LIMIT, "cannot bind {port}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let got: Received = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    serve_http(l, move |_, text| {
        g.lock().unwrap().extend(text.lines().map(String::from));
        (200, "text/plain", "ok".to_string())
    });
    got
}

/// Writes events `from..to` as `ev-000000123 ...` lines.
fn write_events(path: &Path, from: u64, to: u64) {
    let text: String = (from..to)
        .map(|i| format!("ev-{i:09} some payload of the event\n"))
        .collect();
    std::fs::write(path, text).unwrap();
}

#[allow(clippy::too_many_arguments)]
fn config(
    dir: &Path,
    input: &Path,
    api: u16,
    server: u16,
    shards: usize,
    concurrency: usize,
) -> std::path::PathBuf {
    let cfg = dir.join(format!("p-{}.toml", api));
    std::fs::write(
        &cfg,
        format!(
            r#"[engine]
shards = {shards}
data_dir = "{data}"
batch_size = 256
shutdown_timeout = "2s"

[api]
address = "127.0.0.1:{api}"

[sources.in]
type = "file"
include = ["{input}"]
checkpoint_interval = "100ms"

[sinks.out]
type = "http"
inputs = ["in"]
uri = "http://127.0.0.1:{server}/ingest"
encoding = "text"
batch_max_events = 300
batch_timeout = "20ms"
concurrency = {concurrency}
retry = {{ initial = "5ms", max = "100ms", max_retries = "unlimited" }}
circuit_breaker = {{ failure_threshold = 8, cool_down = "50ms", half_open_requests = 1 }}
buffer = {{ type = "disk", max_size = "256MiB", segment_size = "1MiB", sync = "batch" }}
"#,
            data = dir.join("data").display(),
            input = input.display(),
        ),
    )
    .unwrap();
    cfg
}

/// The file source's acknowledged offsets (its checkpoint file), summed.
fn checkpointed(dir: &Path) -> u64 {
    let text =
        std::fs::read_to_string(dir.join("data/sources/in/checkpoints.json")).unwrap_or_default();
    text.match_indices("\"offset\":")
        .filter_map(|(i, m)| {
            let rest = text[i + m.len()..].trim_start();
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse::<u64>().ok()
        })
        .sum()
}

/// Runs the first part with the endpoint down: waits until the source is acknowledged for
/// the whole file (the events are in the WAL) and retries show the endpoint was tried.
fn fill_while_down(child: &mut ChildGuard, dir: &Path, input: &Path, api: u16) {
    wait_ready(child, api, LIMIT);
    let size = std::fs::metadata(input).unwrap().len();
    let start = Instant::now();
    while checkpointed(dir) < size {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sluice exited early with {status}");
        }
        assert!(
            start.elapsed() < LIMIT,
            "the source was acknowledged for {} of {size} bytes",
            checkpointed(dir)
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    wait_metric(
        child,
        api,
        "sluice_sink_retries_total",
        "component=\"out\"",
        1.0,
        LIMIT,
    );
}

/// Waits until every id below `n` arrived; returns the lines received.
fn wait_all(got: &Received, n: u64, child: &mut ChildGuard, log: &Path) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines = got.lock().unwrap().clone();
        let mut seen = vec![false; n as usize];
        for l in &lines {
            if let Some(id) = event_id(l).filter(|&id| id < n) {
                seen[id as usize] = true;
            }
        }
        let have = seen.iter().filter(|s| **s).count() as u64;
        if have == n {
            return lines;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "sluice exited early with {status}; log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < LIMIT,
            "only {have} of {n} events arrived; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stop_while_down_then_replay_in_order_before_new_events() {
    let n = events();
    let dir = tempfile::tempdir().unwrap();
    let server = free_port();
    let old = dir.path().join("old.log");
    write_events(&old, 0, n);
    let api = free_port();
    let cfg = config(dir.path(), &old, api, server, 1, 1);
    let log = dir.path().join("sluice-1.log");
    let mut child = ChildGuard::spawn_logged(sluice().arg("run").arg(&cfg), &log);
    fill_while_down(&mut child, dir.path(), &old, api);
    assert_eq!(
        terminate(&mut child, LIMIT),
        0,
        "log: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    drop(child);
    let wal = dir.path().join("data/buffers/out/shard-0");
    assert!(wal.join("cursor").exists(), "no WAL in {}", wal.display());

    // Endpoint up; the next run reads other events, so the old ones can only come from
    // the WAL.
    let got = serve(server);
    let new = dir.path().join("new.log");
    write_events(&new, n, 2 * n);
    let api = free_port();
    let cfg = config(dir.path(), &new, api, server, 1, 1);
    let log = dir.path().join("sluice-2.log");
    let mut child = ChildGuard::spawn_logged(sluice().arg("run").arg(&cfg), &log);
    wait_ready(&mut child, api, LIMIT);
    let lines = wait_all(&got, 2 * n, &mut child, &log);
    assert_eq!(terminate(&mut child, LIMIT), 0);
    let ids: Vec<u64> = lines.iter().filter_map(|l| event_id(l)).collect();
    let last_old = ids.iter().rposition(|&id| id < n).unwrap();
    let first_new = ids.iter().position(|&id| id >= n).unwrap();
    assert!(
        last_old < first_new,
        "an old event (at {last_old}) arrived after a new one (at {first_new})"
    );
    let old_ids: Vec<u64> = ids.iter().copied().filter(|&id| id < n).collect();
    assert!(
        old_ids.windows(2).all(|w| w[0] < w[1]),
        "the replay is in order and once"
    );
    println!(
        "{} lines received for {} events; replayed {n} in order before new ones",
        lines.len(),
        2 * n
    );
}

#[test]
fn sigkill_while_down_loses_nothing() {
    let n = events();
    let dir = tempfile::tempdir().unwrap();
    let server = free_port();
    let old = dir.path().join("old.log");
    write_events(&old, 0, n);
    let api = free_port();
    let cfg = config(dir.path(), &old, api, server, 2, 4);
    let log = dir.path().join("sluice-1.log");
    let mut child = ChildGuard::spawn_logged(sluice().arg("run").arg(&cfg), &log);
    fill_while_down(&mut child, dir.path(), &old, api);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(child);

    let got = serve(server);
    let new = dir.path().join("new.log");
    write_events(&new, n, 2 * n);
    let api = free_port();
    let cfg = config(dir.path(), &new, api, server, 2, 4);
    let log = dir.path().join("sluice-2.log");
    let mut child = ChildGuard::spawn_logged(sluice().arg("run").arg(&cfg), &log);
    wait_ready(&mut child, api, LIMIT);
    let lines = wait_all(&got, 2 * n, &mut child, &log);
    assert_eq!(terminate(&mut child, LIMIT), 0);
    let mut counts = vec![0u32; 2 * n as usize];
    for id in lines.iter().filter_map(|l| event_id(l)) {
        counts[id as usize] += 1;
    }
    let dups: u64 = counts.iter().map(|&c| u64::from(c.saturating_sub(1))).sum();
    assert!(counts.iter().all(|&c| c >= 1));
    println!(
        "SIGKILL while the endpoint was down: {} events, all arrived, {dups} duplicates",
        2 * n
    );
}
