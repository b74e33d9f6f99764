//! `type = "route"`: sends each event to every named route whose CEL condition holds, and to
//! `_unmatched` when none does (like Vector's `route`).
//!
//! ```toml
//! [transforms.by_level]
//! type = "route"
//! inputs = ["parsed"]
//! routes.errors = 'level in ["error", "fatal"]'
//! routes.slow = "http.latency > 1.0"
//! ```
//!
//! Outputs are read as `by_level.errors`, `by_level.slow` and `by_level._unmatched`. Ports:
//! port 0 (the main output) is unused (nothing is ever emitted on it, so reading `by_level`
//! alone gets nothing); ports `1..=n` are the routes in config order, port `n + 1` is
//! `_unmatched` ([`RouteConfig::named_outputs`] lists them in port order). An event that
//! matches several routes goes to each of them; events go out as sibling batches sharing the
//! input's buffer (no bytes are copied). A condition is evaluated only when its answer is
//! needed: when its route is read, or to decide whether an event is unmatched while
//! `_unmatched` is read. Events that match no route while nothing reads `_unmatched` are
//! counted as dropped (`reason="unmatched"`).

use crate::condition::{Condition, ConditionError};
use indexmap::IndexMap;
use serde::Deserialize;
use sluice_engine::batch::{Batch, Event};
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::pipeline::{Emitter, Transform};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The name of the output for events no route matched.
pub const UNMATCHED: &str = "_unmatched";

/// Ports are bytes and the emitter tracks 64 of them: port 0 is unused and one is
/// `_unmatched`.
pub const MAX_ROUTES: usize = 62;

/// Options of the `route` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Output name → CEL condition, in order.
    pub routes: IndexMap<String, String>,
}

/// Why a route config was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("route `{route}`: {error}")]
    Condition {
        route: String,
        error: ConditionError,
    },
    #[error("no routes: give at least one, like routes.errors = 'level == \"error\"'")]
    Empty,
    #[error("`{UNMATCHED}` is reserved for events no route matches; rename that route")]
    Reserved,
    #[error("route names must not be empty")]
    EmptyName,
    #[error("too many routes ({0}); at most {MAX_ROUTES}")]
    TooMany(usize),
}

impl RouteConfig {
    /// The named outputs in port order: the routes, then `_unmatched` (port `i + 1` for
    /// entry `i`).
    pub fn named_outputs(&self) -> Vec<String> {
        self.routes
            .keys()
            .cloned()
            .chain(std::iter::once(UNMATCHED.to_string()))
            .collect()
    }

    /// Checks the names and compiles every condition (an error names the route and carries
    /// the column).
    pub fn compile(&self) -> Result<Vec<Condition>, RouteError> {
        if self.routes.is_empty() {
            return Err(RouteError::Empty);
        }
        if self.routes.len() > MAX_ROUTES {
            return Err(RouteError::TooMany(self.routes.len()));
        }
        self.routes
            .iter()
            .map(|(name, src)| {
                if name.is_empty() {
                    return Err(RouteError::EmptyName);
                }
                if name == UNMATCHED {
                    return Err(RouteError::Reserved);
                }
                Condition::compile(src).map_err(|error| RouteError::Condition {
                    route: name.clone(),
                    error,
                })
            })
            .collect()
    }

    pub fn build(&self, metrics: &ComponentMetrics) -> Result<Route, RouteError> {
        Ok(Route {
            conditions: self.compile()?,
            unmatched_dropped: metrics.dropped("unmatched"),
            outputs: Vec::new(),
        })
    }
}

pub struct Route {
    conditions: Vec<Condition>,
    unmatched_dropped: Arc<AtomicU64>,
    /// Per output port (`1..=n + 1`, at index `port - 1`), the events going there. Reused
    /// across batches (the inner vectors leave with the emitted batches).
    outputs: Vec<Vec<Event>>,
}

impl Route {
    fn unmatched_port(&self) -> u8 {
        self.conditions.len() as u8 + 1
    }
}

