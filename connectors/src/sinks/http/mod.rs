//! `type = "http"`: POSTs events to an HTTP endpoint, `batch_max_events` per request.
//!
//! Shards encode their batches (NDJSON or text, one event per line) in parallel and push the
//! bytes through their rings, as for `file` and `console` ([`crate::sinks::writer::stubs`]).
//! One writer thread per sink runs a current-thread tokio runtime with a small hyper 1
//! HTTP/1.1 client: it joins chunks into request bodies of at most `batch_max_events` events
//! (splitting a chunk at line ends when it does not fit), sends a body once it is full or
//! `batch_timeout` after its first event, optionally gzips it, and keeps `concurrency`
//! requests in flight on as many keep-alive connections.
//!
//! A batch is acknowledged (its [`AckToken`] dropped) only after every request carrying any
//! of its events got a 2xx answer. A non-2xx answer, a connection error or `request_timeout`
//! marks the batch failed (`ack.fail()`) and counts its events in
//! `sluice_events_dropped_total{reason="http_error"}`; retries and backoff come later. A
//! request on a kept-alive connection that fails is tried once more on a new connection
//! (the server may have closed it while idle), so a body may arrive twice: at least once.
//!
//! Waking: the shards ring the sink's [`Doorbell`], which writes to an eventfd the runtime
//! watches, so the writer sleeps without polling while requests are in flight. The eventfd
//! is never closed (one descriptor per sink for the life of the process), because a shard
//! may ring it until its last moment.
//!
//! Memory is bounded: rings of 8 chunks per shard, at most `concurrency` sealed bodies
//! waiting, `concurrency` in flight, one body being filled; response bodies are read and
//! discarded frame by frame.

use crate::sinks::dead_letter::DeadLetter;
use crate::sinks::writer::{self, Chunk};
use crate::sinks::SinkRuntime;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use sluice_engine::ack::AckToken;
use sluice_engine::context::BuildCtx;
use sluice_engine::encode::Encoding;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::ring::{Doorbell, RingRx, WhenFull};
use sluice_engine::units::HumanDuration;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Longest a partly filled request waits for more events (default `"100ms"`).
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
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

