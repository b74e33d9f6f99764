//! The fused operator chain of one shard: transforms and shard-side sinks called as plain
//! functions on a batch, in topological order.
//!
//! The planner turns the config graph into one [`Pipeline`] per shard. A source's batch
//! enters with [`Pipeline::push`] and walks the graph depth first; fan-out clones the batch
//! (a refcount on the buffer plus the event vector). A sink that cannot take a batch (its
//! ring to a writer thread is full) hands it back; the pipeline holds it and reports
//! itself blocked, and the shard stops its sources until it drains: that is backpressure.

use crate::batch::Batch;
use crate::metrics::ComponentMetrics;
use crate::path::FieldPath;
use crate::ring::RingTx;
use crate::source::Envelope;
use std::collections::VecDeque;
use std::hash::Hasher;
use std::sync::Arc;

/// `Envelope::source` values with this bit set carry a batch that already went through a
/// keyed exchange: the rest of the value is the node it enters at.
pub const EXCHANGED: u16 = 0x8000;

/// The main output port of a component.
pub const PORT_MAIN: u8 = 0;

/// A transform: takes a batch, emits batches on its ports.
pub trait Transform: Send {
    fn process(&mut self, batch: Batch, out: &mut Emitter);

    /// Whether the transform holds state that time must release (windows, timeouts): its
    /// shard then calls [`Transform::tick`] about every [`TICK_INTERVAL`].
    fn wants_tick(&self) -> bool {
        false
    }

    /// Emits whatever is due at `now` (closed windows). `last` is the final call before the
    /// shard stops: emit everything still held.
    fn tick(&mut self, _now: std::time::Instant, _last: bool, _out: &mut Emitter) {}
}

/// How often a shard ticks transforms that want it.
pub const TICK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The shard-side end of a sink.
pub trait ShardSink: Send {
    /// Takes a batch, or hands it back when it cannot take it now.
    // Handing the batch back by value is the point (no allocation on the blocked path).
    #[allow(clippy::result_large_err)]
    fn consume(&mut self, batch: Batch) -> Result<(), Batch>;
    /// Called when the shard is idle and before it stops.
    fn flush(&mut self) {}
}

/// Collects what a transform emits.
#[derive(Default)]
pub struct Emitter {
    items: Vec<(u8, Batch)>,
    connected: u64,
}

impl Emitter {
    /// An emitter whose `connected` ports are the set bits of the mask (for driving a
    /// transform outside a pipeline: tests, tools).
    pub fn with_connected(connected: u64) -> Emitter {
        Emitter {
            items: Vec::new(),
            connected,
        }
    }

    /// Takes what was emitted, as (port, batch) in order.
    pub fn take(&mut self) -> Vec<(u8, Batch)> {
        std::mem::take(&mut self.items)
    }

    /// Emits a batch on `port` (dropped unless something reads that port).
    pub fn emit(&mut self, port: u8, batch: Batch) {
        if self.is_connected(port) && !batch.is_empty() {
            self.items.push((port, batch));
        }
    }

    /// Whether any component reads `port`; transforms skip work for unread ports.
    pub fn is_connected(&self, port: u8) -> bool {
        port < 64 && self.connected & (1 << port) != 0
    }
}

/// A node of the fused graph.
pub enum Operator {
    Transform(Box<dyn Transform>),
    Sink(Box<dyn ShardSink>),
}

pub struct Node {
    pub id: String,
    pub op: Operator,
    pub metrics: Arc<ComponentMetrics>,
    /// For each output port, the nodes that read it.
    pub outputs: Vec<Vec<u16>>,
    /// Keyed transforms: what picks the shard that owns an event. A batch reaching this
    /// node is split by key; other shards' parts travel through the exchange rings and
    /// enter this node there.
    pub exchange_keys: Option<ExchangeKey>,
}

/// What a keyed transform's state is keyed by.
#[derive(Debug, Clone, PartialEq)]
pub enum ExchangeKey {
    /// The values of these fields (none: every event goes to one shard, e.g. a global
    /// aggregate).
    Fields(Vec<FieldPath>),
    /// The event's raw line.
    Line,
}

/// The shard's side of the keyed exchange: one ring to every other shard.
struct Exchange {
    shard: usize,
    /// Indexed by shard; `None` for this shard.
    peers: Vec<Option<RingTx<Envelope>>>,
    /// Parts whose peer ring was full, in order, per peer: retried before anything else.
    overflow: VecDeque<(usize, Envelope)>,
}

