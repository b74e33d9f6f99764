//! `type = "http"`: POSTs events to an HTTP endpoint, `batch_max_events` per request, and
//! keeps them until the endpoint took them: retries with backoff, a retry budget, a circuit
//! breaker, a bound on bodies held, and a dead letter for what can never be delivered.
//!
//! Shards encode their batches (NDJSON or text, one event per line) in parallel and push the
//! bytes through their rings, as for `file` and `console` ([`crate::sinks::writer::stubs`]).
//! One writer thread per sink runs a current-thread tokio runtime with a small hyper 1
//! HTTP/1.1 client: it joins chunks into request bodies of at most `batch_max_events` events
//! (splitting a chunk at line ends when it does not fit), sends a body once it is full or
//! `batch_timeout` after its first event (timed by a [`crate::precise_timer::PreciseTimer`]
//! when it is under 50 ms: tokio would round it up to the next millisecond tick), optionally
//! gzips it, and keeps `concurrency` requests in flight on as many keep-alive connections.
//! With `batch_timeout = "0s"` nothing lingers: a body goes as soon as a request slot is
//! free, and events gather into the next body only while every slot is busy (Kafka's
//! `linger.ms = 0`), which saves the linger's latency and its timer wake-up per body.
//! A request on a kept-alive connection that fails is tried once more on a new connection at
//! once (the server may have closed it while idle); that is not counted as a retry.
//!
//! **Answers.** 2xx: delivered. 408, 429, 5xx, a connection error or `request_timeout`:
//! retried. Any other status (4xx, 3xx): permanent, the body's events go to the sink's
//! dead letter ([`DeadLetter`], reason `http_400`, `http_4xx`, ...).
//!
//! **Retries** (`retry = { initial, max, max_retries, budget }`): a failed body waits a
//! random time in `[0, min(max, initial × 2^n)]` before retry `n` (exponential backoff with
//! full jitter), or the answer's `Retry-After` (seconds or an HTTP-date, on 429 and 503)
//! capped at `max`, and is then sent again as it was (gzipped anew). After `max_retries` retries (or never,
//! with `"unlimited"`) its events go to the dead letter (`retries_exhausted`). The retry
//! budget keeps a failing endpoint from getting more than its share of extra load: over the
//! last 10 s, retries may reach `budget` × first attempts + 10; a due retry beyond that
//! waits (it is not dropped, and does not count as an attempt).
//!
//! **Bodies held** (`max_in_flight`, default `2 × concurrency`): bodies sent, waiting to be
//! sent and waiting for a retry all count; at the limit the writer stops taking chunks from
//! the rings, they fill, and the shards hold their batches back (backpressure to the
//! sources). So memory stays bounded however long the endpoint fails: at most
//! `max_in_flight` bodies (plus the bodies cut from one chunk, and the one being filled).
//!
//! **Circuit breaker** (`circuit_breaker = { enabled, failure_threshold, cool_down,
//! half_open_requests }`, on by default): `failure_threshold` consecutive failed requests
//! (those that would be retried) open it; while open nothing is sent (bodies wait, and
//! backpressure follows); after `cool_down` it is half-open and lets `half_open_requests`
//! probes through; when that many succeeded it closes, a failed probe opens it again. Any
//! answer that is not a retryable failure counts as a success (a 400 proves the endpoint
//! alive). [`retry::Breaker`] has the rules.
//!
//! **Bulk** (`response = "bulk"`): the body is written in Elasticsearch `_bulk` form (an
//! `{"index":{}}` action line before each event, the index taken from the URI), and a 2xx
//! answer is read as a `_bulk` answer (see [`bulk`]): items with a retryable status are
//! retried as a new body holding only their lines, items with a permanent status go to the
//! dead letter (`bulk_item_rejected`, the event lines without their action lines), the rest
//! were stored. An answer that is not a `_bulk` answer, or has a different number of items,
//! is retried whole.
//!
//! **Acknowledgement.** A batch is acknowledged (its [`AckToken`] dropped, delivered) once
//! every event of it was delivered or handed to the dead letter; a retried body keeps the
//! tokens of every batch it had a part of. Only when the process stops with bodies still
//! held (the drain hit `engine.shutdown_timeout`) are their batches failed (`ack.fail()`,
//! counted in `sluice_events_dropped_total{reason="shutdown"}`), so a checkpointing source
//! replays them. Delivery is at least once: a body whose answer was lost is sent again.
//!
//! **Disk buffer** (`buffer = { type = "disk", ... }`, [`crate::sinks::disk_buffer`]): the
//! shards write their encoded batches to their WALs (the sources are acknowledged once they
//! are durable) and the writer takes the records in sequence per shard from the buffer's
//! [`RecordSource`](crate::sinks::disk_buffer::RecordSource) instead of the rings: from
//! memory when they came through, from the WAL otherwise and, at start, the replay first.
//! Each record gets an acknowledgement token of its own and completes as a batch does;
//! each shard's cursor advances over the completed prefix only ([`disk`]). Records are
//! taken only while fewer than `max_in_flight` bodies are held, so an endpoint that is down
//! fills the WAL (up to `max_size`, then `when_full`) rather than memory. On stop no record
//! is taken any more; bodies held get 2 s to finish, then their records stay in the WAL
//! (not counted as dropped) and replay at next start.
//!
//! Metrics: `sluice_sink_circuit_state{component}` (0 closed, 1 open, 2 half-open),
//! `sluice_sink_circuit_opened_total`, `sluice_sink_retries_total` (requests resent), and
//! the dead letter's `sluice_events_dropped_total{reason="dead_letter"}` while it is not
//! connected to an output.
//!
//! Waking: the shards ring the sink's [`Doorbell`], which writes to an eventfd the runtime
//! watches, so the writer sleeps without polling while requests are in flight. When the
//! writer has nothing to fill and a `batch_timeout`, it defers instead
//! ([`Doorbell::set_deferring`]): the first push arms a second descriptor, a timerfd, to
//! fire `batch_timeout` later, and the writer wakes then and sends what gathered (its
//! linger counted from that push). At a steady rate that saves one wake-up per body (it
//! used to wake for the first push only to start the linger): at 100,000 events/s with
//! `batch_timeout = "1ms"`, ~1,480 → ~1,090 wake-ups a second. Both descriptors are never
//! closed (one each per sink for the life of the process), because a shard may ring until
//! its last moment.
//!
//! Memory is bounded: rings of 8 chunks per shard, `max_in_flight` bodies, one body being
//! filled; response bodies are read and discarded frame by frame (in bulk mode a 2xx answer
//! is kept, up to 64 MiB, to read its items).

