//! `type = "syslog"`: syslog over UDP, TCP or TLS, received on a connector thread.
//!
//! The thread does I/O and framing only: every syslog message becomes one raw event (its
//! bytes, without an octet count or trailing LF), copied into a shared batch buffer that is
//! handed to the shards' rings (round robin) when it holds `engine.batch_size` events or
//! 512 KiB, or as soon as nothing else is ready to read. Parsing (RFC 5424 / 3164) happens on
//! the shards, in a `parse` transform placed after this source.
//!
//! - [`framing`]: RFC 6587 framing (octet counting and LF, detected per frame).
//! - [`udp`]: one datagram = one message, received 64 at a time with `recvmmsg`.
//! - [`tcp`]: TCP and TLS connections on a tokio current-thread runtime.
//! - [`tls`]: rustls server configuration from PEM files.
//! - [`peers`]: per-peer counters, top talkers and the per-IP rate limit.
//!
//! Backpressure: `ConnectorOutput::send` blocks the thread while every shard ring is full, so
//! all connections of the source stop being read (TCP senders see their window close; UDP
//! datagrams wait in the socket buffer, and what overflows it is counted by the kernel).

pub mod framing;
pub mod peers;
pub mod tcp;
pub mod tls;
pub mod udp;

#[cfg(test)]
mod tests;

use crate::sources::SourceRuntime;
use serde::Deserialize;
use sluice_engine::batch::{Batch, Event, EventForm};
use sluice_engine::context::BuildCtx;
use sluice_engine::memory::BufferPool;
use sluice_engine::source::{ConnectorOutput, Stopped};
use sluice_engine::units::{ByteSize, HumanDuration};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Transport of a syslog source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogMode {
    Udp,
    Tcp,
    Tls,
}

/// The `tls` table of a syslog source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTlsConfig {
    /// PEM certificate chain of the server (leaf first).
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate signed by one.
    pub ca_file: Option<PathBuf>,
}

/// Options of the `syslog` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSourceConfig {
    /// `udp`, `tcp` or `tls` (required).
    pub mode: SyslogMode,
    /// Address to listen on, like `"0.0.0.0:5514"` or `"[::]:6514"` (required).
    pub address: String,
    /// TCP/TLS: most connections open at once; further ones are accepted, closed at once and
    /// counted (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest message (default 64KiB). Longer octet-counted frames and datagrams are dropped
    /// and counted (`oversized`); longer LF frames are cut and counted (`truncated`).
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: ByteSize,
    /// TCP/TLS: connections that send nothing for this long are closed (default 5m).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// TCP/TLS: a message must arrive whole within this long of its first byte; a connection
    /// that dribbles (slowloris: a byte now and then, never silent long enough for
    /// `idle_timeout`) is closed, its partial message kept as truncated, and counted
    /// (default 30s).
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout: HumanDuration,
    /// TCP (not TLS): read a connection that streams at most once per this long, letting its
    /// data gather in the socket (`SO_RCVLOWAT`) instead of waking for every segment (default
    /// 1ms; `"0s"` reads as data arrives). Trades a little latency for CPU: at 100,000
    /// events/s from `sluice-loadgen`, 1 ms took the source thread from ~25% to ~8% of a core
    /// and added 0.1-0.3 ms to the median latency.
    #[serde(default = "default_read_pacing")]
    pub read_pacing: HumanDuration,
    /// Events per second per peer IP (default: no limit). Over it, UDP datagrams are dropped
    /// and counted (`rate_limited`); TCP/TLS connections are not read until the bucket
    /// refills (backpressure). The bucket holds one second's worth.
    pub rate_limit: Option<u64>,
    /// UDP: the socket's receive buffer (SO_RCVBUF, default 8MiB; the kernel may cap it at
    /// `net.core.rmem_max` unless Sluice may use SO_RCVBUFFORCE).
    #[serde(default = "default_receive_buffer")]
    pub receive_buffer_bytes: ByteSize,
    /// Certificate, key and optional client CA; required with `mode = "tls"`, only then.
    pub tls: Option<SyslogTlsConfig>,
    /// How the shards parse each message: `auto` (RFC 5424 or 3164, default), `rfc5424`,
    /// `rfc3164`, or `none` (raw frames; add your own `parse`). Lines that do not parse go
    /// to `ID.dropped`.
    #[serde(default)]
    pub format: SyslogFormat,
}

/// The `format` option of the syslog source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    #[default]
    Auto,
    Rfc5424,
    Rfc3164,
    None,
}

