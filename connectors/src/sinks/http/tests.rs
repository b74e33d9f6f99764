//! The `http` sink against a small HTTP/1.1 server in the test: bodies and events counted,
//! batch limits, gzip, the batch timeout, acknowledgement only after 2xx, failures counted.

use super::*;
use sluice_engine::ack::{AckOutcome, AckReceiver, InFlight};
use sluice_engine::batch::Batch;
use sluice_engine::metrics::{ComponentKind, Registry};
use sluice_engine::shutdown::Lifecycle;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::sync::Mutex;

/// What the test server saw.
#[derive(Default)]
struct Seen {
    bodies: u64,
    events: u64,
    max_events: u64,
    lines: Vec<String>,
    headers: Vec<String>,
    gzip_bodies: u64,
}

/// Serves keep-alive connections, answering every request with `status`.
fn server(status: u16) -> (String, Arc<Mutex<Seen>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let seen = s2.clone();
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                loop {
                    let mut len = 0usize;
                    let mut gz = false;
                    let mut first = true;
                    let mut heads = Vec::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let t = line.trim_end().to_string();
                        if t.is_empty() {
                            if first {
                                continue;
                            }
                            break;
                        }
                        first = false;
                        let low = t.to_ascii_lowercase();
                        if let Some(v) = low.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        if low == "content-encoding: gzip" {
                            gz = true;
                        }
                        heads.push(t);
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    if gz {
                        let mut plain = Vec::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut plain)
                            .unwrap();
                        body = plain;
                    }
                    let text = String::from_utf8(body).unwrap();
                    {
                        let mut s = seen.lock().unwrap();
                        let n = text.lines().count() as u64;
                        s.bodies += 1;
                        s.events += n;
                        s.max_events = s.max_events.max(n);
                        s.gzip_bodies += u64::from(gz);
                        s.lines.extend(text.lines().map(String::from));
                        s.headers = heads;
                    }
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                    if w.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/ingest?x=1"), seen)
}

struct Log(Mutex<Vec<(u64, AckOutcome)>>);
impl AckReceiver for Log {
    fn ack(&self, seq: u64, outcome: AckOutcome) {
        self.0.lock().unwrap().push((seq, outcome));
    }
}

fn config(uri: &str, extra: &str) -> HttpSinkConfig {
    toml::from_str(&format!("uri = \"{uri}\"\n{extra}")).unwrap()
}

struct Run {
    log: Arc<Log>,
    metrics: Arc<ComponentMetrics>,
}

/// Builds the sink, sends `batches` batches of `lines` lines through its stubs, then stops
/// the shards' side (dropping the stubs) unless `keep` is set, and joins the writer.
fn run(cfg: &HttpSinkConfig, shards: usize, batches: u64, lines: usize) -> Run {
    let registry = Registry::new();
    let metrics = registry.component("out", ComponentKind::Sink, "http");
    let ctx = BuildCtx {
        shards,
        batch_size: 1024,
        data_dir: std::env::temp_dir(),
        registry,
        lifecycle: Lifecycle::new(),
    };
    let rt = cfg
        .build(
            &ctx,
            metrics.clone(),
            WhenFull::Block,
            DeadLetter::unconnected(&metrics),
        )
        .unwrap();
    let mut parts = rt.parts;
    let writer = std::thread::spawn(rt.thread.unwrap());
    let inflight = Arc::new(InFlight::default());
    let log = Arc::new(Log(Mutex::new(Vec::new())));
    for b in 0..batches {
        let text: String = (0..lines)
            .map(|i| format!("batch {b} line {i}\n"))
            .collect();
        let mut batch = Batch::from_lines(Bytes::from(text), 0);
        batch.ack = Some(AckToken::new(b, &inflight, Some(log.clone())));
        let part = &mut parts[b as usize % shards];
        let mut pending = batch;
        loop {
            match part.consume(pending) {
                Ok(()) => break,
                Err(back) => {
                    pending = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    drop(parts);
    writer.join().unwrap();
    Run { log, metrics }
}

#[test]
fn posts_every_event_in_bounded_bodies_and_acknowledges_after_2xx() {
    let (uri, seen) = server(200);
    let cfg = config(
        &uri,
        "batch_max_events = 100\nheaders = { authorization = \"Bearer abc\" }",
    );
    let r = run(&cfg, 2, 10, 250);
    let s = seen.lock().unwrap();
    assert_eq!(s.events, 2500);
    assert!(s.max_events <= 100, "{}", s.max_events);
    assert!(s.bodies >= 25, "{}", s.bodies);
    // Every line is one NDJSON event, none lost or cut.
    for l in &s.lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["message"].as_str().unwrap().starts_with("batch "));
    }
    let mut distinct: Vec<&String> = s.lines.iter().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2500);
    assert!(s.headers.iter().any(|h| h == "authorization: Bearer abc"));
    assert!(s.headers.iter().any(|h| h.starts_with("POST /ingest?x=1 ")));
    assert!(s
        .headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("content-type: application/x-ndjson")));
    let log = r.log.0.lock().unwrap();
    assert_eq!(log.len(), 10);
    assert!(log.iter().all(|(_, o)| *o == AckOutcome::Delivered));
    assert_eq!(r.metrics.dropped("http_error").load(Ordering::Relaxed), 0);
}

#[test]
fn gzip_bodies_arrive_whole() {
    let (uri, seen) = server(200);
    let cfg = config(&uri, "compression = \"gzip\"\nencoding = \"text\"");
    let r = run(&cfg, 1, 3, 500);
    let s = seen.lock().unwrap();
    assert_eq!(s.events, 1500);
    assert_eq!(s.gzip_bodies, s.bodies);
    assert!(s.lines.iter().all(|l| l.starts_with("batch ")));
    assert!(r
        .log
        .0
        .lock()
        .unwrap()
        .iter()
        .all(|(_, o)| *o == AckOutcome::Delivered));
}

