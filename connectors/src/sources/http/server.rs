//! The server: the connector thread's tokio runtime, the accept loop, connections (plain or
//! TLS), routing, the checks every request passes (rate limit, API key, size), reading and
//! splitting bodies, handing batches to the shards, and the answers.
//!
//! Everything runs on one thread (a current-thread runtime and a `LocalSet`), so the state
//! shared by connections is in `Rc`/`RefCell` and nothing here takes a lock except the
//! acknowledgement table, which shard threads also touch.
//!
//! Backpressure: a request's events go out as one batch (several only above
//! `engine.batch_size` events), and only once every one of its batches fits in the shard
//! rings. A request that does not fit waits up to `backpressure_wait` for room (checking every
//! millisecond; nothing is queued beyond its own body, and only open connections wait), then
//! the answer is 503 with `Retry-After: 1`. (If the process stops between the check and the
//! sends, batches already sent stay sent.)
//!
//! Drain: when the process drains, the listener closes, every connection finishes the
//! request it is on (hyper's graceful shutdown: with acknowledgements, until its batches
//! are delivered) and closes; the source then reports itself finished.

use super::acks::AckTable;
use super::auth::ApiKeys;
use super::bodies::{self, DecodeError, Encoding};
use super::bulk;
use super::limit::{Decision, RateLimiter};
use super::{HttpMetrics, Reject};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sluice_engine::ack::AckOutcome;
use sluice_engine::batch::Batch;
use sluice_engine::source::ConnectorOutput;
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Everything the connector thread needs, made by `build`.
pub struct Setup {
    pub listener: std::net::TcpListener,
    pub keys: Option<ApiKeys>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limiter: Option<RateLimiter>,
    pub acks: Option<Arc<AckTable>>,
    pub max_body: usize,
    pub decompression: bool,
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub backpressure_wait: Duration,
    pub idle_timeout: Duration,
    /// Events per batch at most.
    pub batch_limit: usize,
    pub metrics: HttpMetrics,
}

/// State shared by the connections (all on the connector thread).
struct Shared {
    out: RefCell<ConnectorOutput>,
    keys: Option<ApiKeys>,
    limiter: Option<RefCell<RateLimiter>>,
    acks: Option<Arc<AckTable>>,
    max_body: usize,
    decompression: bool,
    max_connections: usize,
    request_timeout: Duration,
    idle_timeout: Duration,
    backpressure_wait: Duration,
    batch_limit: usize,
    metrics: HttpMetrics,
    ids: RefCell<bulk::IdGen>,
    seq_no: Cell<u64>,
    open: Cell<usize>,
    bulk_item_errors: Arc<AtomicU64>,
}

/// The connector thread's body: serves until the process drains.
pub fn run(out: ConnectorOutput, setup: Setup) {
    let handle = out.handle.clone();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(source = %handle.id, error = %e, "cannot start the http source's runtime");
            handle.mark_started();
            handle.mark_finished();
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve(out, setup));
    drop(local);
    drop(rt);
    handle.mark_finished();
}

/// Decrements the open-connection count when a connection ends.
struct ConnGuard(Rc<Shared>);

