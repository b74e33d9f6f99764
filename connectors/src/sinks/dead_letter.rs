//! A sink's dead-letter output, `ID.dead_letter`: events the sink failed to deliver for good
//! (the destination rejected them with a 4xx-class answer, or retries were exhausted).
//!
//! The sink's writer thread hands them over with [`DeadLetter::send`], as the sink encoded
//! them (one event per line). When no component consumes `ID.dead_letter` they are counted in
//! `sluice_events_dropped_total{reason="dead_letter"}` and dropped.
//!
//! When something consumes it, the output is a source of its own (`ID.dead_letter`, type
//! `dead_letter`) whose producer is the writer thread: `send` turns the lines back into a
//! batch and deals it to the shards through a [`ConnectorOutput`], like a connector-thread
//! source. NDJSON lines are parsed back into fields with the JSON tape parser (a line that is
//! not a JSON object stays a raw line, i.e. its `message`); text lines are the `message`.
//! Every event gets `dead_letter_reason` (the reason given to `send`) and `dead_letter_sink`
//! (the sink's ID). The source counts them (`sluice_events_in_total` and
//! `sluice_events_out_total{component="ID.dead_letter"}`) and they carry their own
//! acknowledgement tokens, so a clean stop waits until they reached their consumers.

use bytes::Bytes;
use sluice_engine::batch::{Batch, OverlayOp};
use sluice_engine::encode::Encoding;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::path::FieldPath;
use sluice_engine::source::ConnectorOutput;
use sluice_engine::value::Value;
use sluice_operators::parsers::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The field holding why an event was dead-lettered.
pub const REASON_FIELD: &str = "dead_letter_reason";
/// The field holding the ID of the sink that dead-lettered an event.
pub const SINK_FIELD: &str = "dead_letter_sink";

/// The writer thread's end of a sink's dead-letter output.
pub struct DeadLetter {
    dropped: Arc<AtomicU64>,
    out: Option<Box<Connected>>,
}

/// A dead-letter output that something consumes.
struct Connected {
    out: ConnectorOutput,
    encoding: Encoding,
    reason: FieldPath,
    sink: FieldPath,
    sink_id: Value,
    /// Lines the JSON parser rejected (reused; they stay raw lines).
    rejected: Vec<(usize, &'static str)>,
    /// Events still handed over after the process stopped (an unclean stop only: a clean
    /// drain waits for every batch in flight, and these come from batches in flight).
    stopped: Arc<AtomicU64>,
}

impl DeadLetter {
    /// A dead-letter output nobody consumes: events sent to it are counted and dropped.
    pub fn unconnected(metrics: &ComponentMetrics) -> DeadLetter {
        DeadLetter {
            dropped: metrics.dropped("dead_letter"),
            out: None,
        }
    }

    /// A dead-letter output consumed downstream: events sent to it go to the shards through
    /// `out` (the rings of the `ID.dead_letter` source). `metrics` are the sink's, `sink_id`
    /// its ID and `encoding` how it encodes (how to read the lines back).
    pub fn connected(
        metrics: &ComponentMetrics,
        sink_id: &str,
        encoding: Encoding,
        out: ConnectorOutput,
    ) -> DeadLetter {
        DeadLetter {
            dropped: metrics.dropped("dead_letter"),
            out: Some(Box::new(Connected {
                out,
                encoding,
                reason: FieldPath::single(REASON_FIELD),
                sink: FieldPath::single(SINK_FIELD),
                sink_id: Value::Str(sink_id.to_string()),
                rejected: Vec::new(),
                stopped: metrics.dropped("dead_letter_stopped"),
            })),
        }
    }

    /// Whether something consumes the output.
    pub fn is_connected(&self) -> bool {
        self.out.is_some()
    }

