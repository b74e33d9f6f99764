//! Where generated events go: standard output, a file (with rotation), TCP, UDP, TLS or
//! HTTP.
//!
//! The pacing loop renders a [`Burst`] (events back to back, with their end offsets) and
//! hands it to a [`Target`], which frames and sends it:
//!
//! - `stdout` / `file`: one event per line; `file` appends, and with `rotate_every` renames
//!   (`PATH.1`, `PATH.2`, ...) or copies and truncates the file every N lines.
//! - `tcp` / `tls`: `connections` streams, events dealt round robin (event `seq % N`), each
//!   framed with a newline or RFC 6587 octet counting (`LEN SP EVENT`). One write per
//!   connection per burst. A failed connection counts the burst's events as errors and is
//!   re-established (at most every 200 ms).
//! - `udp`: one datagram per event.
//! - `http`: `POST` bodies of `batch` events (NDJSON, `_bulk` action/document pairs, or one
//!   JSON object for `/log`) to `concurrency` worker threads, each with a keep-alive
//!   connection ([`crate::http::Client`]). Events that are not JSON go as
//!   `{"message":"LINE"}`. A partly filled body is sent after `linger`. Events count as sent
//!   on a 2xx answer and as errors otherwise. With `retry`, a body that gets no answer
//!   (connection refused or reset) or a 408, 429 or 5xx answer is sent again (backoff from
//!   10 ms doubling to 500 ms) until it is answered 2xx or the run is stopped; with
//!   `acked_ids`, each 2xx body appends a line `FIRST COUNT` (its events' seqs are
//!   `FIRST..FIRST+COUNT`) to that file, written as the answer arrives.
//!
//! Every queue is bounded: the HTTP body queue holds `concurrency` bodies, and a full queue
//! stalls the pacing loop (the sender falls behind its schedule, which the report shows).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Totals shared with the progress line and the summary.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub errors: AtomicU64,
    pub bytes: AtomicU64,
    /// HTTP requests sent again (`retry`).
    pub retries: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Counters {
    fn ok(&self, events: u64, bytes: u64) {
        self.sent.fetch_add(events, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn fail(&self, events: u64, err: impl std::fmt::Display) {
        self.errors.fetch_add(events, Ordering::Relaxed);
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(err.to_string());
        }
    }
}

/// Rendered events: event `i` is `data[ends[i-1]..ends[i]]` (from 0 for the first).
#[derive(Default)]
pub struct Burst {
    pub data: Vec<u8>,
    pub ends: Vec<usize>,
    /// Sequence number of the first event.
    pub first_seq: u64,
}

impl Burst {
    pub fn clear(&mut self, first_seq: u64) {
        self.data.clear();
        self.ends.clear();
        self.first_seq = first_seq;
    }
    pub fn events(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&e| {
            let s = &self.data[start..e];
            start = e;
            s
        })
    }
}

pub trait Target {
    /// Sends (or queues) one burst; failures are counted, not returned.
    fn send(&mut self, burst: &Burst, counters: &Counters);
    /// Called when the pacing loop is about to sleep (send what lingers).
    fn idle(&mut self, _counters: &Counters) {}
    /// Nothing more can be sent (standard output closed): the sender stops.
    fn broken(&self) -> bool {
        false
    }
    /// Sends what is left and waits for it.
    fn finish(&mut self, counters: &Counters);
}

// ---------------------------------------------------------------- stdout and files

pub struct StdoutTarget {
    buf: Vec<u8>,
    broken: bool,
}

impl StdoutTarget {
    pub fn new() -> StdoutTarget {
        StdoutTarget {
            buf: Vec::with_capacity(1 << 20),
            broken: false,
        }
    }
}

