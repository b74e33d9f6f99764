//! One shard: the loop that feeds its [`Pipeline`] from the rings of connector threads and
//! other shards, runs its part of every shard-owned source as a local task, and sleeps when
//! there is nothing to do.
//!
//! A shard-owned source (files, the generator) hands batches to [`ShardCtx::emit`]. With
//! `spread`, batches are dealt round robin over all shards through the shard-to-shard ring
//! mesh, so one busy file keeps every core parsing; a peer whose ring is full is skipped and
//! the batch is processed here, so a slow shard never stalls the reader.

use crate::batch::Batch;
use crate::pipeline::Pipeline;
use crate::ring::{Doorbell, RingRx, RingTx};
use crate::runtime;
use crate::shutdown::Lifecycle;
use crate::source::Envelope;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// A future that runs on one shard.
pub type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// The part of a source that runs on a shard.
pub trait ShardSource: Send {
    /// Runs until the input ends or the process drains.
    fn run(self: Box<Self>, ctx: ShardCtx) -> LocalFuture;
}

struct ShardInner {
    index: usize,
    shards: usize,
    pipeline: RefCell<Pipeline>,
    peers: RefCell<Vec<RingTx<Envelope>>>,
    next: Cell<usize>,
    lifecycle: Arc<Lifecycle>,
}

/// A handle to the current shard for its local tasks.
#[derive(Clone)]
pub struct ShardCtx {
    inner: Rc<ShardInner>,
}

impl ShardCtx {
    pub fn index(&self) -> usize {
        self.inner.index
    }

    pub fn shards(&self) -> usize {
        self.inner.shards
    }

    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.inner.lifecycle
    }

    /// True while a sink holds back a batch.
    pub fn is_blocked(&self) -> bool {
        self.inner.pipeline.borrow().is_blocked()
    }

    /// Waits while a sink holds back a batch (backpressure).
    pub async fn wait_unblocked(&self) {
        let mut backoff = 0;
        loop {
            let clear = {
                let mut p = self.inner.pipeline.borrow_mut();
                !p.is_blocked() || p.retry_pending()
            };
            if clear || self.inner.lifecycle.is_stopped() {
                return;
            }
            runtime::sleep(idle_backoff(backoff)).await;
            backoff += 1;
        }
    }

    /// Runs a stamped batch from `source` through the pipeline (here, or on the next shard
    /// when `spread`).
    pub async fn emit(&self, source: u16, batch: Batch, spread: bool) {
        self.wait_unblocked().await;
        let mut batch = Some(batch);
        if spread {
            let mut peers = self.inner.peers.borrow_mut();
            let slots = peers.len() + 1;
            let k = self.inner.next.get() % slots;
            self.inner.next.set(self.inner.next.get().wrapping_add(1));
            if k < peers.len() {
                let env = Envelope {
                    source,
                    batch: batch.take().expect("batch"),
                };
                if let Err(back) = peers[k].try_push(env) {
                    batch = Some(back.batch);
                }
            }
        }
        if let Some(b) = batch {
            self.inner.pipeline.borrow_mut().push(source, b);
        }
        runtime::yield_if_needed().await;
    }
}

/// Everything a shard needs to start.
pub struct ShardSetup {
    pub index: usize,
    pub shards: usize,
    pub pipeline: Pipeline,
    /// Rings from connector threads and other shards into this shard.
    pub inbound: Vec<RingRx<Envelope>>,
    /// Rings from this shard to each other shard (for spreading).
    pub peers: Vec<RingTx<Envelope>>,
    /// Rings from the other shards' keyed exchanges into this shard (drained even while
    /// this shard's own exchange rings are full, so shards never wait on each other).
    pub exchange_inbound: Vec<RingRx<Envelope>>,
    /// Rings from sinks' dead-letter outputs (their writer threads) into this shard. Drained
    /// even while a sink holds back a batch, as long as the pipeline's backlog stays under
    /// [`DEAD_LETTER_BACKLOG`]: a writer thread waiting for room in these rings may be the
    /// very thread this shard waits on. (The config rejects dead-letter cycles, so what
    /// these batches reach can always drain.)
    pub dead_letter_inbound: Vec<RingRx<Envelope>>,
    /// Rung by every producer of `inbound` when this shard sleeps.
    pub doorbell: Arc<Doorbell>,
    pub sources: Vec<Box<dyn ShardSource>>,
    pub lifecycle: Arc<Lifecycle>,
}

