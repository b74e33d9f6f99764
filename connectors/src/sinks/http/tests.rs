//! The `http` sink against a hand-built HTTP/1.1 server in the test ([`serve`]): bodies and
//! events counted, batch limits, gzip, the batch timeout, acknowledgement only after every
//! event was delivered or dead-lettered; retries (408/429/5xx, connection errors), backoff
//! bounds, `Retry-After`, the retry budget, 4xx and exhausted retries to the dead letter, the
//! circuit breaker's transitions, partial `_bulk` failures (only failed lines resent) and
//! the bound on bodies held.

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
    /// When each request arrived.
    times: Vec<Instant>,
    /// Requests being answered now, and the most at once.
    open: u64,
    max_open: u64,
    /// Distinct bodies (their text).
    distinct: std::collections::HashSet<String>,
}

/// One request as the handler sees it: its number (from 0) and body (decompressed).
struct Req<'a> {
    n: u64,
    body: &'a str,
}

/// The answer: status, extra header lines, body.
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: String::new(),
            body: "ok".into(),
        }
    }
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// Serves keep-alive connections, answering every request with `status`.
fn server(status: u16) -> (String, Arc<Mutex<Seen>>) {
    serve(Arc::new(move |_: &Req| Reply::status(status)))
}

/// A hand-built HTTP/1.1 server (a thread per connection, `Content-Length` bodies only):
/// records every request in [`Seen`] and answers what `handler` says.
fn serve(handler: Handler) -> (String, Arc<Mutex<Seen>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let count = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let seen = s2.clone();
            let handler = handler.clone();
            let count = count.clone();
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
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
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
                        s.times.push(Instant::now());
                        s.open += 1;
                        s.max_open = s.max_open.max(s.open);
                        s.distinct.insert(text.clone());
                    }
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let reply = handler(&Req { n, body: &text });
                    seen.lock().unwrap().open -= 1;
                    let out = format!(
                        "HTTP/1.1 {} X\r\ncontent-length: {}\r\n{}\r\n{}",
                        reply.status,
                        reply.body.len(),
                        reply.headers,
                        reply.body
                    );
                    if w.write_all(out.as_bytes()).is_err() {
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
    registry: Arc<Registry>,
}

impl Run {
    fn dead(&self) -> u64 {
        self.metrics.dropped("dead_letter").load(Ordering::Relaxed)
    }

    /// A series of the registry's own (`name{component="out"}`).
    fn series(&self, name: &str) -> i64 {
        series(&self.registry, name)
    }

    fn all_delivered(&self, batches: usize) {
        let log = self.log.0.lock().unwrap();
        let bad: Vec<_> = log
            .iter()
            .filter(|(_, o)| *o != AckOutcome::Delivered)
            .collect();
        assert_eq!(log.len(), batches, "acknowledged; not delivered: {bad:?}");
        assert!(bad.is_empty(), "{bad:?}");
    }
}

