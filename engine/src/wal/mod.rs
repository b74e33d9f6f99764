//! The write-ahead log behind a sink's disk buffer: one WAL per (sink, shard) directory,
//! `engine.data_dir/buffers/<sink>/shard-<n>/`.
//!
//! - [`format`]: the record (`u32 length | u32 CRC32C | rkyv header | payload`).
//! - [`segment`]: segment files (fixed size, preallocated, named by their first sequence
//!   number, a CRC'd header) and the sequential scanner.
//! - [`index`]: the segment index shared by the writer and the readers.
//! - [`writer`]: appends with group commit over [`writer::WalIo`] (io_uring on a shard,
//!   `std::fs` in tests).
//! - [`reader`]: cursors over the records (`pread`, for the sink's thread) and replay.
//! - [`cursor`]: the acknowledged position, persisted in two CRC'd slots; retires the
//!   segments it passed (one is kept as a spare the writer's next roll reuses).
//! - [`recovery`]: opening: listing, headers, cursor, tail scan, torn-write cut.
//!
//! Everything but the writer's I/O is plain synchronous Rust; the writer is `!Send` (one per
//! shard) and never blocks: it awaits its I/O. Counters are in [`WalMetrics`].

pub mod cursor;
pub mod format;
pub mod index;
pub mod reader;
pub mod recovery;
pub mod segment;
pub mod writer;

#[cfg(test)]
mod tests;

pub use cursor::WalCursor;
pub use reader::{Replay, WalReader, WalRecord};
pub use recovery::{RecoveryReport, TailState};
pub use writer::{Notify, Ticket, WalIo, WalWriter};

use index::SharedIndex;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A sink's `buffer = { type = "disk", ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskBufferConfig {
    pub max_size: u64,
    pub when_full: crate::ring::WhenFull,
    pub sync: SyncMode,
    pub segment_size: u64,
}

/// Default segment size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// When appended records become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// After the next group commit, led by a waiter (`sync = "batch"`).
    Batch,
    /// After the next timed commit (`sync = "interval:100ms"`).
    Interval(Duration),
}

impl SyncMode {
    /// Parses `batch` or `interval:<n>ms|s`.
    pub fn parse(s: &str) -> Result<SyncMode, String> {
        if s == "batch" {
            return Ok(SyncMode::Batch);
        }
        let Some(iv) = s.strip_prefix("interval:") else {
            return Err(format!(
                "expected \"batch\" or \"interval:<duration>\", got {s:?}"
            ));
        };
        let (num, unit) = match iv.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => iv.split_at(i),
            None => (iv, ""),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("bad interval {iv:?} (e.g. \"interval:100ms\")"))?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            _ => return Err(format!("bad interval unit in {iv:?} (ms or s)")),
        };
        if d.is_zero() {
            return Err("the sync interval must be above zero".into());
        }
        Ok(SyncMode::Interval(d))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalConfig {
    /// Bytes per segment (preallocated); a record larger than this gets a segment of its own.
    pub segment_size: u64,
    pub sync: SyncMode,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size: DEFAULT_SEGMENT_SIZE,
            sync: SyncMode::Batch,
        }
    }
}

/// A WAL's counters, for the owner to export.
#[derive(Debug, Default)]
pub struct WalMetrics {
    pub records_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
    /// Commit rounds (each covers every record written before it started).
    pub commits: AtomicU64,
    /// fdatasync calls (one per segment with unsynced writes per commit).
    pub fdatasyncs: AtomicU64,
    /// Time spent in commits.
    pub sync_micros: AtomicU64,
    /// Segments started (new files or the spare reused).
    pub segments_created: AtomicU64,
    /// Of those, the spare reused.
    pub segments_recycled: AtomicU64,
    /// Segments retired once acknowledged (deleted, or one kept as the spare).
    pub segments_deleted: AtomicU64,
    pub cursor_writes: AtomicU64,
    /// Torn tails cut by recovery.
    pub torn_tails: AtomicU64,
    /// Damaged segments (or segment headers) skipped.
    pub corrupt_skips: AtomicU64,
    /// Records that could not be read back because of damage.
    pub records_lost: AtomicU64,
    pub records_read: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Bytes recovery read (segment headers and the tail scan).
    pub recovery_bytes_read: AtomicU64,
}