impl ConnGuard {
    fn new(s: &Rc<Shared>) -> ConnGuard {
        s.open.set(s.open.get() + 1);
        s.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        s.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnGuard(s.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
        self.0
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(out: ConnectorOutput, setup: Setup) {
    let lifecycle = out.lifecycle().clone();
    let handle = out.handle.clone();
    let listener = match tokio::net::TcpListener::from_std(setup.listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(source = %handle.id, error = %e, "cannot serve http");
            handle.mark_started();
            return;
        }
    };
    let acceptor = setup.tls.map(tokio_rustls::TlsAcceptor::from);
    let shared = Rc::new(Shared {
        bulk_item_errors: handle.metrics.dropped("bulk_item_error"),
        out: RefCell::new(out),
        keys: setup.keys,
        limiter: setup.limiter.map(RefCell::new),
        acks: setup.acks,
        max_body: setup.max_body,
        decompression: setup.decompression,
        max_connections: setup.max_connections,
        request_timeout: setup.request_timeout,
        backpressure_wait: setup.backpressure_wait,
        idle_timeout: setup.idle_timeout,
        batch_limit: setup.batch_limit.max(1),
        metrics: setup.metrics,
        ids: RefCell::new(bulk::IdGen::default()),
        seq_no: Cell::new(0),
        open: Cell::new(0),
    });
    handle.mark_started();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if shared.open.get() >= shared.max_connections {
                        shared.metrics.reject(Reject::TooManyConnections);
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let guard = ConnGuard::new(&shared);
                    conns.spawn_local(connection(stream, peer, guard, acceptor.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(source = %handle.id, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = tick.tick() => {
                if lifecycle.is_draining() {
                    break;
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while !conns.is_empty() {
        tokio::select! {
            _ = conns.join_next() => {}
            _ = tick.tick() => {
                if lifecycle.is_stopped() {
                    break;
                }
            }
        }
    }
    conns.abort_all();
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    let shared = guard.0.clone();
    match acceptor {
        None => serve_io(TokioIo::new(stream), peer.ip(), shared, stop).await,
        Some(a) => match tokio::time::timeout(shared.idle_timeout, a.accept(stream)).await {
            Ok(Ok(tls)) => serve_io(TokioIo::new(tls), peer.ip(), shared, stop).await,
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                shared.metrics.reject(Reject::TlsHandshake);
            }
            Err(_) => shared.metrics.reject(Reject::TlsHandshake),
        },
    }
    drop(guard);
}

async fn serve_io<I>(io: I, ip: IpAddr, shared: Rc<Shared>, mut stop: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let s = shared.clone();
    let svc = hyper::service::service_fn(move |req| {
        let s = s.clone();
        async move { Ok::<_, Infallible>(handle(req, ip, &s).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header timer runs from the moment hyper waits for a request: it bounds both an
    // idle keep-alive connection and a client that sends its headers slowly.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.idle_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let stopped = async {
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        r = conn.as_mut() => {
            if let Some(why) = r.err().as_ref().and_then(connection_error) {
                shared.metrics.reject(why);
            }
        }
        _ = stopped => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}

/// The rejection a connection's error is counted as: the header timeout, or a request
/// hyper could not parse (it has answered 400). Other errors (a peer gone mid-answer) are not
/// the client being refused.
fn connection_error(e: &hyper::Error) -> Option<Reject> {
    if e.is_timeout() {
        Some(Reject::IdleTimeout)
    } else if e.is_parse() || e.is_parse_too_large() {
        Some(Reject::BadRequest)
    } else {
        None
    }
}

/// What a request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Root,
    License,
    Xpack,
    Log,
    Logs,
    Bulk(Option<String>),
    NotAllowed {
        endpoint: &'static str,
        allow: &'static str,
    },
    NotFound,
}

impl Route {
    /// The `endpoint` label of `sluice_http_requests_total`.
    fn endpoint(&self) -> &'static str {
        match self {
            Route::Root => "root",
            Route::License => "license",
            Route::Xpack => "xpack",
            Route::Log => "log",
            Route::Logs => "logs",
            Route::Bulk(_) => "bulk",
            Route::NotAllowed { endpoint, .. } => endpoint,
            Route::NotFound => "other",
        }
    }
}

fn route(method: &Method, path: &str) -> Route {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let na = |endpoint, allow| Route::NotAllowed { endpoint, allow };
    match path {
        "/" if get => Route::Root,
        "/" => na("root", "GET, HEAD"),
        "/_license" | "/_license/" if get => Route::License,
        "/_license" | "/_license/" => na("license", "GET, HEAD"),
        "/_xpack" | "/_xpack/" if get => Route::Xpack,
        "/_xpack" | "/_xpack/" => na("xpack", "GET, HEAD"),
        "/log" if post => Route::Log,
        "/log" => na("log", "POST"),
        "/logs" if post => Route::Logs,
        "/logs" => na("logs", "POST"),
        _ => {
            let index = path
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix("/_bulk").or(p.strip_suffix("/_bulk/")));
            let bulk = match (path, index) {
                ("/_bulk" | "/_bulk/", _) => Some(None),
                (_, Some(i)) if !i.is_empty() && !i.contains('/') => Some(Some(percent_decode(i))),
                _ => None,
            };
            match bulk {
                Some(index) if post || method == Method::PUT => Route::Bulk(index),
                Some(_) => na("bulk", "POST, PUT"),
                None => Route::NotFound,
            }
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const BANNER: &str = concat!(
    r#"{"name":"sluice","cluster_name":"sluice","cluster_uuid":"c2x1aWNlLWh0dHAtc291cmNl","#,
    r#""version":{"number":"8.11.0","build_flavor":"default","build_type":"sluice","build_hash":"sluice","#,
    r#""build_date":"2023-11-04T10:04:57.184859352Z","build_snapshot":false,"lucene_version":"9.8.0","#,
    r#""minimum_wire_compatibility_version":"7.17.0","minimum_index_compatibility_version":"7.0.0"},"#,
    r#""tagline":"You Know, for Search"}"#
);
const LICENSE: &str = concat!(
    r#"{"license":{"status":"active","uid":"sluice","type":"basic","issue_date":"2023-01-01T00:00:00.000Z","#,
    r#""issue_date_in_millis":1672531200000,"max_nodes":1000,"max_resource_units":null,"#,
    r#""issued_to":"sluice","issuer":"sluice","start_date_in_millis":-1}}"#
);
const XPACK: &str = concat!(
    r#"{"build":{"hash":"sluice","date":"2023-11-04T10:04:57.184859352Z"},"#,
    r#""license":{"uid":"sluice","type":"basic","mode":"basic","status":"active"},"#,
    r#""features":{},"tagline":"You know, for X"}"#
);

/// An answer before it becomes a hyper response.
struct Reply {
    status: StatusCode,
    body: Bytes,
    retry_after: Option<u64>,
    /// Close the connection after answering (the body was not read, or is in a bad state).
    close: bool,
    allow: Option<&'static str>,
    www_authenticate: bool,
}

impl Reply {
    fn ok(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: body.into(),
            retry_after: None,
            close: false,
            allow: None,
            www_authenticate: false,
        }
    }

    /// An Elasticsearch-shaped error.
    fn error(status: StatusCode, kind: &str, reason: &str) -> Reply {
        let mut b = Vec::with_capacity(128 + 2 * reason.len());
        b.extend_from_slice(b"{\"error\":{\"root_cause\":[{\"type\":");
        bulk::write_json_str(&mut b, kind);
        b.extend_from_slice(b",\"reason\":");
        bulk::write_json_str(&mut b, reason);
        b.extend_from_slice(b"}],\"type\":");
        bulk::write_json_str(&mut b, kind);
        b.extend_from_slice(b",\"reason\":");
        bulk::write_json_str(&mut b, reason);
        b.extend_from_slice(format!("}},\"status\":{}}}", status.as_u16()).as_bytes());
        Reply {
            status,
            ..Reply::ok(b)
        }
    }

    fn closing(mut self, close: bool) -> Reply {
        self.close |= close;
        self
    }

    fn into_response(self, content_type: &'static str) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(self.body));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(
            "x-elastic-product",
            HeaderValue::from_static("Elasticsearch"),
        );
        if let Some(s) = self.retry_after {
            h.insert(hyper::header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.close {
            h.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(a) = self.allow {
            h.insert(hyper::header::ALLOW, HeaderValue::from_static(a));
        }
        if self.www_authenticate {
            h.insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sluice\""),
            );
        }
        r
    }
}

fn header_has(headers: &HeaderMap, name: hyper::header::HeaderName, needle: &[u8]) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the request carries a body that may not have been read.
fn has_body(headers: &HeaderMap) -> bool {
    content_length(headers).is_some_and(|n| n > 0)
        || headers.contains_key(hyper::header::TRANSFER_ENCODING)
}

async fn handle(req: Request<Incoming>, ip: IpAddr, s: &Shared) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let route = route(req.method(), req.uri().path());
    let compat = header_has(req.headers(), hyper::header::ACCEPT, b"compatible-with")
        || header_has(req.headers(), CONTENT_TYPE, b"compatible-with");
    let reply = answer(req, ip, s, &route, started).await;
    s.metrics.request(route.endpoint(), reply.status.as_u16());
    reply.into_response(if compat {
        "application/vnd.elasticsearch+json;compatible-with=8"
    } else {
        "application/json"
    })
}

async fn answer(
    req: Request<Incoming>,
    ip: IpAddr,
    s: &Shared,
    route: &Route,
    started: Instant,
) -> Reply {
    let unread = has_body(req.headers());
    if let Some(l) = &s.limiter {
        let decision = l.borrow_mut().check(ip, started);
        if let Decision::Deny { retry_after_secs } = decision {
            s.metrics.reject(Reject::RateLimited);
            let mut r = Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "es_rejected_execution_exception",
                "rate limit exceeded for this client",
            );
            r.retry_after = Some(retry_after_secs);
            return r.closing(unread);
        }
    }
    if let Some(keys) = &s.keys {
        if !keys.allows(req.headers()) {
            s.metrics.reject(Reject::Unauthorized);
            let mut r = Reply::error(
                StatusCode::UNAUTHORIZED,
                "security_exception",
                "missing or wrong API key (send X-API-Key or Authorization: Bearer)",
            );
            r.www_authenticate = true;
            return r.closing(unread);
        }
    }
    match route {
        Route::Root => Reply::ok(BANNER),
        Route::License => Reply::ok(LICENSE),
        Route::Xpack => Reply::ok(XPACK),
        Route::NotAllowed { allow, .. } => {
            let mut r = Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{} is not allowed here; use {allow}", req.method()),
            );
            r.allow = Some(*allow);
            r.closing(unread)
        }
        Route::NotFound => Reply::error(
            StatusCode::NOT_FOUND,
            "no_handler_found",
            &format!(
                "no handler found for uri [{}] and method [{}]",
                req.uri().path(),
                req.method()
            ),
        )
        .closing(unread),
        Route::Log | Route::Logs | Route::Bulk(_) => ingest(req, s, route, started).await,
    }
}

enum BodyError {
    TooLarge,
    Timeout,
    Broken,
}

/// Reads the whole body (at most `limit` bytes) before `deadline`. A body that arrives in
/// one frame is kept as it is; otherwise the frames are gathered into one buffer.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    hint: usize,
    deadline: tokio::time::Instant,
) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if data.is_empty() {
            continue;
        }
        total += data.len();
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        if first.is_none() && buf.is_empty() {
            first = Some(data);
            continue;
        }
        if let Some(f) = first.take() {
            buf.reserve(hint.max(f.len() + data.len()).min(limit));
            buf.extend_from_slice(&f);
        }
        buf.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Whether `Content-Type` names newline-delimited JSON (`application/x-ndjson`,
/// `application/jsonl`, `application/jsonlines`, `application/x-json-stream`, ...).
fn is_ndjson_type(headers: &HeaderMap) -> bool {
    [&b"ndjson"[..], b"jsonl", b"json-stream"]
        .iter()
        .any(|t| header_has(headers, CONTENT_TYPE, t))
}

async fn ingest(req: Request<Incoming>, s: &Shared, route: &Route, started: Instant) -> Reply {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let unread = has_body(headers);
    let encoding = match headers.get(CONTENT_ENCODING) {
        None => Encoding::Identity,
        Some(v) => match Encoding::from_header(v.as_bytes()) {
            Some(e) if e == Encoding::Identity || s.decompression => e,
            _ => {
                s.metrics.reject(Reject::DecompressError);
                return Reply::error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "content_encoding_exception",
                    "unsupported Content-Encoding (accepted: gzip, deflate, zstd, identity)",
                )
                .closing(unread);
            }
        },
    };
    if header_has(headers, CONTENT_TYPE, b"msgpack") {
        s.metrics.reject(Reject::BadBody);
        return Reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media_type_header_exception",
            "msgpack bodies are not supported: send JSON or NDJSON",
        )
        .closing(unread);
    }
    let declared = content_length(headers);
    if declared.is_some_and(|n| n > s.max_body as u64) {
        s.metrics.reject(Reject::TooLarge);
        return too_large(s).closing(unread);
    }
    let deadline = tokio::time::Instant::from_std(started + s.request_timeout);
    let hint = declared.unwrap_or(0) as usize;
    let raw = match read_body(body, s.max_body, hint, deadline).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            s.metrics.reject(Reject::TooLarge);
            return too_large(s).closing(true);
        }
        Err(BodyError::Timeout) => {
            s.metrics.reject(Reject::Timeout);
            return Reply::error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout_exception",
                "the request body did not arrive within request_timeout",
            )
            .closing(true);
        }
        Err(BodyError::Broken) => {
            s.metrics.reject(Reject::BadBody);
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "parse_exception",
                "the request body could not be read",
            )
            .closing(true);
        }
    };
    s.metrics
        .received_bytes
        .fetch_add(raw.len() as u64, Ordering::Relaxed);
    let body = match bodies::decode(encoding, raw, s.max_body) {
        Ok(b) => b,
        Err(DecodeError::TooLarge) => {
            s.metrics.reject(Reject::TooLarge);
            return too_large(s);
        }
        Err(DecodeError::Corrupt(e)) => {
            s.metrics.reject(Reject::DecompressError);
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "parse_exception",
                &format!("cannot decompress the body: {e}"),
            );
        }
    };
    let mut spans: Vec<(u32, u32)> = Vec::new();
    // NDJSON lines hold no line break; a single document or array elements may.
    let mut multiline = true;
    let split = match route {
        Route::Log => bodies::split_single(&body, &mut spans),
        Route::Logs if !is_ndjson_type(headers) && bodies::starts_with_array(&body) => {
            bodies::split_array(&body, &mut spans)
        }
        Route::Logs => {
            multiline = false;
            bodies::split_ndjson(&body, &mut spans)
        }
        _ => Ok(()),
    };
    if let Err(e) = split {
        s.metrics.reject(Reject::BadBody);
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "parse_exception",
            &format!("cannot split the body into JSON documents: {e}"),
        );
    }
    if let Route::Bulk(index) = route {
        return ingest_bulk(s, body, index.as_deref(), started).await;
    }
    let body = if multiline {
        bodies::flatten_line_breaks(body, &spans)
    } else {
        body
    };
    let n = spans.len();
    if let Err(r) = deliver(s, body, &spans).await {
        return r;
    }
    Reply::ok(format!("{{\"accepted\":{n}}}"))
}

