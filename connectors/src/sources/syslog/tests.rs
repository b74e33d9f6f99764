//! The syslog source over real loopback sockets: a harness builds it with a test `BuildCtx`,
//! runs its connector thread into real shard rings and pops what arrives.

use super::*;
use crate::sources::SourceShape;
use sluice_engine::metrics::{ComponentKind, Registry};
use sluice_engine::ring::{self, Doorbell, RingRx, WhenFull};
use sluice_engine::shutdown::Lifecycle;
use sluice_engine::source::{Envelope, SourceHandle};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::Instant;

struct Harness {
    addr: SocketAddr,
    rxs: Vec<RingRx<Envelope>>,
    lifecycle: Arc<Lifecycle>,
    registry: Arc<Registry>,
    handle: Arc<SourceHandle>,
    thread: Option<JoinHandle<()>>,
    /// Every event received so far: its bytes and flags.
    got: Vec<(Vec<u8>, u8)>,
    /// Batches popped ahead of one still in another ring, by seq.
    pending: std::collections::BTreeMap<u64, Vec<(Vec<u8>, u8)>>,
    next_seq: u64,
    _dir: tempfile::TempDir,
}

fn config(v: serde_json::Value) -> SyslogSourceConfig {
    serde_json::from_value(v).expect("config")
}

fn start(cfg: serde_json::Value) -> Harness {
    start_with(cfg, 64)
}

/// Starts the source with shard rings of `ring_capacity` batches.
fn start_with(cfg: serde_json::Value, ring_capacity: usize) -> Harness {
    let cfg = config(cfg);
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let lifecycle = Lifecycle::new();
    let ctx = BuildCtx {
        shards: 2,
        batch_size: 64,
        data_dir: dir.path().to_path_buf(),
        registry: registry.clone(),
        lifecycle: lifecycle.clone(),
    };
    let bound = cfg.bind(&ctx, "sys").expect("bind");
    let addr = bound.local_addr();
    let SourceShape::Thread(f) = bound.into_runtime().shape else {
        panic!("syslog runs on a connector thread")
    };
    let metrics = registry.component("sys", ComponentKind::Source, "syslog");
    let handle = SourceHandle::new(0, "sys", metrics, 1);
    let mut txs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = ring::ring(
            ring_capacity,
            WhenFull::Block,
            Doorbell::new(),
            Arc::default(),
        );
        txs.push(tx);
        rxs.push(rx);
    }
    let out = ConnectorOutput::new(handle.clone(), txs, lifecycle.clone());
    let thread = std::thread::spawn(move || f(out));
    let t0 = Instant::now();
    while !handle.is_started() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "source did not start"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    Harness {
        addr,
        rxs,
        lifecycle,
        registry,
        handle,
        thread: Some(thread),
        got: Vec::new(),
        pending: Default::default(),
        next_seq: 0,
        _dir: dir,
    }
}

impl Harness {
    /// Pops every ring; events are released in the order the source sent their batches
    /// (the stamp's seq), whichever ring each batch went to.
    fn pop(&mut self) -> bool {
        let mut any = false;
        for rx in &mut self.rxs {
            while let Some(env) = rx.pop() {
                any = true;
                let b = env.batch;
                let seq = b.ack.as_ref().expect("batches are stamped").seq();
                let events = b.events.iter().map(|e| (b.line(e).to_vec(), e.flags));
                self.pending.insert(seq, events.collect());
            }
        }
        while let Some(events) = self.pending.remove(&self.next_seq) {
            self.got.extend(events);
            self.next_seq += 1;
        }
        any
    }

    /// Pops until `n` events arrived in all (or `within` passed); returns them all.
    fn wait_for(&mut self, n: usize, within: Duration) -> Vec<String> {
        let t0 = Instant::now();
        while self.got.len() < n && t0.elapsed() < within {
            if !self.pop() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.lines()
    }

    /// Pops for `d` (to see that nothing more arrives).
    fn settle(&mut self, d: Duration) -> Vec<String> {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            if !self.pop() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.lines()
    }

    fn lines(&self) -> Vec<String> {
        self.got
            .iter()
            .map(|(l, _)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn dropped(&self, reason: &str) -> u64 {
        self.handle.metrics.dropped(reason).load(Ordering::Relaxed)
    }

    /// The value of the series `series` (name and labels, as rendered).
    fn metric(&self, series: &str) -> Option<i64> {
        let text = self.registry.render_prometheus();
        text.lines().find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == series).then(|| v.parse().ok())?
        })
    }

