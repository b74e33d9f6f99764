//! `type = "sample"`: keeps 1 event in `rate`. The others go to `ID.dropped` if something
//! reads it, else they are counted as dropped (`reason="sampled"`).
//!
//! Three ways to choose:
//! - by count (default): the 1st, (N+1)th, (2N+1)th… event this shard sees is kept;
//! - `key = "service"`: the same, counted separately for each distinct value of the key
//!   field. At most `max_keys` counters are held; when a new key would exceed that, all
//!   counters restart (each key's next event is then kept), so memory stays bounded;
//! - `deterministic_by = "trace_id"`: an event is kept iff xxh3-64 (seed 0) of the field's
//!   value (string content, or JSON text for other values) is a multiple of N, so a trace is
//!   kept or dropped as a whole, on every shard and across restarts. Events without the field
//!   are sampled by count.

use super::keyed::{
    emit_kept, parse_paths, value_bytes, KeyHasher, PrehashedMap, DEFAULT_MAX_KEYS,
};
use serde::Deserialize;
use sluice_engine::batch::{Batch, Event};
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

fn default_max_keys() -> usize {
    DEFAULT_MAX_KEYS
}

/// Options of the `sample` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Keep 1 event in `rate` (at least 1; 1 keeps everything).
    pub rate: u64,
    /// Sample each distinct value of this field separately.
    #[serde(default)]
    pub key: Option<String>,
    /// Keep or drop by a hash of this field's value (stateless, the same everywhere).
    #[serde(default)]
    pub deterministic_by: Option<String>,
    /// With `key`: how many keys' counters to hold (default 10000).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

impl SampleConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &["dropped"];

    /// The fields whose values must decide the shard: `key` when set (the per-key counters
    /// need all of a key's events in one place); `deterministic_by` needs no routing.
    pub fn key_fields(&self) -> Vec<String> {
        self.key.iter().cloned().collect()
    }

    pub fn build(&self, metrics: &ComponentMetrics) -> Result<Sample, String> {
        if self.rate == 0 {
            return Err("`rate` must be at least 1 (keep 1 event in `rate`)".into());
        }
        if self.max_keys == 0 {
            return Err("`max_keys` must be at least 1".into());
        }
        let mode = match (&self.key, &self.deterministic_by) {
            (Some(_), Some(_)) => {
                return Err("give either `key` or `deterministic_by`, not both".into())
            }
            (Some(key), None) => Mode::PerKey {
                hasher: Box::new(KeyHasher::new(parse_paths(
                    "key",
                    std::slice::from_ref(key),
                )?)),
                counters: PrehashedMap::default(),
            },
            (None, Some(field)) => {
                let mut paths = parse_paths("deterministic_by", std::slice::from_ref(field))?;
                Mode::Deterministic {
                    path: paths.pop().ok_or("`deterministic_by` is empty")?,
                    scratch: Vec::new(),
                }
            }
            (None, None) => Mode::Count,
        };
        Ok(Sample {
            rate: self.rate,
            max_keys: self.max_keys,
            mode,
            seen: 0,
            sampled: metrics.dropped("sampled"),
        })
    }
}

enum Mode {
    Count,
    PerKey {
        hasher: Box<KeyHasher>,
        /// Events seen per key hash.
        counters: PrehashedMap<u64, u64>,
    },
    Deterministic {
        path: FieldPath,
        scratch: Vec<u8>,
    },
}

pub struct Sample {
    rate: u64,
    max_keys: usize,
    mode: Mode,
    /// Events seen by the count mode (and, with `deterministic_by`, by events without it).
    seen: u64,
    sampled: Arc<AtomicU64>,
}

impl Sample {
    fn keep(&mut self, batch: &Batch, ev: &Event) -> bool {
        let rate = self.rate;
        let by_count = |seen: &mut u64| {
            let keep = seen.is_multiple_of(rate);
            *seen = seen.wrapping_add(1);
            keep
        };
        match &mut self.mode {
            Mode::Count => by_count(&mut self.seen),
            Mode::PerKey { hasher, counters } => {
                let key = hasher.hash64(batch, ev);
                if counters.len() >= self.max_keys && !counters.contains_key(&key) {
                    counters.clear();
                }
                by_count(counters.entry(key).or_insert(0))
            }
            Mode::Deterministic { path, scratch } => match batch.get(ev, path) {
                Some(v) => xxh3_64(value_bytes(v, scratch).1).is_multiple_of(rate),
                None => by_count(&mut self.seen),
            },
        }
    }
}