fn series(registry: &Registry, name: &str) -> i64 {
    let text = registry.render_prometheus();
    let want = format!("{name}{{component=\"out\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// A started sink: its shard parts, writer thread, and what the test checks afterwards.
struct Started {
    parts: Vec<Box<dyn sluice_engine::pipeline::ShardSink>>,
    writer: std::thread::JoinHandle<()>,
    lifecycle: Arc<Lifecycle>,
    inflight: Arc<InFlight>,
    run: Run,
}

fn start(cfg: &HttpSinkConfig, shards: usize) -> Started {
    let registry = Registry::new();
    let metrics = registry.component("out", ComponentKind::Sink, "http");
    let lifecycle = Lifecycle::new();
    let ctx = BuildCtx {
        shards,
        batch_size: 1024,
        data_dir: std::env::temp_dir(),
        registry: registry.clone(),
        lifecycle: lifecycle.clone(),
    };
    let rt = cfg
        .build(
            &ctx,
            metrics.clone(),
            WhenFull::Block,
            DeadLetter::unconnected(&metrics),
            None,
        )
        .unwrap();
    Started {
        parts: rt.parts,
        writer: std::thread::spawn(rt.thread.unwrap()),
        lifecycle,
        inflight: Arc::new(InFlight::default()),
        run: Run {
            log: Arc::new(Log(Mutex::new(Vec::new()))),
            metrics,
            registry,
        },
    }
}

impl Started {
    /// Batch `b`: `lines` lines, with its token.
    fn batch(&self, b: u64, lines: usize) -> Batch {
        let text: String = (0..lines)
            .map(|i| format!("batch {b} line {i}\n"))
            .collect();
        let mut batch = Batch::from_lines(Bytes::from(text), 0);
        batch.ack = Some(AckToken::new(b, &self.inflight, Some(self.run.log.clone())));
        batch
    }

    /// Offers a batch to shard `seq % shards`; hands it back when the ring is full (as
    /// `ShardSink::consume` does).
    #[allow(clippy::result_large_err)]
    fn offer(&mut self, batch: Batch) -> Result<(), Batch> {
        let n = self.parts.len();
        let seq = batch.ack.as_ref().map_or(0, |a| a.seq());
        self.parts[seq as usize % n].consume(batch)
    }

    /// Sends batch `b`, waiting while the ring is full.
    fn send(&mut self, b: u64, lines: usize) {
        let mut pending = self.batch(b, lines);
        while let Err(back) = self.offer(pending) {
            pending = back;
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Closes the shards' side and joins the writer.
    fn finish(self) -> Run {
        drop(self.parts);
        self.writer.join().unwrap();
        self.run
    }
}

/// Builds the sink, sends `batches` batches of `lines` lines through its stubs, then stops
/// the shards' side (dropping the stubs) and joins the writer.
fn run(cfg: &HttpSinkConfig, shards: usize, batches: u64, lines: usize) -> Run {
    let mut s = start(cfg, shards);
    for b in 0..batches {
        s.send(b, lines);
    }
    s.finish()
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
fn retries_exhausted_go_to_the_dead_letter_and_acknowledge() {
    let (uri, seen) = server(503);
    let cfg = config(
        &uri,
        "batch_max_events = 50\nretry = { initial = \"1ms\", max = \"2ms\", max_retries = 2 }\ncircuit_breaker = { enabled = false }",
    );
    let r = run(&cfg, 2, 4, 120);
    let s = seen.lock().unwrap();
    // Every body went three times (the first attempt and two retries).
    assert_eq!(s.events, 3 * 480);
    assert_eq!(s.distinct.len() as u64 * 3, s.bodies);
    r.all_delivered(4);
    assert_eq!(r.dead(), 480);
    assert_eq!(
        r.series("sluice_sink_retries_total"),
        2 * s.distinct.len() as i64
    );
    assert_eq!(r.metrics.dropped("http_error").load(Ordering::Relaxed), 0);
}

#[test]
fn unreachable_endpoint_dead_letters_after_its_retries() {
    // A port nothing listens on: bind, take the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(
        &format!("http://127.0.0.1:{port}/"),
        "retry = { initial = \"1ms\", max = \"5ms\", max_retries = 3 }",
    );
    let r = run(&cfg, 1, 2, 10);
    r.all_delivered(2);
    assert_eq!(r.dead(), 20);
}

/// Builds the sink for one shard and starts its writer thread: the shard side and the thread.
fn one_shard_writer(
    cfg: &HttpSinkConfig,
) -> (
    Vec<Box<dyn sluice_engine::pipeline::ShardSink>>,
    std::thread::JoinHandle<()>,
) {
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
            None,
        )
        .unwrap();
    (rt.parts, std::thread::spawn(rt.thread.unwrap()))
}

#[test]
fn a_partial_body_goes_out_after_the_batch_timeout() {
    let (uri, seen) = server(200);
    let cfg = config(&uri, "batch_timeout = \"30ms\"");
    let (mut parts, writer) = one_shard_writer(&cfg);
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

/// An idle writer is not woken by the first push: the push arms its timer for
/// `batch_timeout` (`Doorbell::set_deferring`). The body still goes `batch_timeout` after
/// that push, not up to twice that (the linger must count from the push, not from the
/// moment the writer woke and took it).
#[test]
fn an_idle_writer_sends_a_partial_body_one_batch_timeout_after_the_first_push() {
    let (uri, seen) = server(200);
    let cfg = config(&uri, "batch_timeout = \"20ms\"");
    let (mut parts, writer) = one_shard_writer(&cfg);
    let mut took = Vec::new();
    for round in 1..=11u64 {
        // Let the writer settle the last answer and go to sleep.
        std::thread::sleep(Duration::from_millis(30));
        let batch = Batch::from_lines(Bytes::from_static(b"a\nb\nc\n"), 0);
        let pushed = Instant::now();
        assert!(parts[0].consume(batch).is_ok());
        while seen.lock().unwrap().events < 3 * round && pushed.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_micros(500));
        }
        assert_eq!(seen.lock().unwrap().events, 3 * round);
        took.push(pushed.elapsed());
    }
    took.sort();
    assert!(
        took[0] >= Duration::from_millis(19),
        "before its batch_timeout: {took:?}"
    );
    // Counting the linger from the wake-up that took the chunk (the timer's, 20 ms after the
    // push, or the writer's 50 ms housekeeping one before it) sends most bodies 30-40 ms after
    // their push.
    assert!(
        took[5] < Duration::from_millis(30),
        "the linger restarted: {took:?}"
    );
    drop(parts);
    writer.join().unwrap();
}

#[test]
fn without_a_batch_timeout_bodies_go_at_once_and_gather_while_slots_are_busy() {
    // The endpoint holds its first request until the test lets it go.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let (uri, seen) = serve(Arc::new(move |r: &Req| {
        if r.n == 0 {
            let _ = held.lock().unwrap().recv();
        }
        Reply::status(200)
    }));
    let cfg = config(&uri, "batch_timeout = \"0s\"\nconcurrency = 1");
    let mut s = start(&cfg, 1);
    s.send(0, 1);
    // No timer: with the shard side still open, only "a slot is free" sends it.
    wait_for("the first body", || seen.lock().unwrap().bodies == 1);
    // Its request is in flight (the only slot): these gather into one body, however far
    // apart they come.
    for b in 1..=5 {
        s.send(b, 2);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen.lock().unwrap().bodies, 1);
    release.send(()).unwrap();
    wait_for("the second body", || seen.lock().unwrap().bodies == 2);
    let r = s.finish();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.bodies, 2, "{:?}", seen.lines);
    assert_eq!(seen.max_events, 10);
    assert_eq!(seen.events, 11);
    r.all_delivered(6);
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
        bad("batch_timeout = \"2h\"", "http://x/").0,
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
    let mut b = Batcher::new(4, false);
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
        .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
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
    assert_eq!(&last.body[..], b"2-9\n");
    drop(last);
    assert!(log.0.lock().unwrap().iter().any(|(s, _)| *s == 2));
}

