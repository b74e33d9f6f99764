//! The `http` sink against a failing endpoint, through the real binary: a `file` source
//! tails a file the test appends numbered events to (`ev-000000123 ...`), and an `http` sink
//! with `response = "bulk"` posts them to a hand-built HTTP/1.1 test server (a thread per
//! connection, `common::serve_http`) that answers half of the requests with 500 and the rest with
//! `_bulk` answers in which about 10% of the items fail with 500 (retryable) and every event
//! whose id is 13 mod 97 fails with 400 (permanent).
//!
//! It checks: every other event reaches the server at least once (duplicates are counted
//! and printed), no permanent one is ever stored, each permanent one was offered exactly
//! once and `sluice_events_dropped_total{reason="dead_letter"}` equals their number exactly
//! (the dead letter is not connected to an output yet), retries and breaker openings show in
//! `/metrics`, and the VmRSS of `sluice`, sampled during the run, stays flat (the second
//! half's peak ≤ the first half's × 1.5 + 16 MiB).
//!
//! Runs ~12 s of load by default; `SLUICE_FAILURE_TEST_SECONDS=600` for the 10-minute run,
//! `SLUICE_FAILURE_TEST_RATE` (events/s, default 10000).

mod common;

use common::*;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn is_permanent(id: u64) -> bool {
    id % 97 == 13
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the test server saw, per event id.
struct Tally {
    /// Times each event was stored (answered 201).
    stored: Vec<u8>,
    /// Times each permanent event was refused (answered 400).
    refused: Vec<u8>,
    requests: u64,
    whole_500: u64,
    item_500: u64,
}

/// Answers one request body (a `_bulk` body) and records what it stored.
fn answer(n: u64, body: &str, tally: &Mutex<Tally>) -> (u16, String) {
    let mut t = tally.lock().unwrap();
    t.requests += 1;
    if mix(n).is_multiple_of(2) {
        t.whole_500 += 1;
        return (500, "{\"error\":\"try again\"}".into());
    }
    let mut items = Vec::new();
    let mut errors = false;
    for (i, line) in body.lines().enumerate() {
        if i.is_multiple_of(2) {
            assert_eq!(line, "{\"index\":{}}", "action line");
            continue;
        }
        let id = event_id(line).unwrap_or_else(|| panic!("no id in {line:?}"));
        let status = if is_permanent(id) {
            t.refused[id as usize] = t.refused[id as usize].saturating_add(1);
            400
        } else if mix(n ^ ((i as u64) << 32)).is_multiple_of(10) {
            t.item_500 += 1;
            500
        } else {
            t.stored[id as usize] = t.stored[id as usize].saturating_add(1);
            201
        };
        errors |= status != 201;
        items.push(format!(
            "{{\"index\":{{\"_index\":\"logs\",\"status\":{status}}}}}"
        ));
    }
    (
        200,
        format!(
            "{{\"took\":1,\"errors\":{errors},\"items\":[{}]}}",
            items.join(",")
        ),
    )
}

/// Starts the test server; returns its port.
fn serve(tally: Arc<Mutex<Tally>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    serve_http(l, move |n, text| {
        let (status, reply) = answer(n, text, &tally);
        (status, "application/json", reply)
    });
    port
}

#[test]
fn failing_endpoint_loses_nothing_and_memory_stays_flat() {
    let seconds = env_u64("SLUICE_FAILURE_TEST_SECONDS", 12).max(2);
    let rate = env_u64("SLUICE_FAILURE_TEST_RATE", 10_000).max(100);
    let total = seconds * rate;
    let tally = Arc::new(Mutex::new(Tally {
        stored: vec![0; total as usize],
        refused: vec![0; total as usize],
        requests: 0,
        whole_500: 0,
        item_500: 0,
    }));
    let port = serve(tally.clone());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    std::fs::write(&input, b"").unwrap();
    let api = free_port();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[engine]
shards = 2
data_dir = "{data}"

[api]
address = "127.0.0.1:{api}"

[sources.in]
type = "file"
include = ["{input}"]
checkpoint_interval = "200ms"

[sinks.out]
type = "http"
inputs = ["in"]
uri = "http://127.0.0.1:{port}/logs/_bulk"
response = "bulk"
batch_max_events = 500
batch_timeout = "20ms"
concurrency = 4
max_in_flight = 32
retry = {{ initial = "5ms", max = "200ms", max_retries = "unlimited", budget = 10.0 }}
circuit_breaker = {{ failure_threshold = 8, cool_down = "50ms", half_open_requests = 2 }}
"#,
            data = dir.path().join("data").display(),
            input = input.display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("sluice.log");
    let mut child = ChildGuard::spawn_logged(sluice().arg("run").arg(&cfg), &log);
    let limit = Duration::from_secs(60);
    wait_ready(&mut child, api, limit);
    let pid = child.id();
    let tail_log = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };

    // Append `rate` events per second for `seconds`, sampling VmRSS as we go.
    let writing = Arc::new(AtomicBool::new(true));
    let samples: Arc<Mutex<Vec<(Duration, u64)>>> = Arc::default();
    let sampler = {
        let writing = writing.clone();
        let samples = samples.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while writing.load(Ordering::Relaxed) {
                if let Some(kib) = vm_rss_kib(pid) {
                    samples.lock().unwrap().push((t0.elapsed(), kib));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let pad = "x".repeat(100);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    let start = Instant::now();
    let mut written = 0u64;
    let mut buf = String::new();
    while written < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due > written {
            buf.clear();
            for id in written..due {
                buf.push_str(&format!("ev-{id:09} {pad}\n"));
            }
            f.write_all(buf.as_bytes()).unwrap();
            written = due;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sluice exited with {status}; log:\n{}", tail_log());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(f);
    writing.store(false, Ordering::Relaxed);
    sampler.join().unwrap();

    // Wait for every deliverable event and every permanent failure to be accounted for.
    let permanent = (0..total).filter(|&i| is_permanent(i)).count() as u64;
    let drain = Instant::now();
    let metrics = loop {
        let missing = {
            let t = tally.lock().unwrap();
            (0..total)
                .filter(|&i| !is_permanent(i) && t.stored[i as usize] == 0)
                .count()
        };
        let text = http_get(api, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let dead = metric(
            &text,
            "sluice_events_dropped_total",
            "component=\"out\",reason=\"dead_letter\"",
        )
        .unwrap_or(0.0) as u64;
        if missing == 0 && dead >= permanent {
            break text;
        }
        assert!(
            drain.elapsed() < Duration::from_secs(60 + seconds / 2),
            "{missing} events never stored, {dead}/{permanent} dead-lettered; log:\n{}",
            tail_log()
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sluice exited with {status}; log:\n{}", tail_log());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let t = tally.lock().unwrap();
    let duplicates: u64 = t
        .stored
        .iter()
        .map(|&n| u64::from(n.saturating_sub(1)))
        .sum();
    let dead = metric(
        &metrics,
        "sluice_events_dropped_total",
        "component=\"out\",reason=\"dead_letter\"",
    )
    .unwrap_or(-1.0);
    let retries = metric(&metrics, "sluice_sink_retries_total", "component=\"out\"").unwrap_or(0.0);
    let opened = metric(
        &metrics,
        "sluice_sink_circuit_opened_total",
        "component=\"out\"",
    )
    .unwrap_or(0.0);
    let samples = samples.lock().unwrap().clone();
    let half = samples.len() / 2;
    let peak = |s: &[(Duration, u64)]| s.iter().map(|x| x.1).max().unwrap_or(0);
    let (first, second) = (peak(&samples[..half]), peak(&samples[half..]));
    eprintln!(
        "{total} events in {seconds} s: {} requests ({} answered 500 whole, {} items 500), {duplicates} duplicates, {dead} dead-lettered of {permanent} permanent, {retries} retries, breaker opened {opened} times; VmRSS peak first half {first} KiB, second half {second} KiB ({} samples)",
        t.requests,
        t.whole_500,
        t.item_500,
        samples.len()
    );
    // Nothing permanent was stored; each permanent event was refused exactly once and
    // reached the dead letter; nothing else did.
    for id in (0..total).filter(|&i| is_permanent(i)) {
        assert_eq!(t.stored[id as usize], 0, "event {id} stored");
        assert_eq!(t.refused[id as usize], 1, "event {id} refused");
    }
    assert_eq!(dead as u64, permanent, "dead-lettered");
    assert!(retries > 0.0 && t.whole_500 > 0 && t.item_500 > 0);
    // No other drop.
    for l in metrics.lines().filter(|l| {
        l.starts_with("sluice_events_dropped_total{component=\"out\"")
            && !l.contains("reason=\"dead_letter\"")
    }) {
        assert!(l.ends_with(" 0"), "{l}");
    }
    assert!(samples.len() >= 8, "{} RSS samples", samples.len());
    assert!(
        second <= first * 3 / 2 + 16 * 1024,
        "VmRSS grew: first half peak {first} KiB, second half {second} KiB"
    );
    drop(t);
    assert_eq!(terminate(&mut child, limit), 0, "log:\n{}", tail_log());
}
