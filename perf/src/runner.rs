//! One timed run of one workload: writes the pipeline into a scratch directory, spawns
//! `sluice run`, polls `/metrics` until the sink has counted every expected event, reads CPU and
//! peak RSS from `/proc`, stops the process with SIGTERM and checks how it ended.

use std::env;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{self, Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::data::{self, Dataset};
use crate::measure;
use crate::metrics;
use crate::report::{Figures, RunReport};
use crate::sender::{self, Sender};
use crate::workloads::{pipeline_toml, PipelineParams, Workload, SINK_ID};

/// How often `/metrics` is polled; the resolution of the timing.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often a long run reports its progress on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Lines of the sluice log shown when a run fails.
const LOG_TAIL_LINES: usize = 20;

/// Everything one run needs.
pub struct RunSpec<'a> {
    pub sluice: &'a Path,
    pub workload: Workload,
    pub dataset: &'a Dataset,
    pub shards: u32,
    /// 1-based run number.
    pub run: u32,
    /// Give up when the sink has not counted every event this long after spawn.
    pub timeout: Duration,
    /// Wait after completion before the last scrape that checks for overshoot.
    pub settle: Duration,
    /// How long sluice may take to exit after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Put a disk buffer in front of the workload's file sink (W3).
    pub disk_buffer: bool,
}

/// Runs the workload once. The scratch directory (pipeline, sluice's data dir and log) is removed
/// after a good run and kept after a failed one; W3's output file is always removed.
pub fn run_once(spec: &RunSpec<'_>) -> Result<RunReport> {
    let run_id = format!(
        "{}-{}-{}",
        process::id(),
        spec.workload.id().to_ascii_lowercase(),
        spec.run
    );
    let mut scratch = Scratch::create(&run_id)?;
    let output = spec.workload.output_path(&run_id).map(RemoveOnDrop::new);
    let log_path = scratch.path.join("sluice.log");
    match run_in(
        spec,
        &run_id,
        &scratch.path,
        &log_path,
        output.as_ref().map(|o| o.0.as_path()),
    ) {
        Ok(report) => Ok(report),
        Err(e) => {
            scratch.keep = true;
            let tail = log_tail(&log_path, LOG_TAIL_LINES).unwrap_or_default();
            let mut msg = format!("{e:#}\n  run files kept in {}", scratch.path.display());
            if !tail.trim().is_empty() {
                msg.push_str(&format!("\n  last lines of {}:", log_path.display()));
                for line in tail.lines() {
                    msg.push_str("\n    ");
                    msg.push_str(line);
                }
            }
            Err(anyhow!(msg))
        }
    }
}

