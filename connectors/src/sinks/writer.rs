//! The writer thread of a sink that does blocking I/O (console, file).
//!
//! Each shard encodes its batches itself ([`EncodeStub`], in parallel on every core) and
//! pushes the bytes through its own ring; the writer thread only writes them and drops the
//! chunk, which acknowledges the batch. When a ring is full the shard holds the batch back
//! (backpressure) instead of buffering without bound.

use crate::template::Template;
use sluice_engine::ack::AckToken;
use sluice_engine::batch::Batch;
use sluice_engine::encode::{encode_event, Encoding};
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::pipeline::ShardSink;
use sluice_engine::ring::{self, Doorbell, FullSampler, RingRx, RingTx, SampleVerdict, WhenFull};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Encoded events of one batch, grouped by destination.
pub struct Chunk {
    /// (rendered destination or empty, bytes)
    pub groups: Vec<(String, Vec<u8>)>,
    pub events: u64,
    pub created: Instant,
    pub ack: Option<AckToken>,
    /// The chunk's record in the sink's disk buffer (disk-buffered sinks only).
    pub wal_seq: Option<u64>,
}

/// Encodes batches into chunks (the shard-side work every blocking sink shares).
pub struct Encoder {
    pub encoding: Encoding,
    pub template: Option<Template>,
    pub scratch: String,
    /// Encoded bytes per event of the last batch (0 before the first): the next output is
    /// allocated for that much plus an eighth, so it is not grown (and copied) midway. The
    /// input's size alone is no guide: a parsed syslog line comes out ~40% longer as JSON.
    bytes_per_event: usize,
}

impl Encoder {
    pub fn new(encoding: Encoding, template: Option<Template>) -> Encoder {
        Encoder {
            encoding,
            template,
            scratch: String::new(),
            bytes_per_event: 0,
        }
    }

    /// The capacity to allocate for `events` encoded events whose input is `input` bytes.
    fn estimate(&self, events: usize, input: usize) -> usize {
        let learned = self.bytes_per_event + self.bytes_per_event / 8;
        (input + events * 16).max(events * learned)
    }

    fn learn(&mut self, events: usize, bytes: usize) {
        if let Some(per_event) = bytes.checked_div(events) {
            self.bytes_per_event = per_event;
        }
    }

    /// The batch's events encoded and grouped by destination, carrying its acknowledgement.
    pub fn chunk(&mut self, batch: &Batch) -> Chunk {
        let mut groups: Vec<(String, Vec<u8>)> = Vec::with_capacity(1);
        match &mut self.template {
            Some(t) if !t.is_static() => {
                for ev in &batch.events {
                    t.render(batch, ev, &mut self.scratch);
                    let g = match groups.iter().position(|(k, _)| *k == self.scratch) {
                        Some(g) => g,
                        None => {
                            let per_event = self.bytes_per_event.max(300);
                            groups.push((
                                self.scratch.clone(),
                                Vec::with_capacity(batch.len() * per_event),
                            ));
                            groups.len() - 1
                        }
                    };
                    encode_event(self.encoding, batch, ev, &mut groups[g].1);
                }
                let bytes = groups.iter().map(|(_, out)| out.len()).sum();
                self.learn(batch.len(), bytes);
            }
            t => {
                let key = t
                    .as_ref()
                    .map(|t| t.source().to_string())
                    .unwrap_or_default();
                let mut out = Vec::with_capacity(self.estimate(batch.len(), batch.buf().len()));
                for ev in &batch.events {
                    encode_event(self.encoding, batch, ev, &mut out);
                }
                self.learn(batch.len(), out.len());
                groups.push((key, out));
            }
        }
        Chunk {
            groups,
            events: batch.len() as u64,
            created: batch.origin.created,
            ack: batch.ack.clone(),
            wal_seq: None,
        }
    }
}

/// Shard-side half: encodes and hands bytes to the writer thread.
pub struct EncodeStub {
    enc: Encoder,
    when_full: WhenFull,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    /// `when_full = "sample"`: batches not kept, `reason="sampled"`.
    sampled: Arc<std::sync::atomic::AtomicU64>,
    sampler: FullSampler,
    tx: RingTx<Chunk>,
}

impl ShardSink for EncodeStub {
    fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
        if self.tx.is_full() {
            return match self.when_full {
                WhenFull::Block => Err(batch),
                WhenFull::DropNewest => {
                    // Dropped on purpose: counted, and acknowledged like a delivered batch.
                    self.dropped
                        .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
                // The held batch comes back here on every retry and stays held; the pipeline
                // holds nothing new meanwhile, so only batches arriving while the ring is full
                // and nothing is held are sampled.
                WhenFull::Sample { rate } => match self.sampler.full(rate) {
                    SampleVerdict::Hold => Err(batch),
                    SampleVerdict::Drop => {
                        // Dropped on purpose: counted, and acknowledged like a delivered batch.
                        self.sampled
                            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        Ok(())
                    }
                },
            };
        }
        let chunk = self.enc.chunk(&batch);
        match self.tx.try_push(chunk) {
            Ok(()) => {
                self.sampler.room();
                Ok(())
            }
            Err(_) => Err(batch),
        }
    }
}

