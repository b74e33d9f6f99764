//! `type = "throttle"`: passes at most `threshold` events per `window`, for each value of
//! `key` (or overall). The excess goes to `ID.dropped` if something reads it, else it is
//! counted as dropped (`reason="throttled"`).
//!
//! Windows are fixed and aligned to events, not to the clock: a key's window opens at its
//! first event and lasts `window`; the first event after it closed opens the next one. Time is
//! read once per batch (from an injectable [`Clock`]), so all events of a batch share it.
//!
//! At most `max_keys` keys have their own window. When a new key comes and the map is full,
//! windows that have closed are swept out (at most once per `window`); if it is still full,
//! the new key shares one overflow window with the other keys that did not fit.

use super::keyed::{emit_kept, parse_paths, KeyHasher, PrehashedMap, DEFAULT_MAX_KEYS};
use serde::Deserialize;
use sluice_engine::batch::Batch;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::pipeline::{Emitter, Transform};
use sluice_engine::units::HumanDuration;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the throttle reads the time (once per batch); tests pass a fake one.
pub type Clock = Box<dyn Fn() -> Instant + Send>;

fn default_max_keys() -> usize {
    DEFAULT_MAX_KEYS
}

/// Options of the `throttle` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Events allowed per window (per key), at least 1.
    pub threshold: u64,
    /// The window length, like `"1s"` or `"5m"`.
    pub window: HumanDuration,
    /// Throttle each distinct value of this field separately.
    #[serde(default)]
    pub key: Option<String>,
    /// How many keys get their own window (default 10000).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