/// Waits (generously) until `f` holds.
#[track_caller]
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(30), "waited for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn backoff_stays_within_full_jitter_bounds() {
    let initial = Duration::from_millis(100);
    let max = Duration::from_secs(30);
    for seed in 0..200u64 {
        let mut b = retry::Backoff::new(initial, max, retry::Rng::new(seed));
        for n in 0..40u32 {
            let ceiling = initial
                .checked_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
                .map_or(max, |d| d.min(max));
            assert_eq!(b.ceiling(n), ceiling, "n={n}");
            let d = b.delay(n);
            assert!(d <= ceiling, "seed {seed} n {n}: {d:?} > {ceiling:?}");
        }
    }
    // Full jitter: the draws spread over the whole range, low and high.
    let mut b = retry::Backoff::new(initial, max, retry::Rng::new(7));
    let draws: Vec<Duration> = (0..1000).map(|_| b.delay(3)).collect();
    let ceiling = Duration::from_millis(800);
    assert!(draws.iter().any(|d| *d < ceiling / 10));
    assert!(draws.iter().any(|d| *d > ceiling * 9 / 10));
    assert!(draws.iter().all(|d| *d <= ceiling));
}

#[test]
fn retry_budget_allows_a_share_of_requests_plus_a_floor() {
    let t0 = Instant::now();
    let mut b = retry::RetryBudget::new(0.2, t0);
    // No requests: only the floor.
    let mut n = 0;
    while b.can_retry(t0) {
        b.record_retry(t0);
        n += 1;
    }
    assert_eq!(n, retry::BUDGET_FLOOR as u64);
    // 100 first attempts add 20 retries.
    for _ in 0..100 {
        b.record_request(t0);
    }
    let mut more = 0;
    while b.can_retry(t0) {
        b.record_retry(t0);
        more += 1;
    }
    assert_eq!(more, 20);
    // Once the window has passed, the floor is back.
    let later = t0 + retry::BUDGET_WINDOW + Duration::from_secs(1);
    assert!(b.can_retry(later));
}

