//! The `http` sink's failure policy, kept free of I/O so it can be tested with a clock the
//! test controls: the `retry` and `circuit_breaker` options, exponential backoff with full
//! jitter ([`Backoff`]), the retry budget ([`RetryBudget`]), the circuit breaker
//! ([`Breaker`]) and which answers are worth retrying ([`classify`]).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use sluice_engine::units::HumanDuration;
use std::time::{Duration, Instant};

fn default_initial() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}
fn default_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_budget() -> f64 {
    0.2
}
fn default_threshold() -> u32 {
    10
}
fn default_cool_down() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_half_open() -> u32 {
    1
}
fn default_true() -> bool {
    true
}

/// How often a failed body is sent again: a count, or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRetries {
    Count(u32),
    Unlimited,
}

impl MaxRetries {
    /// Whether a body that was retried `done` times may be retried once more.
    pub fn allows(self, done: u32) -> bool {
        match self {
            MaxRetries::Count(n) => done < n,
            MaxRetries::Unlimited => true,
        }
    }
}

impl<'de> Deserialize<'de> for MaxRetries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MaxRetries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MaxRetries, E> {
                u32::try_from(v).map(MaxRetries::Count).map_err(|_| {
                    E::custom("expected a whole number from 0 to 4294967295 or \"unlimited\"")
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MaxRetries, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MaxRetries, E> {
                if v == "unlimited" {
                    Ok(MaxRetries::Unlimited)
                } else {
                    Err(E::custom(format!(
                        "expected a whole number or \"unlimited\", found \"{v}\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `retry = { initial, max, max_retries, budget }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Backoff before the first retry (its upper bound: the jitter is full).
    #[serde(default = "default_initial")]
    pub initial: HumanDuration,
    /// Largest backoff, and the most a `Retry-After` is honoured.
    #[serde(default = "default_max")]
    pub max: HumanDuration,
    /// Retries per body before its events go to the dead letter.
    #[serde(default = "default_max_retries")]
    pub max_retries: MaxRetries,
    /// Retries allowed per first attempt over the last [`BUDGET_WINDOW`] (plus a floor).
    #[serde(default = "default_budget")]
    pub budget: f64,
}

fn default_max_retries() -> MaxRetries {
    MaxRetries::Count(10)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial: default_initial(),
            max: default_max(),
            max_retries: default_max_retries(),
            budget: default_budget(),
        }
    }
}

impl RetryConfig {
    /// Checks the values; the error names the key under `retry`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.initial.0.is_zero() || self.initial.0 > Duration::from_secs(3600) {
            return Err((
                "retry.initial",
                "must be more than 0 and at most 1h".to_string(),
            ));
        }
        if self.max.0 < self.initial.0 || self.max.0 > Duration::from_secs(86400) {
            return Err((
                "retry.max",
                "must be at least `initial` and at most 1d".to_string(),
            ));
        }
        if !(0.0..=10.0).contains(&self.budget) {
            return Err(("retry.budget", "must be between 0 and 10".to_string()));
        }
        Ok(())
    }
}

/// `circuit_breaker = { enabled, failure_threshold, cool_down, half_open_requests }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Consecutive failed requests that open the breaker.
    #[serde(default = "default_threshold")]
    pub failure_threshold: u32,
    /// How long it stays open before letting probes through.
    #[serde(default = "default_cool_down")]
    pub cool_down: HumanDuration,
    /// Probes in flight while half-open; that many successes close it.
    #[serde(default = "default_half_open")]
    pub half_open_requests: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_threshold: default_threshold(),
            cool_down: default_cool_down(),
            half_open_requests: default_half_open(),
        }
    }
}

impl BreakerConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=1_000_000).contains(&self.failure_threshold) {
            return Err((
                "circuit_breaker.failure_threshold",
                "must be between 1 and 1000000".to_string(),
            ));
        }
        if self.cool_down.0.is_zero() || self.cool_down.0 > Duration::from_secs(86400) {
            return Err((
                "circuit_breaker.cool_down",
                "must be more than 0 and at most 1d".to_string(),
            ));
        }
        if !(1..=256).contains(&self.half_open_requests) {
            return Err((
                "circuit_breaker.half_open_requests",
                "must be between 1 and 256".to_string(),
            ));
        }
        Ok(())
    }
}

/// A small PRNG (splitmix64) for the jitter: no dependency, seedable in tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the clock and the address of a local (different per sink and run).
    pub fn from_entropy() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let local = 0u8;
        Rng(t ^ (&local as *const u8 as u64).rotate_left(32))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Exponential backoff with full jitter: before retry `n` (0-based) it sleeps a uniformly
/// random time in `[0, min(max, initial × 2^n)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    rng: Rng,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, rng: Rng) -> Backoff {
        Backoff { initial, max, rng }
    }

    /// The ceiling of the sleep before retry `n`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// A random sleep before retry `n`.
    pub fn delay(&mut self, n: u32) -> Duration {
        let cap = self.ceiling(n).as_nanos() as u64;
        Duration::from_nanos(self.rng.next_u64() % (cap + 1))
    }
}

/// The window over which the retry budget counts requests and retries.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Retries always allowed per window, so a quiet sink can still retry (1 per second).
pub const BUDGET_FLOOR: f64 = 10.0;
const BUCKETS: usize = 10;

/// A retry budget (as in Finagle's or gRPC's): over the last [`BUDGET_WINDOW`], retries may
/// reach `ratio` × first attempts + [`BUDGET_FLOOR`]. A dead endpoint then gets at most that
/// share of extra load instead of every body being resent over and over.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    ratio: f64,
    /// Per bucket of `BUDGET_WINDOW / BUCKETS`: (bucket number, first attempts, retries).
    buckets: [(u64, u64, u64); BUCKETS],
    start: Instant,
}