impl ThrottleConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &["dropped"];

    /// The fields whose values must decide the shard (all of a key's events in one place).
    pub fn key_fields(&self) -> Vec<String> {
        self.key.iter().cloned().collect()
    }

    pub fn build(&self, metrics: &ComponentMetrics) -> Result<Throttle, String> {
        self.build_with_clock(metrics, Box::new(Instant::now))
    }

    /// Like [`ThrottleConfig::build`], reading the time from `clock`.
    pub fn build_with_clock(
        &self,
        metrics: &ComponentMetrics,
        clock: Clock,
    ) -> Result<Throttle, String> {
        if self.threshold == 0 {
            return Err("`threshold` must be at least 1".into());
        }
        if self.window.0.is_zero() {
            return Err("`window` must be longer than zero".into());
        }
        if self.max_keys == 0 {
            return Err("`max_keys` must be at least 1".into());
        }
        let hasher = match &self.key {
            Some(key) => Some(KeyHasher::new(parse_paths(
                "key",
                std::slice::from_ref(key),
            )?)),
            None => None,
        };
        Ok(Throttle {
            limits: Limits {
                threshold: self.threshold,
                window: self.window.0,
                max_keys: self.max_keys,
                windows: PrehashedMap::default(),
                shared: None,
                last_sweep: None,
            },
            hasher,
            clock,
            throttled: metrics.dropped("throttled"),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    passed: u64,
}

/// The windows and the pass/drop decision, apart from events and clocks.
struct Limits {
    threshold: u64,
    window: Duration,
    max_keys: usize,
    windows: PrehashedMap<u64, Window>,
    /// The window of an unkeyed throttle, or the overflow window of a keyed one.
    shared: Option<Window>,
    last_sweep: Option<Instant>,
}

impl Limits {
    fn pass(window: &mut Window, now: Instant, length: Duration, threshold: u64) -> bool {
        if now.saturating_duration_since(window.start) >= length {
            *window = Window {
                start: now,
                passed: 0,
            };
        }
        if window.passed < threshold {
            window.passed += 1;
            true
        } else {
            false
        }
    }

    fn pass_shared(&mut self, now: Instant) -> bool {
        let w = self.shared.get_or_insert(Window {
            start: now,
            passed: 0,
        });
        Self::pass(w, now, self.window, self.threshold)
    }

    /// Whether an event of `key` (a key hash, or `None` when unkeyed) at `now` passes.
    fn admit(&mut self, key: Option<u64>, now: Instant) -> bool {
        let Some(key) = key else {
            return self.pass_shared(now);
        };
        if let Some(w) = self.windows.get_mut(&key) {
            return Self::pass(w, now, self.window, self.threshold);
        }
        if self.windows.len() >= self.max_keys {
            self.sweep(now);
            if self.windows.len() >= self.max_keys {
                return self.pass_shared(now);
            }
        }
        let w = self.windows.entry(key).or_insert(Window {
            start: now,
            passed: 0,
        });
        Self::pass(w, now, self.window, self.threshold)
    }

    /// Forgets the windows that have closed, at most once per window length.
    fn sweep(&mut self, now: Instant) {
        let length = self.window;
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < length)
        {
            return;
        }
        self.windows
            .retain(|_, w| now.saturating_duration_since(w.start) < length);
        self.last_sweep = Some(now);
    }
}

pub struct Throttle {
    limits: Limits,
    hasher: Option<KeyHasher>,
    clock: Clock,
    throttled: Arc<AtomicU64>,
}

impl Throttle {
    /// Processes a batch as if the time were `now`.
    pub fn process_at(&mut self, batch: Batch, now: Instant, out: &mut Emitter) {
        let throttled = self.throttled.clone();
        let (limits, hasher) = (&mut self.limits, &mut self.hasher);
        emit_kept(batch, out, &throttled, |b, e| {
            let key = hasher.as_mut().map(|h| h.hash64(b, e));
            limits.admit(key, now)
        });
    }
}

impl Transform for Throttle {
    fn process(&mut self, batch: Batch, out: &mut Emitter) {
        let now = (self.clock)();
        self.process_at(batch, now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::keyed::harness::{batch_of, lines, metrics, Harness};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that reads `base + offset` milliseconds; the test moves `offset`.
    fn fake_clock() -> (Clock, Arc<AtomicU64>) {
        let base = Instant::now();
        let offset = Arc::new(AtomicU64::new(0));
        let o = offset.clone();
        let clock: Clock =
            Box::new(move || base + Duration::from_millis(o.load(Ordering::Relaxed)));
        (clock, offset)
    }

    fn config(threshold: u64, window: &str, key: Option<&str>) -> ThrottleConfig {
        ThrottleConfig {
            threshold,
            window: HumanDuration(sluice_engine::units::parse_duration(window).unwrap()),
            key: key.map(Into::into),
            max_keys: DEFAULT_MAX_KEYS,
        }
    }

    fn events(tag: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{tag}{i}")).collect()
    }

    fn json_events(key: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!(r#"{{"k":"{key}","i":{i}}}"#))
            .collect()
    }

    fn json_batch(lines: &[String]) -> Batch {
        let mut b = batch_of(lines);
        let mut rejected = Vec::new();
        crate::parsers::json::parse_batch(&mut b, &mut rejected);
        assert!(rejected.is_empty());
        b
    }

    #[test]
    fn unkeyed_windows_open_at_the_first_event() {
        let m = metrics("t");
        let (clock, at) = fake_clock();
        let t = config(3, "10s", None).build_with_clock(&m, clock).unwrap();
        let mut h = Harness::new(Box::new(t), m.clone(), false);
        let mut step = |ms: u64, tag: &str, n: usize| {
            at.store(ms, Ordering::Relaxed);
            h.push(batch_of(&events(tag, n)));
            lines(&h.take_main())
        };
        assert_eq!(step(1_000, "a", 5), ["a0", "a1", "a2"]);
        assert_eq!(step(5_000, "b", 5), Vec::<String>::new());
        // The window opened at 1s: it is still open just before 11s.
        assert_eq!(step(10_999, "c", 2), Vec::<String>::new());
        assert_eq!(step(11_000, "d", 2), ["d0", "d1"]);
        assert_eq!(step(20_999, "e", 2), ["e0"]);
        assert_eq!(step(21_000, "f", 4), ["f0", "f1", "f2"]);
        assert_eq!(
            m.dropped("throttled").load(Ordering::Relaxed),
            2 + 5 + 2 + 1 + 1
        );
    }

    #[test]
    fn per_key_windows_and_dropped_port() {
        let m = metrics("t");
        let (clock, at) = fake_clock();
        let cfg = config(2, "10s", Some("k"));
        assert_eq!(cfg.key_fields(), vec!["k".to_string()]);
        let t = cfg.build_with_clock(&m, clock).unwrap();
        let mut h = Harness::new(Box::new(t), m.clone(), true);
        let mut step = |ms: u64, evs: Vec<String>| {
            at.store(ms, Ordering::Relaxed);
            h.push(json_batch(&evs));
            (lines(&h.take_main()).len(), lines(&h.take_dropped()).len())
        };
        assert_eq!(step(0, json_events("a", 3)), (2, 1));
        assert_eq!(step(6_000, json_events("b", 3)), (2, 1));
        assert_eq!(step(7_000, json_events("a", 1)), (0, 1));
        // a's window (0s..10s) closed, b's (6s..16s) did not.
        let mut both = json_events("a", 3);
        both.extend(json_events("b", 3));
        assert_eq!(step(10_000, both.clone()), (2, 4));
        assert_eq!(step(16_000, both), (2, 4), "b reopens, a is full again");
        assert_eq!(m.dropped("throttled").load(Ordering::Relaxed), 0);
    }

    #[test]
    fn keys_beyond_max_share_an_overflow_window_until_swept() {
        let m = metrics("t");
        let cfg = ThrottleConfig {
            max_keys: 2,
            ..config(1, "10s", Some("k"))
        };
        let mut t = cfg.build(&m).unwrap();
        let t0 = Instant::now();
        let key = |s: &str| Some(xxhash_rust::xxh3::xxh3_64(s.as_bytes()));
        let l = &mut t.limits;
        assert!(l.admit(key("a"), t0));
        assert!(l.admit(key("b"), t0));
        assert!(!l.admit(key("a"), t0));
        // c and d do not fit: they share one window, so only the first passes.
        assert!(l.admit(key("c"), t0));
        assert!(!l.admit(key("d"), t0));
        assert_eq!(l.windows.len(), 2);
        // Once a and b's windows have closed, a new key sweeps them out and gets its own.
        let later = t0 + Duration::from_secs(10);
        assert!(l.admit(key("e"), later));
        assert!(!l.admit(key("e"), later));
        assert_eq!(l.windows.len(), 1);
        assert!(l.admit(key("f"), later));
        assert!(!l.admit(key("f"), later));
        assert_eq!(l.windows.len(), 2);
    }

    #[test]
    fn config_errors() {
        let m = metrics("t");
        assert!(config(0, "1s", None).build(&m).is_err());
        let zero = ThrottleConfig {
            window: HumanDuration(Duration::ZERO),
            ..config(1, "1s", None)
        };
        assert!(zero.build(&m).err().unwrap().contains("window"));
        let c: Result<ThrottleConfig, _> =
            serde_json::from_str(r#"{"threshold":5,"window":"5 parsecs"}"#);
        assert!(c.unwrap_err().to_string().contains("invalid duration"));
        let c: Result<ThrottleConfig, _> =
            serde_json::from_str(r#"{"threshold":5,"window":"1s","burst":2}"#);
        assert!(c.is_err());
        let c: ThrottleConfig = serde_json::from_str(r#"{"threshold":5,"window":"1m"}"#).unwrap();
        assert_eq!(c.window.0, Duration::from_secs(60));
        assert_eq!(c.max_keys, 10_000);
        assert!(c.key_fields().is_empty());
    }
}