pub mod bulk;
pub mod disk;
pub mod retry;

use crate::sinks::dead_letter::DeadLetter;
use crate::sinks::writer::{self, Chunk};
use crate::sinks::SinkRuntime;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use retry::{
    classify, parse_retry_after, status_reason, Backoff, Breaker, BreakerConfig, MaxRetries,
    RetryBudget, RetryConfig, Rng, Verdict,
};
use serde::Deserialize;
use sluice_engine::ack::AckToken;
use sluice_engine::context::BuildCtx;
use sluice_engine::encode::Encoding;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::ring::{Doorbell, WhenFull};
use sluice_engine::shutdown::Lifecycle;
use sluice_engine::units::HumanDuration;
use sluice_engine::wal::DiskBufferConfig;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// How answers are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResponseMode {
    /// The status decides for the whole body.
    #[default]
    Status,
    /// `_bulk` bodies and per-item answers (see the module docs).
    Bulk,
}

fn default_batch_max_events() -> usize {
    1000
}
fn default_batch_timeout() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}
fn default_concurrency() -> usize {
    4
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// Options of the `http` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where to POST: `http://HOST[:PORT][/PATH][?QUERY]` (required; https comes later).
    pub uri: String,
    /// `ndjson` (default) or `text`; either way one event per line.
    #[serde(default)]
    pub encoding: Encoding,
    /// Most events per request (default 1000).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Longest a partly filled request waits for more events (default `"100ms"`). `"0s"`:
    /// no waiting; a body goes as soon as a request slot is free, and while all
    /// `concurrency` requests are in flight the events gather into the next body.
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: HumanDuration,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests in flight at once, each on its own keep-alive connection (default 4).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Longest wait for a whole answer; then the request counts as failed (default `"30s"`).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Backoff, retry limit and retry budget.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The circuit breaker (on by default).
    #[serde(default)]
    pub circuit_breaker: BreakerConfig,
    /// Most bodies held at once, sent or waiting (default `2 × concurrency`).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// `status` (default) or `bulk`.
    #[serde(default)]
    pub response: ResponseMode,
}

/// Where and how requests go, shared by the request tasks.
struct Target {
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    path: String,
    content_type: &'static str,
    gzip: bool,
    /// Keep 2xx answers' bodies (bulk mode).
    keep_answer: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

/// With a disk buffer, how long bodies held may still finish once the process stopped.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The largest answer body kept in bulk mode.
const MAX_ANSWER: usize = 64 << 20;

impl HttpSinkConfig {
    /// Checks the options; the error names the key (dotted below a table: `retry.max`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.target().map(|_| ())
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight.unwrap_or(self.concurrency * 2)
    }

