//! The part of a file source that runs on one shard: finds its files, reads them through
//! io_uring, follows rotations and truncations, and reports what it emitted to the
//! checkpoint tracker.
//!
//! A shard owns the files whose (device, inode) hash to it. Discovery is a glob scan every
//! `glob_interval`, and at once when inotify reports a change in a watched directory (or its
//! queue overflowed). Growth is noticed through inotify; without it (no inotify, or its
//! watches ran out) files are polled. At most `max_open_files` descriptors are held per
//! source: the others wait in a queue, and a file that read its share or reached its end
//! gives its descriptor to the next one.

use super::checkpoint::{Resume, Tracker};
use super::identity::{fingerprint, is_gzip, shard_of, FileKey};
use super::FileSettings;
use crate::framing::LineFramer;
use bytes::BytesMut;
use sluice_engine::batch::Batch;
use sluice_engine::runtime::{self, ShardFile};
use sluice_engine::shard::{LocalFuture, ShardCtx, ShardSource};
use sluice_engine::source::SourceHandle;
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Bytes read per io_uring read.
const READ_CHUNK: usize = 1024 * 1024;
/// Bytes one file may read before others get a turn.
const TURN_BYTES: u64 = 8 * 1024 * 1024;

pub struct FilePart {
    pub shard: usize,
    pub shards: usize,
    pub settings: Arc<FileSettings>,
    pub handle: Arc<OnceLock<Arc<SourceHandle>>>,
    pub tracker: Arc<Tracker>,
}

struct Tailed {
    id: u64,
    path: PathBuf,
    key: FileKey,
    file: Option<ShardFile>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    buf: BytesMut,
    framer: LineFramer,
    last_size: u64,
    /// Last time the file had new bytes (multiline timeout, rotate_wait).
    last_data: Instant,
    /// The path no longer names this file (rotated away or deleted): read to the end, close.
    orphan: bool,
}

impl Tailed {
    fn read_pos(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }
}

/// Paths under a glob that never change: the directories inotify watches.
fn static_dir(pattern: &str) -> PathBuf {
    let cut = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    let head = &pattern[..cut];
    match head.rfind('/') {
        Some(0) => PathBuf::from("/"),
        Some(i) => PathBuf::from(&head[..i]),
        None => PathBuf::from("."),
    }
}

struct Watcher {
    inotify: Option<inotify::Inotify>,
    watched: HashSet<PathBuf>,
    buf: Vec<u8>,
}

/// What inotify said since the last look.
#[derive(Default)]
struct Changes {
    modified: bool,
    rescan: bool,
}

impl Watcher {
    fn new() -> Watcher {
        let inotify = inotify::Inotify::init()
            .map_err(|e| tracing::warn!(error = %e, "inotify unavailable; polling files instead"))
            .ok();
        Watcher {
            inotify,
            watched: HashSet::new(),
            buf: vec![0; 16 * 1024],
        }
    }

    fn watch(&mut self, dir: &Path) {
        let Some(ino) = &mut self.inotify else { return };
        if self.watched.contains(dir) || !dir.is_dir() {
            return;
        }
        use inotify::WatchMask as M;
        let mask = M::MODIFY
            | M::CREATE
            | M::DELETE
            | M::MOVED_FROM
            | M::MOVED_TO
            | M::CLOSE_WRITE
            | M::ATTRIB;
        match ino.watches().add(dir, mask) {
            Ok(_) => {
                self.watched.insert(dir.to_path_buf());
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; polling it");
                self.watched.insert(dir.to_path_buf());
                self.inotify = None;
            }
        }
    }

    fn active(&self) -> bool {
        self.inotify.is_some()
    }

    fn poll(&mut self) -> Changes {
        let mut c = Changes::default();
        let Some(ino) = &mut self.inotify else {
            c.modified = true;
            return c;
        };
        loop {
            match ino.read_events(&mut self.buf) {
                Ok(events) => {
                    let mut any = false;
                    for e in events {
                        any = true;
                        use inotify::EventMask as E;
                        if e.mask.intersects(
                            E::CREATE
                                | E::DELETE
                                | E::MOVED_FROM
                                | E::MOVED_TO
                                | E::Q_OVERFLOW
                                | E::ATTRIB,
                        ) {
                            c.rescan = true;
                        }
                        c.modified = true;
                    }
                    if !any {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "inotify failed; polling files instead");
                    self.inotify = None;
                    c.rescan = true;
                    c.modified = true;
                    break;
                }
            }
        }
        c
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
            Reader::new(*self, handle, ctx).run().await;
        })
    }
}