#[test]
fn breaker_goes_closed_open_half_open_closed_and_open_again() {
    use retry::{Breaker, BreakerState};
    let cfg: BreakerConfig =
        toml::from_str("failure_threshold = 3\ncool_down = \"1s\"\nhalf_open_requests = 2")
            .unwrap();
    let t0 = Instant::now();
    let mut b = Breaker::new(cfg);
    assert_eq!(b.admit(t0), Some(false));
    b.record(false, false, t0);
    b.record(false, false, t0);
    // A success in between resets the count.
    b.record(true, false, t0);
    b.record(false, false, t0);
    b.record(false, false, t0);
    assert_eq!(b.state(), BreakerState::Closed);
    b.record(false, false, t0);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.openings, 1);
    assert_eq!(b.admit(t0 + Duration::from_millis(999)), None);
    // Cool-down over: two probes, no third.
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(b.admit(t1), Some(true));
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.admit(t1), Some(true));
    assert_eq!(b.admit(t1), None);
    b.record(true, true, t1);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.record(true, true, t1);
    assert_eq!(b.state(), BreakerState::Closed);
    // Open again, and a failed probe re-opens it.
    for _ in 0..3 {
        b.record(false, false, t1);
    }
    assert_eq!(b.state(), BreakerState::Open);
    let t2 = t1 + Duration::from_secs(1);
    assert_eq!(b.admit(t2), Some(true));
    b.record(false, true, t2);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.openings, 3);
    assert_eq!(b.admit(t2 + Duration::from_millis(500)), None);
}

#[test]
fn status_classes() {
    use retry::{classify, Verdict};
    for s in [200, 201, 204] {
        assert_eq!(classify(s), Verdict::Delivered);
    }
    for s in [408, 429, 500, 502, 503, 504] {
        assert_eq!(classify(s), Verdict::Retry);
    }
    for s in [301, 400, 401, 403, 404, 413, 422] {
        assert_eq!(classify(s), Verdict::Permanent);
    }
    assert_eq!(
        retry::parse_retry_after(b" 3 "),
        Some(Duration::from_secs(3))
    );
    // The HTTP-date forms count from now; one in the past means at once.
    let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
    for date in [
        "Wed, 21 Oct 2015 07:28:30 GMT",
        "Wednesday, 21-Oct-15 07:28:30 GMT",
        "Wed Oct 21 07:28:30 2015",
    ] {
        assert_eq!(
            retry::parse_retry_after_at(date.as_bytes(), now),
            Some(Duration::from_secs(30)),
            "{date}"
        );
    }
    assert_eq!(
        retry::parse_retry_after_at(b"Tue, 20 Oct 2015 07:28:00 GMT", now),
        Some(Duration::ZERO)
    );
    for bad in [
        &b""[..],
        b"-1",
        b"soon",
        b"Wed, 32 Oct 2015 07:28:00 GMT",
        b"\xff\xfe",
        b"1.5",
    ] {
        assert_eq!(retry::parse_retry_after_at(bad, now), None, "{bad:?}");
    }
}

#[test]
fn failed_requests_are_retried_until_delivered() {
    // 503, 408, 429, 500, then 200.
    let (uri, seen) = serve(Arc::new(|r: &Req| {
        Reply::status(
            [503, 408, 429, 500]
                .get(r.n as usize)
                .copied()
                .unwrap_or(200),
        )
    }));
    let cfg = config(
        &uri,
        "batch_max_events = 1000\nconcurrency = 1\nretry = { initial = \"1ms\", max = \"10ms\" }",
    );
    let r = run(&cfg, 1, 1, 100);
    let s = seen.lock().unwrap();
    assert_eq!(s.bodies, 5);
    assert_eq!(s.distinct.len(), 1, "the same body each time");
    r.all_delivered(1);
    assert_eq!(r.dead(), 0);
    assert_eq!(r.series("sluice_sink_retries_total"), 4);
}

#[test]
fn a_4xx_goes_to_the_dead_letter_without_retry() {
    let (uri, seen) = server(400);
    let cfg = config(&uri, "batch_max_events = 50\nretry = { initial = \"1ms\" }");
    let r = run(&cfg, 2, 4, 120);
    let s = seen.lock().unwrap();
    assert_eq!(s.events, 480, "each body once");
    r.all_delivered(4);
    assert_eq!(r.dead(), 480);
    assert_eq!(r.series("sluice_sink_retries_total"), 0);
    assert_eq!(r.series("sluice_sink_circuit_state"), 0);
}

