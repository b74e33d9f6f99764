//! `--listen ADDR`: the receiving end of the latency mode.
//!
//! A small HTTP/1.1 server (std threads, one per connection, at most [`MAX_CONNECTIONS`])
//! takes `POST` bodies (NDJSON, `_bulk` pairs or plain lines, optionally
//! `Content-Encoding: gzip`) from a Sluice `http` sink, answers `200`, finds each event's
//! stamp (`seq` and `sent_ns`, see [`crate::gen`]) and records `now - sent_ns` in an HDR
//! histogram (microseconds, 3 significant digits). Sequence numbers go into a bitmap so the
//! report can name missing and duplicate events. With `--warmup`, events stamped in the
//! warm-up are marked in the bitmap but left out of the histogram.
//!
//! The clock is read once per request body, not per event: every event of a body arrived at
//! the same moment. Statistics are merged under one lock per body.

use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Connections served at once; more are answered `503` and closed.
pub const MAX_CONNECTIONS: usize = 256;
/// Largest request head.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body (after decompression).
const MAX_BODY: u64 = 256 * 1024 * 1024;
/// Highest sequence number tracked for loss and duplicates (a 256 MiB bitmap at most).
const MAX_TRACKED_SEQ: u64 = 1 << 31;

/// How latencies are corrected for coordinated omission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    /// Stamps carry each event's *scheduled* send time (`start + k / rate`), so a sender
    /// that falls behind shows up as latency; values are recorded as they are.
    Intended,
    /// Stamps carry the actual send time; the receiver back-fills the samples a stall hid
    /// with `Histogram::record_correct(value, 1 / rate)`.
    RecordCorrect,
    /// Actual send time, recorded as is.
    None,
}

impl Correction {
    pub fn parse(s: &str) -> Result<Correction, String> {
        match s {
            "intended" => Ok(Correction::Intended),
            "record-correct" => Ok(Correction::RecordCorrect),
            "none" => Ok(Correction::None),
            _ => Err(format!(
                "unknown latency correction `{s}` (intended, record-correct, none)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Correction::Intended => "intended",
            Correction::RecordCorrect => "record-correct",
            Correction::None => "none",
        }
    }
}

/// A stamp found in a received event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    pub sent_ns: u64,
}

/// Finds `seq` and `sent_ns` in one event, however it was re-encoded on the way (`"seq":N`,
/// `seq=N`, `"seq":"N"`, `seq=\"N\"` inside an escaped string, `?seq=N&sent_ns=T`).
pub fn scan_stamp(ev: &[u8]) -> Option<Found> {
    Some(Found {
        seq: scan_key(ev, b"seq")?,
        sent_ns: scan_key(ev, b"sent_ns")?,
    })
}

fn scan_key(ev: &[u8], key: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&ev[from..], key) {
        let at = from + i;
        from = at + key.len();
        let before_ok = at == 0 || !is_word(ev[at - 1]);
        if !before_ok || ev.get(from).is_some_and(|&c| is_word(c)) {
            continue;
        }
        // Skip up to six separator characters: quotes, backslashes, `:` or `=`, spaces.
        let mut j = from;
        let mut skipped = 0;
        while j < ev.len() && skipped < 6 && matches!(ev[j], b'"' | b'\\' | b':' | b'=' | b' ') {
            j += 1;
            skipped += 1;
        }
        if skipped == 0 {
            continue;
        }
        let mut v: u64 = 0;
        let mut digits = 0;
        while j < ev.len() && ev[j].is_ascii_digit() && digits < 20 {
            v = v.checked_mul(10)?.checked_add(u64::from(ev[j] - b'0'))?;
            j += 1;
            digits += 1;
        }
        if digits > 0 {
            return Some(v);
        }
    }
    None
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// What the receiver saw.
pub struct Stats {
    pub hist: Histogram<u64>,
    pub received: u64,
    pub unstamped: u64,
    pub duplicates: u64,
    /// Events stamped before [`Stats::warmup_until_ns`]: seen, not in the histogram.
    pub warmup_excluded: u64,
    /// Events whose stamp is earlier than this (Unix ns) are warm-up (0: none).
    warmup_until_ns: u64,
    pub bodies: u64,
    pub bad_requests: u64,
    seen: Vec<u64>,
    pub untracked: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            received: 0,
            unstamped: 0,
            duplicates: 0,
            warmup_excluded: 0,
            warmup_until_ns: 0,
            bodies: 0,
            bad_requests: 0,
            seen: Vec::new(),
            untracked: 0,
            first_ns: 0,
            last_ns: 0,
        }
    }

    /// Marks `seq` seen; false if it was seen before.
    fn mark(&mut self, seq: u64) -> bool {
        if seq >= MAX_TRACKED_SEQ {
            self.untracked += 1;
            return true;
        }
        let word = (seq / 64) as usize;
        if word >= self.seen.len() {
            let want = (word + 1).next_power_of_two().max(1024);
            self.seen.resize(want, 0);
        }
        let bit = 1u64 << (seq % 64);
        let fresh = self.seen[word] & bit == 0;
        self.seen[word] |= bit;
        fresh
    }

    /// Sequence numbers below `expect` never seen.
    pub fn missing(&self, expect: u64) -> u64 {
        let expect = expect.min(MAX_TRACKED_SEQ);
        let full = (expect / 64) as usize;
        let mut have: u64 = self
            .seen
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let rem = expect % 64;
        if rem > 0 {
            if let Some(w) = self.seen.get(full) {
                have += u64::from((w & ((1u64 << rem) - 1)).count_ones());
            }
        }
        expect - have
    }

    /// First few missing sequence numbers (for the report).
    pub fn first_missing(&self, expect: u64, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for seq in 0..expect.min(MAX_TRACKED_SEQ) {
            if out.len() >= n {
                break;
            }
            let w = self.seen.get((seq / 64) as usize).copied().unwrap_or(0);
            if w & (1u64 << (seq % 64)) == 0 {
                out.push(seq);
            }
        }
        out
    }
}