    fn gauge_open(&self) -> i64 {
        self.metric("sluice_syslog_connections_open{component=\"sys\"}")
            .unwrap()
    }

    fn wait_until(&mut self, what: &str, within: Duration, mut cond: impl FnMut(&Harness) -> bool) {
        let t0 = Instant::now();
        while !cond(self) {
            assert!(t0.elapsed() < within, "timed out waiting for {what}");
            self.pop();
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Drains the source: it stops, hands on what it has and finishes.
    fn stop(&mut self) {
        self.lifecycle.begin_drain();
        let t0 = Instant::now();
        while !self.thread.as_ref().unwrap().is_finished() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "source did not finish"
            );
            self.pop();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.thread.take().unwrap().join().unwrap();
        self.pop();
        assert!(self.handle.is_finished());
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.lifecycle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tcp_cfg() -> serde_json::Value {
    serde_json::json!({"mode": "tcp", "address": "127.0.0.1:0"})
}

fn connect(h: &Harness) -> TcpStream {
    let s = TcpStream::connect(h.addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Whether the server closed `s` within `within` (a read returns 0 or an error).
/// (Bytes the server may send first, like a TLS alert, are read past.)
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let t0 = Instant::now();
    let mut b = [0u8; 256];
    loop {
        let left = within.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

fn octet(msg: &str) -> String {
    format!("{} {msg}", msg.len())
}

#[test]
fn config_defaults_and_validation() {
    let c = config(serde_json::json!({"mode": "udp", "address": "0.0.0.0:5514"}));
    assert_eq!(c.max_connections, 1024);
    assert_eq!(c.max_frame_bytes.0, 64 * 1024);
    assert_eq!(c.idle_timeout.0, Duration::from_secs(300));
    assert_eq!(c.receive_buffer_bytes.0, 8 << 20);
    assert_eq!(c.rate_limit, None);
    assert!(c.validate().is_ok());
    let key = |v: serde_json::Value| config(v).validate().unwrap_err().0;
    assert_eq!(
        key(serde_json::json!({"mode": "tls", "address": "0.0.0.0:1"})),
        "tls"
    );
    assert_eq!(
        key(serde_json::json!({"mode": "tcp", "address": "0.0.0.0:1",
            "tls": {"cert_file": "/x", "key_file": "/y"}})),
        "tls"
    );
    assert_eq!(
        key(serde_json::json!({"mode": "tls", "address": "0.0.0.0:1",
            "tls": {"cert_file": "/nonexistent.pem", "key_file": "/y"}})),
        "tls.cert_file"
    );
    assert_eq!(
        key(serde_json::json!({"mode": "tcp", "address": "localhost"})),
        "address"
    );
    assert_eq!(
        key(serde_json::json!({"mode": "tcp", "address": "0.0.0.0:1", "rate_limit": 0})),
        "rate_limit"
    );
    assert_eq!(
        key(serde_json::json!({"mode": "tcp", "address": "0.0.0.0:1", "max_connections": 0})),
        "max_connections"
    );
    for pacing in ["0s", "1ms", "100ms"] {
        let c: SyslogSourceConfig = serde_json::from_value(
            serde_json::json!({"mode": "tcp", "address": "0.0.0.0:1", "read_pacing": pacing}),
        )
        .unwrap();
        assert!(c.validate().is_ok(), "{pacing}");
    }
    for pacing in ["50us", "1s"] {
        assert_eq!(
            key(serde_json::json!({"mode": "tcp", "address": "0.0.0.0:1", "read_pacing": pacing})),
            "read_pacing"
        );
    }
    assert!(serde_json::from_value::<SyslogSourceConfig>(
        serde_json::json!({"mode": "tcp", "address": "0.0.0.0:1", "bogus": 1})
    )
    .is_err());
    assert!(serde_json::from_value::<SyslogSourceConfig>(
        serde_json::json!({"mode": "sctp", "address": "0.0.0.0:1"})
    )
    .is_err());
}

#[test]
fn port_in_use_is_a_build_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = config(serde_json::json!({"mode": "tcp",
        "address": taken.local_addr().unwrap().to_string()}));
    let ctx = BuildCtx {
        shards: 1,
        batch_size: 8,
        data_dir: std::env::temp_dir(),
        registry: Registry::new(),
        lifecycle: Lifecycle::new(),
    };
    let err = cfg.build(&ctx, "sys").err().expect("the port is taken");
    assert!(err.contains("cannot listen"), "{err}");
}

#[test]
fn tcp_lf_and_octet_counted_frames_mixed_per_connection() {
    let mut h = start(tcp_cfg());
    let mut a = connect(&h);
    let mut b = connect(&h);
    let mut text_a = String::new();
    let mut text_b = String::new();
    for i in 0..200 {
        let m = format!("<13>1 - host app - - - a{i}");
        if i % 3 == 0 {
            text_a.push_str(&octet(&m));
        } else {
            text_a.push_str(&m);
            text_a.push('\n');
        }
        text_b.push_str(&octet(&format!("<14>Oct 11 22:14:15 host b: b{i}")));
    }
    a.write_all(text_a.as_bytes()).unwrap();
    b.write_all(text_b.as_bytes()).unwrap();
    let got = h.wait_for(400, Duration::from_secs(10));
    assert_eq!(got.len(), 400);
    let from_a: Vec<&String> = got.iter().filter(|l| l.starts_with("<13>")).collect();
    let from_b: Vec<&String> = got.iter().filter(|l| l.starts_with("<14>")).collect();
    for i in 0..200 {
        assert_eq!(from_a[i], &format!("<13>1 - host app - - - a{i}"));
        assert_eq!(from_b[i], &format!("<14>Oct 11 22:14:15 host b: b{i}"));
    }
    assert_eq!(h.gauge_open(), 2);
    drop((a, b));
    h.wait_until("connections to close", Duration::from_secs(5), |h| {
        h.gauge_open() == 0
    });
    let bytes: usize = got.iter().map(|l| l.len()).sum();
    assert_eq!(
        h.handle.metrics.bytes_in.load(Ordering::Relaxed),
        bytes as u64
    );
    h.stop();
}

#[test]
fn tcp_stream_in_one_byte_writes() {
    let mut h = start(tcp_cfg());
    let mut s = connect(&h);
    let mut text = String::new();
    let mut want = Vec::new();
    for i in 0..60 {
        let m = format!("<34>1 2024-05-01T00:00:00Z h app {i} - - message {i}");
        if i % 2 == 0 {
            text.push_str(&octet(&m));
        } else {
            text.push_str(&m);
            text.push_str("\r\n");
        }
        want.push(m);
    }
    for (i, b) in text.as_bytes().iter().enumerate() {
        s.write_all(&[*b]).unwrap();
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    let got = h.wait_for(want.len(), Duration::from_secs(10));
    assert_eq!(got, want);
    h.stop();
}

/// A connection that streams enters paced mode (high `SO_RCVLOWAT`, reads on a timer); every
/// message arrives, and once it goes quiet a lone message is read at once, not left under
/// the low-water mark until a timeout.
#[test]
fn paced_connection_streams_then_a_lone_message_arrives_promptly() {
    let mut h = start(serde_json::json!({
        "mode": "tcp", "address": "127.0.0.1:0", "read_pacing": "1ms"
    }));
    let mut c = connect(&h);
    c.set_nodelay(true).unwrap();
    for round in 0..3 {
        for i in 0..2000 {
            c.write_all(format!("<13>1 - host app - - - r{round} m{i}\n").as_bytes())
                .unwrap();
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        // Every streamed message, and the lone ones of the earlier rounds.
        let want = (round + 1) * 2000 + round;
        let got = h.wait_for(want, Duration::from_secs(10));
        assert_eq!(got.len(), want, "round {round}");
        // Quiet for longer than a pace tick: the connection waits for readability again.
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        c.write_all(format!("<13>1 - host app - - - lone {round}\n").as_bytes())
            .unwrap();
        let got = h.wait_for((round + 1) * 2000 + round + 1, Duration::from_secs(10));
        assert!(
            got.iter().any(|l| l.ends_with(&format!("lone {round}"))),
            "the lone message of round {round} did not arrive"
        );
        // Generous (CI machines are slow), but far below the 10 s idle timeout it would
        // otherwise wait for.
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "took {:?}",
            sent.elapsed()
        );
    }
    // The streamed rounds were read on pace ticks (before paced reads went to the socket
    // directly, tokio's cleared readiness made each tick find "nothing": none were counted).
    let paced = h
        .metric("sluice_syslog_paced_reads_total{component=\"sys\"}")
        .unwrap_or(0);
    assert!(paced >= 3, "paced reads: {paced}");
    let got = h.lines();
    for round in 0..3 {
        for i in [0, 999, 1999] {
            let want = format!("<13>1 - host app - - - r{round} m{i}");
            assert!(got.contains(&want), "missing {want}");
        }
    }
    h.stop();
}

#[test]
fn octet_counts_that_lie() {
    let mut h = start(serde_json::json!({"mode": "tcp", "address": "127.0.0.1:0",
        "max_frame_bytes": 1000}));
    // Longer than what arrives before the close: counted, not emitted.
    let mut s = connect(&h);
    s.write_all(format!("{}50 <13>short", octet("<13>first")).as_bytes())
        .unwrap();
    drop(s);
    // Not a number: an LF frame. A leading zero: invalid, skipped to the next LF.
    let mut s = connect(&h);
    s.write_all(b"abc <13>not a count\n007 <13>zero\n<13>after zero\n")
        .unwrap();
    drop(s);
    // A huge count: its bytes are skipped as they come, the connection stays usable.
    let mut s = connect(&h);
    s.write_all(b"99999999999999 <13>eleven digits\n").unwrap();
    s.write_all(b"5000 ").unwrap();
    s.write_all(&[b'x'; 5000]).unwrap();
    s.write_all(octet("<13>in sync").as_bytes()).unwrap();
    let got = h.wait_for(4, Duration::from_secs(5));
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "<13>after zero",
            "<13>first",
            "<13>in sync",
            "abc <13>not a count"
        ]
    );
    drop(s);
    h.wait_until("drops counted", Duration::from_secs(5), |h| {
        h.dropped("truncated_frame") == 1
    });
    assert_eq!(h.dropped("invalid_octet_count"), 2);
    assert_eq!(h.dropped("oversized"), 1);
    // A count that never ends: closed by the client, nothing hangs.
    let mut s = connect(&h);
    s.write_all(b"123456").unwrap();
    drop(s);
    h.wait_until("the dangling count", Duration::from_secs(5), |h| {
        h.dropped("truncated_frame") == 2
    });
    let mut s = connect(&h);
    s.write_all(b"<13>still alive\n").unwrap();
    let got = h.wait_for(5, Duration::from_secs(5));
    assert_eq!(got.last().unwrap(), "<13>still alive");
    h.stop();
}

#[test]
fn frames_over_max_frame_bytes() {
    let mut h = start(serde_json::json!({"mode": "tcp", "address": "127.0.0.1:0",
        "max_frame_bytes": 100}));
    let mut s = connect(&h);
    let big = format!("<13>{}", "y".repeat(200));
    s.write_all(octet(&big).as_bytes()).unwrap();
    s.write_all(octet("<13>next").as_bytes()).unwrap();
    s.write_all(format!("<13>{}\n<13>after\n", "z".repeat(300)).as_bytes())
        .unwrap();
    let got = h.wait_for(3, Duration::from_secs(5));
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], "<13>next");
    assert_eq!(got[1].len(), 100, "the long LF frame is cut");
    assert_eq!(h.got[1].1, Event::TRUNCATED);
    assert_eq!(got[2], "<13>after");
    assert_eq!(h.dropped("oversized"), 1);
    assert_eq!(h.dropped("truncated"), 1);
    h.stop();
}

#[test]
fn binary_garbage_then_good_data() {
    let mut h = start(serde_json::json!({"mode": "tcp", "address": "127.0.0.1:0",
        "max_frame_bytes": 256}));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let garbage: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut s = connect(&h);
    s.write_all(&garbage).unwrap();
    drop(s);
    let mut s = connect(&h);
    s.write_all(b"<13>good\n").unwrap();
    h.wait_until("the good line", Duration::from_secs(5), |h| {
        h.got.iter().any(|(l, _)| l == b"<13>good")
    });
    assert!(h.got.iter().all(|(l, _)| l.len() <= 256));
    h.stop();
}

#[test]
fn slowloris_does_not_block_others_and_silent_connections_time_out() {
    let mut h = start(serde_json::json!({"mode": "tcp", "address": "127.0.0.1:0",
        "idle_timeout": "700ms"}));
    let mut silent = connect(&h);
    let slow_addr = h.addr;
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(slow_addr).unwrap();
        s.set_nodelay(true).unwrap();
        for b in b"<13>slow\n" {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
        s
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut fast = connect(&h);
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("<13>fast {i}\n"));
    }
    fast.write_all(text.as_bytes()).unwrap();
    let got = h.wait_for(1000, Duration::from_secs(5));
    assert_eq!(
        got.len(),
        1000,
        "the slow connection does not hold others back"
    );
    assert!(!got.iter().any(|l| l.contains("slow")));
    assert!(closed_by_server(&mut silent, Duration::from_secs(3)));
    let _slow = slow.join().unwrap();
    let got = h.wait_for(1001, Duration::from_secs(5));
    assert_eq!(got.last().unwrap(), "<13>slow");
    h.wait_until("idle connections closed", Duration::from_secs(3), |h| {
        h.metric("sluice_syslog_connections_idle_closed_total{component=\"sys\"}") >= Some(2)
    });
    drop(fast);
    h.stop();
}

/// A connection that keeps sending a byte every 100 ms is never idle for `idle_timeout`, but
/// its message does not arrive whole within `frame_timeout`: it is closed and counted, what it
/// sent is kept, and another connection is served meanwhile.
#[test]
fn dribbling_connections_are_closed_after_frame_timeout() {
    let mut h = start(serde_json::json!({"mode": "tcp", "address": "127.0.0.1:0",
        "idle_timeout": "10s", "frame_timeout": "600ms"}));
    let mut slow = connect(&h);
    slow.set_nodelay(true).unwrap();
    slow.write_all(b"<13>whole\n").unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"<13>dribbled forever".iter().cycle().take(100) {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed || closed_by_server(&mut slow, Duration::from_secs(3)));
    assert!(started.elapsed() >= Duration::from_millis(600));
    let mut fast = connect(&h);
    fast.write_all(b"<13>after\n").unwrap();
    let got = h.wait_for(3, Duration::from_secs(5));
    assert_eq!(got[0], "<13>whole");
    // What arrived before the close: a prefix of the message.
    assert!(
        got[1].len() > 4 && "<13>dribbled forever".starts_with(&got[1]),
        "{got:?}"
    );
    assert_eq!(got[2], "<13>after");
    h.wait_until("slow close counted", Duration::from_secs(3), |h| {
        h.metric("sluice_syslog_connections_slow_closed_total{component=\"sys\"}") == Some(1)
    });
    assert_eq!(
        h.metric("sluice_syslog_connections_idle_closed_total{component=\"sys\"}"),
        Some(0)
    );
    h.stop();
}

#[test]
fn thousand_connections_opened_and_dropped_leak_nothing() {
    let mut h = start(tcp_cfg());
    let mut sent = 0;
    for round in 0..10 {
        let mut conns = Vec::new();
        for i in 0..100 {
            let mut s = connect(&h);
            if i % 2 == 0 {
                s.write_all(format!("<13>r{round} c{i}\n").as_bytes())
                    .unwrap();
                sent += 1;
            }
            conns.push(s);
        }
        drop(conns);
    }
    let got = h.wait_for(sent, Duration::from_secs(10));
    assert_eq!(got.len(), sent);
    h.wait_until("every connection closed", Duration::from_secs(10), |h| {
        h.gauge_open() == 0
            && h.metric("sluice_syslog_connections_accepted_total{component=\"sys\"}") == Some(1000)
    });
    assert_eq!(
        h.metric("sluice_syslog_connections_accepted_total{component=\"sys\"}"),
        Some(1000)
    );
    assert_eq!(
        h.metric("sluice_syslog_connections_rejected_total{component=\"sys\"}"),
        Some(0)
    );
    h.stop();
}

#[test]
fn max_connections_is_enforced() {
    let mut h = start(serde_json::json!({"mode": "tcp", "address": "127.0.0.1:0",
        "max_connections": 3}));
    let mut open: Vec<TcpStream> = (0..3).map(|_| connect(&h)).collect();
    h.wait_until("three open", Duration::from_secs(5), |h| {
        h.gauge_open() == 3
    });
    let mut extra = connect(&h);
    assert!(closed_by_server(&mut extra, Duration::from_secs(3)));
    assert_eq!(
        h.metric("sluice_syslog_connections_rejected_total{component=\"sys\"}"),
        Some(1)
    );
    for (i, s) in open.iter_mut().enumerate() {
        s.write_all(format!("<13>kept {i}\n").as_bytes()).unwrap();
    }
    h.wait_for(3, Duration::from_secs(5));
    drop(open.pop());
    h.wait_until("one closed", Duration::from_secs(5), |h| {
        h.gauge_open() == 2
    });
    let mut again = connect(&h);
    again.write_all(b"<13>room again\n").unwrap();
    let got = h.wait_for(4, Duration::from_secs(5));
    assert_eq!(got.last().unwrap(), "<13>room again");
    h.stop();
}

#[test]
fn tcp_rate_limit_slows_the_connection_down() {
    let mut h = start(serde_json::json!({"mode": "tcp", "address": "127.0.0.1:0",
        "rate_limit": 200}));
    let mut s = connect(&h);
    let t0 = Instant::now();
    let text: String = (0..600).map(|i| format!("<13>r {i}\n")).collect();
    s.write_all(text.as_bytes()).unwrap();
    let got = h.wait_for(250, Duration::from_secs(10));
    assert!(got.len() >= 250);
    // One second's worth at once, then 200/s: the 250th needs about a quarter second.
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
    let got = h.wait_for(600, Duration::from_secs(10));
    let took = t0.elapsed();
    assert_eq!(got.len(), 600, "nothing is dropped over TCP");
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(4),
        "600 events at 200/s with a 200 burst took {took:?}"
    );
    assert_eq!(got[599], "<13>r 599");
    assert!(h.metric("sluice_syslog_rate_limit_pauses_total{component=\"sys\"}") > Some(0));
    assert_eq!(h.dropped("rate_limited"), 0);
    h.stop();
}

