//! `sluice-perf`: the end-to-end workload harness. Runs the standard workloads (W1-W5 of
//! `../shared/bench/README.md`) against a built `sluice` binary, times each run (file workloads
//! from spawn, network ones from the moment the sender starts) until the sink has counted every
//! expected event, and reports the median of several runs.
//!
//! Modules: [`paths`] finds the workspace, shared folder and binary; [`data`] generates and
//! counts the input; [`workloads`] writes the pipelines; [`sender`] drives W4/W5's input over
//! TCP and HTTP; [`runner`] drives one run; [`metrics`] scrapes `/metrics`; [`measure`] reads
//! `/proc`; [`report`] holds the results.

mod data;
mod latency;
mod measure;
mod metrics;
mod paths;
mod report;
mod runner;
mod sender;
mod wakeup;
mod workloads;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;

use crate::data::Dataset;
use crate::report::{FailedRun, WorkloadReport};
use crate::runner::RunSpec;
use crate::workloads::{DataFormat, Workload};

/// Run the standard end-to-end workloads against the `sluice` binary and report events/s,
/// MB/s, CPU seconds, events per CPU-second and peak RSS (median of --runs runs).
#[derive(Debug, Parser)]
#[command(name = "sluice-perf", version)]
struct Cli {
    /// Workloads to run, in order (default: all, W1 to W5).
    #[arg(value_enum, ignore_case = true, value_name = "WORKLOAD")]
    workloads: Vec<Workload>,

    /// Runs per workload; the median by events/s is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,

    /// Print one JSON object per workload on stdout instead of the table.
    #[arg(long)]
    json: bool,

    /// Where the input data (and its cached counts) live.
    #[arg(long, default_value = "/tmp/bench-data")]
    data_dir: PathBuf,

    /// Lines of generated input (events-2m.ndjson / events-2m.syslog for 2,000,000,
    /// events-N.EXT otherwise).
    #[arg(long, default_value_t = data::STANDARD_LINES, value_parser = clap::value_parser!(u64).range(1..))]
    lines: u64,

    /// The sluice binary [default: target/release/sluice in the workspace, or under $CARGO_TARGET_DIR].
    #[arg(long, value_name = "PATH")]
    sluice: Option<PathBuf>,

    /// engine.shards of every pipeline.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    shards: u32,

    /// Go on with the next run or workload after a failed run (exit status is still non-zero).
    #[arg(long)]
    keep_going: bool,

    /// Seconds a run may take before it counts as failed.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS", value_parser = positive_seconds)]
    timeout: f64,

    /// Seconds sluice may take to exit after SIGTERM.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS", value_parser = positive_seconds)]
    shutdown_timeout: f64,

    /// Milliseconds to wait after completion before the last scrape that checks the sink did
    /// not count more than expected (not part of the timing).
    #[arg(long, default_value_t = 250, value_name = "MS")]
    settle_ms: u64,

    /// Also write the results to perf/results/NAME.json.
    #[arg(long, value_name = "NAME")]
    save: Option<String>,

    /// Put a disk buffer (`buffer = { type = "disk", sync = "batch" }`, under the run's data
    /// dir) in front of W3's file sink, to compare durable and memory buffering.
    #[arg(long)]
    disk_buffer: bool,

    /// Instead of the workloads: measure end-to-end latency at a steady --rate (sluice-loadgen
    /// → syslog over TCP → parse → http sink → sluice-loadgen --listen), with Sluice's CPU use
    /// and peak RSS at that rate.
    #[arg(long, conflicts_with = "workloads")]
    latency: bool,

    /// --latency: events per second.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,

    /// --latency: seconds of sending.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(4..))]
    seconds: u64,

    /// --latency: the syslog source's `read_pacing` (Sluice's default, 1ms, when left out;
    /// `0s` turns pacing off): less CPU for a little latency.
    #[arg(long, value_name = "DURATION")]
    read_pacing: Option<String>,

