//! `type = "parse"`: parses each event's line in place. `format = "json"` fills the batch's
//! tape with the zero-copy scanner; the event keeps its bytes and gains fields.
//!
//! A line that does not parse keeps its raw bytes and goes to `ID.dropped` with
//! `_meta.error` saying why (if something reads that output), or is passed on unparsed with
//! `on_error = "pass"`, or else is counted as dropped (`reason="parse_error"`).

use super::PORT_DROPPED;
use crate::parsers::json;
use serde::Deserialize;
use sluice_engine::batch::{Batch, OverlayOp};
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// To `ID.dropped` (or counted as dropped when nothing reads it).
    #[default]
    Drop,
    /// Pass the event on unparsed.
    Pass,
}

/// Options of the `parse` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    pub format: Format,
    #[serde(default)]
    pub on_error: OnError,
}

impl ParseConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &["dropped"];

    pub fn build(&self, metrics: &ComponentMetrics) -> Parse {
        Parse {
            on_error: self.on_error,
            rejected: Vec::new(),
            errors: metrics.dropped("parse_error"),
            error_path: FieldPath::parse("_meta.error").expect("static path"),
        }
    }
}

pub struct Parse {
    on_error: OnError,
    rejected: Vec<(usize, &'static str)>,
    errors: Arc<AtomicU64>,
    error_path: FieldPath,
}

impl Transform for Parse {
    fn process(&mut self, mut batch: Batch, out: &mut Emitter) {
        self.rejected.clear();
        json::parse_batch(&mut batch, &mut self.rejected);
        if self.rejected.is_empty() || self.on_error == OnError::Pass {
            out.emit(PORT_MAIN, batch);
            return;
        }
        let to_dropped = out.is_connected(PORT_DROPPED);
        if !to_dropped {
            self.errors
                .fetch_add(self.rejected.len() as u64, Ordering::Relaxed);
        }
        // Remove rejected events (indices are positions in `batch.events`, ascending).
        let mut bad = Vec::with_capacity(self.rejected.len());
        let mut keep = Vec::with_capacity(batch.events.len() - self.rejected.len());
        let mut r = self.rejected.iter().peekable();
        for (i, ev) in batch.events.iter().enumerate() {
            if r.peek().map(|(j, _)| *j) == Some(i) {
                let (_, reason) = r.next().expect("peeked");
                bad.push((*ev, *reason));
            } else {
                keep.push(*ev);
            }
        }
        if to_dropped {
            // One sibling batch per distinct reason, each tagged with `_meta.error`.
            let mut reasons: Vec<&'static str> = bad.iter().map(|(_, r)| *r).collect();
            reasons.sort_unstable();
            reasons.dedup();
            for reason in reasons {
                let evs = bad
                    .iter()
                    .filter(|(_, r)| *r == reason)
                    .map(|(e, _)| *e)
                    .collect();
                let mut sib = batch.sibling(evs);
                sib.overlay.ops.push(OverlayOp::Set {
                    path: self.error_path.clone(),
                    value: Value::Str(format!("invalid JSON: {reason}")),
                    if_absent: false,
                });
                out.emit(PORT_DROPPED, sib);
            }
        }
        batch.events = keep;
        out.emit(PORT_MAIN, batch);
    }
}