#[test]
fn drain_closes_connections_and_hands_on_everything() {
    let mut h = start(tcp_cfg());
    let mut s = connect(&h);
    s.write_all(b"<13>one\n<13>two\n<13>tail without lf")
        .unwrap();
    h.wait_for(2, Duration::from_secs(5));
    h.stop();
    assert_eq!(h.lines(), ["<13>one", "<13>two", "<13>tail without lf"]);
    assert!(closed_by_server(&mut s, Duration::from_secs(3)));
    assert_eq!(h.gauge_open(), 0);
    // Peers were published at the end.
    let text = h.registry.render_prometheus();
    assert!(
        text.contains("sluice_syslog_peer_events_total{component=\"sys\",peer=\"127.0.0.1\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("sluice_syslog_peer_bytes_total{component=\"sys\",peer=\"127.0.0.1\"} 33")
    );
}

// ---- UDP ----

fn udp_send(h: &Harness, msgs: &[&[u8]]) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for m in msgs {
        s.send_to(m, h.addr).unwrap();
    }
}

#[test]
fn udp_datagrams_one_message_each() {
    let mut h = start(serde_json::json!({"mode": "udp", "address": "127.0.0.1:0",
        "max_frame_bytes": 1000}));
    let big = vec![b'x'; 2000];
    let huge = vec![b'y'; 65_000];
    udp_send(
        &h,
        &[
            b"<13>one\n",
            b"<13>two",
            b"<13>three\r\n",
            b"",
            b"\n",
            &big,
            &huge,
            b"<13>multi\nline\n",
            b"<13>last",
        ],
    );
    let got = h.wait_for(5, Duration::from_secs(5));
    assert_eq!(
        got,
        [
            "<13>one",
            "<13>two",
            "<13>three",
            "<13>multi\nline",
            "<13>last"
        ]
    );
    assert_eq!(h.dropped("oversized"), 2);
    assert!(h.metric("sluice_syslog_udp_receive_buffer_bytes{component=\"sys\"}") > Some(0));
    h.stop();
}

