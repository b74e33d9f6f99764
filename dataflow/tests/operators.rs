//! End-to-end tests of the operators through the real `sluice` binary: format detection over
//! a mixed file, syslog carrying JSON, keyed transforms across shards (the exchange), route,
//! redact and aggregate.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let cfg = dir.join("p.toml");
    let text = format!(
        "[engine]\ndata_dir = \"{}\"\n{body}",
        dir.join("data").display()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Runs `sluice run cfg` with `input` on stdin; returns (stdout, stderr) after exit 0.
fn run_stdin(cfg: &Path, input: &[u8]) -> (String, String) {
    let mut child = sluice()
        .arg("run")
        .arg(cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&data).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Runs `sluice run cfg` until it exits by itself (file sources with `exit_at_eof`-like
/// behaviour are not available, so the test waits for the output and sends SIGTERM).
fn run_until(cfg: &Path, dir: &Path, done: impl Fn() -> bool) {
    let log = dir.join("sluice.log");
    let mut child = spawn_logged(sluice().arg("run").arg(cfg), &log);
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < LIMIT,
            "timed out; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(terminate(&mut child, LIMIT), 0);
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// `format = "auto"` over one file mixing the bench generator's three formats with logfmt,
/// RFC 3164, Apache common, CRI and plain lines: every line is labelled with its format,
/// in order (one shard keeps the order), and none is rejected.
#[test]
fn auto_detection_labels_every_line_of_a_mixed_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut by_format: Vec<(String, Vec<String>)> = Vec::new();
    for (format, label) in [
        ("json", "json"),
        ("syslog", "syslog_rfc5424"),
        ("apache", "apache_combined"),
    ] {
        let p = dir.path().join(format!("{format}.log"));
        gen_logs(format, 3_000, 5, &p);
        let lines = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        by_format.push((label.to_string(), lines));
    }
    let extra: Vec<(&str, String)> = (0..500)
        .flat_map(|i| {
            [
                (
                    "logfmt",
                    format!("ts=2026-11-21T09:00:{:02}Z level=info msg=\"req {i}\" id={i}", i % 60),
                ),
                (
                    "syslog_rfc3164",
                    format!("<13>Nov {:>2} 09:00:01 host{i} app[{i}]: line {i}", 1 + i % 28),
                ),
                (
                    "apache_common",
                    format!(
                        "10.0.{}.{} - - [21/Nov/2026:09:00:01 +0000] \"GET /p/{i} HTTP/1.1\" 200 {i}",
                        i / 256,
                        i % 256
                    ),
                ),
                (
                    "cri",
                    format!("2026-11-21T09:00:01.{i:09}Z stdout F container line {i}"),
                ),
                ("plain", format!("just words number {i} here")),
            ]
        })
        .collect();
    // Interleave: one line of each source in turn.
    let mut input = String::new();
    let mut want = Vec::new();
    let mut cursors = vec![0usize; by_format.len()];
    let mut e = 0;
    loop {
        let mut any = false;
        for (k, (label, lines)) in by_format.iter().enumerate() {
            if let Some(l) = lines.get(cursors[k]) {
                input.push_str(l);
                input.push('\n');
                want.push(label.clone());
                cursors[k] += 1;
                any = true;
            }
        }
        for _ in 0..5 {
            if let Some((label, l)) = extra.get(e) {
                input.push_str(l);
                input.push('\n');
                want.push(label.to_string());
                e += 1;
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    let src = dir.path().join("mixed.log");
    std::fs::write(&src, &input).unwrap();
    let out = dir.path().join("out.ndjson");
    let bad = dir.path().join("bad.ndjson");
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"shards = 1

[sources.in]
type = "file"
include = ["{src}"]

[transforms.p]
type = "parse"
inputs = ["in"]
format = "auto"

[sinks.out]
type = "file"
inputs = ["p"]
path = "{out}"

[sinks.bad]
type = "file"
inputs = ["p.dropped"]
path = "{bad}"
"#,
            src = src.display(),
            out = out.display(),
            bad = bad.display()
        ),
    );
    let total = want.len();
    run_until(&cfg, dir.path(), || count_lines(&out) >= total);
    let text = std::fs::read_to_string(&out).unwrap();
    let got: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["log_format"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(got.len(), total);
    let wrong: Vec<(usize, &String, &String)> = got
        .iter()
        .zip(&want)
        .enumerate()
        .filter(|(_, (g, w))| g != w)
        .map(|(i, (g, w))| (i, g, w))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "mislabelled (index, got, want): {wrong:?}"
    );
    assert_eq!(count_lines(&bad), 0);
    // Parsed, not just labelled: spot-check fields of each kind.
    let first: Vec<serde_json::Value> = text
        .lines()
        .take(8)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(first[0]["level"].is_string());
    assert_eq!(first[1]["facility"], "local0");
    assert!(first[2]["status"].is_i64());
    assert_eq!(first[3]["level"], "info");
    assert_eq!(first[4]["appname"], "app");
    assert_eq!(first[5]["status"], 200);
    assert_eq!(first[6]["stream"], "stdout");
    assert_eq!(first[7]["message"], "just words number 0 here");
}

/// The generator's syslog lines carry JSON in the message: parse syslog, then parse the
/// `message` field as JSON, then filter on a field that only the inner JSON has.
#[test]
fn syslog_with_json_message_parses_in_two_steps() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    gen_logs("syslog", 4_000, 9, &input);
    let text = std::fs::read_to_string(&input).unwrap();
    let want = text
        .lines()
        .filter(|l| {
            let msg = &l[l.find(" - {").unwrap() + 3..];
            let v: serde_json::Value = serde_json::from_str(msg).unwrap();
            let app = l.split(' ').nth(3).unwrap();
            v["http"]["status"].as_i64().unwrap() >= 500 && app.starts_with("checkout")
        })
        .count();
    assert!(want > 0);
    let cfg = write_config(
        dir.path(),
        r#"shards = 2

[sources.in]
type = "stdin"

[transforms.syslog]
type = "parse"
inputs = ["in"]
format = "syslog"

[transforms.inner]
type = "parse"
inputs = ["syslog"]
format = "json"
field = "message"

[transforms.errors]
type = "filter"
inputs = ["inner"]
condition = 'http.status >= 500 && appname.startsWith("checkout")'

[sinks.out]
type = "console"
inputs = ["errors"]
"#,
    );
    let (stdout, _) = run_stdin(&cfg, text.as_bytes());
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), want);
    for v in &lines {
        assert_eq!(v["facility"], "local0");
        assert!(v["http"]["status"].as_i64().unwrap() >= 500);
        assert!(v["appname"].as_str().unwrap().starts_with("checkout"));
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(v["message"].as_str().unwrap().starts_with('{'));
    }
}

/// Dedupe by line on 2 shards behind a thread source that deals batches round robin: the
/// exchange sends every copy of a line to the same shard, so each line comes out once.
/// Without it, copies landing on different shards would both pass.
#[test]
fn keyed_dedupe_across_shards_keeps_each_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        r#"shards = 2
batch_size = 64

[sources.in]
type = "stdin"

[transforms.once]
type = "dedupe"
inputs = ["in"]
cache_size = 100000

[sinks.out]
type = "console"
inputs = ["once"]
encoding = "text"
"#,
    );
    let mut input = String::new();
    for round in 0..3 {
        for i in 0..20_000 {
            // Vary the order per round so copies fall in different batches.
            let k = (i * 7919 + round * 13) % 20_000;
            input.push_str(&format!("line {k}\n"));
        }
    }
    let (stdout, _) = run_stdin(&cfg, input.as_bytes());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for l in stdout.lines() {
        *seen.entry(l).or_default() += 1;
    }
    assert_eq!(seen.len(), 20_000);
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(3).collect();
    assert!(dups.is_empty(), "lines seen more than once: {dups:?}");

    let plan = sluice().arg("plan").arg(&cfg).output().unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("keyed exchange before once"), "{plan}");
}

