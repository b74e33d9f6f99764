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

    /// Stamps and sends a batch to the next shard whose ring has room, without waiting.
    /// Returns the batch's seq (as given by [`SourceHandle::stamp`]); when every ring is
    /// full, or the process stopped, the batch comes back unstamped (no acknowledgement
    /// token, not counted), so the caller can refuse its input (an HTTP 503) instead of
    /// queueing it. An empty batch is not sent and returns [`ConnectorOutput::NOT_SENT`].
    // The refused batch goes back by value, as `send` takes it: no allocation on refusal.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&mut self, mut batch: Batch) -> Result<u64, Batch> {
        if batch.is_empty() {
            return Ok(Self::NOT_SENT);
        }
        if self.lifecycle.is_stopped() {
            return Err(batch);
        }
        let n = self.rings.len();
        // The connector thread is each ring's only producer, so a ring with a free slot
        // still has it when we push.
        let Some(k) = (0..n)
            .map(|i| (self.next + i) % n)
            .find(|&k| !self.rings[k].is_full())
        else {
            return Err(batch);
        };
        let seq = self.handle.stamp(&mut batch);
        let env = Envelope {
            source: self.handle.index,
            batch,
        };
        match self.rings[k].try_push(env) {
            Ok(()) => {
                self.next = (k + 1) % n;
                Ok(seq)
            }
            Err(mut env) => {
                // Unreachable with a single producer; undo the stamp as far as possible:
                // the token reports a failure instead of a delivery.
                if let Some(t) = env.batch.ack.take() {
                    t.fail();
                }
                Err(env.batch)
            }
        }
    }

    /// The seq [`ConnectorOutput::try_send`] returns for an empty batch (nothing sent).
    pub const NOT_SENT: u64 = u64::MAX;

    /// How many batches [`ConnectorOutput::try_send`] can send right now without one
    /// coming back (the free slots of every ring).
    pub fn room(&self) -> usize {
        self.rings.iter().map(|r| r.free_slots()).sum()
    }

    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{AckOutcome, AckReceiver};
    use crate::metrics::ComponentMetrics;
    use crate::ring::{ring, Doorbell, WhenFull};
    use bytes::Bytes;
    use std::sync::Mutex;

    struct Log(Mutex<Vec<(u64, AckOutcome)>>);
    impl AckReceiver for Log {
        fn ack(&self, seq: u64, outcome: AckOutcome) {
            self.0.lock().unwrap().push((seq, outcome));
        }
    }

    #[test]
    fn try_send_fills_rings_then_hands_batches_back_unstamped() {
        let log = Arc::new(Log(Mutex::new(Vec::new())));
        let handle = SourceHandle::with_receiver(
            3,
            "src",
            Arc::new(ComponentMetrics::detached()),
            1,
            log.clone(),
        );
        let (tx0, mut rx0) = ring(1, WhenFull::Block, Doorbell::new(), Arc::default());
        let (tx1, mut rx1) = ring(1, WhenFull::Block, Doorbell::new(), Arc::default());
        let mut out = ConnectorOutput::new(handle.clone(), vec![tx0, tx1], Lifecycle::new());
        let batch = || Batch::from_lines(Bytes::from_static(b"a\nb\n"), 0);
        assert_eq!(out.room(), 2);
        assert_eq!(out.try_send(batch()).unwrap(), 0);
        assert_eq!(out.try_send(batch()).unwrap(), 1);
        assert_eq!(out.room(), 0);
        let back = out.try_send(batch()).unwrap_err();
        assert!(back.ack.is_none(), "a refused batch carries no token");
        assert_eq!(handle.inflight.in_flight(), 2);
        assert_eq!(handle.metrics.events_in(), 4);
        // Round robin: one batch per ring, stamped with the source index.
        let e0 = rx0.pop().unwrap();
        let e1 = rx1.pop().unwrap();
        assert_eq!((e0.source, e0.batch.origin.source), (3, 3));
        assert_eq!(e1.batch.ack.as_ref().unwrap().seq(), 1);
        drop(e1);
        assert_eq!(*log.0.lock().unwrap(), vec![(1, AckOutcome::Delivered)]);
        assert_eq!(out.room(), 2);
        assert_eq!(
            out.try_send(Batch::from_lines(Bytes::new(), 0)).unwrap(),
            ConnectorOutput::NOT_SENT
        );
        drop(e0);
        assert_eq!(handle.inflight.in_flight(), 0);
    }

    #[test]
    fn try_send_refuses_once_stopped() {
        let handle = SourceHandle::new(0, "src", Arc::new(ComponentMetrics::detached()), 1);
        let (tx, _rx) = ring(4, WhenFull::Block, Doorbell::new(), Arc::default());
        let lifecycle = Lifecycle::new();
        let mut out = ConnectorOutput::new(handle, vec![tx], lifecycle.clone());
        lifecycle.stop();
        assert!(out
            .try_send(Batch::from_lines(Bytes::from_static(b"x\n"), 0))
            .is_err());
    }
}