/// One shard's fused graph.
pub struct Pipeline {
    nodes: Vec<Node>,
    /// For each source index, the nodes that read it.
    source_outputs: Vec<Vec<u16>>,
    pending: VecDeque<(u16, Batch)>,
    stack: Vec<(u16, Batch)>,
    emitter: Emitter,
    exchange: Option<Exchange>,
}

impl Pipeline {
    pub fn new(nodes: Vec<Node>, source_outputs: Vec<Vec<u16>>) -> Pipeline {
        Pipeline {
            nodes,
            source_outputs,
            pending: VecDeque::new(),
            stack: Vec::with_capacity(16),
            emitter: Emitter::default(),
            exchange: None,
        }
    }

    /// Connects this pipeline (on shard `shard`) to the exchange rings toward the other
    /// shards (`peers[shard]` is `None`).
    pub fn set_exchange(&mut self, shard: usize, peers: Vec<Option<RingTx<Envelope>>>) {
        self.exchange = Some(Exchange {
            shard,
            peers,
            overflow: VecDeque::new(),
        });
    }

    /// True while a sink holds back a batch or an exchange ring is full; sources must wait.
    pub fn is_blocked(&self) -> bool {
        !self.pending.is_empty() || self.exchange_backlog()
    }

    /// True while a sink holds back a batch: nothing new may enter. (A full exchange ring
    /// alone still lets batches from other shards' exchanges in, or two shards waiting on
    /// each other would never drain.)
    pub fn sinks_blocked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Batches held back: by sinks, and exchange parts waiting for a full ring.
    pub fn backlog(&self) -> usize {
        self.pending.len() + self.exchange.as_ref().map_or(0, |x| x.overflow.len())
    }

    fn exchange_backlog(&self) -> bool {
        self.exchange
            .as_ref()
            .is_some_and(|x| !x.overflow.is_empty())
    }

    /// Runs a batch that another shard's exchange sent here (`Envelope::source` with
    /// [`EXCHANGED`] set) into its node.
    pub fn push_exchanged(&mut self, source: u16, batch: Batch) {
        let node = source & !EXCHANGED;
        if (node as usize) < self.nodes.len() {
            self.stack.push((node | EXCHANGED, batch));
            self.run();
        }
    }

    /// Runs a batch from source `source` through the graph.
    pub fn push(&mut self, source: u16, batch: Batch) {
        let Some(outs) = self.source_outputs.get(source as usize) else {
            return;
        };
        fan_out(&mut self.stack, outs, batch);
        self.run();
    }

    /// Retries batches that sinks handed back (and exchange parts whose ring was full);
    /// true when none is left.
    pub fn retry_pending(&mut self) -> bool {
        if let Some(x) = &mut self.exchange {
            while let Some((peer, env)) = x.overflow.pop_front() {
                let Some(Some(tx)) = x.peers.get_mut(peer) else {
                    continue;
                };
                if let Err(env) = tx.try_push(env) {
                    x.overflow.push_front((peer, env));
                    break;
                }
            }
        }
        for _ in 0..self.pending.len() {
            let Some((node, batch)) = self.pending.pop_front() else {
                break;
            };
            self.stack.push((node, batch));
            self.run();
        }
        self.pending.is_empty() && !self.exchange_backlog()
    }

