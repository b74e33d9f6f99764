//! Internal metrics: per-component counters, per-sink batch latency histograms, and any
//! extra series a component registers, rendered in the Prometheus text format.
//!
//! Counters are atomics updated once per batch (never per event). Handles are taken when a
//! component is built; the hot path only does `fetch_add`. The histogram is an HDR histogram
//! behind a mutex that is taken once per batch by the thread that finished it.

use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which section of the config a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    Source,
    Transform,
    Sink,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Transform => "transform",
            ComponentKind::Sink => "sink",
        }
    }
}

/// Bucket bounds of `sluice_batch_latency_seconds`.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Batch latency (source read → sink done), recorded in microseconds.
pub struct LatencyHistogram {
    hist: Mutex<Histogram<u64>>,
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    fn new() -> LatencyHistogram {
        LatencyHistogram {
            hist: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("bounds")),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn record(&self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        if let Ok(mut h) = self.hist.lock() {
            let _ = h.record(us);
        }
    }

    /// Value at quantile `q` (0..1), for summaries and tests.
    pub fn quantile(&self, q: f64) -> Duration {
        let h = self.hist.lock().expect("histogram lock");
        Duration::from_micros(h.value_at_quantile(q))
    }

    pub fn count(&self) -> u64 {
        self.hist.lock().map(|h| h.len()).unwrap_or(0)
    }
}

/// The counters of one component (shared by all its shard instances).
pub struct ComponentMetrics {
    pub id: String,
    pub kind: ComponentKind,
    pub component_type: String,
    pub events_in: AtomicU64,
    pub events_out: AtomicU64,
    pub bytes_in: AtomicU64,
    dropped: Mutex<Vec<(String, Arc<AtomicU64>)>>,
    pub latency: Option<LatencyHistogram>,
}

impl ComponentMetrics {
    /// Counters registered nowhere: for building a component only to check its config.
    pub fn detached() -> ComponentMetrics {
        ComponentMetrics {
            id: String::new(),
            kind: ComponentKind::Transform,
            component_type: String::new(),
            events_in: AtomicU64::new(0),
            events_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            dropped: Mutex::new(Vec::new()),
            latency: None,
        }
    }

    /// The drop counter for `reason` (created on first use; take it at build time).
    pub fn dropped(&self, reason: &str) -> Arc<AtomicU64> {
        let mut d = self.dropped.lock().expect("metrics lock");
        if let Some((_, c)) = d.iter().find(|(r, _)| r == reason) {
            return c.clone();
        }
        let c = Arc::new(AtomicU64::new(0));
        d.push((reason.to_string(), c.clone()));
        c
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped
            .lock()
            .map(|d| d.iter().map(|(_, c)| c.load(Ordering::Relaxed)).sum())
            .unwrap_or(0)
    }

    pub fn add_in(&self, events: u64, bytes: u64) {
        self.events_in.fetch_add(events, Ordering::Relaxed);
        if bytes > 0 {
            self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    pub fn add_out(&self, events: u64) {
        self.events_out.fetch_add(events, Ordering::Relaxed);
    }

    pub fn events_in(&self) -> u64 {
        self.events_in.load(Ordering::Relaxed)
    }

    pub fn events_out(&self) -> u64 {
        self.events_out.load(Ordering::Relaxed)
    }
}

enum ExtraValue {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicI64>),
}

struct Extra {
    name: String,
    help: String,
    labels: Vec<(String, String)>,
    value: ExtraValue,
}

/// All metrics of a running process.
/// Renders series computed at scrape time (e.g. one per file).
pub type Collector = Box<dyn Fn(&mut String) + Send + Sync>;

#[derive(Default)]
pub struct Registry {
    components: Mutex<Vec<Arc<ComponentMetrics>>>,
    extras: Mutex<Vec<Extra>>,
    collectors: Mutex<Vec<Collector>>,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// Registers a component; sinks get a latency histogram.
    pub fn component(
        &self,
        id: &str,
        kind: ComponentKind,
        component_type: &str,
    ) -> Arc<ComponentMetrics> {
        let mut comps = self.components.lock().expect("metrics lock");
        if let Some(c) = comps.iter().find(|c| c.id == id) {
            return c.clone();
        }
        let c = Arc::new(ComponentMetrics {
            id: id.to_string(),
            kind,
            component_type: component_type.to_string(),
            events_in: AtomicU64::new(0),
            events_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            dropped: Mutex::new(Vec::new()),
            latency: (kind == ComponentKind::Sink).then(LatencyHistogram::new),
        });
        comps.push(c.clone());
        c
    }

    pub fn components(&self) -> Vec<Arc<ComponentMetrics>> {
        self.components.lock().expect("metrics lock").clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<ComponentMetrics>> {
        self.components
            .lock()
            .expect("metrics lock")
            .iter()
            .find(|c| c.id == id)
            .cloned()
    }

    /// A counter series `name{labels}` owned by a component (e.g. files read).
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<AtomicU64> {
        let c = Arc::new(AtomicU64::new(0));
        self.push_extra(name, help, labels, ExtraValue::Counter(c.clone()));
        c
    }

    /// Adds series rendered at each scrape by `f` (it writes complete exposition lines).
    pub fn collector(&self, f: Collector) {
        self.collectors.lock().expect("metrics lock").push(f);
    }

    /// A gauge series `name{labels}`.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<AtomicI64> {
        let g = Arc::new(AtomicI64::new(0));
        self.push_extra(name, help, labels, ExtraValue::Gauge(g.clone()));
        g
    }

