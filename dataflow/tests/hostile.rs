//! Hostile input through the real `sluice` binary: a `syslog` source over TCP (small
//! `max_frame_bytes`, `max_connections` and `idle_timeout`), one over UDP and an `http` source
//! (API keys, small `max_body_bytes`), each into a file sink, with the parse drops
//! (`tcp.dropped`, `udp.dropped`, `p.dropped`) in their own file sinks, and a filter on
//! `_meta.truncated` after the TCP source.
//!
//! Every case sends good data before and after the hostile input and checks the exact lines
//! that reached the sinks, that the process is still alive, and that `/metrics` counted the
//! rejection with its reason (the exact increase). The hostile clients are hand-written on
//! `std::net` sockets (that is the point: no real client sends this); the good HTTP requests,
//! the gzip bomb and the oversize bodies go through curl and gzip. Each test starts its own
//! `sluice` (a [`ChildGuard`] kills it even on a panic), so counters are exact.
//! `SLUICE_HOSTILE_CONNECTIONS` sets the number of connections opened and dropped (10000).

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);
const MAX_FRAME: usize = 256;
const KEY: &str = "X-API-Key: s3cret";

/// A running `sluice` with the three sources; killed when dropped.
struct Rig {
    child: ChildGuard,
    dir: tempfile::TempDir,
    api: u16,
    tcp: u16,
    udp: u16,
    web: u16,
}