#[test]
fn retry_after_is_honoured_up_to_max() {
    // 429 with Retry-After: 1 → the retry waits about a second (backoff alone: ≤ 1 ms).
    let (uri, seen) = serve(Arc::new(|r: &Req| {
        let mut reply = Reply::status(if r.n == 0 { 429 } else { 200 });
        if r.n == 0 {
            reply.headers = "retry-after: 1\r\n".into();
        }
        reply
    }));
    let cfg = config(&uri, "retry = { initial = \"1ms\", max = \"1m\" }");
    let r = run(&cfg, 1, 1, 10);
    let s = seen.lock().unwrap();
    assert_eq!(s.bodies, 2);
    assert!(
        s.times[1] - s.times[0] >= Duration::from_millis(950),
        "{:?}",
        s.times[1] - s.times[0]
    );
    r.all_delivered(1);
    // 503 with Retry-After: 3600 and max = 50ms: the retry comes after at most `max`.
    let (uri, seen) = serve(Arc::new(|r: &Req| {
        let mut reply = Reply::status(if r.n == 0 { 503 } else { 200 });
        reply.headers = "retry-after: 3600\r\n".into();
        reply
    }));
    let cfg = config(&uri, "retry = { initial = \"1ms\", max = \"50ms\" }");
    let r = run(&cfg, 1, 1, 10);
    let s = seen.lock().unwrap();
    assert_eq!(s.bodies, 2);
    assert!(s.times[1] - s.times[0] >= Duration::from_millis(45));
    assert!(s.times[1] - s.times[0] < Duration::from_secs(20));
    r.all_delivered(1);
}

#[test]
fn the_retry_budget_limits_retries_to_a_dead_endpoint() {
    let (uri, seen) = server(503);
    let cfg = config(
        &uri,
        "retry = { initial = \"1ms\", max = \"2ms\", max_retries = \"unlimited\", budget = 0.0 }\ncircuit_breaker = { enabled = false }",
    );
    let mut s = start(&cfg, 1);
    s.send(0, 10);
    // With backoff ≤ 2 ms, 1.5 s would allow hundreds of retries; the budget allows the
    // floor (10 per 10 s window) beyond the first attempt.
    std::thread::sleep(Duration::from_millis(1500));
    let bodies = seen.lock().unwrap().bodies;
    assert!(
        (2..=1 + retry::BUDGET_FLOOR as u64).contains(&bodies),
        "{bodies}"
    );
    // Stopping with the body still held fails its batch (the source would replay it).
    s.lifecycle.stop();
    let r = s.finish();
    let log = r.log.0.lock().unwrap();
    assert_eq!(*log, vec![(0, AckOutcome::Failed)]);
    assert_eq!(r.metrics.dropped("shutdown").load(Ordering::Relaxed), 10);
    assert_eq!(r.dead(), 0);
}

#[test]
fn the_breaker_opens_waits_probes_and_closes() {
    // The first 3 requests fail; the breaker opens after 3, waits 300 ms, probes, closes.
    let (uri, seen) = serve(Arc::new(|r: &Req| {
        Reply::status(if r.n < 3 { 500 } else { 200 })
    }));
    let cfg = config(
        &uri,
        "concurrency = 1\nretry = { initial = \"1ms\", max = \"2ms\" }\ncircuit_breaker = { failure_threshold = 3, cool_down = \"300ms\", half_open_requests = 1 }",
    );
    let mut s = start(&cfg, 1);
    s.send(0, 10);
    let reg = s.run.registry.clone();
    wait_for("the breaker to open", || {
        series(&reg, "sluice_sink_circuit_opened_total") == 1
    });
    s.send(1, 10);
    wait_for("both batches", || s.run.log.0.lock().unwrap().len() == 2);
    let r = s.finish();
    let t = seen.lock().unwrap().times.clone();
    assert!(t.len() >= 4, "{t:?}");
    // Nothing went while it was open.
    assert!(
        t[3] - t[2] >= Duration::from_millis(290),
        "{:?}",
        t[3] - t[2]
    );
    r.all_delivered(2);
    assert_eq!(r.series("sluice_sink_circuit_state"), 0);
    assert_eq!(r.series("sluice_sink_circuit_opened_total"), 1);
}