    fn target(&self) -> Result<Target, (&'static str, String)> {
        let uri: hyper::Uri = self
            .uri
            .parse()
            .map_err(|e| ("uri", format!("invalid URI `{}`: {e}", self.uri)))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err((
                    "uri",
                    "https is not supported yet; use an http:// URI".to_string(),
                ))
            }
            _ => return Err(("uri", format!("`{}` must start with http://", self.uri))),
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ("uri", format!("`{}` names no host", self.uri)))?;
        let port = uri.port_u16().unwrap_or(80);
        if !(1..=1_000_000).contains(&self.batch_max_events) {
            return Err((
                "batch_max_events",
                "must be between 1 and 1000000".to_string(),
            ));
        }
        if self.batch_timeout.0 > Duration::from_secs(3600) {
            return Err(("batch_timeout", "must be at most 1h".to_string()));
        }
        if self.request_timeout.0.is_zero() {
            return Err(("request_timeout", "must be more than 0".to_string()));
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err(("concurrency", "must be between 1 and 256".to_string()));
        }
        if !(1..=4096).contains(&self.max_in_flight()) {
            return Err(("max_in_flight", "must be between 1 and 4096".to_string()));
        }
        if self.response == ResponseMode::Bulk && self.encoding != Encoding::Ndjson {
            return Err((
                "response",
                "`bulk` needs `encoding = \"ndjson\"` (each event is a _bulk document)".to_string(),
            ));
        }
        self.retry.validate()?;
        self.circuit_breaker.validate()?;
        let mut headers = Vec::new();
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ("headers", format!("invalid header name `{k}`")))?;
            if matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "content-encoding" | "connection" | "host"
            ) {
                return Err((
                    "headers",
                    format!("`{k}` is set by the sink and cannot be configured"),
                ));
            }
            let value = HeaderValue::from_str(v)
                .map_err(|_| ("headers", format!("invalid value for header `{k}`")))?;
            headers.push((name, value));
        }
        // Strip the brackets of an IPv6 literal for connecting.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Target {
            authority: uri
                .authority()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| host.clone()),
            host,
            port,
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".to_string()),
            content_type: match self.encoding {
                Encoding::Ndjson => "application/x-ndjson",
                Encoding::Text => "text/plain; charset=utf-8",
            },
            gzip: self.compression == Compression::Gzip,
            keep_answer: self.response == ResponseMode::Bulk,
            headers,
            timeout: self.request_timeout.0,
        })
    }

    pub fn build(
        &self,
        ctx: &BuildCtx,
        metrics: Arc<ComponentMetrics>,
        when_full: WhenFull,
        dead_letter: DeadLetter,
        disk: Option<DiskBufferConfig>,
    ) -> Result<SinkRuntime, String> {
        let target = self.target().map_err(|(k, m)| format!("`{k}`: {m}"))?;
        let bell = Doorbell::new();
        let (parts, input) = match disk {
            Some(cfg) => {
                let (parts, source) = crate::sinks::disk_buffer::build_source(
                    ctx.shards,
                    &ctx.data_dir.join("buffers").join(&metrics.id),
                    cfg,
                    self.encoding,
                    None,
                    metrics.clone(),
                    &ctx.registry,
                    &bell,
                )
                .map_err(|e| format!("cannot open the disk buffer: {e}"))?;
                (
                    parts,
                    disk::Input::Disk(Box::new(disk::DiskInput::new(source))),
                )
            }
            None => {
                let (parts, rxs) =
                    writer::stubs(ctx.shards, self.encoding, None, &metrics, when_full, &bell);
                (parts, disk::Input::Rings(rxs))
            }
        };
        let label = [("component", metrics.id.as_str())];
        let state = Writer {
            target: Arc::new(target),
            input,
            bell,
            batcher: Batcher::new(self.batch_max_events, self.response == ResponseMode::Bulk),
            batch_timeout: self.batch_timeout.0,
            concurrency: self.concurrency,
            max_in_flight: self.max_in_flight(),
            bulk: self.response == ResponseMode::Bulk,
            max_retries: self.retry.max_retries,
            retry_max: self.retry.max.0,
            backoff: Backoff::new(self.retry.initial.0, self.retry.max.0, Rng::from_entropy()),
            budget: RetryBudget::new(self.retry.budget, Instant::now()),
            breaker: Breaker::new(self.circuit_breaker.clone()),
            dead: dead_letter,
            lifecycle: ctx.lifecycle.clone(),
            failures: metrics.dropped("http_error"),
            given_up: metrics.dropped("shutdown"),
            retries_total: ctx.registry.counter(
                "sluice_sink_retries_total",
                crate::sinks::disk_buffer::RETRIES_HELP,
                &label,
            ),
            circuit_state: ctx.registry.gauge(
                "sluice_sink_circuit_state",
                "A sink's circuit breaker: 0 closed, 1 open, 2 half-open.",
                &label,
            ),
            circuit_opened: ctx.registry.counter(
                "sluice_sink_circuit_opened_total",
                "Times a sink's circuit breaker opened.",
                &label,
            ),
            metrics,
            last_warning: None,
        };
        Ok(SinkRuntime {
            parts,
            thread: Some(Box::new(move || state.run())),
            on_exit: None,
        })
    }
}

/// A sealed request body and what it acknowledges.
struct Request {
    /// Uncompressed (in `_bulk` form in bulk mode); kept for retries.
    body: Bytes,
    events: u64,
    acks: Vec<AckToken>,
    oldest: Instant,
    /// Retries done so far.
    retries: u32,
    /// When a waiting retry may go.
    due: Instant,
    /// Admitted by a half-open breaker.
    probe: bool,
}