/// What the writer thread does with chunks.
pub trait ChunkWriter: Send {
    /// Writes one chunk; an error fails the batch's acknowledgement.
    fn write(&mut self, chunk: &Chunk) -> std::io::Result<()>;
    /// Called when idle and at exit.
    fn flush(&mut self) {}
}

/// The body of a writer thread, started by the topology.
pub type WriterThread = Box<dyn FnOnce() + Send>;

/// The shard-side stubs of a sink and the receiving ends of their rings (one per shard,
/// all ringing `bell`), for a sink that runs its own writer loop (e.g. `http`).
pub fn stubs(
    shards: usize,
    encoding: Encoding,
    template: Option<Template>,
    metrics: &ComponentMetrics,
    when_full: WhenFull,
    bell: &Arc<Doorbell>,
) -> (Vec<Box<dyn ShardSink>>, Vec<RingRx<Chunk>>) {
    let mut parts: Vec<Box<dyn ShardSink>> = Vec::new();
    let mut rxs: Vec<RingRx<Chunk>> = Vec::new();
    for _ in 0..shards {
        let (tx, rx) = ring::ring(
            8,
            WhenFull::Block,
            bell.clone(),
            metrics.dropped("ring_full"),
        );
        parts.push(Box::new(EncodeStub {
            enc: Encoder::new(encoding, template.clone()),
            when_full,
            dropped: metrics.dropped("ring_full"),
            // Registered only when used, so other sinks show no `sampled` series.
            sampled: match when_full {
                WhenFull::Sample { .. } => metrics.dropped("sampled"),
                _ => Arc::default(),
            },
            sampler: FullSampler::default(),
            tx,
        }));
        rxs.push(rx);
    }
    (parts, rxs)
}

/// Builds the shard stubs and the writer thread of a sink.
pub fn build(
    shards: usize,
    encoding: Encoding,
    template: Option<Template>,
    metrics: Arc<ComponentMetrics>,
    when_full: WhenFull,
    mut writer: Box<dyn ChunkWriter>,
) -> (Vec<Box<dyn ShardSink>>, WriterThread) {
    let bell = Doorbell::new();
    let (parts, mut rxs) = stubs(shards, encoding, template, &metrics, when_full, &bell);
    let failures = metrics.dropped("write_error");
    let thread = Box::new(move || {
        loop {
            let mut did = false;
            for rx in rxs.iter_mut() {
                while let Some(chunk) = rx.pop() {
                    did = true;
                    if let Err(e) = writer.write(&chunk) {
                        tracing::error!(component = %metrics.id, error = %e, "write failed");
                        failures.fetch_add(chunk.events, std::sync::atomic::Ordering::Relaxed);
                        if let Some(a) = &chunk.ack {
                            a.fail();
                        }
                    }
                    if let Some(l) = &metrics.latency {
                        l.record(chunk.created.elapsed());
                    }
                }
            }
            if !did {
                writer.flush();
                // Every shard has dropped its end (it stopped, after its last tick and
                // flush): nothing more can come.
                if rxs.iter().all(|r| r.is_closed() && r.is_empty()) {
                    break;
                }
                bell.wait(Duration::from_millis(50), || {
                    rxs.iter().any(|r| !r.is_empty())
                });
            }
        }
        writer.flush();
    });
    (parts, thread)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_engine::ack::InFlight;
    use std::sync::atomic::Ordering;

    fn batch(inflight: &Arc<InFlight>, seq: u64) -> Batch {
        let mut b = Batch::from_lines(Bytes::from_static(b"{\"a\":1}\n{\"a\":2}\n"), 0);
        b.ack = Some(AckToken::new(seq, inflight, None));
        b
    }

    #[test]
    fn sample_stub_keeps_one_in_n_while_full_and_blocks_when_kept() {
        let metrics = ComponentMetrics::detached();
        let bell = Doorbell::new();
        let (mut parts, mut rxs) = stubs(
            1,
            Encoding::Ndjson,
            None,
            &metrics,
            WhenFull::Sample { rate: 4 },
            &bell,
        );
        let stub = &mut parts[0];
        let inflight = Arc::new(InFlight::default());
        // The ring holds 8 chunks: with room, every batch goes in (like block).
        for seq in 0..8 {
            assert!(stub.consume(batch(&inflight, seq)).is_ok());
        }
        assert_eq!(rxs[0].len(), 8);
        // Full: the first batch is held (handed back) and stays held on retries.
        let held = stub.consume(batch(&inflight, 8)).unwrap_err();
        let held = stub.consume(held).unwrap_err();
        // Room again: the held batch goes in.
        drop(rxs[0].pop());
        assert!(stub.consume(held).is_ok());
        // Full again: 3 of every 4 dropped (counted, acknowledged), the 4th held.
        for seq in 9..12 {
            assert!(stub.consume(batch(&inflight, seq)).is_ok());
        }
        assert!(stub.consume(batch(&inflight, 12)).is_err());
        assert_eq!(metrics.dropped("sampled").load(Ordering::Relaxed), 6);
        assert_eq!(metrics.dropped("ring_full").load(Ordering::Relaxed), 0);
        // Dropped batches were acknowledged: only the 8 chunks in the ring (and the one just
        // handed back, dropped by the test) were in flight.
        assert_eq!(inflight.in_flight(), 8);
    }
}
