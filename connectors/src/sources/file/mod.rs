//! `type = "file"`: reads files matched by globs on the shards, through io_uring.
//!
//! Files are assigned to shards by a stable hash of their path; each shard reads its files
//! in 1 MiB chunks, frames lines with memchr, and hands batches on as spans of the read
//! buffer. By default (`spread = true`) the batches are dealt over all shards, so a single
//! large file is parsed by every core. New files are found by re-globbing every
//! `glob_interval`; growth is polled; a file that shrinks is read again from the start.
//!
//! Rotation-safe identities, checkpoints and inotify come with the tailer work (see
//! `docs/` and the issue tracker); this part reads existing and growing files.

use crate::framing::LineFramer;
use crate::sources::SourceRuntime;
use bytes::BytesMut;
use serde::Deserialize;
use sluice_engine::context::BuildCtx;
use sluice_engine::runtime::{self, ShardFile};
use sluice_engine::shard::{LocalFuture, ShardCtx, ShardSource};
use sluice_engine::source::SourceHandle;
use sluice_engine::units::{ByteSize, HumanDuration};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Where to start in a file that exists when Sluice starts.
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
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Lines longer than this are cut to it, flagged and counted (default 100KiB).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: ByteSize,
    /// How often to look for new files (default 1s).
    #[serde(default = "default_glob_interval")]
    pub glob_interval: HumanDuration,
    /// Deal batches over every shard (default true). With many files, `false` keeps each
    /// file's events on the shard that read them.
    #[serde(default = "default_true")]
    pub spread: bool,
}

fn default_max_line() -> ByteSize {
    ByteSize(100 * 1024)
}
fn default_glob_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_true() -> bool {
    true
}

const READ_CHUNK: usize = 1024 * 1024;

impl FileConfig {
    /// Checks the globs; the error names the bad pattern.
    pub fn validate(&self) -> Result<(), String> {
        if self.include.is_empty() {
            return Err("`include` needs at least one glob".into());
        }
        for p in self.include.iter().chain(&self.exclude) {
            glob::Pattern::new(p).map_err(|e| format!("invalid glob `{p}`: {e}"))?;
        }
        Ok(())
    }

    pub fn build(
        &self,
        ctx: &BuildCtx,
        id: &str,
        handle: Arc<OnceLock<Arc<SourceHandle>>>,
    ) -> SourceRuntime {
        let excludes: Arc<Vec<glob::Pattern>> = Arc::new(
            self.exclude
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
        );
        let reg = &ctx.registry;
        let files_open = reg.gauge(
            "sluice_files_open",
            "Files the file source holds open.",
            &[("component", id)],
        );
        let files_read = reg.counter(
            "sluice_files_discovered_total",
            "Files the file source found.",
            &[("component", id)],
        );
        let truncations = reg.counter(
            "sluice_file_truncations_total",
            "Files seen shrinking (read again from the start).",
            &[("component", id)],
        );
        let errors = reg.counter(
            "sluice_file_errors_total",
            "Files that could not be opened or read.",
            &[("component", id)],
        );
        let started = Instant::now();
        let parts = (0..ctx.shards)
            .map(|shard| {
                Box::new(FilePart {
                    shard,
                    shards: ctx.shards,
                    include: self.include.clone(),
                    excludes: excludes.clone(),
                    read_from: self.read_from,
                    max_line: self.max_line_bytes.0 as usize,
                    batch_size: ctx.batch_size,
                    glob_interval: self.glob_interval.0,
                    spread: self.spread,
                    handle: handle.clone(),
                    files_open: files_open.clone(),
                    files_discovered: files_read.clone(),
                    truncations: truncations.clone(),
                    errors: errors.clone(),
                    started,
                }) as Box<dyn ShardSource>
            })
            .collect();
        SourceRuntime::Shards {
            parts,
            spread: self.spread,
        }
    }
}

