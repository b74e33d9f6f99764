//! The disk buffer's write-ahead log: append and group-commit throughput.
//!
//! * `shard_group_commit/<payload>`: on a real shard (io_uring), 16 tasks each `append` a
//!   batch and `await durable(ticket)` (`sync = "batch"`): one fdatasync covers whatever the
//!   others appended meanwhile. This is the disk buffer's path.
//! * `std_commit_every_64/<payload>`: the same records through the `std::fs` I/O, one commit
//!   per 64 appends (what `sync = "interval:..."` amounts to under load).
//!
//! A payload stands for one encoded sink batch (16 KiB ≈ 64 events of 250 bytes; 256 KiB ≈
//! 1,024). Throughput is payload bytes per append; records/s = 1 / time. The WAL lives in
//! `$SLUICE_WAL_BENCH_DIR` (default: a temporary directory under /tmp — put it on the disk you
//! mean to measure); segments are acknowledged and deleted as the run goes, so disk use stays
//! at a few segments.
//! Run: `cargo bench -p sluice-perf --bench wal -- --warm-up-time 1 --measurement-time 5`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_lite::future::block_on;
use sluice_engine::runtime::{spawn_local, spawn_shard, ShardSpec, ShardWalIo};
use sluice_engine::wal::{StdIo, SyncMode, Wal, WalConfig};
use std::rc::Rc;
use std::time::{Duration, Instant};

const TASKS: u64 = 16;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var("SLUICE_WAL_BENCH_DIR") {
        Ok(d) => {
            std::fs::create_dir_all(&d).expect("bench dir");
            tempfile::tempdir_in(d).expect("temp dir")
        }
        Err(_) => tempfile::tempdir().expect("temp dir"),
    }
}

fn cfg() -> WalConfig {
    WalConfig {
        segment_size: 64 << 20,
        sync: SyncMode::Batch,
    }
}

/// `iters` appends on a fresh shard, 16 concurrent writers; the time inside the shard.
fn shard_run(iters: u64, len: usize) -> Duration {
    let dir = bench_dir();
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = spawn_shard(
        ShardSpec {
            index: 0,
            core: None,
        },
        move || async move {
            let wal = Wal::open(&path, cfg()).expect("open");
            let w = Rc::new(wal.writer(ShardWalIo).await.expect("writer"));
            let cursor = Rc::new(std::cell::RefCell::new(
                wal.cursor_handle().expect("cursor"),
            ));
            let payload = Rc::new(vec![b'x'; len]);
            let t0 = Instant::now();
            let mut tasks = Vec::new();
            for t in 0..TASKS {
                let (w, payload, cursor) = (w.clone(), payload.clone(), cursor.clone());
                let n = iters / TASKS + u64::from(t < iters % TASKS);
                tasks.push(spawn_local(async move {
                    for _ in 0..n {
                        let ticket = w.append(64, &payload).await.expect("append");
                        w.durable(ticket).await.expect("durable");
                        if ticket.seq % 256 == 0 {
                            // Acknowledge as a sink would, so old segments are deleted.
                            let _ = cursor.borrow_mut().advance(ticket.seq);
                        }
                    }
                }));
            }
            for t in tasks {
                t.join().await;
            }
            let _ = tx.send((
                t0.elapsed(),
                wal.metrics
                    .commits
                    .load(std::sync::atomic::Ordering::Relaxed),
            ));
        },
    )
    .expect("shard");
    h.join().expect("shard ran");
    let (took, _commits) = rx.recv().expect("result");
    took
}

fn std_run(iters: u64, len: usize) -> Duration {
    let dir = bench_dir();
    let wal = Wal::open(dir.path(), cfg()).expect("open");
    let w = block_on(wal.writer(StdIo)).expect("writer");
    let mut cursor = wal.cursor_handle().expect("cursor");
    let payload = vec![b'x'; len];
    let t0 = Instant::now();
    for i in 0..iters {
        let t = block_on(w.append(64, &payload)).expect("append");
        if i % 64 == 63 {
            block_on(w.commit()).expect("commit");
            cursor.advance(t.seq.saturating_sub(256)).expect("ack");
        }
    }
    block_on(w.commit()).expect("commit");
    t0.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal");
    g.sample_size(10);
    for len in [16usize << 10, 256 << 10] {
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("shard_group_commit/{}KiB", len >> 10), |b| {
            b.iter_custom(|iters| shard_run(iters, len))
        });
        g.bench_function(format!("std_commit_every_64/{}KiB", len >> 10), |b| {
            b.iter_custom(|iters| std_run(iters, len))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