impl SyslogFormat {
    /// The `mode` of the syslog parser, or `None` for raw frames.
    pub fn parser_mode(self) -> Option<&'static str> {
        match self {
            SyslogFormat::Auto => Some("auto"),
            SyslogFormat::Rfc5424 => Some("rfc5424"),
            SyslogFormat::Rfc3164 => Some("rfc3164"),
            SyslogFormat::None => None,
        }
    }
}

fn default_max_connections() -> usize {
    1024
}
fn default_max_frame() -> ByteSize {
    ByteSize(64 * 1024)
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_frame_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_read_pacing() -> HumanDuration {
    HumanDuration(Duration::from_millis(1))
}
fn default_receive_buffer() -> ByteSize {
    ByteSize(8 << 20)
}

/// Bytes at which a batch is handed on even if it has fewer than `batch_size` events.
const BATCH_BYTES: usize = 512 * 1024;

impl SyslogSourceConfig {
    /// Checks the options; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.address.parse::<SocketAddr>().map_err(|_| {
            (
                "address",
                format!(
                    "`{}` is not an IP address and port, like \"0.0.0.0:5514\" or \"[::]:5514\"",
                    self.address
                ),
            )
        })?;
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return Err(("max_connections", "must be between 1 and 1000000".into()));
        }
        if self.max_frame_bytes.0 < 16 || self.max_frame_bytes.0 > 64 << 20 {
            return Err((
                "max_frame_bytes",
                "must be between 16 bytes and 64MiB".into(),
            ));
        }
        if self.idle_timeout.0 < Duration::from_millis(1) {
            return Err(("idle_timeout", "must be at least 1ms".into()));
        }
        if self.frame_timeout.0 < Duration::from_millis(1) {
            return Err(("frame_timeout", "must be at least 1ms".into()));
        }
        let pacing = self.read_pacing.0;
        if !pacing.is_zero()
            && (pacing < Duration::from_micros(100) || pacing > Duration::from_millis(100))
        {
            return Err((
                "read_pacing",
                "must be between 100us and 100ms (or \"0s\": off)".into(),
            ));
        }
        if self.rate_limit == Some(0) {
            return Err((
                "rate_limit",
                "must be at least 1 event per second (leave it out for no limit)".into(),
            ));
        }
        if self.receive_buffer_bytes.0 > 1 << 30 {
            return Err(("receive_buffer_bytes", "must be at most 1GiB".into()));
        }
        match (&self.tls, self.mode) {
            (None, SyslogMode::Tls) => Err((
                "tls",
                "is required with mode = \"tls\": tls = { cert_file = \"...\", key_file = \"...\" }"
                    .into(),
            )),
            (Some(_), SyslogMode::Udp | SyslogMode::Tcp) => {
                Err(("tls", "is only allowed with mode = \"tls\"".into()))
            }
            (Some(t), SyslogMode::Tls) => {
                for (key, path) in [
                    ("tls.cert_file", Some(&t.cert_file)),
                    ("tls.key_file", Some(&t.key_file)),
                    ("tls.ca_file", t.ca_file.as_ref()),
                ] {
                    if let Some(p) = path {
                        if !p.is_file() {
                            return Err((key, format!("`{}` is not a readable file", p.display())));
                        }
                    }
                }
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }

    /// Binds the socket (so a taken port is an error now) and returns the source.
    pub fn build(&self, ctx: &BuildCtx, id: &str) -> Result<SourceRuntime, String> {
        Ok(self.bind(ctx, id)?.into_runtime())
    }

    /// Like [`SyslogSourceConfig::build`], keeping the bound address (port 0 in tests).
    pub fn bind(&self, ctx: &BuildCtx, id: &str) -> Result<BoundSyslog, String> {
        self.validate()
            .map_err(|(k, m)| format!("syslog source `{id}`: {k}: {m}"))?;
        let addr: SocketAddr = self.address.parse().map_err(|e| format!("{e}"))?;
        let settings = Settings {
            max_connections: self.max_connections,
            max_frame: self.max_frame_bytes.0 as usize,
            idle_timeout: self.idle_timeout.0,
            frame_timeout: self.frame_timeout.0,
            read_pacing: (!self.read_pacing.0.is_zero()).then_some(self.read_pacing.0),
            rate_limit: self.rate_limit,
            batch_size: ctx.batch_size.max(1),
        };
        let metrics = SyslogMetrics::register(ctx, id, self.mode);
        let published = peers::Published::default();
        {
            let published = published.clone();
            let id = id.to_string();
            ctx.registry.collector(Box::new(move |out: &mut String| {
                peers::render(out, &id, &published)
            }));
        }
        let (local, run): (SocketAddr, Box<dyn FnOnce(ConnectorOutput) + Send>) = match self.mode {
            SyslogMode::Udp => {
                let sock = udp::bind(addr, self.receive_buffer_bytes.0 as usize, &metrics)
                    .map_err(|e| {
                        format!("syslog source `{id}`: cannot listen on udp {addr}: {e}")
                    })?;
                let local = sock.local_addr().map_err(|e| e.to_string())?;
                (
                    local,
                    Box::new(move |out| udp::run(out, sock, settings, metrics, published)),
                )
            }
            SyslogMode::Tcp | SyslogMode::Tls => {
                let acceptor = match &self.tls {
                    Some(t) if self.mode == SyslogMode::Tls => Some(
                        tls::acceptor(t).map_err(|e| format!("syslog source `{id}`: tls: {e}"))?,
                    ),
                    _ => None,
                };
                let listener = tcp::bind(addr).map_err(|e| {
                    format!("syslog source `{id}`: cannot listen on tcp {addr}: {e}")
                })?;
                let local = listener.local_addr().map_err(|e| e.to_string())?;
                (
                    local,
                    Box::new(move |out| {
                        tcp::run(out, listener, acceptor, settings, metrics, published)
                    }),
                )
            }
        };
        Ok(BoundSyslog { local, run })
    }
}