    /// Whether any transform wants [`Pipeline::tick`] calls.
    pub fn wants_tick(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(&n.op, Operator::Transform(t) if t.wants_tick()))
    }

    /// Ticks every transform that wants it and runs what they emit through the graph.
    pub fn tick(&mut self, now: std::time::Instant, last: bool) {
        for idx in 0..self.nodes.len() {
            let node = &mut self.nodes[idx];
            let Operator::Transform(t) = &mut node.op else {
                continue;
            };
            if !t.wants_tick() {
                continue;
            }
            self.emitter.connected = connected_ports(&node.outputs);
            t.tick(now, last, &mut self.emitter);
            self.route_emitted(idx as u16);
            self.run();
        }
    }

    /// Splits `batch` by key before node `idx`: sends other shards' parts, returns this
    /// shard's part (if any events are left for it).
    fn exchange_split(&mut self, idx: u16, mut batch: Batch) -> Option<Batch> {
        let Some(x) = &mut self.exchange else {
            return Some(batch);
        };
        let shards = x.peers.len();
        if shards <= 1 {
            return Some(batch);
        }
        let keys = self.nodes[idx as usize]
            .exchange_keys
            .as_ref()
            .expect("keyed node");
        let mut parts: Vec<Vec<crate::batch::Event>> = vec![Vec::new(); shards];
        for ev in &batch.events {
            parts[shard_of(&batch, ev, keys, shards)].push(*ev);
        }
        let local = std::mem::take(&mut parts[x.shard]);
        for (peer, events) in parts.into_iter().enumerate() {
            if events.is_empty() {
                continue;
            }
            let env = Envelope {
                source: idx | EXCHANGED,
                batch: batch.sibling(events),
            };
            let Some(Some(tx)) = x.peers.get_mut(peer) else {
                continue;
            };
            // Keep per-peer order: once something waits for a peer, queue behind it.
            let queued = x.overflow.iter().any(|(p, _)| *p == peer);
            if queued {
                x.overflow.push_back((peer, env));
            } else if let Err(env) = tx.try_push(env) {
                x.overflow.push_back((peer, env));
            }
        }
        if local.is_empty() {
            return None;
        }
        batch.events = local;
        Some(batch)
    }

    fn route_emitted(&mut self, idx: u16) {
        let node = &self.nodes[idx as usize];
        for (port, out) in self.emitter.items.drain(..) {
            if port == PORT_MAIN {
                node.metrics.add_out(out.len() as u64);
            }
            if let Some(targets) = node.outputs.get(port as usize) {
                fan_out(&mut self.stack, targets, out);
            }
        }
    }

    /// Flushes every sink.
    pub fn flush(&mut self) {
        for n in &mut self.nodes {
            if let Operator::Sink(s) = &mut n.op {
                s.flush();
            }
        }
    }

    fn run(&mut self) {
        while let Some((entry, mut batch)) = self.stack.pop() {
            let idx = entry & !EXCHANGED;
            if entry & EXCHANGED == 0 && self.nodes[idx as usize].exchange_keys.is_some() {
                batch = match self.exchange_split(idx, batch) {
                    Some(local) => local,
                    None => continue,
                };
            }
            let node = &mut self.nodes[idx as usize];
            let events = batch.len() as u64;
            match &mut node.op {
                Operator::Sink(sink) => match sink.consume(batch) {
                    Ok(()) => node.metrics.add_in(events, 0),
                    Err(batch) => self.pending.push_back((idx, batch)),
                },
                Operator::Transform(t) => {
                    node.metrics.add_in(events, 0);
                    self.emitter.connected = connected_ports(&node.outputs);
                    t.process(batch, &mut self.emitter);
                    self.route_emitted(idx);
                }
            }
        }
    }
}

/// The shard that owns an event's key: a fixed-seed hash of the key fields' values
/// (missing fields hash as absent), so every shard agrees.
pub fn shard_of(
    batch: &Batch,
    ev: &crate::batch::Event,
    key: &ExchangeKey,
    shards: usize,
) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    let keys = match key {
        ExchangeKey::Fields(keys) => keys,
        ExchangeKey::Line => {
            h.write(batch.line(ev));
            return (h.finish() % shards as u64) as usize;
        }
    };
    let mut scratch = Vec::new();
    for k in keys {
        match batch.get(ev, k) {
            Some(v) => match v.as_str() {
                Some(s) => {
                    h.write_u8(1);
                    h.write(&s);
                }
                None => {
                    scratch.clear();
                    v.write_json(&mut scratch);
                    h.write_u8(2);
                    h.write(&scratch);
                }
            },
            None => h.write_u8(0),
        }
        h.write_u8(0xff);
    }
    (h.finish() % shards as u64) as usize
}

fn connected_ports(outputs: &[Vec<u16>]) -> u64 {
    outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.is_empty())
        .fold(0u64, |m, (p, _)| m | (1 << p))
}

