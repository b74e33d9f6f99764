//! The real `sluice-loadgen` binary: every format parses as that format, determinism,
//! pacing, rotation, each target against a small listener in the test (a hand-built HTTP/1.1
//! server for `http`, also for `--retry` / `--acked-ids`), and `--listen`.

use regex::Regex;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice-loadgen"))
}

fn run(args: &[&str]) -> Output {
    let out = loadgen().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn summary(out: &Output) -> serde_json::Value {
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {err}"))
}

fn stdout_lines(args: &[&str]) -> Vec<String> {
    String::from_utf8(run(args).stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn stamp_of(s: &str) -> (u64, u64) {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE
        .get_or_init(|| Regex::new(r#"(?:^|[^\w])seq\W{1,3}(\d+)\W+sent_ns\W{1,3}(\d+)"#).unwrap());
    let c = re.captures(s).unwrap_or_else(|| panic!("no stamp in {s}"));
    (c[1].parse().unwrap(), c[2].parse().unwrap())
}

#[test]
fn json_lines_parse_and_carry_seq_and_sent_ns() {
    let lines = stdout_lines(&["--count", "500"]);
    assert_eq!(lines.len(), 500);
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(
            v["level"].is_string() && v["http"]["status"].is_u64(),
            "{l}"
        );
        assert!(v["service"].as_str().unwrap().contains('-'));
        assert_eq!(v["seq"], i as u64);
        assert!(v["sent_ns"].as_u64().unwrap() > 1_700_000_000_000_000_000);
    }
    let levels: BTreeSet<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["level"].to_string())
        .collect();
    assert_eq!(levels.len(), 4, "all four levels in 500 events");
}

#[test]
fn syslog_lines_match_their_rfcs() {
    let rfc5424 = Regex::new(
        r#"^<(\d{1,3})>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [\w-]+ [\w-]+ \d+ req \[loadgen@32473 seq="(\d+)" sent_ns="(\d+)"\] (\{.*\})$"#,
    )
    .unwrap();
    for (i, l) in stdout_lines(&["--format", "syslog5424", "--count", "300"])
        .iter()
        .enumerate()
    {
        let c = rfc5424
            .captures(l)
            .unwrap_or_else(|| panic!("not RFC 5424: {l}"));
        let pri: u32 = c[1].parse().unwrap();
        assert!([131, 132, 134, 135].contains(&pri), "{l}");
        assert_eq!(c[2].parse::<usize>().unwrap(), i);
        let msg: serde_json::Value = serde_json::from_str(&c[4]).unwrap();
        assert!(msg["trace_id"].as_str().unwrap().len() == 32);
    }
    // `syslog` is the old name of syslog5424.
    assert_eq!(
        stdout_lines(&["--format", "syslog", "--count", "50", "--no-stamp"]),
        stdout_lines(&["--format", "syslog5424", "--count", "50", "--no-stamp"])
    );
    assert!(
        stdout_lines(&["--format", "syslog", "--count", "5", "--no-stamp"])
            .iter()
            .all(|l| l.contains(" req - {"))
    );
    let rfc3164 = Regex::new(
        r"^<\d{1,3}>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d [\w-]+ [\w-]+\[\d+\]: (debug|info|warn|error): .+ seq=(\d+) sent_ns=\d+$",
    )
    .unwrap();
    for (i, l) in stdout_lines(&["--format", "syslog3164", "--count", "300"])
        .iter()
        .enumerate()
    {
        let c = rfc3164
            .captures(l)
            .unwrap_or_else(|| panic!("not RFC 3164: {l}"));
        assert_eq!(c[3].parse::<usize>().unwrap(), i);
    }
}

#[test]
fn access_logs_are_combined_format() {
    let combined = Regex::new(
        r#"^10\.\d+\.\d+\.\d+ - (\S+) \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(GET|POST|PUT|DELETE) (/\S*) HTTP/1\.1" (\d{3}) \d+ "[^"]*" "[^"]*"$"#,
    )
    .unwrap();
    for f in ["apache", "nginx"] {
        let lines = stdout_lines(&["--format", f, "--count", "300"]);
        assert_eq!(lines.len(), 300);
        for l in &lines {
            let c = combined.captures(l).unwrap_or_else(|| panic!("{f}: {l}"));
            if f == "nginx" {
                assert_eq!(&c[1], "-");
            } else {
                assert!(c[1].starts_with("user"));
            }
            assert!(c[3].contains("?seq=") && c[3].contains("&sent_ns="), "{l}");
        }
    }
}

#[test]
fn logfmt_lines_are_key_value_pairs() {
    let pair = Regex::new(r#"([a-z_]+)=("[^"]*"|[^ "]+)"#).unwrap();
    let pair = &pair;
    for (i, l) in stdout_lines(&["--format", "logfmt", "--count", "300"])
        .iter()
        .enumerate()
    {
        // The pairs cover the whole line, separated by single spaces.
        let rebuilt: Vec<&str> = pair.find_iter(l).map(|m| m.as_str()).collect();
        assert_eq!(rebuilt.join(" "), *l);
        let keys: Vec<String> = pair.captures_iter(l).map(|c| c[1].to_string()).collect();
        for k in [
            "ts", "level", "service", "host", "msg", "status", "seq", "sent_ns",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing in {l}");
        }
        assert_eq!(stamp_of(l).0, i as u64);
    }
}

#[test]
fn java_multiline_events_have_stack_traces() {
    let text =
        String::from_utf8(run(&["--format", "java-multiline", "--count", "200"]).stdout).unwrap();
    let head =
        Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARN|ERROR) \[").unwrap();
    let mut events: Vec<Vec<&str>> = Vec::new();
    for l in text.lines() {
        if head.is_match(l) {
            events.push(vec![l]);
        } else {
            events.last_mut().expect("starts with a head line").push(l);
        }
    }
    assert_eq!(events.len(), 200);
    let mut caused = 0;
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(stamp_of(ev[0]).0, i as u64);
        assert!(ev[1].contains("Exception: "), "{ev:?}");
        let frames = ev
            .iter()
            .take_while(|l| !l.starts_with("Caused by:"))
            .filter(|l| l.starts_with("\tat "))
            .count();
        assert!((5..=30).contains(&frames), "{frames} frames");
        if ev.iter().any(|l| l.starts_with("Caused by: ")) {
            caused += 1;
            assert!(ev.last().unwrap().starts_with("\t... "));
        }
    }
    assert!(caused > 20 && caused < 120, "{caused} of 200 with a cause");
}

#[test]
fn same_seed_same_events_and_counts_append() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.log");
    for _ in 0..2 {
        let out = run(&[
            "--count",
            "5000",
            "--no-stamp",
            "--output",
            f.to_str().unwrap(),
        ]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("sent 5000 events"));
    }
    let text = std::fs::read_to_string(&f).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_000, "the second run appends");
    assert_eq!(lines[..5000], lines[5000..], "same seed, same lines");
    assert!(!text.contains("sent_ns"));
    for fmt in ["json", "logfmt", "java-multiline", "nginx"] {
        let a = stdout_lines(&[
            "--format",
            fmt,
            "--count",
            "100",
            "--no-stamp",
            "--seed",
            "1",
        ]);
        let b = stdout_lines(&[
            "--format",
            fmt,
            "--count",
            "100",
            "--no-stamp",
            "--seed",
            "1",
        ]);
        let c = stdout_lines(&[
            "--format",
            fmt,
            "--count",
            "100",
            "--no-stamp",
            "--seed",
            "2",
        ]);
        assert_eq!(a, b, "{fmt}");
        assert_ne!(a, c, "{fmt}");
    }
}

#[test]
fn rate_is_kept_without_drift() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("paced.log");
    let t = Instant::now();
    let out = run(&[
        "--rate",
        "2000",
        "--duration",
        "2s",
        "--json",
        "-o",
        f.to_str().unwrap(),
    ]);
    let wall = t.elapsed().as_secs_f64();
    let s = summary(&out);
    let sent = s["sent"].as_u64().unwrap();
    assert!((3800..=4200).contains(&sent), "{s}");
    let rate = s["rate_actual"].as_f64().unwrap();
    assert!((1800.0..=2200.0).contains(&rate), "{s}");
    assert!((1.8..4.0).contains(&wall), "{wall}");
    assert_eq!(s["rate_target"], 2000.0);
    // Intended send times: event k is stamped start + k/2000 s exactly.
    let text = std::fs::read_to_string(&f).unwrap();
    let stamps: Vec<(u64, u64)> = text.lines().map(stamp_of).collect();
    let (s0, t0) = stamps[0];
    for &(k, tk) in stamps.iter().step_by(97) {
        let want = t0 + (k - s0) * 500_000;
        assert!(tk.abs_diff(want) < 1000, "event {k}: {tk} vs {want}");
    }
}