#[test]
fn a_failed_probe_opens_the_breaker_again() {
    // Requests 0-1 fail (open), probe 2 fails (open again), then success.
    let (uri, seen) = serve(Arc::new(|r: &Req| {
        Reply::status(if r.n < 3 { 503 } else { 200 })
    }));
    let cfg = config(
        &uri,
        "concurrency = 1\nretry = { initial = \"1ms\", max = \"2ms\" }\ncircuit_breaker = { failure_threshold = 2, cool_down = \"200ms\" }",
    );
    let r = run(&cfg, 1, 1, 10);
    let t = seen.lock().unwrap().times.clone();
    assert_eq!(t.len(), 4);
    assert!(t[2] - t[1] >= Duration::from_millis(190));
    assert!(t[3] - t[2] >= Duration::from_millis(190));
    r.all_delivered(1);
    assert_eq!(r.series("sluice_sink_circuit_opened_total"), 2);
    assert_eq!(r.series("sluice_sink_circuit_state"), 0);
}

/// A `_bulk` answer for `body`: `status(event line)` per item.
fn bulk_answer(body: &str, status: impl Fn(&str) -> u16) -> Reply {
    let lines: Vec<&str> = body.lines().collect();
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        assert_eq!(pair[0], "{\"index\":{}}", "action line");
        let s = status(pair[1]);
        errors |= s >= 300;
        items.push(format!("{{\"index\":{{\"_id\":\"x\",\"status\":{s}}}}}"));
    }
    Reply {
        status: 200,
        headers: "content-type: application/json\r\n".into(),
        body: format!(
            "{{\"took\":1,\"errors\":{errors},\"items\":[{}]}}",
            items.join(",")
        ),
    }
}

#[test]
fn partial_bulk_failures_resend_only_the_failed_lines() {
    // Line 3 of each batch is rejected (400) every time; line 5 fails (500) the first time.
    let tried: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    let t2 = tried.clone();
    let (uri, seen) = serve(Arc::new(move |r: &Req| {
        bulk_answer(r.body, |line| {
            if line.contains(" line 3\"") {
                400
            } else if line.contains(" line 5\"") && t2.lock().unwrap().insert(line.to_string()) {
                500
            } else {
                201
            }
        })
    }));
    let cfg = config(
        &uri,
        "response = \"bulk\"\nbatch_max_events = 25\nretry = { initial = \"1ms\", max = \"5ms\", max_retries = 3 }",
    );
    let r = run(&cfg, 2, 6, 40);
    let s = seen.lock().unwrap();
    let events: Vec<&String> = s.lines.iter().skip(1).step_by(2).collect();
    let count = |pat: &str| events.iter().filter(|l| l.contains(pat)).count();
    // 240 events sent once; the 6 line-5 events twice; the 6 line-3 events once (a 400 is
    // not retried); nothing else resent.
    assert_eq!(events.len(), 240 + 6);
    assert_eq!(count(" line 5\""), 12);
    assert_eq!(count(" line 3\""), 6);
    // The resent bodies hold only line-5 events.
    let resent: Vec<&String> = s
        .distinct
        .iter()
        .filter(|b| {
            b.lines()
                .skip(1)
                .step_by(2)
                .all(|l| l.contains(" line 5\""))
        })
        .collect();
    assert!(!resent.is_empty());
    r.all_delivered(6);
    assert_eq!(r.dead(), 6);
    assert_eq!(r.series("sluice_sink_retries_total"), resent.len() as i64);
}