impl Transform for Route {
    fn process(&mut self, mut batch: Batch, out: &mut Emitter) {
        let n = self.conditions.len();
        let unmatched_port = self.unmatched_port();
        let unmatched_read = out.is_connected(unmatched_port);
        // Which routes are read; a route nobody reads is still evaluated when its answer
        // decides `_unmatched`.
        let mut read: u64 = 0;
        for i in 0..n {
            if out.is_connected(i as u8 + 1) {
                read |= 1 << i;
            }
        }
        self.outputs.resize_with(n + 1, Vec::new);
        // With every route read and `_unmatched` not, events matching nothing are dropped
        // here and counted (with a route unread, it was not evaluated, so nobody knows).
        let count_unmatched = !unmatched_read && read.count_ones() as usize == n;
        let mut unmatched = 0u64;
        for ev in &batch.events {
            let mut matched = false;
            for (i, cond) in self.conditions.iter().enumerate() {
                let is_read = read & (1 << i) != 0;
                if !is_read && (matched || !unmatched_read) {
                    continue;
                }
                if cond.matches(&batch, ev) {
                    matched = true;
                    if is_read {
                        self.outputs[i].push(*ev);
                    }
                }
            }
            if !matched {
                if unmatched_read {
                    self.outputs[n].push(*ev);
                } else if count_unmatched {
                    unmatched += 1;
                }
            }
        }
        if unmatched > 0 {
            self.unmatched_dropped
                .fetch_add(unmatched, Ordering::Relaxed);
        }
        // The last non-empty output takes the batch itself; the others are siblings.
        let last = self.outputs.iter().rposition(|o| !o.is_empty());
        for (i, events) in self.outputs.iter_mut().enumerate() {
            if events.is_empty() {
                continue;
            }
            let port = i as u8 + 1;
            let events = std::mem::take(events);
            if Some(i) == last {
                batch.events = events;
                out.emit(port, batch);
                return;
            }
            out.emit(port, batch.sibling(events));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_engine::encode::{encode_batch, Encoding};
    use sluice_engine::metrics::{ComponentKind, Registry};
    use sluice_engine::pipeline::{Node, Operator, Pipeline, ShardSink};
    use std::sync::Mutex;

    /// A sink that writes what it gets as NDJSON.
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl ShardSink for Capture {
        fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
            let mut out = self.0.lock().unwrap();
            encode_batch(Encoding::Ndjson, &batch, &mut out);
            Ok(())
        }
    }

    fn config(routes: &[(&str, &str)]) -> RouteConfig {
        RouteConfig {
            routes: routes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const LINES: &str = concat!(
        r#"{"level":"error","status":500}"#,
        "\n",
        r#"{"level":"info","status":200}"#,
        "\n",
        r#"{"level":"fatal","status":503}"#,
        "\n",
        r#"{"level":"debug"}"#,
        "\n",
        r#"{"level":"warn","status":404}"#,
        "\n",
    );

    fn parsed() -> Batch {
        let mut b = Batch::from_lines(Bytes::from_static(LINES.as_bytes()), 0);
        let mut rejected = Vec::new();
        assert_eq!(crate::parsers::json::parse_batch(&mut b, &mut rejected), 5);
        b
    }

    /// Runs `cfg` on the test batch with a capturing sink on each port in `read` (by output
    /// name); returns what each read output got, as NDJSON text, and the registry.
    fn run(cfg: &RouteConfig, read: &[&str]) -> (Vec<(String, String)>, Arc<Registry>) {
        let reg = Registry::new();
        let metrics = reg.component("r", ComponentKind::Transform, "route");
        let route = cfg.build(&metrics).unwrap();
        let names = cfg.named_outputs();
        let mut outputs = vec![Vec::new(); 1 + names.len()];
        let mut nodes = vec![Node {
            id: "r".into(),
            op: Operator::Transform(Box::new(route)),
            metrics,
            outputs: Vec::new(),
            exchange_keys: None,
        }];
        let mut captured = Vec::new();
        for name in read {
            let port = 1 + names.iter().position(|n| n == name).unwrap();
            let buf = Arc::new(Mutex::new(Vec::new()));
            outputs[port].push(nodes.len() as u16);
            nodes.push(Node {
                id: name.to_string(),
                op: Operator::Sink(Box::new(Capture(buf.clone()))),
                metrics: reg.component(name, ComponentKind::Sink, "capture"),
                outputs: Vec::new(),
                exchange_keys: None,
            });
            captured.push((name.to_string(), buf));
        }
        nodes[0].outputs = outputs;
        let mut p = Pipeline::new(nodes, vec![vec![0]]);
        p.push(0, parsed());
        let got = captured
            .into_iter()
            .map(|(n, b)| (n, String::from_utf8(b.lock().unwrap().clone()).unwrap()))
            .collect();
        (got, reg)
    }

    fn lines(ls: &[&str]) -> String {
        ls.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn named_outputs_are_routes_in_order_then_unmatched() {
        let cfg = config(&[("zeta", "true"), ("alpha", "false"), ("mid", "true")]);
        assert_eq!(
            cfg.named_outputs(),
            vec!["zeta", "alpha", "mid", "_unmatched"]
        );
        // Order comes from the config text too.
        let cfg: RouteConfig =
            serde_json::from_str(r#"{"routes": {"b": "true", "a": "false"}}"#).unwrap();
        assert_eq!(cfg.named_outputs(), vec!["b", "a", "_unmatched"]);
        assert!(serde_json::from_str::<RouteConfig>(r#"{"routes": {}, "x": 1}"#).is_err());
    }

    #[test]
    fn overlapping_routes_get_every_match_and_the_rest_is_unmatched() {
        let cfg = config(&[
            ("bad", r#"level in ["error", "fatal"]"#),
            ("server", "status >= 500"),
            ("client", "status >= 400 && status < 500"),
        ]);
        let (got, reg) = run(&cfg, &["bad", "server", "client", "_unmatched"]);
        let want = [
            (
                "bad",
                lines(&[
                    r#"{"level":"error","status":500}"#,
                    r#"{"level":"fatal","status":503}"#,
                ]),
            ),
            (
                "server",
                lines(&[
                    r#"{"level":"error","status":500}"#,
                    r#"{"level":"fatal","status":503}"#,
                ]),
            ),
            ("client", lines(&[r#"{"level":"warn","status":404}"#])),
            (
                "_unmatched",
                lines(&[r#"{"level":"info","status":200}"#, r#"{"level":"debug"}"#]),
            ),
        ];
        for ((name, text), (want_name, want_text)) in got.iter().zip(want.iter()) {
            assert_eq!(name, want_name);
            assert_eq!(text, want_text, "{name}");
        }
        assert_eq!(reg.get("r").unwrap().dropped_total(), 0);
        // Nothing goes to the main output.
        assert_eq!(reg.get("r").unwrap().events_out(), 0);
    }

    #[test]
    fn unread_routes_still_decide_unmatched() {
        let cfg = config(&[("bad", "level == 'error'"), ("other", "has(status)")]);
        // Only `_unmatched` is read: an event matching the unread `bad` is not unmatched.
        let (got, _) = run(&cfg, &["_unmatched"]);
        assert_eq!(got[0].1, lines(&[r#"{"level":"debug"}"#]));
        // Only `bad` is read: the others are neither emitted nor counted as dropped, since
        // `other` was not evaluated.
        let (got, reg) = run(&cfg, &["bad"]);
        assert_eq!(got[0].1, lines(&[r#"{"level":"error","status":500}"#]));
        assert_eq!(reg.get("r").unwrap().dropped_total(), 0);
    }

    #[test]
    fn unmatched_events_are_counted_when_nothing_reads_them() {
        let cfg = config(&[("bad", "level == 'error'"), ("ok", "level == 'info'")]);
        let (got, reg) = run(&cfg, &["bad", "ok"]);
        assert_eq!(got[0].1, lines(&[r#"{"level":"error","status":500}"#]));
        assert_eq!(got[1].1, lines(&[r#"{"level":"info","status":200}"#]));
        assert_eq!(reg.get("r").unwrap().dropped_total(), 3);
    }

    /// A sink that checks every batch shares `buf` (by address) and counts events.
    struct SameBuffer(usize, Arc<Mutex<usize>>);

    impl ShardSink for SameBuffer {
        fn consume(&mut self, batch: Batch) -> Result<(), Batch> {
            assert_eq!(batch.buf().as_ptr() as usize, self.0);
            *self.1.lock().unwrap() += batch.len();
            Ok(())
        }
    }

    /// A pipeline: `route` with every output port read by one [`SameBuffer`] sink.
    fn same_buffer_pipeline(cfg: &RouteConfig, b: &Batch) -> (Pipeline, Arc<Mutex<usize>>) {
        let reg = Registry::new();
        let metrics = reg.component("r", ComponentKind::Transform, "route");
        let route = cfg.build(&metrics).unwrap();
        let mut outputs = vec![vec![1u16]; 1 + cfg.named_outputs().len()];
        outputs[0].clear();
        let seen = Arc::new(Mutex::new(0));
        let nodes = vec![
            Node {
                id: "r".into(),
                op: Operator::Transform(Box::new(route)),
                metrics,
                outputs,
                exchange_keys: None,
            },
            Node {
                id: "s".into(),
                op: Operator::Sink(Box::new(SameBuffer(
                    b.buf().as_ptr() as usize,
                    seen.clone(),
                ))),
                metrics: reg.component("s", ComponentKind::Sink, "x"),
                outputs: vec![],
                exchange_keys: None,
            },
        ];
        (Pipeline::new(nodes, vec![vec![0]]), seen)
    }

    #[test]
    fn outputs_share_the_input_buffer() {
        let cfg = config(&[
            ("all", "true"),
            ("none", "false"),
            ("errors", "level == 'error'"),
        ]);
        let b = parsed();
        let (mut p, seen) = same_buffer_pipeline(&cfg, &b);
        p.push(0, b);
        // 5 to `all`, 1 to `errors`, none unmatched.
        assert_eq!(*seen.lock().unwrap(), 6);
    }

    #[test]
    fn raw_lines_and_overlay_fields_route_too() {
        let cfg = config(&[("posts", "message.startsWith('POST')")]);
        let reg = Registry::new();
        let metrics = reg.component("r", ComponentKind::Transform, "route");
        let route = cfg.build(&metrics).unwrap();
        let buf = Arc::new(Mutex::new(Vec::new()));
        let rest = Arc::new(Mutex::new(Vec::new()));
        let nodes = vec![
            Node {
                id: "r".into(),
                op: Operator::Transform(Box::new(route)),
                metrics,
                outputs: vec![vec![], vec![1], vec![2]],
                exchange_keys: None,
            },
            Node {
                id: "a".into(),
                op: Operator::Sink(Box::new(Capture(buf.clone()))),
                metrics: reg.component("a", ComponentKind::Sink, "x"),
                outputs: vec![],
                exchange_keys: None,
            },
            Node {
                id: "b".into(),
                op: Operator::Sink(Box::new(Capture(rest.clone()))),
                metrics: reg.component("b", ComponentKind::Sink, "x"),
                outputs: vec![],
                exchange_keys: None,
            },
        ];
        let mut p = Pipeline::new(nodes, vec![vec![0]]);
        p.push(
            0,
            Batch::from_lines(Bytes::from_static(b"GET /a\nPOST /b\nPOST /c\n"), 0),
        );
        assert_eq!(
            String::from_utf8(buf.lock().unwrap().clone()).unwrap(),
            lines(&[r#"{"message":"POST /b"}"#, r#"{"message":"POST /c"}"#])
        );
        assert_eq!(
            String::from_utf8(rest.lock().unwrap().clone()).unwrap(),
            lines(&[r#"{"message":"GET /a"}"#])
        );
    }

    #[test]
    fn config_errors_name_the_route() {
        let cfg = config(&[("ok", "level == 'error'"), ("broken", "status >= ")]);
        let e = cfg.compile().unwrap_err();
        assert_eq!(
            e.to_string(),
            "route `broken`: expected an expression, found end of input (at column 11)"
        );
        match e {
            RouteError::Condition { route, error } => {
                assert_eq!(route, "broken");
                assert_eq!(error.column, 11);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config(&[]).compile().unwrap_err(), RouteError::Empty);
        assert_eq!(
            config(&[("_unmatched", "true")]).compile().unwrap_err(),
            RouteError::Reserved
        );
        assert_eq!(
            config(&[("", "true")]).compile().unwrap_err(),
            RouteError::EmptyName
        );
        let names: Vec<String> = (0..=MAX_ROUTES).map(|i| format!("r{i}")).collect();
        let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "true")).collect();
        assert_eq!(
            config(&many).compile().unwrap_err(),
            RouteError::TooMany(MAX_ROUTES + 1)
        );
        assert!(config(&many[..MAX_ROUTES]).compile().is_ok());
    }

    #[test]
    fn routing_allocates_per_batch_not_per_event() {
        let cfg = config(&[("bad", "level != 'info'"), ("any", "has(level)")]);
        let events = |n: usize| {
            let text: String = (0..n)
                .map(|i| {
                    format!(
                        "{{\"level\":\"{}\"}}\n",
                        if i % 3 == 0 { "info" } else { "x" }
                    )
                })
                .collect();
            let mut b = Batch::from_lines(Bytes::from(text.into_bytes()), 0);
            let mut rejected = Vec::new();
            crate::parsers::json::parse_batch(&mut b, &mut rejected);
            b
        };
        let mut counts = Vec::new();
        for n in [64, 4096] {
            let b = events(n);
            let (mut p, seen) = same_buffer_pipeline(&cfg, &b);
            let allocs = crate::condition::alloc_count::allocations_in(|| p.push(0, b));
            assert_eq!(*seen.lock().unwrap(), n + n - n.div_ceil(3));
            counts.push(allocs);
        }
        // 64 times the events: only the amortised growth of the output vectors is added.
        assert!(counts[1] <= counts[0] + 24, "{counts:?}");
    }
}
