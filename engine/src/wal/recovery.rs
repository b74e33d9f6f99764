//! Recovery on open: the directory listing, every segment's 32-byte header, the cursor, and a
//! scan of the tail segment only — so opening costs the same for a 5 MiB and a 5 GiB buffer.
//! A torn write at the tail (short record, bad CRC, a stale record) is cut off there: the
//! file is truncated at the last good record and preallocated again (zeros after it), the
//! damage is logged and counted, and everything before it is kept. A tail segment whose own
//! header is torn (a crash while rolling) is removed and the one before it becomes the tail.
//! Damage inside older segments is found by the reader, which reports and skips it. A record
//! whose sequence number is below its segment's base is left from the segment's earlier life
//! (a recycled spare): the scanner reports it as the clean end of what was written.

use super::cursor::read_cursor;
use super::index::{SegmentIndex, SegmentMeta};
use super::segment::{
    parse_segment_name, read_segment_header, Scanned, SegmentScanner, SPARE_SUFFIX,
};
use super::{preallocate_std, WalConfig, WalMetrics};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Where the writer goes on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailState {
    pub base: u64,
    pub path: PathBuf,
    /// Offset after the last good record.
    pub end: u64,
    /// The file's (preallocated) size.
    pub capacity: u64,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the directory.
    pub segments: usize,
    /// Bytes read from segment files (headers plus the tail scan).
    pub bytes_read: u64,
    /// Where a torn tail was cut: file, offset, reason, bytes dropped.
    pub torn: Option<(PathBuf, u64, &'static str, u64)>,
    /// Segments removed because their header was damaged.
    pub bad_segments: Vec<(PathBuf, &'static str)>,
    /// Segments deleted because the cursor had passed them.
    pub acked_segments_deleted: usize,
    /// The cursor read back.
    pub cursor: u64,
    /// The first sequence number the writer will use.
    pub next_seq: u64,
}

/// The result of recovery: the index, where the writer continues, the cursor.
#[derive(Debug)]
pub struct Recovered {
    pub index: SegmentIndex,
    /// The segment the writer appends to; `None` when it must start a new one at `next_seq`.
    pub tail: Option<TailState>,
    pub next_seq: u64,
    pub cursor: u64,
    pub cursor_generation: u64,
    pub report: RecoveryReport,
}

/// The segments' bases, in order, and the spare segment files.
fn list_segments(dir: &Path) -> io::Result<(Vec<u64>, Vec<PathBuf>)> {
    let mut bases = Vec::new();
    let mut spares = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(b) = parse_segment_name(name) {
            bases.push(b);
        } else if name.ends_with(SPARE_SUFFIX) {
            spares.push(entry.path());
        }
    }
    bases.sort_unstable();
    spares.sort_unstable();
    Ok((bases, spares))
}

/// Recovers the WAL in `dir` (created if missing).
pub fn recover(dir: &Path, cfg: &WalConfig, metrics: &WalMetrics) -> io::Result<Recovered> {
    std::fs::create_dir_all(dir)?;
    let counter = &metrics.recovery_bytes_read;
    let read_before = counter.load(Ordering::Relaxed);
    let mut report = RecoveryReport::default();
    let (cursor, cursor_generation) = read_cursor(dir)?;
    report.cursor = cursor;

    let (bases, spares) = list_segments(dir)?;
    report.segments = bases.len();
    let mut index = SegmentIndex::new();
    // One spare is kept for the writer's next roll; more (there never should be) go.
    for spare in spares {
        if let Some(extra) = index.offer_spare(spare) {
            std::fs::remove_file(&extra)?;
        }
    }
    for &base in &bases {
        let path = dir.join(super::segment::segment_file_name(base));
        let check = read_segment_header(&path, counter)?;
        let check = check.and_then(|b| {
            if b == base {
                Ok(b)
            } else {
                Err("header base disagrees with file name")
            }
        });
        match check {
            Ok(_) => index.insert(dir, base),
            Err(reason) => {
                let is_last = Some(&base) == bases.last();
                if is_last {
                    tracing::warn!(file = %path.display(), reason, "WAL tail segment header torn (crash while rolling); removing it");
                    metrics.torn_tails.fetch_add(1, Ordering::Relaxed);
                    std::fs::remove_file(&path)?;
                } else {
                    tracing::error!(file = %path.display(), offset = 0, reason, "WAL segment header damaged; its records are skipped (renamed to .corrupt)");
                    metrics.corrupt_skips.fetch_add(1, Ordering::Relaxed);
                    let mut bad = path.clone().into_os_string();
                    bad.push(".corrupt");
                    std::fs::rename(&path, &bad)?;
                }
                report.bad_segments.push((path, reason));
            }
        }
    }

    // Segments the cursor passed before the crash (deleted after the cursor write).
    for s in index.take_below(cursor) {
        std::fs::remove_file(&s.path)?;
        report.acked_segments_deleted += 1;
    }

    let mut tail = None;
    let mut next_seq = 0;
    if let Some(SegmentMeta { base, path }) = index.last().cloned() {
        let mut scan = SegmentScanner::open(&path)?;
        let mut expect = base;
        let (end, damage) = loop {
            match scan.next_record()? {
                Scanned::Record { header, offset } => {
                    if header.seq != expect {
                        break (offset, Some("record out of sequence (stale data)"));
                    }
                    expect += 1;
                }
                Scanned::End { offset } => break (offset, None),
                Scanned::Bad { offset, reason } => break (offset, Some(reason)),
            }
        };
        counter.fetch_add(scan.bytes_read(), Ordering::Relaxed);
        drop(scan);
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        let len = file.metadata()?.len();
        let capacity = len.max(cfg.segment_size);
        if let Some(reason) = damage {
            tracing::warn!(file = %path.display(), offset = end, reason, "WAL torn write at the tail: truncated there, every record before it kept");
            metrics.torn_tails.fetch_add(1, Ordering::Relaxed);
            report.torn = Some((path.clone(), end, reason, len.saturating_sub(end)));
        }
        // Zeros after the end, whatever a crash left there, and the space allocated again.
        file.set_len(end)?;
        preallocate_std(&file, capacity)?;
        file.sync_data()?;
        next_seq = expect;
        tail = Some(TailState {
            base,
            path,
            end,
            capacity,
        });
    }
    if cursor > next_seq {
        // The sink acknowledged records whose durable copy was lost with the crash: they
        // were delivered, so go on after them in a new segment.
        next_seq = cursor;
        tail = None;
    }
    report.next_seq = next_seq;
    report.bytes_read = counter.load(Ordering::Relaxed) - read_before;
    Ok(Recovered {
        index,
        tail,
        next_seq,
        cursor,
        cursor_generation,
        report,
    })
}