#[test]
fn bodies_held_stay_within_max_in_flight_and_backpressure_the_shards() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f2 = failing.clone();
    let (uri, seen) = serve(Arc::new(move |_: &Req| {
        Reply::status(if f2.load(Ordering::SeqCst) { 503 } else { 200 })
    }));
    let cfg = config(
        &uri,
        "batch_max_events = 10\nconcurrency = 2\nmax_in_flight = 3\nretry = { initial = \"1ms\", max = \"20ms\", max_retries = \"unlimited\", budget = 10.0 }\ncircuit_breaker = { enabled = false }",
    );
    let mut s = start(&cfg, 1);
    // Offer 200 batches of 10 (one body each) while the endpoint fails.
    let mut accepted = 0u64;
    let mut pending = Some(s.batch(0, 10));
    let t = Instant::now();
    while accepted < 200 && t.elapsed() < Duration::from_millis(1500) {
        match s.offer(pending.take().expect("a batch")) {
            Ok(()) => {
                accepted += 1;
                pending = Some(s.batch(accepted, 10));
            }
            Err(back) => {
                pending = Some(back);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // Backpressure: at most 3 bodies held, 8 chunks in the ring, 1 popped being added.
    assert!(accepted <= 3 + 8 + 1, "accepted {accepted}");
    {
        let seen = seen.lock().unwrap();
        assert!(seen.distinct.len() <= 3, "{} bodies", seen.distinct.len());
        assert!(seen.max_open <= 2);
        assert!(seen.bodies > 10, "it kept retrying: {}", seen.bodies);
    }
    failing.store(false, Ordering::SeqCst);
    if let Some(b) = pending {
        let mut b = b;
        while let Err(back) = s.offer(b) {
            b = back;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for b in accepted + 1..200 {
        s.send(b, 10);
    }
    let r = s.finish();
    let seen = seen.lock().unwrap();
    let mut lines: Vec<&String> = seen.lines.iter().collect();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), 2000);
    r.all_delivered(200);
    assert_eq!(r.dead(), 0);
}

#[test]
fn new_options_are_checked() {
    let bad = |extra: &str| config("http://x/", extra).validate().unwrap_err().0;
    assert_eq!(bad("retry = { initial = \"0s\" }"), "retry.initial");
    assert_eq!(
        bad("retry = { initial = \"1s\", max = \"10ms\" }"),
        "retry.max"
    );
    assert_eq!(bad("retry = { budget = -1.0 }"), "retry.budget");
    assert_eq!(
        bad("circuit_breaker = { failure_threshold = 0 }"),
        "circuit_breaker.failure_threshold"
    );
    assert_eq!(
        bad("circuit_breaker = { cool_down = \"0s\" }"),
        "circuit_breaker.cool_down"
    );
    assert_eq!(
        bad("circuit_breaker = { half_open_requests = 0 }"),
        "circuit_breaker.half_open_requests"
    );
    assert_eq!(bad("max_in_flight = 0"), "max_in_flight");
    assert_eq!(bad("response = \"bulk\"\nencoding = \"text\""), "response");
    let ok = config(
        "http://x/",
        "retry = { max_retries = \"unlimited\" }\nresponse = \"bulk\"",
    );
    assert_eq!(ok.retry.max_retries, MaxRetries::Unlimited);
    assert!(ok.validate().is_ok());
    assert!(toml::from_str::<HttpSinkConfig>(
        "uri = \"http://x/\"\nretry = { max_retries = \"lots\" }"
    )
    .is_err());
    assert!(
        toml::from_str::<HttpSinkConfig>("uri = \"http://x/\"\nretry = { tries = 3 }").is_err()
    );
}

#[test]
fn bulk_bodies_and_answers_match_our_own_bulk_endpoint() {
    use crate::sources::http::bulk as source_bulk;
    let mut b = Batcher::new(100, true);
    let mut ready = VecDeque::new();
    b.add(
        Chunk {
            groups: vec![(String::new(), b"{\"a\":1}\n{\"a\":2}\nnot json\n".to_vec())],
            events: 3,
            created: Instant::now(),
            ack: None,
            wal_seq: None,
        },
        &mut ready,
    );
    let body = b.seal().body;
    assert_eq!(
        &body[..],
        b"{\"index\":{}}\n{\"a\":1}\n{\"index\":{}}\n{\"a\":2}\n{\"index\":{}}\nnot json\n"
    );
    assert_eq!(
        bulk::events(&body).collect::<Vec<_>>(),
        vec![&b"{\"a\":1}\n"[..], b"{\"a\":2}\n", b"not json\n"]
    );
    // The HTTP source's `_bulk` endpoint (index from the URL) takes the two objects and
    // refuses the third; its answer reads back item by item.
    let (mut spans, mut items) = (Vec::new(), Vec::new());
    source_bulk::parse(&body, Some("logs"), &mut spans, &mut items);
    assert_eq!(spans.len(), 2);
    let mut answer = Vec::new();
    source_bulk::write_response(
        &mut answer,
        1,
        &items,
        &mut source_bulk::IdGen::default(),
        &mut 0,
    );
    assert_eq!(
        bulk::parse_answer(&answer).unwrap(),
        bulk::BulkAnswer::Items(vec![201, 201, 400])
    );
    assert_eq!(
        bulk::parse_answer(
            b"{\"took\":3,\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}"
        )
        .unwrap(),
        bulk::BulkAnswer::AllOk
    );
    assert!(bulk::parse_answer(b"<html>").is_err());
}
