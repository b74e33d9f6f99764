//! Where the `http` sink's writer takes its chunks from: the shards' rings (a memory buffer)
//! or, with `buffer = { type = "disk" }`, the disk buffer's [`RecordSource`].
//!
//! With a disk buffer each record (one shard's encoded batch, already acknowledged to its
//! source when it became durable) is given an [`AckToken`] of its own when the writer takes
//! it, so it completes as batches do: once every event of it was delivered or dead-lettered
//! (the bodies it has lines in all finished). Requests finish out of order, so each shard
//! keeps its taken records in sequence with a done flag, and its WAL cursor advances over
//! the contiguous prefix of completed records only. A record whose token was failed (the
//! process stopped with it held) never completes: it replays at next start. The records
//! taken are bounded by the writer's `max_in_flight` (it takes only when there is room).

use crate::sinks::disk_buffer::RecordSource;
use crate::sinks::writer::Chunk;
use sluice_engine::ack::{AckOutcome, AckReceiver, AckToken, InFlight};
use sluice_engine::ring::RingRx;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The sequence numbers of one shard's records that completed since last looked at.
#[derive(Default)]
struct Completed {
    seqs: Mutex<Vec<u64>>,
    any: AtomicBool,
}

impl AckReceiver for Completed {
    fn ack(&self, seq: u64, outcome: AckOutcome) {
        if outcome != AckOutcome::Delivered {
            return;
        }
        if let Ok(mut v) = self.seqs.lock() {
            v.push(seq);
        }
        self.any.store(true, Ordering::Release);
    }
}

/// One shard's records taken and not yet acknowledged to its WAL.
struct Tracker {
    /// In sequence order: (seq, done).
    taken: VecDeque<(u64, bool)>,
    completed: Arc<Completed>,
}

/// A disk buffer as the writer's input.
pub(super) struct DiskInput {
    source: RecordSource,
    trackers: Vec<Tracker>,
    inflight: Arc<InFlight>,
    scratch: Vec<u64>,
}

impl DiskInput {
    pub(super) fn new(source: RecordSource) -> DiskInput {
        let trackers = (0..source.shards())
            .map(|_| Tracker {
                taken: VecDeque::new(),
                completed: Arc::new(Completed::default()),
            })
            .collect();
        DiskInput {
            source,
            trackers,
            inflight: Arc::new(InFlight::default()),
            scratch: Vec::new(),
        }
    }

    fn pop(&mut self, i: usize) -> Option<Chunk> {
        let mut c = self.source.next(i)?;
        if let (Some(seq), Some(t)) = (c.wal_seq, self.trackers.get_mut(i)) {
            t.taken.push_back((seq, false));
            let receiver: Arc<dyn AckReceiver> = t.completed.clone();
            c.ack = Some(AckToken::new(seq, &self.inflight, Some(receiver)));
        }
        Some(c)
    }

    /// Marks completed records done and advances each shard's cursor over the completed
    /// prefix (up to the source's position when nothing taken is pending: records skipped as
    /// unreadable are behind it too).
    fn settle(&mut self) {
        for (i, t) in self.trackers.iter_mut().enumerate() {
            if t.completed.any.swap(false, Ordering::AcqRel) {
                if let Ok(mut v) = t.completed.seqs.lock() {
                    self.scratch.append(&mut v);
                }
            }
            complete(&mut t.taken, &self.scratch);
            self.scratch.clear();
            let upto = t.taken.front().map_or(self.source.position(i), |(s, _)| *s);
            self.source.advance(i, upto);
        }
    }
}

/// Where the writer takes chunks from.
pub(super) enum Input {
    /// The shards' rings (a memory buffer).
    Rings(Vec<RingRx<Chunk>>),
    /// A disk buffer.
    Disk(Box<DiskInput>),
}

impl Input {
    pub(super) fn is_disk(&self) -> bool {
        matches!(self, Input::Disk(_))
    }

    pub(super) fn shards(&self) -> usize {
        match self {
            Input::Rings(r) => r.len(),
            Input::Disk(d) => d.source.shards(),
        }
    }

    /// The next chunk of shard `i`, if one is ready.
    pub(super) fn pop(&mut self, i: usize) -> Option<Chunk> {
        match self {
            Input::Rings(r) => r.get_mut(i)?.pop(),
            Input::Disk(d) => d.pop(i),
        }
    }

    /// Nothing more will come: every shard stopped and (rings) was emptied, or (disk) every
    /// record handed over was taken.
    pub(super) fn closed(&self) -> bool {
        match self {
            Input::Rings(r) => r.iter().all(|r| r.is_closed()),
            Input::Disk(d) => d.source.finished(),
        }
    }

    /// Every shard stopped (what a disk buffer still holds stays there for next start).
    pub(super) fn shards_gone(&self) -> bool {
        match self {
            Input::Rings(r) => r.iter().all(|r| r.is_closed()),
            Input::Disk(d) => d.source.shards_gone(),
        }
    }

    /// A chunk waits in a ring.
    pub(super) fn ring_ready(&self) -> bool {
        match self {
            Input::Rings(r) => r.iter().any(|r| !r.is_empty()),
            Input::Disk(d) => d.source.ring_ready(),
        }
    }

    /// Advances the disk buffer's cursors over completed records.
    pub(super) fn settle(&mut self) {
        if let Input::Disk(d) = self {
            d.settle();
        }
    }
}

/// Marks the records `done` as completed in `taken` (in sequence order) and drops the
/// completed prefix.
fn complete(taken: &mut VecDeque<(u64, bool)>, done: &[u64]) {
    for &seq in done {
        if let Ok(k) = taken.binary_search_by_key(&seq, |(s, _)| *s) {
            taken[k].1 = true;
        }
    }
    while taken.front().is_some_and(|(_, d)| *d) {
        taken.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_completed_prefix_is_acknowledged() {
        let mut taken: VecDeque<(u64, bool)> = (10..16).map(|s| (s, false)).collect();
        // Out of order: 12 and 14 finish first; nothing before them did.
        complete(&mut taken, &[12, 14]);
        assert_eq!(taken.front(), Some(&(10, false)));
        complete(&mut taken, &[11]);
        assert_eq!(taken.front(), Some(&(10, false)));
        // 10 completes: the cursor may move over 10, 11, 12 up to 13.
        complete(&mut taken, &[10, 99]);
        assert_eq!(taken.front(), Some(&(13, false)));
        complete(&mut taken, &[13, 15]);
        assert!(taken.is_empty(), "{taken:?}");
    }

    #[test]
    fn a_failed_token_never_completes_its_record() {
        let c = Arc::new(Completed::default());
        let inflight = Arc::new(InFlight::default());
        let r: Arc<dyn AckReceiver> = c.clone();
        let a = AckToken::new(5, &inflight, Some(r.clone()));
        let b = AckToken::new(6, &inflight, Some(r));
        a.fail();
        drop(a);
        drop(b);
        assert_eq!(*c.seqs.lock().unwrap(), vec![6]);
        assert!(c.any.load(Ordering::Acquire));
    }
}
