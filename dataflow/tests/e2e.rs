//! End-to-end tests of the real `sluice` binary: real files, the real bench generator, the
//! real HTTP API, signals and exit codes.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// The issue's path: bench JSON lines → parse → filter `level != "debug"` → add env="prod"
/// → file sink. The output holds exactly the non-debug events, each written as its input
/// bytes with `,"env":"prod"` spliced in, nothing else changed; the API reports it.
#[test]
fn json_file_through_parse_filter_fields_to_file_sink() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    gen_logs("json", 20_000, 7, &input);
    let text = std::fs::read_to_string(&input).unwrap();
    let mut expected: Vec<String> = Vec::new();
    let mut debug = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["level"] == "debug" {
            debug += 1;
        } else {
            expected.push(format!("{},\"env\":\"prod\"}}", &line[..line.len() - 1]));
        }
    }
    assert!(debug > 0 && !expected.is_empty());
    let out = dir.path().join("out/result.ndjson");
    let port = free_port();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[engine]
shards = 2
data_dir = "{data}"
batch_size = 256

[api]
address = "127.0.0.1:{port}"

[sources.in]
type = "file"
include = ["{input}"]

[transforms.parse]
type = "parse"
inputs = ["in"]
format = "json"

[transforms.keep]
type = "filter"
inputs = ["parse"]
condition = 'level != "debug"'

[transforms.env]
type = "fields"
inputs = ["keep"]
add = {{ env = "prod" }}

[sinks.out]
type = "file"
inputs = ["env"]
path = "{out}"
encoding = "ndjson"
"#,
            data = dir.path().join("data").display(),
            input = input.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("sluice.log");
    let mut child = spawn_logged(sluice().arg("run").arg(&cfg), &log);
    wait_ready(&mut child, port, LIMIT);
    let metrics = wait_metric(
        &mut child,
        port,
        "sluice_events_in_total",
        "component=\"out\"",
        expected.len() as f64,
        LIMIT,
    );
    assert_eq!(
        metric(&metrics, "sluice_events_in_total", "component=\"in\""),
        Some(20_000.0)
    );
    assert_eq!(
        metric(&metrics, "sluice_events_out_total", "component=\"keep\""),
        Some(expected.len() as f64)
    );
    assert_eq!(
        metric(
            &metrics,
            "sluice_events_dropped_total",
            "component=\"keep\",reason=\"filtered\""
        ),
        Some(debug as f64)
    );
    assert!(metric(&metrics, "sluice_bytes_in_total", "component=\"in\"").unwrap() > 4_000_000.0);
    assert!(
        metric(
            &metrics,
            "sluice_batch_latency_seconds_count",
            "component=\"out\""
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    assert_eq!(
        terminate(&mut child, LIMIT),
        0,
        "log: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    let got = std::fs::read_to_string(&out).unwrap();
    let mut got: Vec<String> = got.lines().map(String::from).collect();
    got.sort();
    expected.sort();
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected,
        "output differs from the non-debug input lines with env added"
    );
}

/// `sluice run p.toml < file` works as a filter: the pipeline drains at end of input and
/// exits 0; lines that are not JSON go to `parse.dropped` with the reason.
#[test]
fn stdin_pipeline_is_a_filter_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[engine]
shards = 2
data_dir = "{}"

[sources.in]
type = "stdin"

[transforms.parse]
type = "parse"
inputs = ["in"]
format = "json"

[transforms.errors]
type = "filter"
inputs = ["parse"]
condition = 'level == "error" && has(http.status) && http.status >= 500'

[sinks.out]
type = "console"
inputs = ["errors"]

[sinks.bad]
type = "console"
inputs = ["parse.dropped"]
stream = "stderr"
"#,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let input = dir.path().join("in.ndjson");
    gen_logs("json", 5_000, 11, &input);
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str("this is not json\n{\"level\":\"error\",\"http\":{\"status\":503}\n");
    // The last line has no newline: it must still arrive at end of input.
    text.push_str("{\"level\":\"error\",\"http\":{\"status\":599},\"last\":true}");
    let expected: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["level"] == "error" && v["http"]["status"].as_i64().unwrap_or(0) >= 500)
                .unwrap_or(false)
        })
        .collect();
    let mut child = sluice()
        .arg("run")
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut got: Vec<&str> = stdout.lines().collect();
    let mut want = expected.clone();
    got.sort();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    assert!(stdout.contains("\"last\":true"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"{"message":"this is not json","_meta":{"error":"invalid JSON:"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"{"message":"{\"level\":\"error\",\"http\":{\"status\":503}","#),
        "{stderr}"
    );
}

/// SIGTERM while a generator runs flat out into a file: the drain finishes, the process exits
/// 0, and the file holds only whole, valid lines, as many as the sink counted.
#[test]
fn sigterm_drains_in_flight_batches_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen.ndjson");
    let port = free_port();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[engine]
shards = 2
data_dir = "{}"

[api]
address = "127.0.0.1:{port}"

[sources.gen]
type = "generator"
format = "apache"

[sinks.out]
type = "file"
inputs = ["gen"]
path = "{}"
encoding = "text"
"#,
            dir.path().join("data").display(),
            out.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("sluice.log");
    let mut child = spawn_logged(sluice().arg("run").arg(&cfg), &log);
    wait_ready(&mut child, port, LIMIT);
    wait_metric(
        &mut child,
        port,
        "sluice_events_in_total",
        "component=\"out\"",
        50_000.0,
        LIMIT,
    );
    assert_eq!(terminate(&mut child, LIMIT), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 50_000);
    for l in &lines {
        assert!(
            l.contains(" HTTP/1.1\" ") && l.starts_with("10."),
            "not a whole apache line: {l}"
        );
    }
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("draining"), "{log}");
}

