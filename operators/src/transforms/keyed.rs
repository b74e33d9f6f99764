//! What the stateful transforms (`sample`, `throttle`, `dedupe`) share: hashing an event's
//! key fields without allocating ([`KeyHasher`]), a hash map keyed by such hashes
//! ([`PrehashedMap`]), and sending rejected events to `ID.dropped` or counting them.
//!
//! A key is the values of a list of field paths. Each field is hashed as a tag (absent,
//! string, other JSON), its length and its bytes: string content unescaped, any other value as
//! its JSON text (so `1` and `1.0` are different keys, and `"1"` differs from `1`). The hash
//! is xxh3 with its default secret, so it is the same on every shard and across restarts.

use super::PORT_DROPPED;
use sluice_engine::batch::{Batch, Event};
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, PORT_MAIN};
use sluice_engine::value::unescape_json_str;
use sluice_engine::{Value, ValueRef};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use xxhash_rust::xxh3::Xxh3Default;

/// Default bound on the number of keys a keyed transform remembers.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

const TAG_ABSENT: u8 = 0;
const TAG_STRING: u8 = 1;
const TAG_JSON: u8 = 2;

/// Parses config field paths; the error names `option` and the bad path.
pub fn parse_paths(option: &str, fields: &[String]) -> Result<Vec<FieldPath>, String> {
    fields
        .iter()
        .map(|f| FieldPath::parse(f).map_err(|e| format!("`{option}`: {e}")))
        .collect()
}

/// The bytes that stand for a value in a key: string content (unescaped into `scratch` when
/// it holds escapes), anything else as JSON text written into `scratch`. Returns the tag too.
pub fn value_bytes<'a>(value: ValueRef<'a>, scratch: &'a mut Vec<u8>) -> (u8, &'a [u8]) {
    match value {
        ValueRef::Str {
            raw,
            escaped: false,
        } => (TAG_STRING, raw),
        ValueRef::Str { raw, escaped: true } => {
            scratch.clear();
            if unescape_json_str(raw, scratch) {
                (TAG_STRING, &scratch[..])
            } else {
                (TAG_STRING, raw)
            }
        }
        ValueRef::Owned(Value::Str(s)) => (TAG_STRING, s.as_bytes()),
        other => {
            scratch.clear();
            other.write_json(scratch);
            (TAG_JSON, &scratch[..])
        }
    }
}

/// Hashes the values of a fixed list of fields of an event. Holds its scratch buffers, so
/// hashing allocates nothing once they have grown to the largest value seen.
pub struct KeyHasher {
    paths: Vec<FieldPath>,
    scratch: Vec<u8>,
    hasher: Xxh3Default,
}

impl KeyHasher {
    pub fn new(paths: Vec<FieldPath>) -> KeyHasher {
        KeyHasher {
            paths,
            scratch: Vec::new(),
            hasher: Xxh3Default::new(),
        }
    }

    fn feed(&mut self, batch: &Batch, ev: &Event) {
        self.hasher.reset();
        for path in &self.paths {
            match batch.get(ev, path) {
                None => self.hasher.update(&[TAG_ABSENT]),
                Some(v) => {
                    let (tag, bytes) = value_bytes(v, &mut self.scratch);
                    self.hasher.update(&[tag]);
                    self.hasher.update(&(bytes.len() as u64).to_le_bytes());
                    self.hasher.update(bytes);
                }
            }
        }
    }

    /// 64-bit hash of the key (two keys share a hash with odds about n²/2⁶⁵ for n keys).
    pub fn hash64(&mut self, batch: &Batch, ev: &Event) -> u64 {
        self.feed(batch, ev);
        self.hasher.digest()
    }

    /// 128-bit hash of the key (collisions are negligible at any realistic number of keys).
    pub fn hash128(&mut self, batch: &Batch, ev: &Event) -> u128 {
        self.feed(batch, ev);
        self.hasher.digest128()
    }
}

/// A [`Hasher`] for keys that already are good hashes: it passes them through.
#[derive(Default, Clone, Copy)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64 ^ (n >> 64) as u64;
    }
}

/// A map keyed by hashes computed elsewhere.
pub type PrehashedMap<K, V> = HashMap<K, V, BuildHasherDefault<PrehashedHasher>>;

/// Emits the events `keep` accepts on the main port; the others go to `ID.dropped` when it
/// is read, else they are added to `dropped`.
pub fn emit_kept(
    mut batch: Batch,
    out: &mut Emitter,
    dropped: &AtomicU64,
    keep: impl FnMut(&Batch, &Event) -> bool,
) {
    if out.is_connected(PORT_DROPPED) {
        let rejected = batch.partition(keep);
        out.emit(PORT_DROPPED, rejected);
    } else {
        let removed = batch.retain(keep);
        if removed > 0 {
            dropped.fetch_add(removed as u64, Ordering::Relaxed);
        }
    }
    out.emit(PORT_MAIN, batch);
}

