//! A sink's disk buffer (`buffer = { type = "disk", ... }`): the write-ahead log of
//! `sluice_engine::wal` between the shards' encoders and the sink's writer thread.
//!
//! Shard side ([`DiskStub`]): the batch is encoded as for a memory buffer, queued to the
//! shard's WAL task, whose appender writes what queued up with one write (a record per
//! chunk) while its committer commits (one fdatasync for everything appended while the
//! previous one ran), then drops each batch's acknowledgement (the source is told only once
//! the record is durable) and offers the chunk, tagged with its sequence number, to the
//! writer ring. A chunk that finds the ring full is not pushed: it is on disk.
//! Writer side: [`RecordSource`] yields each shard's records strictly in sequence, from the
//! ring when they came through it; what the ring skipped (and, at start, everything not
//! acknowledged before) is read back from the WAL. [`build`] (console, file) delivers them
//! through a synchronous [`ChunkWriter`], writes a record again (with backoff) after a write
//! error rather than dropping it, and advances the cursor over what was written; the
//! `http` sink takes them into its own asynchronous writer and advances the cursor over the
//! prefix of completed records ([`crate::sinks::http::disk`]).
//! Payload: the chunk's groups as `u32 key length | key | u32 bytes length | bytes`, repeated.

use super::writer::{Chunk, ChunkWriter, Encoder};
use sluice_engine::batch::Batch;
use sluice_engine::metrics::{ComponentMetrics, Registry};
use sluice_engine::pipeline::ShardSink;
use sluice_engine::ring::{self, Doorbell, RingRx, RingTx, WhenFull};
use sluice_engine::runtime::{self, ShardWalIo};
use sluice_engine::wal::{
    index::SharedIndex, DiskBufferConfig, SyncMode, Wal, WalCursor, WalMetrics, WalReader,
};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// Chunks a shard may queue for its WAL task before `when_full` applies.
const QUEUE: usize = 8;
/// Chunks a WAL task holds appended but not yet durable (a commit covers what was appended
/// while the previous one ran); with the queue, what a shard's disk buffer holds in memory
/// on the way in is at most this many encoded batches plus `QUEUE`.
const MAX_PENDING_CHUNKS: usize = 16;
/// Durable chunks waiting for the writer thread in memory, per shard; what does not fit is
/// read back from the WAL instead (only the page cache holds it then).
const WRITER_RING: usize = 16;
/// A console or file sink's writer moves a shard's cursor after this many records (and when
/// it has taken all that was ready).
const CURSOR_EVERY: usize = 8;
/// Chunks queued while a commit runs that are written without waiting for its end.
const COALESCE_CHUNKS: usize = QUEUE / 2;
/// A WAL task writes what queued up meanwhile with one write, up to about this many bytes.
const WRITE_BYTES: usize = 1 << 20;

/// Bytes [`frame`] writes for `groups`.
pub fn framed_len(groups: &[(String, Vec<u8>)]) -> usize {
    groups.iter().map(|(k, b)| 8 + k.len() + b.len()).sum()
}

/// Appends a chunk's groups to `out` as one record payload ([`framed_len`] bytes).
pub fn frame_into(groups: &[(String, Vec<u8>)], out: &mut Vec<u8>) {
    for (k, b) in groups {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
}

/// Writes a chunk's groups as one record payload (replacing what `out` held).
pub fn frame(groups: &[(String, Vec<u8>)], out: &mut Vec<u8>) {
    out.clear();
    frame_into(groups, out);
}

/// Reads the groups back; `None` if the payload is not a valid framing.
pub fn unframe(mut p: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut groups = Vec::new();
    let take = |p: &mut &[u8]| -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(p.get(..4)?.try_into().ok()?) as usize;
        let v = p.get(4..4 + n)?.to_vec();
        *p = &p[4 + n..];
        Some(v)
    };
    while !p.is_empty() {
        let k = String::from_utf8(take(&mut p)?).ok()?;
        let b = take(&mut p)?;
        groups.push((k, b));
    }
    Some(groups)
}