/// route by level, redact e-mail addresses and card numbers on one branch, aggregate counts
/// per level on 2 shards (the exchange puts each level on one shard; the final window is
/// emitted at shutdown).
#[test]
fn route_redact_and_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.ndjson");
    let others = dir.path().join("others.ndjson");
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"shards = 2

[sources.in]
type = "stdin"

[transforms.p]
type = "parse"
inputs = ["in"]
format = "logfmt"

[transforms.by_level]
type = "route"
inputs = ["p"]
routes = {{ errors = 'level == "error"', loud = 'level in ["warn", "error"]' }}

[transforms.clean]
type = "redact"
inputs = ["by_level.errors"]
fields = ["msg"]
detectors = ["email", "credit_card"]

[sinks.errors]
type = "file"
inputs = ["clean"]
path = "{errors}"

[sinks.others]
type = "file"
inputs = ["by_level._unmatched"]
path = "{others}"

[transforms.counts]
type = "aggregate"
inputs = ["p"]
group_by = ["level"]
window = "1h"
metrics = [{{ name = "n", op = "count" }}, {{ name = "bytes", op = "sum", field = "size" }}]

[sinks.stats]
type = "console"
inputs = ["counts"]
"#,
            errors = errors.display(),
            others = others.display()
        ),
    );
    let mut input = String::new();
    let levels = ["info", "warn", "error", "debug"];
    let mut want: HashMap<&str, (u64, u64)> = HashMap::new();
    for i in 0..4_000u64 {
        let level = levels[(i % 4) as usize];
        let size = i % 100;
        input.push_str(&format!(
            "level={level} size={size} msg=\"user{i}@example.com paid with 4111 1111 1111 1111\"\n"
        ));
        let w = want.entry(level).or_default();
        w.0 += 1;
        w.1 += size;
    }
    let (stdout, _) = run_stdin(&cfg, input.as_bytes());
    let errs = std::fs::read_to_string(&errors).unwrap();
    assert_eq!(errs.lines().count(), 1_000);
    for l in errs.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["msg"], "[REDACTED] paid with [REDACTED]", "{l}");
    }
    let oth = std::fs::read_to_string(&others).unwrap();
    assert_eq!(oth.lines().count(), 2_000);
    assert!(oth.contains("user0@example.com"));
    let mut got: HashMap<String, (u64, u64)> = HashMap::new();
    for l in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let e = got
            .entry(v["level"].as_str().unwrap().to_string())
            .or_default();
        e.0 += v["n"].as_u64().unwrap();
        e.1 += v["bytes"].as_f64().unwrap() as u64;
    }
    assert_eq!(got.len(), 4, "{stdout}");
    for (level, (n, bytes)) in &want {
        assert_eq!(got[*level], (*n, *bytes), "{level}");
    }
    // Each level's window came out of exactly one shard: one line per level.
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
}

