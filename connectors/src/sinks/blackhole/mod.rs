//! `type = "blackhole"`: counts events and throws them away; prints a summary line on exit
//! (and every `print_interval` if set). Runs inline on the shards.

use crate::sinks::SinkRuntime;
use serde::Deserialize;
use sluice_engine::batch::Batch;
use sluice_engine::context::BuildCtx;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::pipeline::ShardSink;
use sluice_engine::units::HumanDuration;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Options of the `blackhole` sink.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {
    /// Also log the running count this often.
    pub print_interval: Option<HumanDuration>,
}

struct Shared {
    first: AtomicU64,
    last: AtomicU64,
    epoch: Instant,
}

struct BlackholePart {
    metrics: Arc<ComponentMetrics>,
    shared: Arc<Shared>,
    print: Option<(std::time::Duration, Instant)>,
}

impl ShardSink for BlackholePart {
    fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
        let now = self.shared.epoch.elapsed().as_nanos() as u64;
        let _ =
            self.shared
                .first
                .compare_exchange(u64::MAX, now, Ordering::Relaxed, Ordering::Relaxed);
        self.shared.last.fetch_max(now, Ordering::Relaxed);
        if let Some(l) = &self.metrics.latency {
            l.record(batch.origin.created.elapsed());
        }
        if let Some((every, last)) = &mut self.print {
            if last.elapsed() >= *every {
                *last = Instant::now();
                tracing::info!(component = %self.metrics.id, events = self.metrics.events_in() + batch.len() as u64, "blackhole");
            }
        }
        Ok(())
    }
}

impl BlackholeConfig {
    pub fn build(&self, ctx: &BuildCtx, metrics: Arc<ComponentMetrics>) -> SinkRuntime {
        let shared = Arc::new(Shared {
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let parts = (0..ctx.shards)
            .map(|_| {
                Box::new(BlackholePart {
                    metrics: metrics.clone(),
                    shared: shared.clone(),
                    print: self.print_interval.map(|d| (d.0, Instant::now())),
                }) as Box<dyn ShardSink>
            })
            .collect();
        let on_exit = Box::new(move || {
            let n = metrics.events_in();
            let first = shared.first.load(Ordering::Relaxed);
            let last = shared.last.load(Ordering::Relaxed);
            let secs = if first == u64::MAX {
                0.0
            } else {
                (last - first) as f64 / 1e9
            };
            let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
            eprintln!(
                "blackhole {}: {} events in {:.3} s between first and last ({:.0} events/s)",
                metrics.id, n, secs, rate
            );
        });
        SinkRuntime {
            parts,
            thread: None,
            on_exit: Some(on_exit),
        }
    }
}