type WakerSlot = Arc<Mutex<Option<Waker>>>;

/// What the WAL task starts with: the WAL, the queue's consumer end, the writer ring's
/// producer end, and the `handed` mark it advances.
type TaskStart = (Wal, RingRx<Chunk>, RingTx<Chunk>, Arc<AtomicU64>);

fn wake(slot: &WakerSlot) {
    if let Ok(mut w) = slot.lock() {
        if let Some(w) = w.take() {
            w.wake();
        }
    }
}

/// The shard side of a disk-buffered sink.
pub struct DiskStub {
    enc: Encoder,
    cfg: DiskBufferConfig,
    dropped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    index: SharedIndex,
    queue: RingTx<Chunk>,
    /// Taken by the first `consume` (on the shard) to start the WAL task.
    start: Option<TaskStart>,
    waker: WakerSlot,
    /// Set when the stub goes (the shard stopped): the writer thread stops waiting for it.
    gone: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for DiskStub {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::Release);
        wake(&self.waker);
    }
}

impl DiskStub {
    fn full(&self) -> bool {
        self.queue.is_full()
            || Wal::disk_bytes(&self.index, self.cfg.segment_size) >= self.cfg.max_size
    }
}

impl ShardSink for DiskStub {
    fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
        if let Some((wal, q, tx, handed)) = self.start.take() {
            let waker = self.waker.clone();
            let failed = self.failed.clone();
            let sync = self.cfg.sync;
            // Detached: it ends when this stub (the queue's producer) is gone and it drained.
            runtime::spawn_local(wal_task(wal, q, tx, handed, waker, failed, sync)).detach();
        }
        if self.full() {
            return match self.cfg.when_full {
                // The config loader rejects `sample` for disk buffers.
                WhenFull::Block | WhenFull::Sample { .. } => Err(batch),
                WhenFull::DropNewest => {
                    self.dropped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    Ok(())
                }
            };
        }
        let chunk = self.enc.chunk(&batch);
        match self.queue.try_push(chunk) {
            Ok(()) => {
                wake(&self.waker);
                Ok(())
            }
            Err(_) => Err(batch),
        }
    }
}

async fn next_chunk(q: &mut RingRx<Chunk>, slot: &WakerSlot) -> Option<Chunk> {
    std::future::poll_fn(|cx| {
        if let Some(c) = q.pop() {
            return Poll::Ready(Some(c));
        }
        if q.is_closed() {
            return Poll::Ready(None);
        }
        if let Ok(mut w) = slot.lock() {
            *w = Some(cx.waker().clone());
        }
        // Re-check after publishing the waker (the stub pushes, then wakes).
        match q.pop() {
            Some(c) => Poll::Ready(Some(c)),
            None => Poll::Pending,
        }
    })
    .await
}

/// What a shard's WAL task shares between its appender and its committer.
struct Pipeline {
    /// Appended chunks, in sequence, not yet handed on (durable or not).
    pending: std::cell::RefCell<std::collections::VecDeque<Chunk>>,
    /// The appender saw the queue close: commit what is left and stop.
    closing: std::cell::Cell<bool>,
    /// A commit runs (what is written now waits for the next one anyway).
    committing: std::cell::Cell<bool>,
    /// Rung by the appender after an append (and at close), by the committer after a hand-on.
    notify: sluice_engine::wal::Notify,
}

