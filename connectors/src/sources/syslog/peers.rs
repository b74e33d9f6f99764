//! Per-peer state of a syslog source: events and bytes per peer IP (the top talkers shown in
//! `/metrics`), open connections per IP, and the per-IP token bucket of `rate_limit`.
//!
//! Owned by the connector thread alone (no lock on the hot path). The table is bounded: when
//! it is full, the half of the peers without open connections that sent the fewest events is
//! forgotten (their counters restart if they come back). Every second the thread publishes the
//! top talkers into a small shared list that the metrics collector renders.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Peers shown in `/metrics`.
pub const TOP_TALKERS: usize = 20;

/// A cheap hasher for IP addresses (the table is bounded, so flooding it costs nothing more).
#[derive(Default)]
pub struct IpHasher(u64);

impl Hasher for IpHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub events: u64,
    pub bytes: u64,
    /// Open TCP/TLS connections from this IP (such peers are never forgotten).
    pub conns: u32,
    tokens: f64,
    last: Instant,
}

/// One published top talker.
#[derive(Debug, Clone, PartialEq)]
pub struct Talker {
    pub peer: String,
    pub events: u64,
    pub bytes: u64,
}

/// The shared list the collector renders.
pub type Published = Arc<Mutex<Vec<Talker>>>;

pub struct Peers {
    map: HashMap<IpAddr, Peer, BuildHasherDefault<IpHasher>>,
    cap: usize,
    /// Events per second per IP, and the bucket size (one second's worth).
    rate: Option<f64>,
    published: Published,
    last_publish: Option<Instant>,
}