impl Target for StdoutTarget {
    fn send(&mut self, burst: &Burst, c: &Counters) {
        if self.broken {
            c.fail(burst.ends.len() as u64, "standard output is closed");
            return;
        }
        self.buf.clear();
        for ev in burst.events() {
            self.buf.extend_from_slice(ev);
            self.buf.push(b'\n');
        }
        match std::io::stdout().lock().write_all(&self.buf) {
            Ok(()) => c.ok(burst.ends.len() as u64, self.buf.len() as u64),
            Err(e) => {
                self.broken = true;
                // A closed pipe (`| head`) is the reader's choice, not an error.
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    c.fail(burst.ends.len() as u64, e);
                }
            }
        }
    }
    fn broken(&self) -> bool {
        self.broken
    }
    fn finish(&mut self, _c: &Counters) {
        let _ = std::io::stdout().flush();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateMode {
    Rename,
    CopyTruncate,
}

pub struct FileTarget {
    path: std::path::PathBuf,
    file: File,
    rotate_every: Option<u64>,
    mode: RotateMode,
    in_file: u64,
    next_suffix: u64,
    buf: Vec<u8>,
}

impl FileTarget {
    pub fn open(
        path: &std::path::Path,
        rotate_every: Option<u64>,
        mode: RotateMode,
    ) -> anyhow::Result<FileTarget> {
        let file = open_append(path)?;
        Ok(FileTarget {
            path: path.to_path_buf(),
            file,
            rotate_every,
            mode,
            in_file: 0,
            next_suffix: 1,
            buf: Vec::with_capacity(1 << 20),
        })
    }

    fn rotated_name(&mut self) -> std::path::PathBuf {
        loop {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{}", self.next_suffix));
            self.next_suffix += 1;
            let p = std::path::PathBuf::from(p);
            if !p.exists() || self.next_suffix > 1_000_000 {
                return p;
            }
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let to = self.rotated_name();
        match self.mode {
            RotateMode::Rename => {
                std::fs::rename(&self.path, &to)?;
                self.file = open_append(&self.path)?;
            }
            RotateMode::CopyTruncate => {
                std::fs::copy(&self.path, &to)?;
                // O_APPEND: the next write lands at the new end (offset 0).
                self.file.set_len(0)?;
            }
        }
        Ok(())
    }

    fn write_buf(&mut self, events: u64, c: &Counters) {
        if self.buf.is_empty() {
            return;
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => c.ok(events, self.buf.len() as u64),
            Err(e) => c.fail(events, format!("{}: {e}", self.path.display())),
        }
        self.buf.clear();
    }
}

fn open_append(path: &std::path::Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Target for FileTarget {
    fn send(&mut self, burst: &Burst, c: &Counters) {
        let mut pending = 0u64;
        for ev in burst.events() {
            self.buf.extend_from_slice(ev);
            self.buf.push(b'\n');
            pending += 1;
            self.in_file += 1;
            if self.rotate_every.is_some_and(|n| self.in_file >= n) {
                self.write_buf(pending, c);
                pending = 0;
                self.in_file = 0;
                if let Err(e) = self.rotate() {
                    c.fail(0, format!("rotating {}: {e}", self.path.display()));
                }
            }
        }
        self.write_buf(pending, c);
    }
    fn finish(&mut self, _c: &Counters) {
        let _ = self.file.flush();
    }
}

// ---------------------------------------------------------------- tcp and tls

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Newline,
    Octet,
}

/// TLS client settings.
pub struct TlsSettings {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(b),
            Stream::Tls(s) => {
                s.write_all(b)?;
                s.flush()
            }
        }
    }
    fn close(&mut self) {
        match self {
            Stream::Tcp(s) => {
                let _ = s.flush();
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            Stream::Tls(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                let _ = s.sock.shutdown(std::net::Shutdown::Write);
            }
        }
    }
}

pub struct StreamTarget {
    addr: SocketAddr,
    tls: Option<TlsSettings>,
    framing: Framing,
    conns: Vec<Option<Stream>>,
    bufs: Vec<Vec<u8>>,
    counts: Vec<u64>,
    last_attempt: Vec<Instant>,
}

impl StreamTarget {
    /// Connects `connections` streams now (failing fast when nothing listens).
    pub fn connect(
        addr: SocketAddr,
        connections: usize,
        framing: Framing,
        tls: Option<TlsSettings>,
    ) -> anyhow::Result<StreamTarget> {
        let mut t = StreamTarget {
            addr,
            tls,
            framing,
            conns: Vec::new(),
            bufs: vec![Vec::with_capacity(256 * 1024); connections],
            counts: vec![0; connections],
            last_attempt: vec![Instant::now(); connections],
        };
        for _ in 0..connections {
            let s = t
                .open()
                .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}"))?;
            t.conns.push(Some(s));
        }
        Ok(t)
    }

    fn open(&self) -> std::io::Result<Stream> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        match &self.tls {
            None => Ok(Stream::Tcp(s)),
            Some(t) => {
                let conn = rustls::ClientConnection::new(t.config.clone(), t.server_name.clone())
                    .map_err(std::io::Error::other)?;
                let mut st = rustls::StreamOwned::new(conn, s);
                // Complete the handshake now so a bad certificate fails here.
                while st.conn.is_handshaking() {
                    st.conn.complete_io(&mut st.sock)?;
                }
                Ok(Stream::Tls(Box::new(st)))
            }
        }
    }
}

