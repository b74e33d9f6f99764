//! The appender with group commit, written against [`WalIo`] so the same code runs on a
//! shard (io_uring, `runtime::ShardWalIo`) and in plain tests ([`super::StdIo`]).
//!
//! `append` reserves the next sequence number and byte range synchronously, writes the record
//! (into the page cache) and returns a [`Ticket`]; other appends proceed while it waits.
//! `durable(ticket)` waits for a commit that covers it. With `sync = "batch"` the first waiter
//! that finds no sync running leads one: it fdatasyncs every segment with unsynced writes,
//! covering every record whose write completed before it started; appends that arrive while
//! it runs are covered by the next one, led by one of their waiters. With
//! `sync = "interval:..."` waiters only wait; the owner calls [`WalWriter::commit`] on a
//! timer. Everything here is single-threaded (`Rc`/`RefCell`): one writer per shard.

use super::format::{encode_record_with, record_size, MAX_PAYLOAD};
use super::index::SharedIndex;
use super::recovery::TailState;
use super::segment::{encode_segment_header, segment_file_name, SEGMENT_HEADER_LEN};
use super::{SyncMode, WalConfig, WalMetrics};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The file operations the writer needs. Implemented over io_uring on a shard
/// (`runtime::ShardWalIo`) and over `std::fs` ([`super::StdIo`]).
#[allow(async_fn_in_trait)]
pub trait WalIo {
    type File;
    /// Creates a new file for reading and writing (fails if it exists).
    async fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    async fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Writes `buf` at `pos`; returns the bytes written (may be short).
    async fn write_at(&self, file: &Self::File, buf: Vec<u8>, pos: u64) -> io::Result<usize>;
    async fn fdatasync(&self, file: &Self::File) -> io::Result<()>;
    /// Allocates `len` bytes for the file (`fallocate`, extending its size).
    async fn pre_allocate(&self, file: &Self::File, len: u64) -> io::Result<()>;
    /// Makes the directory's entries durable (after a segment was created).
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames the existing file `from` to `to` (replacing nothing) and opens it for reading
    /// and writing: a spare segment reused.
    async fn reuse(&self, from: &Path, to: &Path) -> io::Result<Self::File>;
}

/// A record's place in the WAL: durable once a commit covered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket {
    pub seq: u64,
}

/// A wake-all notification for the tasks of one thread. Take [`Notify::notified`] before
/// checking the condition it announces: a notification in between is then not missed.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves at the next `notify_all` after this call.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            generation: self.generation.get(),
        }
    }
}

pub struct Notified<'a> {
    notify: &'a Notify,
    generation: u64,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut w = self.notify.wakers.borrow_mut();
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

struct State<F> {
    seg: Option<Rc<F>>,
    seg_base: u64,
    seg_capacity: u64,
    pos: u64,
    next_seq: u64,
    /// Appends whose write is in flight: (seq, finished).
    inflight: VecDeque<(u64, bool)>,
    /// Every record below this is written (in the page cache).
    written: u64,
    /// Every record below this is durable.
    synced: u64,
    syncing: bool,
    rolling: bool,
    /// Earlier segments with writes not yet synced.
    dirty: Vec<Rc<F>>,
    failed: Option<String>,
}

/// Appends records to one WAL (one per sink and shard).
pub struct WalWriter<I: WalIo> {
    io: I,
    dir: PathBuf,
    cfg: WalConfig,
    index: SharedIndex,
    metrics: Arc<WalMetrics>,
    state: RefCell<State<I::File>>,
    notify: Notify,
    /// `written` mirrored for readers on other threads.
    written_shared: Arc<AtomicU64>,
    synced_shared: Arc<AtomicU64>,
}

fn poisoned(msg: &str) -> io::Error {
    io::Error::other(format!("WAL writer failed earlier: {msg}"))
}