impl HttpSinkConfig {
    /// Checks the options; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.target().map(|_| ())
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
        if self.batch_timeout.0.is_zero() || self.batch_timeout.0 > Duration::from_secs(3600) {
            return Err((
                "batch_timeout",
                "must be more than 0 and at most 1h".to_string(),
            ));
        }
        if self.request_timeout.0.is_zero() {
            return Err(("request_timeout", "must be more than 0".to_string()));
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err(("concurrency", "must be between 1 and 256".to_string()));
        }
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
    ) -> Result<SinkRuntime, String> {
        let _ = dead_letter;
        let target = self.target().map_err(|(k, m)| format!("`{k}`: {m}"))?;
        let bell = Doorbell::new();
        let (parts, rxs) =
            writer::stubs(ctx.shards, self.encoding, None, &metrics, when_full, &bell);
        let state = Writer {
            target: Arc::new(target),
            rxs,
            bell,
            batcher: Batcher::new(self.batch_max_events),
            batch_timeout: self.batch_timeout.0,
            concurrency: self.concurrency,
            failures: metrics.dropped("http_error"),
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
    body: Vec<u8>,
    events: u64,
    acks: Vec<AckToken>,
    oldest: Instant,
}

/// Joins chunks into bodies of at most `max` events.
struct Batcher {
    max: u64,
    body: Vec<u8>,
    events: u64,
    acks: Vec<AckToken>,
    first_at: Instant,
    oldest: Instant,
}

impl Batcher {
    fn new(max: usize) -> Batcher {
        Batcher {
            max: max as u64,
            body: Vec::new(),
            events: 0,
            acks: Vec::new(),
            first_at: Instant::now(),
            oldest: Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.events == 0 && self.body.is_empty()
    }

    fn seal(&mut self) -> Request {
        let r = Request {
            body: std::mem::take(&mut self.body),
            events: self.events,
            acks: std::mem::take(&mut self.acks),
            oldest: self.oldest,
        };
        self.events = 0;
        r
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
                        self.body.reserve(rest.len().min(4 << 20));
                    }
                }
                self.oldest = self.oldest.min(created);
                let room = self.max - self.events.min(self.max);
                if left <= room {
                    self.body.extend_from_slice(rest);
                    self.events += left;
                    left = 0;
                    rest = &[];
                } else {
                    let cut = nth_line_end(rest, room as usize).unwrap_or(rest.len());
                    self.body.extend_from_slice(&rest[..cut]);
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

/// What a request task hands back: its slot (and connection) and the answer's status.
type Sent = (Slot, Result<u16, String>);

/// One keep-alive connection slot.
struct Slot {
    id: usize,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

struct Writer {
    target: Arc<Target>,
    rxs: Vec<RingRx<Chunk>>,
    bell: Arc<Doorbell>,
    batcher: Batcher,
    batch_timeout: Duration,
    concurrency: usize,
    failures: Arc<AtomicU64>,
    metrics: Arc<ComponentMetrics>,
    last_warning: Option<Instant>,
}

/// An eventfd that is never closed (see the module docs).
struct EventFd(i32);

impl std::os::fd::AsRawFd for EventFd {
    fn as_raw_fd(&self) -> i32 {
        self.0
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

    /// Without a runtime: fail everything until the shards stop.
    fn fail_all(&mut self) {
        loop {
            for rx in self.rxs.iter_mut() {
                while let Some(c) = rx.pop() {
                    self.failures.fetch_add(c.events, Ordering::Relaxed);
                    if let Some(a) = &c.ack {
                        a.fail();
                    }
                }
            }
            if self.rxs.iter().all(|r| r.is_closed()) {
                return;
            }
            let rxs = &self.rxs;
            self.bell.wait(Duration::from_millis(50), || {
                rxs.iter().any(|r| !r.is_empty())
            });
        }
    }

    fn finished(&mut self, req: Request, result: Result<u16, String>) {
        match result {
            Ok(s) if (200..300).contains(&s) => {
                if let Some(l) = &self.metrics.latency {
                    l.record(req.oldest.elapsed());
                }
                drop(req.acks);
            }
            other => {
                let why = match other {
                    Ok(s) => format!("HTTP {s}"),
                    Err(e) => e,
                };
                if self
                    .last_warning
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    self.last_warning = Some(Instant::now());
                    tracing::warn!(component = %self.metrics.id, error = %why, events = req.events, "http sink: request failed");
                }
                self.failures.fetch_add(req.events, Ordering::Relaxed);
                for a in &req.acks {
                    a.fail();
                }
            }
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
        let mut free: Vec<Slot> = (0..self.concurrency)
            .map(|id| Slot { id, sender: None })
            .collect();
        // Requests in flight, by slot id (kept here so a failed task still settles them).
        let mut flying: Vec<Option<Request>> = (0..self.concurrency).map(|_| None).collect();
        let mut tasks: tokio::task::JoinSet<Sent> = tokio::task::JoinSet::new();
        let mut ready: VecDeque<Request> = VecDeque::new();
        // Which slot each running task holds (to settle a task that panicked).
        let mut task_slot: Vec<(tokio::task::Id, usize)> = Vec::new();
        loop {
            self.bell.set_sleeping(false);
            // Settle whatever finished (frees slots and acknowledges).
            while let Some(done) = tasks.try_join_next_with_id() {
                self.settle(done, &mut free, &mut flying, &mut task_slot);
            }
            let mut took = false;
            for rx in self.rxs.iter_mut() {
                while ready.len() < self.concurrency {
                    match rx.pop() {
                        Some(c) => {
                            took = true;
                            self.batcher.add(c, &mut ready);
                        }
                        None => break,
                    }
                }
            }
            let closed = self.rxs.iter().all(|r| r.is_closed());
            if !self.batcher.is_empty()
                && ready.len() < self.concurrency
                && (closed || self.batcher.first_at.elapsed() >= self.batch_timeout)
            {
                ready.push_back(self.batcher.seal());
            }
            while !ready.is_empty() {
                let Some(slot) = free.pop() else { break };
                let mut req = ready.pop_front().expect("not empty");
                let body = match encode_body(&self.target, &mut req) {
                    Ok(b) => b,
                    Err(e) => {
                        free.push(slot);
                        self.finished(req, Err(e));
                        continue;
                    }
                };
                let id = slot.id;
                flying[id] = Some(req);
                let handle = tasks.spawn(send(slot, body, self.target.clone()));
                task_slot.push((handle.id(), id));
            }
            if closed && self.batcher.is_empty() && ready.is_empty() && tasks.is_empty() {
                break;
            }
            if took {
                tokio::task::yield_now().await;
                continue;
            }
            // (With every slot busy and bodies waiting, a due partial body must wait too.)
            let deadline = if self.batcher.is_empty() || ready.len() >= self.concurrency {
                tokio::time::Instant::now() + Duration::from_millis(50)
            } else {
                tokio::time::Instant::from_std(self.batcher.first_at + self.batch_timeout)
            };
            self.bell.set_sleeping(true);
            if ready.len() < self.concurrency && self.rxs.iter().any(|r| !r.is_empty()) {
                continue;
            }
            let poll = efd.is_none().then(|| Duration::from_millis(1));
            tokio::select! {
                done = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    if let Some(done) = done {
                        self.settle(done, &mut free, &mut flying, &mut task_slot);
                    }
                }
                woke = async {
                    match &efd {
                        Some(f) => f.readable().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(mut guard) = woke {
                        let mut v = 0u64;
                        // SAFETY: reads 8 bytes into a live u64 from our own eventfd.
                        unsafe { libc::read(raw, &mut v as *mut u64 as *mut libc::c_void, 8) };
                        guard.clear_ready();
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {}
                _ = tokio::time::sleep(poll.unwrap_or(Duration::from_secs(3600))), if poll.is_some() => {}
            }
        }
        self.bell.set_sleeping(false);
    }

    fn settle(
        &mut self,
        done: Result<(tokio::task::Id, Sent), tokio::task::JoinError>,
        free: &mut Vec<Slot>,
        flying: &mut [Option<Request>],
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
        if let Some(req) = flying[id].take() {
            self.finished(req, result);
        }
        free.push(slot);
    }
}

/// The bytes to send for a request (gzipped if asked).
fn encode_body(target: &Target, req: &mut Request) -> Result<Bytes, String> {
    let body = std::mem::take(&mut req.body);
    if !target.gzip {
        return Ok(Bytes::from(body));
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(&body)
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

async fn attempt(slot: &mut Slot, body: Bytes, target: &Target) -> Result<u16, String> {
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
            let mut b = resp.into_body();
            while let Some(frame) = b.frame().await {
                frame.map_err(|e| e.to_string())?;
            }
            Ok::<u16, String>(status)
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