#[test]
fn udp_rate_limit_drops_and_counts() {
    let mut h = start(serde_json::json!({"mode": "udp", "address": "127.0.0.1:0",
        "rate_limit": 100}));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    for i in 0..1000 {
        s.send_to(format!("<13>u {i}").as_bytes(), h.addr).unwrap();
    }
    let sending = t0.elapsed();
    h.settle(Duration::from_millis(500));
    h.stop();
    let got = h.lines();
    let limited = h.dropped("rate_limited");
    let kernel = h
        .metric("sluice_syslog_udp_kernel_drops{component=\"sys\"}")
        .unwrap() as u64;
    assert_eq!(got.len() as u64 + limited + kernel, 1000);
    let allowed = 100 + (sending.as_secs_f64() * 100.0).ceil() as usize + 60;
    assert!(
        got.len() >= 100 && got.len() <= allowed,
        "{} passed",
        got.len()
    );
}

#[test]
fn udp_kernel_drops_are_counted() {
    // Tiny rings that nobody pops: the thread blocks, the small socket buffer overflows.
    let mut h = start_with(
        serde_json::json!({"mode": "udp", "address": "127.0.0.1:0",
            "receive_buffer_bytes": 4096}),
        1,
    );
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = 20_000u64;
    for i in 0..n {
        s.send_to(format!("<13>d {i:0>200}").as_bytes(), h.addr)
            .unwrap();
    }
    let drops = |h: &Harness| {
        h.metric("sluice_syslog_udp_kernel_drops{component=\"sys\"}")
            .unwrap() as u64
    };
    h.wait_until(
        "every datagram received or counted",
        Duration::from_secs(20),
        |h| h.got.len() as u64 + drops(h) == n,
    );
    assert!(drops(&h) > 0, "a 4KiB buffer overflows");
    h.stop();
    assert_eq!(h.got.len() as u64 + drops(&h), n);
}

