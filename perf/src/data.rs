//! The benchmark input: generating `events-N.ndjson` with the shared generator when it is
//! missing, counting its lines and debug-level lines (cached in a sidecar file next to it), and
//! warming the page cache before the timed runs.

use std::fs::{self, File};
use std::io::{self, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use memchr::memmem;
use serde::{Deserialize, Serialize};

use crate::workloads::DataFormat;

/// Lines in the standard data set.
pub const STANDARD_LINES: u64 = 2_000_000;
/// The generator seed every standard workload uses.
pub const SEED: u64 = 42;
/// How a debug event looks in the generator's JSON output.
const DEBUG_NEEDLE: &[u8] = br#""level":"debug""#;
/// Read size for the counting scan.
const SCAN_BUFFER: usize = 8 << 20;

/// `events-2m.EXT` for the standard 2,000,000 lines, `events-{N}.EXT` otherwise (`ndjson` for
/// JSON, `syslog` for RFC 5424).
pub fn data_file_name(lines: u64, format: DataFormat) -> String {
    let ext = format.extension();
    if lines == STANDARD_LINES {
        format!("events-2m.{ext}")
    } else {
        format!("events-{lines}.{ext}")
    }
}

/// What the workloads need to know about the input file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// All lines (a last line without a newline counts too).
    pub lines: u64,
    /// Lines containing `"level":"debug"`.
    pub debug_lines: u64,
}

impl Counts {
    /// Lines whose level is not debug: what a `level != "debug"` filter lets through.
    pub fn non_debug(&self) -> u64 {
        self.lines - self.debug_lines
    }
}

/// The prepared input file.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub path: PathBuf,
    pub bytes: u64,
    pub counts: Counts,
}

/// The counts cache written next to the data file (`FILE.counts.json`), valid while the file's
/// size and modification time are unchanged.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Sidecar {
    file_bytes: u64,
    modified_secs: u64,
    modified_nanos: u32,
    lines: u64,
    debug_lines: u64,
}

/// Makes sure `DATA_DIR/events-N.EXT` exists (generating it with
/// `SHARED/bench/gen_logs.py` if not), counts it (or reads the cached counts), and leaves it in
/// the page cache.
pub fn prepare(data_dir: &Path, lines: u64, shared: &Path, format: DataFormat) -> Result<Dataset> {
    fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let path = data_dir.join(data_file_name(lines, format));
    if !path.exists() {
        generate(shared, lines, &path, format)?;
    }
    let meta = fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
    let sidecar_path = sidecar_path(&path);
    let cached = read_sidecar(&sidecar_path).filter(|s| sidecar_matches(s, &meta));
    let counts = match cached {
        Some(s) => {
            let counts = Counts {
                lines: s.lines,
                debug_lines: s.debug_lines,
            };
            warm_page_cache(&path)?;
            counts
        }
        None => {
            eprintln!("counting lines in {} ...", path.display());
            let counts = count_file(&path)?;
            write_sidecar(&sidecar_path, &meta, counts)?;
            counts
        }
    };
    if counts.lines == 0 {
        bail!("{} is empty", path.display());
    }
    Ok(Dataset {
        path,
        bytes: meta.len(),
        counts,
    })
}