async fn ingest_bulk(s: &Shared, body: Bytes, index: Option<&str>, started: Instant) -> Reply {
    let mut spans = Vec::new();
    let mut items = Vec::new();
    bulk::parse(&body, index, &mut spans, &mut items);
    let failed = items
        .iter()
        .filter(|i| matches!(i.outcome, bulk::Outcome::Failed(..)))
        .count();
    if let Err(r) = deliver(s, body.clone(), &spans).await {
        return r;
    }
    if failed > 0 {
        s.bulk_item_errors
            .fetch_add(failed as u64, Ordering::Relaxed);
    }
    let mut out = Vec::with_capacity(64 + items.len() * 180);
    let mut seq_no = s.seq_no.get();
    bulk::write_response(
        &mut out,
        started.elapsed().as_millis() as u64,
        &items,
        &mut s.ids.borrow_mut(),
        &mut seq_no,
    );
    s.seq_no.set(seq_no);
    Reply::ok(out)
}

fn too_large(s: &Shared) -> Reply {
    Reply::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "content_too_long_exception",
        &format!(
            "the body is larger than max_body_bytes ({} bytes) before or after decompression",
            s.max_body
        ),
    )
}

/// How often a request waiting for room in the shard rings checks again.
const BACKPRESSURE_POLL: Duration = Duration::from_millis(1);

