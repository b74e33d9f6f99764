//! `sluice-loadgen`: the bundled load generator.
//!
//! This first version writes synthetic logs (the same generator as the `generator` source,
//! shaped like `../shared/bench/gen_logs.py`) to standard output or appends them to a file,
//! flat out or at a fixed rate, and reports what it sent. Network targets, latency
//! measurement and rotation come with the ingest issue.

use clap::Parser;
use sluice_connectors::sources::generator::synth::{Synth, SynthFormat};
use std::io::Write;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Generate realistic log lines, fast or at a steady rate.
#[derive(Parser)]
#[command(
    name = "sluice-loadgen",
    version,
    after_help = "Examples:\n  sluice-loadgen --count 1000000 --output /tmp/app.log\n  sluice-loadgen --format syslog --rate 5000 --duration 10s | sluice run configs/stdin-filter.toml"
)]
struct Args {
    /// Line format: json, syslog (RFC 5424) or apache (combined).
    #[arg(long, default_value = "json", value_parser = parse_format)]
    format: SynthFormat,
    /// Lines per second, or "max".
    #[arg(long, default_value = "max")]
    rate: String,
    /// Stop after this many lines.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long ("10s", "2m").
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Append to this file instead of writing to standard output.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// PRNG seed; the same seed gives the same lines.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_format(s: &str) -> Result<SynthFormat, String> {
    match s {
        "json" => Ok(SynthFormat::Json),
        "syslog" => Ok(SynthFormat::Syslog),
        "apache" => Ok(SynthFormat::Apache),
        _ => Err(format!("unknown format `{s}` (json, syslog, apache)")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (like \"10s\")"))?;
    let mult = match unit {
        "ms" => 0.001,
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration unit in `{s}` (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(n * mult))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rate: Option<f64> = match args.rate.as_str() {
        "max" => None,
        r => Some(
            r.parse()
                .map_err(|_| anyhow::anyhow!("--rate must be a number or \"max\""))?,
        ),
    };
    if rate.is_some_and(|r| r <= 0.0) {
        anyhow::bail!("--rate must be positive");
    }
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut synth = Synth::new(args.format, args.seed);
    let mut buf = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    let limit = args.count.unwrap_or(u64::MAX);
    let mut sent = 0u64;
    let mut bytes = 0u64;
    while sent < limit && args.duration.is_none_or(|d| start.elapsed() < d) {
        // Lines due now (open loop), in chunks of at most 4096.
        let mut n = 4096.min(limit - sent);
        if let Some(r) = rate {
            let due = (start.elapsed().as_secs_f64() * r) as u64 + 1;
            if due <= sent {
                std::thread::sleep(Duration::from_secs_f64(
                    ((sent + 1) as f64 / r - start.elapsed().as_secs_f64()).max(0.0),
                ));
                continue;
            }
            n = n.min(due - sent);
        }
        buf.clear();
        for _ in 0..n {
            synth.next_into(&mut buf);
            buf.push(b'\n');
        }
        if let Err(e) = out.write_all(&buf) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e.into());
        }
        sent += n;
        bytes += buf.len() as u64;
    }
    out.flush()?;
    let secs = start.elapsed().as_secs_f64();
    if args.json {
        eprintln!(
            "{{\"lines\":{sent},\"bytes\":{bytes},\"seconds\":{secs:.3},\"lines_per_sec\":{:.0}}}",
            sent as f64 / secs.max(1e-9)
        );
    } else {
        eprintln!(
            "sluice-loadgen: {sent} lines, {:.1} MB in {secs:.2} s ({:.0} lines/s)",
            bytes as f64 / 1e6,
            sent as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}
