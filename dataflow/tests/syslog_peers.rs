//! The `syslog` source through the real binary with real syslog software as the peer, over
//! loopback: syslog-ng's `loggen` sending RFC 5424 with octet counting over TCP and over TLS
//! (server certificate: `loadgen/tests/fixtures`), and a real `rsyslogd` that receives
//! util-linux `logger` messages on its own `imtcp` port and forwards them to Sluice with
//! `omfwd` (octet-counted framing, `RSYSLOG_SyslogProtocol23Format`). Each test checks that
//! every message arrives in the file sink exactly once, parsed into its fields, and that
//! `/metrics` counts the connections.
//!
//! Tools: `$SLUICE_LOGGEN` (a `loggen` from an unpacked `syslog-ng-core`, run with its
//! `usr/lib/syslog-ng` libraries and plugins; `.ci/run` sets it), `$SLUICE_RSYSLOGD`, else
//! `PATH` (and `/usr/sbin`). A missing tool skips the test with a loud `SKIPPED:` line, except
//! under `CI=true`, where it fails. `SLUICE_PEER_SCALE=N` multiplies the message counts.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// Kills a child that is still running when dropped, so a panicking test leaves no process
/// behind (`sluice`, `rsyslogd`, `loggen`).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn scale() -> usize {
    std::env::var("SLUICE_PEER_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(1)
}

fn under_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "0" && v != "false")
        .unwrap_or(false)
}

/// A required tool is missing: fail under CI, else say so loudly and let the test return.
fn missing(what: &str) {
    assert!(
        !under_ci(),
        "{what} is required under CI (.ci/run installs it)"
    );
    eprintln!("SKIPPED: {what} is not installed; this test did not run (see .ci/run)");
}

/// `$var` if set, else the first `name` on `PATH` or in `extra` directories.
fn find_tool(var: &str, name: &str, extra: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(var) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(extra.iter().copied())
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// syslog-ng's `loggen`, with the library and plugin paths of the tree it came from
/// (`PREFIX/bin/loggen` → `PREFIX/lib/syslog-ng`).
struct Loggen {
    bin: PathBuf,
    prefix: PathBuf,
}

impl Loggen {
    fn find() -> Option<Loggen> {
        let bin = find_tool("SLUICE_LOGGEN", "loggen", &[])?;
        let prefix = bin.canonicalize().ok()?.parent()?.parent()?.to_path_buf();
        let l = Loggen { bin, prefix };
        let ok = l
            .command()
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(l)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        let libs = self.prefix.join("lib/syslog-ng");
        let ld = match std::env::var("LD_LIBRARY_PATH") {
            Ok(old) if !old.is_empty() => format!("{}:{old}", libs.display()),
            _ => libs.display().to_string(),
        };
        c.env("SYSLOGNG_PREFIX", &self.prefix)
            .env("LD_LIBRARY_PATH", ld);
        c
    }
}

/// A running `sluice` with one syslog source `s` into the file sink `out` (and `s.dropped`
/// into `bad`).
struct Sluice {
    guard: Guard,
    api: u16,
    port: u16,
    out: PathBuf,
    bad: PathBuf,
    log: PathBuf,
}

fn start_sluice(dir: &Path, source: &str) -> Sluice {
    let out = dir.join("out.ndjson");
    let bad = dir.join("bad.ndjson");
    let log = dir.join("sluice.log");
    let api = free_port();
    let port = free_port();
    let cfg = dir.join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[engine]
shards = 2
data_dir = "{data}"

[api]
address = "127.0.0.1:{api}"

[sources.s]
type = "syslog"
address = "127.0.0.1:{port}"
{source}

[sinks.out]
type = "file"
inputs = ["s"]
path = "{out}"

[sinks.bad]
type = "file"
inputs = ["s.dropped"]
path = "{bad}"
"#,
            data = dir.join("data").display(),
            out = out.display(),
            bad = bad.display(),
        ),
    )
    .unwrap();
    let mut guard = Guard(spawn_logged(sluice().arg("run").arg(&cfg), &log));
    wait_ready(&mut guard.0, api, LIMIT);
    Sluice {
        guard,
        api,
        port,
        out,
        bad,
        log,
    }
}

