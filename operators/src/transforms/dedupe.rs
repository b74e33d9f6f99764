//! `type = "dedupe"`: drops events whose key was seen recently. Duplicates go to
//! `ID.dropped` if something reads it, else they are counted as dropped
//! (`reason="duplicate"`).
//!
//! The key is the values of `fields` (see [`super::keyed`] for how values are hashed; a
//! missing field counts as "absent", which is one value like any other), or, with no
//! `fields`, the event's raw line as it came in. Only a 128-bit xxh3 hash of the key is
//! remembered: two different keys would be taken for the same one with odds of about
//! n²/2¹²⁹ for n keys, i.e. never in practice.
//!
//! "Recently" is the last `cache_size` distinct keys, in least-recently-seen order: a
//! duplicate refreshes its key, and the oldest key is forgotten when a new one comes in
//! (after which that key passes again). The cache is a slab of nodes linked by index plus
//! a hash map, so once it is full nothing is allocated per event.

use super::keyed::{emit_kept, parse_paths, KeyHasher, PrehashedMap};
use serde::Deserialize;
use sluice_engine::batch::{Batch, Event};
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::pipeline::{Emitter, Transform};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_128;

fn default_cache_size() -> usize {
    5000
}

/// The largest `cache_size` (node links are `u32`).
const MAX_CACHE_SIZE: usize = (u32::MAX - 1) as usize;

/// Options of the `dedupe` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// The fields that make up the key; empty (the default): the whole raw line.
    #[serde(default)]
    pub fields: Vec<String>,
    /// How many distinct keys to remember (default 5000).
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

impl DedupeConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &["dropped"];

    /// The fields whose values must decide the shard. Empty when the key is the whole line:
    /// then see [`DedupeConfig::keyed_by_line`].
    pub fn key_fields(&self) -> Vec<String> {
        self.fields.clone()
    }

    /// The key is the raw line: all copies of a line must reach the same shard.
    pub fn keyed_by_line(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn build(&self, metrics: &ComponentMetrics) -> Result<Dedupe, String> {
        if self.cache_size == 0 || self.cache_size > MAX_CACHE_SIZE {
            return Err(format!(
                "`cache_size` must be between 1 and {MAX_CACHE_SIZE}"
            ));
        }
        let hasher = if self.fields.is_empty() {
            None
        } else {
            Some(KeyHasher::new(parse_paths("fields", &self.fields)?))
        };
        Ok(Dedupe {
            hasher,
            seen: Lru::new(self.cache_size),
            duplicates: metrics.dropped("duplicate"),
        })
    }
}

pub struct Dedupe {
    hasher: Option<KeyHasher>,
    seen: Lru,
    duplicates: Arc<AtomicU64>,
}

impl Dedupe {
    fn is_new(&mut self, batch: &Batch, ev: &Event) -> bool {
        let key = match &mut self.hasher {
            Some(h) => h.hash128(batch, ev),
            None => xxh3_128(batch.line(ev)),
        };
        !self.seen.touch(key)
    }
}

impl Transform for Dedupe {
    fn process(&mut self, batch: Batch, out: &mut Emitter) {
        let duplicates = self.duplicates.clone();
        emit_kept(batch, out, &duplicates, |b, e| self.is_new(b, e));
    }
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    key: u128,
    /// Toward the most recently seen.
    newer: u32,
    /// Toward the least recently seen.
    older: u32,
}

/// A set of the last `capacity` distinct keys seen, least recently seen first out.
struct Lru {
    index: PrehashedMap<u128, u32>,
    nodes: Vec<Node>,
    newest: u32,
    oldest: u32,
    capacity: usize,
}

impl Lru {
    fn new(capacity: usize) -> Lru {
        // Up front for the usual sizes; larger caches grow as they fill.
        let upfront = capacity.min(1 << 16);
        let mut index = PrehashedMap::default();
        index.reserve(upfront);
        Lru {
            index,
            nodes: Vec::with_capacity(upfront),
            newest: NIL,
            oldest: NIL,
            capacity,
        }
    }

    /// Marks `key` as just seen. Returns whether it was already there; if not, inserts it,
    /// forgetting the least recently seen key when full.
    fn touch(&mut self, key: u128) -> bool {
        if let Some(&i) = self.index.get(&key) {
            self.unlink(i);
            self.push_newest(i);
            return true;
        }
        let i = if self.nodes.len() < self.capacity {
            self.nodes.push(Node {
                key,
                newer: NIL,
                older: NIL,
            });
            (self.nodes.len() - 1) as u32
        } else {
            let i = self.oldest;
            self.unlink(i);
            if let Some(n) = self.nodes.get_mut(i as usize) {
                self.index.remove(&n.key);
                n.key = key;
            }
            i
        };
        self.index.insert(key, i);
        self.push_newest(i);
        false
    }

