//! The segment index: the WAL's segments in sequence order, built at open from the directory
//! listing and the segment headers, extended by the writer when it rolls to a new segment,
//! and trimmed when the reader cursor passes whole segments (one of which is kept as the
//! spare the writer's next roll reuses). Shared between the shard that
//! writes and the thread that reads (a mutex taken once per segment event, never per record).

use super::segment::segment_file_name;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Sequence number of the segment's first record.
    pub base: u64,
    pub path: PathBuf,
}

#[derive(Debug, Default)]
pub struct SegmentIndex {
    segments: Vec<SegmentMeta>,
    /// One acknowledged segment file kept for the writer's next roll.
    spare: Option<PathBuf>,
}

/// The index as shared between the writer and the readers.
pub type SharedIndex = Arc<Mutex<SegmentIndex>>;

impl SegmentIndex {
    pub fn new() -> SegmentIndex {
        SegmentIndex::default()
    }

    pub fn segments(&self) -> &[SegmentMeta] {
        &self.segments
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Adds a segment (keeps the order; the writer always adds at the end).
    pub fn insert(&mut self, dir: &Path, base: u64) {
        let meta = SegmentMeta {
            base,
            path: dir.join(segment_file_name(base)),
        };
        match self.segments.binary_search_by_key(&base, |s| s.base) {
            Ok(i) => self.segments[i] = meta,
            Err(i) => self.segments.insert(i, meta),
        }
    }

    pub fn remove(&mut self, base: u64) {
        self.segments.retain(|s| s.base != base);
    }

    /// The index of the segment that holds `seq` (the last one starting at or before it).
    pub fn locate(&self, seq: u64) -> Option<usize> {
        match self.segments.binary_search_by_key(&seq, |s| s.base) {
            Ok(i) => Some(i),
            Err(0) => None,
            Err(i) => Some(i - 1),
        }
    }

    /// The segment after `i`, if any.
    pub fn get(&self, i: usize) -> Option<&SegmentMeta> {
        self.segments.get(i)
    }

    pub fn last(&self) -> Option<&SegmentMeta> {
        self.segments.last()
    }

    /// Offers an acknowledged segment file (already renamed to its spare name) for reuse;
    /// gives it back when a spare is kept already (the caller deletes it).
    pub fn offer_spare(&mut self, path: PathBuf) -> Option<PathBuf> {
        if self.spare.is_some() {
            return Some(path);
        }
        self.spare = Some(path);
        None
    }

    /// Takes the spare segment file, if one is kept.
    pub fn take_spare(&mut self) -> Option<PathBuf> {
        self.spare.take()
    }

    /// Takes out the segments whose every record is below `cursor` (the next segment starts
    /// at or before it); the last segment always stays. Returns them for deletion.
    pub fn take_below(&mut self, cursor: u64) -> Vec<SegmentMeta> {
        let mut n = 0;
        while n + 1 < self.segments.len() && self.segments[n + 1].base <= cursor {
            n += 1;
        }
        self.segments.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_and_take_below() {
        let d = Path::new("/x");
        let mut ix = SegmentIndex::new();
        for b in [10, 0, 25] {
            ix.insert(d, b);
        }
        assert_eq!(ix.locate(0), Some(0));
        assert_eq!(ix.locate(9), Some(0));
        assert_eq!(ix.locate(10), Some(1));
        assert_eq!(ix.locate(1000), Some(2));
        assert!(ix.take_below(9).is_empty());
        let gone = ix.take_below(24);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].base, 0);
        assert_eq!(ix.take_below(u64::MAX).len(), 1);
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.locate(5), None);
    }
}