/// Config errors of the new options name the file, line and key.
#[test]
fn operator_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[transforms.p]\ntype = \"parse\"\ninputs = [\"in\"]\nformat = \"grok\"\npattern = \"%{NOPE:x}\"\n",
            "transforms.p.pattern",
            "unknown pattern NOPE",
        ),
        (
            "[transforms.p]\ntype = \"parse\"\ninputs = [\"in\"]\nformat = \"json\"\nfield_split = \",\"\n",
            "transforms.p.field_split",
            "option of format kv",
        ),
        (
            "[transforms.p]\ntype = \"route\"\ninputs = [\"in\"]\nroutes = { a = 'level ==' }\n",
            "transforms.p.routes",
            "route `a`",
        ),
        (
            "[transforms.p]\ntype = \"redact\"\ninputs = [\"in\"]\npatterns = [\"(\"]\n",
            "transforms.p",
            "(",
        ),
    ];
    for (body, key, msg) in cases {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(
            &cfg,
            format!("[sources.in]\ntype = \"stdin\"\n\n{body}\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"p\"]\n"),
        )
        .unwrap();
        let out = Command::new(sluice().get_program())
            .arg("validate")
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0));
        assert!(err.contains(key), "{key} not in: {err}");
        assert!(err.contains(msg), "{msg} not in: {err}");
        assert!(err.contains("bad.toml:"), "{err}");
    }
}

