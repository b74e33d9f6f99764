//! CEL conditions: the first line is compiled, the other lines are JSON events it is
//! evaluated on; it is also evaluated on a small fixed batch (parsed JSON events of every
//! value type, a raw line, and overlay values). Compilation and evaluation never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_engine::batch::{Batch, OverlayOp};
use sluice_engine::{FieldPath, Value};
use sluice_operators::condition::Condition;
use sluice_operators::parsers::json::parse_batch;
use std::sync::OnceLock;

const FIXED: &str = concat!(
    r#"{"level":"error","msg":"timeout after 30s","http":{"status":503,"latency":0.25},"#,
    r#""tags":["a","b"],"labels":{"app.kubernetes.io/name":"api","b-c":1},"ok":true,"#,
    r#""n":null,"big":18446744073709551615,"neg":-9223372036854775808,"f":1e400,"#,
    r#""ts":"2026-11-21T09:34:39Z","d":"1h30m","pat":"^t","esc":"a\"b\u00e9\ud83d\ude00"}"#,
    "\n",
    r#"{"level":"debug","http":{"status":"200"},"tags":[],"ts":"not a time","pat":"(["}"#,
    "\n",
    r#"{}"#,
    "\n",
    "a raw line that is not JSON \u{ff}\n",
);

/// The fixed batches: parsed JSON (with one raw line left over) and the same with overlay
/// changes on top.
fn fixed() -> &'static [Batch; 2] {
    static FIXED_BATCHES: OnceLock<[Batch; 2]> = OnceLock::new();
    FIXED_BATCHES.get_or_init(|| {
        let mut parsed = Batch::from_lines(bytes::Bytes::from_static(FIXED.as_bytes()), 0);
        let mut rejected = Vec::new();
        parse_batch(&mut parsed, &mut rejected);
        let mut changed = parsed.clone();
        let set = |path: &str, value: Value| OverlayOp::Set {
            path: FieldPath::parse(path).expect("static path"),
            value,
            if_absent: false,
        };
        changed.overlay.ops.extend([
            set("level", Value::Str("warn".into())),
            set("count", Value::Float(f64::NAN)),
            set(
                "raw",
                Value::RawJson(bytes::Bytes::from_static(b"[1,{\"a\":null}]")),
            ),
            set("obj", Value::Object(vec![("k".into(), Value::Int(1))])),
            OverlayOp::Rename {
                from: FieldPath::parse("msg").expect("static path"),
                to: FieldPath::parse("message").expect("static path"),
            },
        ]);
        [parsed, changed]
    })
}

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(p) => (&data[..p], &data[p + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(src) = std::str::from_utf8(first) else {
        return;
    };
    let cond = match Condition::compile(src) {
        Ok(c) => c,
        Err(e) => {
            assert!(e.column >= 1 && e.column <= src.chars().count() + 1, "{e}");
            return;
        }
    };
    for batch in fixed() {
        for ev in &batch.events {
            let _ = cond.matches(batch, ev);
        }
    }
    let mut batch = Batch::from_lines(bytes::Bytes::copy_from_slice(rest), 0);
    let mut rejected = Vec::new();
    parse_batch(&mut batch, &mut rejected);
    for ev in batch.events.clone() {
        let _ = cond.matches(&batch, &ev);
    }
});
