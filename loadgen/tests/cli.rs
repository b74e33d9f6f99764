//! The real `sluice-loadgen` binary: exact counts, formats, determinism, appending, errors.

use std::process::Command;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice-loadgen"))
}

#[test]
fn writes_exact_counts_of_valid_lines_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.log");
    for _ in 0..2 {
        let out = loadgen()
            .args(["--count", "5000", "--output"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("5000 lines"));
    }
    let text = std::fs::read_to_string(&f).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_000, "the second run appends");
    assert_eq!(lines[..5000], lines[5000..], "same seed, same lines");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["level"].is_string() && v["http"]["status"].is_u64());
    }
}

#[test]
fn paced_runs_send_what_was_asked_and_formats_differ() {
    let out = loadgen()
        .args([
            "--format", "syslog", "--rate", "2000", "--count", "300", "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 300);
    assert!(stdout
        .lines()
        .all(|l| l.starts_with('<') && l.contains(" req - {")));
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).trim()).unwrap();
    assert_eq!(summary["lines"], 300);
    let apache = loadgen()
        .args(["--format", "apache", "--count", "10"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&apache.stdout)
        .lines()
        .all(|l| l.contains("\" ") && l.contains("HTTP/1.1")));
}

#[test]
fn bad_arguments_are_explained() {
    let out = loadgen().args(["--format", "xml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown format `xml`"));
    let out = loadgen()
        .args(["--rate=-5", "--count", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate must be positive"));
}
