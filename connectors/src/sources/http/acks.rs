//! End-to-end acknowledgements for HTTP requests (`acknowledgements = true`).
//!
//! The request's batches are sent with [`ConnectorOutput::try_send`], which returns each
//! batch's seq; [`AckTable`] (the source's [`AckReceiver`]) maps those seqs to the request
//! and completes its oneshot once every batch has been acknowledged: `Delivered` when all
//! were delivered, `Failed` as soon as one was not. An acknowledgement can arrive (on a
//! shard or sink thread) before the connector thread has recorded the seq; it is then kept
//! in a small "early" map until the seq is recorded, so no lock is held while sending.

use sluice_engine::ack::{AckOutcome, AckReceiver};
use sluice_engine::batch::Batch;
use sluice_engine::source::ConnectorOutput;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Early acknowledgements kept at most (each is claimed right after its send returns; only
/// a batch lost inside a failed `try_send` could leave one behind).
const MAX_EARLY: usize = 4096;

struct Pending {
    remaining: AtomicUsize,
    failed: AtomicBool,
    tx: Mutex<Option<oneshot::Sender<AckOutcome>>>,
}

impl Pending {
    fn settle(&self, outcome: AckOutcome) {
        if outcome == AckOutcome::Failed {
            self.failed.store(true, Ordering::Release);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let result = if self.failed.load(Ordering::Acquire) {
                AckOutcome::Failed
            } else {
                AckOutcome::Delivered
            };
            if let Some(tx) = self.tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(result);
            }
        }
    }
}

#[derive(Default)]
struct Maps {
    pending: HashMap<u64, Arc<Pending>>,
    early: HashMap<u64, AckOutcome>,
}

/// Maps batch seqs to waiting requests.
#[derive(Default)]
pub struct AckTable {
    maps: Mutex<Maps>,
}

/// Sending a request's batches failed part way (the pipeline is full or stopped).
pub struct NotAllSent {
    /// Batches already on their way (they stay sent).
    pub sent: usize,
}

impl AckTable {
    pub fn new() -> Arc<AckTable> {
        Arc::new(AckTable::default())
    }

    /// Sends `batches` and returns what completes when all were acknowledged. The caller
    /// checked [`ConnectorOutput::room`] first, so normally all go or none is tried.
    pub fn send_all(
        &self,
        out: &mut ConnectorOutput,
        batches: Vec<Batch>,
    ) -> Result<oneshot::Receiver<AckOutcome>, NotAllSent> {
        let (tx, rx) = oneshot::channel();
        let pending = Arc::new(Pending {
            remaining: AtomicUsize::new(batches.len()),
            failed: AtomicBool::new(false),
            tx: Mutex::new(Some(tx)),
        });
        if batches.is_empty() {
            pending.remaining.store(1, Ordering::Release);
            pending.settle(AckOutcome::Delivered);
            return Ok(rx);
        }
        let mut sent = 0;
        for b in batches {
            let seq = match out.try_send(b) {
                Ok(ConnectorOutput::NOT_SENT) => {
                    pending.settle(AckOutcome::Delivered);
                    continue;
                }
                Ok(seq) => seq,
                Err(_) => return Err(NotAllSent { sent }),
            };
            sent += 1;
            let early = {
                let mut m = self.maps.lock().unwrap_or_else(|e| e.into_inner());
                match m.early.remove(&seq) {
                    Some(o) => Some(o),
                    None => {
                        m.pending.insert(seq, pending.clone());
                        None
                    }
                }
            };
            if let Some(o) = early {
                pending.settle(o);
            }
        }
        Ok(rx)
    }

    /// Requests waiting for acknowledgements (for tests and metrics).
    pub fn waiting(&self) -> usize {
        self.maps
            .lock()
            .map(|m| m.pending.len())
            .unwrap_or_default()
    }
}

impl AckReceiver for AckTable {
    fn ack(&self, seq: u64, outcome: AckOutcome) {
        let pending = {
            let mut m = self.maps.lock().unwrap_or_else(|e| e.into_inner());
            match m.pending.remove(&seq) {
                Some(p) => Some(p),
                None => {
                    if m.early.len() >= MAX_EARLY {
                        m.early.clear();
                    }
                    m.early.insert(seq, outcome);
                    None
                }
            }
        };
        if let Some(p) = pending {
            p.settle(outcome);
        }
    }
}