/// Sends the events (all of them or none, waiting up to `backpressure_wait` for room) and,
/// with acknowledgements, waits until they were delivered.
async fn deliver(s: &Shared, body: Bytes, spans: &[(u32, u32)]) -> Result<(), Reply> {
    if spans.is_empty() {
        return Ok(());
    }
    let give_up = tokio::time::Instant::now() + s.backpressure_wait;
    let waiter = loop {
        match send(s, body.clone(), spans) {
            Ok(waiter) => break waiter,
            Err(()) if tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(BACKPRESSURE_POLL).await;
            }
            Err(()) => {
                s.metrics.reject(Reject::Backpressure);
                let mut r = Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "es_rejected_execution_exception",
                    "the pipeline is full; retry later",
                );
                r.retry_after = Some(1);
                return Err(r);
            }
        }
    };
    if let Some(rx) = waiter {
        match rx.await {
            Ok(AckOutcome::Delivered) => {}
            _ => {
                return Err(Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "delivery_exception",
                    "the events were not delivered by every sink",
                ))
            }
        }
    }
    Ok(())
}

/// Hands the request's batches to the shards if they all fit now.
fn send(
    s: &Shared,
    body: Bytes,
    spans: &[(u32, u32)],
) -> Result<Option<oneshot::Receiver<AckOutcome>>, ()> {
    let mut out = s.out.borrow_mut();
    let batches = spans.len().div_ceil(s.batch_limit);
    if out.room() < batches {
        return Err(());
    }
    let source = out.handle.index;
    let made = spans
        .chunks(s.batch_limit)
        .map(|c| Batch::from_spans(body.clone(), c, source));
    match &s.acks {
        Some(table) => table
            .send_all(&mut out, made.collect())
            .map(Some)
            .map_err(|_| ()),
        None => {
            for b in made {
                out.try_send(b).map_err(|_| ())?;
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let p = Method::POST;
        let g = Method::GET;
        assert_eq!(route(&g, "/"), Route::Root);
        assert_eq!(route(&Method::HEAD, "/"), Route::Root);
        assert_eq!(route(&p, "/log"), Route::Log);
        assert_eq!(route(&p, "/logs"), Route::Logs);
        assert_eq!(route(&p, "/_bulk"), Route::Bulk(None));
        assert_eq!(
            route(&Method::PUT, "/x/_bulk"),
            Route::Bulk(Some("x".into()))
        );
        assert_eq!(
            route(&p, "/%3Clogs-%7Bnow%2Fd%7D%3E/_bulk"),
            Route::Bulk(Some("<logs-{now/d}>".into()))
        );
        assert_eq!(route(&p, "/a/b/_bulk"), Route::NotFound);
        assert_eq!(route(&p, "//_bulk"), Route::NotFound);
        assert_eq!(route(&g, "/nope"), Route::NotFound);
        assert!(matches!(route(&g, "/log"), Route::NotAllowed { .. }));
        assert!(matches!(route(&g, "/_bulk"), Route::NotAllowed { .. }));
        assert_eq!(route(&g, "/_license"), Route::License);
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }

    #[test]
    fn error_body_is_json() {
        let r = Reply::error(StatusCode::NOT_FOUND, "t", "no \"x\"");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["status"], 404);
        assert_eq!(v["error"]["reason"], "no \"x\"");
        assert_eq!(v["error"]["root_cause"][0]["type"], "t");
    }
}
