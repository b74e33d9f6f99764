//! `type = "file"`: the tailer. Reads files matched by globs on the shards through io_uring,
//! follows them as they grow, rotate (rename or copytruncate), shrink or disappear, and
//! checkpoints per file identity the offset every sink acknowledged, so a restart (even after
//! `kill -9`) resumes exactly there: at-least-once, only the unacknowledged tail repeats.
//!
//! - [`identity`]: device/inode plus a fingerprint of the first bytes.
//! - [`checkpoint`]: the acknowledgement tracker and the atomic checkpoint file.
//! - [`tail`]: the per-shard reader (discovery, inotify, reads, rotation, fairness).
//! - [`multiline`]: grouping lines into events (Vector's modes and presets).

pub mod checkpoint;
pub mod identity;
pub mod multiline;
pub mod tail;

use crate::framing::LineFramer;
use crate::sources::{SourceRuntime, SourceShape};
use multiline::{Aggregator, MultilineConfig};
use serde::Deserialize;
use sluice_engine::context::BuildCtx;
use sluice_engine::metrics::Registry;
use sluice_engine::ring::WhenFull;
use sluice_engine::shard::ShardSource;
use sluice_engine::source::SourceHandle;
use sluice_engine::units::{ByteSize, HumanDuration};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Where to start in a file that exists when Sluice first sees it (no checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// Options of the `file` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Glob patterns of files to read (`*`, `?`, `[...]`, `**`).
    pub include: Vec<String>,
    /// Glob patterns of paths to leave alone.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// For files present at the first start without a checkpoint: `beginning` or `end`.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Skip files not modified for this long.
    pub ignore_older: Option<HumanDuration>,
    /// Lines longer than this are cut to it, flagged `_meta.truncated` and counted.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: ByteSize,
    /// What ends a line (default `"\n"`; a `\r` before `\n` is stripped).
    #[serde(default = "default_delimiter")]
    pub line_delimiter: String,
    /// Bytes at the start of a file that identify it (default 1KiB).
    #[serde(default = "default_fingerprint")]
    pub fingerprint_bytes: ByteSize,
    /// Most descriptors held open; further files wait their turn.
    #[serde(default = "default_max_open")]
    pub max_open_files: usize,
    /// How often, at most, advanced acknowledged offsets are written to disk (the first
    /// advance after start at once; and at shutdown).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: HumanDuration,
    /// How often to look for new files (inotify also triggers a look).
    #[serde(default = "default_interval")]
    pub glob_interval: HumanDuration,
    /// How long a rotated-away or deleted file is kept open after its last new byte.
    #[serde(default = "default_rotate_wait")]
    pub rotate_wait: HumanDuration,
    /// Group lines into events (stack traces): see `multiline`.
    pub multiline: Option<MultilineConfig>,
    /// When the pipeline is full: `block` (stop reading) or `drop_newest` (drop and count).
    #[serde(default)]
    pub when_full: WhenFull,
    /// Deal batches over every shard (default true).
    #[serde(default = "default_true")]
    pub spread: bool,
}

fn default_max_line() -> ByteSize {
    ByteSize(100 * 1024)
}
fn default_delimiter() -> String {
    "\n".into()
}
fn default_fingerprint() -> ByteSize {
    ByteSize(1024)
}
fn default_max_open() -> usize {
    1024
}
fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_checkpoint_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}
fn default_rotate_wait() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_true() -> bool {
    true
}

/// Counters and gauges of one file source.
pub struct FileMetrics {
    pub files_watched: Arc<AtomicI64>,
    pub files_open: Arc<AtomicI64>,
    pub files_waiting: Arc<AtomicI64>,
    pub discovered: Arc<AtomicU64>,
    pub rotations: Arc<AtomicU64>,
    pub truncations: Arc<AtomicU64>,
    pub lines_truncated: Arc<AtomicU64>,
    pub errors: Arc<AtomicU64>,
    /// Paths matched by a glob but not read: a directory or other non-file, gzip, too old.
    pub skipped_not_a_file: Arc<AtomicU64>,
    pub skipped_gzip: Arc<AtomicU64>,
    pub skipped_too_old: Arc<AtomicU64>,
}