/// Runs a transform in a one-node pipeline and collects what it emits on each port.
#[cfg(test)]
pub mod harness {
    use sluice_engine::batch::Batch;
    use sluice_engine::metrics::{ComponentKind, ComponentMetrics, Registry};
    use sluice_engine::pipeline::{Node, Operator, Pipeline, ShardSink, Transform};
    use std::sync::{Arc, Mutex};

    type Captured = Arc<Mutex<Vec<Batch>>>;

    struct Capture(Captured);

    impl ShardSink for Capture {
        fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
            self.0.lock().expect("capture lock").push(batch);
            Ok(())
        }
    }

    /// Metrics of a transform under test.
    pub fn metrics(id: &str) -> Arc<ComponentMetrics> {
        Registry::new().component(id, ComponentKind::Transform, id)
    }

    pub struct Harness {
        pipeline: Pipeline,
        main: Captured,
        dropped: Captured,
    }

    impl Harness {
        /// `connect_dropped`: whether something reads port 1.
        pub fn new(
            transform: Box<dyn Transform>,
            metrics: Arc<ComponentMetrics>,
            connect_dropped: bool,
        ) -> Harness {
            let main = Captured::default();
            let dropped = Captured::default();
            let sink = |c: &Captured, id: &str| Node {
                id: id.into(),
                op: Operator::Sink(Box::new(Capture(c.clone()))),
                metrics: metrics.clone(),
                outputs: vec![],
                exchange_keys: None,
            };
            let outputs = if connect_dropped {
                vec![vec![1], vec![2]]
            } else {
                vec![vec![1]]
            };
            let nodes = vec![
                Node {
                    id: "t".into(),
                    op: Operator::Transform(transform),
                    metrics: metrics.clone(),
                    outputs,
                    exchange_keys: None,
                },
                sink(&main, "main"),
                sink(&dropped, "dropped"),
            ];
            Harness {
                pipeline: Pipeline::new(nodes, vec![vec![0]]),
                main,
                dropped,
            }
        }

        pub fn push(&mut self, batch: Batch) {
            self.pipeline.push(0, batch);
        }

        /// The batches emitted on the main port since the last call.
        pub fn take_main(&self) -> Vec<Batch> {
            std::mem::take(&mut *self.main.lock().expect("capture lock"))
        }

        /// The batches emitted on `dropped` since the last call.
        pub fn take_dropped(&self) -> Vec<Batch> {
            std::mem::take(&mut *self.dropped.lock().expect("capture lock"))
        }
    }

    /// The raw lines of the events of `batches`, in order.
    pub fn lines(batches: &[Batch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                b.events
                    .iter()
                    .map(|e| String::from_utf8_lossy(b.line(e)).into_owned())
            })
            .collect()
    }

    /// A raw-line batch of `lines`.
    pub fn batch_of(lines: &[String]) -> Batch {
        let mut text = lines.join("\n");
        text.push('\n');
        Batch::from_lines(bytes::Bytes::from(text), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn json_batch(lines: &str) -> Batch {
        let mut b = Batch::from_lines(Bytes::from(lines.to_string()), 0);
        let mut rejected = Vec::new();
        crate::parsers::json::parse_batch(&mut b, &mut rejected);
        assert!(rejected.is_empty());
        b
    }

    #[test]
    fn key_hash_sees_values_not_their_spelling() {
        let b = json_batch(concat!(
            r#"{"a":"xy","b":1}"#,
            "\n",
            r#"{"b":1,"a":"x\u0079"}"#,
            "\n",
            r#"{"a":"xy","b":"1"}"#,
            "\n",
            r#"{"a":"xy"}"#,
            "\n",
            r#"{"a":"xy","b":null}"#,
            "\n",
        ));
        let mut h = KeyHasher::new(parse_paths("fields", &["a".into(), "b".into()]).unwrap());
        let hashes: Vec<u128> = b.events.iter().map(|e| h.hash128(&b, e)).collect();
        assert_eq!(
            hashes[0], hashes[1],
            "escapes and member order do not matter"
        );
        assert_ne!(hashes[0], hashes[2], "string \"1\" is not number 1");
        assert_ne!(hashes[0], hashes[3]);
        assert_ne!(hashes[3], hashes[4], "absent is not null");
        // Stable across instances (and so across shards and restarts).
        let mut h2 = KeyHasher::new(parse_paths("fields", &["a".into(), "b".into()]).unwrap());
        assert_eq!(h2.hash128(&b, &b.events[0]), hashes[0]);
        assert_eq!(h2.hash64(&b, &b.events[0]), h.hash64(&b, &b.events[1]));
    }

    #[test]
    fn field_boundaries_are_part_of_the_key() {
        let b = json_batch(concat!(
            r#"{"a":"ab","b":"c"}"#,
            "\n",
            r#"{"a":"a","b":"bc"}"#,
            "\n"
        ));
        let mut h = KeyHasher::new(parse_paths("fields", &["a".into(), "b".into()]).unwrap());
        assert_ne!(h.hash128(&b, &b.events[0]), h.hash128(&b, &b.events[1]));
    }

    #[test]
    fn bad_paths_are_named() {
        let e = parse_paths("key", &["a..b".into()]).unwrap_err();
        assert!(e.contains("`key`") && e.contains("a..b"), "{e}");
    }
}
