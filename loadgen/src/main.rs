//! `sluice-loadgen`: the bundled load generator.
//!
//! It renders realistic log events in seven formats ([`gen`]), paces them open loop
//! ([`run_sender`]: event `k` is due at `start + k / rate`, sent in small bursts, so the
//! schedule never drifts), sends them to a target ([`targets`]: stdout, file with rotation,
//! TCP, UDP, TLS, HTTP), and with `--listen` receives them back from a Sluice `http` sink
//! ([`listen`]) to report end-to-end latency percentiles and lost or duplicated events.

mod gen;
mod http;
mod listen;
mod targets;

use clap::Parser;
use gen::{Format, Generator, Stamp};
use listen::Correction;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use targets::{Burst, Counters, Framing, RotateMode, Target};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXAMPLES: &str = "\
Examples:
  # 1M JSON lines appended to a file, as fast as possible
  sluice-loadgen --count 1000000 --output /tmp/app.log

  # a file that rotates every 100k lines (renamed to app.log.1, app.log.2, ...)
  sluice-loadgen --rate 50000 --duration 30s -o /tmp/app.log --rotate-every 100000 --rotate-mode rename

  # syslog (RFC 5424) over TCP with octet counting, 4 connections, 200k events/s for 10 s
  sluice-loadgen --format syslog5424 -o tcp://127.0.0.1:5140 --framing octet --connections 4 --rate 200000 --duration 10s

  # RFC 3164 over UDP, one datagram per event
  sluice-loadgen --format syslog3164 -o udp://127.0.0.1:5514 --count 100000

  # TLS with a private CA
  sluice-loadgen --format syslog5424 -o tls://localhost:6514 --tls-ca ca.pem --count 10000

  # HTTP NDJSON, 1000 events per request, 4 keep-alive connections, gzip, an API key
  sluice-loadgen -o http://127.0.0.1:8080 --endpoint /logs --batch 1000 --concurrency 4 --gzip --api-key s3cret --rate max --duration 10s

  # Elasticsearch _bulk bodies
  sluice-loadgen -o http://127.0.0.1:8080/_bulk --count 100000

  # latency: send 100k events/s for 30 s and receive them back from a Sluice `http` sink
  # (uri = \"http://127.0.0.1:9999/\") in the same process; prints p50..p99.9 and lost events
  sluice-loadgen -o tcp://127.0.0.1:5140 --format syslog5424 --rate 100000 --duration 30s --warmup 2s --listen 127.0.0.1:9999

  # only receive (another process sends); stop after 1M events or Ctrl-C
  sluice-loadgen --listen 0.0.0.0:9999 --expect 1000000 --json

Stamps: every event carries its sequence number `seq` and send time `sent_ns` (Unix ns), in
a place that survives parsing (JSON members, syslog structured data, logfmt pairs, the
query string of access-log paths, the end of the message). --no-stamp leaves them out
(then one seed gives byte-identical output).

The summary goes to standard error (JSON with --json); a progress line is shown there once a
second when it is a terminal.";