/// Most batches a blocked pipeline may hold back before the shard stops taking dead letters
/// too (bounds the memory they can pile up).
pub const DEAD_LETTER_BACKLOG: usize = 64;

fn idle_backoff(n: u32) -> Duration {
    const STEPS_US: [u64; 6] = [20, 50, 100, 250, 500, 1000];
    Duration::from_micros(STEPS_US[(n as usize).min(STEPS_US.len() - 1)])
}

/// The shard's main loop. Returns when the lifecycle is stopped.
pub async fn run_shard(setup: ShardSetup) {
    let ShardSetup {
        index,
        shards,
        pipeline,
        mut inbound,
        peers,
        mut exchange_inbound,
        mut dead_letter_inbound,
        sources,
        lifecycle,
        doorbell,
    } = setup;
    let wake = match runtime::WakeSignal::new() {
        Ok(w) => {
            doorbell.use_eventfd(w.fd());
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no eventfd; the shard polls its rings");
            None
        }
    };
    let ctx = ShardCtx {
        inner: Rc::new(ShardInner {
            index,
            shards,
            pipeline: RefCell::new(pipeline),
            peers: RefCell::new(peers),
            next: Cell::new(index),
            lifecycle: lifecycle.clone(),
        }),
    };
    let tasks: Vec<_> = sources
        .into_iter()
        .map(|s| runtime::spawn_local(s.run(ctx.clone())))
        .collect();
    let mut idle = 0u32;
    let ticking = ctx.inner.pipeline.borrow().wants_tick();
    let mut last_tick = std::time::Instant::now();
    loop {
        let mut did = false;
        {
            let mut p = ctx.inner.pipeline.borrow_mut();
            if ticking && !p.is_blocked() {
                let now = std::time::Instant::now();
                if now.duration_since(last_tick) >= crate::pipeline::TICK_INTERVAL {
                    last_tick = now;
                    p.tick(now, false);
                }
            }
            if p.is_blocked() && p.retry_pending() {
                did = true;
            }
            if !p.sinks_blocked() {
                for rx in exchange_inbound.iter_mut() {
                    for _ in 0..8 {
                        let Some(env) = rx.pop() else { break };
                        p.push_exchanged(env.source, env.batch);
                        did = true;
                        if p.sinks_blocked() {
                            break;
                        }
                    }
                }
            }
            if p.backlog() < DEAD_LETTER_BACKLOG {
                'dead: for rx in dead_letter_inbound.iter_mut() {
                    for _ in 0..8 {
                        let Some(env) = rx.pop() else { break };
                        p.push(env.source, env.batch);
                        did = true;
                        if p.backlog() >= DEAD_LETTER_BACKLOG {
                            break 'dead;
                        }
                    }
                }
            }
            if !p.is_blocked() {
                'rings: for rx in inbound.iter_mut() {
                    for _ in 0..8 {
                        let Some(env) = rx.pop() else { break };
                        p.push(env.source, env.batch);
                        did = true;
                        if p.is_blocked() {
                            break 'rings;
                        }
                    }
                }
            }
        }
        if lifecycle.is_stopped() {
            break;
        }
        if did {
            idle = 0;
            runtime::yield_now().await;
        } else {
            if idle == 0 {
                ctx.inner.pipeline.borrow_mut().flush();
            }
            match &wake {
                // One more look after a yield, then sleep until a producer rings (or 100 ms
                // pass: lifecycle changes are polled). Timed naps before the doorbell cost a
                // timer and a wake-up each: at a steady 50,000 events/s per shard they were
                // half of the shard's CPU.
                Some(w) if idle >= 1 && !ctx.inner.pipeline.borrow().is_blocked() => {
                    doorbell.set_sleeping(true);
                    if inbound.iter().all(|r| r.is_empty())
                        && exchange_inbound.iter().all(|r| r.is_empty())
                        && dead_letter_inbound.iter().all(|r| r.is_empty())
                    {
                        w.wait(Duration::from_millis(100)).await;
                    }
                    doorbell.set_sleeping(false);
                }
                Some(_) if idle == 0 => runtime::yield_now().await,
                _ => runtime::sleep(idle_backoff(idle)).await,
            }
            idle = idle.saturating_add(1);
        }
    }
    if ticking {
        // Windows still open are emitted now; wait (bounded) until the sinks took them.
        let mut p = ctx.inner.pipeline.borrow_mut();
        p.tick(std::time::Instant::now(), true);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !p.retry_pending() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    ctx.inner.pipeline.borrow_mut().flush();
    for t in tasks {
        t.join().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ComponentMetrics;
    use crate::pipeline::{Node, Operator, ShardSink};
    use crate::ring::{ring, Pushed, WhenFull};
    use bytes::Bytes;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    /// A sink whose ring never has room (a writer thread that waits elsewhere).
    struct Stuck;
    impl ShardSink for Stuck {
        fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
            Err(batch)
        }
    }

    /// A sink that takes everything and counts batches.
    struct Count(Arc<AtomicU64>);
    impl ShardSink for Count {
        fn consume(&mut self, _batch: Batch) -> Result<(), Batch> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn node(id: &str, sink: Box<dyn ShardSink>) -> Node {
        Node {
            id: id.into(),
            op: Operator::Sink(sink),
            metrics: Arc::new(ComponentMetrics::detached()),
            outputs: Vec::new(),
            exchange_keys: None,
        }
    }

    /// Source 0 feeds a sink that holds its batch back (the shard is blocked); source 1 is a
    /// dead-letter output feeding another sink: its ring keeps draining anyway, so its
    /// producer (the blocked sink's writer, in real life) is never stuck behind the shard.
    #[test]
    fn dead_letter_rings_drain_while_a_sink_holds_a_batch_back() {
        let taken = Arc::new(AtomicU64::new(0));
        let pipeline = Pipeline::new(
            vec![
                node("stuck", Box::new(Stuck)),
                node("dlq", Box::new(Count(taken.clone()))),
            ],
            vec![vec![0], vec![1]],
        );
        let bell = Doorbell::new();
        let (mut tx, rx) = ring::<Envelope>(2, WhenFull::Block, bell.clone(), Arc::default());
        let (mut dl_tx, dl_rx) = ring::<Envelope>(2, WhenFull::Block, bell.clone(), Arc::default());
        let lifecycle = Lifecycle::new();
        let setup = ShardSetup {
            index: 0,
            shards: 1,
            pipeline,
            inbound: vec![rx],
            peers: Vec::new(),
            exchange_inbound: Vec::new(),
            dead_letter_inbound: vec![dl_rx],
            doorbell: bell,
            sources: Vec::new(),
            lifecycle: lifecycle.clone(),
        };
        let shard = runtime::spawn_shard(
            runtime::ShardSpec {
                index: 0,
                core: None,
            },
            move || run_shard(setup),
        )
        .expect("shard starts");
        let batch = |source| Envelope {
            source,
            batch: Batch::from_lines(Bytes::from_static(b"x\n"), source),
        };
        // Block the shard, and fill its ordinary ring behind the held batch.
        for _ in 0..3 {
            let mut env = batch(0);
            let deadline = Instant::now() + Duration::from_secs(30);
            while let Pushed::Full(back) = tx.push(env, 1) {
                assert!(Instant::now() < deadline, "the shard took nothing");
                env = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // 200 dead-letter batches through a ring of 2: each waits until the shard takes one.
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..200 {
            let mut env = batch(1);
            while let Pushed::Full(back) = dl_tx.push(env, 1) {
                assert!(
                    Instant::now() < deadline,
                    "the blocked shard stopped draining dead letters after {}",
                    taken.load(Ordering::Relaxed)
                );
                env = back;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        while taken.load(Ordering::Relaxed) < 200 {
            assert!(Instant::now() < deadline, "dead letters left in the ring");
            std::thread::sleep(Duration::from_millis(1));
        }
        // The ordinary ring was not touched while blocked: two batches still wait there.
        assert!(tx.is_full());
        lifecycle.stop();
        shard.join().expect("shard ends");
    }
}
