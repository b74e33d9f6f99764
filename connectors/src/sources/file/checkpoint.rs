//! File checkpoints: per file identity, the offset every downstream sink has acknowledged.
//!
//! The reader registers each batch it emits (`seq` → file, end offset). Acknowledgements
//! arrive from sink threads in any order; a file's acknowledged offset advances over the
//! longest run of acknowledged batches from the front, so a restart never skips data that
//! was not delivered. A failed batch stops its file's offset there (it is read again after a
//! restart: at-least-once).
//!
//! The checkpoint file (`DATA_DIR/sources/ID/checkpoints.json`) is written atomically by a
//! background thread when offsets advanced, at most once per `checkpoint_interval` (the
//! first advance after start at once), and once more at shutdown: temp file, fsync, rename,
//! fsync of the directory.

use super::identity::FileKey;
use serde::{Deserialize, Serialize};
use sluice_engine::ack::{AckOutcome, AckReceiver};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Identities of files no longer read that are kept for matching copies and restarts.
const MAX_RETIRED: usize = 4096;

/// One file's entry in the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: FileKey,
    /// Acknowledged offset: everything before it reached every sink.
    pub offset: u64,
    /// Last path seen (informational).
    pub path: PathBuf,
    /// Unix seconds when the file was last seen.
    pub seen: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    files: Vec<Entry>,
}

/// Reads a checkpoint file; a missing file is empty, a damaged one is reported and ignored
/// (the files are then read by `read_from`, never skipped).
pub fn load(path: &Path) -> Vec<Entry> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<CheckpointFile>(&bytes) {
            Ok(c) => c.files,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "checkpoint file is damaged; ignoring it");
                Vec::new()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read checkpoints");
            Vec::new()
        }
    }
}

/// Writes atomically: temp file, fsync, rename, fsync of the directory.
pub fn store(path: &Path, files: &[Entry]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(&CheckpointFile {
        version: 1,
        files: files.to_vec(),
    })
    .map_err(std::io::Error::other)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// A file being read, from the tracker's point of view.
struct Track {
    key: FileKey,
    /// The first `fingerprint_bytes` of the file (kept in memory only): a short new file whose
    /// bytes are a prefix of this may be a copy still being written.
    head: bytes::Bytes,
    path: PathBuf,
    acked: u64,
    /// Batches in flight, oldest first: (seq, end offset, state).
    inflight: VecDeque<(u64, u64, Pending)>,
    /// Bumped on truncation; acks of older batches are ignored.
    generation: u32,
    stuck: bool,
    live: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    Waiting,
    Done,
    Failed,
}

#[derive(Default)]
struct State {
    tracks: HashMap<u64, Track>,
    by_seq: HashMap<u64, (u64, u32)>,
    /// Entries loaded at start or left by files that went away: matched against new files.
    retired: Vec<Entry>,
    dirty: bool,
}

/// Shared by every shard's reader, the sinks' acknowledgements and the checkpoint writer.
#[derive(Default)]
pub struct Tracker {
    state: Mutex<State>,
}

/// How a newly seen file relates to what was read before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Resume at this acknowledged offset (the same file, renamed or copied).
    At(u64),
    /// Never seen: start by `read_from`.
    New,
}

impl Tracker {
    pub fn new(loaded: Vec<Entry>) -> Tracker {
        Tracker {
            state: Mutex::new(State {
                retired: loaded,
                ..State::default()
            }),
        }
    }

    /// Finds where to resume a file. `prefix_hash(len)` hashes the file's first `len` bytes
    /// (None if it is shorter). A full fingerprint matches by content alone (a renamed or
    /// copied file); a short one only together with the same device and inode.
    pub fn resume(
        &self,
        dev: u64,
        ino: u64,
        full_len: u32,
        prefix_hash: impl Fn(u32) -> Option<u64>,
    ) -> Resume {
        let st = self.state.lock().expect("tracker lock");
        let candidates = st
            .retired
            .iter()
            .map(|e| (&e.key, e.offset))
            .chain(st.tracks.values().map(|t| (&t.key, t.acked)));
        let mut best: Option<(bool, u64)> = None;
        for (key, offset) in candidates {
            if key.fp_len == 0 {
                continue;
            }
            let same_inode = key.dev == dev && key.ino == ino;
            if key.fp_len < full_len && !same_inode {
                continue;
            }
            if prefix_hash(key.fp_len) != Some(key.fp_hash) {
                continue;
            }
            // Prefer the same inode, then the furthest offset.
            let rank = (same_inode, offset);
            if best.is_none_or(|b| rank > b) {
                best = Some(rank);
            }
        }
        best.map_or(Resume::New, |(_, o)| Resume::At(o))
    }