/// The shard's WAL task: an appender writes each queued chunk to the WAL while a committer
/// makes what was appended durable (one fdatasync for everything appended while the previous
/// one ran), then releases each chunk's source acknowledgement and offers it to the writer
/// ring. Appends go on while a commit runs, up to [`MAX_PENDING_CHUNKS`] chunks not yet
/// handed on.
async fn wal_task(
    wal: Wal,
    mut q: RingRx<Chunk>,
    tx: RingTx<Chunk>,
    handed: Arc<AtomicU64>,
    waker: WakerSlot,
    failed: Arc<AtomicU64>,
    sync: SyncMode,
) {
    let w = match wal.writer(ShardWalIo).await {
        Ok(w) => std::rc::Rc::new(w),
        Err(e) => {
            tracing::error!(dir = %wal.dir.display(), error = %e, "cannot start the disk buffer's writer; batches fail");
            while let Some(c) = next_chunk(&mut q, &waker).await {
                fail_chunk(&c, &failed);
            }
            return;
        }
    };
    let shared = std::rc::Rc::new(Pipeline {
        pending: Default::default(),
        closing: Default::default(),
        committing: Default::default(),
        notify: Default::default(),
    });
    let committer = runtime::spawn_local(commit_loop(
        w.clone(),
        shared.clone(),
        tx,
        handed,
        failed.clone(),
        sync,
        wal.dir.clone(),
    ));
    let mut batch: Vec<Chunk> = Vec::new();
    let mut sizes: Vec<(u32, usize)> = Vec::new();
    while let Some(first) = next_chunk(&mut q, &waker).await {
        loop {
            let room = shared.notify.notified();
            if shared.pending.borrow().len() < MAX_PENDING_CHUNKS {
                break;
            }
            room.await;
        }
        // While a commit runs, what arrives can wait for the write just after it (the next
        // commit covers only what was written before it starts): one write per commit rather
        // than one per chunk, unless enough queues up to write it early.
        loop {
            let settled = |q: &RingRx<Chunk>| {
                !shared.committing.get() || q.len() + 1 >= COALESCE_CHUNKS || q.is_closed()
            };
            if settled(&q) {
                break;
            }
            let mut commit_end = std::pin::pin!(shared.notify.notified());
            std::future::poll_fn(|cx| {
                if commit_end.as_mut().poll(cx).is_ready() || settled(&q) {
                    return Poll::Ready(());
                }
                if let Ok(mut w) = waker.lock() {
                    *w = Some(cx.waker().clone());
                }
                // Re-check after publishing the waker (the stub pushes, then wakes).
                if settled(&q) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        // What queued up meanwhile goes into the same write (one I/O for several records).
        let room = MAX_PENDING_CHUNKS - shared.pending.borrow().len();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(c) = next.take() {
            let len = framed_len(&c.groups);
            bytes += len;
            sizes.push((c.events.min(u32::MAX as u64) as u32, len));
            batch.push(c);
            if batch.len() < room && bytes < WRITE_BYTES {
                next = q.pop();
            }
        }
        let r = w
            .append_batch(&sizes, |i, o| frame_into(&batch[i].groups, o))
            .await;
        sizes.clear();
        match r {
            Ok(first_seq) => {
                let mut p = shared.pending.borrow_mut();
                for (i, mut c) in batch.drain(..).enumerate() {
                    c.wal_seq = Some(first_seq + i as u64);
                    p.push_back(c);
                }
                drop(p);
                shared.notify.notify_all();
            }
            Err(e) => {
                tracing::error!(dir = %wal.dir.display(), error = %e, "disk buffer append failed");
                for c in batch.drain(..) {
                    fail_chunk(&c, &failed);
                }
            }
        }
    }
    shared.closing.set(true);
    shared.notify.notify_all();
    committer.join().await;
}

fn fail_chunk(c: &Chunk, failed: &AtomicU64) {
    failed.fetch_add(c.events, Ordering::Relaxed);
    if let Some(a) = &c.ack {
        a.fail();
    }
}

/// The committer half of [`wal_task`]: commits while chunks wait, hands on the durable ones.
async fn commit_loop(
    w: std::rc::Rc<sluice_engine::wal::WalWriter<ShardWalIo>>,
    shared: std::rc::Rc<Pipeline>,
    mut tx: RingTx<Chunk>,
    handed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    sync: SyncMode,
    dir: std::path::PathBuf,
) {
    let mut last_commit = Instant::now();
    loop {
        let more = shared.notify.notified();
        if shared.pending.borrow().is_empty() {
            if shared.closing.get() {
                break;
            }
            more.await;
            continue;
        }
        if let SyncMode::Interval(d) = sync {
            let due = last_commit + d;
            let now = Instant::now();
            if due > now {
                runtime::sleep(due - now).await;
            }
        }
        shared.committing.set(true);
        let r = w.commit().await;
        shared.committing.set(false);
        last_commit = Instant::now();
        let synced = w.synced();
        let mut end = None;
        loop {
            let Some(c) = shared.pending.borrow_mut().pop_front() else {
                break;
            };
            let seq = c.wal_seq.unwrap_or(0);
            match &r {
                Ok(()) if seq < synced => {
                    let mut c = c;
                    // Durable: the source may move on.
                    drop(c.ack.take());
                    end = Some(seq + 1);
                    // A full ring leaves it to the writer thread to read it from disk.
                    let _ = tx.try_push(c);
                }
                Ok(()) => {
                    // Appended after the commit started: the next one covers it.
                    shared.pending.borrow_mut().push_front(c);
                    break;
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "disk buffer sync failed");
                    fail_chunk(&c, &failed);
                }
            }
        }
        if let Some(end) = end {
            // Every record below `end` is durable and was pushed or left for the disk path.
            handed.store(end, Ordering::Release);
        }
        shared.notify.notify_all();
    }
    let _ = w.commit().await;
}

/// What the record source keeps per shard.
struct ShardFeed {
    rx: RingRx<Chunk>,
    /// Every record below this was yielded (or skipped as unreadable).
    next: u64,
    /// Records below this are durable and were either pushed to `rx` or left on disk.
    handed: Arc<AtomicU64>,
    gone: Arc<std::sync::atomic::AtomicBool>,
    reader: WalReader,
    cursor: WalCursor,
}

/// A rendered WAL series: name suffix, type, help, value.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&WalMetrics) -> u64,
);

/// Renders each shard's WAL counters at scrape time: `sluice_disk_buffer_*{component,shard}`
/// (what recovery found: torn tails cut and the bytes they dropped, damaged segments
/// skipped, records lost to damage, bytes read at open; and appends, commits, reads).
fn register(registry: &Registry, id: &str, wals: Vec<(Arc<WalMetrics>, u64)>) {
    let id = id.replace('\\', "\\\\").replace('"', "\\\"");
    registry.collector(Box::new(move |out: &mut String| {
        use std::fmt::Write;
        let series: [Series; 9] = [
            ("torn_tails_total", "counter", "Torn writes cut off at a WAL tail by recovery.", |m| m.torn_tails.load(Ordering::Relaxed)),
            ("corrupt_skips_total", "counter", "Damaged WAL segments or segment headers skipped.", |m| m.corrupt_skips.load(Ordering::Relaxed)),
            ("records_lost_total", "counter", "WAL records that could not be read back because of damage.", |m| m.records_lost.load(Ordering::Relaxed)),
            ("recovery_bytes_read_total", "counter", "Bytes read from the WAL by recovery at open.", |m| m.recovery_bytes_read.load(Ordering::Relaxed)),
            ("records_appended_total", "counter", "Records appended to the WAL.", |m| m.records_appended.load(Ordering::Relaxed)),
            ("commits_total", "counter", "WAL group commits.", |m| m.commits.load(Ordering::Relaxed)),
            ("records_read_total", "counter", "WAL records read back (replay and ring gaps).", |m| m.records_read.load(Ordering::Relaxed)),
            ("segments_deleted_total", "counter", "WAL segments retired once acknowledged (deleted, or kept as the spare).", |m| m.segments_deleted.load(Ordering::Relaxed)),
            ("segments_recycled_total", "counter", "WAL segments started by reusing an acknowledged one.", |m| m.segments_recycled.load(Ordering::Relaxed)),
        ];
        for (name, kind, help, get) in series {
            let _ = writeln!(out, "# HELP sluice_disk_buffer_{name} {help}\n# TYPE sluice_disk_buffer_{name} {kind}");
            for (shard, (m, _)) in wals.iter().enumerate() {
                let _ = writeln!(out, "sluice_disk_buffer_{name}{{component=\"{id}\",shard=\"{shard}\"}} {}", get(m));
            }
        }
        let _ = writeln!(out, "# HELP sluice_disk_buffer_recovery_dropped_bytes Bytes after a torn write that recovery cut off at open.\n# TYPE sluice_disk_buffer_recovery_dropped_bytes gauge");
        for (shard, (_, cut)) in wals.iter().enumerate() {
            let _ = writeln!(out, "sluice_disk_buffer_recovery_dropped_bytes{{component=\"{id}\",shard=\"{shard}\"}} {cut}");
        }
    }));
}

/// The writer side's in-sequence reader of a disk buffer: per shard, yields the records
/// `(seq, chunk)` strictly in order, from the ring when the chunk came through it, from the
/// WAL for what the ring skipped (it was full) and, at start, for everything not acknowledged
/// before (the replay comes before new data). The caller acknowledges with
/// [`RecordSource::advance`] (every record below a sequence number is delivered).
pub struct RecordSource {
    feeds: Vec<ShardFeed>,
    payload: Vec<u8>,
    metrics: Arc<ComponentMetrics>,
}

impl RecordSource {
    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.feeds.len()
    }

    /// Every record of shard `i` below this was yielded or skipped.
    pub fn position(&self, i: usize) -> u64 {
        self.feeds.get(i).map_or(0, |f| f.next)
    }

    /// Acknowledges every record of shard `i` below `seq`: the cursor moves (and whole
    /// segments below it are deleted).
    pub fn advance(&mut self, i: usize, seq: u64) {
        let Some(f) = self.feeds.get_mut(i) else {
            return;
        };
        if seq > f.cursor.acked() {
            if let Err(e) = f.cursor.advance(seq) {
                tracing::error!(component = %self.metrics.id, error = %e, "cannot persist the disk buffer cursor");
            }
        }
    }

    /// Whether a record may be ready on some shard (in memory, or durable on disk).
    pub fn ready(&self) -> bool {
        self.feeds
            .iter()
            .any(|f| !f.rx.is_empty() || f.handed.load(Ordering::Acquire) > f.next)
    }

    /// Every shard has stopped (its stub, or the WAL task holding the ring, is gone);
    /// records may still be waiting on disk or in the rings.
    pub fn shards_gone(&self) -> bool {
        self.feeds
            .iter()
            .all(|f| f.rx.is_closed() || f.gone.load(Ordering::Acquire))
    }

    /// A record waits in some shard's ring.
    pub fn ring_ready(&self) -> bool {
        self.feeds.iter().any(|f| !f.rx.is_empty())
    }

    /// Every shard has stopped (its stub, or the WAL task holding the ring, is gone) and
    /// everything handed over was yielded: nothing more can come. A batch still in a WAL
    /// task was not acknowledged; it replays at next start.
    pub fn finished(&self) -> bool {
        self.feeds.iter().all(|f| {
            (f.rx.is_closed() || f.gone.load(Ordering::Acquire))
                && f.rx.is_empty()
                && f.handed.load(Ordering::Acquire) <= f.next
        })
    }

    fn from_disk(payload: &[u8], seq: u64, events: u32) -> Chunk {
        Chunk {
            groups: unframe(payload).unwrap_or_default(),
            events: events as u64,
            created: Instant::now(),
            ack: None,
            wal_seq: Some(seq),
        }
    }

    /// The next record of shard `i` in sequence, if one is ready now (its `wal_seq` is set;
    /// its source acknowledgement was already given when it became durable).
    pub fn next(&mut self, i: usize) -> Option<Chunk> {
        let f = self.feeds.get_mut(i)?;
        loop {
            // From disk: whatever is durable but did not come (or has not come yet) through
            // the ring, in order — at start, the replay. Every record below the ring's head
            // is durable (a chunk is pushed after its commit), even before `handed` says so.
            let head = f.rx.peek().and_then(|c| c.wal_seq);
            let limit = head.unwrap_or_else(|| f.handed.load(Ordering::Acquire));
            if f.next < limit {
                match f.reader.next_into(limit, &mut self.payload) {
                    Ok(Some((seq, events))) => {
                        f.next = seq + 1;
                        return Some(Self::from_disk(&self.payload, seq, events));
                    }
                    Ok(None) => {
                        // Not readable (damage, reported by the reader): go on after it.
                        f.next = limit;
                        f.reader.seek(limit);
                    }
                    Err(e) => {
                        tracing::error!(component = %self.metrics.id, error = %e, "disk buffer read failed");
                        // Without a ring head: try again later.
                        head?;
                        // The records before the ring's head cannot be read: skip them.
                        f.next = limit;
                        f.reader.seek(limit);
                    }
                }
            }
            let c = f.rx.pop()?;
            match c.wal_seq {
                // Already yielded from disk.
                Some(s) if s < f.next => continue,
                Some(s) => {
                    f.next = s + 1;
                    // Keep the reader in step with records taken from memory.
                    f.reader.seek(f.next);
                }
                None => {}
            }
            return Some(c);
        }
    }
}

