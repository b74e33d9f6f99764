//! A sink's dead-letter output, `ID.dead_letter`: events the sink failed to deliver for good
//! (the destination rejected them with a 4xx-class answer, or retries were exhausted).
//!
//! The sink's writer thread hands them over with [`DeadLetter::send`], as the sink encoded
//! them (one event per line). When no component consumes `ID.dead_letter` they are counted in
//! `sluice_events_dropped_total{reason="dead_letter"}` and dropped.

use bytes::Bytes;
use sluice_engine::metrics::ComponentMetrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The writer thread's end of a sink's dead-letter output.
pub struct DeadLetter {
    dropped: Arc<AtomicU64>,
}

impl DeadLetter {
    /// A dead-letter output nobody consumes: events sent to it are counted and dropped.
    pub fn unconnected(metrics: &ComponentMetrics) -> DeadLetter {
        DeadLetter {
            dropped: metrics.dropped("dead_letter"),
        }
    }

    /// Hands over `events` events that failed permanently. `lines` holds them as the sink
    /// encoded them, one per line, each ending in `\n`; `reason` says why, short and
    /// machine-readable (`"http_400"`, `"retries_exhausted"`). May wait for room when the
    /// consumers are slow (backpressure); never drops silently.
    pub fn send(&mut self, lines: Bytes, events: u64, reason: &'static str) {
        let _ = (lines, reason);
        self.dropped.fetch_add(events, Ordering::Relaxed);
    }
}