/// Runs the generator into `FILE.tmp` and renames it into place once it succeeded, so an
/// interrupted generation never leaves a short file behind.
fn generate(shared: &Path, lines: u64, path: &Path, format: DataFormat) -> Result<()> {
    let script = shared.join("bench").join("gen_logs.py");
    if !script.is_file() {
        bail!(
            "{} is missing and the generator {} was not found (set SLUICE_SHARED to the shared folder)",
            path.display(),
            script.display()
        );
    }
    eprintln!(
        "generating {} ({lines} lines, seed {SEED}) with {} ...",
        path.display(),
        script.display()
    );
    let started = Instant::now();
    let tmp = path.with_extension(format!("{}.tmp", format.extension()));
    let out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let status = Command::new("python3")
        .arg(&script)
        .args([
            "--format",
            format.generator_name(),
            "--lines",
            &lines.to_string(),
            "--seed",
            &SEED.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .status()
        .context("running python3 (is it installed?)");
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if !status.success() {
        let _ = fs::remove_file(&tmp);
        bail!("{} failed: {status}", script.display());
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    let bytes = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "generated {} ({:.1} MB) in {:.1} s",
        path.display(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Counts lines and debug lines of a file.
pub fn count_file(path: &Path) -> Result<Counts> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    count_reader(file, SCAN_BUFFER).with_context(|| format!("reading {}", path.display()))
}

/// Counts lines, and lines containing `"level":"debug"`, with a byte scan over `buf_size`
/// chunks. Only whole lines are scanned for the needle; a partial line is carried over to the
/// next chunk, so a match is never split.
pub fn count_reader<R: Read>(mut reader: R, buf_size: usize) -> io::Result<Counts> {
    let finder = memmem::Finder::new(DEBUG_NEEDLE);
    let mut buf = vec![0u8; buf_size.max(2 * DEBUG_NEEDLE.len())];
    let mut carried = 0;
    let mut counts = Counts::default();
    loop {
        if carried == buf.len() {
            // One line longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
        }
        let n = match reader.read(&mut buf[carried..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = carried + n;
        match memchr::memrchr(b'\n', &buf[carried..end]) {
            Some(i) => {
                let last = carried + i;
                let whole = &buf[..=last];
                counts.lines += memchr::memchr_iter(b'\n', whole).count() as u64;
                counts.debug_lines += lines_containing(&finder, whole);
                buf.copy_within(last + 1..end, 0);
                carried = end - last - 1;
            }
            None => carried = end,
        }
    }
    if carried > 0 {
        counts.lines += 1;
        counts.debug_lines += lines_containing(&finder, &buf[..carried]);
    }
    Ok(counts)
}

/// Number of lines in `hay` holding the needle at least once.
fn lines_containing(finder: &memmem::Finder<'_>, hay: &[u8]) -> u64 {
    let mut lines = 0;
    let mut pos = 0;
    while let Some(i) = finder.find(&hay[pos..]) {
        lines += 1;
        let after = pos + i + finder.needle().len();
        match memchr::memchr(b'\n', &hay[after..]) {
            Some(j) => pos = after + j + 1,
            None => break,
        }
    }
    lines
}

/// Reads the whole file once so the timed runs start with a warm page cache, as the workload
/// rules ask.
pub fn warm_page_cache(path: &Path) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

fn sidecar_path(data: &Path) -> PathBuf {
    let mut name = data.file_name().unwrap_or_default().to_os_string();
    name.push(".counts.json");
    data.with_file_name(name)
}

fn modified(meta: &fs::Metadata) -> (u64, u32) {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| (d.as_secs(), d.subsec_nanos()))
        .unwrap_or((0, 0))
}

fn sidecar_matches(s: &Sidecar, meta: &fs::Metadata) -> bool {
    let (secs, nanos) = modified(meta);
    s.file_bytes == meta.len() && s.modified_secs == secs && s.modified_nanos == nanos
}

fn read_sidecar(path: &Path) -> Option<Sidecar> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_sidecar(path: &Path, meta: &fs::Metadata, counts: Counts) -> Result<()> {
    let (modified_secs, modified_nanos) = modified(meta);
    let sidecar = Sidecar {
        file_bytes: meta.len(),
        modified_secs,
        modified_nanos,
        lines: counts.lines,
        debug_lines: counts.debug_lines,
    };
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_string_pretty(&sidecar)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBUG: &str = r#"{"ts":"t","level":"debug","msg":"x"}"#;
    const INFO: &str = r#"{"ts":"t","level":"info","msg":"x"}"#;

    fn sample(n: usize) -> String {
        (0..n)
            .map(|i| if i % 5 < 2 { DEBUG } else { INFO })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn file_names() {
        assert_eq!(
            data_file_name(2_000_000, DataFormat::Json),
            "events-2m.ndjson"
        );
        assert_eq!(
            data_file_name(10_000, DataFormat::Json),
            "events-10000.ndjson"
        );
        assert_eq!(
            data_file_name(2_000_000, DataFormat::Syslog),
            "events-2m.syslog"
        );
    }

    #[test]
    fn counts_lines_and_debug_lines() {
        let text = sample(100);
        let c = count_reader(text.as_bytes(), SCAN_BUFFER).unwrap();
        assert_eq!(
            c,
            Counts {
                lines: 100,
                debug_lines: 40
            }
        );
        assert_eq!(c.non_debug(), 60);
    }

    #[test]
    fn small_buffers_give_the_same_counts() {
        let text = sample(1000);
        let expected = count_reader(text.as_bytes(), SCAN_BUFFER).unwrap();
        for size in [1, 7, 31, 32, 33, 64, 100, 4096] {
            // A reader that hands out at most 13 bytes at a time, to split lines and needles.
            let reader = Trickle {
                data: text.as_bytes(),
                step: 13,
            };
            assert_eq!(
                count_reader(reader, size).unwrap(),
                expected,
                "buffer {size}"
            );
        }
    }

    #[test]
    fn last_line_without_newline_and_repeated_needle() {
        let text = format!("{DEBUG}{DEBUG}\n{INFO}\n\n{DEBUG}");
        let c = count_reader(text.as_bytes(), 16).unwrap();
        assert_eq!(
            c,
            Counts {
                lines: 4,
                debug_lines: 2
            }
        );
    }

    #[test]
    fn empty_input() {
        assert_eq!(count_reader(&b""[..], 64).unwrap(), Counts::default());
    }

    #[test]
    fn sidecar_next_to_data() {
        let p = sidecar_path(Path::new("/tmp/bench-data/events-2m.ndjson"));
        assert_eq!(p, Path::new("/tmp/bench-data/events-2m.ndjson.counts.json"));
    }

    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }
}
