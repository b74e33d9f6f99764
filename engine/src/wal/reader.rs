//! Reading records back in order with plain `pread` (the sink's writer thread, tests; never a
//! shard): [`WalReader`] follows the segment index from a sequence number up to a limit the
//! caller gives (the writer's `written`/`synced`, or the end recovery found), and [`Replay`]
//! is the iterator over what was not acknowledged at open.
//!
//! Damage inside a segment that is not the last is reported (`tracing::error!` with the file
//! and offset), counted in `corrupt_skips`, and skipped: the reader goes on at the next
//! segment and counts the records it could not read in `records_lost`.

use super::index::SharedIndex;
use super::segment::{Scanned, SegmentScanner};
use super::WalMetrics;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    pub seq: u64,
    pub events: u32,
    /// The batch exactly as the shard encoded it for the sink.
    pub payload: Vec<u8>,
}

struct Open {
    scanner: SegmentScanner,
    base: u64,
    /// The sequence of the record the scanner returns next.
    at: u64,
    /// The offset at which the scanner last re-read the file after seeing an end or damage.
    refreshed_at: Option<u64>,
}

/// Reads one WAL's records in sequence order.
pub struct WalReader {
    index: SharedIndex,
    metrics: Arc<WalMetrics>,
    next: u64,
    open: Option<Open>,
}

impl WalReader {
    pub fn new(index: SharedIndex, metrics: Arc<WalMetrics>, from: u64) -> WalReader {
        WalReader {
            index,
            metrics,
            next: from,
            open: None,
        }
    }

    /// Moves the reader forward to `seq` (records before it are skipped; never backwards).
    pub fn seek(&mut self, seq: u64) {
        if seq > self.next {
            self.next = seq;
        }
    }

    /// The sequence number of the record `next` returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Finds the segment holding `self.next`: `(base, path, base of the segment after)`.
    fn locate(&self) -> io::Result<Option<(u64, PathBuf, Option<u64>)>> {
        let ix = self
            .index
            .lock()
            .map_err(|_| io::Error::other("WAL segment index poisoned"))?;
        let i = match ix.locate(self.next) {
            Some(i) => i,
            None => match ix.get(0) {
                // Below the first segment (its records were deleted or lost): start there.
                Some(_) => 0,
                None => return Ok(None),
            },
        };
        let Some(s) = ix.get(i) else {
            return Ok(None);
        };
        Ok(Some((
            s.base,
            s.path.clone(),
            ix.get(i + 1).map(|n| n.base),
        )))
    }

    fn next_segment_base(&self, base: u64) -> io::Result<Option<u64>> {
        let ix = self
            .index
            .lock()
            .map_err(|_| io::Error::other("WAL segment index poisoned"))?;
        Ok(ix.segments().iter().find(|s| s.base > base).map(|s| s.base))
    }

    /// The next record below `limit` into `out` (replacing its contents); `None` when the
    /// reader reached `limit` or the end of what is written.
    pub fn next_into(&mut self, limit: u64, out: &mut Vec<u8>) -> io::Result<Option<(u64, u32)>> {
        loop {
            if self.next >= limit {
                return Ok(None);
            }
            if self.open.is_none() {
                let Some((base, path, _)) = self.locate()? else {
                    return Ok(None);
                };
                if base > self.next {
                    self.lost(base - self.next);
                    self.next = base;
                    continue;
                }
                let scanner = SegmentScanner::open(&path)?;
                self.open = Some(Open {
                    scanner,
                    base,
                    at: base,
                    refreshed_at: None,
                });
            }
            let Some(open) = self.open.as_mut() else {
                return Ok(None);
            };
            let scanned = open.scanner.next_record()?;
            // An end or damage below `limit` may only be the read-ahead being older than the
            // writer's last records (they were durable before `limit` was given): read the
            // file again once at this offset before believing it.
            if let Scanned::End { offset } | Scanned::Bad { offset, .. } = scanned {
                if open.refreshed_at != Some(offset) {
                    open.refreshed_at = Some(offset);
                    open.scanner.refresh()?;
                    continue;
                }
            }
            match scanned {
                Scanned::Record { header, offset } => {
                    if header.seq != open.at {
                        let (path, base) = (open.scanner.path().to_path_buf(), open.base);
                        if self.skip_damage(base, path, offset, "record out of sequence")? {
                            continue;
                        }
                        return Ok(None);
                    }
                    open.at += 1;
                    if header.seq < self.next {
                        continue;
                    }
                    out.clear();
                    out.extend_from_slice(open.scanner.payload());
                    self.next = header.seq + 1;
                    self.metrics.records_read.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some((header.seq, header.events)));
                }
                Scanned::End { offset } => {
                    let (path, base, at) = (open.scanner.path().to_path_buf(), open.base, open.at);
                    match self.next_segment_base(base)? {
                        Some(nb) if nb == at => {
                            // The segment ends where the next begins.
                            self.close();
                        }
                        Some(_) => {
                            if !self.skip_damage(base, path, offset, "segment ends early")? {
                                return Ok(None);
                            }
                        }
                        None => return Ok(None),
                    }
                }
                Scanned::Bad { offset, reason } => {
                    let (path, base) = (open.scanner.path().to_path_buf(), open.base);
                    if !self.skip_damage(base, path, offset, reason)? {
                        // The last segment: its end is being written (or was cut by recovery).
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Damage in segment `base`: when a later segment exists, report it and go on there
    /// (true); in the last segment, stop (false).
    fn skip_damage(
        &mut self,
        base: u64,
        path: PathBuf,
        offset: u64,
        reason: &str,
    ) -> io::Result<bool> {
        let Some(nb) = self.next_segment_base(base)? else {
            self.close();
            return Ok(false);
        };
        tracing::error!(
            file = %path.display(),
            offset,
            reason,
            next_segment = nb,
            "WAL segment damaged: skipping to the next segment"
        );
        self.metrics.corrupt_skips.fetch_add(1, Ordering::Relaxed);
        if nb > self.next {
            self.lost(nb - self.next);
            self.next = nb;
        }
        self.close();
        Ok(true)
    }

    fn close(&mut self) {
        if let Some(o) = self.open.take() {
            self.metrics
                .bytes_read
                .fetch_add(o.scanner.bytes_read(), Ordering::Relaxed);
        }
    }

    fn lost(&self, n: u64) {
        self.metrics.records_lost.fetch_add(n, Ordering::Relaxed);
    }
}

/// The records not acknowledged when the WAL was opened, in order, each once.
pub struct Replay {
    reader: WalReader,
    limit: u64,
}

impl Replay {
    pub(crate) fn new(reader: WalReader, limit: u64) -> Replay {
        Replay { reader, limit }
    }

    /// The sequence number after the last record this replay yields.
    pub fn end(&self) -> u64 {
        self.limit
    }
}

impl Iterator for Replay {
    type Item = io::Result<WalRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut payload = Vec::new();
        match self.reader.next_into(self.limit, &mut payload) {
            Ok(Some((seq, events))) => Some(Ok(WalRecord {
                seq,
                events,
                payload,
            })),
            Ok(None) => None,
            Err(e) => {
                self.limit = 0;
                Some(Err(e))
            }
        }
    }
}
