//! `type = "generator"`: synthetic logs (json, RFC 5424 syslog, Apache combined) made on the
//! shards, flat out or at a fixed `rate`, stopping after `count` events if given. Each shard
//! generates its share with its own seed, so the output is deterministic per shard count.

pub mod synth;

use crate::sources::SourceRuntime;
use serde::Deserialize;
use sluice_engine::batch::BatchBuilder;
use sluice_engine::context::BuildCtx;
use sluice_engine::runtime;
use sluice_engine::shard::{LocalFuture, ShardCtx, ShardSource};
use sluice_engine::source::SourceHandle;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use synth::{Synth, SynthFormat};

/// Options of the `generator` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// `json`, `syslog` or `apache`.
    #[serde(default = "default_format")]
    pub format: SynthFormat,
    /// Events per second for the whole source; absent means as fast as possible.
    pub rate: Option<f64>,
    /// Stop after this many events; absent means run until stopped.
    pub count: Option<u64>,
    /// PRNG seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_format() -> SynthFormat {
    SynthFormat::Json
}
fn default_seed() -> u64 {
    42
}

impl GeneratorConfig {
    /// `handle` is filled in by the topology once the source's index is known.
    pub fn build(&self, ctx: &BuildCtx, handle: Arc<OnceLock<Arc<SourceHandle>>>) -> SourceRuntime {
        let shards = ctx.shards as u64;
        let parts = (0..shards)
            .map(|i| {
                let count = self.count.map(|c| c / shards + u64::from(i < c % shards));
                Box::new(GeneratorPart {
                    format: self.format,
                    seed: self
                        .seed
                        .wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                    rate: self.rate.map(|r| r / shards as f64),
                    count,
                    batch_size: ctx.batch_size,
                    handle: handle.clone(),
                }) as Box<dyn ShardSource>
            })
            .collect();
        SourceRuntime::shards(parts, false)
    }
}

struct GeneratorPart {
    format: SynthFormat,
    seed: u64,
    rate: Option<f64>,
    count: Option<u64>,
    batch_size: usize,
    handle: Arc<OnceLock<Arc<SourceHandle>>>,
}

impl ShardSource for GeneratorPart {
    fn run(self: Box<Self>, ctx: ShardCtx) -> LocalFuture {
        Box::pin(async move {
            let handle = self
                .handle
                .get()
                .expect("source handle set before start")
                .clone();
            handle.mark_started();
            let mut synth = Synth::new(self.format, self.seed);
            let mut builder = BatchBuilder::with_capacity(self.batch_size * 400, self.batch_size);
            let mut line = Vec::with_capacity(1024);
            let mut made = 0u64;
            let start = Instant::now();
            let limit = self.count.unwrap_or(u64::MAX);
            while made < limit && !ctx.lifecycle().is_draining() {
                let mut n = (self.batch_size as u64).min(limit - made);
                if let Some(rate) = self.rate {
                    // Open loop: the batch is due when its first event is due.
                    let due = start + Duration::from_secs_f64(made as f64 / rate);
                    let now = Instant::now();
                    if due > now {
                        runtime::sleep(due - now).await;
                        continue;
                    }
                    // Never run ahead of schedule by more than what is due now.
                    let owed = ((now - start).as_secs_f64() * rate) as u64 + 1;
                    n = n.min(owed.saturating_sub(made).max(1));
                }
                for _ in 0..n {
                    line.clear();
                    synth.next_into(&mut line);
                    builder.push_line(&line);
                }
                made += n;
                let mut batch = builder.finish(handle.index);
                handle.stamp(&mut batch);
                ctx.emit(handle.index, batch, false).await;
            }
            handle.mark_finished();
        })
    }
}