/// The receiver: shared statistics and the listening thread.
pub struct Receiver {
    pub stats: Arc<Mutex<Stats>>,
    pub received: Arc<AtomicU64>,
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
}

/// Per-connection settings.
#[derive(Clone, Copy)]
struct Rec {
    correction: Correction,
    /// Expected interval between events in microseconds (record-correct only).
    interval_us: u64,
}

impl Receiver {
    /// Binds `addr` and starts accepting.
    pub fn start(
        addr: &str,
        correction: Correction,
        rate: Option<f64>,
        warmup: Duration,
    ) -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("--listen {addr}: cannot bind: {e}"))?;
        let local = listener.local_addr()?;
        let mut first = Stats::new();
        if !warmup.is_zero() {
            // Listening alone: the warm-up runs from now. A sender moves it to its start.
            first.warmup_until_ns = now_ns() + warmup.as_nanos() as u64;
        }
        let stats = Arc::new(Mutex::new(first));
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let rec = Rec {
            correction,
            interval_us: rate.map(|r| (1e6 / r) as u64).unwrap_or(0),
        };
        let open = Arc::new(AtomicUsize::new(0));
        {
            let (stats, received, stop) = (stats.clone(), received.clone(), stop.clone());
            std::thread::Builder::new()
                .name("listen-accept".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(mut conn) = conn else { continue };
                        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                            let _ = conn.write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                            );
                            continue;
                        }
                        open.fetch_add(1, Ordering::Relaxed);
                        let (stats, received) = (stats.clone(), received.clone());
                        let open2 = open.clone();
                        let spawned = std::thread::Builder::new()
                            .name("listen-conn".into())
                            .spawn(move || {
                                serve(conn, &stats, &received, rec);
                                open2.fetch_sub(1, Ordering::Relaxed);
                            });
                        if spawned.is_err() {
                            // No thread: the connection was dropped with the closure.
                            open.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                })?;
        }
        Ok(Receiver {
            stats,
            received,
            addr: local,
            stop,
        })
    }

    /// Events stamped before `unix_ns` are warm-up (when a warm-up was asked for).
    pub fn set_warmup_until(&self, unix_ns: u64) {
        if let Ok(mut st) = self.stats.lock() {
            if st.warmup_until_ns != 0 {
                st.warmup_until_ns = unix_ns;
            }
        }
    }

    /// Stops accepting (connections in progress finish on their own).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Serves one keep-alive connection until the peer closes it or sends something invalid.