impl Peers {
    pub fn new(cap: usize, rate: Option<u64>, published: Published) -> Peers {
        Peers {
            map: HashMap::default(),
            cap: cap.max(16),
            rate: rate.map(|r| r.max(1) as f64),
            published,
            last_publish: None,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, ip: &IpAddr) -> Option<&Peer> {
        self.map.get(ip)
    }

    /// The peer's entry, created (with a full bucket) if new.
    pub fn entry(&mut self, ip: IpAddr, now: Instant) -> &mut Peer {
        if !self.map.contains_key(&ip) && self.map.len() >= self.cap {
            self.evict();
        }
        let burst = self.rate.unwrap_or(0.0);
        let p = self.map.entry(ip).or_insert_with(|| Peer {
            events: 0,
            bytes: 0,
            conns: 0,
            tokens: burst,
            last: now,
        });
        if let Some(rate) = self.rate {
            let dt = now.saturating_duration_since(p.last).as_secs_f64();
            p.tokens = (p.tokens + dt * rate).min(rate);
            p.last = now;
        }
        p
    }

    /// Forgets the quieter half of the peers that have no open connection.
    fn evict(&mut self) {
        let mut idle: Vec<(u64, IpAddr)> = self
            .map
            .iter()
            .filter(|(_, p)| p.conns == 0)
            .map(|(ip, p)| (p.events, *ip))
            .collect();
        if idle.is_empty() {
            return;
        }
        let half = idle.len().div_ceil(2);
        idle.select_nth_unstable(half - 1);
        for (_, ip) in &idle[..half] {
            self.map.remove(ip);
        }
    }

    /// UDP: takes one token for a datagram of `bytes` from `ip`; false = over the rate limit.
    pub fn admit(&mut self, ip: IpAddr, bytes: usize, now: Instant) -> bool {
        let limited = self.rate.is_some();
        let p = self.entry(ip, now);
        if limited {
            if p.tokens < 1.0 {
                return false;
            }
            p.tokens -= 1.0;
        }
        p.events += 1;
        p.bytes += bytes as u64;
        true
    }

    /// TCP: how many frames `ip` may send now (`usize::MAX` without a limit), and if none, how
    /// long until one more is allowed.
    pub fn budget(&mut self, ip: IpAddr, now: Instant) -> (usize, Duration) {
        let Some(rate) = self.rate else {
            return (usize::MAX, Duration::ZERO);
        };
        let p = self.entry(ip, now);
        if p.tokens >= 1.0 {
            (p.tokens as usize, Duration::ZERO)
        } else {
            // Wait for 50 ms worth (at least one), so a throttled connection wakes at most
            // 20 times a second.
            let target = (rate / 20.0).max(1.0);
            let wait = (target - p.tokens) / rate;
            (0, Duration::from_secs_f64(wait.max(0.001)))
        }
    }

    /// TCP: counts frames a connection of `ip` emitted (and takes their tokens).
    pub fn charge(&mut self, ip: IpAddr, frames: usize, bytes: usize, now: Instant) {
        let limited = self.rate.is_some();
        let p = self.entry(ip, now);
        if limited {
            p.tokens -= frames as f64;
        }
        p.events += frames as u64;
        p.bytes += bytes as u64;
    }

    pub fn connect(&mut self, ip: IpAddr, now: Instant) {
        self.entry(ip, now).conns += 1;
    }

    pub fn disconnect(&mut self, ip: IpAddr) {
        if let Some(p) = self.map.get_mut(&ip) {
            p.conns = p.conns.saturating_sub(1);
        }
    }

    /// Publishes the top talkers if a second passed since the last time (or `force`).
    pub fn publish(&mut self, now: Instant, force: bool) {
        if !force
            && self
                .last_publish
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_publish = Some(now);
        let mut top: Vec<(&IpAddr, &Peer)> =
            self.map.iter().filter(|(_, p)| p.events > 0).collect();
        top.sort_unstable_by(|a, b| b.1.events.cmp(&a.1.events).then(a.0.cmp(b.0)));
        top.truncate(TOP_TALKERS);
        let list: Vec<Talker> = top
            .into_iter()
            .map(|(ip, p)| Talker {
                peer: ip.to_string(),
                events: p.events,
                bytes: p.bytes,
            })
            .collect();
        if let Ok(mut g) = self.published.lock() {
            *g = list;
        }
    }
}

/// Renders the published top talkers of component `id`.
pub fn render(out: &mut String, id: &str, published: &Published) {
    let id = id.replace('\\', "\\\\").replace('"', "\\\"");
    let list = published.lock().map(|g| g.clone()).unwrap_or_default();
    let _ = writeln!(
        out,
        "# HELP sluice_syslog_peer_events_total Events received from a peer IP (the top {TOP_TALKERS} talkers).\n# TYPE sluice_syslog_peer_events_total counter"
    );
    for t in &list {
        let _ = writeln!(
            out,
            "sluice_syslog_peer_events_total{{component=\"{id}\",peer=\"{}\"}} {}",
            t.peer, t.events
        );
    }
    let _ = writeln!(
        out,
        "# HELP sluice_syslog_peer_bytes_total Message bytes received from a peer IP (the top {TOP_TALKERS} talkers).\n# TYPE sluice_syslog_peer_bytes_total counter"
    );
    for t in &list {
        let _ = writeln!(
            out,
            "sluice_syslog_peer_bytes_total{{component=\"{id}\",peer=\"{}\"}} {}",
            t.peer, t.bytes
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn token_bucket_admits_one_second_then_refills() {
        let mut p = Peers::new(100, Some(10), Published::default());
        let t0 = Instant::now();
        let admitted = (0..25).filter(|_| p.admit(ip(1), 5, t0)).count();
        assert_eq!(admitted, 10, "a full bucket is one second's worth");
        assert!(p.admit(ip(2), 5, t0), "buckets are per IP");
        let t1 = t0 + Duration::from_millis(500);
        let admitted = (0..25).filter(|_| p.admit(ip(1), 5, t1)).count();
        assert_eq!(admitted, 5);
        assert_eq!(p.get(&ip(1)).unwrap().events, 15);
    }

    #[test]
    fn tcp_budget_waits_for_the_debt() {
        let mut p = Peers::new(100, Some(100), Published::default());
        let t0 = Instant::now();
        assert_eq!(p.budget(ip(1), t0).0, 100);
        p.charge(ip(1), 100, 1000, t0);
        let (n, wait) = p.budget(ip(1), t0);
        assert_eq!(n, 0);
        // 50 ms worth of tokens (5) plus the debt (0) at 100/s.
        assert!(wait >= Duration::from_millis(49) && wait <= Duration::from_millis(51));
        let (n, _) = p.budget(ip(1), t0 + Duration::from_millis(200));
        assert_eq!(n, 20);
        let mut free = Peers::new(100, None, Published::default());
        assert_eq!(free.budget(ip(1), t0).0, usize::MAX);
    }

    #[test]
    fn table_is_bounded_and_keeps_connected_and_loud_peers() {
        let mut p = Peers::new(16, None, Published::default());
        let t = Instant::now();
        p.connect(ip(1), t);
        for _ in 0..1000 {
            p.admit(ip(2), 1, t);
        }
        for n in 100..10_000 {
            p.admit(ip(n), 1, t);
            assert!(p.len() <= 16);
        }
        assert!(p.get(&ip(1)).is_some(), "a connected peer is kept");
        assert_eq!(
            p.get(&ip(2)).unwrap().events,
            1000,
            "the loudest peer is kept"
        );
    }

    #[test]
    fn publishes_top_talkers_sorted() {
        let published = Published::default();
        let mut p = Peers::new(100, None, published.clone());
        let t = Instant::now();
        for n in 0..30u32 {
            for _ in 0..=n {
                p.admit(ip(n), 10, t);
            }
        }
        p.publish(t, false);
        let list = published.lock().unwrap().clone();
        assert_eq!(list.len(), TOP_TALKERS);
        assert_eq!(list[0].peer, "0.0.0.29");
        assert_eq!((list[0].events, list[0].bytes), (30, 300));
        let mut text = String::new();
        render(&mut text, "sys", &published);
        assert!(text
            .contains("sluice_syslog_peer_events_total{component=\"sys\",peer=\"0.0.0.29\"} 30"));
        assert!(text
            .contains("sluice_syslog_peer_bytes_total{component=\"sys\",peer=\"0.0.0.10\"} 110"));
        assert!(!text.contains("peer=\"0.0.0.9\""));
    }
}
