//! `type = "http"`: an HTTP/1.1 ingest server (hyper 1 on a tokio current-thread runtime
//! owned by the source's connector thread).
//!
//! Bodies are split into one raw event per JSON document (no parsing here: put a
//! `parse json` transform after the source; invalid documents are dropped and counted
//! there). Each request becomes one batch (split only above `engine.batch_size` events)
//! whose buffer is the request body itself.
//!
//! Endpoints:
//! - `POST /log`: the whole body is one event.
//! - `POST /logs`: a JSON array (one event per element, its exact bytes) or NDJSON (one
//!   event per non-blank line). NDJSON when the `Content-Type` says so
//!   (`application/x-ndjson`, `application/jsonlines`, ...), otherwise an array when the body
//!   starts with `[`, otherwise NDJSON. Fluentd's `out_http` (`json` with or without
//!   `json_array`, `ndjson`) posts exactly these shapes; its `msgpack` format is refused
//!   (415).
//! - `POST|PUT /_bulk`, `/{index}/_bulk`: Elasticsearch's bulk API, answered like
//!   Elasticsearch ([`bulk`]); `GET|HEAD /`, `GET /_license`, `GET /_xpack` answer like an
//!   Elasticsearch 8.11 node, for the probes of Filebeat, Logstash and Fluent Bit.
//!
//! Submodules: [`server`] (connections, routing, responses), [`bodies`] (decoding and
//! splitting), [`bulk`], [`auth`] (API keys), [`limit`] (per-IP token buckets), [`acks`]
//! (answering after delivery), [`tls`].

pub mod acks;
pub mod auth;
pub mod bodies;
pub mod bulk;
pub mod limit;
pub mod server;
pub mod tls;

use crate::sources::SourceRuntime;
use serde::Deserialize;
use sluice_engine::context::BuildCtx;
use sluice_engine::metrics::Registry;
use sluice_engine::units::{ByteSize, HumanDuration};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

pub use tls::TlsConfig;

/// Options of the `http` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// `IP:PORT` to listen on (required).
    pub address: String,
    /// Largest body accepted, before and after decompression (default 10MiB; at most 1GiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: ByteSize,
    /// Decode `Content-Encoding: gzip | deflate | zstd` bodies (default true; when false
    /// such bodies are refused with 415).
    #[serde(default = "yes")]
    pub decompression: bool,
    /// Accepted API keys (default none).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// A file of API keys, one per line (`#` comments). With no key at all, no key is asked.
    #[serde(default)]
    pub api_keys_file: Option<PathBuf>,
    /// Requests per second per client IP (default: unlimited).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Serve HTTPS (default: plain HTTP).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Answer only once the request's events were delivered by every sink (default false:
    /// answer once they are in the pipeline).
    #[serde(default)]
    pub acknowledgements: bool,
    /// Open connections at most; more are closed at once (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest time to receive a request's body once its headers arrived (default 30s).
    #[serde(default = "default_timeout")]
    pub request_timeout: HumanDuration,
    /// Longest time a connection may wait for the (complete headers of the) next request,
    /// from its opening or the end of the previous response (default 30s).
    #[serde(default = "default_timeout")]
    pub idle_timeout: HumanDuration,
    /// How long a request whose events do not fit in the shard rings waits for room before it
    /// is refused with 503 (default 1s; "0s" refuses at once). Waiting requests hold their
    /// connection, so at most `max_connections` wait.
    #[serde(default = "default_backpressure_wait")]
    pub backpressure_wait: HumanDuration,
}

/// `rate_limit = { requests_per_second = 100, burst = 200 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client IP.
    pub requests_per_second: f64,
    /// Requests a client may send at once (default: `requests_per_second`, at least 1).
    #[serde(default)]
    pub burst: Option<f64>,
    /// Client addresses tracked at most (default 65536).
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
}