// ---- TLS ----

struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "sluice test ca");
        let ca = p.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    /// A leaf signed by the CA: (cert PEM path, key PEM path, DER cert, DER key).
    fn leaf(&self, name: &str, client: bool) -> (PathBuf, PathBuf, Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let cp = self.dir.path().join(format!("{name}.pem"));
        let kp = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cp, cert.pem()).unwrap();
        std::fs::write(&kp, key.serialize_pem()).unwrap();
        (cp, kp, cert.der().to_vec(), key.serialize_der())
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn client(
        &self,
        addr: SocketAddr,
        cert: Option<(Vec<u8>, Vec<u8>)>,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let cfg = match cert {
            Some((c, k)) => b
                .with_client_auth_cert(
                    vec![CertificateDer::from(c)],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k)),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        let conn = rustls::ClientConnection::new(
            Arc::new(cfg),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }
}

#[test]
fn tls_frames_arrive() {
    let pki = Pki::new();
    let (cert, key, _, _) = pki.leaf("server", false);
    let mut h = start(serde_json::json!({"mode": "tls", "address": "127.0.0.1:0",
        "tls": {"cert_file": cert, "key_file": key}}));
    let mut c = pki.client(h.addr, None);
    let text: String = (0..100)
        .map(|i| octet(&format!("<13>1 - h app - - - tls {i}")))
        .collect();
    c.write_all(text.as_bytes()).unwrap();
    c.write_all(b"<13>lf over tls\n").unwrap();
    c.flush().unwrap();
    let got = h.wait_for(101, Duration::from_secs(5));
    assert_eq!(got.len(), 101);
    assert_eq!(got[0], "<13>1 - h app - - - tls 0");
    assert_eq!(got[100], "<13>lf over tls");
    c.conn.send_close_notify();
    let _ = c.flush();
    drop(c);
    // A client speaking plain TCP to the TLS port fails its handshake, counted.
    let mut plain = connect(&h);
    plain.write_all(b"<13>plain text\n").unwrap();
    assert!(closed_by_server(&mut plain, Duration::from_secs(3)));
    h.wait_until("the failed handshake", Duration::from_secs(3), |h| {
        h.metric("sluice_syslog_tls_handshake_failures_total{component=\"sys\"}") == Some(1)
    });
    assert_eq!(h.settle(Duration::from_millis(100)).len(), 101);
    h.stop();
}

