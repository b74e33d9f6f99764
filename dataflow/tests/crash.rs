//! Crash proofs through the real `sluice` binary (issue 6, "What it must show"):
//!
//! - `sluice-loadgen --retry --acked-ids` → `http` source (`acknowledgements = true`) →
//!   disk-buffered `file` sink, with `sluice` SIGKILLed at seeded random moments and
//!   restarted on the same data dir and port: every event the load generator saw answered
//!   2xx is in the output (distinct `seq`s counted); duplicates are counted and printed.
//! - The same with a `file` source (the file written by `sluice-loadgen` while the kills
//!   happen): every line written is in the output.
//!
//! Knobs: `SLUICE_CRASH_KILLS` (10), `SLUICE_CRASH_EVENTS` (40,000), `SLUICE_CRASH_RATE`
//! (events/s the load generator sends, 10,000), `SLUICE_TEST_SEED` (the kill moments; printed),
//! `SLUICE_CRASH_CHECKPOINT` (the file source's `checkpoint_interval`; its default if unset).

mod common;

use common::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: the kill moments, from a printed seed.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed = std::env::var("SLUICE_TEST_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{test}: SLUICE_TEST_SEED={seed}");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// The `sluice-loadgen` binary beside the test's `sluice` (or `$SLUICE_LOADGEN_BIN`).
fn loadgen() -> Command {
    let bin = std::env::var("SLUICE_LOADGEN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_BIN_EXE_sluice"))
                .parent()
                .unwrap()
                .join("sluice-loadgen")
        });
    assert!(
        bin.exists(),
        "build sluice-loadgen first (cargo build --release -p sluice-loadgen): {}",
        bin.display()
    );
    Command::new(bin)
}

