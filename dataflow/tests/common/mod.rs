//! Helpers for end-to-end tests that drive the real `sluice` binary: temp dirs, free ports,
//! bench data from `../shared/bench/gen_logs.py`, a tiny HTTP GET, a hand-built HTTP/1.1
//! endpoint for `http` sinks to post to ([`serve_http`]), and process control
//! ([`ChildGuard`] kills the child when a test ends, also when it panics).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn sluice() -> Command {
    let bin =
        std::env::var("SLUICE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sluice").to_string());
    let mut c = Command::new(bin);
    c.env("SLUICE_LOG", "info");
    c
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `../shared` beside the checkout (or `$SLUICE_SHARED`).
pub fn shared_dir() -> PathBuf {
    std::env::var("SLUICE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("../shared"))
}

/// Writes `lines` bench-generator lines of `format` to `path` (the real generator script).
pub fn gen_logs(format: &str, lines: usize, seed: u64, path: &Path) {
    let script = shared_dir().join("bench/gen_logs.py");
    assert!(
        script.exists(),
        "the bench generator is missing: {} (set SLUICE_SHARED)",
        script.display()
    );
    let out = std::fs::File::create(path).unwrap();
    let status = Command::new("python3")
        .arg(&script)
        .args([
            "--format",
            format,
            "--lines",
            &lines.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .stdout(out)
        .status()
        .expect("python3 runs");
    assert!(status.success());
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET a path; returns (status, body), or None if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The value of the first sample of `metric` whose labels contain `labels`.
pub fn metric(text: &str, metric: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            (l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
                && l.contains(labels)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls `/metrics` until `metric{labels}` reaches `want` (or panics after `limit`).
pub fn wait_metric(
    child: &mut Child,
    port: u16,
    metric_name: &str,
    labels: &str,
    want: f64,
    limit: Duration,
) -> String {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sluice exited early with {status}");
        }
        if let Some((200, body)) = http_get(port, "/metrics") {
            if metric(&body, metric_name, labels).unwrap_or(0.0) >= want {
                return body;
            }
        }
        assert!(
            start.elapsed() < limit,
            "{metric_name}{{{labels}}} did not reach {want} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn wait_ready(child: &mut Child, port: u16, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sluice exited early with {status}");
        }
        if let Some((200, _)) = http_get(port, "/ready") {
            return;
        }
        assert!(start.elapsed() < limit, "not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM and waits; returns the exit code.
pub fn terminate(child: &mut Child, limit: Duration) -> i32 {
    unsafe_kill(child.id(), 15);
    wait_exit(child, limit)
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("sluice did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unsafe_kill(pid: u32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let f = std::fs::File::create(log).unwrap();
    cmd.stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .expect("sluice starts")
}

/// Owns a started `sluice` and kills it (SIGKILL, then reaps it) when dropped, so a test that
/// panics leaves no process behind. Derefs to the [`Child`], so the helpers above take it.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// [`spawn_logged`], guarded.
    pub fn spawn_logged(cmd: &mut Command, log: &Path) -> ChildGuard {
        ChildGuard(spawn_logged(cmd, log))
    }
}

impl Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What a [`serve_http`] handler answers: status, content type, body.
pub type HttpReply = (u16, &'static str, String);

/// A hand-built HTTP/1.1 endpoint on `listener` for an `http` sink to post to: a thread per
/// connection, keep-alive, requests read by their `content-length`; `handler` gets each
/// request's body (UTF-8) and its number (from 0, across connections) and gives the answer.
pub fn serve_http<H>(listener: std::net::TcpListener, handler: H)
where
    H: Fn(u64, &str) -> HttpReply + Send + Sync + 'static,
{
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::{AtomicU64, Ordering};
    let handler = std::sync::Arc::new(handler);
    let count = std::sync::Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(c) = c else { return };
            let handler = handler.clone();
            let count = count.clone();
            std::thread::spawn(move || {
                let Ok(mut w) = c.try_clone() else { return };
                let mut r = BufReader::new(c);
                loop {
                    let mut len = 0usize;
                    let mut first = true;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let t = line.trim_end();
                        if t.is_empty() {
                            if first {
                                continue;
                            }
                            break;
                        }
                        first = false;
                        if let Some(v) = t.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let text = String::from_utf8(body).expect("UTF-8 body");
                    let n = count.fetch_add(1, Ordering::Relaxed);
                    let (status, content_type, reply) = handler(n, &text);
                    let out = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if w.write_all(out.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// The id of an event line `... ev-000000123 ...` (the tests' numbered events).
pub fn event_id(line: &str) -> Option<u64> {
    let at = line.find("ev-")? + 3;
    line.get(at..at + 9)?.parse().ok()
}

/// The resident set size of process `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