    /// True when `head` (a short file's bytes) is a strict prefix of a live file's head.
    pub fn prefix_of_live(&self, head: &[u8]) -> bool {
        if head.is_empty() {
            return false;
        }
        let st = self.state.lock().expect("tracker lock");
        st.tracks
            .values()
            .any(|t| t.live && t.head.len() > head.len() && t.head.starts_with(head))
    }

    /// Starts tracking a file at `offset` under `id`.
    pub fn open(&self, id: u64, key: FileKey, head: bytes::Bytes, path: &Path, offset: u64) {
        let mut st = self.state.lock().expect("tracker lock");
        st.tracks.insert(
            id,
            Track {
                key,
                head,
                path: path.to_path_buf(),
                acked: offset,
                inflight: VecDeque::new(),
                generation: 0,
                stuck: false,
                live: true,
            },
        );
        st.dirty = true;
    }

    /// The fingerprint grew (a short file got longer) or the path changed (rename).
    pub fn update(&self, id: u64, key: Option<(FileKey, bytes::Bytes)>, path: Option<&Path>) {
        let mut st = self.state.lock().expect("tracker lock");
        if let Some(t) = st.tracks.get_mut(&id) {
            if let Some((k, head)) = key {
                t.key = k;
                t.head = head;
            }
            if let Some(p) = path {
                t.path = p.to_path_buf();
            }
            st.dirty = true;
        }
    }

    /// Records that batch `seq` of file `id` ends at file offset `end`.
    pub fn register(&self, id: u64, seq: u64, end: u64) {
        let mut st = self.state.lock().expect("tracker lock");
        let Some(t) = st.tracks.get_mut(&id) else {
            return;
        };
        let generation = t.generation;
        t.inflight.push_back((seq, end, Pending::Waiting));
        st.by_seq.insert(seq, (id, generation));
    }

    /// The file shrank or was rewritten: its old content becomes a closed track `id` (it
    /// keeps receiving the acknowledgements of its batches in flight, so a copy of it seen
    /// later resumes where delivery really got to), and the new content is tracked from zero
    /// as `new_id`.
    pub fn truncated(&self, id: u64, new_id: u64, key: FileKey, head: bytes::Bytes) {
        let mut st = self.state.lock().expect("tracker lock");
        let Some(old) = st.tracks.get_mut(&id) else {
            return;
        };
        old.live = false;
        let path = old.path.clone();
        st.tracks.insert(
            new_id,
            Track {
                key,
                head,
                path,
                acked: 0,
                inflight: VecDeque::new(),
                generation: 0,
                stuck: false,
                live: true,
            },
        );
        st.dirty = true;
        prune(&mut st);
    }

    /// The file is no longer read (deleted or rotated away and read to its end). Its entry
    /// stays for matching copies and for restarts.
    pub fn close(&self, id: u64) {
        let mut st = self.state.lock().expect("tracker lock");
        if let Some(t) = st.tracks.get_mut(&id) {
            t.live = false;
            st.dirty = true;
        }
        prune(&mut st);
    }

    /// Bytes read but not yet acknowledged, per live file (path, lag).
    pub fn lag(&self) -> Vec<(PathBuf, u64)> {
        let st = self.state.lock().expect("tracker lock");
        st.tracks
            .values()
            .filter(|t| t.live)
            .map(|t| {
                let read = t.inflight.back().map_or(t.acked, |b| b.1);
                (t.path.clone(), read.saturating_sub(t.acked))
            })
            .collect()
    }