/// The `seq` stamp of a loadgen JSON event (`..."seq":N,"sent_ns":T}`).
fn seq_of(line: &str) -> Option<u64> {
    let at = line.rfind("\"seq\":")? + 6;
    let digits: &str = &line[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Whole lines of the output (JSON objects with a seq), their distinct seqs, and fragments:
/// lines a kill cut short (the file sink ends such a line at its next start), each of which
/// must be the start of a whole line (its record is replayed: at least once).
struct Tally {
    lines: u64,
    seqs: HashSet<u64>,
    fragments: u64,
    /// Fragments that are not the start of any whole line (must stay empty).
    bad: Vec<String>,
}

fn tally(out: &Path) -> Tally {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut t = Tally {
        lines: 0,
        seqs: HashSet::new(),
        fragments: 0,
        bad: Vec::new(),
    };
    let mut fragments = Vec::new();
    for l in text.lines() {
        let whole = serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v["seq"].as_u64());
        match whole {
            Some(s) => {
                t.lines += 1;
                t.seqs.insert(s);
            }
            None => fragments.push(l),
        }
    }
    t.fragments = fragments.len() as u64;
    for f in fragments {
        let whole_line = text
            .lines()
            .any(|l| l.len() > f.len() && l.starts_with(f) && seq_of(l).is_some());
        if !whole_line && t.bad.len() < 5 {
            t.bad.push(f.to_string());
        }
    }
    t
}

fn disk_sink(out: &Path) -> String {
    format!(
        r#"
[sinks.out]
type = "file"
inputs = ["in"]
path = "{out}"
encoding = "text"
buffer = {{ type = "disk", max_size = "256MiB", segment_size = "256KiB", sync = "batch" }}
"#,
        out = out.display()
    )
}

fn engine(dir: &Path, api: u16) -> String {
    format!(
        r#"
[engine]
shards = 2
data_dir = "{data}"
batch_size = 256

[api]
address = "127.0.0.1:{api}"
"#,
        data = dir.join("data").display()
    )
}

fn start(cfg: &Path, log: &Path, api: u16) -> ChildGuard {
    // Append: the log keeps every run (its tail is printed on failure).
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = ChildGuard(
        sluice()
            .arg("run")
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("sluice starts"),
    );
    wait_ready(&mut child, api, LIMIT);
    child
}

fn kill9(child: &mut ChildGuard) {
    let _ = child.kill();
    let _ = child.wait();
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A started process killed when the test ends (also on panic).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for the load generator and returns its JSON summary.
fn loadgen_summary(mut p: Proc, stderr: &Path) -> serde_json::Value {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "sluice-loadgen did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(stderr).unwrap_or_default();
    assert!(status.success(), "sluice-loadgen failed: {text}");
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON summary in: {text}"))
}

/// Kills `sluice` with SIGKILL `kills` times at seeded random moments (each run lives 100 to
/// 500 ms after it answered /ready) and restarts it; returns the last, running, process.
fn kill_loop(
    rng: &mut Rng,
    kills: u64,
    cfg: &Path,
    log: &Path,
    api: u16,
    mut progress: impl FnMut() -> String,
) -> ChildGuard {
    let mut child = start(cfg, log, api);
    for k in 0..kills {
        let ms = rng.range(100, 500);
        std::thread::sleep(Duration::from_millis(ms));
        kill9(&mut child);
        eprintln!("kill {k} after {ms} ms: {}", progress());
        child = start(cfg, log, api);
    }
    child
}

/// `sluice-loadgen --retry --acked-ids` → `http` (acknowledgements) → disk-buffered file
/// sink, SIGKILL × `SLUICE_CRASH_KILLS`: every event answered 2xx is in the output.
#[test]
fn http_source_sigkills_lose_no_acknowledged_event() {
    let kills = env_or("SLUICE_CRASH_KILLS", 10);
    let events = env_or("SLUICE_CRASH_EVENTS", 40_000);
    let rate = env_or("SLUICE_CRASH_RATE", 10_000);
    let mut rng = Rng::seeded("http_source_sigkills_lose_no_acknowledged_event");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let log = dir.path().join("sluice.log");
    let acked = dir.path().join("acked.txt");
    let (port, api) = (free_port(), free_port());
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"{}
[sources.in]
type = "http"
address = "127.0.0.1:{port}"
acknowledgements = true
{}"#,
            engine(dir.path(), api),
            disk_sink(&out)
        ),
    )
    .unwrap();

    let lg_err = dir.path().join("loadgen.err");
    let lg = Proc(
        loadgen()
            .args(["--format", "json", "--json", "--retry"])
            .args(["--count", &events.to_string(), "--rate", &rate.to_string()])
            .args(["--batch", "100", "--concurrency", "4"])
            .arg("-o")
            .arg(format!("http://127.0.0.1:{port}/logs"))
            .arg("--acked-ids")
            .arg(&acked)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&lg_err).unwrap())
            .spawn()
            .expect("sluice-loadgen starts"),
    );
    let mut child = kill_loop(&mut rng, kills, &cfg, &log, api, || {
        let ranges = std::fs::read_to_string(&acked).unwrap_or_default();
        let n: u64 = ranges
            .lines()
            .filter_map(|l| l.split_once(' ')?.1.parse::<u64>().ok())
            .sum();
        format!("{n} events acknowledged so far")
    });
    let summary = loadgen_summary(lg, &lg_err);
    eprintln!("loadgen: {summary}");

    // Every acknowledged seq, from the ranges the load generator wrote.
    let mut want = HashSet::new();
    for l in std::fs::read_to_string(&acked).unwrap().lines() {
        let (first, count) = l.split_once(' ').expect("FIRST COUNT");
        let (first, count): (u64, u64) = (first.parse().unwrap(), count.parse().unwrap());
        want.extend(first..first + count);
    }
    // With --retry and no stop, every event is eventually acknowledged.
    assert_eq!(summary["sent"], events, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(
        want.len() as u64,
        events,
        "acknowledged ranges cover every event"
    );

    let started = Instant::now();
    loop {
        let t = tally(&out);
        if want.iter().all(|s| t.seqs.contains(s)) {
            break;
        }
        if started.elapsed() > LIMIT {
            let missing: Vec<_> = want
                .iter()
                .filter(|s| !t.seqs.contains(s))
                .take(10)
                .collect();
            panic!(
                "{} of {} acknowledged events missing (first {missing:?}); log:\n{}",
                want.iter().filter(|s| !t.seqs.contains(s)).count(),
                want.len(),
                log_tail(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(terminate(&mut child, LIMIT), 0, "{}", log_tail(&log));
    let t = tally(&out);
    assert!(t.bad.is_empty(), "torn lines: {:?}", t.bad);
    let unknown = t.seqs.iter().filter(|s| **s >= events).count();
    assert_eq!(unknown, 0, "seqs that were never sent");
    eprintln!(
        "http: {kills} SIGKILLs, {} events acknowledged, {} distinct in the output, {} duplicates, {} fragments ({} requests retried)",
        want.len(),
        t.seqs.len(),
        t.lines - t.seqs.len() as u64,
        t.fragments,
        summary["retries"]
    );
}

/// `sluice-loadgen` appends to a file → `file` source → disk-buffered file sink, SIGKILL ×
/// `SLUICE_CRASH_KILLS` while it writes: every line written is in the output.
#[test]
fn file_source_sigkills_lose_no_line() {
    let kills = env_or("SLUICE_CRASH_KILLS", 10);
    let events = env_or("SLUICE_CRASH_EVENTS", 40_000);
    let rate = env_or("SLUICE_CRASH_RATE", 10_000);
    let mut rng = Rng::seeded("file_source_sigkills_lose_no_line");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    let out = dir.path().join("out.ndjson");
    let log = dir.path().join("sluice.log");
    let api = free_port();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"{}
[sources.in]
type = "file"
include = ["{input}"]
{checkpoint}
{}"#,
            engine(dir.path(), api),
            disk_sink(&out),
            input = input.display(),
            checkpoint = std::env::var("SLUICE_CRASH_CHECKPOINT")
                .map(|c| format!("checkpoint_interval = \"{c}\""))
                .unwrap_or_default()
        ),
    )
    .unwrap();
    std::fs::write(&input, b"").unwrap();

    let lg_err = dir.path().join("loadgen.err");
    let lg = Proc(
        loadgen()
            .args(["--format", "json", "--json"])
            .args(["--count", &events.to_string(), "--rate", &rate.to_string()])
            .arg("-o")
            .arg(&input)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&lg_err).unwrap())
            .spawn()
            .expect("sluice-loadgen starts"),
    );
    let mut child = kill_loop(&mut rng, kills, &cfg, &log, api, || {
        let t = tally(&out);
        format!(
            "{} lines written, {} distinct in the output so far",
            std::fs::read_to_string(&input)
                .unwrap_or_default()
                .lines()
                .count(),
            t.seqs.len()
        )
    });
    let summary = loadgen_summary(lg, &lg_err);
    assert_eq!(summary["sent"], events, "{summary}");

    let started = Instant::now();
    loop {
        let t = tally(&out);
        if t.seqs.len() as u64 >= events {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "only {} of {events} lines in the output; log:\n{}",
            t.seqs.len(),
            log_tail(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(terminate(&mut child, LIMIT), 0, "{}", log_tail(&log));
    let t = tally(&out);
    assert!(t.bad.is_empty(), "torn lines: {:?}", t.bad);
    assert_eq!(t.seqs.len() as u64, events);
    assert!(t.seqs.iter().all(|s| *s < events));
    eprintln!(
        "file: {kills} SIGKILLs, {events} lines written, {} distinct in the output, {} duplicates, {} fragments",
        t.seqs.len(),
        t.lines - t.seqs.len() as u64,
        t.fragments
    );
}

// ------------------------------------------------------------------ power cut

/// One record of a WAL segment as the scanner saw it before the cut: where it starts, where
/// the next one starts, and its lines.
struct Rec {
    offset: u64,
    end: u64,
    lines: Vec<String>,
}

/// The WAL segments of `dir` (sorted) and their records (scanned with the engine's
/// scanner; the file sink's framing undone with `unframe`).
fn scan_wal(dir: &Path) -> Vec<(PathBuf, Vec<Rec>)> {
    use sluice_engine::wal::segment::{parse_segment_name, Scanned, SegmentScanner};
    let mut segs: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let base = parse_segment_name(e.file_name().to_str()?)?;
                Some((base, e.path()))
            })
            .collect()
        })
        .unwrap_or_default();
    segs.sort();
    let mut out = Vec::new();
    for (_, path) in segs {
        let mut scan = SegmentScanner::open(&path).unwrap();
        let mut recs = Vec::new();
        while let Scanned::Record { offset, .. } = scan.next_record().unwrap() {
            let groups = sluice_connectors::sinks::disk_buffer::unframe(scan.payload())
                .expect("a file sink record");
            let lines = groups
                .iter()
                .flat_map(|(_, b)| {
                    String::from_utf8_lossy(b)
                        .lines()
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .collect();
            recs.push(Rec {
                offset,
                end: scan.position(),
                lines,
            });
        }
        out.push((path, recs));
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("component=\"out\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Power cut through the binary: a file source fills a disk-buffered file sink whose writer
/// cannot make progress (its output is a FIFO nobody reads, so opening it blocks), then
/// `sluice` is SIGKILLed. Each round copies the data dir and, per shard, cuts the WAL at a
/// seeded random byte offset of its log (the segment holding it is truncated there, later
/// segments removed: the state a power cut at that moment leaves). `sluice` started on the
/// cut copy delivers every record that was complete before the cut, once, nothing after
/// it, and reports the damage in its log and in `/metrics`
/// (`sluice_disk_buffer_torn_tails_total`). Odd rounds truncate an older segment instead and
/// keep the later ones: everything but the cut records is delivered, and the skip and the
/// records lost are reported (`..._corrupt_skips_total`, `..._records_lost_total`). Rounds
/// 2, 6, ... cut a segment header and a record boundary on purpose.
/// `SLUICE_CUT_ROUNDS` (default 4).
#[test]
fn power_cut_wal_keeps_every_complete_record() {
    let rounds = env_or("SLUICE_CUT_ROUNDS", 4);
    let lines_in = 20_000u64;
    let mut rng = Rng::seeded("power_cut_wal_keeps_every_complete_record");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    let text: String = (0..lines_in)
        .map(|i| format!("line {i:08} of the power cut input\n"))
        .collect();
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out.fifo");
    let c = std::ffi::CString::new(out.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let sink = |data: &Path| {
        format!(
            r#"
[engine]
shards = 2
data_dir = "{data}"
batch_size = 256

[sinks.out]
type = "file"
inputs = ["in"]
path = "{out}"
encoding = "text"
buffer = {{ type = "disk", max_size = "256MiB", segment_size = "128KiB", sync = "batch" }}
"#,
            data = data.display(),
            out = out.display()
        )
    };
    let api = free_port();
    let cfg = dir.path().join("fill.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n[api]\naddress = \"127.0.0.1:{api}\"\n\n[sources.in]\ntype = \"file\"\ninclude = [\"{}\"]\n",
            sink(&dir.path().join("data")),
            input.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("fill.log");
    let mut child = start(&cfg, &log, api);
    // Wait until every line is durable in the WALs (read back with the engine's scanner).
    let wal = |root: &Path, shard: usize| root.join(format!("buffers/out/shard-{shard}"));
    let started = Instant::now();
    loop {
        let n: usize = (0..2)
            .flat_map(|s| scan_wal(&wal(&dir.path().join("data"), s)))
            .flat_map(|(_, recs)| recs)
            .map(|r| r.lines.len())
            .sum();
        if n as u64 >= lines_in {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "only {n} of {lines_in} lines in the WALs; log:\n{}",
            log_tail(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill9(&mut child);
    // The writer never got to write: the output is a regular file from here on.
    std::fs::remove_file(&out).unwrap();

    for round in 0..rounds {
        let data = dir.path().join(format!("cut-{round}"));
        copy_dir(&dir.path().join("data"), &data);
        let mut want: HashSet<String> = HashSet::new();
        let mut maybe: HashSet<String> = HashSet::new();
        // Odd rounds damage an older segment instead (when a shard has two or more): the
        // later ones stay, the reader reports the damage and goes on with the next segment.
        let inner = round % 2 == 1;
        let (mut damaged, mut unsure, mut lost) = (0, 0, 0u64);
        for shard in 0..2 {
            let segs = scan_wal(&wal(&data, shard));
            let seg_len = |recs: &[Rec]| recs.last().map_or(32, |r| r.end);
            let (ci, x, keep_later) = if inner && segs.len() >= 2 {
                let ci = rng.range(0, segs.len() as u64 - 1) as usize;
                (ci, rng.range(0, seg_len(&segs[ci].1) + 1), true)
            } else if round % 4 == 2 {
                // The edges, on purpose: shard 0 cuts a segment header (the segment is
                // dropped whole), shard 1 cuts exactly on a record boundary (nothing is torn).
                let ci = rng.range(0, segs.len() as u64) as usize;
                let recs = &segs[ci].1;
                let x = if shard == 0 || recs.is_empty() {
                    rng.range(0, 32)
                } else {
                    recs[rng.range(0, recs.len() as u64) as usize].end
                };
                (ci, x, false)
            } else {
                // A byte position in the shard's log: segment i, offset x in it (up to the
                // end of its last record; below 32 the segment header itself is cut).
                let total: u64 = segs.iter().map(|(_, r)| seg_len(r)).sum();
                let mut at = rng.range(0, total + 1);
                let mut cut = (segs.len() - 1, 32);
                for (i, (_, recs)) in segs.iter().enumerate() {
                    if at <= seg_len(recs) {
                        cut = (i, at);
                        break;
                    }
                    at -= seg_len(recs);
                }
                (cut.0, cut.1, false)
            };
            for (i, (path, recs)) in segs.iter().enumerate() {
                if i > ci && !keep_later {
                    std::fs::remove_file(path).unwrap();
                    continue;
                }
                for r in recs {
                    if i != ci || r.end <= x {
                        want.extend(r.lines.iter().cloned());
                    } else if r.offset < x {
                        // Cut inside this record: only inside its padding would it survive.
                        maybe.extend(r.lines.iter().cloned());
                    }
                }
                if i == ci {
                    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                    f.set_len(x).unwrap();
                    // Records are 8-byte aligned: a cut in the last 7 bytes of a record may
                    // only cut padding. At the tail that damages nothing; inside an older
                    // segment it does when a record follows.
                    let in_padding = |r: &&Rec| r.offset < x && x < r.end && r.end - x < 8;
                    let whole = if keep_later {
                        // Damage unless the segment is whole.
                        x >= 32 && x == seg_len(recs)
                    } else {
                        x >= 32 && (x == 32 || recs.iter().any(|r| r.end == x))
                    };
                    let padding = match recs.last() {
                        Some(last) if keep_later => in_padding(&last),
                        _ if keep_later => false,
                        _ => recs.iter().any(|r| in_padding(&r)),
                    };
                    if padding {
                        unsure += 1;
                    } else if !whole {
                        damaged += 1;
                        lost += recs.iter().filter(|r| r.end > x).count() as u64;
                    }
                    eprintln!(
                        "round {round} shard {shard}: cut {} at byte {x} ({}{})",
                        path.file_name().unwrap().to_string_lossy(),
                        if keep_later {
                            format!("an older segment, {} in all", segs.len())
                        } else {
                            format!("{} of {} segments kept", ci + 1, segs.len())
                        },
                        if whole { ", nothing cut" } else { "" }
                    );
                }
            }
        }

        // Start on the cut copy; nothing new comes in (an idle http source), so the output
        // is exactly what the WALs replay.
        let api = free_port();
        let cfg = dir.path().join(format!("cut-{round}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "{}\n[api]\naddress = \"127.0.0.1:{api}\"\n\n[sources.in]\ntype = \"http\"\naddress = \"127.0.0.1:{}\"\n",
                sink(&data),
                free_port()
            ),
        )
        .unwrap();
        let _ = std::fs::remove_file(&out);
        let log = dir.path().join(format!("cut-{round}.log"));
        let mut child = start(&cfg, &log, api);
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let got: Vec<String> = text.lines().map(String::from).collect();
            let set: HashSet<&String> = got.iter().collect();
            if want.iter().all(|w| set.contains(w)) {
                break;
            }
            assert!(
                started.elapsed() < LIMIT,
                "round {round}: {} of {} complete records' lines delivered; log:\n{}",
                got.len(),
                want.len(),
                log_tail(&log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let metrics = http_get(api, "/metrics").expect("metrics").1;
        assert_eq!(terminate(&mut child, LIMIT), 0, "{}", log_tail(&log));
        // Everything it delivered, until it stopped.
        let got: Vec<String> = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        let got_set: HashSet<&String> = got.iter().collect();
        assert_eq!(got_set.len(), got.len(), "round {round}: a line twice");
        for g in &got {
            assert!(
                want.contains(g) || maybe.contains(g),
                "round {round}: {g:?} was delivered but its record was cut"
            );
        }
        let torn = metric_sum(&metrics, "sluice_disk_buffer_torn_tails_total") as usize;
        let skips = metric_sum(&metrics, "sluice_disk_buffer_corrupt_skips_total") as usize;
        let records_lost = metric_sum(&metrics, "sluice_disk_buffer_records_lost_total") as u64;
        // Tail cuts are torn tails; cuts in older segments are skips with records lost.
        let found = if inner { skips } else { torn };
        assert!(
            (damaged..=damaged + unsure).contains(&found),
            "round {round}: {found} damages in /metrics (torn {torn}, skips {skips}), want {damaged} (+{unsure} unsure)"
        );
        if inner {
            assert_eq!(torn, 0, "round {round}: no tail was cut");
            if unsure == 0 {
                assert_eq!(
                    records_lost, lost,
                    "round {round}: records lost in /metrics"
                );
            }
        } else {
            assert_eq!(skips, 0, "round {round}: no older segment was damaged");
        }
        let logged = std::fs::read_to_string(&log).unwrap();
        let reported = logged.matches("WAL torn write at the tail").count()
            + logged.matches("WAL tail segment header torn").count()
            + logged.matches("WAL segment damaged: skipping").count()
            + logged.matches("WAL segment header damaged").count();
        assert_eq!(reported, found, "round {round}: damage in the log");
        eprintln!(
            "round {round}: {} lines delivered of {} complete ({} in a cut record), {torn} torn tails, {skips} damaged segments skipped ({records_lost} records lost) reported, {} bytes cut at the tail",
            got.len(),
            want.len(),
            maybe.len(),
            metric_sum(&metrics, "sluice_disk_buffer_recovery_dropped_bytes")
        );
    }
}

// ------------------------------------------------------------------ start-up

/// Start-up with a large unacknowledged disk buffer: the WAL a crashed run leaves (written
/// here with the engine's WAL writer: `SLUICE_STARTUP_BUFFER_MIB`, default 200, or
/// `SLUICE_STARTUP_BUFFER_GIB`) is replayed by a fresh `sluice`; prints the time until
/// `/health` answers and until the first replayed line is in the output, and checks that
/// every line arrives once, in order. Times are printed, not asserted. The segments were
/// just written, so they are in the page cache: this is the warm start.
#[test]
fn startup_with_a_large_unacknowledged_buffer() {
    use futures_lite::future::block_on;
    use sluice_engine::wal::{StdIo, SyncMode, Wal, WalConfig};
    use std::io::BufRead;
    let mib = match std::env::var("SLUICE_STARTUP_BUFFER_GIB") {
        Ok(g) => g.parse::<u64>().expect("SLUICE_STARTUP_BUFFER_GIB") * 1024,
        Err(_) => env_or("SLUICE_STARTUP_BUFFER_MIB", 200),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let wal_dir = dir.path().join("data/buffers/out/shard-0");
    let key = out.display().to_string();
    // Records of ~256 KiB: 2,048 lines of 128 bytes.
    const PER: u64 = 2048;
    let line = |i: u64| format!("startup {i:012} {}\n", "x".repeat(106));
    assert_eq!(line(0).len(), 128);
    let records = (mib << 20) / (PER * 128);
    let t = Instant::now();
    {
        let wal = Wal::open(
            &wal_dir,
            WalConfig {
                segment_size: 64 << 20,
                sync: SyncMode::Batch,
            },
        )
        .unwrap();
        let w = block_on(wal.writer(StdIo)).unwrap();
        let mut body = String::with_capacity((PER * 128) as usize);
        let mut payload = Vec::new();
        for r in 0..records {
            body.clear();
            for i in r * PER..(r + 1) * PER {
                body.push_str(&line(i));
            }
            sluice_connectors::sinks::disk_buffer::frame(
                &[(key.clone(), body.as_bytes().to_vec())],
                &mut payload,
            );
            let ticket = block_on(w.append(PER as u32, &payload)).unwrap();
            if r + 1 == records || r % 256 == 255 {
                block_on(w.durable(ticket)).unwrap();
            }
        }
    }
    let lines = records * PER;
    eprintln!(
        "wrote {records} records ({lines} lines, {} MiB) in {:.1} s",
        (records * PER * 128) >> 20,
        t.elapsed().as_secs_f64()
    );

    let api = free_port();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[engine]
shards = 1
data_dir = "{data}"

[api]
address = "127.0.0.1:{api}"

[sources.in]
type = "http"
address = "127.0.0.1:{port}"

[sinks.out]
type = "file"
inputs = ["in"]
path = "{out}"
encoding = "text"
buffer = {{ type = "disk", max_size = "64GiB", segment_size = "64MiB" }}
"#,
            data = dir.path().join("data").display(),
            port = free_port(),
            out = out.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("sluice.log");
    let t0 = Instant::now();
    let mut child = ChildGuard::spawn_logged(sluice().arg("run").arg(&cfg), &log);
    let mut health = None;
    let mut first = None;
    while health.is_none() || first.is_none() {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("sluice exited with {s}; log:\n{}", log_tail(&log));
        }
        if health.is_none() && matches!(http_get(api, "/health"), Some((200, _))) {
            health = Some(t0.elapsed());
        }
        if first.is_none() && std::fs::metadata(&out).map_or(0, |m| m.len()) > 0 {
            first = Some(t0.elapsed());
        }
        assert!(t0.elapsed() < LIMIT, "no start within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let want_bytes = lines * 128;
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < want_bytes {
        assert!(
            t0.elapsed() < LIMIT * 10,
            "replay incomplete: {} of {want_bytes} bytes",
            std::fs::metadata(&out).map_or(0, |m| m.len())
        );
        if let Some(s) = child.try_wait().unwrap() {
            panic!("sluice exited with {s}; log:\n{}", log_tail(&log));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = t0.elapsed();
    assert_eq!(terminate(&mut child, LIMIT), 0, "{}", log_tail(&log));
    let (health, first) = (health.unwrap(), first.unwrap());
    // Every line once, in order (streamed: the output may be gigabytes).
    let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&out).unwrap());
    let mut n = 0u64;
    for l in f.lines() {
        let l = l.unwrap();
        assert_eq!(format!("{l}\n"), line(n), "line {n}");
        n += 1;
    }
    assert_eq!(n, lines, "every replayed line once");
    eprintln!(
        "start-up with {mib} MiB unacknowledged: /health after {:.0} ms, first replayed line after {:.0} ms, all {lines} lines after {:.2} s",
        health.as_secs_f64() * 1000.0,
        first.as_secs_f64() * 1000.0,
        all.as_secs_f64()
    );
}
