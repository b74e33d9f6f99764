//! A sink's dead-letter output (`ID.dead_letter`) consumed by another sink.
//!
//! - In process: a topology built from TOML (http source on an idle port → http sink `es`,
//!   `es.dead_letter` → file sink writing into a FIFO the test reads slowly) runs on its
//!   shards while the test, holding the sink's connected `DeadLetter` (through
//!   `RunState::dead_letter_tap`), sends batches from a thread into rings only two batches
//!   deep: every event reaches the file with its fields, the reason and the sink's ID, also
//!   when the stop signal comes right after the last send, with dead letters still queued.
//! - Through the real binary: `sluice graph` and `sluice plan` show the edge.
//! - Through the real binary, end to end: a hand-built test HTTP server (a Rust thread on a
//!   std `TcpListener`, HTTP/1.1 with `Content-Length` bodies and keep-alive) answers 400 to
//!   requests whose body contains a marker and 200 otherwise; file source → http sink (one
//!   event per request) → `out.dead_letter` → file sink. Ignored until the http sink sends
//!   its dead letters.

mod common;

use common::{free_port, sluice, terminate, wait_ready, ChildGuard};
use sluice_connectors::sinks::dead_letter::DeadLetter;
use sluice_dataflow::topology::{self, RunState};
use sluice_dataflow::{config, plan};
use sluice_engine::metrics::{ComponentMetrics, Registry};
use sluice_engine::shutdown::Lifecycle;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn pipeline(dir: &Path, port: u16, sink_uri: &str, dlq: &Path) -> String {
    format!(
        r#"
[engine]
shards = 2
ring_capacity = 2
data_dir = "{dir}"
shutdown_timeout = "30s"

[sources.in]
type = "http"
address = "127.0.0.1:{port}"

[sinks.es]
type = "http"
inputs = ["in"]
uri = "{sink_uri}"

[sinks.dlq]
type = "file"
inputs = ["es.dead_letter"]
path = "{dlq}"
"#,
        dir = dir.display(),
        dlq = dlq.display()
    )
}

