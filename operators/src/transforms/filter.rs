//! `type = "filter"`: keeps the events for which a CEL `condition` holds. The others go to
//! `ID.dropped` if something reads it, else they are counted as dropped (`reason="filtered"`).

use super::PORT_DROPPED;
use crate::condition::Condition;
use serde::Deserialize;
use sluice_engine::batch::Batch;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Options of the `filter` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// A CEL expression, e.g. `level != "debug" && http.status >= 500`.
    pub condition: String,
}

impl FilterConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &["dropped"];

    /// Compiles the condition (the error carries the column).
    pub fn compile(&self) -> Result<Condition, crate::condition::ConditionError> {
        Condition::compile(&self.condition)
    }

    pub fn build(
        &self,
        metrics: &ComponentMetrics,
    ) -> Result<Filter, crate::condition::ConditionError> {
        Ok(Filter {
            condition: self.compile()?,
            filtered: metrics.dropped("filtered"),
        })
    }
}

pub struct Filter {
    condition: Condition,
    filtered: Arc<AtomicU64>,
}

impl Transform for Filter {
    fn process(&mut self, mut batch: Batch, out: &mut Emitter) {
        let cond = &self.condition;
        if out.is_connected(PORT_DROPPED) {
            let rejected = batch.partition(|b, e| cond.matches(b, e));
            out.emit(PORT_DROPPED, rejected);
        } else {
            let removed = batch.retain(|b, e| cond.matches(b, e));
            if removed > 0 {
                self.filtered.fetch_add(removed as u64, Ordering::Relaxed);
            }
        }
        out.emit(PORT_MAIN, batch);
    }
}