impl<I: WalIo> WalWriter<I> {
    /// Opens the writer where recovery left the WAL (`tail`, `next_seq`); through
    /// [`super::Wal::writer`], which holds every part.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        io: I,
        dir: &Path,
        cfg: WalConfig,
        tail: Option<TailState>,
        next_seq: u64,
        index: SharedIndex,
        metrics: Arc<WalMetrics>,
        synced_shared: Arc<AtomicU64>,
    ) -> io::Result<WalWriter<I>> {
        synced_shared.store(next_seq, Ordering::Release);
        let (seg, seg_base, seg_capacity, pos) = match &tail {
            Some(t) => (
                Some(Rc::new(io.open(&t.path).await?)),
                t.base,
                t.capacity,
                t.end,
            ),
            None => (None, next_seq, 0, 0),
        };
        Ok(WalWriter {
            io,
            dir: dir.to_path_buf(),
            cfg,
            index,
            metrics,
            state: RefCell::new(State {
                seg,
                seg_base,
                seg_capacity,
                pos,
                next_seq,
                inflight: VecDeque::new(),
                written: next_seq,
                synced: next_seq,
                syncing: false,
                rolling: false,
                dirty: Vec::new(),
                failed: None,
            }),
            notify: Notify::default(),
            written_shared: Arc::new(AtomicU64::new(next_seq)),
            synced_shared,
        })
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.state.borrow().next_seq
    }

    /// Every record below this is durable.
    pub fn synced(&self) -> u64 {
        self.state.borrow().synced
    }

    /// Every record below this is written (readable through the page cache).
    pub fn written(&self) -> u64 {
        self.state.borrow().written
    }

    /// `written()` for other threads (a reader following the writer).
    pub fn written_handle(&self) -> Arc<AtomicU64> {
        self.written_shared.clone()
    }

    /// `synced()` for other threads.
    pub fn synced_handle(&self) -> Arc<AtomicU64> {
        self.synced_shared.clone()
    }

    /// The current segment's base and the offset the next record goes to.
    pub fn position(&self) -> (u64, u64) {
        let s = self.state.borrow();
        (s.seg_base, s.pos)
    }

    pub fn metrics(&self) -> &Arc<WalMetrics> {
        &self.metrics
    }

    fn check_failed(&self) -> io::Result<()> {
        match &self.state.borrow().failed {
            Some(m) => Err(poisoned(m)),
            None => Ok(()),
        }
    }

    fn fail(&self, e: &io::Error) {
        let mut s = self.state.borrow_mut();
        if s.failed.is_none() {
            s.failed = Some(e.to_string());
        }
        drop(s);
        self.notify.notify_all();
    }

    /// Starts the segment with base `base` and room for at least `need` record bytes: the
    /// spare segment renamed when there is one (its blocks are allocated and written, so
    /// commits into it write no metadata; its old records, all below `base`, read as the
    /// end), else a new preallocated file.
    async fn roll(&self, base: u64, need: u64) -> io::Result<Rc<I::File>> {
        let path = self.dir.join(segment_file_name(base));
        let capacity = self.cfg.segment_size.max(SEGMENT_HEADER_LEN + need);
        let spare = match self.index.lock() {
            Ok(mut ix) => ix.take_spare(),
            Err(_) => None,
        };
        let reused = match spare {
            Some(spare) => match self.io.reuse(&spare, &path).await {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(file = %spare.display(), error = %e, "cannot reuse the spare WAL segment; creating a new one");
                    let _ = std::fs::remove_file(&spare);
                    None
                }
            },
            None => None,
        };
        let file = match reused {
            Some(f) => {
                self.metrics
                    .segments_recycled
                    .fetch_add(1, Ordering::Relaxed);
                f
            }
            None => self.io.create(&path).await?,
        };
        self.io.pre_allocate(&file, capacity).await?;
        let header = encode_segment_header(base).to_vec();
        write_all(&self.io, &file, header, 0).await?;
        // The new entry must survive a crash before any record in it counts as durable.
        self.io.sync_dir(&self.dir).await?;
        let file = Rc::new(file);
        {
            let mut s = self.state.borrow_mut();
            if let Some(old) = s.seg.replace(file.clone()) {
                s.dirty.push(old);
            }
            s.seg_base = base;
            s.seg_capacity = capacity;
            s.pos = SEGMENT_HEADER_LEN;
        }
        match self.index.lock() {
            Ok(mut ix) => ix.insert(&self.dir, base),
            Err(_) => return Err(io::Error::other("WAL segment index poisoned")),
        }
        self.metrics
            .segments_created
            .fetch_add(1, Ordering::Relaxed);
        Ok(file)
    }

    /// Appends one batch (`events` events, encoded as `payload`). Returns once the record is
    /// written (not yet durable: await [`WalWriter::durable`] with the ticket).
    pub async fn append(&self, events: u32, payload: &[u8]) -> io::Result<Ticket> {
        self.append_with(events, payload.len(), |o| o.extend_from_slice(payload))
            .await
    }

    /// As [`WalWriter::append`], with the payload (exactly `payload_len` bytes) appended by
    /// `fill` straight into the record's buffer.
    pub async fn append_with(
        &self,
        events: u32,
        payload_len: usize,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<Ticket> {
        let mut fill = Some(fill);
        let seq = self
            .append_batch(&[(events, payload_len)], |_, o| {
                if let Some(f) = fill.take() {
                    f(o)
                }
            })
            .await?;
        Ok(Ticket { seq })
    }

    /// Appends consecutive records with one write: record `i` holds `records[i].0` events
    /// and a payload of exactly `records[i].1` bytes, which `fill(i, buf)` appends in place.
    /// Returns the first record's sequence number (the others follow it by one each); all
    /// are written, or none counts (an error poisons the writer).
    pub async fn append_batch(
        &self,
        records: &[(u32, usize)],
        mut fill: impl FnMut(usize, &mut Vec<u8>),
    ) -> io::Result<u64> {
        if let Some(&(_, big)) = records.iter().find(|r| r.1 > MAX_PAYLOAD) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WAL record of {big} bytes is over the limit of {MAX_PAYLOAD}"),
            ));
        }
        let count = records.len() as u64;
        if count == 0 {
            return Ok(self.next_seq());
        }
        let size: u64 = records.iter().map(|r| record_size(r.1) as u64).sum();
        // Reserve the sequence numbers and a byte range (waiting out a roll in progress).
        enum Step<F> {
            Wait,
            Grow(Rc<F>),
            Roll(u64),
            Go(u64, u64, Rc<F>),
        }
        let (seq, offset, file) = loop {
            self.check_failed()?;
            let step = {
                let mut s = self.state.borrow_mut();
                match &s.seg {
                    _ if s.rolling => Step::Wait,
                    Some(f) if s.pos + size <= s.seg_capacity => {
                        let f = f.clone();
                        let seq = s.next_seq;
                        s.next_seq += count;
                        let offset = s.pos;
                        s.pos += size;
                        for q in seq..seq + count {
                            s.inflight.push_back((q, false));
                        }
                        Step::Go(seq, offset, f)
                    }
                    // The segment holds no record yet (its base is this record's sequence):
                    // make it larger instead of creating a second file of the same name.
                    Some(f) if s.pos == SEGMENT_HEADER_LEN => {
                        let f = f.clone();
                        s.rolling = true;
                        Step::Grow(f)
                    }
                    _ => {
                        s.rolling = true;
                        Step::Roll(s.next_seq)
                    }
                }
            };
            let r = match step {
                Step::Go(seq, offset, f) => break (seq, offset, f),
                Step::Wait => {
                    self.notify.notified().await;
                    continue;
                }
                Step::Grow(f) => {
                    let capacity = SEGMENT_HEADER_LEN + size;
                    let r = self.io.pre_allocate(&f, capacity).await;
                    if r.is_ok() {
                        self.state.borrow_mut().seg_capacity = capacity;
                    }
                    r
                }
                Step::Roll(base) => self.roll(base, size).await.map(|_| ()),
            };
            self.state.borrow_mut().rolling = false;
            self.notify.notify_all();
            if let Err(e) = r {
                self.fail(&e);
                return Err(e);
            }
        };
        let mut buf = Vec::with_capacity(size as usize);
        for (i, &(events, len)) in records.iter().enumerate() {
            encode_record_with(seq + i as u64, events, len, &mut buf, |o| fill(i, o));
        }
        if let Err(e) = write_all(&self.io, &file, buf, offset).await {
            self.fail(&e);
            return Err(e);
        }
        {
            let mut s = self.state.borrow_mut();
            if let Some(front) = s.inflight.front().map(|x| x.0) {
                for q in seq..seq + count {
                    if let Some(slot) = s.inflight.get_mut((q - front) as usize) {
                        slot.1 = true;
                    }
                }
            }
            while let Some(&(q, true)) = s.inflight.front() {
                s.inflight.pop_front();
                s.written = q + 1;
            }
            self.written_shared.store(s.written, Ordering::Release);
        }
        self.metrics
            .records_appended
            .fetch_add(count, Ordering::Relaxed);
        self.metrics
            .bytes_appended
            .fetch_add(size, Ordering::Relaxed);
        self.notify.notify_all();
        Ok(seq)
    }

    /// Waits until the record of `ticket` is durable.
    pub async fn durable(&self, ticket: Ticket) -> io::Result<()> {
        loop {
            self.check_failed()?;
            let (synced, written, syncing) = {
                let s = self.state.borrow();
                (s.synced, s.written, s.syncing)
            };
            if synced > ticket.seq {
                return Ok(());
            }
            let lead = self.cfg.sync == SyncMode::Batch && !syncing && written > ticket.seq;
            if lead {
                self.sync_once().await?;
            } else {
                self.notified_wait().await;
            }
        }
    }

    async fn notified_wait(&self) {
        self.notify.notified().await
    }

    /// Makes every record written so far durable (the interval timer calls this; so may an
    /// owner before shutting down).
    pub async fn commit(&self) -> io::Result<()> {
        loop {
            self.check_failed()?;
            if self.state.borrow().syncing {
                self.notified_wait().await;
                continue;
            }
            return self.sync_once().await;
        }
    }

    /// One fdatasync round over every segment with unsynced writes. Caller checked that no
    /// other round runs.
    async fn sync_once(&self) -> io::Result<()> {
        let (target, files) = {
            let mut s = self.state.borrow_mut();
            if s.synced >= s.written && s.dirty.is_empty() {
                return Ok(());
            }
            s.syncing = true;
            let mut files = std::mem::take(&mut s.dirty);
            if let Some(f) = &s.seg {
                files.push(f.clone());
            }
            (s.written, files)
        };
        let t0 = Instant::now();
        let mut result = Ok(());
        for f in &files {
            if let Err(e) = self.io.fdatasync(f).await {
                result = Err(e);
                break;
            }
            self.metrics.fdatasyncs.fetch_add(1, Ordering::Relaxed);
        }
        drop(files);
        {
            let mut s = self.state.borrow_mut();
            s.syncing = false;
            if result.is_ok() && target > s.synced {
                s.synced = target;
                self.synced_shared.store(target, Ordering::Release);
            }
        }
        self.metrics.commits.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .sync_micros
            .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        if let Err(e) = &result {
            self.fail(e);
        }
        self.notify.notify_all();
        result
    }
}

/// Writes the whole buffer. A short write into preallocated space means the device failed
/// (the buffer went to the kernel, so it cannot be retried from here): an error.
async fn write_all<I: WalIo>(io: &I, file: &I::File, buf: Vec<u8>, pos: u64) -> io::Result<()> {
    let len = buf.len();
    let n = io.write_at(file, buf, pos).await?;
    if n < len {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("WAL short write: {n} of {len} bytes at offset {pos}"),
        ));
    }
    Ok(())
}