impl Sluice {
    /// Polls the file sink until it holds `want` lines (panics with the logs after LIMIT).
    fn wait_lines(&mut self, want: usize, peer_log: &str) {
        let start = Instant::now();
        loop {
            let n = std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .lines()
                .count();
            if n >= want {
                return;
            }
            if let Some(status) = self.guard.0.try_wait().unwrap() {
                panic!("sluice exited early with {status}:\n{}", self.log_text());
            }
            if start.elapsed() > LIMIT {
                self.stalled(n, want, peer_log);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails with what every component counted, then whether a clean stop delivers the rest
    /// (events held somewhere) or not (events lost).
    fn stalled(&mut self, n: usize, want: usize, peer_log: &str) -> ! {
        let metrics = http_get(self.api, "/metrics").unwrap_or_default().1;
        let counters: Vec<&str> = metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
            .filter(|l| !l.contains("_bucket") && !l.contains("_sum") && !l.contains("_count"))
            .collect();
        let _ = Command::new("kill")
            .arg("-15")
            .arg(self.guard.0.id().to_string())
            .status();
        let start = Instant::now();
        let code = loop {
            match self.guard.0.try_wait().unwrap() {
                Some(status) => break format!("exit {status}"),
                None if start.elapsed() > LIMIT => break "no exit on SIGTERM".to_string(),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let after = std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .count();
        panic!(
            "{n} of {want} lines within {LIMIT:?} ({after} after SIGTERM: {code}); \
             dropped: {}\nmetrics:\n{}\nsluice log:\n{}\npeer:\n{peer_log}",
            std::fs::read_to_string(&self.bad)
                .unwrap_or_default()
                .lines()
                .count(),
            counters.join("\n"),
            self.log_text()
        );
    }

    fn metrics(&self) -> String {
        http_get(self.api, "/metrics").expect("/metrics answers").1
    }

    /// Stops sluice (SIGTERM, exit code 0) and returns the sink's events.
    fn finish(mut self) -> Vec<serde_json::Value> {
        assert_eq!(
            terminate(&mut self.guard.0, LIMIT),
            0,
            "{}",
            self.log_text()
        );
        assert_eq!(
            std::fs::read_to_string(&self.bad).unwrap_or_default(),
            "",
            "messages were dropped"
        );
        std::fs::read_to_string(&self.out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

/// Runs `cmd` to completion within LIMIT (killed if it hangs); returns its stderr.
fn run_peer(mut cmd: Command, dir: &Path, name: &str) -> String {
    let err_path = dir.join(format!("{name}.stderr"));
    let out_path = dir.join(format!("{name}.stdout"));
    let mut g = Guard(
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}")),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = g.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{name} did not finish in {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(status.success(), "{name} failed ({status}):\n{out}\n{err}");
    format!("{out}{err}")
}

/// The total from loggen's closing line (`average rate = ..., count=N, time=...`).
fn loggen_count(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.starts_with("average rate"))
        .filter_map(|l| l.split("count=").nth(1))
        .filter_map(|r| r.split(',').next())
        .filter_map(|n| n.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no count in loggen's output:\n{output}"))
}

/// Sends `per_conn` messages on each of `conns` connections with loggen (`args` select the
/// transport) into a source configured by `source`; checks arrival, fields and metrics.
fn loggen_run(source: &str, args: &[&str], conns: usize, per_conn: usize) -> Option<String> {
    let Some(loggen) = Loggen::find() else {
        missing("syslog-ng's loggen (SLUICE_LOGGEN or PATH)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s = start_sluice(dir.path(), source);
    let mut cmd = loggen.command();
    cmd.args(args)
        .args(["-P", "-Q", "-r", "100000000", "-I", "600"])
        .arg(format!("--active-connections={conns}"))
        .args([
            "-n",
            &per_conn.to_string(),
            "127.0.0.1",
            &s.port.to_string(),
        ]);
    let output = run_peer(cmd, dir.path(), "loggen");
    let sent = loggen_count(&output);
    assert_eq!(sent, conns * per_conn, "loggen sent fewer:\n{output}");
    s.wait_lines(sent, &output);
    let metrics = s.metrics();
    let accepted = metric(
        &metrics,
        "sluice_syslog_connections_accepted_total",
        "component=\"s\"",
    );
    assert_eq!(accepted, Some(conns as f64), "{metrics}");
    assert_eq!(
        metric(&metrics, "sluice_events_in_total", "component=\"s\""),
        Some(sent as f64),
        "{metrics}"
    );
    let events = s.finish();
    assert_eq!(events.len(), sent, "arrived more than loggen sent");
    // Every (thread, seq) exactly once, each connection's sequence complete.
    let mut seen: BTreeMap<u64, HashSet<u64>> = BTreeMap::new();
    for e in &events {
        assert_eq!(e["version"], 1, "{e}");
        assert_eq!(e["facility"], "auth", "{e}");
        assert_eq!(e["severity"], "info", "{e}");
        assert!(e["timestamp"].as_str().unwrap().ends_with('Z'), "{e}");
        assert!(!e["host"].as_str().unwrap_or("").is_empty(), "{e}");
        assert!(e["appname"].as_str().unwrap().starts_with("prg"), "{e}");
        assert!(e["procid"].is_u64(), "{e}");
        let msg = e["message"].as_str().unwrap();
        let field = |name: &str| -> u64 {
            msg.split(", ")
                .find_map(|p| p.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {msg:?}"))
        };
        let (thread, seq) = (field("thread: "), field("seq: "));
        assert!(seq < per_conn as u64, "{e}");
        assert!(
            seen.entry(thread).or_default().insert(seq),
            "duplicate: {e}"
        );
    }
    assert_eq!(seen.len(), conns, "threads: {:?}", seen.keys());
    for seqs in seen.values() {
        assert_eq!(seqs.len(), per_conn);
    }
    Some(metrics)
}

#[test]
fn loggen_over_tcp_octet_counted() {
    let per_conn = 10_000 * scale();
    loggen_run(r#"mode = "tcp""#, &["-i", "-S"], 2, per_conn);
}

#[test]
fn loggen_over_tls() {
    let fixtures = repo_root().join("loadgen/tests/fixtures");
    let source = format!(
        "mode = \"tls\"\ntls = {{ cert_file = \"{}\", key_file = \"{}\" }}",
        fixtures.join("cert.pem").display(),
        fixtures.join("key.pem").display()
    );
    let per_conn = 1_500 * scale();
    if let Some(metrics) = loggen_run(&source, &["-U"], 2, per_conn) {
        assert_eq!(
            metric(
                &metrics,
                "sluice_syslog_tls_handshake_failures_total",
                "component=\"s\""
            ),
            Some(0.0),
            "{metrics}"
        );
    }
}

/// Waits until something accepts connections on `port` (rsyslog's imtcp), while `child` runs.
fn wait_listening(child: &mut Child, port: u16, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "rsyslogd exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(start.elapsed() < LIMIT, "rsyslogd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rsyslog_forwards_octet_counted() {
    let Some(rsyslogd) = find_tool("SLUICE_RSYSLOGD", "rsyslogd", &["/usr/sbin", "/sbin"]) else {
        missing("rsyslogd (SLUICE_RSYSLOGD, PATH or /usr/sbin)");
        return;
    };
    let Some(logger) = find_tool("SLUICE_LOGGER", "logger", &[]) else {
        missing("util-linux logger");
        return;
    };
    let n = 3_000 * scale();
    let dir = tempfile::tempdir().unwrap();
    let mut s = start_sluice(dir.path(), r#"mode = "tcp""#);

    // rsyslog with its own work dir and pid file, no local sockets or files: imtcp in,
    // omfwd out with octet counting (an action queue that retries, so nothing is lost if
    // the connection to Sluice is re-made).
    let work = dir.path().join("rsyslog");
    std::fs::create_dir(&work).unwrap();
    let inport = free_port();
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{inport}")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
       queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")
"#,
            work = work.display(),
            port = s.port,
        ),
    )
    .unwrap();
    let rs_log = dir.path().join("rsyslogd.log");
    let mut rs = Guard(
        Command::new(&rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&rs_log).unwrap())
            .spawn()
            .expect("rsyslogd starts"),
    );
    wait_listening(&mut rs.0, inport, &rs_log);

    // logger sends each line of its input as one RFC 5424 message, octet counted, over one
    // TCP connection to rsyslog.
    let input = dir.path().join("lines.txt");
    let lines: String = (0..n)
        .map(|i| format!("relayed message {i:06}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let mut cmd = Command::new(&logger);
    cmd.args(["-T", "--octet-count", "--rfc5424", "-n", "127.0.0.1", "-P"])
        .arg(inport.to_string())
        .args(["-t", "peerapp", "-p", "local4.notice", "--msgid", "RELAY"])
        .args(["--sd-id", "peer@32473", "--sd-param", "via=\"rsyslog\""])
        .args(["-f"])
        .arg(&input);
    let out = run_peer(cmd, dir.path(), "logger");
    s.wait_lines(
        n,
        &format!(
            "{out}\nrsyslogd:\n{}",
            std::fs::read_to_string(&rs_log).unwrap_or_default()
        ),
    );

    let metrics = s.metrics();
    assert!(
        metric(
            &metrics,
            "sluice_syslog_connections_accepted_total",
            "component=\"s\""
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
    // rsyslogd stops (SIGTERM) before Sluice does, so its connection is closed cleanly.
    let _ = Command::new("kill")
        .arg("-15")
        .arg(rs.0.id().to_string())
        .status();
    let start = Instant::now();
    while rs.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < LIMIT, "rsyslogd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = s.finish();
    assert_eq!(events.len(), n, "each message exactly once");
    let mut seen = HashSet::new();
    for e in &events {
        assert_eq!(e["version"], 1, "{e}");
        assert_eq!(e["facility"], "local4", "{e}");
        assert_eq!(e["severity"], "notice", "{e}");
        assert_eq!(e["level"], "notice", "{e}");
        assert_eq!(e["appname"], "peerapp", "{e}");
        assert_eq!(e["msgid"], "RELAY", "{e}");
        assert!(!e["host"].as_str().unwrap_or("").is_empty(), "{e}");
        assert!(e["timestamp"].as_str().unwrap().ends_with('Z'), "{e}");
        assert_eq!(e["structured_data"]["peer@32473"]["via"], "rsyslog", "{e}");
        let msg = e["message"].as_str().unwrap();
        let i: usize = msg
            .strip_prefix("relayed message ")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unexpected message {msg:?}"));
        assert!(i < n && seen.insert(i), "{e}");
    }
}