fn fan_out(stack: &mut Vec<(u16, Batch)>, targets: &[u16], batch: Batch) {
    match targets {
        [] => {}
        [only] => stack.push((*only, batch)),
        [rest @ .., last] => {
            for t in rest {
                stack.push((*t, batch.clone()));
            }
            stack.push((*last, batch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ComponentKind, Registry};
    use bytes::Bytes;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct KeepShort;
    impl Transform for KeepShort {
        fn process(&mut self, mut batch: Batch, out: &mut Emitter) {
            let rejected = batch.partition(|b, e| b.line(e).len() < 3);
            out.emit(PORT_MAIN, batch);
            out.emit(1, rejected);
        }
    }

    struct Count(Arc<AtomicU64>, usize);
    impl ShardSink for Count {
        fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
            if self.1 > 0 {
                self.1 -= 1;
                return Err(batch);
            }
            self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn routes_ports_fans_out_and_holds_back() {
        let reg = Registry::new();
        let a = Arc::new(AtomicU64::new(0));
        let b = Arc::new(AtomicU64::new(0));
        let nodes = vec![
            Node {
                id: "t".into(),
                op: Operator::Transform(Box::new(KeepShort)),
                metrics: reg.component("t", ComponentKind::Transform, "x"),
                outputs: vec![vec![1, 2], vec![2]],
                exchange_keys: None,
            },
            Node {
                id: "a".into(),
                op: Operator::Sink(Box::new(Count(a.clone(), 0))),
                metrics: reg.component("a", ComponentKind::Sink, "x"),
                outputs: vec![],
                exchange_keys: None,
            },
            Node {
                id: "b".into(),
                op: Operator::Sink(Box::new(Count(b.clone(), 1))),
                metrics: reg.component("b", ComponentKind::Sink, "x"),
                outputs: vec![],
                exchange_keys: None,
            },
        ];
        let mut p = Pipeline::new(nodes, vec![vec![0]]);
        p.push(
            0,
            Batch::from_lines(Bytes::from_static(b"a\nbb\nccc\ndddd\n"), 0),
        );
        assert_eq!(a.load(Ordering::Relaxed), 2);
        assert!(p.is_blocked());
        assert!(p.retry_pending());
        // b saw the main output (2) and the rejected port (2), one of them after a retry.
        assert!(p.retry_pending());
        assert_eq!(b.load(Ordering::Relaxed), 4);
        assert_eq!(reg.get("t").unwrap().events_out(), 2);
        assert_eq!(reg.get("b").unwrap().events_in(), 4);
    }

    struct Record(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);
    impl Transform for Record {
        fn process(&mut self, batch: Batch, _out: &mut Emitter) {
            let mut seen = self.0.lock().unwrap();
            for e in &batch.events {
                seen.push(batch.line(e).to_vec());
            }
        }
    }

    #[test]
    fn keyed_exchange_sends_each_key_to_one_shard() {
        use crate::ring::{ring, Doorbell, WhenFull};
        let reg = Registry::new();
        let seen: Vec<_> = (0..2)
            .map(|_| Arc::new(std::sync::Mutex::new(Vec::new())))
            .collect();
        let mut pipes: Vec<Pipeline> = (0..2)
            .map(|s| {
                let node = Node {
                    id: "k".into(),
                    op: Operator::Transform(Box::new(Record(seen[s].clone()))),
                    metrics: reg.component("k", ComponentKind::Transform, "x"),
                    outputs: vec![vec![]],
                    exchange_keys: Some(ExchangeKey::Fields(vec![
                        FieldPath::parse("message").unwrap()
                    ])),
                };
                Pipeline::new(vec![node], vec![vec![0]])
            })
            .collect();
        // Ring capacity 1: the second part for the peer overflows and is retried.
        let (tx01, mut rx01) = ring(1, WhenFull::Block, Doorbell::new(), Arc::default());
        let (tx10, _rx10) = ring(1, WhenFull::Block, Doorbell::new(), Arc::default());
        pipes[0].set_exchange(0, vec![None, Some(tx01)]);
        pipes[1].set_exchange(1, vec![Some(tx10), None]);
        let lines: Vec<String> = (0..200).map(|i| format!("key{}", i % 37)).collect();
        for chunk in lines.chunks(50) {
            let data = chunk.join("\n") + "\n";
            pipes[0].push(0, Batch::from_lines(Bytes::from(data), 0));
        }
        assert!(pipes[0].is_blocked(), "the full ring leaves a backlog");
        assert!(!pipes[0].sinks_blocked());
        let mut guard = 0;
        loop {
            while let Some(env) = rx01.pop() {
                assert_ne!(env.source & EXCHANGED, 0);
                pipes[1].push_exchanged(env.source, env.batch);
            }
            if pipes[0].retry_pending() && rx01.is_empty() {
                break;
            }
            guard += 1;
            assert!(guard < 1000);
        }
        let a = seen[0].lock().unwrap().clone();
        let b = seen[1].lock().unwrap().clone();
        assert_eq!(a.len() + b.len(), 200);
        assert!(!a.is_empty() && !b.is_empty());
        for k in &a {
            assert!(
                !b.contains(k),
                "key {:?} on both shards",
                String::from_utf8_lossy(k)
            );
        }
        // Per key, order is kept.
        let mut all = a.clone();
        all.extend(b.clone());
        all.sort();
        let mut want: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
        want.sort();
        assert_eq!(all, want);
    }
}