struct Reader {
    part: FilePart,
    handle: Arc<SourceHandle>,
    ctx: ShardCtx,
    files: HashMap<(u64, u64), Tailed>,
    /// Tracked files without a descriptor, waiting for a slot (dev, ino, path, offset).
    waiting: VecDeque<((u64, u64), PathBuf, u64)>,
    /// Files skipped on purpose (gzip, too old) or failing to open, logged once.
    skipped: HashSet<(u64, u64)>,
    failed: HashSet<PathBuf>,
    /// Paths matched by a glob that are not regular files (counted once).
    not_files: HashSet<PathBuf>,
    /// Files that look like a copy still being written: (first seen, size then).
    deferred: HashMap<(u64, u64), (Instant, u64)>,
    next_id: u64,
    first_scan: bool,
    watcher: Watcher,
    batches: Vec<(Batch, usize)>,
    head: BytesMut,
}

impl Reader {
    fn new(part: FilePart, handle: Arc<SourceHandle>, ctx: ShardCtx) -> Reader {
        let next_id = (part.shard as u64) << 48;
        Reader {
            part,
            handle,
            ctx,
            files: HashMap::new(),
            waiting: VecDeque::new(),
            skipped: HashSet::new(),
            failed: HashSet::new(),
            deferred: HashMap::new(),
            not_files: HashSet::new(),
            next_id,
            first_scan: true,
            watcher: Watcher::new(),
            batches: Vec::new(),
            head: BytesMut::new(),
        }
    }

    fn open_slots(&self) -> usize {
        let per_shard = (self.part.settings.max_open_files / self.part.shards).max(1);
        per_shard.saturating_sub(self.files.values().filter(|t| t.file.is_some()).count())
    }

    async fn run(mut self) {
        self.handle.mark_started();
        let s = self.part.settings.clone();
        for p in &s.include {
            self.watcher.watch(&static_dir(p));
        }
        let mut last_scan: Option<Instant> = None;
        let mut idle = 0u32;
        let mut changes = Changes {
            modified: true,
            rescan: true,
        };
        while !self.ctx.lifecycle().is_draining() {
            // With inotify healthy, new files announce themselves; the periodic scan is a
            // safety net. Without it, scanning is how new files are found.
            let scan_every = if self.watcher.active() && self.deferred.is_empty() {
                s.glob_interval * 10
            } else {
                s.glob_interval
            };
            if changes.rescan || last_scan.is_none_or(|t| t.elapsed() >= scan_every) {
                last_scan = Some(Instant::now());
                self.scan().await;
                // Files the scan just opened may never get another inotify event: read now.
                changes.modified = true;
            }
            let read_any = if changes.modified || !self.watcher.active() || !self.waiting.is_empty()
            {
                self.read_all().await
            } else {
                false
            };
            self.finish_orphans_and_timeouts().await;
            if read_any {
                idle = 0;
                changes = self.watcher.poll();
                changes.modified = true;
                continue;
            }
            // Nothing read: wait for inotify (checked every 50 ms) or poll sizes.
            let wait = if self.watcher.active() {
                Duration::from_millis(50)
            } else {
                Duration::from_millis([1, 5, 20, 50, 100][(idle as usize).min(4)])
            };
            idle = idle.saturating_add(1);
            runtime::sleep(wait).await;
            changes = self.watcher.poll();
            // Files with a pending multiline event or an orphan need a look even when quiet.
            if self
                .files
                .values()
                .any(|t| t.framer.has_pending() || t.orphan)
            {
                changes.modified = true;
            }
        }
        // Drain: emit nothing more; close descriptors.
        let open = self.files.values().filter(|t| t.file.is_some()).count() as i64;
        s.metrics.files_open.fetch_sub(open, Ordering::Relaxed);
        s.metrics
            .files_watched
            .fetch_sub(self.files.len() as i64, Ordering::Relaxed);
        for (_, mut t) in self.files.drain() {
            if let Some(f) = t.file.take() {
                let _ = f.close().await;
            }
        }
        self.handle.mark_finished();
    }