#[test]
fn files_rotate_by_rename_and_by_copytruncate() {
    for mode in ["rename", "copytruncate"] {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        run(&[
            "--count",
            "250",
            "--rotate-every",
            "100",
            "--rotate-mode",
            mode,
            "-o",
            f.to_str().unwrap(),
        ]);
        let count = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().lines().count();
        let p1 = dir.path().join("app.log.1");
        let p2 = dir.path().join("app.log.2");
        assert_eq!(count(&p1), 100, "{mode}");
        assert_eq!(count(&p2), 100, "{mode}");
        assert_eq!(count(&f), 50, "{mode}");
        assert!(!dir.path().join("app.log.3").exists());
        // Nothing lost or repeated across the rotations.
        let mut seqs: Vec<u64> = [p1, p2, f]
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(|l| stamp_of(l).0)
                    .collect::<Vec<_>>()
            })
            .collect();
        seqs.sort();
        assert_eq!(seqs, (0..250).collect::<Vec<u64>>(), "{mode}");
    }
}

/// Accepts `conns` connections and returns everything each one sent, until EOF.
fn tcp_sink(conns: usize) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut readers = Vec::new();
        for _ in 0..conns {
            let (mut c, _) = l.accept().unwrap();
            readers.push(std::thread::spawn(move || {
                let mut v = Vec::new();
                c.read_to_end(&mut v).unwrap();
                v
            }));
        }
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    (port, h)
}