fn default_max_body() -> ByteSize {
    ByteSize(10 << 20)
}
fn yes() -> bool {
    true
}
fn default_backpressure_wait() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_max_connections() -> usize {
    1024
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_max_clients() -> usize {
    65536
}

/// Largest `max_body_bytes`.
pub const MAX_BODY_LIMIT: u64 = 1 << 30;

impl HttpSourceConfig {
    /// Checks the options; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.address.parse::<SocketAddr>().map_err(|_| {
            (
                "address",
                format!("`{}` is not an IP:PORT address", self.address),
            )
        })?;
        if self.max_body_bytes.0 == 0 || self.max_body_bytes.0 > MAX_BODY_LIMIT {
            return Err(("max_body_bytes", "must be between 1 byte and 1GiB".into()));
        }
        if self.max_connections == 0 {
            return Err(("max_connections", "must be at least 1".into()));
        }
        if self.request_timeout.0.is_zero() {
            return Err(("request_timeout", "must be more than 0".into()));
        }
        if self.idle_timeout.0.is_zero() {
            return Err(("idle_timeout", "must be more than 0".into()));
        }
        if self.api_keys.iter().any(|k| k.trim().is_empty()) {
            return Err(("api_keys", "a key is empty".into()));
        }
        if let Some(r) = &self.rate_limit {
            if !(r.requests_per_second.is_finite() && r.requests_per_second > 0.0) {
                return Err((
                    "rate_limit.requests_per_second",
                    "must be a number above 0".into(),
                ));
            }
            if let Some(b) = r.burst {
                if !(b.is_finite() && b >= 1.0) {
                    return Err(("rate_limit.burst", "must be at least 1".into()));
                }
            }
            if r.max_clients == 0 {
                return Err(("rate_limit.max_clients", "must be at least 1".into()));
            }
        }
        Ok(())
    }

    /// Binds the address (a busy port is an error now, not later) and loads keys and
    /// certificates. `id` labels the source's own metrics.
    pub fn build(&self, ctx: &BuildCtx, id: &str) -> Result<SourceRuntime, String> {
        self.bind(ctx, id).map(|(rt, _)| rt)
    }

    /// Like [`HttpSourceConfig::build`], also returning the address actually bound (port 0
    /// picks a free one).
    pub fn bind(&self, ctx: &BuildCtx, id: &str) -> Result<(SourceRuntime, SocketAddr), String> {
        self.validate().map_err(|(k, e)| format!("{k}: {e}"))?;
        let keys = auth::ApiKeys::load(&self.api_keys, self.api_keys_file.as_deref())
            .map_err(|e| format!("api_keys_file: {e}"))?;
        let tls = self.tls.as_ref().map(|t| t.server_config()).transpose()?;
        let address: SocketAddr = self.address.parse().map_err(|_| "address: invalid")?;
        let listener = std::net::TcpListener::bind(address)
            .map_err(|e| format!("address: cannot listen on {address}: {e}"))?;
        // A 1024-connection accept backlog (std's is 128): under a burst of connections a
        // full queue drops handshakes, which leaves clients retrying SYNs for a second or
        // more, and half-open connections that then wait out `idle_timeout`.
        // SAFETY: `listen` on a socket this function owns; listening again only changes the
        // backlog.
        unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), ACCEPT_BACKLOG) };
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("address: {e}"))?;
        let local = listener.local_addr().map_err(|e| format!("address: {e}"))?;
        let acks = self.acknowledgements.then(acks::AckTable::new);
        let limiter = self.rate_limit.as_ref().map(|r| {
            limit::RateLimiter::new(
                r.requests_per_second,
                r.burst.unwrap_or(r.requests_per_second).max(1.0),
                r.max_clients,
            )
        });
        let setup = server::Setup {
            listener,
            keys,
            tls,
            limiter,
            acks: acks.clone(),
            max_body: self.max_body_bytes.0 as usize,
            decompression: self.decompression,
            max_connections: self.max_connections,
            request_timeout: self.request_timeout.0,
            backpressure_wait: self.backpressure_wait.0,
            idle_timeout: self.idle_timeout.0,
            batch_limit: ctx.batch_size.max(1),
            metrics: HttpMetrics::new(&ctx.registry, id),
        };
        tracing::info!(source = id, address = %local, tls = self.tls.is_some(), "http source listening");
        let mut rt = SourceRuntime::thread(Box::new(move |out| server::run(out, setup)));
        if let Some(a) = acks {
            let r: Arc<dyn sluice_engine::ack::AckReceiver> = a;
            rt.receiver = Some(r);
        }
        Ok((rt, local))
    }
}