    fn matches(&self, path: &Path) -> bool {
        !self
            .part
            .settings
            .exclude
            .iter()
            .any(|x| x.matches_path(path))
    }

    async fn scan(&mut self) {
        let s = self.part.settings.clone();
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        let mut paths: Vec<PathBuf> = Vec::new();
        for pattern in &s.include {
            let Ok(found) = glob::glob(pattern) else {
                continue;
            };
            paths.extend(found.flatten());
        }
        paths.sort();
        paths.dedup();
        for path in paths {
            if !self.matches(&path) {
                continue;
            }
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if !meta.is_file() {
                // Counted once, by the shard that would own it.
                let mine = shard_of(meta.dev(), meta.ino(), self.part.shards) == self.part.shard;
                if mine && self.not_files.insert(path.clone()) {
                    tracing::info!(path = %path.display(), "matched a glob but is not a regular file; skipped");
                    s.metrics.skipped_not_a_file.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            let id = (meta.dev(), meta.ino());
            if shard_of(id.0, id.1, self.part.shards) != self.part.shard {
                continue;
            }
            seen.insert(id);
            if let Some(t) = self.files.get_mut(&id) {
                if t.path != path {
                    s.metrics.rotations.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(from = %t.path.display(), to = %path.display(), "file renamed");
                    self.part.tracker.update(t.id, None, Some(&path));
                    t.path = path.clone();
                }
                t.orphan = false;
                continue;
            }
            if let Some(w) = self.waiting.iter_mut().find(|w| w.0 == id) {
                w.1 = path.clone();
                continue;
            }
            if self.skipped.contains(&id) {
                continue;
            }
            if let Some(older) = s.ignore_older {
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age > older);
                if old {
                    tracing::debug!(path = %path.display(), "older than ignore_older; skipped");
                    s.metrics.skipped_too_old.fetch_add(1, Ordering::Relaxed);
                    self.skipped.insert(id);
                    continue;
                }
            }
            if self.open_slots() == 0 {
                self.waiting.push_back((id, path.clone(), u64::MAX));
                continue;
            }
            self.open_new(id, &path).await;
        }
        let dirs: HashSet<PathBuf> = self
            .files
            .values()
            .filter_map(|t| t.path.parent().map(Path::to_path_buf))
            .collect();
        for dir in dirs {
            self.watcher.watch(&dir);
        }
        for t in self.files.values_mut() {
            let key = (t.key.dev, t.key.ino);
            if !seen.contains(&key) && !t.orphan {
                tracing::debug!(path = %t.path.display(), "file rotated away or deleted; reading it to the end");
                t.orphan = true;
                t.last_data = Instant::now();
                s.metrics.rotations.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Waiting files that vanished are gone for good (we held no descriptor).
        self.waiting.retain(|w| seen.contains(&w.0));
        self.deferred.retain(|k, _| seen.contains(k));
        s.metrics
            .files_waiting
            .store(self.waiting.len() as i64, Ordering::Relaxed);
        self.first_scan = false;
    }

    /// Reads the first bytes of `file` into `self.head` (up to `fingerprint_bytes`).
    async fn read_head(&mut self, file: &ShardFile, size: u64) -> std::io::Result<()> {
        self.head.clear();
        let want = (self.part.settings.fingerprint_bytes as u64).min(size) as usize;
        if want > 0 {
            file.read_at_into(0, want, &mut self.head).await?;
        }
        Ok(())
    }

    /// Opens a file seen for the first time (or again, from the waiting queue).
    async fn open_new(&mut self, id: (u64, u64), path: &Path) -> bool {
        let s = self.part.settings.clone();
        let file = match ShardFile::open(path).await {
            Ok(f) => f,
            Err(e) => {
                s.metrics.errors.fetch_add(1, Ordering::Relaxed);
                if self.failed.insert(path.to_path_buf()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open file; will retry");
                }
                return false;
            }
        };
        self.failed.remove(path);
        let Ok((dev, ino, size)) = file.stat() else {
            let _ = file.close().await;
            return false;
        };
        if (dev, ino) != id {
            // The path was replaced between the scan and the open: the next scan sees it.
            let _ = file.close().await;
            return false;
        }
        if self.read_head(&file, size).await.is_err() {
            s.metrics.errors.fetch_add(1, Ordering::Relaxed);
            let _ = file.close().await;
            return false;
        }
        if is_gzip(&self.head) && !s.gz_included {
            tracing::info!(path = %path.display(), "gzip-compressed file ignored (include a *.gz pattern to read it)");
            s.metrics.skipped_gzip.fetch_add(1, Ordering::Relaxed);
            self.skipped.insert(id);
            let _ = file.close().await;
            return false;
        }
        let head = self.head.clone().freeze();
        let full = s.fingerprint_bytes as u32;
        let resume = self.part.tracker.resume(dev, ino, full, |len| {
            (len as usize <= head.len()).then(|| fingerprint(&head[..len as usize]))
        });
        // A copy still being written (copytruncate) must not be read before it reaches the
        // checkpoint it matched, nor taken for a new file while it is shorter than a
        // fingerprint: wait for it to grow, or to stay still for `rotate_wait`.
        let suspect = match resume {
            Resume::At(o) => o > size,
            Resume::New => {
                head.len() < s.fingerprint_bytes && self.part.tracker.prefix_of_live(&head)
            }
        };
        if size == 0 {
            // Nothing to read yet, and an empty file may be a copy about to be written: decide
            // what it is once it has bytes.
            self.deferred.insert(id, (Instant::now(), 0));
            let _ = file.close().await;
            return false;
        }
        if suspect {
            let entry = self.deferred.entry(id).or_insert((Instant::now(), size));
            if entry.1 != size {
                *entry = (Instant::now(), size);
            }
            if entry.0.elapsed() < s.rotate_wait {
                let _ = file.close().await;
                return false;
            }
        }
        self.deferred.remove(&id);
        let offset = match resume {
            Resume::At(o) if o <= size => o,
            // It stopped growing short of the checkpoint: not the same content after all.
            Resume::At(_) => 0,
            Resume::New if self.first_scan && s.read_from_end => size,
            Resume::New => 0,
        };
        let key = FileKey {
            dev,
            ino,
            fp_hash: fingerprint(&head),
            fp_len: head.len() as u32,
        };
        self.next_id += 1;
        let tid = self.next_id;
        self.part.tracker.open(tid, key.clone(), head, path, offset);
        s.metrics.discovered.fetch_add(1, Ordering::Relaxed);
        s.metrics.files_watched.fetch_add(1, Ordering::Relaxed);
        s.metrics.files_open.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(path = %path.display(), offset, shard = self.part.shard, "reading file");
        self.files.insert(
            id,
            Tailed {
                id: tid,
                path: path.to_path_buf(),
                key,
                file: Some(file),
                buf_start: offset,
                buf: BytesMut::new(),
                framer: s.new_framer(),
                last_size: offset,
                last_data: Instant::now(),
                orphan: false,
            },
        );
        true
    }

    /// One pass over the open files; true if anything was read.
    async fn read_all(&mut self) -> bool {
        let mut read_any = false;
        let ids: Vec<(u64, u64)> = self
            .files
            .iter()
            .filter(|(_, t)| t.file.is_some())
            .map(|(k, _)| *k)
            .collect();
        for id in ids {
            if self.ctx.lifecycle().is_draining() {
                break;
            }
            let (n, at_eof) = self.read_file(id).await;
            read_any |= n > 0;
            // Give the descriptor to a waiting file when this one is idle or had its turn.
            if !self.waiting.is_empty() && (at_eof || n >= TURN_BYTES) {
                self.park(id).await;
            }
        }
        while self.open_slots() > 0 {
            let Some((id, path, _)) = self.waiting.pop_front() else {
                break;
            };
            if let Some(t) = self.files.get_mut(&id) {
                // A parked file: reopen by path, but only if the path still names it.
                match ShardFile::open(&path).await {
                    Ok(f) if f.stat().map(|s| (s.0, s.1)).ok() == Some(id) => {
                        t.file = Some(f);
                        t.path = path;
                        self.part
                            .settings
                            .metrics
                            .files_open
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(f) => {
                        let _ = f.close().await;
                    }
                    Err(_) => {}
                }
            } else {
                self.open_new(id, &path).await;
            }
        }
        self.part
            .settings
            .metrics
            .files_waiting
            .store(self.waiting.len() as i64, Ordering::Relaxed);
        read_any
    }

    /// Closes a file's descriptor and queues it behind the waiting ones.
    async fn park(&mut self, id: (u64, u64)) {
        let Some(t) = self.files.get_mut(&id) else {
            return;
        };
        if t.orphan || t.framer.has_pending() {
            return; // an orphan would be lost without its descriptor; a pending event keeps its turn
        }
        if let Some(f) = t.file.take() {
            let _ = f.close().await;
            self.part
                .settings
                .metrics
                .files_open
                .fetch_sub(1, Ordering::Relaxed);
            self.waiting.push_back((id, t.path.clone(), t.read_pos()));
        }
    }

    /// Reads what a file has; returns (bytes read, reached the end).
    async fn read_file(&mut self, id: (u64, u64)) -> (u64, bool) {
        let s = self.part.settings.clone();
        let source = self.handle.index;
        let mut total = 0u64;
        loop {
            let Some(t) = self.files.get_mut(&id) else {
                return (total, true);
            };
            let Some(file) = &t.file else {
                return (total, true);
            };
            let size = match file.stat() {
                Ok((_, _, size)) => size,
                Err(_) => return (total, true),
            };
            if size < t.read_pos()
                || (size != t.last_size && self.fingerprint_changed(id, size).await)
            {
                let Some(t) = self.files.get_mut(&id) else {
                    return (total, true);
                };
                tracing::info!(path = %t.path.display(), "file truncated; reading it again from the start");
                s.metrics.truncations.fetch_add(1, Ordering::Relaxed);
                t.buf.clear();
                t.buf_start = 0;
                t.framer.reset();
                self.next_id += 1;
                let new_id = self.next_id;
                let Some(t) = self.files.get_mut(&id) else {
                    return (total, true);
                };
                let old_id = std::mem::replace(&mut t.id, new_id);
                // Read the new head without telling the tracker yet (the old track keeps its key).
                let file = t.file.take().expect("open");
                let _ = self.read_head(&file, size).await;
                let t = self.files.get_mut(&id).expect("tracked");
                t.file = Some(file);
                t.key.fp_hash = fingerprint(&self.head);
                t.key.fp_len = self.head.len() as u32;
                let head = self.head.clone().freeze();
                self.part
                    .tracker
                    .truncated(old_id, new_id, t.key.clone(), head);
            }
            let Some(t) = self.files.get_mut(&id) else {
                return (total, true);
            };
            if t.key.fp_len < s.fingerprint_bytes as u32
                && size > t.key.fp_len as u64
                && size != t.last_size
            {
                self.refresh_key(id, size).await;
            }
            let Some(t) = self.files.get_mut(&id) else {
                return (total, true);
            };
            t.last_size = size;
            let pos = t.read_pos();
            if pos >= size || total >= TURN_BYTES || self.ctx.lifecycle().is_draining() {
                return (total, pos >= size);
            }
            if t.buf.capacity() - t.buf.len() < READ_CHUNK {
                t.buf.reserve(READ_CHUNK);
            }
            let want = READ_CHUNK.min((size - pos) as usize);
            let file = t.file.as_ref().expect("open");
            let n = match file.read_at_into(pos, want, &mut t.buf).await {
                Ok(0) => return (total, true),
                Ok(n) => n,
                Err(e) => {
                    s.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(path = %t.path.display(), error = %e, "read failed");
                    return (total, true);
                }
            };
            total += n as u64;
            t.last_data = Instant::now();
            let start = t.buf_start;
            let before = t.framer.truncated;
            let len_before = t.buf.len();
            let batches = &mut self.batches;
            t.framer.frame(&mut t.buf, false, source, &mut |b, end| {
                batches.push((b, end))
            });
            t.buf_start = start + (len_before - t.buf.len()) as u64;
            s.metrics
                .lines_truncated
                .fetch_add(t.framer.truncated - before, Ordering::Relaxed);
            let tid = t.id;
            self.emit_batches(tid, start).await;
        }
    }

    /// Sends framed batches on, registering their end offsets for checkpoints.
    async fn emit_batches(&mut self, tid: u64, start: u64) {
        let source = self.handle.index;
        let spread = self.part.settings.spread;
        for (mut b, end) in std::mem::take(&mut self.batches) {
            let seq = self.handle.stamp(&mut b);
            self.part.tracker.register(tid, seq, start + end as u64);
            if self.part.settings.drop_when_full && self.ctx.is_blocked() {
                self.handle
                    .metrics
                    .dropped("ring_full")
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                continue; // dropping the batch acknowledges it
            }
            self.ctx.emit(source, b, spread).await;
        }
    }

    /// Recomputes a file's fingerprint (it grew past a short one, or was truncated).
    async fn refresh_key(&mut self, id: (u64, u64), size: u64) {
        let Some(t) = self.files.get_mut(&id) else {
            return;
        };
        let Some(file) = t.file.take() else { return };
        let ok = self.read_head(&file, size).await.is_ok();
        let t = self.files.get_mut(&id).expect("still tracked");
        t.file = Some(file);
        if ok {
            t.key.fp_hash = fingerprint(&self.head);
            t.key.fp_len = self.head.len() as u32;
            let head = self.head.clone().freeze();
            self.part
                .tracker
                .update(t.id, Some((t.key.clone(), head)), None);
        }
    }

    /// True when the bytes the fingerprint covers are no longer what they were (the file was
    /// truncated and rewritten past our offset before we looked).
    async fn fingerprint_changed(&mut self, id: (u64, u64), size: u64) -> bool {
        let Some(t) = self.files.get_mut(&id) else {
            return false;
        };
        if t.key.fp_len == 0 || size < t.key.fp_len as u64 {
            return size < t.key.fp_len as u64;
        }
        let Some(file) = t.file.take() else {
            return false;
        };
        let len = t.key.fp_len as usize;
        let old = t.key.fp_hash;
        self.head.clear();
        let ok = file.read_at_into(0, len, &mut self.head).await.is_ok();
        let t = self.files.get_mut(&id).expect("still tracked");
        t.file = Some(file);
        ok && self.head.len() == len && fingerprint(&self.head) != old
    }

    /// Orphans read to their end are closed after `rotate_wait`; pending multiline events
    /// past their timeout are flushed.
    async fn finish_orphans_and_timeouts(&mut self) {
        let s = self.part.settings.clone();
        let source = self.handle.index;
        let ids: Vec<(u64, u64)> = self.files.keys().copied().collect();
        for id in ids {
            let Some(t) = self.files.get_mut(&id) else {
                continue;
            };
            let quiet = t.last_data.elapsed();
            if t.framer.has_pending() && quiet >= s.multiline_timeout {
                let start = t.buf_start;
                let len_before = t.buf.len();
                let batches = &mut self.batches;
                t.framer
                    .flush_pending(&mut t.buf, source, &mut |b, end| batches.push((b, end)));
                t.buf_start = start + (len_before - t.buf.len()) as u64;
                let tid = t.id;
                self.emit_batches(tid, start).await;
            }
            let Some(t) = self.files.get_mut(&id) else {
                continue;
            };
            if !t.orphan || quiet < s.rotate_wait {
                continue;
            }
            let at_end = t
                .file
                .as_ref()
                .and_then(|f| f.stat().ok())
                .is_none_or(|(_, _, size)| t.read_pos() >= size);
            if at_end {
                // Whatever is left without a final newline is an event too.
                let start = t.buf_start;
                let len_before = t.buf.len();
                let batches = &mut self.batches;
                t.framer.frame(&mut t.buf, true, source, &mut |b, end| {
                    batches.push((b, end))
                });
                t.buf_start = start + (len_before - t.buf.len()) as u64;
                let tid = t.id;
                self.emit_batches(tid, start).await;
                let t = self.files.remove(&id).expect("tracked");
                tracing::debug!(path = %t.path.display(), "rotated or deleted file read to its end; closed");
                self.part.tracker.close(t.id);
                s.metrics.files_watched.fetch_sub(1, Ordering::Relaxed);
                if let Some(f) = t.file {
                    let _ = f.close().await;
                    s.metrics.files_open.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_dirs_of_globs() {
        assert_eq!(static_dir("/var/log/*.log"), PathBuf::from("/var/log"));
        assert_eq!(
            static_dir("/var/log/app/**/x.log"),
            PathBuf::from("/var/log/app")
        );
        assert_eq!(static_dir("/var/log/app.log"), PathBuf::from("/var/log"));
        assert_eq!(static_dir("/x*"), PathBuf::from("/"));
        assert_eq!(static_dir("rel/*.log"), PathBuf::from("rel"));
    }
}