/// Generate realistic log events and send them somewhere, at a steady rate or flat out;
/// optionally receive them back and report end-to-end latency.
#[derive(Parser)]
#[command(name = "sluice-loadgen", version, after_help = EXAMPLES)]
struct Args {
    /// Event format: json, syslog5424 (alias syslog), syslog3164, apache, nginx, logfmt,
    /// java-multiline (a line and a stack trace of 5-30 frames, sometimes `Caused by:`).
    #[arg(long, default_value = "json", value_parser = Format::parse)]
    format: Format,
    /// Target kind: stdout, file, tcp, udp, tls, http (kafka: not yet). Usually inferred
    /// from --output.
    #[arg(long)]
    target: Option<String>,
    /// Destination: a file path, `-` (stdout), or a URL: tcp://HOST:PORT, udp://HOST:PORT,
    /// tls://HOST:PORT, http://HOST:PORT[/PATH], file:///PATH. With --target, a plain
    /// HOST:PORT.
    #[arg(long, short = 'o')]
    output: Option<String>,
    /// Events per second (open loop: event k is due at start + k/N), or "max".
    #[arg(long, default_value = "max")]
    rate: String,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long ("10s", "2m", "500ms").
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// PRNG seed; the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Leave out the `seq` / `sent_ns` stamps.
    #[arg(long)]
    no_stamp: bool,
    /// tcp/tls: parallel connections; events are dealt round robin.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    connections: u64,
    /// tcp/tls framing: newline, or octet (RFC 6587 octet counting: "LEN SP MSG").
    #[arg(long, default_value = "newline", value_parser = parse_framing)]
    framing: Framing,
    /// tls: PEM file of the CA certificate(s) to trust.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// tls: accept any server certificate (testing only).
    #[arg(long)]
    tls_insecure: bool,
    /// tls: the name to verify the server certificate against (default: the host).
    #[arg(long)]
    tls_server_name: Option<String>,
    /// http: request path: /logs (NDJSON), /_bulk (Elasticsearch bulk pairs), /log (one
    /// JSON object per request), or any other path (NDJSON).
    #[arg(long)]
    endpoint: Option<String>,
    /// http: events per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
    /// http: keep-alive connections (one worker thread each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
    /// http: gzip request bodies (Content-Encoding: gzip).
    #[arg(long)]
    gzip: bool,
    /// http: send this key as `X-API-Key`.
    #[arg(long)]
    api_key: Option<String>,
    /// http: send a request again when it gets no answer (connection refused or reset) or a
    /// 408, 429 or 5xx answer, with backoff (10 ms doubling to 500 ms), until it is answered
    /// 2xx or the run is stopped (Ctrl-C / SIGTERM); no fail-fast check at start. For crash
    /// tests: with `acknowledgements = true` on Sluice's http source, a 2xx means accepted.
    #[arg(long)]
    retry: bool,
    /// http: append a line `FIRST COUNT` to this file for each request answered 2xx (its
    /// events are seq FIRST..FIRST+COUNT), as the answer arrives.
    #[arg(long)]
    acked_ids: Option<std::path::PathBuf>,
    /// http: send a partly filled request after this long.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    linger: Duration,
    /// file: rotate every N lines.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rotate_every: Option<u64>,
    /// file: rename (to PATH.1, PATH.2, ... and start a new file) or copytruncate (copy to
    /// PATH.N, then truncate in place).
    #[arg(long, default_value = "rename", value_parser = parse_rotate_mode)]
    rotate_mode: RotateMode,
    /// Receive events back over HTTP (POST bodies from a Sluice `http` sink) and report
    /// end-to-end latency. Alone: only receive; with a target: send and receive.
    #[arg(long)]
    listen: Option<String>,
    /// With --listen: the number of events to expect (seq 0..N); the report names missing
    /// and duplicate ones. Listening alone stops once N arrived. Default when sending too:
    /// the number sent.
    #[arg(long)]
    expect: Option<u64>,
    /// With --listen and a target: how long to wait for events still on their way after the
    /// last one was sent, once nothing more arrives.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// With --listen: leave events stamped in the first DURATION out of the latency
    /// histogram (they still count for missing and duplicates), so the percentiles describe
    /// the steady state, not connection set-up and first allocations. From the send start,
    /// or from when listening started when only listening. Default 0s (none).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Coordinated-omission correction: intended (stamp the scheduled send time; default),
    /// record-correct (stamp the actual time; the receiver back-fills with HDR
    /// record_correct at 1/rate), none.
    #[arg(long, default_value = "intended", value_parser = Correction::parse)]
    latency_correction: Correction,
    /// Print the final summary as one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_framing(s: &str) -> Result<Framing, String> {
    match s {
        "newline" | "lf" => Ok(Framing::Newline),
        "octet" | "octet-counting" => Ok(Framing::Octet),
        _ => Err(format!("unknown framing `{s}` (newline, octet)")),
    }
}

