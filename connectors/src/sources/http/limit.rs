//! Per-client request rate limits: one token bucket per client IP address.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` tokens per second; a request
//! takes one token or is refused with the number of seconds until one will be there
//! (`Retry-After`). The map of buckets is bounded by `max_clients`: when it is full, the
//! buckets that have refilled completely (clients idle long enough that forgetting them
//! changes nothing) are dropped, and if none has, the least recently seen one is.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; a token will be there in this many seconds (at least 1).
    Deny {
        retry_after_secs: u64,
    },
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_clients: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `rate` requests per second (> 0) with bursts of `burst` (>= 1), for at most
    /// `max_clients` addresses at once.
    pub fn new(rate: f64, burst: f64, max_clients: usize) -> RateLimiter {
        RateLimiter {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            max_clients: max_clients.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for a request from `ip` at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Decision {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_clients {
            self.evict(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Decision::Allow
        } else {
            let wait = (1.0 - b.tokens) / rate;
            Decision::Deny {
                retry_after_secs: (wait.ceil() as u64).max(1),
            }
        }
    }

    fn evict(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
        if self.buckets.len() >= self.max_clients {
            if let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(ip, _)| *ip)
            {
                self.buckets.remove(&oldest);
            }
        }
    }

    /// Clients currently tracked.
    pub fn clients(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn burst_then_refill() {
        let mut l = RateLimiter::new(2.0, 3.0, 16);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip(1), t), Decision::Allow);
        }
        assert_eq!(
            l.check(ip(1), t),
            Decision::Deny {
                retry_after_secs: 1
            }
        );
        // Another client has its own bucket.
        assert_eq!(l.check(ip(2), t), Decision::Allow);
        // Half a second later one token came back.
        let t2 = t + Duration::from_millis(500);
        assert_eq!(l.check(ip(1), t2), Decision::Allow);
        assert!(matches!(l.check(ip(1), t2), Decision::Deny { .. }));
    }

    #[test]
    fn retry_after_reflects_slow_rates() {
        let mut l = RateLimiter::new(0.1, 1.0, 16);
        let t = Instant::now();
        assert_eq!(l.check(ip(1), t), Decision::Allow);
        assert_eq!(
            l.check(ip(1), t),
            Decision::Deny {
                retry_after_secs: 10
            }
        );
    }

    #[test]
    fn map_stays_bounded() {
        let mut l = RateLimiter::new(1.0, 1.0, 4);
        let t = Instant::now();
        for n in 0..100 {
            l.check(ip(n), t);
            assert!(l.clients() <= 4);
        }
        // An exhausted client evicted as least recent starts over: bounded memory wins.
        let later = t + Duration::from_millis(10);
        l.check(ip(200), later);
        assert!(l.clients() <= 4);
    }
}
