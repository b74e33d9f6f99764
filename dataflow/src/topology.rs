//! Builds the running process from a plan and runs it until its sources end or a signal
//! drains it.
//!
//! Start order: sinks' writer threads, shards (each with its pipeline copy and its source
//! parts), connector-thread sources, the API. The main thread then watches the sources:
//! when all have finished (or a signal asked for a drain) and every batch in flight has been
//! acknowledged, it stops the shards, joins every thread and prints the summaries.
//!
//! A sink's dead-letter output that something reads (`ID.dead_letter`) is a source whose
//! producer is the sink's writer thread: it is built with the sink (a [`DeadLetter`] holding
//! a [`ConnectorOutput`] over rings into every shard), counts its events as that source's,
//! and is always "finished" (it reads no input of its own) but its batches are in flight like
//! any other's, so a drain waits until they reached their consumers. The shards drain those
//! rings even while a sink holds them back (see `ShardSetup::dead_letter_inbound`).

use crate::config::{Config, SinkKind, SourceKind, TransformKind};
use crate::graph::Role;
use crate::plan::{Placement, Plan};
use sluice_connectors::sinks::dead_letter::DeadLetter;
use sluice_connectors::sinks::SinkRuntime;
use sluice_connectors::sources::{SourceRuntime, SourceShape};
use sluice_engine::context::BuildCtx;
use sluice_engine::metrics::{ComponentKind, Registry};
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{ExchangeKey, Node, Operator, Pipeline, ShardSink, Transform};
use sluice_engine::ring::{self, Doorbell, RingRx, RingTx, WhenFull};
use sluice_engine::runtime::{self, ShardSpec};
use sluice_engine::shard::{run_shard, ShardSetup, ShardSource};
use sluice_engine::shutdown::Lifecycle;
use sluice_engine::source::{ConnectorOutput, Envelope, SourceHandle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Shared with the API server.
pub struct RunState {
    pub registry: Arc<Registry>,
    pub lifecycle: Arc<Lifecycle>,
    pub ready: AtomicBool,
    /// Every connected dead-letter output passes through this (with its sink's ID) before
    /// the sink gets what it returns; `None` in `sluice run`. Tests keep the real one and
    /// drive it themselves.
    pub dead_letter_tap: Option<DeadLetterTap>,
}

/// See [`RunState::dead_letter_tap`].
pub type DeadLetterTap = Box<dyn Fn(&str, DeadLetter) -> DeadLetter + Send + Sync>;

/// How the run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// True when the drain finished before `engine.shutdown_timeout`.
    pub clean: bool,
    pub events_in: u64,
    pub elapsed: Duration,
}

struct BuiltSource {
    handle: Arc<SourceHandle>,
    runtime: SourceRuntime,
}

/// How often the supervisor rings the doorbells of sleeping shards (see [`run`]).
const NUDGE_EVERY: Duration = Duration::from_millis(100);
/// How often the supervisor loop looks at signals, readiness and the shards while running.
const SUPERVISE_EVERY: Duration = Duration::from_millis(50);

