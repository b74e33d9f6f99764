//! Acknowledgements: a batch carries an [`AckToken`]; when the last clone of it is dropped
//! (every sink that received the batch is done with it) the source that made the batch is
//! told, once per batch. Fan-out clones the token, so a batch reaching three sinks is
//! acknowledged when all three finished. A sink that failed to deliver marks the token
//! failed before dropping it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The outcome reported to a source for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    Delivered,
    Failed,
}

/// Receives acknowledgements for the batches a source made.
pub trait AckReceiver: Send + Sync {
    /// Called once per batch with the `seq` the source gave it.
    fn ack(&self, seq: u64, outcome: AckOutcome);
}

/// Counts a source's batches in flight; the pipeline is drained when every count is zero.
#[derive(Debug, Default)]
pub struct InFlight {
    batches: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl InFlight {
    pub fn in_flight(&self) -> u64 {
        self.batches.load(Ordering::Acquire)
    }
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

struct AckInner {
    seq: u64,
    failed: AtomicBool,
    inflight: Arc<InFlight>,
    receiver: Option<Arc<dyn AckReceiver>>,
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let outcome = if self.failed.load(Ordering::Acquire) {
            self.inflight.failed.fetch_add(1, Ordering::Relaxed);
            AckOutcome::Failed
        } else {
            self.inflight.delivered.fetch_add(1, Ordering::Relaxed);
            AckOutcome::Delivered
        };
        if let Some(r) = &self.receiver {
            r.ack(self.seq, outcome);
        }
        self.inflight.batches.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The acknowledgement handle of one batch. Cheap to clone (one atomic increment).
#[derive(Clone)]
pub struct AckToken(Arc<AckInner>);

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AckToken(seq={})", self.0.seq)
    }
}

impl AckToken {
    /// A token for batch `seq` of a source; counts it in flight until acknowledged.
    pub fn new(
        seq: u64,
        inflight: &Arc<InFlight>,
        receiver: Option<Arc<dyn AckReceiver>>,
    ) -> AckToken {
        inflight.batches.fetch_add(1, Ordering::AcqRel);
        AckToken(Arc::new(AckInner {
            seq,
            failed: AtomicBool::new(false),
            inflight: inflight.clone(),
            receiver,
        }))
    }

    pub fn seq(&self) -> u64 {
        self.0.seq
    }

    /// Marks the batch as not delivered; the source will not advance past it.
    pub fn fail(&self) {
        self.0.failed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Log(Mutex<Vec<(u64, AckOutcome)>>);
    impl AckReceiver for Log {
        fn ack(&self, seq: u64, outcome: AckOutcome) {
            self.0.lock().unwrap().push((seq, outcome));
        }
    }

    #[test]
    fn last_clone_acknowledges_once() {
        let inflight = Arc::new(InFlight::default());
        let log = Arc::new(Log(Mutex::new(Vec::new())));
        let t = AckToken::new(7, &inflight, Some(log.clone()));
        let t2 = t.clone();
        assert_eq!(inflight.in_flight(), 1);
        drop(t);
        assert!(log.0.lock().unwrap().is_empty());
        drop(t2);
        assert_eq!(*log.0.lock().unwrap(), vec![(7, AckOutcome::Delivered)]);
        assert_eq!(inflight.in_flight(), 0);
        assert_eq!(inflight.delivered(), 1);
    }

    #[test]
    fn failure_is_reported() {
        let inflight = Arc::new(InFlight::default());
        let log = Arc::new(Log(Mutex::new(Vec::new())));
        let t = AckToken::new(1, &inflight, Some(log.clone()));
        t.clone().fail();
        drop(t);
        assert_eq!(*log.0.lock().unwrap(), vec![(1, AckOutcome::Failed)]);
        assert_eq!(inflight.failed(), 1);
    }
}