fn parse_rotate_mode(s: &str) -> Result<RotateMode, String> {
    match s {
        "rename" => Ok(RotateMode::Rename),
        "copytruncate" => Ok(RotateMode::CopyTruncate),
        _ => Err(format!("unknown rotate mode `{s}` (rename, copytruncate)")),
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
        "us" => 1e-6,
        "ms" => 0.001,
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration unit in `{s}` (us, ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(n * mult).map_err(|_| format!("invalid duration `{s}`"))
}

/// The resolved destination.
enum Dest {
    Stdout,
    File(std::path::PathBuf),
    Tcp(String),
    Udp(String),
    Tls(String),
    Http(String, Option<String>),
}

fn dest(args: &Args) -> anyhow::Result<Option<Dest>> {
    let out = args.output.as_deref();
    let kind = args.target.as_deref();
    if kind.is_none() && out.is_none() {
        return Ok(if args.listen.is_some() {
            None
        } else {
            Some(Dest::Stdout)
        });
    }
    let (scheme, rest) = match out.and_then(|o| o.split_once("://")) {
        Some((s, r)) => (Some(s), r),
        None => (None, out.unwrap_or("")),
    };
    if let (Some(k), Some(s)) = (kind, scheme) {
        if k != s {
            anyhow::bail!("--target {k} does not match --output {}", out.unwrap_or(""));
        }
    }
    let kind = kind
        .or(scheme)
        .unwrap_or(if rest == "-" { "stdout" } else { "file" });
    let need = |what: &str| -> anyhow::Result<String> {
        if rest.is_empty() {
            anyhow::bail!("--target {kind} needs --output {what}");
        }
        Ok(rest.to_string())
    };
    Ok(Some(match kind {
        "stdout" => Dest::Stdout,
        "file" => Dest::File(need("PATH")?.into()),
        "tcp" => Dest::Tcp(need("HOST:PORT")?),
        "udp" => Dest::Udp(need("HOST:PORT")?),
        "tls" => Dest::Tls(need("HOST:PORT")?),
        "http" => {
            let r = need("http://HOST:PORT[/PATH]")?;
            match r.find('/') {
                Some(i) if i + 1 < r.len() => {
                    Dest::Http(r[..i].to_string(), Some(r[i..].to_string()))
                }
                Some(i) => Dest::Http(r[..i].to_string(), None),
                None => Dest::Http(r, None),
            }
        }
        "https" => anyhow::bail!("https is not supported yet; use http:// (or tls:// for raw TLS)"),
        "kafka" => {
            anyhow::bail!("the kafka target comes with the Kafka issue; it is not available yet")
        }
        other => anyhow::bail!("unknown target `{other}` (stdout, file, tcp, udp, tls, http)"),
    }))
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What the sender did.
struct SendReport {
    target: String,
    elapsed: Duration,
    scheduled: u64,
}

/// Most events rendered and sent at once.
const MAX_BURST: u64 = 4096;

/// The open-loop pacing loop.
#[allow(clippy::too_many_arguments)]
fn run_sender(
    args: &Args,
    rate: Option<f64>,
    target: &mut dyn Target,
    counters: &Counters,
    stop: &AtomicBool,
    progress: &mut Progress,
    receiver: Option<&listen::Receiver>,
) -> Duration {
    let mut gen = Generator::new(args.format, args.seed);
    let mut limit = args.count.unwrap_or(u64::MAX);
    if let (Some(r), Some(d)) = (rate, args.duration) {
        limit = limit.min((r * d.as_secs_f64()).ceil() as u64);
    }
    let intended = args.latency_correction == Correction::Intended;
    let mut burst = Burst::default();
    let start = Instant::now();
    let start_ns = unix_ns();
    if let Some(r) = receiver {
        r.set_warmup_until(start_ns + args.warmup.as_nanos() as u64);
    }
    let mut k: u64 = 0;
    while k < limit && !stop.load(Ordering::Relaxed) {
        let elapsed = start.elapsed();
        if args.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        let n = match rate {
            None => MAX_BURST.min(limit - k),
            Some(r) => {
                // Events 0..due are due by now (event j at j / r).
                let due = ((elapsed.as_secs_f64() * r) as u64 + 1).min(limit);
                if due <= k {
                    target.idle(counters);
                    progress.tick(counters, receiver);
                    let at = start + Duration::from_secs_f64(k as f64 / r);
                    let wait = at.saturating_duration_since(Instant::now());
                    std::thread::sleep(wait.min(Duration::from_millis(100)));
                    continue;
                }
                (due - k).min(MAX_BURST)
            }
        };
        burst.clear(k);
        let now_ns = unix_ns();
        for j in k..k + n {
            let stamp = (!args.no_stamp).then(|| Stamp {
                seq: j,
                sent_ns: match rate {
                    Some(r) if intended => start_ns + (j as f64 * 1e9 / r) as u64,
                    _ => now_ns,
                },
            });
            gen.next_into(stamp, &mut burst.data);
            burst.ends.push(burst.data.len());
        }
        target.send(&burst, counters);
        k += n;
        if target.broken() {
            break;
        }
        progress.tick(counters, receiver);
    }
    target.finish(counters);
    start.elapsed()
}

/// The live progress line (a terminal only).
struct Progress {
    on: bool,
    start: Instant,
    last: Instant,
    last_sent: u64,
}

impl Progress {
    fn tick(&mut self, c: &Counters, receiver: Option<&listen::Receiver>) {
        if !self.on || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        let sent = c.sent.load(Ordering::Relaxed);
        let dt = self.last.elapsed().as_secs_f64();
        let mut line = format!(
            "\r{:6.1}s  sent {sent}  {:.0}/s  errors {}",
            self.start.elapsed().as_secs_f64(),
            (sent - self.last_sent) as f64 / dt,
            c.errors.load(Ordering::Relaxed)
        );
        if let Some(r) = receiver {
            line.push_str(&format!(
                "  received {}",
                r.received.load(Ordering::Relaxed)
            ));
            if let Ok(st) = r.stats.lock() {
                if !st.hist.is_empty() {
                    line.push_str(&format!(
                        "  p99 {:.2} ms",
                        st.hist.value_at_quantile(0.99) as f64 / 1000.0
                    ));
                }
            }
        }
        line.push_str("\x1b[K");
        eprint!("{line}");
        self.last = Instant::now();
        self.last_sent = sent;
    }
    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[K");
        }
    }
}

/// Turns transparent huge pages off for this process, before the clock of any run starts.
///
/// mimalloc asks for huge pages on its arenas, so the first touch of each new 2 MiB region
/// (a thread's first buffers, the latency histogram, a growing body buffer) has the kernel
/// zero 2 MiB at once. On a virtual machine that is a millisecond or more per fault, and in
/// the first ~100 ms of a run the sender and the receiver together spent most of their time
/// there: the events they stamped or received then looked 40-80 ms late, which set the p99
/// of a short run. With small pages a first touch costs a few microseconds and only what is
/// used gets zeroed; a load generator's working set is too small to gain from huge pages.
/// (`sluice` itself does the same at start, `sluice_engine::memory`; the load generator does
/// not link the engine for one system call.)
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("sluice-loadgen: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    let args = Args::parse();
    let rate: Option<f64> = match args.rate.as_str() {
        "max" => None,
        r => Some(
            r.parse()
                .map_err(|_| anyhow::anyhow!("--rate must be a number or \"max\""))?,
        ),
    };
    if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        anyhow::bail!("--rate must be positive");
    }
    let dest = dest(&args)?;
    if args.rotate_every.is_some() && !matches!(dest, Some(Dest::File(_))) {
        anyhow::bail!("--rotate-every needs a file target");
    }
    if (args.retry || args.acked_ids.is_some()) && !matches!(dest, Some(Dest::Http(..))) {
        anyhow::bail!("--retry and --acked-ids need an http target");
    }
    let stop = Arc::new(AtomicBool::new(false));
    // A first Ctrl-C stops cleanly (with the summary); a second one exits at once.
    let _ = signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        stop.clone(),
    );
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone());

    let receiver = match &args.listen {
        Some(a) => Some(listen::Receiver::start(
            a,
            args.latency_correction,
            rate,
            args.warmup,
        )?),
        None => None,
    };
    if let Some(r) = &receiver {
        if !args.json {
            eprintln!("sluice-loadgen: listening on http://{}", r.addr);
        }
    }
    let mut progress = Progress {
        on: std::io::stderr().is_terminal(),
        start: Instant::now(),
        last: Instant::now(),
        last_sent: 0,
    };
    let counters = Arc::new(Counters::default());
    let mut send: Option<SendReport> = None;
    if let Some(d) = dest {
        let (mut target, name): (Box<dyn Target>, String) = match d {
            Dest::Stdout => (Box::new(targets::StdoutTarget::new()), "stdout".into()),
            Dest::File(p) => (
                Box::new(targets::FileTarget::open(
                    &p,
                    args.rotate_every,
                    args.rotate_mode,
                )?),
                format!("file {}", p.display()),
            ),
            Dest::Tls(a) => {
                let addr = targets::resolve(&a)?;
                let host = a.rsplit_once(':').map(|(h, _)| h).unwrap_or(&a);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = args
                    .tls_server_name
                    .clone()
                    .unwrap_or_else(|| host.to_string());
                let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| anyhow::anyhow!("invalid TLS server name `{name}`: {e}"))?;
                let config = targets::tls_config(args.tls_ca.as_deref(), args.tls_insecure)?;
                (
                    Box::new(targets::StreamTarget::connect(
                        addr,
                        args.connections as usize,
                        args.framing,
                        Some(targets::TlsSettings {
                            config,
                            server_name,
                        }),
                    )?),
                    format!("tls {a}"),
                )
            }
            Dest::Tcp(a) => {
                let addr = targets::resolve(&a)?;
                (
                    Box::new(targets::StreamTarget::connect(
                        addr,
                        args.connections as usize,
                        args.framing,
                        None,
                    )?),
                    format!("tcp {a}"),
                )
            }
            Dest::Udp(a) => (
                Box::new(targets::UdpTarget::new(targets::resolve(&a)?)?),
                format!("udp {a}"),
            ),
            Dest::Http(a, path) => {
                let endpoint = args
                    .endpoint
                    .clone()
                    .or(path)
                    .unwrap_or_else(|| "/logs".into());
                if !endpoint.starts_with('/') {
                    anyhow::bail!("--endpoint must start with `/`");
                }
                let settings = targets::HttpSettings {
                    addr: targets::resolve(&a)?,
                    host: a.clone(),
                    endpoint: endpoint.clone(),
                    batch: args.batch as usize,
                    concurrency: args.concurrency as usize,
                    gzip: args.gzip,
                    api_key: args.api_key.clone(),
                    linger: args.linger,
                    json_events: args.format.is_json(),
                    retry: args.retry,
                    acked_ids: match &args.acked_ids {
                        Some(p) => Some(
                            std::fs::File::create(p)
                                .map_err(|e| anyhow::anyhow!("--acked-ids {}: {e}", p.display()))?,
                        ),
                        None => None,
                    },
                    stop: stop.clone(),
                };
                (
                    Box::new(targets::HttpTarget::start(settings, counters.clone())?),
                    format!("http {a}{endpoint}"),
                )
            }
        };
        let elapsed = run_sender(
            &args,
            rate,
            target.as_mut(),
            &counters,
            &stop,
            &mut progress,
            receiver.as_ref(),
        );
        let scheduled =
            counters.sent.load(Ordering::Relaxed) + counters.errors.load(Ordering::Relaxed);
        send = Some(SendReport {
            target: name,
            elapsed,
            scheduled,
        });
    }

    // Receiving: wait for what is still on its way.
    if let Some(r) = &receiver {
        let sending = send.is_some();
        let expect = args
            .expect
            .or_else(|| sending.then(|| counters.sent.load(Ordering::Relaxed)));
        let start = Instant::now();
        let mut last_change = Instant::now();
        let mut last_seen = r.received.load(Ordering::Relaxed);
        loop {
            let got = r.received.load(Ordering::Relaxed);
            if got != last_seen {
                last_seen = got;
                last_change = Instant::now();
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(n) = expect {
                let distinct = r.stats.lock().map(|s| n - s.missing(n)).unwrap_or(0);
                if distinct >= n {
                    break;
                }
            }
            if sending && last_change.elapsed() >= args.drain_timeout {
                break;
            }
            if !sending && args.duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            progress.tick(&counters, Some(r));
            std::thread::sleep(Duration::from_millis(20));
        }
        r.stop();
    }
    progress.done();
    report(&args, rate, &counters, send.as_ref(), receiver.as_ref())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn report(
    args: &Args,
    rate: Option<f64>,
    c: &Counters,
    send: Option<&SendReport>,
    receiver: Option<&listen::Receiver>,
) -> anyhow::Result<()> {
    let sent = c.sent.load(Ordering::Relaxed);
    let errors = c.errors.load(Ordering::Relaxed);
    let bytes = c.bytes.load(Ordering::Relaxed);
    let mut json = serde_json::Map::new();
    let mut text = String::new();
    if let Some(s) = send {
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        let actual = sent as f64 / secs;
        json.insert("target".into(), s.target.clone().into());
        json.insert("format".into(), args.format.name().into());
        json.insert("sent".into(), sent.into());
        json.insert("errors".into(), errors.into());
        json.insert("bytes".into(), bytes.into());
        json.insert("retries".into(), c.retries.load(Ordering::Relaxed).into());
        json.insert(
            "elapsed_s".into(),
            ((secs * 1000.0).round() / 1000.0).into(),
        );
        json.insert(
            "rate_target".into(),
            rate.map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::Null),
        );
        json.insert("rate_actual".into(), actual.round().into());
        text.push_str(&format!(
            "sluice-loadgen: sent {sent} events ({:.1} MB) to {} in {secs:.2} s ({actual:.0} events/s{}), {errors} errors",
            bytes as f64 / 1e6,
            s.target,
            rate.map(|r| format!(", target {r:.0}")).unwrap_or_default(),
        ));
        let retries = c.retries.load(Ordering::Relaxed);
        if retries > 0 {
            text.push_str(&format!(", {retries} requests retried"));
        }
        if s.scheduled < args.count.unwrap_or(0) && errors == 0 {
            text.push_str(" (stopped early)");
        }
        if errors > 0 {
            if let Some(e) = c.last_error.lock().ok().and_then(|l| l.clone()) {
                text.push_str(&format!("; last error: {e}"));
                json.insert("last_error".into(), e.into());
            }
        }
        text.push('\n');
    }
    if let Some(r) = receiver {
        let st = r
            .stats
            .lock()
            .map_err(|_| anyhow::anyhow!("receiver statistics poisoned"))?;
        let expect = args.expect.or_else(|| send.map(|_| sent));
        let h = &st.hist;
        let q = |x: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(x))
            }
        };
        let mut lat = serde_json::Map::new();
        lat.insert("received".into(), st.received.into());
        lat.insert("count".into(), h.len().into());
        lat.insert("p50_ms".into(), q(0.5).into());
        lat.insert("p90_ms".into(), q(0.9).into());
        lat.insert("p99_ms".into(), q(0.99).into());
        lat.insert("p999_ms".into(), q(0.999).into());
        lat.insert("max_ms".into(), ms(h.max()).into());
        lat.insert(
            "mean_ms".into(),
            ((h.mean() / 1000.0 * 1000.0).round() / 1000.0).into(),
        );
        lat.insert("correction".into(), args.latency_correction.name().into());
        lat.insert("duplicates".into(), st.duplicates.into());
        lat.insert("warmup_s".into(), args.warmup.as_secs_f64().into());
        lat.insert("warmup_excluded".into(), st.warmup_excluded.into());
        lat.insert("unstamped".into(), st.unstamped.into());
        lat.insert("requests".into(), st.bodies.into());
        lat.insert("bad_requests".into(), st.bad_requests.into());
        if st.untracked > 0 {
            lat.insert("untracked".into(), st.untracked.into());
        }
        let span = st.last_ns.saturating_sub(st.first_ns) as f64 / 1e9;
        if span > 0.0 {
            lat.insert(
                "receive_rate".into(),
                (st.received as f64 / span).round().into(),
            );
        }
        let missing = expect.map(|n| st.missing(n));
        lat.insert(
            "missing".into(),
            missing
                .map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::Null),
        );
        if let (Some(n), Some(m)) = (expect, missing) {
            lat.insert("expected".into(), n.into());
            if m > 0 {
                lat.insert("first_missing".into(), st.first_missing(n, 10).into());
            }
        }
        text.push_str(&format!(
            "sluice-loadgen: received {} events in {} requests; latency p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples, correction {})",
            st.received,
            st.bodies,
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            ms(h.max()),
            h.len(),
            args.latency_correction.name()
        ));
        if st.warmup_excluded > 0 {
            text.push_str(&format!(
                "; {} events of the {:.1} s warm-up not in the percentiles",
                st.warmup_excluded,
                args.warmup.as_secs_f64()
            ));
        }
        if let Some(m) = missing {
            text.push_str(&format!("; missing {m} of {}", expect.unwrap_or(0)));
        }
        text.push_str(&format!("; duplicates {}", st.duplicates));
        if st.unstamped > 0 {
            text.push_str(&format!("; {} without a stamp", st.unstamped));
        }
        text.push('\n');
        json.insert("latency".into(), lat.into());
    }
    if args.json {
        eprintln!("{}", serde_json::Value::Object(json));
    } else {
        eprint!("{text}");
    }
    Ok(())
}