/// Joins chunks into bodies of at most `max` events.
struct Batcher {
    max: u64,
    bulk: bool,
    body: Vec<u8>,
    events: u64,
    acks: Vec<AckToken>,
    first_at: Instant,
    oldest: Instant,
    /// The size of the last body sealed: a new body starts with room for about as much, so
    /// it does not grow (copy and reallocate) chunk by chunk at a steady rate.
    last_len: usize,
}

impl Batcher {
    fn new(max: usize, bulk: bool) -> Batcher {
        Batcher {
            max: max as u64,
            bulk,
            body: Vec::new(),
            events: 0,
            acks: Vec::new(),
            first_at: Instant::now(),
            oldest: Instant::now(),
            last_len: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.events == 0 && self.body.is_empty()
    }

    fn seal(&mut self) -> Request {
        self.last_len = self.body.len();
        let r = Request {
            body: Bytes::from(std::mem::take(&mut self.body)),
            events: self.events,
            acks: std::mem::take(&mut self.acks),
            oldest: self.oldest,
            retries: 0,
            due: self.oldest,
            probe: false,
        };
        self.events = 0;
        r
    }

    fn push(&mut self, lines: &[u8]) {
        if self.bulk {
            bulk::push_lines(&mut self.body, lines);
        } else {
            self.body.extend_from_slice(lines);
        }
    }

    /// Adds a chunk; full bodies go to `ready`.
    fn add(&mut self, chunk: Chunk, ready: &mut VecDeque<Request>) {
        let Chunk {
            groups,
            events,
            created,
            ack,
            ..
        } = chunk;
        let single = groups.len() == 1;
        // Whether the body being filled already holds a clone of this chunk's token.
        let mut attached = false;
        for (_, data) in groups {
            let mut left = if single {
                events
            } else {
                memchr::memchr_iter(b'\n', &data).count() as u64
            };
            let mut rest: &[u8] = &data;
            while !rest.is_empty() {
                if self.is_empty() {
                    self.first_at = Instant::now();
                    self.oldest = created;
                    if self.body.capacity() == 0 {
                        let extra = if self.bulk {
                            bulk::ACTION.len() * left as usize
                        } else {
                            0
                        };
                        // The last body's size plus an eighth (rates wander), at least
                        // this chunk.
                        let want = (rest.len() + extra).max(self.last_len + self.last_len / 8);
                        self.body.reserve(want.min(4 << 20));
                    }
                }
                self.oldest = self.oldest.min(created);
                let room = self.max - self.events.min(self.max);
                if left <= room {
                    self.push(rest);
                    self.events += left;
                    left = 0;
                    rest = &[];
                } else {
                    let cut = nth_line_end(rest, room as usize).unwrap_or(rest.len());
                    self.push(&rest[..cut]);
                    self.events += room;
                    left -= room;
                    rest = &rest[cut..];
                }
                if !attached {
                    if let Some(a) = &ack {
                        self.acks.push(a.clone());
                    }
                    attached = true;
                }
                if self.events >= self.max {
                    ready.push_back(self.seal());
                    attached = false;
                }
            }
        }
    }
}

/// Offset just past the `n`-th newline of `data` (`n` >= 1), if there are that many.
fn nth_line_end(data: &[u8], n: usize) -> Option<usize> {
    if n == 0 {
        return Some(0);
    }
    memchr::memchr_iter(b'\n', data).nth(n - 1).map(|i| i + 1)
}

/// An answer: status, `Retry-After`, and (bulk mode, 2xx) the body.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Option<Bytes>,
}

/// What a request task hands back: its slot (and connection) and the answer.
type Sent = (Slot, Result<Answer, String>);

/// One keep-alive connection slot.
struct Slot {
    id: usize,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

struct Writer {
    target: Arc<Target>,
    input: disk::Input,
    bell: Arc<Doorbell>,
    batcher: Batcher,
    batch_timeout: Duration,
    concurrency: usize,
    max_in_flight: usize,
    bulk: bool,
    max_retries: MaxRetries,
    retry_max: Duration,
    backoff: Backoff,
    budget: RetryBudget,
    breaker: Breaker,
    dead: DeadLetter,
    lifecycle: Arc<Lifecycle>,
    /// Events failed because the writer has no runtime.
    failures: Arc<AtomicU64>,
    /// Events still held when the process stopped.
    given_up: Arc<AtomicU64>,
    retries_total: Arc<AtomicU64>,
    circuit_state: Arc<AtomicI64>,
    circuit_opened: Arc<AtomicU64>,
    metrics: Arc<ComponentMetrics>,
    last_warning: Option<Instant>,
}

/// An eventfd (or the first-ring timerfd) that is never closed (see the module docs).
struct EventFd(i32);

impl std::os::fd::AsRawFd for EventFd {
    fn as_raw_fd(&self) -> i32 {
        self.0
    }
}

/// Waits until `fd` (the doorbell's eventfd or the first-ring timerfd) is readable and reads
/// its counter (0 if it was not, after all); never returns without one.
async fn take_count(fd: Option<&tokio::io::unix::AsyncFd<EventFd>>) -> u64 {
    let Some(fd) = fd else {
        return std::future::pending().await;
    };
    let Ok(mut guard) = fd.readable().await else {
        return std::future::pending().await;
    };
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live u64 from our own non-blocking descriptor.
    let n = unsafe {
        libc::read(
            guard.get_inner().0,
            &mut v as *mut u64 as *mut libc::c_void,
            8,
        )
    };
    guard.clear_ready();
    if n == 8 {
        v
    } else {
        0
    }
}

/// Bodies waiting to go (first attempts and retries) and in flight.
#[derive(Default)]
struct Held {
    ready: VecDeque<Request>,
    waiting: Vec<Request>,
    /// In flight, by slot id (kept here so a failed task still settles them).
    flying: Vec<Option<Request>>,
    in_flight: usize,
}

impl Held {
    fn len(&self) -> usize {
        self.ready.len() + self.waiting.len() + self.in_flight
    }