/// Runs the pipeline to completion. `signal` is set by the signal handler.
pub fn run(
    config: &Config,
    plan: &Plan,
    state: Arc<RunState>,
    signal: Arc<AtomicBool>,
) -> anyhow::Result<RunOutcome> {
    let started = Instant::now();
    let shards = plan.shards;
    let ctx = BuildCtx {
        shards,
        batch_size: config.engine.batch_size,
        data_dir: config.engine.data_dir.clone(),
        registry: state.registry.clone(),
        lifecycle: state.lifecycle.clone(),
    };
    let registry = &state.registry;
    let lifecycle = &state.lifecycle;

    // Sources.
    let mut built_sources = Vec::new();
    for (i, s) in config.sources.iter().enumerate() {
        let metrics = registry.component(&s.id, ComponentKind::Source, &s.type_name);
        let cell: Arc<OnceLock<Arc<SourceHandle>>> = Arc::new(OnceLock::new());
        let runtime = match &s.kind {
            SourceKind::Stdin(c) => c.build(&ctx),
            SourceKind::Http(c) => c
                .build(&ctx, &s.id)
                .map_err(|e| anyhow::anyhow!("source {}: {e}", s.id))?,
            SourceKind::Syslog(c) => c
                .build(&ctx, &s.id)
                .map_err(|e| anyhow::anyhow!("source {}: {e}", s.id))?,
            SourceKind::Generator(c) => c.build(&ctx, cell.clone()),
            SourceKind::File(c) => c.build(&ctx, &s.id, cell.clone()),
        };
        let instances = match &runtime.shape {
            SourceShape::Shards { parts, .. } => parts.len() as u64,
            SourceShape::Thread(_) => 1,
        };
        let handle = match runtime.receiver.clone() {
            Some(r) => SourceHandle::with_receiver(i as u16, &s.id, metrics, instances, r),
            None => SourceHandle::new(i as u16, &s.id, metrics, instances),
        };
        let _ = cell.set(handle.clone());
        built_sources.push(BuiltSource { handle, runtime });
    }

    // Dead-letter outputs that something reads: sources fed by their sink's writer thread.
    // They read nothing themselves (finished from the start, so they never hold up a drain
    // that the other sources' end starts), but their batches count in flight.
    let mut dead_letters: std::collections::HashMap<String, Arc<SourceHandle>> =
        std::collections::HashMap::new();
    for (i, p) in plan.sources.iter().enumerate().skip(config.sources.len()) {
        let Placement::DeadLetter { sink } = &p.placement else {
            continue;
        };
        let metrics = registry.component(&p.id, ComponentKind::Source, &p.type_name);
        let handle = SourceHandle::new(i as u16, &p.id, metrics, 0);
        handle.mark_started();
        dead_letters.insert(sink.clone(), handle);
    }
    // One doorbell per shard, rung by every producer of its inbound rings.
    let bells: Vec<Arc<Doorbell>> = (0..shards).map(|_| Doorbell::new()).collect();
    let mut dead_letter_inbound: Vec<Vec<RingRx<Envelope>>> =
        (0..shards).map(|_| Vec::new()).collect();

    // Per-shard pipelines.
    let mut sink_threads = Vec::new();
    let mut on_exit = Vec::new();
    let mut sink_parts: Vec<Vec<Box<dyn ShardSink>>> = Vec::new();
    for s in &config.sinks {
        let metrics = registry.component(&s.id, ComponentKind::Sink, &s.type_name);
        let SinkRuntime {
            parts,
            thread,
            on_exit: exit,
        } = match &s.kind {
            SinkKind::Blackhole(c) => c.build(&ctx, metrics),
            SinkKind::Console(c) => c
                .build(&ctx, metrics, s.when_full, s.buffer)
                .map_err(|e| anyhow::anyhow!("sink {}: {e}", s.id))?,
            SinkKind::Http(c) => {
                let dead_letter = match dead_letters.get(&s.id) {
                    Some(handle) => {
                        let mut txs = Vec::new();
                        for (to, inb) in dead_letter_inbound.iter_mut().enumerate() {
                            let (tx, rx) = ring::ring(
                                config.engine.ring_capacity,
                                WhenFull::Block,
                                bells[to].clone(),
                                handle.metrics.dropped("ring_full"),
                            );
                            txs.push(tx);
                            inb.push(rx);
                        }
                        let out = ConnectorOutput::new(handle.clone(), txs, lifecycle.clone());
                        let d = DeadLetter::connected(&metrics, &s.id, c.encoding, out);
                        match &state.dead_letter_tap {
                            Some(tap) => tap(&s.id, d),
                            None => d,
                        }
                    }
                    None => DeadLetter::unconnected(&metrics),
                };
                c.build(&ctx, metrics.clone(), s.when_full, dead_letter, s.buffer)
                    .map_err(|e| anyhow::anyhow!("sink {}: {e}", s.id))?
            }
            SinkKind::File(c) => c
                .build(&ctx, metrics, s.when_full, s.buffer)
                .map_err(|e| anyhow::anyhow!("sink {}: {e}", s.id))?,
        };
        sink_parts.push(parts);
        if let Some(t) = thread {
            sink_threads.push((s.id.clone(), t));
        }
        if let Some(e) = exit {
            on_exit.push(e);
        }
    }
    // State shared by every shard's instance of a transform, made once.
    let mut metric_stores = std::collections::HashMap::new();
    let mut enrich_data = std::collections::HashMap::new();
    for t in &config.transforms {
        match &t.kind {
            TransformKind::LogToMetric(c) => {
                let store = c
                    .prepare(registry, &t.id)
                    .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?;
                metric_stores.insert(t.id.clone(), store);
            }
            TransformKind::Enrich(c) => {
                let data = c
                    .load()
                    .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?;
                for w in &data.warnings {
                    tracing::warn!(transform = %t.id, "{w}");
                }
                enrich_data.insert(t.id.clone(), data);
            }
            _ => {}
        }
    }
    let mut pipelines: Vec<Pipeline> = Vec::new();
    for _shard in 0..shards {
        let mut nodes = Vec::new();
        for n in &plan.nodes {
            let op = match n.role {
                Role::Transform => {
                    let t = config
                        .transforms
                        .iter()
                        .find(|t| t.id == n.id)
                        .expect("planned transform");
                    let metrics = registry.component(&t.id, ComponentKind::Transform, &t.type_name);
                    let tr: Box<dyn Transform> = match &t.kind {
                        TransformKind::Parse(c) => {
                            Box::new(c.build(&metrics).map_err(|(key, e)| {
                                anyhow::anyhow!("transform {}: {key}: {e}", t.id)
                            })?)
                        }
                        TransformKind::Filter(c) => Box::new(
                            c.build(&metrics)
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::Fields(c) => Box::new(
                            c.build()
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::Aggregate(c) => Box::new(
                            c.build(&metrics)
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::LogToMetric(c) => Box::new(
                            c.build(&metric_stores[&t.id])
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::Redact(c) => Box::new(
                            c.build(&metrics)
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::Sample(c) => Box::new(
                            c.build(&metrics)
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::Throttle(c) => Box::new(
                            c.build(&metrics)
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::Dedupe(c) => Box::new(
                            c.build(&metrics)
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::Route(c) => Box::new(
                            c.build(&metrics)
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                        TransformKind::Enrich(c) => Box::new(
                            c.build(&enrich_data[&t.id])
                                .map_err(|e| anyhow::anyhow!("transform {}: {e}", t.id))?,
                        ),
                    };
                    Operator::Transform(tr)
                }
                _ => {
                    let si = config
                        .sinks
                        .iter()
                        .position(|s| s.id == n.id)
                        .expect("planned sink");
                    Operator::Sink(sink_parts[si].remove(0))
                }
            };
            let kind = if n.role == Role::Transform {
                ComponentKind::Transform
            } else {
                ComponentKind::Sink
            };
            let exchange_keys = config
                .transforms
                .iter()
                .find(|t| t.id == n.id && n.role == Role::Transform && t.kind.is_keyed())
                .and_then(|t| t.kind.exchange_key().map(|k| (t, k)))
                .map(|(t, keys)| {
                    if keys.len() == 1 && keys[0] == crate::config::LINE_KEY {
                        return Ok(ExchangeKey::Line);
                    }
                    keys.iter()
                        .map(|f| FieldPath::parse(f))
                        .collect::<Result<Vec<_>, _>>()
                        .map(ExchangeKey::Fields)
                        .map_err(|e| anyhow::anyhow!("transform {}: key field: {e}", t.id))
                })
                .transpose()?;
            nodes.push(Node {
                id: n.id.clone(),
                op,
                metrics: registry.component(&n.id, kind, &n.type_name),
                outputs: n.outputs.clone(),
                exchange_keys,
            });
        }
        pipelines.push(Pipeline::new(nodes, plan.source_outputs.clone()));
    }

    // Rings into the shards.
    let mut inbound: Vec<Vec<RingRx<Envelope>>> = (0..shards).map(|_| Vec::new()).collect();
    let watched_bells = bells.clone();
    let mut peers: Vec<Vec<RingTx<Envelope>>> = (0..shards).map(|_| Vec::new()).collect();
    if plan.mesh {
        for (from, out) in peers.iter_mut().enumerate() {
            for (to, inb) in inbound.iter_mut().enumerate() {
                if from != to {
                    let (tx, rx) = ring::ring(
                        config.engine.ring_capacity,
                        WhenFull::Block,
                        bells[to].clone(),
                        Arc::default(),
                    );
                    out.push(tx);
                    inb.push(rx);
                }
            }
        }
    }
    // The keyed exchange: one more ring from every shard to every other one.
    let mut exchange_inbound: Vec<Vec<RingRx<Envelope>>> =
        (0..shards).map(|_| Vec::new()).collect();
    if plan.exchange {
        for (from, pipeline) in pipelines.iter_mut().enumerate() {
            let mut txs = Vec::with_capacity(shards);
            for (to, inb) in exchange_inbound.iter_mut().enumerate() {
                if from == to {
                    txs.push(None);
                    continue;
                }
                let (tx, rx) = ring::ring(
                    config.engine.ring_capacity,
                    WhenFull::Block,
                    bells[to].clone(),
                    Arc::default(),
                );
                txs.push(Some(tx));
                inb.push(rx);
            }
            pipeline.set_exchange(from, txs);
        }
    }
    let mut shard_sources: Vec<Vec<Box<dyn ShardSource>>> =
        (0..shards).map(|_| Vec::new()).collect();
    let mut thread_sources = Vec::new();
    let mut background = Vec::new();
    for (i, b) in built_sources.iter_mut().enumerate() {
        let runtime = std::mem::replace(&mut b.runtime, SourceRuntime::shards(Vec::new(), false));
        if let Some(bg) = runtime.background {
            let name = format!("sluice-src-{}-bg", config.sources[i].id);
            background.push(std::thread::Builder::new().name(name).spawn(bg)?);
        }
        match runtime.shape {
            SourceShape::Shards { parts, .. } => {
                for (shard, p) in parts.into_iter().enumerate() {
                    shard_sources[shard % shards].push(p);
                }
            }
            SourceShape::Thread(f) => {
                let mut txs = Vec::new();
                for (to, inb) in inbound.iter_mut().enumerate() {
                    let (tx, rx) = ring::ring(
                        config.engine.ring_capacity,
                        WhenFull::Block,
                        bells[to].clone(),
                        b.handle.metrics.dropped("ring_full"),
                    );
                    txs.push(tx);
                    inb.push(rx);
                }
                let out = ConnectorOutput::new(b.handle.clone(), txs, lifecycle.clone());
                thread_sources.push((config.sources[i].id.clone(), f, out));
            }
        }
    }
    debug_assert!(plan.sources.iter().all(|s| matches!(
        s.placement,
        Placement::Shards { .. } | Placement::Thread | Placement::DeadLetter { .. }
    )));

    // Writer threads first, so shards always have somewhere to put data.
    let mut threads = Vec::new();
    for (id, t) in sink_threads {
        threads.push(
            std::thread::Builder::new()
                .name(format!("sluice-sink-{id}"))
                .spawn(t)?,
        );
    }
    let mut shard_handles: Vec<runtime::ShardHandle> = Vec::new();
    for (index, (((((pipeline, inb), prs), srcs), xin), dlin)) in pipelines
        .into_iter()
        .zip(inbound)
        .zip(peers)
        .zip(shard_sources)
        .zip(exchange_inbound)
        .zip(dead_letter_inbound)
        .enumerate()
    {
        let setup = ShardSetup {
            index,
            shards,
            pipeline,
            inbound: inb,
            peers: prs,
            exchange_inbound: xin,
            dead_letter_inbound: dlin,
            sources: srcs,
            lifecycle: lifecycle.clone(),
            doorbell: bells[index].clone(),
        };
        let spec = ShardSpec {
            index,
            core: plan.cores[index],
        };
        shard_handles.push(runtime::spawn_shard(spec, move || run_shard(setup))?);
    }
    for (id, f, out) in thread_sources {
        // Reader threads may block in a read forever (stdin); they are not joined.
        std::thread::Builder::new()
            .name(format!("sluice-src-{id}"))
            .spawn(move || f(out))?;
    }

    // Watch until drained.
    // Configured sources, then dead-letter outputs: in `plan.sources` order.
    let mut handles: Vec<Arc<SourceHandle>> =
        built_sources.iter().map(|b| b.handle.clone()).collect();
    let mut dead_letter_handles: Vec<Arc<SourceHandle>> = dead_letters.into_values().collect();
    dead_letter_handles.sort_by_key(|h| h.index);
    handles.extend(dead_letter_handles);
    debug_assert!(handles.iter().zip(&plan.sources).all(|(h, p)| h.id == p.id));
    let timeout = config.engine.shutdown_timeout.0;
    let mut drain_started: Option<Instant> = None;
    let mut quiet_polls = 0;
    let mut clean = true;
    let mut failure: Option<String> = None;
    let mut last_nudge = Instant::now();
    loop {
        // Every 50 ms while running (each wake-up of this thread costs CPU at any rate), every
        // 10 ms while draining (the drain's end is three quiet polls in a row).
        std::thread::sleep(if lifecycle.is_draining() {
            Duration::from_millis(10)
        } else {
            SUPERVISE_EVERY
        });
        // A sleeping shard wakes on its doorbell or after a 100 ms timer. glommio's timers
        // can be lost on some virtual machines (DataDog/glommio#547; seen here as a rare stall
        // with data left in a shard's rings until a signal interrupted its io_uring wait), so
        // every NUDGE_EVERY each shard that sleeps is rung as if data had arrived; one atomic
        // load for a shard that is awake.
        if last_nudge.elapsed() >= NUDGE_EVERY {
            for bell in &watched_bells {
                bell.ring();
            }
            last_nudge = Instant::now();
        }
        if let Some(i) = shard_handles.iter().position(|h| h.is_finished()) {
            // A shard ended without being asked to: nothing it owned can make progress.
            let h = shard_handles.remove(i);
            let why = match h.join() {
                Err(e) => e.to_string(),
                Ok(()) => format!("shard {i} stopped unexpectedly"),
            };
            tracing::error!("{why}; stopping");
            failure = Some(why);
            clean = false;
            break;
        }
        if !state.ready.load(Ordering::Relaxed) && handles.iter().all(|h| h.is_started()) {
            state.ready.store(true, Ordering::Relaxed);
            tracing::info!("all sources running; ready");
        }
        if signal.load(Ordering::Relaxed) && !lifecycle.is_draining() {
            tracing::info!(
                "signal received: draining in-flight batches (up to {:?})",
                timeout
            );
            lifecycle.begin_drain();
        }
        let all_finished = handles.iter().all(|h| h.is_finished());
        if all_finished && drain_started.is_none() {
            lifecycle.begin_drain();
        }
        if lifecycle.is_draining() {
            let t0 = *drain_started.get_or_insert_with(Instant::now);
            // Shard-owned sources finish promptly; thread sources may be stuck in a read.
            let shard_sources_done = handles
                .iter()
                .zip(&plan.sources)
                .all(|(h, p)| h.is_finished() || p.placement == Placement::Thread);
            let in_flight: u64 = handles.iter().map(|h| h.inflight.in_flight()).sum();
            if shard_sources_done && in_flight == 0 {
                quiet_polls += 1;
                if quiet_polls >= 3 {
                    break;
                }
            } else {
                quiet_polls = 0;
            }
            if t0.elapsed() > timeout {
                tracing::warn!(
                    in_flight,
                    "drain did not finish within engine.shutdown_timeout; stopping anyway"
                );
                clean = false;
                break;
            }
        }
    }
    lifecycle.stop();
    for bell in &watched_bells {
        bell.ring();
    }
    for h in shard_handles {
        if let Err(e) = h.join() {
            tracing::error!(error = %e, "shard ended with an error");
        }
    }
    for t in threads {
        let _ = t.join();
    }
    // Source helpers (checkpoint writers) write their last state once everything stopped.
    for t in background {
        let _ = t.join();
    }
    for e in on_exit {
        e();
    }
    if let Some(why) = failure {
        anyhow::bail!("{why}");
    }
    let events_in = handles[..config.sources.len()]
        .iter()
        .map(|h| h.metrics.events_in())
        .sum();
    Ok(RunOutcome {
        clean,
        events_in,
        elapsed: started.elapsed(),
    })
}