impl FileMetrics {
    fn register(reg: &Registry, id: &str) -> FileMetrics {
        let l = [("component", id)];
        FileMetrics {
            files_watched: reg.gauge("sluice_files_watched", "Files the file source follows.", &l),
            files_open: reg.gauge("sluice_files_open", "Files the file source holds open.", &l),
            files_waiting: reg.gauge(
                "sluice_files_waiting",
                "Files waiting for a descriptor (max_open_files).",
                &l,
            ),
            discovered: reg.counter(
                "sluice_files_discovered_total",
                "Files the file source started reading.",
                &l,
            ),
            rotations: reg.counter(
                "sluice_file_rotations_total",
                "Renames, rotations and deletions seen.",
                &l,
            ),
            truncations: reg.counter(
                "sluice_file_truncations_total",
                "Files seen shrinking (read again from the start).",
                &l,
            ),
            lines_truncated: reg.counter(
                "sluice_file_lines_truncated_total",
                "Lines cut at max_line_bytes.",
                &l,
            ),
            errors: reg.counter(
                "sluice_file_errors_total",
                "Failed opens and reads (permissions, I/O errors).",
                &l,
            ),
            skipped_not_a_file: skipped(reg, id, "not_a_file"),
            skipped_gzip: skipped(reg, id, "gzip"),
            skipped_too_old: skipped(reg, id, "too_old"),
        }
    }
}

fn skipped(reg: &Registry, id: &str, reason: &str) -> Arc<AtomicU64> {
    reg.counter(
        "sluice_files_skipped_total",
        "Paths matched by a glob but not read, by reason.",
        &[("component", id), ("reason", reason)],
    )
}

/// What every shard's reader shares.
pub struct FileSettings {
    pub include: Vec<String>,
    pub exclude: Vec<glob::Pattern>,
    pub gz_included: bool,
    pub read_from_end: bool,
    pub ignore_older: Option<Duration>,
    pub max_line_bytes: usize,
    pub delimiter: Vec<u8>,
    pub fingerprint_bytes: usize,
    pub max_open_files: usize,
    pub glob_interval: Duration,
    pub rotate_wait: Duration,
    pub multiline: Option<Aggregator>,
    pub multiline_timeout: Duration,
    pub batch_size: usize,
    pub spread: bool,
    pub drop_when_full: bool,
    pub metrics: FileMetrics,
}

impl FileSettings {
    pub fn new_framer(&self) -> LineFramer {
        LineFramer::new(self.max_line_bytes, self.batch_size)
            .with_delimiter(&self.delimiter)
            .with_multiline(self.multiline.clone())
    }
}