impl RetryBudget {
    pub fn new(ratio: f64, now: Instant) -> RetryBudget {
        RetryBudget {
            ratio,
            buckets: [(u64::MAX, 0, 0); BUCKETS],
            start: now,
        }
    }

    fn bucket(&mut self, now: Instant) -> &mut (u64, u64, u64) {
        let width = BUDGET_WINDOW.as_nanos() as u64 / BUCKETS as u64;
        let n = now.saturating_duration_since(self.start).as_nanos() as u64 / width;
        let b = &mut self.buckets[(n % BUCKETS as u64) as usize];
        if b.0 != n {
            *b = (n, 0, 0);
        }
        b
    }

    fn totals(&mut self, now: Instant) -> (u64, u64) {
        let current = self.bucket(now).0;
        self.buckets
            .iter()
            .filter(|b| b.0 != u64::MAX && b.0 + BUCKETS as u64 > current)
            .fold((0, 0), |(r, t), b| (r + b.1, t + b.2))
    }

    /// Counts a first attempt (deposits `ratio` retries).
    pub fn record_request(&mut self, now: Instant) {
        self.bucket(now).1 += 1;
    }

    /// Whether one more retry fits now.
    pub fn can_retry(&mut self, now: Instant) -> bool {
        let (requests, retries) = self.totals(now);
        ((retries + 1) as f64) <= self.ratio * requests as f64 + BUDGET_FLOOR
    }

    /// Counts a retry sent.
    pub fn record_retry(&mut self, now: Instant) {
        self.bucket(now).2 += 1;
    }
}

/// The circuit breaker's state, as exported in `sluice_sink_circuit_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// Consecutive-failure circuit breaker: `failure_threshold` failed requests in a row open it;
/// after `cool_down` it lets `half_open_requests` probes through; as many successes close
/// it, one failed probe opens it again. A request counts as failed when it would be retried
/// (connection error, timeout, 408, 429, 5xx); any other answer proves the endpoint alive.
#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    failures: u32,
    open_until: Instant,
    probes_in_flight: u32,
    probe_successes: u32,
    pub openings: u64,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            failures: 0,
            open_until: Instant::now(),
            probes_in_flight: 0,
            probe_successes: 0,
            openings: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// When an open breaker will let probes through.
    pub fn open_until(&self) -> Option<Instant> {
        (self.state == BreakerState::Open).then_some(self.open_until)
    }

    /// Whether a request may go now; `Some(true)` marks it a probe (half-open).
    pub fn admit(&mut self, now: Instant) -> Option<bool> {
        if !self.cfg.enabled {
            return Some(false);
        }
        if self.state == BreakerState::Open && now >= self.open_until {
            self.state = BreakerState::HalfOpen;
            self.probes_in_flight = 0;
            self.probe_successes = 0;
        }
        match self.state {
            BreakerState::Closed => Some(false),
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                if self.probes_in_flight + self.probe_successes < self.cfg.half_open_requests {
                    self.probes_in_flight += 1;
                    Some(true)
                } else {
                    None
                }
            }
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open;
        self.open_until = now + self.cfg.cool_down.0;
        self.failures = 0;
        self.probes_in_flight = 0;
        self.probe_successes = 0;
        self.openings += 1;
    }

    /// An admitted request that was never sent: frees its probe place, judges nothing.
    pub fn release(&mut self, probe: bool) {
        if probe {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
    }

    /// The outcome of a request (`probe`: it was admitted while half-open).
    pub fn record(&mut self, ok: bool, probe: bool, now: Instant) {
        if !self.cfg.enabled {
            return;
        }
        if probe {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
        match (self.state, ok) {
            (BreakerState::Closed, true) => self.failures = 0,
            (BreakerState::Closed, false) => {
                self.failures += 1;
                if self.failures >= self.cfg.failure_threshold {
                    self.open(now);
                }
            }
            (BreakerState::HalfOpen, true) => {
                self.probe_successes += u32::from(probe);
                if self.probe_successes >= self.cfg.half_open_requests || !probe {
                    self.state = BreakerState::Closed;
                    self.failures = 0;
                }
            }
            (BreakerState::HalfOpen, false) if probe => self.open(now),
            // Answers to requests sent before the breaker opened change nothing.
            _ => {}
        }
    }
}

/// What to do with a request's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry,
    Permanent,
}

/// 2xx delivered; 408, 429 and 5xx retried; anything else permanent.
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

/// The dead-letter reason for a permanent status.
pub fn status_reason(status: u16) -> &'static str {
    match status {
        400 => "http_400",
        401 => "http_401",
        403 => "http_403",
        404 => "http_404",
        405 => "http_405",
        409 => "http_409",
        410 => "http_410",
        411 => "http_411",
        413 => "http_413",
        415 => "http_415",
        422 => "http_422",
        s if (400..500).contains(&s) => "http_4xx",
        _ => "http_unexpected_status",
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): whole seconds, or an HTTP-date (IMF-fixdate,
/// or the obsolete RFC 850 and asctime forms), which counts from now; a date in the past
/// means at once. `None` for anything else.
pub fn parse_retry_after(v: &[u8]) -> Option<Duration> {
    parse_retry_after_at(v, std::time::SystemTime::now())
}

/// [`parse_retry_after`] with the current time given.
pub fn parse_retry_after_at(v: &[u8], now: std::time::SystemTime) -> Option<Duration> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