/// log_to_metric counters and histograms appear in `/metrics`, with labels from fields,
/// summed over both shards.
#[test]
fn log_to_metric_feeds_the_metrics_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"shards = 2

[api]
address = "127.0.0.1:{port}"

[sources.gen]
type = "generator"
format = "json"
rate = 20000

[transforms.p]
type = "parse"
inputs = ["gen"]
format = "json"

[transforms.m]
type = "log_to_metric"
inputs = ["p"]
metrics = [
  {{ type = "counter", name = "app_events_total", labels = {{ level = "level" }} }},
  {{ type = "histogram", name = "app_latency_ms", field = "http.latency_ms", buckets = [10.0, 100.0] }},
]

[sinks.out]
type = "blackhole"
inputs = ["m"]
"#
        ),
    );
    let log = dir.path().join("sluice.log");
    let mut child = spawn_logged(sluice().arg("run").arg(&cfg), &log);
    let body = wait_metric(&mut child, port, "app_latency_ms_count", "", 3000.0, LIMIT);
    let total: f64 = ["debug", "info", "warn", "error"]
        .iter()
        .map(|l| metric(&body, "app_events_total", &format!("level=\"{l}\"")).unwrap_or(0.0))
        .sum();
    assert!(total >= 3000.0, "{body}");
    for l in ["debug", "info", "warn", "error"] {
        assert!(
            metric(&body, "app_events_total", &format!("level=\"{l}\"")).unwrap_or(0.0) > 0.0,
            "no {l} events: {body}"
        );
    }
    assert!(body.contains("# TYPE app_latency_ms histogram"), "{body}");
    let le10 = metric(&body, "app_latency_ms_bucket", "le=\"10\"").unwrap();
    let le100 = metric(&body, "app_latency_ms_bucket", "le=\"100\"").unwrap();
    let inf = metric(&body, "app_latency_ms_bucket", "le=\"+Inf\"").unwrap();
    let count = metric(&body, "app_latency_ms_count", "").unwrap();
    assert!(
        le10 <= le100 && le100 <= inf && inf == count && count >= 3000.0,
        "{body}"
    );
    let _ = terminate(&mut child, LIMIT);
}

/// Hostile input to the syslog parser through the binary: a truncated header, a 1 MiB line
/// (cut to max_line_bytes by the source), invalid UTF-8, binary garbage. Each goes to
/// `ID.dropped` with a reason; the good lines around them arrive.
#[test]
fn hostile_syslog_lines_go_to_dropped_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        r#"shards = 2

[sources.in]
type = "stdin"

[transforms.p]
type = "parse"
inputs = ["in"]
format = "syslog"

[sinks.out]
type = "console"
inputs = ["p"]

[sinks.bad]
type = "console"
inputs = ["p.dropped"]
stream = "stderr"
"#,
    );
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"<13>1 2026-11-21T09:00:00Z host app - - - good one\n");
    input.extend_from_slice(b"<13>1 2026-11-21T09:0\n");
    input.extend_from_slice(b"<13>1 2026-11-21T09:00:00Z ");
    input.extend(std::iter::repeat_n(b'x', 1 << 20));
    input.push(b'\n');
    input.extend_from_slice(b"<13>1 2026-11-21T09:00:00Z host app - - - bad \xff\xfe utf8\n");
    input.extend_from_slice(b"\x00\x01\x02\xff garbage\n");
    input.extend_from_slice(b"<13>1 2026-11-21T09:00:01Z host app - - - good two\n");
    let (stdout, stderr) = run_stdin(&cfg, &input);
    let good: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<&str> = good
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"good one") && messages.contains(&"good two"),
        "{stdout}"
    );
    let dropped: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = dropped
        .iter()
        .map(|v| v["_meta"]["error"].as_str().unwrap())
        .collect();
    // Every line is accounted for: parsed, or dropped with a syslog reason.
    assert_eq!(good.len() + dropped.len(), 6, "{stdout}\n{stderr}");
    assert!(
        reasons.iter().all(|r| r.starts_with("invalid syslog: ")),
        "{reasons:?}"
    );
    assert!(dropped.len() >= 3, "{reasons:?}");
}
