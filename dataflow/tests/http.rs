//! The `http` source through the real binary with a real client (curl): NDJSON and array
//! bodies, gzip, Elasticsearch `_bulk`, API keys, an oversize body, invalid JSON lines in a
//! batch (the good ones arrive, the bad ones reach `parse.dropped`), and acknowledgements
//! (the answer comes once the file sink has written the events). Then `sluice-loadgen`
//! sends through Sluice's `http` sink back to its own `--listen` receiver.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// Runs curl; returns (status code, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn wait_lines(path: &std::path::Path, n: usize, log: &std::path::Path) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            return text;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{} has {} lines, want {n}; log:\n{}",
            path.display(),
            text.lines().count(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn curl_every_endpoint_with_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let bad = dir.path().join("bad.ndjson");
    let port = free_port();
    let api = free_port();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[engine]
shards = 2
data_dir = "{data}"

[api]
address = "127.0.0.1:{api}"

[sources.web]
type = "http"
address = "127.0.0.1:{port}"
api_keys = ["s3cret"]
max_body_bytes = "64KiB"
acknowledgements = true

[transforms.p]
type = "parse"
inputs = ["web"]
format = "json"

[sinks.out]
type = "file"
inputs = ["p"]
path = "{out}"

[sinks.bad]
type = "file"
inputs = ["p.dropped"]
path = "{bad}"
"#,
            data = dir.path().join("data").display(),
            out = out.display(),
            bad = bad.display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("sluice.log");
    let mut child = spawn_logged(sluice().arg("run").arg(&cfg), &log);
    wait_ready(&mut child, api, LIMIT);
    let base = format!("http://127.0.0.1:{port}");
    let key = "X-API-Key: s3cret";

    // No key, wrong key: 401.
    let (code, _) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        "{\"a\":1}",
        &format!("{base}/log"),
    ]);
    assert_eq!(code, 401);
    let (code, _) = curl(&[
        "-H",
        "Authorization: Bearer nope",
        "--data-binary",
        "{}",
        &format!("{base}/log"),
    ]);
    assert_eq!(code, 401);

    // One object; an array; NDJSON with one invalid line (acknowledged: 200 after the write).
    let (code, _) = curl(&[
        "-H",
        key,
        "--data-binary",
        "{\"n\":1,\"kind\":\"log\"}",
        &format!("{base}/log"),
    ]);
    assert_eq!(code, 200);
    // Acknowledged means written: the line is in the file when the answer arrives.
    assert!(std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains("\"n\":1"));
    let (code, _) = curl(&[
        "-H",
        key,
        "-H",
        "Authorization: Bearer s3cret",
        "--data-binary",
        "[{\"n\":2},{\"n\":3,\"s\":\"x,]\"}]",
        &format!("{base}/logs"),
    ]);
    assert_eq!(code, 200);
    let (code, _) = curl(&[
        "-H",
        "Authorization: Bearer s3cret",
        "-H",
        "Content-Type: application/x-ndjson",
        "--data-binary",
        "{\"n\":4}\nnot json at all\n{\"n\":5}\n",
        &format!("{base}/logs"),
    ]);
    assert_eq!(code, 200);

    // gzip body.
    let gz = dir.path().join("body.gz");
    let mut enc = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    enc.stdin
        .take()
        .unwrap()
        .write_all(b"{\"n\":6}\n{\"n\":7}\n")
        .unwrap();
    let gzipped = enc.wait_with_output().unwrap().stdout;
    std::fs::write(&gz, gzipped).unwrap();
    let (code, _) = curl(&[
        "-H",
        key,
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &format!("@{}", gz.display()),
        &format!("{base}/logs"),
    ]);
    assert_eq!(code, 200);

    // Elasticsearch _bulk: two index items, one malformed pair.
    let bulk = "{\"index\":{\"_index\":\"logs\"}}\n{\"n\":8}\n{\"create\":{}}\n{\"n\":9}\n{\"update\":{\"_id\":\"1\"}}\n{\"doc\":{}}\n";
    let (code, body) = curl(&[
        "-H",
        key,
        "-H",
        "Content-Type: application/x-ndjson",
        "--data-binary",
        bulk,
        &format!("{base}/logs/_bulk"),
    ]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errors"], true, "{body}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["index"]["status"], 201);
    assert_eq!(items[0]["index"]["_index"], "logs");
    assert_eq!(items[2]["update"]["status"], 400);

    // Too large: 413, and nothing of it arrives.
    let big = format!("{{\"big\":\"{}\"}}", "x".repeat(100_000));
    let (code, _) = curl(&["-H", key, "--data-binary", &big, &format!("{base}/log")]);
    assert_eq!(code, 413);

    let text = wait_lines(&out, 9, &log);
    let mut ns: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ns.sort();
    assert_eq!(ns, (1..=9).collect::<Vec<_>>());
    let bad_text = wait_lines(&bad, 1, &log);
    assert!(
        bad_text.contains("not json at all") && bad_text.contains("invalid JSON"),
        "{bad_text}"
    );

    let (_, metrics) = http_get(api, "/metrics").unwrap();
    for reason in ["unauthorized", "too_large"] {
        assert!(
            metric(
                &metrics,
                "sluice_http_rejected_total",
                &format!("reason=\"{reason}\"")
            )
            .unwrap_or(0.0)
                >= 1.0,
            "{reason} not counted:\n{metrics}"
        );
    }
    assert_eq!(terminate(&mut child, LIMIT), 0);
}