#[test]
fn tcp_newline_framing_spreads_over_connections() {
    let (port, h) = tcp_sink(3);
    let out = run(&[
        "-o",
        &format!("tcp://127.0.0.1:{port}"),
        "--connections",
        "3",
        "--count",
        "1000",
        "--json",
    ]);
    assert_eq!(summary(&out)["sent"], 1000);
    let per_conn = h.join().unwrap();
    let mut seqs = Vec::new();
    for data in &per_conn {
        let text = String::from_utf8(data.clone()).unwrap();
        let n = text.lines().count();
        assert!((330..=334).contains(&n), "round robin: {n}");
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
        }
    }
    seqs.sort();
    assert_eq!(seqs, (0..1000).collect::<Vec<u64>>());
}

#[test]
fn tcp_octet_counting_frames_multiline_events_whole() {
    let (port, h) = tcp_sink(1);
    run(&[
        "--target",
        "tcp",
        "-o",
        &format!("127.0.0.1:{port}"),
        "--framing",
        "octet",
        "--format",
        "java-multiline",
        "--count",
        "300",
    ]);
    let data = h.join().unwrap().pop().unwrap();
    // LEN SP MSG, repeated; each MSG one whole multi-line event.
    let mut rest = &data[..];
    let mut n = 0;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
        let msg = std::str::from_utf8(&rest[sp + 1..sp + 1 + len]).unwrap();
        assert_eq!(stamp_of(msg).0, n);
        assert!(msg.contains("\n\tat "));
        rest = &rest[sp + 1 + len..];
        n += 1;
    }
    assert_eq!(n, 300);
}

#[test]
fn udp_sends_one_datagram_per_event() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let out = run(&[
        "-o",
        &format!("udp://127.0.0.1:{port}"),
        "--format",
        "syslog3164",
        "--count",
        "200",
        "--rate",
        "5000",
        "--json",
    ]);
    assert_eq!(summary(&out)["sent"], 200);
    let mut buf = [0u8; 65536];
    let mut seqs = Vec::new();
    while seqs.len() < 200 {
        let Ok(n) = sock.recv(&mut buf) else { break };
        let d = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(d.starts_with('<') && !d.contains('\n'), "{d}");
        seqs.push(stamp_of(d).0);
    }
    assert_eq!(seqs, (0..200).collect::<Vec<u64>>());
}

/// A tiny HTTP server: records (path, headers, decoded body) of every request, answers
/// `status`.
#[allow(clippy::type_complexity)]
type Received = Arc<Mutex<Vec<(String, Vec<String>, String)>>>;

fn http_sink(status: u16) -> (u16, Received) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (port, serve_http(l, move |_| status))
}