fn serve(conn: TcpStream, stats: &Mutex<Stats>, received: &AtomicU64, rec: Rec) {
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(300)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(256 * 1024, conn);
    let mut body = Vec::new();
    let mut plain = Vec::new();
    // (seq, sent_ns) of each stamped event of the body.
    let mut lat: Vec<(u64, u64)> = Vec::new();
    loop {
        let head = match read_head(&mut reader) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(status) => {
                bad(stats);
                let _ = respond(&mut writer, status, true);
                return;
            }
        };
        if head.expect_continue {
            let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        body.clear();
        let ok = if head.chunked {
            read_chunked(&mut reader, &mut body)
        } else {
            match head.length {
                Some(n) if n > MAX_BODY => Err(413),
                Some(n) => {
                    body.resize(n as usize, 0);
                    reader.read_exact(&mut body).map_err(|_| 400)
                }
                None => Ok(()),
            }
        };
        if let Err(status) = ok {
            bad(stats);
            let _ = respond(&mut writer, status, true);
            return;
        }
        let data: &[u8] = if head.gzip {
            plain.clear();
            let dec = flate2::read::MultiGzDecoder::new(&body[..]);
            if dec.take(MAX_BODY).read_to_end(&mut plain).is_err() {
                bad(stats);
                if respond(&mut writer, 400, head.close).is_err() || head.close {
                    return;
                }
                continue;
            }
            &plain
        } else {
            &body
        };
        if head.post {
            let now = now_ns();
            lat.clear();
            let mut unstamped = 0u64;
            for line in data.split(|&b| b == b'\n') {
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                // `_bulk` action lines carry no stamp and are not events.
                if line.starts_with(b"{\"index\"") || line.starts_with(b"{\"create\"") {
                    continue;
                }
                match scan_stamp(line) {
                    Some(f) => lat.push((f.seq, f.sent_ns)),
                    None => unstamped += 1,
                }
            }
            received.fetch_add(lat.len() as u64, Ordering::Relaxed);
            if let Ok(mut st) = stats.lock() {
                st.bodies += 1;
                st.unstamped += unstamped;
                st.received += lat.len() as u64;
                if st.first_ns == 0 {
                    st.first_ns = now;
                }
                st.last_ns = now;
                for &(seq, sent_ns) in &lat {
                    if !st.mark(seq) {
                        st.duplicates += 1;
                    }
                    if sent_ns < st.warmup_until_ns {
                        st.warmup_excluded += 1;
                        continue;
                    }
                    let v = (now.saturating_sub(sent_ns) / 1000).clamp(1, 3_600_000_000);
                    let _ = match rec.correction {
                        Correction::RecordCorrect if rec.interval_us > 0 => {
                            st.hist.record_correct(v, rec.interval_us)
                        }
                        _ => st.hist.record(v),
                    };
                }
            }
        }
        if respond(&mut writer, if head.post { 200 } else { 405 }, head.close).is_err()
            || head.close
        {
            return;
        }
    }
}

fn bad(stats: &Mutex<Stats>) {
    if let Ok(mut s) = stats.lock() {
        s.bad_requests += 1;
    }
}

struct Head {
    post: bool,
    length: Option<u64>,
    chunked: bool,
    gzip: bool,
    close: bool,
    expect_continue: bool,
}