#[test]
fn non_2xx_fails_the_batches_and_counts_them() {
    let (uri, seen) = server(503);
    let cfg = config(&uri, "batch_max_events = 50");
    let r = run(&cfg, 2, 4, 120);
    assert_eq!(seen.lock().unwrap().events, 480);
    let log = r.log.0.lock().unwrap();
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|(_, o)| *o == AckOutcome::Failed), "{log:?}");
    assert_eq!(r.metrics.dropped("http_error").load(Ordering::Relaxed), 480);
}

#[test]
fn unreachable_endpoint_fails_the_batches() {
    // A port nothing listens on: bind, take the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(&format!("http://127.0.0.1:{port}/"), "");
    let r = run(&cfg, 1, 2, 10);
    let log = r.log.0.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|(_, o)| *o == AckOutcome::Failed));
    assert_eq!(r.metrics.dropped("http_error").load(Ordering::Relaxed), 20);
}

#[test]
fn a_partial_body_goes_out_after_the_batch_timeout() {
    let (uri, seen) = server(200);
    let cfg = config(&uri, "batch_timeout = \"30ms\"");
    let registry = Registry::new();
    let metrics = registry.component("out", ComponentKind::Sink, "http");
    let ctx = BuildCtx {
        shards: 1,
        batch_size: 1024,
        data_dir: std::env::temp_dir(),
        registry,
        lifecycle: Lifecycle::new(),
    };
    let rt = cfg
        .build(
            &ctx,
            metrics.clone(),
            WhenFull::Block,
            DeadLetter::unconnected(&metrics),
        )
        .unwrap();
    let mut parts = rt.parts;
    let writer = std::thread::spawn(rt.thread.unwrap());
    let inflight = Arc::new(InFlight::default());
    let log = Arc::new(Log(Mutex::new(Vec::new())));
    let mut batch = Batch::from_lines(Bytes::from_static(b"a\nb\nc\n"), 0);
    batch.ack = Some(AckToken::new(1, &inflight, Some(log.clone())));
    assert!(parts[0].consume(batch).is_ok());
    // The shard side stays open: only the timeout can send the 3 events.
    let t = Instant::now();
    while seen.lock().unwrap().events < 3 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(seen.lock().unwrap().events, 3);
    while log.0.lock().unwrap().is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*log.0.lock().unwrap(), vec![(1, AckOutcome::Delivered)]);
    drop(parts);
    writer.join().unwrap();
}

#[test]
fn options_are_checked() {
    let bad = |extra: &str, uri: &str| config(uri, extra).validate().unwrap_err();
    assert_eq!(bad("", "https://x/").0, "uri");
    assert_eq!(bad("", "ftp://x/").0, "uri");
    assert_eq!(bad("", "not a uri").0, "uri");
    assert_eq!(bad("concurrency = 0", "http://x/").0, "concurrency");
    assert_eq!(
        bad("batch_max_events = 0", "http://x/").0,
        "batch_max_events"
    );
    assert_eq!(
        bad("batch_timeout = \"0s\"", "http://x/").0,
        "batch_timeout"
    );
    assert_eq!(
        bad("headers = { \"content-length\" = \"5\" }", "http://x/").0,
        "headers"
    );
    assert_eq!(
        bad("headers = { \"a b\" = \"5\" }", "http://x/").0,
        "headers"
    );
    assert!(config("http://localhost:8080/x", "").validate().is_ok());
    assert!(toml::from_str::<HttpSinkConfig>("uri = \"http://x/\"\nbogus = 1").is_err());
    assert!(toml::from_str::<HttpSinkConfig>("encoding = \"ndjson\"").is_err());
}

#[test]
fn chunks_split_at_line_ends_and_keep_their_tokens() {
    let inflight = Arc::new(InFlight::default());
    let log = Arc::new(Log(Mutex::new(Vec::new())));
    let mut b = Batcher::new(4);
    let mut ready = VecDeque::new();
    let chunk = |n: usize, seq: u64| Chunk {
        groups: vec![(
            String::new(),
            (0..n)
                .map(|i| format!("{seq}-{i}\n"))
                .collect::<String>()
                .into_bytes(),
        )],
        events: n as u64,
        created: Instant::now(),
        ack: Some(AckToken::new(seq, &inflight, Some(log.clone()))),
        wal_seq: None,
    };
    b.add(chunk(3, 1), &mut ready);
    b.add(chunk(10, 2), &mut ready);
    assert_eq!(ready.len(), 3);
    let bodies: Vec<String> = ready
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(bodies[0], "1-0\n1-1\n1-2\n2-0\n");
    assert_eq!(bodies[1], "2-1\n2-2\n2-3\n2-4\n");
    assert_eq!(bodies[2], "2-5\n2-6\n2-7\n2-8\n");
    assert_eq!(ready[0].acks.len(), 2);
    assert_eq!(ready[1].acks.len(), 1);
    assert_eq!(b.events, 1);
    // Chunk 2 is acknowledged only when every body holding part of it is gone.
    ready.clear();
    assert!(log.0.lock().unwrap().iter().any(|(s, _)| *s == 1));
    assert!(!log.0.lock().unwrap().iter().any(|(s, _)| *s == 2));
    let last = b.seal();
    assert_eq!(last.body, b"2-9\n");
    drop(last);
    assert!(log.0.lock().unwrap().iter().any(|(s, _)| *s == 2));
}
