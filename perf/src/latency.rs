//! The latency measurement: `sluice-loadgen` sends RFC 5424 syslog over TCP at a steady rate to
//! a `syslog` source, Sluice parses it and its `http` sink posts it back to the same
//! `sluice-loadgen`, listening, which reports end-to-end latency percentiles (HDR histogram,
//! from the send time stamped in each event, corrected for coordinated omission). Meanwhile
//! the harness samples Sluice's CPU use over the steady part of the run and its peak RSS.
//!
//! The first [`WARM_UP`] is left out of both: of the CPU sample, and (`sluice-loadgen
//! --warmup`) of the latency percentiles, though its events still count for loss and
//! duplicates. Over the same span the harness reads the load generator's own CPU use and the
//! host's steal time (CPU time a hypervisor gave to other guests while this one was ready to
//! run), which says how far the figures of a shared virtual machine can be trusted. Before
//! Sluice starts, it measures what a wake-up costs on this host ([`wakeup`]), and reports the
//! share of Sluice's CPU that its wake-ups per second would cost at that price.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::measure;
use crate::metrics;
use crate::runner::free_port;
use crate::wakeup::{self, WakeupCost};

/// What one latency run is asked to do.
pub struct LatencySpec<'a> {
    pub sluice: &'a Path,
    pub loadgen: &'a Path,
    /// Events per second, sent open loop.
    pub rate: u64,
    /// Seconds of sending.
    pub seconds: u64,
    pub shards: u32,
    /// The source's `read_pacing`, if any.
    pub read_pacing: Option<&'a str>,
    /// The http sink's `batch_timeout`.
    pub batch_timeout: &'a str,
}

/// What one latency run measured.
#[derive(Debug, Serialize)]
pub struct LatencyReport {
    pub rate: u64,
    pub seconds: u64,
    pub sent: u64,
    pub received: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Seconds at the start left out of the percentiles and of the CPU sample.
    pub warmup_s: f64,
    /// Events of the warm-up (received, not in the percentiles).
    pub warmup_excluded: u64,
    /// The source's `read_pacing` (None: Sluice's default).
    pub read_pacing: Option<String>,
    /// The http sink's `batch_timeout`.
    pub batch_timeout: String,
    /// Sluice's CPU use over the middle of the run (after a warm-up), in cores.
    pub cpu_cores: f64,
    pub peak_rss_mib: f64,
    /// Over the same span, per thread name: CPU in cores, wake-ups (voluntary context
    /// switches: each costs tens of µs of CPU on a VM) and preemptions, per second.
    pub threads: Vec<ThreadUse>,
    /// `sluice-loadgen`'s CPU use over the same span (it shares the machine), in cores.
    pub loadgen_cpu_cores: f64,
    /// Share of the host's CPU time stolen by the hypervisor over the same span, in percent.
    pub host_steal_pct: f64,
    /// CPU time per wake-up on this host, measured before Sluice started.
    pub host_wakeup: WakeupCost,
    /// Sluice's wake-ups per second, all threads.
    pub wakeups_per_s: u64,
    /// What those wake-ups cost at the host's mean price per wake-up, in cores (an estimate:
    /// the rest of [`LatencyReport::cpu_cores`] is work on the events).
    pub wakeup_cpu_cores_est: f64,
}

/// One thread name's share of [`LatencyReport::cpu_cores`].
#[derive(Debug, Serialize)]
pub struct ThreadUse {
    pub name: String,
    pub cpu_cores: f64,
    pub wakeups_per_s: u64,
    pub preempted_per_s: u64,
}

/// Seconds at the start of the run that the CPU sample and the latency percentiles leave
/// out (connections, first allocations, code and data not yet in the caches).
const WARM_UP: Duration = Duration::from_secs(2);

/// Wake-ups of each kind timed by [`wakeup::measure`] (1 ms apart: about 0.7 s in all).
const WAKEUP_ROUNDS: u32 = 300;