/// sluice-loadgen → http source → parse → http sink → sluice-loadgen --listen: every event
/// comes back once, and the receiver reports latency percentiles; with the sink's
/// `batch_timeout` at 5 ms and at 0 s.
#[test]
fn loadgen_round_trip_through_http_source_and_sink() {
    let loadgen = std::env::var("SLUICE_LOADGEN_BIN").unwrap_or_else(|_| {
        repo_root()
            .join("target/release/sluice-loadgen")
            .to_string_lossy()
            .into_owned()
    });
    let loadgen = if std::path::Path::new(&loadgen).exists() {
        loadgen
    } else {
        // The test binary lives in target/<profile>/deps.
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("sluice-loadgen")
            .to_string_lossy()
            .into_owned()
    };
    assert!(
        std::path::Path::new(&loadgen).exists(),
        "build sluice-loadgen first: {loadgen}"
    );
    // With a batch timeout, and without one (bodies go when a request slot is free).
    for batch_timeout in ["5ms", "0s"] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let back = free_port();
        let api = free_port();
        let cfg = dir.path().join("p.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"[engine]
    shards = 2
    data_dir = "{data}"

    [api]
    address = "127.0.0.1:{api}"

    [sources.web]
    type = "http"
    address = "127.0.0.1:{port}"

    [transforms.p]
    type = "parse"
    inputs = ["web"]
    format = "json"

    [sinks.back]
    type = "http"
    inputs = ["p"]
    uri = "http://127.0.0.1:{back}/"
    batch_timeout = "{batch_timeout}"
    "#,
                data = dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("sluice.log");
        let mut child = spawn_logged(sluice().arg("run").arg(&cfg), &log);
        wait_ready(&mut child, api, LIMIT);
        let out = Command::new(&loadgen)
            .args([
                "--format",
                "json",
                "--count",
                "20000",
                "--rate",
                "20000",
                "-o",
                &format!("http://127.0.0.1:{port}/logs"),
                "--batch",
                "200",
                "--listen",
                &format!("127.0.0.1:{back}"),
                "--json",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{stderr}\nlog:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let summary: serde_json::Value = stderr
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON summary in:\n{stderr}"));
        assert_eq!(
            summary["sent"], 20000,
            "batch_timeout {batch_timeout}: {summary}"
        );
        let lat = &summary["latency"];
        assert_eq!(lat["received"], 20000, "{summary}");
        assert_eq!(lat["missing"], 0, "{summary}");
        assert_eq!(lat["duplicates"], 0, "{summary}");
        assert!(
            lat["p99_ms"].as_f64().is_some() || lat["p99_us"].as_f64().is_some(),
            "{summary}"
        );
        assert_eq!(terminate(&mut child, LIMIT), 0);
    }
}