fn read_objects(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn dead_letters_reach_a_file_sink_with_fields_and_survive_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    // The file sink writes into a FIFO that the test drains slowly, so that when the stop
    // signal comes, dead letters are still queued in the rings (a drain that did not wait
    // for them would lose them).
    let dlq = dir.path().join("dlq.fifo");
    let c_path = std::ffi::CString::new(dlq.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let reader = {
        let dlq = dlq.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::open(&dlq).unwrap();
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => return all,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let text = pipeline(dir.path(), free_port(), "http://127.0.0.1:9/", &dlq);
    let config = config::load_str(Path::new("dead_letter.toml"), &text, |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = plan::build(&config, vec![None, None]);
    let slot: Arc<Mutex<Option<DeadLetter>>> = Arc::default();
    let tap_slot = slot.clone();
    let state = Arc::new(RunState {
        registry: Registry::new(),
        lifecycle: Lifecycle::new(),
        ready: AtomicBool::new(false),
        // Keep the connected end; the sink gets one that counts and drops (it sends nothing
        // here anyway: nothing reaches it).
        dead_letter_tap: Some(Box::new(move |sink, d| {
            assert_eq!(sink, "es");
            *tap_slot.lock().unwrap() = Some(d);
            DeadLetter::unconnected(&ComponentMetrics::detached())
        })),
    });
    let signal = Arc::new(AtomicBool::new(false));
    let run = {
        let (state, signal) = (state.clone(), signal.clone());
        std::thread::spawn(move || topology::run(&config, &plan, state, signal))
    };
    let start = Instant::now();
    while !state.ready.load(Ordering::Relaxed) {
        assert!(start.elapsed() < Duration::from_secs(30), "not ready");
        assert!(!run.is_finished(), "the run ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut d = slot
        .lock()
        .unwrap()
        .take()
        .expect("the tap saw es's dead letter");
    assert!(d.is_connected());

    // 300 batches of 10 lines through rings of 2 batches per shard: send waits for room.
    const BATCHES: u64 = 300;
    const LINES: u64 = 10;
    let sender = std::thread::spawn(move || {
        for b in 0..BATCHES {
            let mut lines = String::new();
            for l in 0..LINES {
                let id = b * LINES + l;
                if id % 7 == 3 {
                    lines += &format!("not json {id}\n");
                } else {
                    lines += &format!("{{\"id\":{id},\"nested\":{{\"k\":[1,\"two\"]}}}}\n");
                }
            }
            let reason = if b.is_multiple_of(2) {
                "http_400"
            } else {
                "retries_exhausted"
            };
            d.send(bytes::Bytes::from(lines), LINES, reason);
        }
        d
    });
    let d = sender.join().unwrap();
    // Stop at once: the drain must wait for the dead letters still in the rings.
    signal.store(true, Ordering::Relaxed);
    let outcome = run.join().unwrap().expect("run");
    drop(d);
    assert!(outcome.clean, "the drain timed out");
    assert_eq!(outcome.events_in, 0, "dead letters are not source input");

    // The writer closed the FIFO when it ended; if it never opened it, let the reader go.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&dlq);
    }
    let written = String::from_utf8(reader.join().unwrap()).unwrap();
    let objects: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(objects.len() as u64, BATCHES * LINES);
    let mut seen = HashMap::new();
    for o in &objects {
        assert_eq!(o["dead_letter_sink"], "es", "{o}");
        let reason = o["dead_letter_reason"].as_str().expect("reason");
        let id = match o.get("id") {
            Some(id) => {
                assert_eq!(o["nested"], serde_json::json!({"k": [1, "two"]}), "{o}");
                id.as_u64().unwrap()
            }
            None => {
                let m = o["message"]
                    .as_str()
                    .expect("a non-JSON line is the message");
                m.strip_prefix("not json ").unwrap().parse().unwrap()
            }
        };
        assert_eq!(id % 7 == 3, o.get("message").is_some(), "{o}");
        let want = if (id / LINES).is_multiple_of(2) {
            "http_400"
        } else {
            "retries_exhausted"
        };
        assert_eq!(reason, want, "{o}");
        assert!(seen.insert(id, ()).is_none(), "duplicate {id}");
    }
    let dl = state.registry.get("es.dead_letter").expect("metrics");
    assert_eq!(dl.events_out(), BATCHES * LINES);
    let sink = state.registry.get("dlq").expect("metrics");
    assert_eq!(sink.events_in(), BATCHES * LINES);
    let text = state.registry.render_prometheus();
    assert!(
        text.lines()
            .any(|l| l.starts_with("sluice_events_out_total{")
                && l.contains("component=\"es.dead_letter\"")
                && l.ends_with(&format!(" {}", BATCHES * LINES))),
        "{text}"
    );
}

#[test]
fn graph_and_plan_show_the_dead_letter_output() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        pipeline(dir.path(), free_port(), "http://127.0.0.1:9/", &dlq),
    )
    .unwrap();
    let out = sluice().arg("graph").arg(&file).output().unwrap();
    assert!(out.status.success());
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(
        dot.contains("\"es\" -> \"dlq\" [label=\"dead_letter\", style=dashed];"),
        "{dot}"
    );
    let out = sluice().arg("plan").arg(&file).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "inbound es.dead_letter (dead_letter) from the es writer thread",
        "fused   [es.dead_letter] → dlq(file: encode → ring)",
        "es writer thread (es.dead_letter) → each shard: 2 ring(s) × 2",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

/// The test HTTP server: answers 400 to a request whose body contains `marker`, 200 to
/// others; counts requests of each kind.
fn serve(listener: TcpListener, marker: &'static str, ok: Arc<AtomicU64>, bad: Arc<AtomicU64>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { return };
        let (ok, bad) = (ok.clone(), bad.clone());
        std::thread::spawn(move || {
            let mut w = conn.try_clone().unwrap();
            let mut r = BufReader::new(conn);
            loop {
                let mut len = 0usize;
                let mut line = String::new();
                // Request line and headers.
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let hit = body.windows(marker.len()).any(|w| w == marker.as_bytes());
                let status = if hit {
                    bad.fetch_add(1, Ordering::Relaxed);
                    "400 Bad Request"
                } else {
                    ok.fetch_add(1, Ordering::Relaxed);
                    "200 OK"
                };
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                if w.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
        });
    }
}

#[test]
fn rejected_requests_land_in_the_dead_letter_file() {
    const EVENTS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    let dlq = dir.path().join("dlq.ndjson");
    let mut text = String::new();
    let mut marked = 0;
    for i in 0..EVENTS {
        if i % 10 == 4 {
            marked += 1;
            text += &format!("{{\"id\":{i},\"tag\":\"REJECT-ME\"}}\n");
        } else {
            text += &format!("{{\"id\":{i},\"tag\":\"fine\"}}\n");
        }
    }
    std::fs::write(&input, text).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    {
        let (ok, bad) = (ok.clone(), bad.clone());
        std::thread::spawn(move || serve(listener, "REJECT-ME", ok, bad));
    }
    let api = free_port();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[engine]
data_dir = "{dir}"
shutdown_timeout = "30s"

[api]
address = "127.0.0.1:{api}"

[sources.logs]
type = "file"
include = ["{input}"]

[transforms.json]
type = "parse"
inputs = ["logs"]
format = "json"

[sinks.out]
type = "http"
inputs = ["json"]
uri = "http://127.0.0.1:{server_port}/ingest"
batch_max_events = 1

[sinks.dlq]
type = "file"
inputs = ["out.dead_letter"]
path = "{dlq}"
"#,
            dir = dir.path().display(),
            input = input.display(),
            dlq = dlq.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("sluice.log");
    let mut child = ChildGuard::spawn_logged(sluice().arg("run").arg(&file), &log);
    wait_ready(&mut child, api, Duration::from_secs(30));
    let start = Instant::now();
    while ok.load(Ordering::Relaxed) + bad.load(Ordering::Relaxed) < EVENTS {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the server saw {} ok and {} rejected of {EVENTS}; log:\n{}",
            ok.load(Ordering::Relaxed),
            bad.load(Ordering::Relaxed),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stop right away: the drain delivers the dead letters still on their way.
    assert_eq!(terminate(&mut child, Duration::from_secs(60)), 0);
    assert_eq!(bad.load(Ordering::Relaxed), marked);
    let objects = read_objects(&dlq);
    assert_eq!(objects.len() as u64, marked, "{objects:?}");
    let mut ids: Vec<u64> = objects
        .iter()
        .map(|o| {
            assert_eq!(o["tag"], "REJECT-ME", "{o}");
            assert_eq!(o["dead_letter_sink"], "out", "{o}");
            assert!(o["dead_letter_reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()));
            o["id"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    let want: Vec<u64> = (0..EVENTS).filter(|i| i % 10 == 4).collect();
    assert_eq!(ids, want);
}