    /// --latency: the http sink's `batch_timeout`, how long a partly filled body waits for
    /// more events (`0s`: none, a body goes as soon as a request slot is free).
    #[arg(long, value_name = "DURATION", default_value = "1ms")]
    batch_timeout: String,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when some run failed under `--keep-going`.
fn run(cli: &Cli) -> Result<bool> {
    if cli.latency {
        return run_latency(cli);
    }
    let workloads = if cli.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        cli.workloads.clone()
    };
    if let Some(name) = &cli.save {
        save_path(name)?; // reject a bad name before the long part
    }
    let sluice = paths::resolve_sluice_binary(cli.sluice.as_deref())?;
    let mut datasets = BTreeMap::new();
    for w in &workloads {
        let format = w.data_format();
        if let Entry::Vacant(slot) = datasets.entry(format) {
            let dataset = data::prepare(&cli.data_dir, cli.lines, &paths::shared_dir(), format)?;
            eprintln!(
                "data {} ({} lines, {} debug, {:.1} MB)",
                dataset.path.display(),
                dataset.counts.lines,
                dataset.counts.debug_lines,
                dataset.bytes as f64 / 1e6,
            );
            slot.insert(dataset);
        }
    }
    eprintln!(
        "sluice {} · {} shards · {} run(s) each",
        sluice.display(),
        cli.shards,
        cli.runs
    );

    let mut reports = Vec::new();
    let mut all_ok = true;
    for &workload in &workloads {
        let dataset = &datasets[&workload.data_format()];
        let report = run_workload(cli, workload, &sluice, dataset)?;
        all_ok &= report.failed_runs.is_empty();
        if cli.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        reports.push(report);
    }
    if !cli.json {
        print!("{}", report::render_table(&reports));
    }
    if let Some(name) = &cli.save {
        let path = save(name, cli, &sluice, &datasets, &reports)?;
        eprintln!("saved {}", path.display());
    }
    Ok(all_ok)
}

fn run_workload(
    cli: &Cli,
    workload: Workload,
    sluice: &Path,
    dataset: &Dataset,
) -> Result<WorkloadReport> {
    let expected = workload.expected_events(&dataset.counts);
    eprintln!(
        "{workload}: {} — expecting {expected} events",
        workload.description()
    );
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    for run in 1..=cli.runs {
        let spec = RunSpec {
            sluice,
            workload,
            dataset,
            shards: cli.shards,
            run,
            timeout: Duration::from_secs_f64(cli.timeout),
            settle: Duration::from_millis(cli.settle_ms),
            shutdown_timeout: Duration::from_secs_f64(cli.shutdown_timeout),
            disk_buffer: cli.disk_buffer,
        };
        match runner::run_once(&spec) {
            Ok(r) => {
                let f = &r.figures;
                eprintln!(
                    "  {workload} run {run}/{}: {:.3} s, {} events/s, {:.1} MB/s, {:.2} CPU s ({} events/CPU-s), peak RSS {:.1} MiB",
                    cli.runs,
                    f.seconds,
                    report::thousands(f.events_per_sec),
                    f.mb_per_sec,
                    f.cpu_seconds,
                    report::thousands(f.events_per_cpu_sec),
                    f.peak_rss_mib
                );
                runs.push(r);
            }
            Err(e) if cli.keep_going => {
                eprintln!("  {workload} run {run}/{} FAILED: {e:#}", cli.runs);
                failed.push(FailedRun {
                    run,
                    error: format!("{e:#}"),
                });
            }
            Err(e) => return Err(e.context(format!("{workload} run {run}/{}", cli.runs))),
        }
    }
    let label = if cli.disk_buffer && workload == Workload::W3 {
        "W3+disk"
    } else {
        workload.id()
    };
    Ok(WorkloadReport::new(label, runs, failed))
}

/// Host steal time (percent of CPU time) from which a latency run is flagged as noisy.
const STEAL_WARN_PCT: f64 = 5.0;

