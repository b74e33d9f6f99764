//! What every source shares: its index in the topology, its metrics, its acknowledgement
//! accounting, and (for sources on connector threads) the rings into the shards.

use crate::ack::{AckReceiver, AckToken, InFlight};
use crate::batch::Batch;
use crate::metrics::ComponentMetrics;
use crate::ring::{Pushed, RingTx};
use crate::shutdown::Lifecycle;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A batch on its way into a shard, tagged with the source it came from.
pub struct Envelope {
    pub source: u16,
    pub batch: Batch,
}

/// Shared state of one source component (all its shard instances and threads).
pub struct SourceHandle {
    pub index: u16,
    pub id: String,
    pub metrics: Arc<ComponentMetrics>,
    pub inflight: Arc<InFlight>,
    pub receiver: Option<Arc<dyn AckReceiver>>,
    seq: AtomicU64,
    /// Instances still running; the source is finished when it reaches zero.
    running: AtomicU64,
    started: AtomicBool,
}

impl SourceHandle {
    pub fn new(
        index: u16,
        id: &str,
        metrics: Arc<ComponentMetrics>,
        instances: u64,
    ) -> Arc<SourceHandle> {
        Arc::new(SourceHandle {
            index,
            id: id.to_string(),
            metrics,
            inflight: Arc::new(InFlight::default()),
            receiver: None,
            seq: AtomicU64::new(0),
            running: AtomicU64::new(instances),
            started: AtomicBool::new(false),
        })
    }

    /// Like [`SourceHandle::new`], with a receiver told about every acknowledged batch.
    pub fn with_receiver(
        index: u16,
        id: &str,
        metrics: Arc<ComponentMetrics>,
        instances: u64,
        receiver: Arc<dyn AckReceiver>,
    ) -> Arc<SourceHandle> {
        let mut h = SourceHandle::new(index, id, metrics, instances);
        Arc::get_mut(&mut h).expect("fresh").receiver = Some(receiver);
        h
    }

    /// Stamps a freshly read batch: origin, acknowledgement token, metrics. Returns its seq.
    pub fn stamp(&self, batch: &mut Batch) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        batch.origin.source = self.index;
        batch.ack = Some(AckToken::new(seq, &self.inflight, self.receiver.clone()));
        let n = batch.len() as u64;
        self.metrics.add_in(n, batch.byte_len());
        self.metrics.add_out(n);
        seq
    }

    /// One instance is up and reading.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// One instance ended (input exhausted or drain).
    pub fn mark_finished(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn is_finished(&self) -> bool {
        self.running.load(Ordering::Acquire) == 0
    }
}

/// The way out of a connector-thread source: one ring per shard, round robin.
pub struct ConnectorOutput {
    pub handle: Arc<SourceHandle>,
    rings: Vec<RingTx<Envelope>>,
    next: usize,
    lifecycle: Arc<Lifecycle>,
}

/// The pipeline stopped; the batch was not delivered.
#[derive(Debug)]
pub struct Stopped;

impl ConnectorOutput {
    pub fn new(
        handle: Arc<SourceHandle>,
        rings: Vec<RingTx<Envelope>>,
        lifecycle: Arc<Lifecycle>,
    ) -> ConnectorOutput {
        ConnectorOutput {
            handle,
            rings,
            next: 0,
            lifecycle,
        }
    }

    /// Stamps and sends a batch to the next shard with room. With `when_full = "block"` it
    /// waits for room (the caller stops reading meanwhile); it gives up only when the
    /// process stops.
    pub fn send(&mut self, mut batch: Batch) -> Result<(), Stopped> {
        if batch.is_empty() {
            return Ok(());
        }
        self.handle.stamp(&mut batch);
        let mut env = Envelope {
            source: self.handle.index,
            batch,
        };
        let n = self.rings.len();
        let mut backoff = 1u64;
        loop {
            for i in 0..n {
                let k = (self.next + i) % n;
                let weight = env.batch.len() as u64;
                match self.rings[k].push(env, weight) {
                    Pushed::Sent | Pushed::Dropped => {
                        self.next = (k + 1) % n;
                        return Ok(());
                    }
                    Pushed::Full(back) => env = back,
                }
            }
            if self.lifecycle.is_stopped() {
                return Err(Stopped);
            }
            std::thread::sleep(Duration::from_micros(backoff * 20));
            backoff = (backoff * 2).min(50);
        }
    }

    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }
}