impl Target for StreamTarget {
    fn send(&mut self, burst: &Burst, c: &Counters) {
        let n = self.conns.len();
        for b in &mut self.bufs {
            b.clear();
        }
        self.counts.iter_mut().for_each(|x| *x = 0);
        let mut len = Vec::with_capacity(12);
        for (seq, ev) in (burst.first_seq..).zip(burst.events()) {
            let i = (seq % n as u64) as usize;
            let b = &mut self.bufs[i];
            match self.framing {
                Framing::Newline => {
                    b.extend_from_slice(ev);
                    b.push(b'\n');
                }
                Framing::Octet => {
                    len.clear();
                    crate::gen::num(&mut len, ev.len() as u64);
                    b.extend_from_slice(&len);
                    b.push(b' ');
                    b.extend_from_slice(ev);
                }
            }
            self.counts[i] += 1;
        }
        for i in 0..n {
            if self.counts[i] == 0 {
                continue;
            }
            if self.conns[i].is_none()
                && self.last_attempt[i].elapsed() >= Duration::from_millis(200)
            {
                self.last_attempt[i] = Instant::now();
                match self.open() {
                    Ok(s) => self.conns[i] = Some(s),
                    Err(e) => c.fail(0, format!("reconnecting to {}: {e}", self.addr)),
                }
            }
            let Some(s) = self.conns[i].as_mut() else {
                c.fail(self.counts[i], format!("{}: not connected", self.addr));
                continue;
            };
            match s.write_all(&self.bufs[i]) {
                Ok(()) => c.ok(self.counts[i], self.bufs[i].len() as u64),
                Err(e) => {
                    c.fail(self.counts[i], format!("{}: {e}", self.addr));
                    self.conns[i] = None;
                    self.last_attempt[i] = Instant::now();
                }
            }
        }
    }
    fn finish(&mut self, _c: &Counters) {
        for s in self.conns.iter_mut().flatten() {
            s.close();
        }
        self.conns.clear();
    }
}

// ---------------------------------------------------------------- udp

pub struct UdpTarget {
    sock: UdpSocket,
    addr: SocketAddr,
}

impl UdpTarget {
    pub fn new(addr: SocketAddr) -> anyhow::Result<UdpTarget> {
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let sock = UdpSocket::bind(bind)?;
        sock.connect(addr)?;
        Ok(UdpTarget { sock, addr })
    }
}