    /// Hands over `events` events that failed permanently. `lines` holds them as the sink
    /// encoded them, one per line, each ending in `\n`; `reason` says why, short and
    /// machine-readable (`"http_400"`, `"retries_exhausted"`). May wait for room when the
    /// consumers are slow (backpressure); never drops silently.
    ///
    /// Call it before dropping the failed batch's acknowledgement token: a drain ends when
    /// no batch is in flight, and the dead-letter batch is in flight from here on, so the
    /// events are not lost at a clean stop.
    pub fn send(&mut self, lines: Bytes, events: u64, reason: &'static str) {
        let Some(c) = &mut self.out else {
            self.dropped.fetch_add(events, Ordering::Relaxed);
            return;
        };
        let batch = c.batch(lines, reason);
        let n = batch.len() as u64;
        if c.out.send(batch).is_err() {
            tracing::warn!(
                events = n,
                reason,
                "dead letters handed over after the stop were dropped"
            );
            c.stopped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Connected {
    /// The lines as a batch of events with their fields and the two dead-letter fields.
    fn batch(&mut self, lines: Bytes, reason: &'static str) -> Batch {
        let mut batch = Batch::from_lines(lines, self.out.handle.index);
        if self.encoding == Encoding::Ndjson {
            // Lines that are not a JSON object stay raw: their only field is `message`.
            json::parse_batch(&mut batch, &mut self.rejected);
            self.rejected.clear();
        }
        batch.overlay.ops.push(OverlayOp::Set {
            path: self.reason.clone(),
            value: Value::Str(reason.to_string()),
            if_absent: false,
        });
        batch.overlay.ops.push(OverlayOp::Set {
            path: self.sink.clone(),
            value: self.sink_id.clone(),
            if_absent: false,
        });
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::encode::encode_batch;
    use sluice_engine::ring::{ring, Doorbell, WhenFull};
    use sluice_engine::shutdown::Lifecycle;
    use sluice_engine::source::SourceHandle;

    fn connected(
        encoding: Encoding,
        capacity: usize,
    ) -> (
        DeadLetter,
        sluice_engine::ring::RingRx<sluice_engine::source::Envelope>,
        Arc<SourceHandle>,
        Arc<Lifecycle>,
        Arc<ComponentMetrics>,
    ) {
        let sink = Arc::new(ComponentMetrics::detached());
        let handle = SourceHandle::new(
            7,
            "es.dead_letter",
            Arc::new(ComponentMetrics::detached()),
            0,
        );
        let (tx, rx) = ring(capacity, WhenFull::Block, Doorbell::new(), Arc::default());
        let lifecycle = Lifecycle::new();
        let out = ConnectorOutput::new(handle.clone(), vec![tx], lifecycle.clone());
        (
            DeadLetter::connected(&sink, "es", encoding, out),
            rx,
            handle,
            lifecycle,
            sink,
        )
    }

    fn ndjson(batch: &Batch) -> String {
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, batch, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unconnected_counts_and_drops() {
        let m = ComponentMetrics::detached();
        let mut d = DeadLetter::unconnected(&m);
        assert!(!d.is_connected());
        d.send(Bytes::from_static(b"a\nb\n"), 2, "http_400");
        assert_eq!(m.dropped("dead_letter").load(Ordering::Relaxed), 2);
    }

    #[test]
    fn ndjson_lines_come_back_as_fields_with_reason_and_sink() {
        let (mut d, mut rx, handle, _l, _m) = connected(Encoding::Ndjson, 4);
        d.send(
            Bytes::from_static(b"{\"id\":1,\"msg\":\"x\"}\nnot json\n{\"id\":{\"n\":[2]}}\n"),
            3,
            "http_400",
        );
        let env = rx.pop().expect("a batch");
        assert_eq!(env.source, 7);
        assert_eq!(env.batch.len(), 3);
        assert!(env.batch.ack.is_some(), "stamped: in flight until consumed");
        assert_eq!(
            ndjson(&env.batch),
            "{\"id\":1,\"msg\":\"x\",\"dead_letter_reason\":\"http_400\",\"dead_letter_sink\":\"es\"}\n\
             {\"message\":\"not json\",\"dead_letter_reason\":\"http_400\",\"dead_letter_sink\":\"es\"}\n\
             {\"id\":{\"n\":[2]},\"dead_letter_reason\":\"http_400\",\"dead_letter_sink\":\"es\"}\n"
        );
        let id = FieldPath::single("id");
        assert!(env.batch.get(&env.batch.events[0], &id).is_some());
        assert_eq!(handle.metrics.events_out(), 3);
        assert_eq!(handle.inflight.in_flight(), 1);
        drop(env);
        assert_eq!(handle.inflight.in_flight(), 0);
    }

    #[test]
    fn text_lines_become_message() {
        let (mut d, mut rx, _h, _l, _m) = connected(Encoding::Text, 4);
        d.send(
            Bytes::from_static(b"{\"a\":1}\nplain\n"),
            2,
            "retries_exhausted",
        );
        let env = rx.pop().expect("a batch");
        assert_eq!(
            ndjson(&env.batch),
            "{\"message\":\"{\\\"a\\\":1}\",\"dead_letter_reason\":\"retries_exhausted\",\"dead_letter_sink\":\"es\"}\n\
             {\"message\":\"plain\",\"dead_letter_reason\":\"retries_exhausted\",\"dead_letter_sink\":\"es\"}\n"
        );
    }

    #[test]
    fn send_waits_for_room_and_counts_what_comes_after_the_stop() {
        let (mut d, mut rx, handle, lifecycle, sink) = connected(Encoding::Ndjson, 1);
        d.send(Bytes::from_static(b"{\"a\":1}\n"), 1, "http_400");
        // The ring is full: the next send waits until the consumer makes room.
        let t = std::thread::spawn(move || {
            d.send(Bytes::from_static(b"{\"a\":2}\n"), 1, "http_400");
            d
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let first = rx.pop().expect("first");
        let mut d = t.join().unwrap();
        let second = loop {
            if let Some(e) = rx.pop() {
                break e;
            }
            std::thread::yield_now();
        };
        assert!(ndjson(&first.batch).contains("\"a\":1"));
        assert!(ndjson(&second.batch).contains("\"a\":2"));
        assert_eq!(handle.metrics.events_out(), 2);
        // After the stop a full ring no longer waits: counted, not silent.
        d.send(Bytes::from_static(b"{\"a\":3}\n"), 1, "http_400");
        lifecycle.stop();
        d.send(Bytes::from_static(b"{\"a\":4}\n{\"a\":5}\n"), 2, "http_400");
        assert_eq!(
            sink.dropped("dead_letter_stopped").load(Ordering::Relaxed),
            2
        );
        assert_eq!(sink.dropped("dead_letter").load(Ordering::Relaxed), 0);
    }
}