/// The latency measurement (see [`latency`]), printed and optionally saved.
fn run_latency(cli: &Cli) -> Result<bool> {
    let sluice = paths::resolve_sluice_binary(cli.sluice.as_deref())?;
    let loadgen = sluice.with_file_name("sluice-loadgen");
    if !loadgen.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p sluice-loadgen`",
            loadgen.display()
        );
    }
    eprintln!(
        "latency: {} events/s for {} s, syslog over TCP → parse → http sink ({} shards{}, \
         batch_timeout {})",
        cli.rate,
        cli.seconds,
        cli.shards,
        cli.read_pacing
            .as_deref()
            .map(|p| format!(", read_pacing {p}"))
            .unwrap_or_default(),
        cli.batch_timeout
    );
    let report = latency::run(&latency::LatencySpec {
        sluice: &sluice,
        loadgen: &loadgen,
        rate: cli.rate,
        seconds: cli.seconds,
        shards: cli.shards,
        read_pacing: cli.read_pacing.as_deref(),
        batch_timeout: &cli.batch_timeout,
    })?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "sent {} received {} (missing {}, duplicates {})",
            report.sent, report.received, report.missing, report.duplicates
        );
        println!(
            "latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms \
             (after a {:.0} s warm-up of {} events)",
            report.p50_ms,
            report.p90_ms,
            report.p99_ms,
            report.p999_ms,
            report.max_ms,
            report.warmup_s,
            report.warmup_excluded
        );
        println!(
            "sluice CPU {:.3} cores, peak RSS {:.1} MiB; per thread:",
            report.cpu_cores, report.peak_rss_mib
        );
        for t in report.threads.iter().filter(|t| t.cpu_cores >= 0.0005) {
            println!(
                "  {:<18} {:.3} cores  {:>6} wake-ups/s  {:>5} preempted/s",
                t.name, t.cpu_cores, t.wakeups_per_s, t.preempted_per_s
            );
        }
        println!(
            "sluice-loadgen CPU {:.3} cores; host steal {:.1}% of CPU time",
            report.loadgen_cpu_cores, report.host_steal_pct
        );
        println!(
            "host wake-up cost {:.1} µs of CPU by a timer, {:.1} µs by another thread: \
             sluice's {} wake-ups/s alone take ≈ {:.3} of its {:.3} cores",
            report.host_wakeup.timer_us,
            report.host_wakeup.thread_us,
            report.wakeups_per_s,
            report.wakeup_cpu_cores_est,
            report.cpu_cores
        );
    }
    if report.host_steal_pct >= STEAL_WARN_PCT {
        eprintln!(
            "warning: the hypervisor stole {:.1}% of this machine's CPU time during the run; \
             latency and CPU figures from a host this busy are not comparable with a quiet one's",
            report.host_steal_pct
        );
    }
    if let Some(name) = &cli.save {
        let path = save_path(name)?;
        fs::create_dir_all(paths::results_dir())?;
        fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("saved {}", path.display());
    }
    Ok(report.missing == 0)
}

/// `perf/results/NAME.json`; NAME must be a plain file name.
fn save_path(name: &str) -> Result<PathBuf> {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    if stem.is_empty() || stem.starts_with('.') || stem.contains(['/', '\\']) {
        bail!("--save takes a plain name (no path), got {name:?}");
    }
    Ok(paths::results_dir().join(format!("{stem}.json")))
}

/// The document `--save` writes: the settings and every workload's report.
#[derive(Serialize)]
struct SavedResults<'a> {
    name: &'a str,
    unix_time: u64,
    sluice: String,
    /// The input files, with their sizes in bytes.
    data_files: BTreeMap<String, u64>,
    lines: u64,
    shards: u32,
    runs: u32,
    cpus: usize,
    workloads: &'a [WorkloadReport],
}

fn save(
    name: &str,
    cli: &Cli,
    sluice: &Path,
    datasets: &BTreeMap<DataFormat, Dataset>,
    reports: &[WorkloadReport],
) -> Result<PathBuf> {
    let path = save_path(name)?;
    let doc = SavedResults {
        name,
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        sluice: sluice.display().to_string(),
        data_files: datasets
            .values()
            .map(|d| (d.path.display().to_string(), d.bytes))
            .collect(),
        lines: cli.lines,
        shards: cli.shards,
        runs: cli.runs,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        workloads: reports,
    };
    let dir = paths::results_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Write to NAME.json.tmp first (ignored by git) and rename, so a result is whole or absent.
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cli_parses_workloads_and_defaults() {
        let cli =
            Cli::try_parse_from(["sluice-perf", "W1", "w3", "--runs", "5", "--json"]).unwrap();
        assert_eq!(cli.workloads, vec![Workload::W1, Workload::W3]);
        assert_eq!((cli.runs, cli.json, cli.shards), (5, true, 2));
        assert_eq!(cli.lines, 2_000_000);
        assert_eq!(cli.timeout, 300.0);
        assert_eq!(cli.data_dir, PathBuf::from("/tmp/bench-data"));
        assert!(Cli::try_parse_from(["sluice-perf", "W6"]).is_err());
        let cli = Cli::try_parse_from(["sluice-perf", "w4", "W5"]).unwrap();
        assert_eq!(cli.workloads, vec![Workload::W4, Workload::W5]);
        assert!(Cli::try_parse_from(["sluice-perf", "--runs", "0"]).is_err());
        assert!(Cli::try_parse_from(["sluice-perf", "--timeout", "-1"]).is_err());
    }

    #[test]
    fn save_names() {
        assert!(save_path("baseline")
            .unwrap()
            .ends_with("perf/results/baseline.json"));
        assert!(save_path("baseline.json")
            .unwrap()
            .ends_with("perf/results/baseline.json"));
        assert!(save_path("../x").is_err());
        assert!(save_path("").is_err());
    }
}