impl Rig {
    /// Starts the pipeline; `idle` is the TCP syslog source's `idle_timeout`.
    fn start(idle: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let (api, tcp, udp, web) = (free_port(), free_port(), free_port(), free_port());
        let p = |n: &str| dir.path().join(format!("{n}.ndjson")).display().to_string();
        let cfg = dir.path().join("p.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"[engine]
shards = 1
data_dir = "{data}"

[api]
address = "127.0.0.1:{api}"

[sources.tcp]
type = "syslog"
mode = "tcp"
address = "127.0.0.1:{tcp}"
max_frame_bytes = {MAX_FRAME}
max_connections = 8
idle_timeout = "{idle}"
frame_timeout = "2500ms"

[sources.udp]
type = "syslog"
mode = "udp"
address = "127.0.0.1:{udp}"
max_frame_bytes = {MAX_FRAME}

[sources.web]
type = "http"
address = "127.0.0.1:{web}"
api_keys = ["s3cret"]
max_body_bytes = "64KiB"
idle_timeout = "1s"
request_timeout = "5s"

[transforms.p]
type = "parse"
inputs = ["web"]
format = "json"

[transforms.cut]
type = "filter"
inputs = ["tcp"]
condition = "_meta.truncated == true"

[sinks.tcp_cut]
type = "file"
inputs = ["cut"]
path = "{tcp_cut}"

[sinks.tcp_out]
type = "file"
inputs = ["tcp"]
path = "{tcp_out}"

[sinks.tcp_bad]
type = "file"
inputs = ["tcp.dropped"]
path = "{tcp_bad}"

[sinks.udp_out]
type = "file"
inputs = ["udp"]
path = "{udp_out}"

[sinks.udp_bad]
type = "file"
inputs = ["udp.dropped"]
path = "{udp_bad}"

[sinks.web_out]
type = "file"
inputs = ["p"]
path = "{web_out}"

[sinks.web_bad]
type = "file"
inputs = ["p.dropped"]
path = "{web_bad}"
"#,
                data = dir.path().join("data").display(),
                tcp_out = p("tcp_out"),
                tcp_cut = p("tcp_cut"),
                tcp_bad = p("tcp_bad"),
                udp_out = p("udp_out"),
                udp_bad = p("udp_bad"),
                web_out = p("web_out"),
                web_bad = p("web_bad"),
            ),
        )
        .unwrap();
        let log = dir.path().join("sluice.log");
        let mut child = ChildGuard::spawn_logged(sluice().arg("run").arg(&cfg), &log);
        wait_ready(&mut child, api, LIMIT);
        Rig {
            child,
            dir,
            api,
            tcp,
            udp,
            web,
        }
    }

    fn sink(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.ndjson"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sluice.log")).unwrap_or_default()
    }

    /// The events written by sink `name` so far.
    fn events(&self, name: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.sink(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Waits until sink `name` holds at least `n` events; returns them.
    fn wait_events(&mut self, name: &str, n: usize) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            self.alive();
            let ev = self.events(name);
            if ev.len() >= n {
                return ev;
            }
            assert!(
                start.elapsed() < LIMIT,
                "{name} has {} events, want {n}: {ev:?}\nlog:\n{}",
                ev.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until sink `name` holds exactly `want` as its events' `field` values (and checks
    /// that nothing more arrives for a moment).
    fn expect(&mut self, name: &str, field: &str, want: &[&str]) -> Vec<serde_json::Value> {
        let ev = self.wait_events(name, want.len());
        std::thread::sleep(Duration::from_millis(100));
        let ev2 = self.events(name);
        assert_eq!(
            ev.len(),
            ev2.len(),
            "{name} got more than {want:?}: {ev2:?}"
        );
        let got: Vec<String> = ev
            .iter()
            .map(|e| e[field].as_str().unwrap_or("<none>").to_string())
            .collect();
        assert_eq!(got, want, "{name}: {ev:?}");
        ev
    }

    fn alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("sluice exited with {status}; log:\n{}", self.log());
        }
    }

    fn metrics(&mut self) -> String {
        self.alive();
        let (code, body) = http_get(self.api, "/metrics").expect("/metrics answers");
        assert_eq!(code, 200);
        body
    }

    /// `metric{labels}` now (0 when absent).
    fn value(&mut self, name: &str, labels: &str) -> f64 {
        metric(&self.metrics(), name, labels).unwrap_or(0.0)
    }

    /// Waits until `metric{labels}` is exactly `want`, then checks it stays there for a
    /// moment (a counter that overshoots fails).
    fn wait_value(&mut self, name: &str, labels: &str, want: f64) {
        let start = Instant::now();
        loop {
            let v = self.value(name, labels);
            if v == want {
                std::thread::sleep(Duration::from_millis(100));
                let v = self.value(name, labels);
                assert_eq!(v, want, "{name}{{{labels}}} moved on");
                return;
            }
            assert!(
                start.elapsed() < LIMIT,
                "{name}{{{labels}}} is {v}, want {want}\n{}",
                self.metrics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn dropped(&mut self, component: &str, reason: &str) -> f64 {
        self.value(
            "sluice_events_dropped_total",
            &format!("component=\"{component}\",reason=\"{reason}\""),
        )
    }

    fn wait_dropped(&mut self, component: &str, reason: &str, want: f64) {
        self.wait_value(
            "sluice_events_dropped_total",
            &format!("component=\"{component}\",reason=\"{reason}\""),
            want,
        )
    }

    fn rejected(&mut self, reason: &str) -> f64 {
        self.value(
            "sluice_http_rejected_total",
            &format!("component=\"web\",reason=\"{reason}\""),
        )
    }

    fn wait_rejected(&mut self, reason: &str, want: f64) {
        self.wait_value(
            "sluice_http_rejected_total",
            &format!("component=\"web\",reason=\"{reason}\""),
            want,
        )
    }

    /// Sends `data` on a new TCP connection to the syslog source, closes its write side and
    /// waits until the server has closed the connection (so everything was framed).
    fn tcp_send(&self, data: &[u8]) {
        let mut s = TcpStream::connect(("127.0.0.1", self.tcp)).unwrap();
        s.write_all(data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        wait_closed(&mut s);
    }

    fn udp_send(&self, data: &[u8]) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(data, ("127.0.0.1", self.udp)).unwrap();
    }

    /// POSTs `body` to the http source with curl; returns the status.
    fn post(&self, path: &str, extra: &[&str], body: &[u8]) -> u16 {
        let mut c = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .args(["--data-binary", "@-"])
            .arg(format!("http://127.0.0.1:{}{path}", self.web))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl runs");
        c.stdin.take().unwrap().write_all(body).unwrap();
        let out = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Peak resident memory of the process (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

/// An RFC 5424 message whose MSG is `msg`.
fn syslog(msg: &str) -> String {
    format!("<13>1 2024-05-01T10:00:00Z host app - - - {msg}")
}

/// The same, LF framed.
fn lf(msg: &str) -> Vec<u8> {
    format!("{}\n", syslog(msg)).into_bytes()
}

/// The same, octet counted.
fn octet(msg: &str) -> Vec<u8> {
    let m = syslog(msg);
    format!("{} {m}", m.len()).into_bytes()
}

/// Reads until the peer closes (or resets) the connection.
fn wait_closed(s: &mut TcpStream) {
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), every value 0..=255 possible.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Garbage that is exactly one LF frame: it starts with a NUL (so it is not an octet count)
/// and holds no LF or CR before its final LF.
fn garbage_line(seed: u64, n: usize) -> Vec<u8> {
    let mut g = garbage(seed, n);
    g[0] = 0;
    for b in &mut g {
        if *b == b'\n' || *b == b'\r' {
            *b = 0;
        }
    }
    g.push(b'\n');
    g
}

const TCP: &str = "component=\"tcp\"";

#[test]
fn syslog_tcp_truncated_lying_and_oversized_frames() {
    let mut r = Rig::start("30s");
    r.tcp_send(&lf("before"));
    r.expect("tcp_out", "message", &["before"]);

    // Closed mid octet-counted frame: the count says 60, 20 bytes come.
    let mut d = octet("in-front");
    d.extend_from_slice(b"60 <13>1 2024-05-01T1");
    r.tcp_send(&d);
    r.wait_dropped("tcp", "truncated_frame", 1.0);
    // Closed inside the count itself.
    r.tcp_send(b"12");
    r.wait_dropped("tcp", "truncated_frame", 2.0);
    // Closed mid LF frame: the last frame without its LF is kept (documented).
    r.tcp_send(syslog("no-lf-at-the-end").as_bytes());
    // A count that lies upward, then the stream goes on with a good frame it swallows, then
    // the close: one truncated frame, nothing emitted.
    let mut d = b"200 ".to_vec();
    d.extend_from_slice(&octet("swallowed"));
    r.tcp_send(&d);
    r.wait_dropped("tcp", "truncated_frame", 3.0);
    r.expect(
        "tcp_out",
        "message",
        &["before", "in-front", "no-lf-at-the-end"],
    );

    // Invalid counts (leading zero, 11 digits) skip to the next LF; the next line arrives.
    let mut d = b"007 <13>1 zero\n".to_vec();
    d.extend_from_slice(&lf("after-zero"));
    d.extend_from_slice(b"12345678901 <13>1 eleven digits\n");
    d.extend_from_slice(&lf("after-eleven"));
    // A count with a non-digit in it is no count: the line is an LF frame that does not
    // parse (it goes to tcp.dropped).
    d.extend_from_slice(b"1x2 <13>1 2024-05-01T10:00:00Z host app - - - nondigit\n");
    d.extend_from_slice(&lf("after-nondigit"));
    // A count beyond max_frame_bytes: exactly that many bytes are skipped, the stream stays
    // in sync and the next octet-counted frame arrives.
    let big = "y".repeat(MAX_FRAME * 3);
    d.extend_from_slice(format!("{} {big}", big.len()).as_bytes());
    d.extend_from_slice(&octet("after-oversized-octet"));
    // An LF frame over max_frame_bytes is cut there (flagged, still delivered); the rest of
    // it up to the LF is skipped.
    let long = format!("long-{}", "z".repeat(MAX_FRAME * 2));
    d.extend_from_slice(&lf(&long));
    d.extend_from_slice(&lf("after-long-lf"));
    r.tcp_send(&d);
    r.wait_dropped("tcp", "invalid_octet_count", 2.0);
    r.wait_dropped("tcp", "oversized", 1.0);
    r.wait_dropped("tcp", "truncated", 1.0);
    let cut = &syslog(&long)[..MAX_FRAME];
    let cut_msg = cut.strip_prefix(&syslog("")).unwrap();
    r.expect(
        "tcp_out",
        "message",
        &[
            "before",
            "in-front",
            "no-lf-at-the-end",
            "after-zero",
            "after-eleven",
            "after-nondigit",
            "after-oversized-octet",
            cut_msg,
            "after-long-lf",
        ],
    );
    // The cut is flagged (`_meta.truncated`, which a filter picks) and counted.
    assert_eq!(cut.len(), MAX_FRAME);
    r.expect("tcp_cut", "message", &[cut_msg]);
    let bad = r.expect(
        "tcp_bad",
        "message",
        &["1x2 <13>1 2024-05-01T10:00:00Z host app - - - nondigit"],
    );
    assert_eq!(
        bad[0]["_meta"]["error"],
        "invalid syslog: not a syslog line: neither PRI nor a leading timestamp"
    );
    // Nothing else was counted.
    assert_eq!(r.dropped("tcp", "truncated_frame"), 3.0);
    r.tcp_send(&octet("last"));
    r.wait_events("tcp_out", 10);
    assert_eq!(r.events("tcp_out")[9]["message"], "last");
    assert_eq!(
        r.value("sluice_syslog_connections_open", TCP),
        0.0,
        "{}",
        r.metrics()
    );
}

#[test]
fn syslog_huge_frames_are_skipped_not_buffered() {
    let mut r = Rig::start("30s");
    r.tcp_send(&lf("before"));
    r.expect("tcp_out", "message", &["before"]);
    let huge = 32usize << 20;
    // A 32 MiB octet-counted frame, then a good one: skipped byte for byte, in sync after.
    let mut d = format!("{huge} ").into_bytes();
    d.resize(d.len() + huge, b'q');
    d.extend_from_slice(&octet("after-huge-octet"));
    // A 32 MiB LF line: cut at max_frame_bytes, the rest skipped up to its LF.
    let head = syslog("");
    d.extend_from_slice(head.as_bytes());
    d.resize(d.len() + huge, b'w');
    d.push(b'\n');
    d.extend_from_slice(&lf("after-huge-lf"));
    r.tcp_send(&d);
    drop(d);
    r.wait_dropped("tcp", "oversized", 1.0);
    r.wait_dropped("tcp", "truncated", 1.0);
    let cut = "w".repeat(MAX_FRAME - head.len());
    r.expect(
        "tcp_out",
        "message",
        &["before", "after-huge-octet", &cut, "after-huge-lf"],
    );
    let peak = r.peak_rss();
    eprintln!(
        "peak RSS after 64 MiB of oversized frames: {} MiB",
        peak >> 20
    );
    assert!(peak < 200 << 20, "VmHWM {} MiB", peak >> 20);
    assert_eq!(r.dropped("tcp", "truncated_frame"), 0.0);
    assert_eq!(r.dropped("tcp", "invalid_octet_count"), 0.0);
}

#[test]
fn syslog_binary_garbage_over_tcp_and_udp() {
    let mut r = Rig::start("30s");
    r.tcp_send(&lf("before"));
    r.udp_send(syslog("udp-before").as_bytes());
    r.expect("tcp_out", "message", &["before"]);
    r.expect("udp_out", "message", &["udp-before"]);

    // Two garbage LF frames with NULs and high bytes: one under max_frame_bytes, one over it
    // (cut and counted `truncated`); neither parses, both reach tcp.dropped.
    let mut d = garbage_line(1, 100);
    d.extend_from_slice(&garbage_line(2, MAX_FRAME * 4));
    d.extend_from_slice(&lf("between"));
    r.tcp_send(&d);
    r.wait_dropped("tcp", "truncated", 1.0);
    r.expect("tcp_out", "message", &["before", "between"]);
    r.wait_events("tcp_bad", 2);

    // Raw random bytes (LF, CR, digits and spaces included) on their own connection: every
    // frame the framer emitted either parsed or reached tcp.dropped, none is lost.
    let in_before = r.value("sluice_events_in_total", TCP);
    let bad_before = r.events("tcp_bad").len();
    let out_before = r.events("tcp_out").len();
    for seed in 10..20 {
        r.tcp_send(&garbage(seed, 20_000));
    }
    r.tcp_send(&lf("after"));
    let start = Instant::now();
    loop {
        let emitted = r.value("sluice_events_in_total", TCP) - in_before;
        let landed = (r.events("tcp_bad").len() - bad_before + r.events("tcp_out").len()
            - out_before) as f64;
        if emitted > 1.0 && emitted == landed {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "emitted {emitted}, landed {landed}\n{}",
            r.metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = r.events("tcp_out");
    assert_eq!(out.last().unwrap()["message"], "after", "{out:?}");

    // UDP: 20 garbage datagrams (NUL first, so none is empty or parses) and 3 over
    // max_frame_bytes (dropped and counted `oversized`), between two good ones.
    for seed in 0..20 {
        let mut g = garbage(100 + seed, 1 + seed as usize * 10);
        g[0] = 0;
        r.udp_send(&g);
    }
    for seed in 0..3 {
        let mut g = garbage(200 + seed, MAX_FRAME + 1 + seed as usize * 1000);
        *g.last_mut().unwrap() = b'x'; // no LF to strip: really over the limit
        r.udp_send(&g);
    }
    r.udp_send(syslog("udp-after").as_bytes());
    r.wait_dropped("udp", "oversized", 3.0);
    r.expect("udp_out", "message", &["udp-before", "udp-after"]);
    let bad = r.wait_events("udp_bad", 20);
    assert_eq!(bad.len(), 20);
    r.alive();
}

#[test]
fn syslog_slowloris_is_closed_when_idle_while_others_flow() {
    let mut r = Rig::start("1500ms");
    r.tcp_send(&lf("before"));
    r.expect("tcp_out", "message", &["before"]);

    // The slow client of the issue: half a message at once, then one byte per second. Each
    // byte resets `idle_timeout` (1.5 s), but the message is not whole within `frame_timeout`
    // (2.5 s): closed, counted as slow, and what it sent is kept.
    let mut slow = TcpStream::connect(("127.0.0.1", r.tcp)).unwrap();
    let head = syslog("slow");
    slow.write_all(head.as_bytes()).unwrap();
    let t = Instant::now();
    let mut sent_bytes = 0;
    for (i, b) in "lorislorislorisloris".bytes().enumerate() {
        std::thread::sleep(Duration::from_millis(1000));
        if slow.write_all(&[b]).is_err() {
            break;
        }
        sent_bytes += 1;
        // Meanwhile another connection's data flows.
        if i < 2 {
            r.tcp_send(&lf(&format!("fast-{i}")));
            r.wait_events("tcp_out", 2 + i);
        }
        if t.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    wait_closed(&mut slow);
    assert!(
        t.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    assert!(sent_bytes < 15, "the dribbling connection was not cut off");
    r.wait_value("sluice_syslog_connections_slow_closed_total", TCP, 1.0);
    assert_eq!(
        r.value("sluice_syslog_connections_idle_closed_total", TCP),
        0.0
    );
    let got = r.wait_events("tcp_out", 4);
    let partial = got[3]["message"].as_str().unwrap_or_default().to_string();
    assert!(
        partial.starts_with("slow") && "slowlorislorislorisloris".starts_with(&partial),
        "{got:?}"
    );

    // A client that goes silent mid-message: closed after idle_timeout, counted as idle; its
    // last frame (no LF) is kept.
    let mut silent = TcpStream::connect(("127.0.0.1", r.tcp)).unwrap();
    silent.write_all(syslog("quiet").as_bytes()).unwrap();
    let t = Instant::now();
    wait_closed(&mut silent);
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    r.wait_value("sluice_syslog_connections_idle_closed_total", TCP, 1.0);
    r.tcp_send(&lf("after"));
    r.expect(
        "tcp_out",
        "message",
        &["before", "fast-0", "fast-1", &partial, "quiet", "after"],
    );
    r.wait_value("sluice_syslog_connections_open", TCP, 0.0);
}

/// Sets SO_LINGER to zero so that closing sends a RST instead of a FIN.
fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from a live `linger`.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// `SLUICE_HOSTILE_CONNECTIONS` (default 10000).
fn connections() -> usize {
    std::env::var("SLUICE_HOSTILE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// The kernel's count of connections dropped because an accept queue was full (all
/// sockets of the network namespace), from `/proc/net/netstat`.
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(k, _)| *k == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Opens `n` connections to `port` four at a time and drops them; every other group is
/// reset (RST) instead of closed (FIN). Returns the accept-queue overflows meanwhile.
fn open_and_drop(port: u16, n: usize, what: &str) -> u64 {
    let overflows = listen_overflows();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = 4.min(n - i);
        let conns: Vec<TcpStream> = (0..k)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        if (i / 4) % 2 == 1 {
            conns.iter().for_each(reset_on_close);
        }
        drop(conns);
        i += k;
    }
    let overflows = listen_overflows() - overflows;
    eprintln!(
        "{n} {what} connections in {:?}, {overflows} accept-queue overflows",
        t.elapsed()
    );
    overflows
}

/// Checks `got` is `want`, or at most `want` when an accept queue overflowed (then the
/// kernel may have dropped a reset connection before the source could accept it).
fn exact_unless_overflow(got: f64, want: f64, overflows: u64, what: &str) {
    if overflows == 0 {
        assert_eq!(got, want, "{what}");
    } else {
        assert!(
            got <= want && got >= want - overflows as f64,
            "{what}: {got} vs {want}"
        );
    }
}

#[test]
fn ten_thousand_connections_opened_and_dropped() {
    // A short idle_timeout: a connection the kernel left half-open (after an accept-queue
    // overflow on a loaded machine) is closed soon.
    let mut r = Rig::start("2s");
    r.tcp_send(&lf("before"));
    r.expect("tcp_out", "message", &["before"]);
    let n = connections();
    let overflows = open_and_drop(r.tcp, n, "syslog");
    r.wait_value("sluice_syslog_connections_open", TCP, 0.0);
    let accepted = r.value("sluice_syslog_connections_accepted_total", TCP);
    let rejected = r.value("sluice_syslog_connections_rejected_total", TCP);
    exact_unless_overflow(
        accepted + rejected,
        (n + 1) as f64,
        overflows,
        "syslog accepted + rejected",
    );
    r.tcp_send(&lf("after"));
    r.expect("tcp_out", "message", &["before", "after"]);

    // The same against the http source.
    let overflows = open_and_drop(r.web, n, "http");
    r.wait_value("sluice_http_connections_open", "component=\"web\"", 0.0);
    let total = r.value("sluice_http_connections_total", "component=\"web\"");
    let refused = r.rejected("too_many_connections");
    exact_unless_overflow(total + refused, n as f64, overflows, "http connections");
    // Closing before a request is neither a bad request nor a timeout (a connection left
    // half-open by an overflow does wait out idle_timeout).
    assert_eq!(r.rejected("bad_request"), 0.0);
    let idle = r.rejected("idle_timeout");
    assert!(
        idle <= overflows as f64,
        "{idle} idle timeouts, {overflows} overflows"
    );
    assert_eq!(r.post("/log", &["-H", KEY], b"{\"n\":1}"), 200);
    let ev = r.wait_events("web_out", 1);
    assert_eq!(ev[0]["n"], 1);
    r.wait_value("sluice_http_connections_open", "component=\"web\"", 0.0);
}

#[test]
fn syslog_max_connections_refuses_the_next_one() {
    let mut r = Rig::start("30s");
    let held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", r.tcp)).unwrap())
        .collect();
    r.wait_value("sluice_syslog_connections_open", TCP, 8.0);
    // The ninth is accepted and closed at once.
    let mut ninth = TcpStream::connect(("127.0.0.1", r.tcp)).unwrap();
    let _ = ninth.write_all(&lf("refused"));
    wait_closed(&mut ninth);
    r.wait_value("sluice_syslog_connections_rejected_total", TCP, 1.0);
    // The held ones still deliver.
    let mut h = held;
    h[3].write_all(&lf("held-3")).unwrap();
    h[3].shutdown(Shutdown::Write).unwrap();
    wait_closed(&mut h[3]);
    drop(h);
    r.wait_value("sluice_syslog_connections_open", TCP, 0.0);
    r.tcp_send(&lf("after"));
    r.expect("tcp_out", "message", &["held-3", "after"]);
    assert_eq!(
        r.value("sluice_syslog_connections_rejected_total", TCP),
        1.0
    );
}

/// Sends raw bytes to the http source, half-closes, and returns what came back.
fn http_raw(port: u16, data: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn http_bad_lines_bad_keys_oversize_and_bombs() {
    let mut r = Rig::start("30s");
    assert_eq!(r.post("/log", &["-H", KEY], b"{\"n\":\"before\"}"), 200);
    r.expect("web_out", "n", &["before"]);

    // Invalid JSON lines in an NDJSON batch: the good ones arrive, the bad ones are in
    // p.dropped with the error.
    let batch = b"{\"n\":\"a\"}\nnot json\n{\"n\":\"b\"}\n{\"n\":\n\x00\xff\xfe\n{\"n\":\"c\"}\n";
    let ndjson = ["-H", KEY, "-H", "Content-Type: application/x-ndjson"];
    assert_eq!(r.post("/logs", &ndjson, batch), 200);
    r.expect("web_out", "n", &["before", "a", "b", "c"]);
    // (Rejected lines are grouped by error, so compare them sorted.)
    let bad = r.wait_events("web_bad", 3);
    let mut got: Vec<(String, String)> = bad
        .iter()
        .map(|e| {
            let m = e["message"].as_str().unwrap().to_string();
            (m, e["_meta"]["error"].as_str().unwrap().to_string())
        })
        .collect();
    got.sort();
    let want = [
        ("\0\u{fffd}\u{fffd}", "invalid JSON: not a JSON object"),
        ("not json", "invalid JSON: not a JSON object"),
        ("{\"n\":", "invalid JSON: unexpected end of input"),
    ];
    assert_eq!(
        got,
        want.map(|(m, e)| (m.to_string(), e.to_string())),
        "{bad:?}"
    );

    // Keys: none, wrong.
    assert_eq!(r.post("/log", &[], b"{\"n\":\"nokey\"}"), 401);
    assert_eq!(
        r.post("/log", &["-H", "X-API-Key: wrong"], b"{\"n\":\"badkey\"}"),
        401
    );
    assert_eq!(
        r.post(
            "/log",
            &["-H", "Authorization: Bearer s3cre"],
            b"{\"n\":\"prefix\"}"
        ),
        401
    );
    r.wait_rejected("unauthorized", 3.0);

    // Oversize: declared, and streamed chunked (no Content-Length).
    let big = format!("{{\"n\":\"{}\"}}", "x".repeat(100_000));
    assert_eq!(r.post("/log", &["-H", KEY], big.as_bytes()), 413);
    assert_eq!(
        r.post(
            "/log",
            &["-H", KEY, "-H", "Transfer-Encoding: chunked"],
            big.as_bytes()
        ),
        413
    );
    r.wait_rejected("too_large", 2.0);

    // A gzip bomb: about 50 KiB of gzip (under max_body_bytes) that expands to 24 MiB of
    // NDJSON lines.
    let mut gz = Command::new("gzip")
        .arg("-9c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = gz.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let line = b"{\"n\":\"bomb\"}\n".repeat(64 * 1024);
        let mut left = 24usize << 20;
        while left > 0 {
            let k = left.min(line.len());
            stdin.write_all(&line[..k]).unwrap();
            left -= k;
        }
    });
    let bomb = gz.wait_with_output().unwrap().stdout;
    feeder.join().unwrap();
    assert!(bomb.len() < 64 * 1024, "the bomb is {} bytes", bomb.len());
    let gzip = ["-H", KEY, "-H", "Content-Encoding: gzip"];
    for _ in 0..5 {
        assert_eq!(r.post("/logs", &gzip, &bomb), 413);
    }
    r.wait_rejected("too_large", 7.0);
    let peak = r.peak_rss();
    eprintln!("peak RSS after 5 gzip bombs: {} MiB", peak >> 20);
    assert!(peak < 200 << 20, "VmHWM {} MiB", peak >> 20);

    // Malformed HTTP: a garbage request line, and binary noise.
    let reply = http_raw(r.web, b"GARBAGE \x00\xff NONSENSE\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    let reply = http_raw(r.web, &garbage(7, 3000));
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
        "{reply:?}"
    );
    r.wait_rejected("bad_request", 2.0);

    // A truncated body: Content-Length says 100, 20 bytes come, then the close.
    let port = r.web;
    let reply = http_raw(
        port,
        b"POST /log HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret\r\nContent-Length: 100\r\n\r\n{\"n\":\"truncated\"",
    );
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply:?}"
    );
    r.wait_rejected("bad_body", 1.0);

    // Nothing of the refused requests arrived; good data still does.
    assert_eq!(r.post("/log", &["-H", KEY], b"{\"n\":\"after\"}"), 200);
    r.expect("web_out", "n", &["before", "a", "b", "c", "after"]);
    assert_eq!(r.events("web_bad").len(), 3);
    for (reason, want) in [
        ("unauthorized", 3.0),
        ("too_large", 7.0),
        ("bad_request", 2.0),
        ("bad_body", 1.0),
        ("decompress_error", 0.0),
        ("timeout", 0.0),
    ] {
        assert_eq!(r.rejected(reason), want, "{reason}");
    }
    r.wait_value("sluice_http_connections_open", "component=\"web\"", 0.0);
}

#[test]
fn http_slowloris_headers_are_cut_off() {
    let mut r = Rig::start("30s");
    assert_eq!(r.post("/log", &["-H", KEY], b"{\"n\":\"before\"}"), 200);
    // Headers at one byte every 250 ms: closed once idle_timeout (1 s) has passed since
    // they started, although bytes keep coming.
    let mut slow = TcpStream::connect(("127.0.0.1", r.web)).unwrap();
    let head = b"POST /log HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret\r\nContent-Length: 2\r\n\r\n{}";
    slow.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let t = Instant::now();
    let mut i = 0;
    let mut closed = false;
    let mut probe = [0u8; 256];
    while i < head.len() && t.elapsed() < Duration::from_secs(10) {
        match slow.read(&mut probe) {
            // An answer or the close: cut off.
            Ok(_) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        if slow.write_all(&head[i..i + 1]).is_err() {
            closed = true;
            break;
        }
        i += 1;
        if i == 1 {
            // Meanwhile other requests are served.
            assert_eq!(r.post("/log", &["-H", KEY], b"{\"n\":\"during\"}"), 200);
        }
    }
    eprintln!("slow client cut off after {i} bytes, {:?}", t.elapsed());
    assert!(closed, "the slow client was not cut off after {i} bytes");
    r.wait_rejected("idle_timeout", 1.0);
    assert_eq!(r.post("/log", &["-H", KEY], b"{\"n\":\"after\"}"), 200);
    r.expect("web_out", "n", &["before", "during", "after"]);
}