/// Reads one request head; `Ok(None)` at a clean end of the connection.
fn read_head(r: &mut BufReader<TcpStream>) -> Result<Option<Head>, u16> {
    let mut line = Vec::new();
    let mut head = Head {
        post: false,
        length: None,
        chunked: false,
        gzip: false,
        close: false,
        expect_continue: false,
    };
    let mut total = 0;
    let mut first = true;
    loop {
        line.clear();
        let n = r
            .by_ref()
            .take((MAX_HEAD - total + 1) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|_| 400u16)?;
        if n == 0 {
            return if first && total == 0 {
                Ok(None)
            } else {
                Err(400)
            };
        }
        total += n;
        if total > MAX_HEAD {
            return Err(431);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if first {
            if text.is_empty() {
                continue; // stray CRLF between requests
            }
            first = false;
            let mut parts = text.split(' ');
            head.post = parts.next() == Some("POST");
            if !parts.nth(1).is_some_and(|v| v.starts_with("HTTP/1.")) {
                return Err(400);
            }
            head.close = text.ends_with("HTTP/1.0");
            continue;
        }
        if text.is_empty() {
            return Ok(Some(head));
        }
        let Some((k, v)) = text.split_once(':') else {
            return Err(400);
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => head.length = Some(v.parse().map_err(|_| 400u16)?),
            "transfer-encoding" => head.chunked = v.to_ascii_lowercase().contains("chunked"),
            "content-encoding" => match v.to_ascii_lowercase().as_str() {
                "gzip" | "x-gzip" => head.gzip = true,
                "identity" | "" => {}
                _ => return Err(415),
            },
            "connection" => head.close = v.eq_ignore_ascii_case("close"),
            "expect" => head.expect_continue = v.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
}

fn read_chunked(r: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> Result<(), u16> {
    let mut line = Vec::new();
    loop {
        line.clear();
        r.by_ref()
            .take(1024)
            .read_until(b'\n', &mut line)
            .map_err(|_| 400u16)?;
        let s = String::from_utf8_lossy(&line);
        let size_hex = s.trim().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_hex, 16).map_err(|_| 400u16)?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                let n = r
                    .by_ref()
                    .take(8192)
                    .read_until(b'\n', &mut line)
                    .map_err(|_| 400u16)?;
                if n == 0 || line == b"\r\n" || line == b"\n" {
                    return Ok(());
                }
            }
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err(413);
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        r.read_exact(&mut body[start..]).map_err(|_| 400u16)?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).map_err(|_| 400u16)?;
    }
}

fn respond(w: &mut TcpStream, status: u16, close: bool) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    let body: &str = if status == 200 { "{\"ok\":true}" } else { "" };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "connection: close\r\n" } else { "" }
    );
    w.write_all(msg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_stamps_however_encoded() {
        let f = |s: &str| scan_stamp(s.as_bytes());
        let want = Some(Found {
            seq: 12,
            sent_ns: 345,
        });
        assert_eq!(f(r#"{"a":1,"seq":12,"sent_ns":345}"#), want);
        assert_eq!(f("x=1 seq=12 sent_ns=345"), want);
        assert_eq!(
            f(r#"{"sd":{"loadgen@32473":{"seq":"12","sent_ns":"345"}}}"#),
            want
        );
        assert_eq!(f(r#"{"message":"... seq=\"12\" sent_ns=\"345\"]"}"#), want);
        assert_eq!(f("GET /a?seq=12&sent_ns=345 HTTP/1.1"), want);
        // Not a key of its own, or no number.
        assert_eq!(f("subseq=1 sent_ns=2"), None);
        assert_eq!(f("seq=x sent_ns=2"), None);
        assert_eq!(f("seq_no=1 sent_ns=2"), None);
        assert_eq!(f("seq=99999999999999999999999 sent_ns=2"), None);
    }

    #[test]
    fn bitmap_counts_missing_and_duplicates() {
        let mut s = Stats::new();
        for q in [0, 1, 2, 5, 70, 70] {
            s.mark(q);
        }
        assert!(!s.mark(5));
        assert_eq!(s.missing(3), 0);
        assert_eq!(s.missing(6), 2);
        assert_eq!(s.missing(100), 100 - 5);
        assert_eq!(s.first_missing(100, 3), vec![3, 4, 6]);
    }
}