    fn push_extra(&self, name: &str, help: &str, labels: &[(&str, &str)], value: ExtraValue) {
        self.extras.lock().expect("metrics lock").push(Extra {
            name: name.to_string(),
            help: help.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        });
    }

    /// Renders every series in the Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let comps = self.components();
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String,
                       name: &str,
                       help: &str,
                       f: &dyn Fn(&ComponentMetrics) -> Option<u64>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for c in &comps {
                if let Some(v) = f(c) {
                    let _ = writeln!(
                        out,
                        "{name}{{component=\"{}\",component_kind=\"{}\",component_type=\"{}\"}} {v}",
                        escape_label(&c.id),
                        c.kind.as_str(),
                        escape_label(&c.component_type)
                    );
                }
            }
        };
        counter(
            &mut out,
            "sluice_events_in_total",
            "Events that reached the component.",
            &|c| Some(c.events_in()),
        );
        counter(
            &mut out,
            "sluice_events_out_total",
            "Events the component emitted.",
            &|c| (c.kind != ComponentKind::Sink).then(|| c.events_out()),
        );
        counter(
            &mut out,
            "sluice_bytes_in_total",
            "Raw bytes a source read.",
            &|c| (c.kind == ComponentKind::Source).then(|| c.bytes_in.load(Ordering::Relaxed)),
        );
        let _ = writeln!(
            out,
            "# HELP sluice_events_dropped_total Events the component dropped, by reason.\n# TYPE sluice_events_dropped_total counter"
        );
        for c in &comps {
            for (reason, v) in c.dropped.lock().expect("metrics lock").iter() {
                let _ = writeln!(
                    out,
                    "sluice_events_dropped_total{{component=\"{}\",reason=\"{}\"}} {}",
                    escape_label(&c.id),
                    escape_label(reason),
                    v.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sluice_batch_latency_seconds Time from a batch's creation at its source to the sink finishing it.\n# TYPE sluice_batch_latency_seconds histogram"
        );
        for c in &comps {
            let Some(l) = &c.latency else { continue };
            let h = l.hist.lock().expect("histogram lock").clone();
            let id = escape_label(&c.id);
            for &le in LATENCY_BUCKETS {
                let le_us = (le * 1e6) as u64;
                let n = if h.is_empty() {
                    0
                } else {
                    h.count_between(0, le_us)
                };
                let _ = writeln!(
                    out,
                    "sluice_batch_latency_seconds_bucket{{component=\"{id}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "sluice_batch_latency_seconds_bucket{{component=\"{id}\",le=\"+Inf\"}} {}",
                h.len()
            );
            let _ = writeln!(
                out,
                "sluice_batch_latency_seconds_sum{{component=\"{id}\"}} {}",
                l.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "sluice_batch_latency_seconds_count{{component=\"{id}\"}} {}",
                h.len()
            );
        }
        let extras = self.extras.lock().expect("metrics lock");
        let mut seen: Vec<&str> = Vec::new();
        for e in extras.iter() {
            if !seen.contains(&e.name.as_str()) {
                seen.push(&e.name);
                let kind = match e.value {
                    ExtraValue::Counter(_) => "counter",
                    ExtraValue::Gauge(_) => "gauge",
                };
                let _ = writeln!(
                    out,
                    "# HELP {} {}\n# TYPE {} {kind}",
                    e.name, e.help, e.name
                );
                for e2 in extras.iter().filter(|x| x.name == e.name) {
                    let labels: Vec<String> = e2
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                        .collect();
                    let v = match &e2.value {
                        ExtraValue::Counter(c) => c.load(Ordering::Relaxed) as i64,
                        ExtraValue::Gauge(g) => g.load(Ordering::Relaxed),
                    };
                    let _ = writeln!(out, "{}{{{}}} {v}", e2.name, labels.join(","));
                }
            }
        }
        drop(extras);
        for c in self.collectors.lock().expect("metrics lock").iter() {
            c(&mut out);
        }
        out
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_drops_histogram_and_extras() {
        let r = Registry::new();
        let src = r.component("in", ComponentKind::Source, "file");
        let sink = r.component("out", ComponentKind::Sink, "blackhole");
        src.add_in(10, 100);
        src.add_out(10);
        sink.add_in(7, 0);
        sink.dropped("ring_full").fetch_add(3, Ordering::Relaxed);
        sink.latency
            .as_ref()
            .unwrap()
            .record(Duration::from_micros(700));
        r.counter(
            "sluice_files_read_total",
            "Files read.",
            &[("component", "in")],
        )
        .fetch_add(2, Ordering::Relaxed);
        let text = r.render_prometheus();
        assert!(text.contains("sluice_events_in_total{component=\"in\",component_kind=\"source\",component_type=\"file\"} 10"));
        assert!(text.contains("sluice_events_in_total{component=\"out\",component_kind=\"sink\",component_type=\"blackhole\"} 7"));
        assert!(text.contains("sluice_bytes_in_total{component=\"in\""));
        assert!(
            text.contains("sluice_events_dropped_total{component=\"out\",reason=\"ring_full\"} 3")
        );
        assert!(
            text.contains("sluice_batch_latency_seconds_bucket{component=\"out\",le=\"0.0005\"} 0")
        );
        assert!(
            text.contains("sluice_batch_latency_seconds_bucket{component=\"out\",le=\"0.001\"} 1")
        );
        assert!(text.contains("sluice_batch_latency_seconds_count{component=\"out\"} 1"));
        assert!(text.contains("sluice_files_read_total{component=\"in\"} 2"));
        // Every sample line has a component label or is a comment.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("component=\""), "{line}");
        }
    }
}