    /// The waiting retry due first.
    fn earliest(&self) -> Option<(usize, Instant)> {
        self.waiting
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| r.due)
            .map(|(i, r)| (i, r.due))
    }
}

impl Writer {
    fn run(mut self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match rt {
            Ok(rt) => rt.block_on(self.run_async()),
            Err(e) => {
                tracing::error!(component = %self.metrics.id, error = %e, "http sink: no runtime; failing every batch");
                self.fail_all();
            }
        }
    }

    /// Without a runtime: fail everything until the shards stop (a disk buffer keeps its
    /// records for next start).
    fn fail_all(&mut self) {
        if self.input.is_disk() {
            return;
        }
        loop {
            for i in 0..self.input.shards() {
                while let Some(c) = self.input.pop(i) {
                    self.failures.fetch_add(c.events, Ordering::Relaxed);
                    if let Some(a) = &c.ack {
                        a.fail();
                    }
                }
            }
            if self.input.closed() {
                return;
            }
            let input = &self.input;
            self.bell
                .wait(Duration::from_millis(50), || input.ring_ready());
        }
    }

    fn warn(&mut self, why: &str, events: u64, what: &str) {
        if self
            .last_warning
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(component = %self.metrics.id, error = %why, events, "http sink: {what}");
        }
    }

    fn sync_breaker_metrics(&self) {
        self.circuit_state
            .store(self.breaker.state().gauge(), Ordering::Relaxed);
        self.circuit_opened
            .store(self.breaker.openings, Ordering::Relaxed);
    }

    /// Every event of `req` reached the endpoint (or the dead letter): acknowledge.
    fn delivered(&mut self, req: Request) {
        if let Some(l) = &self.metrics.latency {
            l.record(req.oldest.elapsed());
        }
        drop(req.acks);
    }

    /// The event lines of a body (without `_bulk` action lines).
    fn event_lines(&self, body: &Bytes) -> Bytes {
        if !self.bulk {
            return body.clone();
        }
        let mut out = Vec::with_capacity(body.len());
        for l in bulk::events(body) {
            out.extend_from_slice(l);
        }
        Bytes::from(out)
    }

    /// Hands every event of `req` to the dead letter and acknowledges it as handled.
    fn dead_letter(&mut self, req: Request, reason: &'static str) {
        let lines = self.event_lines(&req.body);
        self.dead.send(lines, req.events, reason);
        self.delivered(req);
    }

    /// Schedules a retry of `req`, or dead-letters it when it had all its retries.
    fn retry_later(
        &mut self,
        mut req: Request,
        why: &str,
        after: Option<Duration>,
        held: &mut Held,
    ) {
        if !self.max_retries.allows(req.retries) {
            self.warn(
                why,
                req.events,
                "retries exhausted; events to the dead letter",
            );
            self.dead_letter(req, "retries_exhausted");
            return;
        }
        self.warn(why, req.events, "request failed; will retry");
        let delay = match after {
            Some(d) => d.min(self.retry_max),
            None => self.backoff.delay(req.retries),
        };
        req.retries += 1;
        req.due = Instant::now() + delay;
        held.waiting.push(req);
    }

    /// A 2xx bulk answer listing each item's status.
    fn bulk_items(&mut self, req: Request, statuses: &[u16], held: &mut Held) {
        if statuses.len() as u64 != req.events {
            let why = format!(
                "_bulk answer has {} items for {} events",
                statuses.len(),
                req.events
            );
            self.retry_later(req, &why, None, held);
            return;
        }
        let mut again = Vec::new();
        let mut again_n = 0u64;
        let mut dead = Vec::new();
        let mut dead_n = 0u64;
        for (line, &status) in bulk::events(&req.body).zip(statuses) {
            match classify(status) {
                Verdict::Delivered => {}
                Verdict::Retry => {
                    bulk::push_lines(&mut again, line);
                    again_n += 1;
                }
                Verdict::Permanent => {
                    dead.extend_from_slice(line);
                    dead_n += 1;
                }
            }
        }
        if dead_n > 0 {
            self.dead
                .send(Bytes::from(dead), dead_n, "bulk_item_rejected");
        }
        if again_n == 0 {
            self.delivered(req);
            return;
        }
        let retry = Request {
            body: Bytes::from(again),
            events: again_n,
            ..req
        };
        self.retry_later(retry, "_bulk items failed", None, held);
    }

    fn finished(&mut self, req: Request, result: Result<Answer, String>, held: &mut Held) {
        let now = Instant::now();
        let probe = req.probe;
        match result {
            Ok(a) => match classify(a.status) {
                Verdict::Delivered => {
                    self.breaker.record(true, probe, now);
                    if !self.bulk {
                        self.delivered(req);
                    } else {
                        match a.body.as_deref().map(bulk::parse_answer) {
                            Some(Ok(bulk::BulkAnswer::AllOk)) => self.delivered(req),
                            Some(Ok(bulk::BulkAnswer::Items(s))) => self.bulk_items(req, &s, held),
                            Some(Err(e)) => self.retry_later(req, &e, None, held),
                            None => self.retry_later(req, "no answer body", None, held),
                        }
                    }
                }
                Verdict::Retry => {
                    self.breaker.record(false, probe, now);
                    let after = a.retry_after.filter(|_| matches!(a.status, 429 | 503));
                    self.retry_later(req, &format!("HTTP {}", a.status), after, held);
                }
                Verdict::Permanent => {
                    self.breaker.record(true, probe, now);
                    self.warn(
                        &format!("HTTP {}", a.status),
                        req.events,
                        "request rejected; events to the dead letter",
                    );
                    self.dead_letter(req, status_reason(a.status));
                }
            },
            Err(e) => {
                self.breaker.record(false, probe, now);
                self.retry_later(req, &e, None, held);
            }
        }
        self.sync_breaker_metrics();
    }

    /// The process is stopping with bodies still held: fail their batches.
    fn give_up(&mut self, held: &mut Held) {
        let mut reqs: Vec<Request> = held.ready.drain(..).collect();
        reqs.append(&mut held.waiting);
        reqs.extend(held.flying.iter_mut().filter_map(Option::take));
        if !self.batcher.is_empty() {
            reqs.push(self.batcher.seal());
        }
        let events: u64 = reqs.iter().map(|r| r.events).sum();
        if self.input.is_disk() {
            // Not lost: their records were not acknowledged to the disk buffer.
            if events > 0 {
                tracing::info!(component = %self.metrics.id, events, "http sink: stopping with undelivered events; they stay in the disk buffer for next start");
            }
        } else {
            if events > 0 {
                tracing::warn!(component = %self.metrics.id, events, "http sink: stopping with undelivered events; their batches are failed");
            }
            self.given_up.fetch_add(events, Ordering::Relaxed);
        }
        for r in reqs {
            for a in &r.acks {
                a.fail();
            }
        }
        held.in_flight = 0;
    }

    /// Sends what may go now: due retries first (within the budget), then new bodies.
    fn dispatch(
        &mut self,
        held: &mut Held,
        free: &mut Vec<Slot>,
        tasks: &mut tokio::task::JoinSet<Sent>,
        task_slot: &mut Vec<(tokio::task::Id, usize)>,
    ) {
        while !free.is_empty() {
            let now = Instant::now();
            let retry = held
                .earliest()
                .filter(|(_, due)| *due <= now)
                .map(|(i, _)| i)
                .filter(|_| self.budget.can_retry(now));
            if retry.is_none() && held.ready.is_empty() {
                break;
            }
            let Some(probe) = self.breaker.admit(now) else {
                break;
            };
            self.sync_breaker_metrics();
            let mut req = match retry {
                Some(i) => {
                    self.budget.record_retry(now);
                    self.retries_total.fetch_add(1, Ordering::Relaxed);
                    held.waiting.swap_remove(i)
                }
                None => {
                    self.budget.record_request(now);
                    held.ready.pop_front().expect("not empty")
                }
            };
            req.probe = probe;
            let body = match encode_body(&self.target, &req.body) {
                Ok(b) => b,
                Err(e) => {
                    // Not the endpoint's fault: release the probe and give the events up.
                    self.breaker.release(probe);
                    self.warn(&e, req.events, "cannot encode; events to the dead letter");
                    self.dead_letter(req, "encode_error");
                    continue;
                }
            };
            let slot = free.pop().expect("a free slot");
            let id = slot.id;
            held.flying[id] = Some(req);
            held.in_flight += 1;
            let handle = tasks.spawn(send(slot, body, self.target.clone()));
            task_slot.push((handle.id(), id));
        }
    }

    async fn run_async(&mut self) {
        // SAFETY: eventfd(2) has no memory preconditions; a negative result is handled.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        let efd = if raw >= 0 {
            // SAFETY: `raw` is a valid eventfd that is never closed (see the module docs),
            // so it outlives the registration.
            let registered = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    EventFd(raw),
                    tokio::io::Interest::READABLE,
                )
            };
            match registered {
                Ok(f) => {
                    self.bell.use_eventfd(raw);
                    Some(f)
                }
                Err(_) => None,
            }
        } else {
            None
        };
        // The first push after the writer went idle arms this timer for `batch_timeout`
        // instead of waking it (`Doorbell::set_deferring`): the wake-up that would only start
        // the linger is saved. Never closed either, as producers may arm it until the end.
        let first_ring = if efd.is_some() && !self.batch_timeout.is_zero() {
            // SAFETY: timerfd_create has no memory preconditions; a negative result is handled.
            let tfd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            // SAFETY: as for the eventfd: `tfd` is valid and never closed.
            let registered = (tfd >= 0).then(|| unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    EventFd(tfd),
                    tokio::io::Interest::READABLE,
                )
            });
            match registered {
                Some(Ok(f)) => {
                    self.bell.use_first_ring_timer(tfd, self.batch_timeout);
                    Some(f)
                }
                _ => None,
            }
        } else {
            None
        };
        // The first-ring timer fired: what the writer takes next has waited `batch_timeout`.
        let mut first_ring_fired = false;
        let timer = crate::precise_timer::PreciseTimer::new().ok();
        let mut free: Vec<Slot> = (0..self.concurrency)
            .map(|id| Slot { id, sender: None })
            .collect();
        let mut held = Held {
            flying: (0..self.concurrency).map(|_| None).collect(),
            ..Held::default()
        };
        let mut tasks: tokio::task::JoinSet<Sent> = tokio::task::JoinSet::new();
        // Which slot each running task holds (to settle a task that panicked).
        let mut task_slot: Vec<(tokio::task::Id, usize)> = Vec::new();
        self.sync_breaker_metrics();
        // With a disk buffer: when the process stopped (and its shards are gone), bodies held
        // get this long to finish before they are left to the next start's replay.
        let mut stop_grace: Option<Instant> = None;
        loop {
            self.bell.set_sleeping(false);
            // Settle whatever finished (frees slots, acknowledges, schedules retries).
            while let Some(done) = tasks.try_join_next_with_id() {
                self.settle(done, &mut free, &mut held, &mut task_slot);
            }
            self.input.settle();
            // A disk buffer's records are taken until the process stops; what is left then
            // stays on disk.
            let stopping = self.input.is_disk() && self.lifecycle.is_stopped();
            let mut took = false;
            if !stopping {
                for i in 0..self.input.shards() {
                    while held.len() < self.max_in_flight {
                        match self.input.pop(i) {
                            Some(c) => {
                                took = true;
                                self.batcher.add(c, &mut held.ready);
                            }
                            None => break,
                        }
                    }
                }
            }
            if std::mem::take(&mut first_ring_fired) && !self.batcher.is_empty() {
                if let Some(t) = Instant::now().checked_sub(self.batch_timeout) {
                    self.batcher.first_at = self.batcher.first_at.min(t);
                }
            }
            let closed = self.input.closed() || (stopping && self.input.shards_gone());
            // Without a batch timeout a body waits for a free request slot instead (and for
            // the bodies before it to go), gathering events meanwhile.
            let due = if self.batch_timeout.is_zero() {
                !free.is_empty() && held.ready.is_empty()
            } else {
                self.batcher.first_at.elapsed() >= self.batch_timeout
            };
            if !self.batcher.is_empty() && held.len() < self.max_in_flight && (closed || due) {
                held.ready.push_back(self.batcher.seal());
            }
            let mut grace_over = true;
            if self.input.is_disk() && closed && self.lifecycle.is_stopped() {
                let until = *stop_grace.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                grace_over = Instant::now() >= until;
            }
            if closed && self.lifecycle.is_stopped() && held.len() > 0 && grace_over {
                tasks.abort_all();
                self.give_up(&mut held);
                self.input.settle();
                break;
            }
            self.dispatch(&mut held, &mut free, &mut tasks, &mut task_slot);
            if closed && self.batcher.is_empty() && held.len() == 0 && tasks.is_empty() {
                self.input.settle();
                break;
            }
            if took {
                tokio::task::yield_now().await;
                continue;
            }
            // The next moment something is due: a partial body (when there is room to seal
            // it), a retry or the breaker's cool-down (when a slot is free); at least every
            // 50 ms (the stop check, a retry held back by the budget).
            let now = Instant::now();
            let mut wake = now + Duration::from_millis(50);
            let mut linger = None;
            // A body being filled that goes out when a request finishes: that wakes us.
            let mut gathering = false;
            if !self.batcher.is_empty() && held.len() < self.max_in_flight {
                if self.batch_timeout.is_zero() {
                    gathering = true;
                } else {
                    let until = self.batcher.first_at + self.batch_timeout;
                    wake = wake.min(until);
                    linger = Some(until);
                }
            }
            if !free.is_empty() {
                if let Some(until) = self.breaker.open_until() {
                    wake = wake.min(until);
                } else if let Some((_, due)) = held.earliest().filter(|(_, d)| *d > now) {
                    wake = wake.min(due);
                }
            }
            // A linger or a retry due soon is timed precisely (tokio would round it up to the
            // next millisecond tick, adding up to 2 ms to a 1 ms `batch_timeout`).
            let precise = wake < now + Duration::from_millis(50);
            let deadline = tokio::time::Instant::from_std(wake);
            if linger == Some(wake) || gathering {
                // The body being filled goes out at `wake` (or when a request finishes)
                // anyway: pushes until then need not wake us, unless a ring fills up.
                self.bell.set_lingering();
            } else if first_ring.is_some()
                && self.batcher.is_empty()
                && held.len() < self.max_in_flight
                && !stopping
            {
                // Nothing to fill: the first push starts the linger by itself.
                self.bell.set_deferring();
            } else {
                self.bell.set_sleeping(true);
            }
            if held.len() < self.max_in_flight && !stopping && self.input.ring_ready() {
                continue;
            }
            let poll = efd.is_none().then(|| Duration::from_millis(1));
            tokio::select! {
                done = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    if let Some(done) = done {
                        self.settle(done, &mut free, &mut held, &mut task_slot);
                    }
                }
                _ = take_count(efd.as_ref()) => {}
                fired = take_count(first_ring.as_ref()) => first_ring_fired |= fired > 0,
                _ = async {
                    match &timer {
                        Some(t) if precise => t.sleep_until(wake).await,
                        _ => tokio::time::sleep_until(deadline).await,
                    }
                } => {}
                _ = tokio::time::sleep(poll.unwrap_or(Duration::from_secs(3600))), if poll.is_some() => {}
            }
        }
        self.bell.set_sleeping(false);
    }

    fn settle(
        &mut self,
        done: Result<(tokio::task::Id, Sent), tokio::task::JoinError>,
        free: &mut Vec<Slot>,
        held: &mut Held,
        task_slot: &mut Vec<(tokio::task::Id, usize)>,
    ) {
        let task = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some(pos) = task_slot.iter().position(|(t, _)| *t == task) else {
            return;
        };
        let (_, id) = task_slot.swap_remove(pos);
        let (slot, result) = match done {
            Ok((_, (slot, result))) => (slot, result),
            // The task panicked: its connection is gone with it.
            Err(e) => (
                Slot { id, sender: None },
                Err(format!("request task failed: {e}")),
            ),
        };
        if let Some(req) = held.flying[id].take() {
            held.in_flight -= 1;
            self.finished(req, result, held);
        }
        free.push(slot);
    }
}

