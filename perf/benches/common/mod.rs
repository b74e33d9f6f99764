//! Bench data shared by the criterion benches: lines from `../shared/bench/gen_logs.py`
//! (json, syslog or apache, seed 42), cut into batches of 1,024 lines as a source would.
//!
//! JSON comes from `/tmp/bench-data/events-2m.ndjson` when that file exists (the workload
//! harness writes it), so every bench and the harness read the same events.

#![allow(dead_code)]

use bytes::Bytes;
use sluice_engine::batch::Batch;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

pub const LINES: usize = 100_000;
pub const BATCH_LINES: usize = 1024;

/// The generator script (shared/bench beside the repository).
pub fn gen_logs() -> PathBuf {
    let here = env!("CARGO_MANIFEST_DIR");
    [
        PathBuf::from(format!("{here}/../../shared/bench/gen_logs.py")),
        PathBuf::from("/work/shared/bench/gen_logs.py"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("gen_logs.py not found (shared/bench beside the repository)")
}

/// `LINES` lines of `format` ("json", "syslog", "apache").
pub fn load_lines(format: &str) -> Vec<u8> {
    let standard = Path::new("/tmp/bench-data/events-2m.ndjson");
    if format == "json" {
        if let Ok(f) = std::fs::File::open(standard) {
            let mut data = Vec::with_capacity(LINES * 300);
            let mut r = BufReader::new(f);
            for _ in 0..LINES {
                if r.read_until(b'\n', &mut data).unwrap_or(0) == 0 {
                    break;
                }
            }
            eprintln!(
                "bench data: {} bytes from {}",
                data.len(),
                standard.display()
            );
            return data;
        }
    }
    let script = gen_logs();
    let out =
        std::env::temp_dir().join(format!("sluice-bench-{format}-{}.log", std::process::id()));
    let file = std::fs::File::create(&out).expect("temp file");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--format",
            format,
            "--lines",
            &LINES.to_string(),
            "--seed",
            "42",
        ])
        .stdout(file)
        .status()
        .expect("python3");
    assert!(status.success(), "gen_logs.py failed");
    let mut data = Vec::new();
    std::fs::File::open(&out)
        .and_then(|mut f| f.read_to_end(&mut data))
        .expect("read generated lines");
    let _ = std::fs::remove_file(&out);
    eprintln!(
        "bench data: {} {format} bytes from {}",
        data.len(),
        script.display()
    );
    data
}

/// Full batches of `BATCH_LINES` lines of `data`, each in its own buffer.
pub fn batches_of(data: &[u8]) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut rest = data;
    loop {
        let mut cut = 0;
        let mut n = 0;
        for nl in memchr::memchr_iter(b'\n', rest) {
            n += 1;
            if n == BATCH_LINES {
                cut = nl + 1;
                break;
            }
        }
        if n < BATCH_LINES {
            break;
        }
        out.push(Batch::from_lines(Bytes::copy_from_slice(&rest[..cut]), 0));
        rest = &rest[cut..];
    }
    assert!(!out.is_empty(), "no data");
    out
}

/// Mean line bytes per batch (newlines excluded): the throughput unit.
pub fn bytes_per_batch(batches: &[Batch]) -> u64 {
    batches.iter().map(|b| b.byte_len()).sum::<u64>() / batches.len() as u64
}