fn run_in(
    spec: &RunSpec<'_>,
    run_id: &str,
    dir: &Path,
    log_path: &Path,
    output: Option<&Path>,
) -> Result<RunReport> {
    let expected = spec.workload.expected_events(&spec.dataset.counts);
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let source_port = free_port()?;
    let source_addr = SocketAddr::from(([127, 0, 0, 1], source_port));
    // Network workloads: the sender's input is read and cut before sluice starts.
    let sender = Sender::prepare(spec.workload.delivery(), &spec.dataset.path)?;
    let engine_data = dir.join("data");
    fs::create_dir_all(&engine_data)
        .with_context(|| format!("creating {}", engine_data.display()))?;
    let params = PipelineParams {
        shards: spec.shards,
        data_dir: utf8(&engine_data)?.to_string(),
        port,
        input: utf8(&spec.dataset.path)?.to_string(),
        source_port,
        run_id: run_id.to_string(),
        disk_buffer: spec.disk_buffer,
    };
    let config = dir.join("pipeline.toml");
    fs::write(&config, pipeline_toml(spec.workload, &params))
        .with_context(|| format!("writing {}", config.display()))?;
    let log = File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let (stdout, stderr) = (log.try_clone()?, log);

    let mut command = Command::new(spec.sluice);
    command
        .arg("run")
        .arg(&config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let mut started = Instant::now();
    let mut child = ChildGuard::new(
        command
            .spawn()
            .with_context(|| format!("starting {}", spec.sluice.display()))?,
    );
    let pid = child.child.id();

    // File workloads are timed from spawn; network ones from the moment the sender starts,
    // once the source listens.
    let sending = match sender {
        Some(sender) => {
            sender::wait_listening(source_addr, started + spec.timeout)?;
            started = Instant::now();
            Some(sender.start(source_addr))
        }
        None => None,
    };

    let (seconds, at_completion) = wait_for_count(spec, &mut child, addr, expected, started)?;

    // Measure before anything else happens to the process.
    let cpu_seconds = measure::cpu_seconds(pid)?;
    let peak_rss_kib = measure::peak_rss_kib(pid)?;

    thread::sleep(spec.settle);
    let final_count = match metrics::scrape_events_in(addr, SINK_ID) {
        Ok(Some(n)) => n.max(at_completion),
        _ => at_completion,
    };

    let mut problems = Vec::new();
    if let Some(sending) = sending {
        match sending.join() {
            Ok(Ok(stats)) => {
                if stats.retries > 0 {
                    eprintln!(
                        "  {} run {}: {} of {} requests were answered 503 and sent again",
                        spec.workload, spec.run, stats.retries, stats.requests
                    );
                }
            }
            Ok(Err(e)) => problems.push(format!("the sender failed: {e:#}")),
            Err(_) => problems.push("the sender thread panicked".to_string()),
        }
    }
    let status = child.terminate(spec.shutdown_timeout)?;
    let exit_code = match status.code() {
        Some(code) => {
            if code != 0 {
                problems.push(format!("sluice exited with code {code} after SIGTERM"));
            }
            code
        }
        None => {
            problems.push(format!(
                "sluice ended by {} after SIGTERM",
                describe(status)
            ));
            -1
        }
    };
    if final_count > expected {
        problems.push(format!(
            "the sink counted {final_count} events, more than the {expected} expected"
        ));
    }
    if let Some(path) = output {
        match data::count_file(path) {
            Ok(c) if c.lines == expected => {}
            Ok(c) => problems.push(format!(
                "{} holds {} lines, expected {expected}",
                path.display(),
                c.lines
            )),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if !problems.is_empty() {
        bail!(problems.join("; "));
    }
    Ok(RunReport {
        run: spec.run,
        figures: Figures::new(
            expected,
            spec.dataset.bytes,
            seconds,
            cpu_seconds,
            measure::kib_to_mib(peak_rss_kib),
        ),
        exit_code,
    })
}

/// Polls until the sink's counter reaches `expected`; returns the seconds since spawn at that
/// moment and the count seen.
fn wait_for_count(
    spec: &RunSpec<'_>,
    child: &mut ChildGuard,
    addr: SocketAddr,
    expected: u64,
    started: Instant,
) -> Result<(f64, u64)> {
    let deadline = started + spec.timeout;
    let mut next_poll = started;
    let mut next_progress = started + PROGRESS_EVERY;
    let mut counted = 0;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "sluice ended ({}) before the sink counted every event: {counted} of {expected}",
                describe(status)
            );
        }
        let scrape_error = match metrics::scrape_events_in(addr, SINK_ID) {
            Ok(Some(n)) => {
                let seconds = started.elapsed().as_secs_f64();
                if n >= expected {
                    return Ok((seconds, n));
                }
                counted = n;
                None
            }
            Ok(None) => None,
            Err(e) => Some(e),
        };
        let now = Instant::now();
        if now >= deadline {
            let why = scrape_error
                .map(|e| format!(" (last scrape of http://{addr}/metrics: {e:#})"))
                .unwrap_or_default();
            bail!(
                "timed out after {:.0} s: the sink counted {counted} of {expected} events{why}",
                spec.timeout.as_secs_f64()
            );
        }
        if now >= next_progress {
            eprintln!(
                "  {} run {}: {counted} of {expected} events after {:.0} s",
                spec.workload,
                spec.run,
                now.duration_since(started).as_secs_f64()
            );
            next_progress += PROGRESS_EVERY;
        }
        next_poll += POLL_INTERVAL;
        match next_poll.checked_duration_since(now) {
            Some(wait) => thread::sleep(wait),
            None => next_poll = now,
        }
    }
}

/// A port that was free a moment ago: bind 127.0.0.1:0 and let it go.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow!("path {} is not UTF-8", path.display()))
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => status.to_string(),
    }
}

/// The last `n` lines of a file (read from its last 16 KiB).
fn log_tail(path: &Path, n: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(16 << 10)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..].join("\n"))
}

/// The sluice process; killed (SIGKILL) and reaped if dropped while still running, so an error
/// or a panic in the harness never leaves it behind.
struct ChildGuard {
    child: Child,
    reaped: bool,
}

impl ChildGuard {
    fn new(child: Child) -> Self {
        ChildGuard {
            child,
            reaped: false,
        }
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        let status = self.child.try_wait().context("checking on sluice")?;
        self.reaped |= status.is_some();
        Ok(status)
    }

    /// SIGTERM, then wait up to `grace` for the exit; SIGKILL and an error after that.
    fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) has no memory-safety preconditions. The pid is our own child, not yet
        // reaped (try_wait just saw it running), so it cannot name another process.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(io::Error::last_os_error()).context("sending SIGTERM to sluice");
        }
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.reaped = true;
                bail!(
                    "sluice did not exit within {:.0} s of SIGTERM and was killed",
                    grace.as_secs_f64()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The run's scratch directory under the system temp dir; removed on drop unless `keep`.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    fn create(run_id: &str) -> Result<Self> {
        let path = env::temp_dir().join(format!("sluice-perf-{run_id}"));
        if path.exists() {
            fs::remove_dir_all(&path).with_context(|| format!("clearing {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path, keep: false })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A file a run writes (W3's sink output), removed before the run and after it.
struct RemoveOnDrop(PathBuf);

impl RemoveOnDrop {
    fn new(path: PathBuf) -> Self {
        let _ = fs::remove_file(&path);
        RemoveOnDrop(path)
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }

    #[test]
    fn tail_of_a_log() {
        let dir = env::temp_dir().join(format!("sluice-perf-test-tail-{}", process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, text).unwrap();
        assert_eq!(log_tail(&path, 3).unwrap(), "line 48\nline 49\nline 50");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn child_guard_terminates_with_sigterm() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let mut guard = ChildGuard::new(child);
        let status = guard.terminate(Duration::from_secs(5)).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }
}