impl Transform for Sample {
    fn process(&mut self, batch: Batch, out: &mut Emitter) {
        if self.rate == 1 {
            out.emit(sluice_engine::pipeline::PORT_MAIN, batch);
            return;
        }
        let sampled = self.sampled.clone();
        emit_kept(batch, out, &sampled, |b, e| self.keep(b, e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::keyed::harness::{batch_of, lines, metrics, Harness};
    use std::sync::atomic::Ordering;

    fn config(rate: u64) -> SampleConfig {
        SampleConfig {
            rate,
            key: None,
            deterministic_by: None,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }

    fn json_batch(lines: &[String]) -> Batch {
        let mut b = batch_of(lines);
        let mut rejected = Vec::new();
        crate::parsers::json::parse_batch(&mut b, &mut rejected);
        assert!(rejected.is_empty());
        b
    }

    #[test]
    fn one_in_ten_by_count_across_batches() {
        let m = metrics("s");
        let mut h = Harness::new(Box::new(config(10).build(&m).unwrap()), m.clone(), false);
        let all: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        // Batches of 7 do not line up with the rate: the count carries over.
        for chunk in all.chunks(7) {
            h.push(batch_of(chunk));
        }
        let kept = lines(&h.take_main());
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0], "line 0");
        assert_eq!(kept[1], "line 10");
        assert_eq!(kept[99], "line 990");
        assert_eq!(m.dropped("sampled").load(Ordering::Relaxed), 900);
        assert!(h.take_dropped().is_empty());
    }

    #[test]
    fn dropped_port_gets_the_rest() {
        let m = metrics("s");
        let mut h = Harness::new(Box::new(config(3).build(&m).unwrap()), m.clone(), true);
        let all: Vec<String> = (0..9).map(|i| format!("{i}")).collect();
        h.push(batch_of(&all));
        assert_eq!(lines(&h.take_main()), ["0", "3", "6"]);
        assert_eq!(lines(&h.take_dropped()), ["1", "2", "4", "5", "7", "8"]);
        assert_eq!(m.dropped("sampled").load(Ordering::Relaxed), 0);
    }

    #[test]
    fn per_key_counts_each_key() {
        let m = metrics("s");
        let cfg = SampleConfig {
            key: Some("svc".into()),
            ..config(10)
        };
        assert_eq!(cfg.key_fields(), vec!["svc".to_string()]);
        let mut h = Harness::new(Box::new(cfg.build(&m).unwrap()), m.clone(), false);
        // 300 events of `a`, 50 of `b`, 5 without the key, interleaved.
        let mut all = Vec::new();
        for i in 0..300 {
            all.push(format!(r#"{{"svc":"a","i":{i}}}"#));
            if i % 6 == 0 {
                all.push(format!(r#"{{"svc":"b","i":{i}}}"#));
            }
            if i % 60 == 0 {
                all.push(format!(r#"{{"i":{i}}}"#));
            }
        }
        for chunk in all.chunks(64) {
            h.push(json_batch(chunk));
        }
        let kept = lines(&h.take_main());
        let count = |pat: &str| kept.iter().filter(|l| l.contains(pat)).count();
        assert_eq!(count(r#""svc":"a""#), 30);
        assert_eq!(count(r#""svc":"b""#), 5);
        assert_eq!(kept.len(), 30 + 5 + 1, "keyless events share one counter");
        assert!(kept.contains(&r#"{"svc":"b","i":0}"#.to_string()));
        assert!(kept.contains(&r#"{"svc":"b","i":60}"#.to_string()));
        assert!(kept.contains(&r#"{"svc":"a","i":290}"#.to_string()));
    }

    #[test]
    fn per_key_map_is_bounded() {
        let m = metrics("s");
        let cfg = SampleConfig {
            key: Some("k".into()),
            max_keys: 2,
            ..config(2)
        };
        let mut h = Harness::new(Box::new(cfg.build(&m).unwrap()), m, false);
        let evs: Vec<String> = ["a", "a", "b", "c", "a", "a"]
            .iter()
            .enumerate()
            .map(|(i, k)| format!(r#"{{"k":"{k}","i":{i}}}"#))
            .collect();
        h.push(json_batch(&evs));
        // a0 kept, a1 dropped, b kept, c overflows the map: counters restart, c kept,
        // a4 is a's first event again (kept), a5 dropped.
        let kept = lines(&h.take_main());
        let idx: Vec<&str> = kept.iter().map(|l| &l[l.len() - 2..l.len() - 1]).collect();
        assert_eq!(idx, ["0", "2", "3", "4"]);
    }

    const PINNED_KEPT: usize = 84;

    #[test]
    fn deterministic_is_stable_across_instances() {
        let cfg = SampleConfig {
            deterministic_by: Some("trace".into()),
            ..config(4)
        };
        assert!(cfg.key_fields().is_empty());
        let all: Vec<String> = (0..400)
            .map(|i| format!(r#"{{"trace":"t{}","i":{i}}}"#, i % 100))
            .collect();
        let run = |chunk: usize| {
            let m = metrics("s");
            let mut h = Harness::new(Box::new(cfg.build(&m).unwrap()), m, false);
            for c in all.chunks(chunk) {
                h.push(json_batch(c));
            }
            lines(&h.take_main())
        };
        let a = run(50);
        let b = run(13);
        assert_eq!(a, b);
        // Exactly the traces whose hash is a multiple of 4, each with all its 4 events.
        let want: Vec<String> = all
            .iter()
            .filter(|l| {
                let t = &l[10..l.find("\",").unwrap()];
                xxh3_64(t.as_bytes()).is_multiple_of(4)
            })
            .cloned()
            .collect();
        assert_eq!(a, want);
        assert_eq!(a.len() % 4, 0);
        assert!(!a.is_empty() && a.len() < 400);
        // Pinned, so that a change of hash (which would reshuffle traces between deployments
        // that must agree) shows up.
        assert_eq!(a.len(), PINNED_KEPT);
    }

    #[test]
    fn config_errors() {
        let m = metrics("s");
        assert!(config(0).build(&m).err().unwrap().contains("rate"));
        let both = SampleConfig {
            key: Some("a".into()),
            deterministic_by: Some("b".into()),
            ..config(2)
        };
        assert!(both.build(&m).err().unwrap().contains("not both"));
        let bad = SampleConfig {
            key: Some("a..b".into()),
            ..config(2)
        };
        assert!(bad.build(&m).err().unwrap().contains("a..b"));
        let c: Result<SampleConfig, _> = serde_json::from_str(r#"{"rate":2,"bogus":1}"#);
        assert!(c.is_err());
        let c: SampleConfig = serde_json::from_str(r#"{"rate":5}"#).unwrap();
        assert_eq!((c.rate, c.max_keys), (5, 10_000));
    }
}