/// A syslog source whose socket is bound.
pub struct BoundSyslog {
    local: SocketAddr,
    run: Box<dyn FnOnce(ConnectorOutput) + Send>,
}

impl BoundSyslog {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn into_runtime(self) -> SourceRuntime {
        SourceRuntime::thread(self.run)
    }
}

/// What the connector thread needs from the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub max_connections: usize,
    pub max_frame: usize,
    pub idle_timeout: Duration,
    pub frame_timeout: Duration,
    pub read_pacing: Option<Duration>,
    pub rate_limit: Option<u64>,
    pub batch_size: usize,
}

impl Settings {
    /// Entries of the per-peer table: every connected IP plus room for the recent others.
    pub fn peer_capacity(&self) -> usize {
        self.max_connections + 4096
    }
}

/// The series of one syslog source besides the standard component counters.
#[derive(Clone)]
pub(crate) struct SyslogMetrics {
    pub open: Arc<AtomicI64>,
    pub accepted: Arc<AtomicU64>,
    pub rejected: Arc<AtomicU64>,
    pub idle_closed: Arc<AtomicU64>,
    pub slow_closed: Arc<AtomicU64>,
    pub tls_failures: Arc<AtomicU64>,
    pub rate_limit_pauses: Arc<AtomicU64>,
    /// Reads done on a pace tick (`read_pacing`) that found data.
    pub paced_reads: Arc<AtomicU64>,
    pub kernel_drops: Arc<AtomicI64>,
    pub receive_buffer: Arc<AtomicI64>,
}

impl SyslogMetrics {
    fn register(ctx: &BuildCtx, id: &str, mode: SyslogMode) -> SyslogMetrics {
        let r = &ctx.registry;
        let l = [("component", id)];
        let detached = || Arc::new(AtomicU64::new(0));
        if mode == SyslogMode::Udp {
            return SyslogMetrics {
                open: Arc::new(AtomicI64::new(0)),
                accepted: detached(),
                rejected: detached(),
                idle_closed: detached(),
                slow_closed: detached(),
                tls_failures: detached(),
                rate_limit_pauses: detached(),
                paced_reads: detached(),
                kernel_drops: r.gauge(
                    "sluice_syslog_udp_kernel_drops",
                    "Datagrams the kernel dropped because the socket's receive buffer was full.",
                    &l,
                ),
                receive_buffer: r.gauge(
                    "sluice_syslog_udp_receive_buffer_bytes",
                    "The receive buffer the kernel gave the UDP socket (SO_RCVBUF as it reports it).",
                    &l,
                ),
            };
        }
        SyslogMetrics {
            open: r.gauge(
                "sluice_syslog_connections_open",
                "TCP/TLS connections open now.",
                &l,
            ),
            accepted: r.counter(
                "sluice_syslog_connections_accepted_total",
                "TCP/TLS connections accepted and served.",
                &l,
            ),
            rejected: r.counter(
                "sluice_syslog_connections_rejected_total",
                "Connections closed at once because max_connections were open.",
                &l,
            ),
            idle_closed: r.counter(
                "sluice_syslog_connections_idle_closed_total",
                "Connections closed after idle_timeout without data.",
                &l,
            ),
            slow_closed: r.counter(
                "sluice_syslog_connections_slow_closed_total",
                "Connections closed because a message did not arrive whole within frame_timeout (slowloris).",
                &l,
            ),
            tls_failures: if mode == SyslogMode::Tls {
                r.counter(
                    "sluice_syslog_tls_handshake_failures_total",
                    "TLS handshakes that failed or timed out (bad or missing client certificates included).",
                    &l,
                )
            } else {
                detached()
            },
            rate_limit_pauses: r.counter(
                "sluice_syslog_rate_limit_pauses_total",
                "Times a connection stopped being read because its peer was over rate_limit.",
                &l,
            ),
            paced_reads: r.counter(
                "sluice_syslog_paced_reads_total",
                "Reads of streaming connections done on a read_pacing tick (that found data).",
                &l,
            ),
            kernel_drops: Arc::new(AtomicI64::new(0)),
            receive_buffer: Arc::new(AtomicI64::new(0)),
        }
    }
}