/// Stable shard of a path (FNV-1a).
pub fn shard_of(path: &Path, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

struct FilePart {
    shard: usize,
    shards: usize,
    include: Vec<String>,
    excludes: Arc<Vec<glob::Pattern>>,
    read_from: ReadFrom,
    max_line: usize,
    batch_size: usize,
    glob_interval: Duration,
    spread: bool,
    handle: Arc<OnceLock<Arc<SourceHandle>>>,
    files_open: Arc<AtomicI64>,
    files_discovered: Arc<AtomicU64>,
    truncations: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    started: Instant,
}

struct Tailed {
    file: ShardFile,
    offset: u64,
    buf: BytesMut,
    framer: LineFramer,
}

impl FilePart {
    fn discover(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for pattern in &self.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for p in paths.flatten() {
                if self.excludes.iter().any(|x| x.matches_path(&p)) {
                    continue;
                }
                if shard_of(&p, self.shards) != self.shard {
                    continue;
                }
                if std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
                    out.push(p);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

impl ShardSource for FilePart {
    fn run(self: Box<Self>, ctx: ShardCtx) -> LocalFuture {
        Box::pin(async move {
            let handle = self
                .handle
                .get()
                .expect("source handle set before start")
                .clone();
            let source = handle.index;
            let mut files: HashMap<PathBuf, Tailed> = HashMap::new();
            let mut failed: HashSet<PathBuf> = HashSet::new();
            let mut last_glob: Option<Instant> = None;
            let mut idle = 0u32;
            let mut first_scan = true;
            let truncated_lines = handle.metrics.dropped("truncated");
            handle.mark_started();
            let mut batches = Vec::new();
            while !ctx.lifecycle().is_draining() {
                if last_glob.is_none_or(|t| t.elapsed() >= self.glob_interval) {
                    last_glob = Some(Instant::now());
                    for path in self.discover() {
                        if files.contains_key(&path) || failed.contains(&path) {
                            continue;
                        }
                        match ShardFile::open(&path).await {
                            Ok(file) => {
                                let size = file.size().await.unwrap_or(0);
                                let offset = if first_scan && self.read_from == ReadFrom::End {
                                    size
                                } else {
                                    0
                                };
                                self.files_discovered.fetch_add(1, Ordering::Relaxed);
                                self.files_open.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(path = %path.display(), shard = self.shard, "watching file");
                                files.insert(
                                    path,
                                    Tailed {
                                        file,
                                        offset,
                                        buf: BytesMut::with_capacity(READ_CHUNK),
                                        framer: LineFramer::new(self.max_line, self.batch_size),
                                    },
                                );
                            }
                            Err(e) => {
                                self.errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(path = %path.display(), error = %e, "cannot open file; skipping it");
                                failed.insert(path);
                            }
                        }
                    }
                    first_scan = false;
                }
                let mut read_any = false;
                for (path, t) in files.iter_mut() {
                    let size = match t.file.size().await {
                        Ok(s) => s,
                        Err(_) => continue,
                    };
                    if size < t.offset {
                        tracing::info!(path = %path.display(), "file shrank; reading it again from the start");
                        self.truncations.fetch_add(1, Ordering::Relaxed);
                        t.offset = 0;
                        t.buf.clear();
                    }
                    while t.offset < size && !ctx.lifecycle().is_draining() {
                        if t.buf.capacity() - t.buf.len() < READ_CHUNK {
                            t.buf.reserve(READ_CHUNK);
                        }
                        let want = READ_CHUNK.min((size - t.offset) as usize);
                        let n = match t.file.read_at_into(t.offset, want, &mut t.buf).await {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) => {
                                self.errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(path = %path.display(), error = %e, "read failed");
                                break;
                            }
                        };
                        t.offset += n as u64;
                        read_any = true;
                        let before = t.framer.truncated;
                        t.framer
                            .frame(&mut t.buf, false, source, &mut |b| batches.push(b));
                        truncated_lines.fetch_add(t.framer.truncated - before, Ordering::Relaxed);
                        for mut b in batches.drain(..) {
                            handle.stamp(&mut b);
                            ctx.emit(source, b, self.spread).await;
                        }
                    }
                }
                if read_any {
                    idle = 0;
                } else {
                    // Poll for growth: quickly at first, then every 100 ms.
                    let wait = Duration::from_millis([1, 5, 20, 50, 100][(idle as usize).min(4)]);
                    idle += 1;
                    runtime::sleep(wait).await;
                }
            }
            let _ = self.started;
            self.files_open
                .fetch_sub(files.len() as i64, Ordering::Relaxed);
            for (_, t) in files.drain() {
                let _ = t.file.close().await;
            }
            handle.mark_finished();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_assignment_is_stable_and_spread() {
        let a = shard_of(Path::new("/var/log/a.log"), 4);
        assert_eq!(a, shard_of(Path::new("/var/log/a.log"), 4));
        let counts = (0..400).fold([0usize; 4], |mut c, i| {
            c[shard_of(Path::new(&format!("/var/log/app-{i}.log")), 4)] += 1;
            c
        });
        assert!(counts.iter().all(|&n| n > 50), "{counts:?}");
    }
}