impl Target for UdpTarget {
    fn send(&mut self, burst: &Burst, c: &Counters) {
        let (mut ok, mut bytes, mut bad) = (0u64, 0u64, 0u64);
        let mut last = None;
        for ev in burst.events() {
            match self.sock.send(ev) {
                Ok(n) => {
                    ok += 1;
                    bytes += n as u64;
                }
                Err(e) => {
                    bad += 1;
                    last = Some(e);
                }
            }
        }
        c.ok(ok, bytes);
        if let Some(e) = last {
            c.fail(bad, format!("{}: {e}", self.addr));
        }
    }
    fn finish(&mut self, _c: &Counters) {}
}

// ---------------------------------------------------------------- http

/// HTTP target settings.
pub struct HttpSettings {
    pub addr: SocketAddr,
    pub host: String,
    pub endpoint: String,
    pub batch: usize,
    pub concurrency: usize,
    pub gzip: bool,
    pub api_key: Option<String>,
    pub linger: Duration,
    pub json_events: bool,
    /// Send a failed body again until it is answered 2xx or `stop` is set.
    pub retry: bool,
    /// Appends `FIRST COUNT` per body answered 2xx.
    pub acked_ids: Option<File>,
    pub stop: Arc<AtomicBool>,
}

struct Body {
    data: Vec<u8>,
    events: u64,
    first_seq: u64,
}

/// Whether a body answered with `status` (or not answered) is worth sending again.
fn retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s == 408 || s == 429 || (500..600).contains(&s),
    }
}

pub struct HttpTarget {
    tx: Option<mpsc::SyncSender<Body>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    body: Vec<u8>,
    events: u64,
    first_seq: u64,
    first_at: Instant,
    batch: usize,
    linger: Duration,
    mode: BodyMode,
    json_events: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyMode {
    Ndjson,
    Bulk,
    Single,
}

impl HttpTarget {
    pub fn start(s: HttpSettings, counters: Arc<Counters>) -> anyhow::Result<HttpTarget> {
        // Fail fast when nothing listens (with `retry`, wait for it instead).
        if !s.retry {
            TcpStream::connect_timeout(&s.addr, Duration::from_secs(5))
                .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", s.addr))?;
        }
        let acked = s.acked_ids.map(|f| Arc::new(Mutex::new(f)));
        let mode = if s.endpoint.ends_with("/_bulk") {
            BodyMode::Bulk
        } else if s.endpoint == "/log" {
            BodyMode::Single
        } else {
            BodyMode::Ndjson
        };
        let content_type = match mode {
            BodyMode::Single => "application/json",
            _ => "application/x-ndjson",
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        if s.gzip {
            headers.push(("content-encoding".into(), "gzip".into()));
        }
        if let Some(k) = &s.api_key {
            headers.push(("x-api-key".into(), k.clone()));
        }
        let (tx, rx) = mpsc::sync_channel::<Body>(s.concurrency);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for i in 0..s.concurrency {
            let rx = rx.clone();
            let counters = counters.clone();
            let headers = headers.clone();
            let (addr, host, endpoint, gzip) = (s.addr, s.host.clone(), s.endpoint.clone(), s.gzip);
            let (retry, stop, acked) = (s.retry, s.stop.clone(), acked.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || {
                        let mut client = crate::http::Client::new(addr, host);
                        let mut zipped = Vec::new();
                        loop {
                            let body = {
                                let Ok(rx) = rx.lock() else { return };
                                match rx.recv() {
                                    Ok(b) => b,
                                    Err(_) => return,
                                }
                            };
                            let payload: &[u8] = if gzip {
                                zipped.clear();
                                let mut enc = flate2::write::GzEncoder::new(
                                    &mut zipped,
                                    flate2::Compression::fast(),
                                );
                                let _ = enc.write_all(&body.data);
                                let _ = enc.finish();
                                &zipped
                            } else {
                                &body.data
                            };
                            let mut backoff = Duration::from_millis(10);
                            loop {
                                let result =
                                    client.post(&endpoint, content_type, &headers, payload);
                                let status = result.as_ref().ok().copied();
                                if status.is_some_and(|st| (200..300).contains(&st)) {
                                    counters.ok(body.events, payload.len() as u64);
                                    if let Some(f) = &acked {
                                        if let Ok(mut f) = f.lock() {
                                            let line =
                                                format!("{} {}\n", body.first_seq, body.events);
                                            if let Err(e) = f.write_all(line.as_bytes()) {
                                                counters.fail(0, format!("--acked-ids: {e}"));
                                            }
                                        }
                                    }
                                    break;
                                }
                                if retry && retryable(status) && !stop.load(Ordering::Relaxed) {
                                    counters.retries.fetch_add(1, Ordering::Relaxed);
                                    std::thread::sleep(backoff);
                                    backoff = (backoff * 2).min(Duration::from_millis(500));
                                    continue;
                                }
                                match result {
                                    Ok(st) => counters.fail(body.events, format!("HTTP {st}")),
                                    Err(e) => counters.fail(body.events, format!("{addr}: {e}")),
                                }
                                break;
                            }
                        }
                    })?,
            );
        }
        Ok(HttpTarget {
            tx: Some(tx),
            workers,
            body: Vec::with_capacity(s.batch * 300),
            events: 0,
            first_seq: 0,
            first_at: Instant::now(),
            batch: if mode == BodyMode::Single { 1 } else { s.batch },
            linger: s.linger,
            mode,
            json_events: s.json_events,
        })
    }