/// Several sources and sinks, fan-out and fan-in, a named output, and the generator's
/// `count`: the process ends by itself when every source is done.
#[test]
fn fan_out_and_fan_in_with_counted_generators() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("p.toml");
    let a = dir.path().join("a.ndjson");
    std::fs::write(
        &cfg,
        format!(
            r#"
[engine]
shards = 2
data_dir = "{}"
batch_size = 100

[api]
address = "127.0.0.1:{port}"

[sources.json]
type = "generator"
format = "json"
count = 3001

[sources.sys]
type = "generator"
format = "syslog"
count = 999

[transforms.parse]
type = "parse"
inputs = ["json", "sys"]
format = "json"

[transforms.tag]
type = "fields"
inputs = ["parse"]
set = {{ kind = "json" }}
remove = ["trace_id"]
rename = {{ msg = "message" }}

[sinks.all]
type = "file"
inputs = ["tag", "parse.dropped"]
path = "{}"

[sinks.count]
type = "blackhole"
inputs = ["parse", "sys"]
"#,
            dir.path().join("data").display(),
            a.display()
        ),
    )
    .unwrap();
    let out = sluice().arg("run").arg(&cfg).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // blackhole saw the 3001 parsed JSON events and the 999 raw syslog lines.
    assert!(stderr.contains("blackhole count: 4000 events"), "{stderr}");
    let text = std::fs::read_to_string(&a).unwrap();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v.get("kind").is_some() {
            assert!(
                v.get("trace_id").is_none() && v.get("msg").is_none() && v.get("message").is_some(),
                "{l}"
            );
            assert!(v["http"]["status"].is_u64());
            *kinds.entry("json".into()).or_default() += 1;
        } else {
            assert!(
                v["_meta"]["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("invalid JSON"),
                "{l}"
            );
            assert!(v["message"].as_str().unwrap().starts_with('<'), "{l}");
            *kinds.entry("dropped".into()).or_default() += 1;
        }
    }
    assert_eq!(kinds.get("json"), Some(&3001));
    assert_eq!(kinds.get("dropped"), Some(&999));
}