/// The bytes to send for a request (gzipped if asked).
fn encode_body(target: &Target, body: &Bytes) -> Result<Bytes, String> {
    if !target.gzip {
        return Ok(body.clone());
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(body)
        .and_then(|_| enc.finish())
        .map(Bytes::from)
        .map_err(|e| format!("gzip: {e}"))
}

/// Sends one body on the slot's connection (connecting first if needed).
async fn send(mut slot: Slot, body: Bytes, target: Arc<Target>) -> Sent {
    let timeout = target.timeout;
    match tokio::time::timeout(timeout, attempt(&mut slot, body, &target)).await {
        Ok(r) => (slot, r),
        Err(_) => {
            slot.sender = None;
            (slot, Err(format!("no answer within {timeout:?}")))
        }
    }
}

async fn connect(
    target: &Target,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", target.host, target.port))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn attempt(slot: &mut Slot, body: Bytes, target: &Target) -> Result<Answer, String> {
    let mut tries = 0;
    loop {
        tries += 1;
        let reused = slot.sender.is_some();
        if slot.sender.is_none() {
            slot.sender = Some(connect(target).await?);
        }
        let sender = slot.sender.as_mut().expect("connected");
        let outcome = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let mut req = hyper::Request::post(target.path.as_str())
                .header(hyper::header::HOST, target.authority.as_str())
                .header(hyper::header::CONTENT_TYPE, target.content_type);
            if target.gzip {
                req = req.header(hyper::header::CONTENT_ENCODING, "gzip");
            }
            for (k, v) in &target.headers {
                req = req.header(k.clone(), v.clone());
            }
            let req = req
                .body(Full::new(body.clone()))
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(v.as_bytes()));
            let keep = target.keep_answer && (200..300).contains(&status);
            let mut kept = Vec::new();
            let mut b = resp.into_body();
            while let Some(frame) = b.frame().await {
                let frame = frame.map_err(|e| e.to_string())?;
                if keep {
                    if let Some(d) = frame.data_ref() {
                        if kept.len() + d.len() > MAX_ANSWER {
                            return Err(format!("answer larger than {MAX_ANSWER} bytes"));
                        }
                        kept.extend_from_slice(d);
                    }
                }
            }
            Ok::<Answer, String>(Answer {
                status,
                retry_after,
                body: keep.then(|| Bytes::from(kept)),
            })
        }
        .await;
        match outcome {
            Ok(s) => return Ok(s),
            Err(e) => {
                slot.sender = None;
                if !(reused && tries < 2) {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
