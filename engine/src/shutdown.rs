//! Process lifecycle flags shared by every thread: "stop reading input" and "stop now".
//!
//! A signal sets `draining`: sources stop taking new input, and the pipeline keeps running
//! until every batch in flight has been acknowledged. `abort` is set when the drain deadline
//! passes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    stopped: AtomicBool,
}

impl Lifecycle {
    pub fn new() -> Arc<Lifecycle> {
        Arc::new(Lifecycle::default())
    }

    /// Asks sources to stop reading input.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Tells every thread to exit its loop (drain finished or timed out).
    pub fn stop(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.stopped.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}