/// `data_dir/buffers/<sink>/shard-<n>`.
pub fn wal_dir(data_dir: &Path, sink: &str, shard: usize) -> PathBuf {
    data_dir
        .join("buffers")
        .join(sink)
        .join(format!("shard-{shard}"))
}

/// An opened (recovered) WAL, before its writer starts on the shard.
pub struct Wal {
    pub dir: PathBuf,
    pub cfg: WalConfig,
    pub index: SharedIndex,
    pub metrics: Arc<WalMetrics>,
    pub report: RecoveryReport,
    tail: Option<TailState>,
    next_seq: u64,
    cursor: u64,
    cursor_generation: u64,
    synced: Arc<AtomicU64>,
}

impl Wal {
    /// Recovers the WAL in `dir` (synchronous; run it before the writer starts).
    pub fn open(dir: &Path, cfg: WalConfig) -> io::Result<Wal> {
        let metrics = Arc::new(WalMetrics::default());
        let r = recovery::recover(dir, &cfg, &metrics)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            cfg,
            index: Arc::new(Mutex::new(r.index)),
            metrics,
            report: r.report,
            tail: r.tail,
            next_seq: r.next_seq,
            cursor: r.cursor,
            cursor_generation: r.cursor_generation,
            synced: Arc::new(AtomicU64::new(r.next_seq)),
        })
    }

    /// The first sequence number not acknowledged.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The sequence number the writer continues with.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The records not acknowledged at open, in order.
    pub fn replay(&self) -> Replay {
        Replay::new(self.reader(self.cursor), self.next_seq)
    }

    /// A reader from `seq`.
    pub fn reader(&self, seq: u64) -> WalReader {
        WalReader::new(self.index.clone(), self.metrics.clone(), seq)
    }

    /// The sink side's cursor.
    pub fn cursor_handle(&self) -> io::Result<WalCursor> {
        WalCursor::open(
            &self.dir,
            self.cursor,
            self.cursor_generation,
            self.index.clone(),
            self.metrics.clone(),
        )
    }

    /// Starts the writer with `io` (on the shard for io_uring).
    pub async fn writer<I: WalIo>(&self, io: I) -> io::Result<WalWriter<I>> {
        WalWriter::start(
            io,
            &self.dir,
            self.cfg,
            self.tail.clone(),
            self.next_seq,
            self.index.clone(),
            self.metrics.clone(),
            self.synced.clone(),
        )
        .await
    }

    /// Every record below this is durable: recovery's end until the writer starts, then the
    /// writer's `synced()`, for a reader on another thread.
    pub fn synced_handle(&self) -> Arc<AtomicU64> {
        self.synced.clone()
    }

    /// Bytes the segments take on disk (segment count × segment size; an oversized segment
    /// counts as one).
    pub fn disk_bytes(index: &SharedIndex, segment_size: u64) -> u64 {
        index
            .lock()
            .map(|ix| ix.len() as u64 * segment_size)
            .unwrap_or(0)
    }
}

/// `fallocate(fd, 0, 0, len)`, falling back to extending the file where the filesystem has no
/// fallocate (the space then reads as zeros all the same).
pub fn preallocate_std(file: &std::fs::File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a descriptor we hold open; the result is checked.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
            if file.metadata()?.len() < len {
                file.set_len(len)?;
            }
            Ok(())
        }
        _ => Err(e),
    }
}

/// [`WalIo`] over `std::fs` (blocking; for tests, tools and non-shard threads).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdIo;

impl WalIo for StdIo {
    type File = std::fs::File;
    async fn create(&self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }
    async fn open(&self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
    }
    async fn write_at(&self, file: &std::fs::File, buf: Vec<u8>, pos: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        file.write_all_at(&buf, pos)?;
        Ok(buf.len())
    }
    async fn fdatasync(&self, file: &std::fs::File) -> io::Result<()> {
        file.sync_data()
    }
    async fn pre_allocate(&self, file: &std::fs::File, len: u64) -> io::Result<()> {
        preallocate_std(file, len)
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
    async fn reuse(&self, from: &Path, to: &Path) -> io::Result<std::fs::File> {
        std::fs::rename(from, to)?;
        self.open(to).await
    }
}