/// The drop counters of the source (`sluice_events_dropped_total{reason}`), created when the
/// thread starts so that they show as 0.
pub(crate) struct Drops {
    pub oversized: Arc<AtomicU64>,
    pub truncated: Arc<AtomicU64>,
    pub truncated_frame: Arc<AtomicU64>,
    pub invalid_octet_count: Arc<AtomicU64>,
    pub rate_limited: Arc<AtomicU64>,
}

impl Drops {
    pub fn new(out: &ConnectorOutput, udp: bool) -> Drops {
        let m = &out.handle.metrics;
        let tcp_only = |r: &str| {
            if udp {
                Arc::new(AtomicU64::new(0))
            } else {
                m.dropped(r)
            }
        };
        Drops {
            oversized: m.dropped("oversized"),
            truncated: tcp_only("truncated"),
            truncated_frame: tcp_only("truncated_frame"),
            invalid_octet_count: tcp_only("invalid_octet_count"),
            rate_limited: if udp {
                m.dropped("rate_limited")
            } else {
                Arc::new(AtomicU64::new(0))
            },
        }
    }

    pub fn count(&self, why: framing::FrameDrop) {
        let c = match why {
            framing::FrameDrop::Oversized => &self.oversized,
            framing::FrameDrop::InvalidOctetCount => &self.invalid_octet_count,
            framing::FrameDrop::TruncatedFrame => &self.truncated_frame,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Frames copied into one buffer until the batch is handed on. Buffers come from a small
/// pool and go back to it when the shards are done with the batch, so a busy source reuses
/// warm memory instead of faulting in fresh pages for every batch.
pub(crate) struct FrameBatch {
    buf: Vec<u8>,
    events: Vec<Event>,
    max_events: usize,
    pool: BufferPool,
}

/// Spare batch buffers a source keeps (about 10 MiB at most).
const POOLED_BUFFERS: usize = 16;
/// Capacity of a batch buffer: a full batch plus one more frame of a typical size, so it
/// rarely grows (pages are only resident once written).
const BUFFER_BYTES: usize = BATCH_BYTES + 64 * 1024;

impl FrameBatch {
    pub fn new(max_events: usize) -> FrameBatch {
        let pool = BufferPool::new(POOLED_BUFFERS, 2 * BATCH_BYTES);
        FrameBatch {
            buf: pool.take(BUFFER_BYTES),
            events: Vec::with_capacity(max_events.min(64)),
            max_events,
            pool,
        }
    }

    pub fn push(&mut self, frame: &[u8], truncated: bool) {
        let start = self.buf.len();
        self.buf.extend_from_slice(frame);
        self.push_span(start, frame.len(), truncated);
    }

    /// Bytes in the buffer so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes that events pushed with [`FrameBatch::push_span`] point into.
    pub fn append(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Adds an event over `start..start + len` of the buffer, whose bytes the caller has
    /// appended or is about to append (before the batch is handed on).
    pub fn push_span(&mut self, start: usize, len: usize, truncated: bool) {
        self.events.push(Event {
            start: start as u32,
            len: len as u32,
            id: self.events.len() as u32,
            fields_start: 0,
            fields_end: 0,
            form: EventForm::Raw,
            flags: if truncated { Event::TRUNCATED } else { 0 },
        });
    }

    pub fn is_full(&self) -> bool {
        self.is_full_with(0)
    }

    /// Full once `pending` more bytes are appended.
    pub fn is_full_with(&self, pending: usize) -> bool {
        self.events.len() >= self.max_events || self.buf.len() + pending >= BATCH_BYTES
    }

    /// Hands the batch to the shards (blocking while their rings are full).
    pub fn flush(&mut self, out: &mut ConnectorOutput) -> Result<(), Stopped> {
        if self.events.is_empty() {
            return Ok(());
        }
        let n = self.events.len();
        let buf = std::mem::replace(&mut self.buf, self.pool.take(BUFFER_BYTES));
        let buf = self.pool.freeze(buf);
        let next = (n + n / 4 + 8).min(self.max_events);
        let events = std::mem::replace(&mut self.events, Vec::with_capacity(next));
        out.send(Batch::from_events(buf, events, out.handle.index))
    }
}