/// Syslog over TLS is one way: clients like syslog-ng's `loggen` never read. Anything the
/// server sends after the handshake (TLS 1.3 session tickets) sits unread in the client's
/// socket, so its `close` becomes a reset that throws away what it had not sent yet.
#[test]
fn tls_server_sends_nothing_after_the_handshake() {
    let pki = Pki::new();
    let (cert, key, _, _) = pki.leaf("server", false);
    let mut h = start(serde_json::json!({"mode": "tls", "address": "127.0.0.1:0",
        "tls": {"cert_file": cert, "key_file": key}}));
    let mut c = pki.client(h.addr, None);
    c.write_all(b"<13>one way\n").unwrap();
    c.flush().unwrap();
    assert_eq!(
        c.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // The server finished its handshake writes before it read this message.
    assert_eq!(h.wait_for(1, Duration::from_secs(5)), ["<13>one way"]);
    c.sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    match c.sock.peek(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the server sent data after the handshake: {other:?}"),
    }
    h.stop();
}

#[test]
fn tls_client_certificates_are_required_with_a_ca_file() {
    let pki = Pki::new();
    let (cert, key, _, _) = pki.leaf("server", false);
    let (_, _, client_der, client_key) = pki.leaf("client", true);
    let mut h = start(serde_json::json!({"mode": "tls", "address": "127.0.0.1:0",
        "tls": {"cert_file": cert, "key_file": key, "ca_file": pki.ca_path()}}));
    let mut good = pki.client(h.addr, Some((client_der, client_key)));
    good.write_all(b"<13>with a certificate\n").unwrap();
    good.flush().unwrap();
    let got = h.wait_for(1, Duration::from_secs(5));
    assert_eq!(got, ["<13>with a certificate"]);
    // Without a certificate: refused, nothing arrives.
    let mut bad = pki.client(h.addr, None);
    let _ = bad.write_all(b"<13>anonymous\n");
    let _ = bad.flush();
    let mut buf = [0u8; 16];
    bad.sock
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(
        !matches!(bad.read(&mut buf), Ok(n) if n > 0),
        "the server refuses the anonymous client"
    );
    h.wait_until("the refused handshake", Duration::from_secs(3), |h| {
        h.metric("sluice_syslog_tls_handshake_failures_total{component=\"sys\"}") == Some(1)
    });
    assert_eq!(
        h.settle(Duration::from_millis(200)),
        ["<13>with a certificate"]
    );
    h.stop();
}

#[test]
fn tls_config_errors_name_the_problem() {
    let pki = Pki::new();
    let (cert, _, _, _) = pki.leaf("server", false);
    let cfg = config(serde_json::json!({"mode": "tls", "address": "127.0.0.1:0",
        "tls": {"cert_file": cert, "key_file": cert}}));
    let ctx = BuildCtx {
        shards: 1,
        batch_size: 8,
        data_dir: std::env::temp_dir(),
        registry: Registry::new(),
        lifecycle: Lifecycle::new(),
    };
    let err = cfg
        .build(&ctx, "sys")
        .err()
        .expect("a certificate is no key");
    assert!(err.contains("private key"), "{err}");
}

// ---- A real client ----

/// util-linux `logger` over TCP (octet counting and LF framing) and UDP, RFC 5424 and 3164.
/// Skipped where `logger` is not installed.
#[test]
fn util_linux_logger() {
    use std::process::Command;
    if Command::new("logger").arg("--help").output().is_err() {
        eprintln!("logger not installed; skipped");
        return;
    }
    let logger = |port: u16, args: &[&str]| {
        let st = Command::new("logger")
            .args(["-n", "127.0.0.1", "-P", &port.to_string()])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "logger {args:?}");
    };
    let mut h = start(tcp_cfg());
    let port = h.addr.port();
    logger(
        port,
        &[
            "-T",
            "--octet-count",
            "--rfc5424",
            "-t",
            "app",
            "octet 5424",
        ],
    );
    logger(port, &["-T", "--rfc3164", "-t", "app", "lf 3164"]);
    logger(
        port,
        &[
            "-T",
            "--octet-count",
            "--rfc3164",
            "-t",
            "app",
            "octet 3164",
        ],
    );
    let got = h.wait_for(3, Duration::from_secs(5));
    assert_eq!(got.len(), 3, "{got:?}");
    for (line, end) in got.iter().zip(["octet 5424", "lf 3164", "octet 3164"]) {
        assert!(line.starts_with('<') && line.ends_with(end), "{line:?}");
    }
    assert!(
        got[0].contains(">1 "),
        "RFC 5424 has a version: {:?}",
        got[0]
    );
    h.stop();

    let mut h = start(serde_json::json!({"mode": "udp", "address": "127.0.0.1:0"}));
    let port = h.addr.port();
    logger(port, &["-d", "--rfc5424", "-t", "app", "udp 5424"]);
    logger(port, &["-d", "--rfc3164", "-t", "app", "udp 3164"]);
    let got = h.wait_for(2, Duration::from_secs(5));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with('<') && got[0].ends_with("udp 5424"));
    assert!(got[1].starts_with('<') && got[1].ends_with("udp 3164"));
    h.stop();
}