/// A hand-built HTTP/1.1 server: answers request `n` (counted over all connections) with
/// `status(n)` and records the 2xx-answered ones.
fn serve_http(l: TcpListener, status: impl Fn(usize) -> u16 + Send + Sync + 'static) -> Received {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let status = Arc::new(status);
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let g = g.clone();
            let (status, count) = (status.clone(), count.clone());
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        headers.push(h);
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    if headers.iter().any(|h| h == "content-encoding: gzip") {
                        let mut plain = Vec::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut plain)
                            .unwrap();
                        body = plain;
                    }
                    let status = status(count.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
                    if (200..300).contains(&status) {
                        g.lock()
                            .unwrap()
                            .push((path, headers, String::from_utf8(body).unwrap()));
                    }
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    if w.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    got
}

/// `--retry` waits for a server that is not up yet and sends 503-answered requests again;
/// `--acked-ids` lists each 2xx-answered request's seq range, together every event once.
#[test]
fn http_retry_until_acknowledged_and_acked_ids() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let acked = dir.path().join("acked.txt");
    let child = loadgen()
        .args(["--count", "1000", "--batch", "100", "--concurrency", "2"])
        .args(["--retry", "--json", "-o"])
        .arg(format!("http://127.0.0.1:{port}/logs"))
        .arg("--acked-ids")
        .arg(&acked)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got = serve_http(l, |n| if n < 3 { 503 } else { 200 });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let s = summary(&out);
    assert_eq!(s["sent"], 1000, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert!(s["retries"].as_u64().unwrap() >= 3, "{s}");
    let mut seqs = Vec::new();
    for l in std::fs::read_to_string(&acked).unwrap().lines() {
        let (first, count) = l.split_once(' ').unwrap();
        let (first, count): (u64, u64) = (first.parse().unwrap(), count.parse().unwrap());
        seqs.extend(first..first + count);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..1000).collect::<Vec<u64>>());
    let bodies = got.lock().unwrap();
    let received: BTreeSet<u64> = bodies
        .iter()
        .flat_map(|(_, _, b)| b.lines().map(|l| stamp_of(l).0).collect::<Vec<_>>())
        .collect();
    assert_eq!(received.len(), 1000);
}

#[test]
fn http_ndjson_batches_gzip_and_api_key() {
    let (port, got) = http_sink(200);
    let out = run(&[
        "-o",
        &format!("http://127.0.0.1:{port}"),
        "--batch",
        "100",
        "--concurrency",
        "2",
        "--gzip",
        "--api-key",
        "s3cret",
        "--count",
        "1000",
        "--json",
    ]);
    let s = summary(&out);
    assert_eq!(s["sent"], 1000);
    assert_eq!(s["errors"], 0);
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 10);
    let mut seqs = Vec::new();
    for (path, headers, body) in got.iter() {
        assert_eq!(path, "/logs");
        assert!(headers.contains(&"x-api-key: s3cret".to_string()));
        assert!(headers.contains(&"content-type: application/x-ndjson".to_string()));
        assert_eq!(body.lines().count(), 100);
        for l in body.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
        }
    }
    seqs.sort();
    assert_eq!(seqs, (0..1000).collect::<Vec<u64>>());
}

#[test]
fn http_bulk_pairs_single_objects_and_errors() {
    let (port, got) = http_sink(200);
    run(&[
        "-o",
        &format!("http://127.0.0.1:{port}/_bulk"),
        "--format",
        "logfmt",
        "--batch",
        "50",
        "--count",
        "120",
    ]);
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 3);
        let mut docs = 0;
        for (path, _, body) in got.iter() {
            assert_eq!(path, "/_bulk");
            let lines: Vec<&str> = body.lines().collect();
            assert_eq!(lines.len() % 2, 0);
            for pair in lines.chunks(2) {
                assert_eq!(pair[0], r#"{"index":{}}"#);
                let v: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
                assert!(v["message"].as_str().unwrap().starts_with("ts="));
                docs += 1;
            }
        }
        assert_eq!(docs, 120);
    }
    let (port, got) = http_sink(200);
    run(&[
        "-o",
        &format!("http://127.0.0.1:{port}"),
        "--endpoint",
        "/log",
        "--count",
        "5",
    ]);
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|(p, _, b)| p == "/log"
        && serde_json::from_str::<serde_json::Value>(b)
            .unwrap()
            .is_object()));
    let (port, _) = http_sink(500);
    let out = run(&[
        "-o",
        &format!("http://127.0.0.1:{port}"),
        "--count",
        "300",
        "--batch",
        "100",
        "--json",
    ]);
    let s = summary(&out);
    assert_eq!(s["sent"], 0);
    assert_eq!(s["errors"], 300);
    assert!(s["last_error"].as_str().unwrap().contains("500"));
}