    fn unlink(&mut self, i: u32) {
        let Some(&Node { newer, older, .. }) = self.nodes.get(i as usize) else {
            return;
        };
        match self.nodes.get_mut(newer as usize) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
        match self.nodes.get_mut(older as usize) {
            Some(n) => n.newer = newer,
            None => self.oldest = newer,
        }
    }

    fn push_newest(&mut self, i: u32) {
        let old_newest = self.newest;
        if let Some(n) = self.nodes.get_mut(i as usize) {
            n.newer = NIL;
            n.older = old_newest;
        }
        match self.nodes.get_mut(old_newest as usize) {
            Some(n) => n.newer = i,
            None => self.oldest = i,
        }
        self.newest = i;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::keyed::harness::{batch_of, lines, metrics, Harness};
    use std::sync::atomic::Ordering;

    fn config(fields: &[&str], cache_size: usize) -> DedupeConfig {
        DedupeConfig {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            cache_size,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn json_batch(lines: &[String]) -> Batch {
        let mut b = batch_of(lines);
        let mut rejected = Vec::new();
        crate::parsers::json::parse_batch(&mut b, &mut rejected);
        assert!(rejected.is_empty());
        b
    }

    #[test]
    fn whole_line_repeats_are_dropped_across_batches() {
        let m = metrics("d");
        let cfg = config(&[], 100);
        assert!(cfg.keyed_by_line() && cfg.key_fields().is_empty());
        let mut h = Harness::new(Box::new(cfg.build(&m).unwrap()), m.clone(), false);
        h.push(batch_of(&strings(&["a", "b", "a", "c", "b"])));
        h.push(batch_of(&strings(&["c", "d", "a", "a b"])));
        assert_eq!(lines(&h.take_main()), ["a", "b", "c", "d", "a b"]);
        assert_eq!(m.dropped("duplicate").load(Ordering::Relaxed), 4);
    }

    #[test]
    fn field_keys_and_the_dropped_port() {
        let m = metrics("d");
        let cfg = config(&["user", "action"], 100);
        assert_eq!(cfg.key_fields(), strings(&["user", "action"]));
        let mut h = Harness::new(Box::new(cfg.build(&m).unwrap()), m.clone(), true);
        h.push(json_batch(&strings(&[
            r#"{"user":"u1","action":"login","t":1}"#,
            r#"{"user":"u1","action":"login","t":2}"#,
            r#"{"action":"login","user":"u1","t":3}"#,
            r#"{"user":"u1","action":"logout","t":4}"#,
            r#"{"user":"u2","action":"login","t":5}"#,
            r#"{"action":"login","t":6}"#,
            r#"{"action":"login","t":7}"#,
            r#"{"user":null,"action":"login","t":8}"#,
            r#"{"t":9}"#,
            r#"{"t":10}"#,
        ])));
        let ts = |batches: Vec<Batch>| -> Vec<String> {
            lines(&batches)
                .iter()
                .map(|l| l[l.find("\"t\":").unwrap() + 4..l.len() - 1].to_string())
                .collect()
        };
        // Missing fields hash as "absent": t=6 and 7 share a key, and null is another value.
        assert_eq!(ts(h.take_main()), ["1", "4", "5", "6", "8", "9"]);
        assert_eq!(ts(h.take_dropped()), ["2", "3", "7", "10"]);
        assert_eq!(m.dropped("duplicate").load(Ordering::Relaxed), 0);
    }

    #[test]
    fn eviction_lets_an_old_key_through_again() {
        let m = metrics("d");
        let mut h = Harness::new(
            Box::new(config(&[], 2).build(&m).unwrap()),
            m.clone(),
            false,
        );
        // Cache of 2: "a" is refreshed by its repeat, so "b" is the one "c" evicts.
        h.push(batch_of(&strings(&["a", "b", "a", "c", "a", "b", "c"])));
        assert_eq!(lines(&h.take_main()), ["a", "b", "c", "b", "c"]);
        assert_eq!(m.dropped("duplicate").load(Ordering::Relaxed), 2);
    }

    #[test]
    fn lru_stays_consistent_under_churn() {
        let mut lru = Lru::new(3);
        let mut model: Vec<u128> = Vec::new(); // newest last
        let mut x = 12345u64;
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = ((x >> 33) % 7) as u128;
            let was = model.iter().position(|&k| k == key);
            assert_eq!(lru.touch(key), was.is_some());
            if let Some(p) = was {
                model.remove(p);
            } else if model.len() == 3 {
                model.remove(0);
            }
            model.push(key);
            assert_eq!(lru.len(), model.len());
        }
    }

    #[test]
    fn config_errors() {
        let m = metrics("d");
        assert!(config(&[], 0).build(&m).is_err());
        assert!(config(&["a..b"], 10)
            .build(&m)
            .err()
            .unwrap()
            .contains("a..b"));
        let c: Result<DedupeConfig, _> = serde_json::from_str(r#"{"ignore_fields":["x"]}"#);
        assert!(c.is_err());
        let c: DedupeConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.cache_size, 5000);
        assert!(c.fields.is_empty());
    }
}
