//! The `syslog` source through the real binary with a real client: util-linux `logger` over
//! UDP and TCP (LF and octet-counted framing), RFC 5424 and RFC 3164; messages are parsed on
//! the shards and land in a file sink with their fields.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn logger(args: &[&str]) {
    let status = Command::new("logger")
        .args(args)
        .status()
        .expect("logger runs");
    assert!(status.success(), "logger {args:?} failed");
}

#[test]
fn logger_over_udp_and_tcp_in_both_formats() {
    if Command::new("logger").arg("--help").output().is_err() {
        panic!("util-linux `logger` is required (apt-get install bsdutils)");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let bad = dir.path().join("bad.ndjson");
    let tcp = free_port();
    let udp = free_port();
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

[sources.tcp]
type = "syslog"
mode = "tcp"
address = "127.0.0.1:{tcp}"

[sources.udp]
type = "syslog"
mode = "udp"
address = "127.0.0.1:{udp}"

[sinks.out]
type = "file"
inputs = ["tcp", "udp"]
path = "{out}"

[sinks.bad]
type = "file"
inputs = ["tcp.dropped", "udp.dropped"]
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
    let (tp, up) = (tcp.to_string(), udp.to_string());
    let base = ["-n", "127.0.0.1", "-t", "myapp", "-p", "local3.warning"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| logger(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    run(with(&["-T", "-P", &tp, "--rfc5424", "tcp 5424 lf"]));
    run(with(&[
        "-T",
        "-P",
        &tp,
        "--octet-count",
        "--rfc5424",
        "tcp 5424 octet",
    ]));
    run(with(&["-T", "-P", &tp, "--rfc3164", "tcp 3164 lf"]));
    run(with(&[
        "-d",
        "-P",
        &up,
        "--rfc5424",
        "--sd-id",
        "zoo@123",
        "--sd-param",
        "tiger=\"hungry\"",
        "udp 5424",
    ]));
    run(with(&["-d", "-P", &up, "--rfc3164", "udp 3164"]));
    let start = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.lines().count() >= 5 {
            break text;
        }
        assert!(
            start.elapsed() < LIMIT,
            "only got:\n{text}\nlog:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let events: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_msg = |m: &str| {
        events
            .iter()
            .find(|e| e["message"] == m)
            .unwrap_or_else(|| panic!("no event with message {m:?} in\n{lines}"))
            .clone()
    };
    for m in ["tcp 5424 lf", "tcp 5424 octet", "udp 5424"] {
        let e = by_msg(m);
        assert_eq!(e["appname"], "myapp", "{e}");
        assert_eq!(e["facility"], "local3", "{e}");
        assert_eq!(e["severity"], "warning", "{e}");
        assert_eq!(e["level"], "warn", "{e}");
        assert_eq!(e["version"], 1, "{e}");
        assert!(e["timestamp"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    assert_eq!(
        by_msg("udp 5424")["structured_data"]["zoo@123"]["tiger"],
        "hungry"
    );
    for m in ["tcp 3164 lf", "udp 3164"] {
        let e = by_msg(m);
        assert_eq!(e["appname"], "myapp", "{e}");
        assert_eq!(e["severity"], "warning", "{e}");
    }
    assert_eq!(std::fs::read_to_string(&bad).unwrap_or_default(), "");
    let (_, metrics) = http_get(api, "/metrics").unwrap();
    assert!(
        metric(&metrics, "sluice_events_in_total", "component=\"tcp\"").unwrap() >= 3.0,
        "{metrics}"
    );
    assert_eq!(terminate(&mut child, LIMIT), 0);
}