pub fn run(spec: &LatencySpec<'_>) -> Result<LatencyReport> {
    if spec.seconds <= WARM_UP.as_secs() + 1 {
        bail!(
            "--seconds must be more than {} for a latency run",
            WARM_UP.as_secs() + 1
        );
    }
    // On a quiet host, before anything of the run starts.
    let host_wakeup = wakeup::measure(WAKEUP_ROUNDS);
    let dir = std::env::temp_dir().join(format!("sluice-perf-latency-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("data"))?;
    let (api, source, back) = (free_port()?, free_port()?, free_port()?);
    let config = dir.join("pipeline.toml");
    fs::write(
        &config,
        format!(
            "# latency: syslog over TCP → parse → http sink back to sluice-loadgen --listen\n\
             [engine]\nshards = {shards}\ndata_dir = \"{data}\"\n\n\
             [api]\naddress = \"127.0.0.1:{api}\"\n\n\
             [sources.in]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{source}\"\n\
             format = \"rfc5424\"\n{pacing}\n\
             [sinks.back]\ntype = \"http\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:{back}/\"\n\
             batch_timeout = {batch_timeout:?}\n",
            shards = spec.shards,
            batch_timeout = spec.batch_timeout,
            data = dir.join("data").display(),
            pacing = spec
                .read_pacing
                .map(|p| format!("read_pacing = {p:?}\n"))
                .unwrap_or_default(),
        ),
    )?;
    let log = File::create(dir.join("sluice.log"))?;
    let mut sluice = Command::new(spec.sluice)
        .arg("run")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", spec.sluice.display()))?;
    let result = measure_run(spec, &mut sluice, api, source, back, host_wakeup);
    let _ = sluice.kill();
    let _ = sluice.wait();
    if result.is_ok() {
        let _ = fs::remove_dir_all(&dir);
    } else {
        eprintln!("  latency run files kept in {}", dir.display());
    }
    result
}

fn measure_run(
    spec: &LatencySpec<'_>,
    sluice: &mut std::process::Child,
    api: u16,
    source: u16,
    back: u16,
    host_wakeup: WakeupCost,
) -> Result<LatencyReport> {
    let api_addr = SocketAddr::from(([127, 0, 0, 1], api));
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics::http_get(api_addr, "/ready", Duration::from_secs(1)).is_err() {
        if let Some(status) = sluice.try_wait()? {
            bail!("sluice ended at start: {status}");
        }
        if Instant::now() > deadline {
            bail!("sluice was not ready within 30 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let pid = sluice.id();
    let loadgen = Command::new(spec.loadgen)
        .args([
            "--format",
            "syslog5424",
            "--rate",
            &spec.rate.to_string(),
            "--duration",
            &format!("{}s", spec.seconds),
            "-o",
            &format!("tcp://127.0.0.1:{source}"),
            "--listen",
            &format!("127.0.0.1:{back}"),
            "--warmup",
            &format!("{}s", WARM_UP.as_secs()),
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", spec.loadgen.display()))?;
    let loadgen_pid = loadgen.id();
    thread::sleep(WARM_UP);
    let (cpu0, threads0, lg0, host0, t0) = (
        measure::cpu_seconds(pid)?,
        measure::thread_groups(pid)?,
        measure::cpu_seconds(loadgen_pid)?,
        measure::host_ticks()?,
        Instant::now(),
    );
    thread::sleep(Duration::from_secs(spec.seconds) - WARM_UP - Duration::from_secs(1));
    let (cpu1, threads1, lg1, host1, t1) = (
        measure::cpu_seconds(pid)?,
        measure::thread_groups(pid)?,
        measure::cpu_seconds(loadgen_pid)?,
        measure::host_ticks()?,
        Instant::now(),
    );
    let span = t1.duration_since(t0).as_secs_f64();
    let threads: Vec<ThreadUse> = measure::thread_rates(&threads0, &threads1, span)
        .into_iter()
        .map(|g| ThreadUse {
            name: g.name,
            cpu_cores: g.cpu_seconds,
            wakeups_per_s: g.sleeps,
            preempted_per_s: g.preempted,
        })
        .collect();
    let wakeups_per_s = threads.iter().map(|t| t.wakeups_per_s).sum();
    let out = loadgen.wait_with_output()?;
    let peak_rss_kib = measure::peak_rss_kib(pid)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .chain(stderr.lines())
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| anyhow!("sluice-loadgen printed no JSON summary:\n{stderr}"))?;
    if !out.status.success() {
        bail!("sluice-loadgen failed ({}):\n{stderr}", out.status);
    }
    let lat = &summary["latency"];
    let num = |v: &serde_json::Value, k: &str| -> Result<f64> {
        v[k].as_f64()
            .ok_or_else(|| anyhow!("no {k} in the loadgen summary: {summary}"))
    };
    Ok(LatencyReport {
        rate: spec.rate,
        seconds: spec.seconds,
        sent: num(&summary, "sent")? as u64,
        received: num(lat, "received")? as u64,
        missing: num(lat, "missing")? as u64,
        duplicates: num(lat, "duplicates")? as u64,
        p50_ms: num(lat, "p50_ms")?,
        p90_ms: num(lat, "p90_ms")?,
        p99_ms: num(lat, "p99_ms")?,
        p999_ms: num(lat, "p999_ms")?,
        max_ms: num(lat, "max_ms")?,
        warmup_s: WARM_UP.as_secs_f64(),
        warmup_excluded: num(lat, "warmup_excluded")? as u64,
        read_pacing: spec.read_pacing.map(str::to_string),
        batch_timeout: spec.batch_timeout.to_string(),
        cpu_cores: (cpu1 - cpu0) / span,
        peak_rss_mib: measure::kib_to_mib(peak_rss_kib),
        threads,
        loadgen_cpu_cores: (lg1 - lg0) / span,
        host_steal_pct: measure::steal_percent(host0, host1),
        host_wakeup,
        wakeups_per_s,
        wakeup_cpu_cores_est: wakeup::wakeup_cores(wakeups_per_s, host_wakeup.mean_us()),
    })
}