    /// The entries to persist, if anything changed since the last call.
    pub fn snapshot_if_dirty(&self) -> Option<Vec<Entry>> {
        let mut st = self.state.lock().expect("tracker lock");
        if !st.dirty {
            return None;
        }
        st.dirty = false;
        Some(snapshot(&st))
    }

    /// The entries to persist.
    pub fn snapshot(&self) -> Vec<Entry> {
        snapshot(&self.state.lock().expect("tracker lock"))
    }

    /// The acknowledged offset of a tracked file (tests, metrics).
    pub fn acked(&self, id: u64) -> Option<u64> {
        self.state
            .lock()
            .expect("tracker lock")
            .tracks
            .get(&id)
            .map(|t| t.acked)
    }
}

/// Moves closed tracks with nothing in flight to the retired list (bounded).
fn prune(st: &mut State) {
    let done: Vec<u64> = st
        .tracks
        .iter()
        .filter(|(_, t)| !t.live && t.inflight.is_empty())
        .map(|(id, _)| *id)
        .collect();
    let now = now_secs();
    for id in done {
        if let Some(t) = st.tracks.remove(&id) {
            if t.key.fp_len > 0 {
                st.retired.push(Entry {
                    key: t.key,
                    offset: t.acked,
                    path: t.path,
                    seen: now,
                });
            }
        }
    }
    let excess = st.retired.len().saturating_sub(MAX_RETIRED);
    st.retired.drain(..excess);
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn snapshot(st: &State) -> Vec<Entry> {
    let now = now_secs();
    let mut out: Vec<Entry> = st
        .tracks
        .values()
        .map(|t| Entry {
            key: t.key.clone(),
            offset: t.acked,
            path: t.path.clone(),
            seen: if t.live { now } else { now.saturating_sub(1) },
        })
        .collect();
    // Keep retired entries that no live track supersedes, for a week.
    for r in &st.retired {
        if now.saturating_sub(r.seen) > 7 * 86400 {
            continue;
        }
        if !out.iter().any(|e| e.key == r.key) {
            out.push(r.clone());
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.key.ino.cmp(&b.key.ino)));
    out
}

impl AckReceiver for Tracker {
    fn ack(&self, seq: u64, outcome: AckOutcome) {
        let mut st = self.state.lock().expect("tracker lock");
        let Some((id, generation)) = st.by_seq.remove(&seq) else {
            return;
        };
        let Some(t) = st.tracks.get_mut(&id) else {
            return;
        };
        if t.generation != generation {
            return;
        }
        if let Some(slot) = t.inflight.iter_mut().find(|b| b.0 == seq) {
            slot.2 = match outcome {
                AckOutcome::Delivered => Pending::Done,
                AckOutcome::Failed => Pending::Failed,
            };
        }
        let mut advanced = false;
        while let Some(&(_, end, state)) = t.inflight.front() {
            match state {
                Pending::Done if !t.stuck => {
                    t.acked = end;
                    t.inflight.pop_front();
                    advanced = true;
                }
                Pending::Failed => {
                    if !t.stuck {
                        tracing::warn!(path = %t.path.display(), offset = t.acked, "a batch failed; this file's checkpoint stays here until restart");
                    }
                    t.stuck = true;
                    break;
                }
                _ => break,
            }
        }
        let closed_and_done = !t.live && t.inflight.is_empty();
        if advanced {
            st.dirty = true;
        }
        if closed_and_done {
            prune(&mut st);
        }
    }
}

/// Where a source's checkpoints live.
pub fn path_for(data_dir: &Path, source_id: &str) -> PathBuf {
    data_dir
        .join("sources")
        .join(source_id)
        .join("checkpoints.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64, fp_hash: u64, fp_len: u32) -> FileKey {
        FileKey {
            dev: 1,
            ino,
            fp_hash,
            fp_len,
        }
    }

    #[test]
    fn offsets_advance_over_contiguous_acks_only() {
        let t = Tracker::new(Vec::new());
        t.open(1, key(10, 5, 1024), bytes::Bytes::new(), Path::new("/a"), 0);
        for (seq, end) in [(1, 100), (2, 200), (3, 300)] {
            t.register(1, seq, end);
        }
        t.ack(2, AckOutcome::Delivered);
        assert_eq!(t.acked(1), Some(0), "batch 1 is still in flight");
        t.ack(1, AckOutcome::Delivered);
        assert_eq!(t.acked(1), Some(200));
        t.ack(3, AckOutcome::Delivered);
        assert_eq!(t.acked(1), Some(300));
    }

    #[test]
    fn failures_stop_the_offset_and_truncation_resets_it() {
        let t = Tracker::new(Vec::new());
        t.open(1, key(10, 5, 1024), bytes::Bytes::new(), Path::new("/a"), 0);
        t.register(1, 1, 100);
        t.register(1, 2, 200);
        t.ack(1, AckOutcome::Failed);
        t.ack(2, AckOutcome::Delivered);
        assert_eq!(t.acked(1), Some(0));
        t.truncated(1, 2, key(10, 6, 10), bytes::Bytes::new());
        t.register(2, 3, 50);
        t.ack(3, AckOutcome::Delivered);
        assert_eq!(t.acked(2), Some(50));
        assert_eq!(t.acked(1), Some(0), "the old content keeps its own offset");
    }

    #[test]
    fn a_copy_seen_after_the_truncation_resumes_where_delivery_got_to() {
        let t = Tracker::new(Vec::new());
        t.open(
            1,
            key(10, 111, 1024),
            bytes::Bytes::new(),
            Path::new("/a"),
            0,
        );
        t.register(1, 1, 100);
        t.register(1, 2, 200);
        t.truncated(1, 2, key(10, 222, 1024), bytes::Bytes::new());
        // Batches of the old content are acknowledged after the truncation was seen.
        t.ack(1, AckOutcome::Delivered);
        t.ack(2, AckOutcome::Delivered);
        assert_eq!(t.resume(1, 99, 1024, |_| Some(111)), Resume::At(200));
        assert!(t
            .snapshot()
            .iter()
            .any(|e| e.key.fp_hash == 111 && e.offset == 200));
    }

    #[test]
    fn short_files_that_start_like_a_live_file_are_suspected_copies() {
        let t = Tracker::new(Vec::new());
        t.open(
            1,
            key(10, 5, 1024),
            bytes::Bytes::from_static(b"0123456789"),
            Path::new("/a"),
            0,
        );
        assert!(t.prefix_of_live(b"0123"));
        assert!(!t.prefix_of_live(b"0124"));
        assert!(!t.prefix_of_live(b"0123456789"), "not a strict prefix");
        assert!(!t.prefix_of_live(b""));
    }

    #[test]
    fn resume_matches_by_content_or_by_inode_for_short_fingerprints() {
        let loaded = vec![
            Entry {
                key: key(10, 111, 1024),
                offset: 5000,
                path: "/a".into(),
                seen: now_secs(),
            },
            Entry {
                key: key(20, 222, 40),
                offset: 30,
                path: "/b".into(),
                seen: now_secs(),
            },
        ];
        let t = Tracker::new(loaded);
        // A copy (other inode) with the same first KiB resumes where the original was.
        assert_eq!(
            t.resume(1, 99, 1024, |len| (len == 1024).then_some(111)),
            Resume::At(5000)
        );
        // A short fingerprint needs the same inode.
        assert_eq!(
            t.resume(1, 99, 1024, |len| (len == 40).then_some(222)),
            Resume::New
        );
        assert_eq!(
            t.resume(1, 20, 1024, |len| (len == 40).then_some(222)),
            Resume::At(30)
        );
        // Same inode, other content: a new file that reuses the inode.
        assert_eq!(t.resume(1, 10, 1024, |_| Some(999)), Resume::New);
    }

    #[test]
    fn store_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_for(dir.path(), "app");
        let entries = vec![Entry {
            key: key(1, 2, 3),
            offset: 4,
            path: "/x".into(),
            seen: 5,
        }];
        store(&p, &entries).unwrap();
        assert_eq!(load(&p), entries);
        std::fs::write(&p, b"{broken").unwrap();
        assert!(load(&p).is_empty());
    }
}