/// Builds the shard stubs of a disk-buffered sink (opening, that is recovering, each shard's
/// WAL under `dir/shard-<n>`) and the [`RecordSource`] its writer reads; the stubs' rings
/// ring `bell`; registers the WALs' counters with `registry`.
#[allow(clippy::too_many_arguments)]
pub fn build_source(
    shards: usize,
    dir: &std::path::Path,
    cfg: DiskBufferConfig,
    encoding: sluice_engine::encode::Encoding,
    template: Option<super::super::template::Template>,
    metrics: Arc<ComponentMetrics>,
    registry: &Registry,
    bell: &Arc<Doorbell>,
) -> std::io::Result<(Vec<Box<dyn ShardSink>>, RecordSource)> {
    let mut parts: Vec<Box<dyn ShardSink>> = Vec::new();
    let mut feeds = Vec::new();
    let wal_cfg = sluice_engine::wal::WalConfig {
        segment_size: cfg.segment_size,
        sync: cfg.sync,
    };
    let mut wal_metrics = Vec::new();
    for shard in 0..shards {
        let wal = Wal::open(&dir.join(format!("shard-{shard}")), wal_cfg)?;
        let rep = &wal.report;
        if rep.torn.is_some() || !rep.bad_segments.is_empty() {
            tracing::warn!(component = %metrics.id, shard, report = ?rep, "disk buffer recovered with damage");
        }
        let cut = rep.torn.as_ref().map_or(0, |t| t.3);
        wal_metrics.push((wal.metrics.clone(), cut));
        tracing::info!(component = %metrics.id, shard, unacknowledged = wal.next_seq() - wal.cursor().min(wal.next_seq()), "disk buffer opened");
        let (qtx, qrx) = ring::ring(
            QUEUE,
            WhenFull::Block,
            Doorbell::new(),
            metrics.dropped("buffer_full"),
        );
        let (tx, rx) = ring::ring(
            WRITER_RING,
            WhenFull::Block,
            bell.clone(),
            metrics.dropped("buffer_full"),
        );
        let handed = Arc::new(AtomicU64::new(wal.next_seq()));
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        feeds.push(ShardFeed {
            rx,
            next: wal.cursor(),
            handed: handed.clone(),
            gone: gone.clone(),
            reader: wal.reader(wal.cursor()),
            cursor: wal.cursor_handle()?,
        });
        parts.push(Box::new(DiskStub {
            enc: Encoder::new(encoding, template.clone()),
            cfg,
            dropped: metrics.dropped("buffer_full"),
            failed: metrics.dropped("write_error"),
            index: wal.index.clone(),
            queue: qtx,
            start: Some((wal, qrx, tx, handed)),
            waker: Arc::new(Mutex::new(None)),
            gone,
        }));
    }
    register(registry, &metrics.id, wal_metrics);
    let source = RecordSource {
        feeds,
        payload: Vec::new(),
        metrics,
    };
    Ok((parts, source))
}