fn tls_server() -> (u16, std::thread::JoinHandle<String>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(format!("{dir}/cert.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        let conn = rustls::ServerConnection::new(cfg).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut v = Vec::new();
        let _ = tls.read_to_end(&mut v);
        String::from_utf8(v).unwrap()
    });
    (port, h)
}

#[test]
fn tls_with_a_ca_file_or_insecure() {
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cert.pem");
    let (port, h) = tls_server();
    run(&[
        "-o",
        &format!("tls://localhost:{port}"),
        "--tls-ca",
        ca,
        "--format",
        "syslog5424",
        "--count",
        "100",
    ]);
    let text = h.join().unwrap();
    assert_eq!(text.lines().count(), 100);
    assert!(text.lines().all(|l| l.starts_with('<')));
    let (port, h) = tls_server();
    run(&[
        "-o",
        &format!("tls://127.0.0.1:{port}"),
        "--tls-insecure",
        "--framing",
        "octet",
        "--count",
        "10",
    ]);
    assert!(h.join().unwrap().starts_with(|c: char| c.is_ascii_digit()));
    // No trust configured: explained, not attempted.
    let out = loadgen()
        .args(["-o", "tls://127.0.0.1:1", "--count", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-ca"));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn post(port: u16, body: &str) -> String {
    let t = Instant::now();
    let mut c = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(_) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    };
    write!(
        c,
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    resp
}

/// Sends over HTTP to this process's own `--listen` (a fresh port) with `args`, and returns
/// the JSON summary: the latency mode without Sluice between.
fn round_trip(args: &[&str]) -> serde_json::Value {
    let port = free_port();
    let (to, listen) = (
        format!("http://127.0.0.1:{port}"),
        format!("127.0.0.1:{port}"),
    );
    let mut all = vec!["-o", &to, "--listen", &listen, "--json"];
    all.extend_from_slice(args);
    summary(&run(&all))
}

/// Starts a loadgen that only listens on `port` for up to 2 s, with `args`.
fn listen_alone(port: u16, args: &[&str]) -> std::process::Child {
    let listen = format!("127.0.0.1:{port}");
    loadgen()
        .args(["--listen", &listen, "--duration", "2s", "--json"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn listen_computes_latency_and_reports_missing_and_duplicates() {
    let port = free_port();
    let child = listen_alone(port, &["--expect", "10"]);
    let now = unix_now_ns();
    let sent = now - 20_000_000; // 20 ms ago
                                 // seq 0..=7 (8 and 9 missing), 3 twice; one event as Sluice re-encodes syslog.
    let mut body = String::new();
    for seq in 0..7 {
        body.push_str(&format!("{{\"a\":1,\"seq\":{seq},\"sent_ns\":{sent}}}\n"));
    }
    body.push_str(&format!(
        "{{\"structured_data\":{{\"loadgen@32473\":{{\"seq\":\"7\",\"sent_ns\":\"{sent}\"}}}}}}\n"
    ));
    body.push_str(&format!("{{\"seq\":3,\"sent_ns\":{sent}}}\n"));
    body.push_str("{\"no\":\"stamp\"}\n");
    let resp = post(port, &body);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let s = summary(&out);
    let lat = &s["latency"];
    assert_eq!(lat["received"], 9, "{s}");
    assert_eq!(lat["missing"], 2, "{s}");
    assert_eq!(lat["first_missing"], serde_json::json!([8, 9]));
    assert_eq!(lat["duplicates"], 1);
    assert_eq!(lat["unstamped"], 1);
    let p50 = lat["p50_ms"].as_f64().unwrap();
    assert!((19.0..1000.0).contains(&p50), "{s}");
    assert!(lat["max_ms"].as_f64().unwrap() >= lat["p99_ms"].as_f64().unwrap());
}

#[test]
fn send_and_listen_in_one_process() {
    // loadgen sends over HTTP to its own --listen: the latency mode without Sluice between.
    let s = round_trip(&["--rate", "2000", "--count", "1000", "--batch", "20"]);
    assert_eq!(s["sent"], 1000, "{s}");
    let lat = &s["latency"];
    assert_eq!(lat["received"], 1000, "{s}");
    assert_eq!(lat["missing"], 0);
    assert_eq!(lat["duplicates"], 0);
    assert_eq!(lat["count"], 1000);
    assert_eq!(lat["correction"], "intended");
    assert!(lat["p50_ms"].as_f64().unwrap() < 500.0, "{s}");
    // HDR's record_correct back-fills samples for latencies above the 1/rate interval, so
    // the histogram holds at least one sample per event, more after a stall.
    let s = round_trip(&[
        "--rate",
        "5000",
        "--count",
        "500",
        "--batch",
        "100",
        "--latency-correction",
        "record-correct",
    ]);
    let lat = &s["latency"];
    assert_eq!(lat["received"], 500, "{s}");
    assert_eq!(lat["correction"], "record-correct");
    // Batches of 100 at 5000/s wait up to 20 ms (100 intervals) for their last event.
    assert!(lat["count"].as_u64().unwrap() > 500, "{s}");
}

#[test]
fn warmup_events_count_for_loss_but_not_for_latency() {
    // At 2,000/s with intended stamps, event j is stamped start + j × 0.5 ms: a 250 ms
    // warm-up is exactly events 0..500.
    let s = round_trip(&[
        "--rate", "2000", "--count", "1000", "--batch", "20", "--warmup", "250ms",
    ]);
    let lat = &s["latency"];
    assert_eq!(lat["received"], 1000, "{s}");
    assert_eq!(lat["missing"], 0, "{s}");
    assert_eq!(lat["warmup_excluded"], 500, "{s}");
    assert_eq!(lat["count"], 500, "{s}");
    assert_eq!(lat["warmup_s"], 0.25, "{s}");
    // Listening alone, the warm-up runs from the start of listening: events sent before
    // it ends are seen (not missing) and not measured.
    let port = free_port();
    let child = listen_alone(port, &["--expect", "3", "--warmup", "1h"]);
    let now = unix_now_ns();
    let body: String = (0..3)
        .map(|seq| format!("{{\"seq\":{seq},\"sent_ns\":{now}}}\n"))
        .collect();
    assert!(post(port, &body).starts_with("HTTP/1.1 200"));
    let s = summary(&child.wait_with_output().unwrap());
    let lat = &s["latency"];
    assert_eq!(lat["received"], 3, "{s}");
    assert_eq!(lat["missing"], 0, "{s}");
    assert_eq!(lat["warmup_excluded"], 3, "{s}");
    assert_eq!(lat["count"], 0, "{s}");
}

#[test]
fn bad_arguments_are_explained() {
    let err = |args: &[&str]| {
        let out = loadgen().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(err(&["--format", "xml"]).contains("unknown format `xml`"));
    assert!(err(&["--rate=-5", "--count", "1"]).contains("--rate must be positive"));
    assert!(err(&["--target", "kafka", "-o", "k:9092"]).contains("Kafka issue"));
    assert!(err(&["-o", "tcp://127.0.0.1:1", "--count", "1"]).contains("cannot connect"));
    assert!(err(&["--rotate-every", "5", "--count", "1"]).contains("needs a file target"));
    let help = String::from_utf8(loadgen().arg("--help").output().unwrap().stdout).unwrap();
    for s in ["Examples:", "--listen", "octet", "_bulk", "copytruncate"] {
        assert!(help.contains(s), "help lacks {s}");
    }
}

/// The load generator runs without transparent huge pages: with them, the first touch of
/// each 2 MiB region zeroed it at once, and on a VM those faults made the first ~100 ms of a
/// run's events look 40-80 ms late (see `disable_transparent_huge_pages`).
#[test]
fn runs_without_transparent_huge_pages() {
    let port = free_port();
    let child = listen_alone(port, &["--expect", "1"]);
    // Answering a request proves the process is past its first line of `main`.
    let now = unix_now_ns();
    assert!(post(port, &format!("{{\"seq\":0,\"sent_ns\":{now}}}\n")).starts_with("HTTP/1.1 200"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        eprintln!("this kernel does not report THP_enabled in /proc/PID/status; not checked");
        return;
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