impl FileConfig {
    /// Checks the options; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.include.is_empty() {
            return Err(("include", "needs at least one glob".into()));
        }
        for p in &self.include {
            if !p.starts_with('/') {
                return Err(("include", format!("`{p}` must be an absolute path")));
            }
            glob::Pattern::new(p).map_err(|e| ("include", format!("invalid glob `{p}`: {e}")))?;
        }
        for p in &self.exclude {
            glob::Pattern::new(p).map_err(|e| ("exclude", format!("invalid glob `{p}`: {e}")))?;
        }
        if self.line_delimiter.is_empty() {
            return Err(("line_delimiter", "must not be empty".into()));
        }
        if self.fingerprint_bytes.0 == 0 || self.fingerprint_bytes.0 > 1 << 20 {
            return Err((
                "fingerprint_bytes",
                "must be between 1 byte and 1MiB".into(),
            ));
        }
        if self.max_open_files == 0 {
            return Err(("max_open_files", "must be at least 1".into()));
        }
        if let Some(m) = &self.multiline {
            m.compile().map_err(|e| ("multiline", e))?;
        }
        Ok(())
    }

    pub fn build(
        &self,
        ctx: &BuildCtx,
        id: &str,
        handle: Arc<OnceLock<Arc<SourceHandle>>>,
    ) -> SourceRuntime {
        let multiline = self.multiline.as_ref().and_then(|m| m.compile().ok());
        let multiline_timeout = multiline
            .as_ref()
            .map_or(Duration::from_secs(1), |m| m.timeout());
        let settings = Arc::new(FileSettings {
            include: self.include.clone(),
            exclude: self
                .exclude
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
            gz_included: self.include.iter().any(|p| p.ends_with(".gz")),
            read_from_end: self.read_from == ReadFrom::End,
            ignore_older: self.ignore_older.map(|d| d.0),
            max_line_bytes: self.max_line_bytes.0 as usize,
            delimiter: self.line_delimiter.as_bytes().to_vec(),
            fingerprint_bytes: self.fingerprint_bytes.0 as usize,
            max_open_files: self.max_open_files,
            glob_interval: self.glob_interval.0,
            rotate_wait: self.rotate_wait.0,
            multiline,
            multiline_timeout,
            batch_size: ctx.batch_size,
            spread: self.spread && ctx.shards > 1,
            drop_when_full: self.when_full == WhenFull::DropNewest,
            metrics: FileMetrics::register(&ctx.registry, id),
        });
        let path = checkpoint::path_for(&ctx.data_dir, id);
        let tracker = Arc::new(checkpoint::Tracker::new(checkpoint::load(&path)));
        let parts = (0..ctx.shards)
            .map(|shard| {
                Box::new(tail::FilePart {
                    shard,
                    shards: ctx.shards,
                    settings: settings.clone(),
                    handle: handle.clone(),
                    tracker: tracker.clone(),
                }) as Box<dyn ShardSource>
            })
            .collect();
        // Checkpoint lag per file, computed at scrape time.
        let lag_tracker = tracker.clone();
        let lag_id = id.to_string();
        ctx.registry.collector(Box::new(move |out: &mut String| {
            use std::fmt::Write;
            let _ = writeln!(out, "# HELP sluice_file_checkpoint_lag_bytes Bytes read but not yet acknowledged, per file.\n# TYPE sluice_file_checkpoint_lag_bytes gauge");
            for (path, lag) in lag_tracker.lag() {
                let p = path.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(out, "sluice_file_checkpoint_lag_bytes{{component=\"{lag_id}\",file=\"{p}\"}} {lag}");
            }
        }));
        let interval = self.checkpoint_interval.0;
        let lifecycle = ctx.lifecycle.clone();
        let writer_tracker = tracker.clone();
        let background = Box::new(move || {
            // Writes advanced checkpoints at most once per interval until the process stops,
            // then once more. The first one after start is written as soon as acks advance:
            // `last` starts an interval in the past. (It used to start now, so a run shorter
            // than the interval never checkpointed, and a SIGKILL re-read everything that run
            // had read: 8x the input in duplicates over 10 kills of ~400 ms runs.)
            let now = std::time::Instant::now();
            let mut last = now.checked_sub(interval).unwrap_or(now);
            loop {
                let stopped = lifecycle.is_stopped();
                if stopped || last.elapsed() >= interval {
                    last = std::time::Instant::now();
                    let snapshot = if stopped {
                        Some(writer_tracker.snapshot())
                    } else {
                        writer_tracker.snapshot_if_dirty()
                    };
                    if let Some(entries) = snapshot {
                        if let Err(e) = checkpoint::store(&path, &entries) {
                            tracing::error!(path = %path.display(), error = %e, "cannot write checkpoints");
                        }
                    }
                }
                if stopped {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10).min(interval));
            }
        });
        SourceRuntime {
            shape: SourceShape::Shards {
                parts,
                spread: self.spread && ctx.shards > 1,
            },
            receiver: Some(tracker),
            background: Some(background),
        }
    }
}