/// `sluice plan` shows per-core placement, fused chains and rings; `sluice graph` is DOT that
/// Graphviz accepts.
#[test]
fn plan_and_graph() {
    let cfg = repo_root().join("configs/stdin-filter.toml");
    let two = tempfile::tempdir().unwrap();
    let cfg2 = two.path().join("p.toml");
    std::fs::write(
        &cfg2,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("shards = 1", "shards = 2"),
    )
    .unwrap();
    let out = sluice().arg("plan").arg(&cfg2).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = String::from_utf8(out.stdout).unwrap();
    for want in [
        "2 shard(s)",
        "shard 0 (core",
        "shard 1 (core",
        "fused   [in] → parse(parse) → problems(filter) → out(console: encode → ring)",
        "fused   [parse.dropped] → bad_lines(console: encode → ring)",
        "in reader",
        "in reader thread → each shard: 2 ring(s) × 16",
        "each shard → out writer thread: 2 ring(s) × 8",
        "each shard → bad_lines writer thread: 2 ring(s) × 8",
    ] {
        assert!(plan.contains(want), "missing `{want}` in:\n{plan}");
    }
    let out = sluice().arg("graph").arg(&cfg).output().unwrap();
    assert!(out.status.success());
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(
        dot.contains("\"parse\" -> \"bad_lines\" [label=\"dropped\""),
        "{dot}"
    );
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` is installed (apt-get install graphviz; .ci/run does it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let res = child.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "dot rejected the graph: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("<svg"));
}

/// `sluice run` with no file runs configs/default.toml; `/ready` answers once its sources run.
#[test]
fn run_without_arguments_uses_the_default_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("sluice.log");
    let mut cmd = sluice();
    cmd.arg("run")
        .current_dir(repo_root())
        .env("SLUICE_API", format!("127.0.0.1:{port}"))
        .env(
            "SLUICE_LOGS",
            dir.path().join("*.log").display().to_string(),
        )
        .env(
            "SLUICE_DATA_DIR",
            dir.path().join("data").display().to_string(),
        )
        .stdin(Stdio::null());
    let mut child = spawn_logged(&mut cmd, &log);
    wait_ready(&mut child, port, LIMIT);
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(metrics.contains("component=\"demo\""), "{metrics}");
    assert_eq!(terminate(&mut child, LIMIT), 0);
}

#[test]
fn version_and_help_teach() {
    let v = sluice().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("sluice "));
    let h = sluice().arg("--help").output().unwrap();
    let h = String::from_utf8_lossy(&h.stdout);
    for want in [
        "run",
        "validate",
        "graph",
        "plan",
        "Examples:",
        "sluice run filter.toml < app.log",
    ] {
        assert!(h.contains(want), "--help lacks `{want}`:\n{h}");
    }
    let bad = sluice()
        .args(["run", "/nonexistent/p.toml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/p.toml: cannot read the file")
    );
}

/// Shards start under the 8 MiB memlock limit of a non-root service; under a limit too small
/// for io_uring the process says why and exits 1 instead of hanging. Run as `nobody` when the
/// tests run as root (root ignores the limit).
#[test]
fn memlock_limits_are_respected_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nshards = 2\ndata_dir = \"{}\"\n[sources.gen]\ntype = \"generator\"\ncount = 5000\n[sinks.b]\ntype = \"blackhole\"\ninputs = [\"gen\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // The temp dir and a copy of the binary must be usable by `nobody`.
    let bin = dir.path().join("sluice");
    std::fs::copy(
        std::env::var("SLUICE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sluice").to_string()),
        &bin,
    )
    .unwrap();
    Command::new("chmod")
        .args(["-R", "a+rwx"])
        .arg(dir.path())
        .status()
        .unwrap();
    let root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0";
    let run = |limit_kib: u32| {
        let drop = if root {
            "setpriv --reuid=65534 --regid=65534 --clear-groups "
        } else {
            ""
        };
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -l {limit_kib} && exec {drop}{} run {}",
                bin.display(),
                cfg.display()
            ))
            .env("SLUICE_LOG", "warn")
            .output()
            .unwrap()
    };
    let ok = run(8192);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stderr).contains("blackhole b: 5000 events"));
    let too_small = run(64);
    let err = String::from_utf8_lossy(&too_small.stderr);
    assert_eq!(too_small.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot start shard") && err.contains("ulimit -l"),
        "{err}"
    );
}

/// File source options through the real binary: a Java stack trace grouped by the `java`
/// multiline preset, `exclude`, `read_from = "end"` for a file present at start, a custom
/// `line_delimiter`, and `ignore_older`.
#[test]
fn file_source_options_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let trace = "ERROR request failed\njava.lang.IllegalStateException: boom\n\tat a.B.c(B.java:10)\n\tat d.E.f(E.java:20)\nCaused by: java.io.IOException: disk\n\t... 2 more\nINFO next request\n";
    std::fs::write(logs.join("java.log"), trace).unwrap();
    std::fs::write(logs.join("skip.log"), "excluded line\n").unwrap();
    std::fs::write(logs.join("old.txt"), "old content must not appear\n").unwrap();
    std::fs::write(logs.join("pipes.rec"), "one|two|three|").unwrap();
    // Make old.txt two days old.
    let status = Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(logs.join("old.txt"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(logs.join("tail.txt"), "already here before start\n").unwrap();
    let out = dir.path().join("out.ndjson");
    let port = free_port();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[engine]
shards = 2
data_dir = "{data}"

[api]
address = "127.0.0.1:{port}"

[sources.java]
type = "file"
include = ["{logs}/*.log"]
exclude = ["{logs}/skip.log"]
multiline = {{ preset = "java", timeout = "200ms" }}
glob_interval = "100ms"

[sources.tail]
type = "file"
include = ["{logs}/*.txt"]
read_from = "end"
ignore_older = "1d"
glob_interval = "100ms"

[sources.pipes]
type = "file"
include = ["{logs}/*.rec"]
line_delimiter = "|"

[sinks.out]
type = "file"
inputs = ["java", "tail", "pipes"]
path = "{out}"
"#,
            data = dir.path().join("data").display(),
            logs = logs.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("sluice.log");
    let mut child = spawn_logged(sluice().arg("run").arg(&cfg), &log);
    wait_ready(&mut child, port, LIMIT);
    // Lines appended after start to the read_from = "end" file arrive.
    std::thread::sleep(Duration::from_millis(300));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("tail.txt"))
        .unwrap();
    f.write_all(b"appended after start\n").unwrap();
    drop(f);
    // java.log: 3 events (the last one flushed by the multiline timeout); pipes: 3; tail: 1.
    let metrics = wait_metric(
        &mut child,
        port,
        "sluice_events_in_total",
        "component=\"out\"",
        7.0,
        LIMIT,
    );
    assert_eq!(
        metric(
            &metrics,
            "sluice_files_skipped_total",
            "component=\"tail\",reason=\"too_old\""
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(terminate(&mut child, LIMIT), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let messages: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let has = |m: &str| messages.iter().any(|x| x == m);
    assert!(has("ERROR request failed"), "{messages:?}");
    assert!(
        has("java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:10)\n\tat d.E.f(E.java:20)\nCaused by: java.io.IOException: disk\n\t... 2 more"),
        "{messages:?}"
    );
    assert!(has("INFO next request"), "{messages:?}");
    for m in ["one", "two", "three", "appended after start"] {
        assert!(has(m), "missing {m}: {messages:?}");
    }
    assert_eq!(messages.len(), 7, "{messages:?}");
    for absent in [
        "excluded line",
        "old content must not appear",
        "already here before start",
    ] {
        assert!(!has(absent), "{absent} should not be read: {messages:?}");
    }
}

/// A sink with `when_full = "drop_newest"` whose output cannot keep up (stdout is a pipe
/// nobody reads for a while) drops batches instead of stopping its sources, and counts
/// every dropped event: written + dropped = generated.
#[test]
fn drop_newest_sink_drops_and_counts_instead_of_blocking() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[engine]
shards = 2
data_dir = "{}"
ring_capacity = 2

[api]
address = "127.0.0.1:{port}"

[sources.gen]
type = "generator"
count = 200000

[sinks.out]
type = "console"
inputs = ["gen"]
when_full = "drop_newest"
"#,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = sluice()
        .arg("run")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Do not read stdout until every generated event reached the sink (it then either took
    // it into its ring or dropped it, counting the drop); only then let the writer drain.
    let m = wait_metric(
        &mut child,
        port,
        "sluice_events_in_total",
        "component=\"out\"",
        200_000.0,
        LIMIT,
    );
    let dropped = metric(
        &m,
        "sluice_events_dropped_total",
        "component=\"out\",reason=\"ring_full\"",
    )
    .unwrap_or(0.0);
    assert!(
        dropped > 0.0,
        "nothing was dropped although stdout was not read"
    );
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(wait_exit(&mut child, LIMIT), 0);
    let written = out.lines().count() as f64;
    assert_eq!(
        written + dropped,
        200_000.0,
        "written {written} + dropped {dropped}"
    );
}