/// `# HELP` of `sluice_sink_retries_total` (the http sink registers the same series).
pub const RETRIES_HELP: &str =
    "Deliveries (requests or writes) a sink tried again after a retryable failure.";
/// The first wait before a failed write of a disk-buffered record is tried again; it doubles
/// up to [`WRITE_RETRY_MAX`].
const WRITE_RETRY_INITIAL: Duration = Duration::from_millis(100);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Writes a record taken from a disk buffer, trying again after a failure (a full disk, an
/// I/O error): the source was acknowledged when the record became durable, so the record is
/// not dropped but written again with backoff (each retry counted) until it succeeds. False
/// when the shards stopped while it still failed (the caller leaves it in the WAL).
fn write_until_done(
    writer: &mut dyn ChunkWriter,
    chunk: &Chunk,
    source: &RecordSource,
    metrics: &ComponentMetrics,
    retries: &AtomicU64,
) -> bool {
    let mut wait = WRITE_RETRY_INITIAL;
    loop {
        let Err(e) = writer.write(chunk) else {
            return true;
        };
        if source.shards_gone() {
            tracing::error!(component = %metrics.id, error = %e, "write failed while stopping; the batch stays in the disk buffer for the next start");
            return false;
        }
        tracing::warn!(component = %metrics.id, error = %e, retry_in = ?wait, "write failed; the batch stays in the disk buffer and is written again");
        retries.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + wait;
        while Instant::now() < until && !source.shards_gone() {
            std::thread::sleep(Duration::from_millis(20));
        }
        wait = (wait * 2).min(WRITE_RETRY_MAX);
    }
}

/// Builds the shard stubs of a disk-buffered sink and the body of its writer thread, which
/// delivers each shard's records in sequence through a synchronous [`ChunkWriter`] (a failed
/// write is tried again: `write_until_done`) and advances the shard's cursor every
/// `CURSOR_EVERY` records and when idle; registers the WALs' counters (recovery damage
/// among them) with `registry`.
#[allow(clippy::too_many_arguments)]
pub fn build(
    shards: usize,
    dir: &std::path::Path,
    cfg: DiskBufferConfig,
    encoding: sluice_engine::encode::Encoding,
    template: Option<super::super::template::Template>,
    metrics: Arc<ComponentMetrics>,
    registry: &Registry,
    mut writer: Box<dyn ChunkWriter>,
) -> std::io::Result<(Vec<Box<dyn ShardSink>>, super::writer::WriterThread)> {
    let bell = Doorbell::new();
    let (parts, mut source) = build_source(
        shards,
        dir,
        cfg,
        encoding,
        template,
        metrics.clone(),
        registry,
        &bell,
    )?;
    let retries = registry.counter(
        "sluice_sink_retries_total",
        RETRIES_HELP,
        &[("component", metrics.id.as_str())],
    );
    let thread = Box::new(move || {
        'run: loop {
            let mut did = false;
            for i in 0..source.shards() {
                let mut taken = 0;
                while let Some(chunk) = source.next(i) {
                    did = true;
                    if !write_until_done(&mut *writer, &chunk, &source, &metrics, &retries) {
                        // Stopping with the destination failing: the record stays in the WAL
                        // (the cursor stays before it) and goes first at the next start.
                        if let Some(seq) = chunk.wal_seq {
                            source.advance(i, seq);
                        }
                        break 'run;
                    }
                    if let Some(l) = &metrics.latency {
                        l.record(chunk.created.elapsed());
                    }
                    taken += 1;
                    // The cursor moves once per few records (one small write each time): a
                    // crash repeats at most that many.
                    if taken % CURSOR_EVERY == 0 {
                        let upto = source.position(i);
                        source.advance(i, upto);
                    }
                }
                if taken % CURSOR_EVERY != 0 {
                    let upto = source.position(i);
                    source.advance(i, upto);
                }
            }
            if !did {
                writer.flush();
                if source.finished() {
                    break;
                }
                bell.wait(Duration::from_millis(50), || source.ready());
            }
        }
        writer.flush();
    });
    Ok((parts, thread))
}