/// Connections the kernel completes and queues before the source accepts them.
const ACCEPT_BACKLOG: libc::c_int = 1024;

/// Why a request (or connection) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    Unauthorized,
    TooLarge,
    RateLimited,
    Backpressure,
    BadBody,
    DecompressError,
    /// The body did not arrive within `request_timeout` (408).
    Timeout,
    /// No complete request headers within `idle_timeout`: the connection was closed (slow
    /// senders, and idle keep-alive connections too).
    IdleTimeout,
    TooManyConnections,
    TlsHandshake,
    /// A request hyper could not parse (garbage request line, bad headers): answered 400
    /// and the connection closed.
    BadRequest,
}

impl Reject {
    pub const ALL: [Reject; 11] = [
        Reject::Unauthorized,
        Reject::TooLarge,
        Reject::RateLimited,
        Reject::Backpressure,
        Reject::BadBody,
        Reject::DecompressError,
        Reject::Timeout,
        Reject::IdleTimeout,
        Reject::TooManyConnections,
        Reject::TlsHandshake,
        Reject::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Unauthorized => "unauthorized",
            Reject::TooLarge => "too_large",
            Reject::RateLimited => "rate_limited",
            Reject::Backpressure => "backpressure",
            Reject::BadBody => "bad_body",
            Reject::DecompressError => "decompress_error",
            Reject::Timeout => "timeout",
            Reject::IdleTimeout => "idle_timeout",
            Reject::TooManyConnections => "too_many_connections",
            Reject::TlsHandshake => "tls_handshake",
            Reject::BadRequest => "bad_request",
        }
    }
}

/// The source's own series (besides the engine's per-component counters):
/// `sluice_http_requests_total{component,endpoint,status}`,
/// `sluice_http_rejected_total{component,reason}`,
/// `sluice_http_received_bytes_total{component}` (body bytes as sent, before decoding),
/// `sluice_http_connections_open{component}`, `sluice_http_connections_total{component}`.
pub struct HttpMetrics {
    registry: Arc<Registry>,
    id: String,
    /// `(endpoint, status)` series, made on first use (a bounded set).
    requests: std::cell::RefCell<Vec<(&'static str, u16, Arc<AtomicU64>)>>,
    rejected: Vec<Arc<AtomicU64>>,
    pub received_bytes: Arc<AtomicU64>,
    pub connections_open: Arc<AtomicI64>,
    pub connections_total: Arc<AtomicU64>,
}

impl HttpMetrics {
    pub fn new(registry: &Arc<Registry>, id: &str) -> HttpMetrics {
        let rejected = Reject::ALL
            .iter()
            .map(|r| {
                registry.counter(
                    "sluice_http_rejected_total",
                    "HTTP requests or connections refused, by reason.",
                    &[("component", id), ("reason", r.as_str())],
                )
            })
            .collect();
        HttpMetrics {
            registry: registry.clone(),
            id: id.to_string(),
            requests: Default::default(),
            rejected,
            received_bytes: registry.counter(
                "sluice_http_received_bytes_total",
                "HTTP body bytes received, before decompression.",
                &[("component", id)],
            ),
            connections_open: registry.gauge(
                "sluice_http_connections_open",
                "Open HTTP connections.",
                &[("component", id)],
            ),
            connections_total: registry.counter(
                "sluice_http_connections_total",
                "HTTP connections accepted.",
                &[("component", id)],
            ),
        }
    }

    pub fn reject(&self, r: Reject) {
        let i = Reject::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.rejected[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn request(&self, endpoint: &'static str, status: u16) {
        let mut reqs = self.requests.borrow_mut();
        if let Some((_, _, c)) = reqs.iter().find(|(e, s, _)| *e == endpoint && *s == status) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let status_s = status.to_string();
        let c = self.registry.counter(
            "sluice_http_requests_total",
            "HTTP requests answered, by endpoint and status.",
            &[
                ("component", &self.id),
                ("endpoint", endpoint),
                ("status", &status_s),
            ],
        );
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        reqs.push((endpoint, status, c));
    }
}