    fn flush_body(&mut self, c: &Counters) {
        if self.events == 0 {
            return;
        }
        let body = Body {
            data: std::mem::replace(&mut self.body, Vec::with_capacity(self.batch * 300)),
            events: self.events,
            first_seq: self.first_seq,
        };
        self.events = 0;
        if let Some(tx) = &self.tx {
            if let Err(e) = tx.send(body) {
                c.fail(e.0.events, "http workers stopped");
            }
        }
    }
}

/// Appends `s` as the contents of a JSON string (quotes not included).
pub fn json_escape(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
}

impl Target for HttpTarget {
    fn send(&mut self, burst: &Burst, c: &Counters) {
        for (i, ev) in burst.events().enumerate() {
            if self.events == 0 {
                self.first_at = Instant::now();
                self.first_seq = burst.first_seq + i as u64;
            }
            if self.mode == BodyMode::Bulk {
                self.body.extend_from_slice(b"{\"index\":{}}\n");
            }
            if self.json_events {
                self.body.extend_from_slice(ev);
            } else {
                self.body.extend_from_slice(b"{\"message\":\"");
                json_escape(ev, &mut self.body);
                self.body.extend_from_slice(b"\"}");
            }
            if self.mode != BodyMode::Single {
                self.body.push(b'\n');
            }
            self.events += 1;
            if self.events as usize >= self.batch {
                self.flush_body(c);
            }
        }
        if self.events > 0 && self.first_at.elapsed() >= self.linger {
            self.flush_body(c);
        }
    }
    fn idle(&mut self, c: &Counters) {
        if self.events > 0 && self.first_at.elapsed() >= self.linger {
            self.flush_body(c);
        }
    }
    fn finish(&mut self, c: &Counters) {
        self.flush_body(c);
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Resolves `host:port` to one address, IPv4 first (`localhost` often lists `::1` first
/// while test servers listen on 127.0.0.1).
pub fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    let all: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("cannot resolve `{addr}`: {e}"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| anyhow::anyhow!("`{addr}` resolves to no address"))
}

/// TLS client configuration: trust `ca` (PEM certificates), or anything with `insecure`.
pub fn tls_config(
    ca: Option<&std::path::Path>,
    insecure: bool,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        let ca = ca.ok_or_else(|| {
            anyhow::anyhow!("the tls target needs --tls-ca FILE (PEM) or --tls-insecure")
        })?;
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| anyhow::anyhow!("--tls-ca {}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| anyhow::anyhow!("--tls-ca {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| anyhow::anyhow!("--tls-ca {}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            anyhow::bail!("--tls-ca {}: no certificate in the file", ca.display());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `--tls-insecure`: accepts any server certificate (signatures are still checked).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
