//! The condition language of the `filter` and `route` transforms: a subset of CEL, compiled
//! once into a tree evaluator over a batch's events.
//!
//! This module owns the public API ([`Condition`], [`ConditionError`]) and the documented
//! semantics below; `lexer` turns text into tokens, `parser` builds the syntax tree
//! (precedence climbing), and `eval` compiles the tree (field paths parsed, regexes compiled,
//! literal lists built) and evaluates it.
//!
//! # Syntax
//!
//! - Field paths: `level`, `http.status`, `_meta.file`; segments that are not identifiers use
//!   index syntax with a literal: `labels["app.kubernetes.io/name"]`, `items[0].name`.
//! - Literals: `"..."` / `'...'` strings with escapes (`\n \t \r \\ \" \' \xHH \uXXXX
//!   \UXXXXXXXX`, octal `\ooo`, surrogate pairs), triple-quoted and raw strings (`r"\d+"`),
//!   bytes (`b"\xff"`, `br"..."`; `\x` and octal escapes are octets), ints (`42`, `0x2A`),
//!   uints (`42u`, `0x2AU`), doubles (`1.5`, `1e3`), `true`, `false`, `null`, lists
//!   (`[1, "a"]`). `//` starts a comment. Map literals are not supported.
//! - Operators, loosest first: `c ? a : b`; `||`; `&&`; `< <= > >= == != in`; `+ -`;
//!   `* / %`; unary `!` and `-`; member access and calls.
//! - Functions: `has(path)`, `size(x)` / `x.size()`, `x.contains(s)`, `x.startsWith(s)`,
//!   `x.endsWith(s)`, `x.matches(re)` / `matches(x, re)`, `x.lowerAscii()`, `x.upperAscii()`,
//!   `int(x)`, `uint(x)`, `double(x)`, `string(x)`, `bool(x)`, `bytes(x)`, `timestamp(x)`,
//!   `duration(x)`; on timestamps `getFullYear() getMonth() getDayOfMonth() getDate()
//!   getDayOfWeek() getDayOfYear() getHours() getMinutes() getSeconds() getMilliseconds()`,
//!   each with an optional time zone argument; on durations `getHours() getMinutes()
//!   getSeconds() getMilliseconds()`. There is no `now()`: a condition's result depends only
//!   on the event.
//!
//! # Semantics
//!
//! - **Missing fields read as `null`.** `has(path)` is true when the field exists, even when it
//!   holds `null`. A raw (unparsed) line has one field, `message`. Anything done with a
//!   missing field other than comparing it for equality (ordering, `contains`, `size`,
//!   `timestamp()`, arithmetic...) is a type mismatch, so an error, so the condition is false.
//! - **Equality never fails.** `==` / `!=` between different types are false / true; ints,
//!   uints and doubles compare numerically and exactly (`1 == 1.0`, `1u == 1`); lists compare
//!   item by item, maps member by member. So `level != "debug"` is true when `level` is
//!   missing (write `has(level) && level != "debug"` to require it).
//! - **Ordering** (`< <= > >=`) is defined on numbers (ints, uints and doubles mixed, compared
//!   exactly), strings (by code point), bytes, bools, timestamps and durations. Any other
//!   pairing (including `null`, so a missing field) is an error. Comparisons with NaN are false.
//! - **Numbers from events**: a JSON integer is an `int`, or a `uint` above `i64::MAX`; any
//!   other number is a `double`.
//! - **Arithmetic**: ints and uints with overflow and division by zero as errors; a double on
//!   either side makes it double arithmetic (a deviation from CEL, which has no mixed
//!   arithmetic: JSON numbers do not say which they are); ints and uints do not mix (as in
//!   CEL: convert with `int()` / `uint()`); `%` is for integers only. `+` concatenates
//!   strings, bytes and lists. Timestamps and durations: `t - t`, `t ± d`, `d ± d`.
//! - **`in`**: membership in a list (using `==` above), or a key of a map (a JSON object).
//!   A literal list on the right is built once; a long list of string literals is hashed.
//! - **Functions**: `size` counts the chars of a string, the items of a list, the members of a
//!   map, the bytes of bytes. `contains`, `startsWith`, `endsWith`, `matches` need strings.
//!   `matches` searches (use `^`/`$` to anchor) with RE2 syntax (linear time, no
//!   backreferences); a literal pattern is compiled once with the condition (a bad one is a
//!   compile error at its column); a pattern computed per event is compiled at every
//!   evaluation (slow; a bad or oversized one is an error). `int` / `uint` truncate doubles
//!   (out of range is an error), parse strings and convert each other; `int` gives a
//!   timestamp's Unix seconds; `double` converts numbers and parses strings; `string` formats
//!   numbers, bools, bytes (valid UTF-8 only), timestamps (RFC 3339, UTC) and durations
//!   (`1.5s`); `bool` parses `true True TRUE t 1` / `false False FALSE f 0`; `bytes` takes a
//!   string's UTF-8. `timestamp(s)` parses RFC 3339 (a literal at compile time; an int is
//!   Unix seconds, an extension); `duration(s)` parses `5s`, `1.5h`, `1h30m`, `250ms`
//!   (units `ns us ms s m h`, fractions allowed; `d` for days is an extension).
//! - **Timestamp accessors** follow CEL: `getMonth()` is 0-11, `getDayOfMonth()` and
//!   `getDayOfYear()` are 0-based, `getDate()` is 1-based, `getDayOfWeek()` is 0 for Sunday.
//!   They read UTC, or the zone given as argument: `'UTC'` or a fixed offset `'+05:30'`
//!   (zone names like `'Europe/Paris'` are a compile error: no time zone database). On a
//!   duration, `getHours()` / `getMinutes()` / `getSeconds()` are whole units (truncated)
//!   and `getMilliseconds()` the milliseconds within the second.
//! - **Errors**: any evaluation error (type mismatch, bad argument, overflow) makes the whole
//!   condition false, except inside `&&` / `||`, which follow CEL: a `false` term decides
//!   `&&` and a `true` term decides `||` even if another term (on either side) failed; the
//!   error only wins when nothing decides. `!<error>` is an error, so `!(x > 1)` is false
//!   when `x` is missing. The ternary's condition must be a bool. A condition whose result is
//!   not a bool is false.
//! - **Compile errors** carry the 1-based column (in chars) of the problem: syntax, unknown
//!   functions, wrong arity, bad regexes, bad timestamp/duration/time zone literals,
//!   non-literal indexes and time zones, negated uints and strings, and expressions that can
//!   never be a bool where one is needed (`a && 1`).
//! - **Never a panic**: any input text compiles or fails with a [`ConditionError`]; any
//!   compiled condition evaluates on any event (fuzzed: `fuzz/fuzz_targets/cel.rs`).
//!
//! # Costs
//!
//! Evaluation walks the compiled tree once per event with no allocation on the common paths
//! (a unit test counts them): comparing a field with a literal, numeric comparisons, `in` a
//! literal list, `contains` / `startsWith` / `endsWith` / `matches` with a literal, timestamp
//! and duration arithmetic and accessors. Strings are compared as borrowed bytes of the batch
//! (copied only when the JSON text holds escapes). Allocation happens for building strings
//! (`+`, `string()`, `lowerAscii()` of a string with upper case), non-literal lists, JSON
//! fragments held verbatim in the overlay, and `matches` with a computed pattern (which also
//! compiles the regex each time).

mod eval;
mod lexer;
mod parser;

use sluice_engine::{Batch, Event, FieldPath};

/// A compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    root: eval::Node,
    fields: Vec<FieldPath>,
    source: String,
}

/// Why a condition did not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at column {column})")]
pub struct ConditionError {
    pub message: String,
    /// 1-based, in chars.
    pub column: usize,
}

impl Condition {
    /// Parses and compiles `src`.
    pub fn compile(src: &str) -> Result<Condition, ConditionError> {
        let ast = parser::parse(src)?;
        let root = eval::compile_root(&ast)?;
        let mut fields = Vec::new();
        eval::collect_fields(&root, &mut fields);
        Ok(Condition {
            root,
            fields,
            source: src.to_string(),
        })
    }

    /// Evaluates for one event. Evaluation errors (type mismatch in ordering, bad function
    /// argument) make the result false.
    #[inline]
    pub fn matches(&self, batch: &Batch, ev: &Event) -> bool {
        eval::matches(&self.root, batch, ev)
    }

    /// The field paths the condition reads (for the planner / lazy parsing).
    pub fn fields(&self) -> Vec<FieldPath> {
        self.fields.clone()
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Counts heap allocations per thread in this crate's unit tests, so tests can check that a hot
/// path does not allocate.
#[cfg(test)]
pub(crate) mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    struct Counting;

    fn count() {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            System.realloc(ptr, layout, new_size)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// How many allocations `f` made on this thread.
    pub(crate) fn allocations_in(f: impl FnOnce()) -> u64 {
        let before = ALLOCATIONS.with(Cell::get);
        f();
        ALLOCATIONS.with(Cell::get) - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_engine::batch::{EventForm, OverlayOp};
    use sluice_engine::fields::{FieldEntry, FieldTable, Kind, KEY_ESCAPED, VALUE_ESCAPED};
    use sluice_engine::Value;

    // -- test batches ---------------------------------------------------------------------

    /// Writes `v` as JSON into `buf`, appending its tape entries (and its children's).
    fn write_node(
        key: Option<&str>,
        v: &serde_json::Value,
        buf: &mut Vec<u8>,
        entries: &mut Vec<FieldEntry>,
    ) {
        let mut e = FieldEntry {
            key_start: 0,
            key_len: 0,
            value_start: 0,
            value_len: 0,
            end: 0,
            kind: Kind::Null,
            flags: 0,
        };
        if let Some(k) = key {
            let q = serde_json::to_string(k).unwrap();
            e.key_start = buf.len() as u32 + 1;
            e.key_len = q.len() as u32 - 2;
            if q.contains('\\') {
                e.flags |= KEY_ESCAPED;
            }
            buf.extend_from_slice(q.as_bytes());
            buf.push(b':');
        }
        let idx = entries.len();
        entries.push(e);
        let start = buf.len();
        let kind = match v {
            serde_json::Value::Null => Kind::Null,
            serde_json::Value::Bool(true) => Kind::True,
            serde_json::Value::Bool(false) => Kind::False,
            serde_json::Value::Number(_) => Kind::Number,
            serde_json::Value::String(_) => Kind::String,
            serde_json::Value::Array(_) => Kind::Array,
            serde_json::Value::Object(_) => Kind::Object,
        };
        match v {
            serde_json::Value::Array(items) => {
                buf.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    write_node(None, item, buf, entries);
                }
                buf.push(b']');
            }
            serde_json::Value::Object(members) => {
                buf.push(b'{');
                for (i, (k, item)) in members.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    write_node(Some(k), item, buf, entries);
                }
                buf.push(b'}');
            }
            other => buf.extend_from_slice(serde_json::to_string(other).unwrap().as_bytes()),
        }
        let end = entries.len() as u32;
        let e = &mut entries[idx];
        e.end = end;
        e.kind = kind;
        e.value_start = start as u32;
        e.value_len = (buf.len() - start) as u32;
        if kind == Kind::String {
            e.value_start += 1;
            e.value_len -= 2;
            if buf[start..].contains(&b'\\') {
                e.flags |= VALUE_ESCAPED;
            }
        }
    }

    /// A batch of parsed JSON events (one per line), built without the JSON parser.
    fn json_batch(lines: &[&str]) -> Batch {
        let mut buf = Vec::new();
        let mut entries = Vec::new();
        let mut spans = Vec::new();
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let serde_json::Value::Object(members) = v else {
                panic!("not an object: {line}")
            };
            let start = buf.len();
            let fields_start = entries.len();
            buf.push(b'{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write_node(Some(k), item, &mut buf, &mut entries);
            }
            buf.push(b'}');
            spans.push((start, buf.len() - start, fields_start, entries.len()));
            buf.push(b'\n');
        }
        let events = spans
            .iter()
            .enumerate()
            .map(|(i, &(start, len, fs, fe))| Event {
                start: start as u32,
                len: len as u32,
                id: i as u32,
                fields_start: fs as u32,
                fields_end: fe as u32,
                form: EventForm::Json,
                flags: 0,
            })
            .collect();
        let mut b = Batch::from_events(Bytes::from(buf), events, 0);
        b.fields = FieldTable {
            entries,
            aux: Vec::new(),
        };
        b
    }

    fn path(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }

    /// A raw-line batch with the given fields set through the overlay.
    fn overlay_batch(fields: &[(&str, Value)]) -> Batch {
        let mut b = Batch::from_lines(Bytes::from_static(b"GET /index.html 200"), 0);
        for (p, v) in fields {
            b.overlay.ops.push(OverlayOp::Set {
                path: path(p),
                value: v.clone(),
                if_absent: false,
            });
        }
        b
    }

    fn eval_on(src: &str, b: &Batch) -> bool {
        let c = Condition::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        c.matches(b, &b.events[0])
    }

    /// Evaluates `src` against the JSON object `json`.
    fn on(src: &str, json: &str) -> bool {
        eval_on(src, &json_batch(&[json]))
    }

    fn cerr(src: &str) -> String {
        match Condition::compile(src) {
            Ok(_) => panic!("{src} compiled"),
            Err(e) => e.to_string(),
        }
    }

    const EV: &str = r#"{
        "level": "error", "msg": "connection timeout after 30s", "service": "auth",
        "http": {"status": 503, "method": "GET", "latency": 0.25},
        "user": {"id": null, "name": "Zoë"},
        "labels": {"app.kubernetes.io/name": "api", "tier": "backend"},
        "tags": ["a", "b", "prod"], "codes": [200, 503.0], "items": [{"name": "x"}, {"name": "y"}],
        "ok": true, "count": 7, "ratio": 1.5, "big": 9007199254740993,
        "ts": "2026-11-20T12:00:00Z", "quoted": "say \"hi\"\n", "empty": "", "nested": {"a": [1, [2, 3]]}
    }"#;

    fn t(src: &str) -> bool {
        on(src, EV)
    }

    // -- semantics --------------------------------------------------------------------------

    #[test]
    fn field_comparisons() {
        assert!(t(r#"level == "error""#));
        assert!(t(r#"level != "debug""#));
        assert!(!t(r#"level == "debug""#));
        assert!(t("http.status >= 500"));
        assert!(t("http.status == 503"));
        assert!(t("http.status > 502 && http.status < 504"));
        assert!(t("http.status <= 503.0"));
        assert!(t("http.latency < 1"));
        assert!(t("http.latency == 0.25"));
        assert!(t("count == 7.0"));
        assert!(t("big > 9007199254740992"));
        assert!(t("big == 9007199254740993"));
        assert!(t(r#"labels["app.kubernetes.io/name"] == "api""#));
        assert!(t(r#"labels.tier == 'backend'"#));
        assert!(t(r#"items[1].name == "y""#));
        assert!(t("nested.a[1][0] == 2"));
        assert!(t("ok"));
        assert!(t("ok == true"));
        assert!(t("!(ok == false)"));
        assert!(t("user.name == 'Zoë'"));
        assert!(t("level > 'abc' && level < 'f'"));
        assert!(t("false < true"));
        assert!(t("empty == ''"));
    }

    #[test]
    fn escapes_in_literals_and_fields() {
        assert!(t(r#"quoted == "say \"hi\"\n""#));
        assert!(t(r#"quoted == 'say "hi"\n'"#));
        assert!(t(r#"quoted == "say \u0022hi\x22\012""#));
        assert!(t(r#"quoted.contains('"hi"')"#));
        assert!(t(r#"user.name == "Zo\u00eb""#));
        assert!(t(r#"user.name == "Zo\xc3\xab" || true"#));
        assert!(t(r#"r"a\n" == "a\\n""#));
        assert!(t(r#"size(r'\d') == 2"#));
        // Escaped keys in the tape.
        assert!(on(r#"m["a\"b"] == 1"#, r#"{"m": {"a\"b": 1}}"#));
    }

    #[test]
    fn arithmetic() {
        assert!(t("1 + 2 * 3 == 7"));
        assert!(t("(1 + 2) * 3 == 9"));
        assert!(t("10 - 4 - 3 == 3"));
        assert!(t("7 / 2 == 3"));
        assert!(t("-7 / 2 == -3"));
        assert!(t("7 % 3 == 1"));
        assert!(t("7.0 / 2 == 3.5"));
        assert!(t("count * 2 + 1 == 15"));
        assert!(t("http.latency * 1000 > 200"));
        assert!(t("-count == -7"));
        assert!(t("-http.latency < 0"));
        assert!(t("- -count == 7"));
        assert!(t("'ab' + 'cd' == 'abcd'"));
        assert!(t("level + '!' == 'error!'"));
        assert!(t("[1] + [2] == [1, 2]"));
        assert!(t("1 / 0.0 > 1000000.0"));
        // Integer overflow, division by zero, `%` on doubles, mixing strings and numbers.
        assert!(!t("9223372036854775807 + 1 > 0"));
        assert!(!t("-9223372036854775808 - 1 < 0"));
        assert!(!t("-(-9223372036854775808) > 0"));
        assert!(!t("1 / 0 == 0"));
        assert!(!t("1 % 0 == 0"));
        assert!(!t("1.5 % 1 == 0.5"));
        assert!(!t("'a' + 1 == 'a1'"));
        assert!(t("-9223372036854775808 < 0"));
        assert!(t("0x10 == 16 && 0XfF == 255"));
        assert!(t("1e3 == 1000 && 2.5e-1 == 0.25"));
    }

    #[test]
    fn in_operator() {
        assert!(t(r#"service in ["auth", "billing"]"#));
        assert!(!t(r#"service in ["billing"]"#));
        assert!(!t("service in []"));
        assert!(t("http.status in [500, 503]"));
        assert!(t("http.status in [500.0, 503.0]"));
        assert!(t(r#"http.status in ["503", 503]"#));
        assert!(!t(r#"http.status in ["503"]"#));
        assert!(t(r#""prod" in tags"#));
        assert!(!t(r#""dev" in tags"#));
        assert!(t("503 in codes && 200.0 in codes"));
        assert!(t(r#"'tier' in labels"#));
        assert!(!t(r#"'zone' in labels"#));
        assert!(t(r#"[2, 3] in nested.a"#));
        assert!(t(r#"service in [level, "auth"]"#));
        assert!(t(r#"!(missing in ["a"])"#));
        assert!(t(r#"null in [null]"#));
        // A long list is hashed; same answers.
        let many: Vec<String> = (0..50).map(|i| format!("\"svc{i}\"")).collect();
        let src = format!("service in [{}, \"auth\"]", many.join(", "));
        assert!(t(&src));
        assert!(!t(&src.replace("\"auth\"", "\"nope\"")));
        assert!(!t(&format!("count in [{}]", many.join(", "))));
        // `in` a non-list: an error.
        assert!(!t("'a' in level"));
        assert!(t("!('a' in level) || true"));
        assert!(!t("!('a' in level)"));
    }

    #[test]
    fn string_functions() {
        assert!(t(r#"msg.contains("timeout")"#));
        assert!(!t(r#"msg.contains("refused")"#));
        assert!(t(r#"msg.contains("")"#));
        assert!(t(r#"msg.contains(level) == false"#));
        assert!(t(
            r#"msg.contains(service.upperAscii().lowerAscii()) == false"#
        ));
        assert!(t(r#"msg.startsWith("conn")"#));
        assert!(!t(r#"msg.startsWith("timeout")"#));
        assert!(t(r#"msg.endsWith("30s")"#));
        assert!(t(r#"level.startsWith(level)"#));
        assert!(t(r#"msg.matches("time(out|d)")"#));
        assert!(t(r#"msg.matches("^conn.*\\d+s$")"#));
        assert!(t(r#"matches(msg, r"\d{2}s")"#));
        assert!(!t(r#"msg.matches("^timeout")"#));
        assert!(t(r#"user.name.matches("^Zo.$")"#));
        assert!(t(r#"level.upperAscii() == "ERROR""#));
        assert!(t(r#""MiXeD".lowerAscii() == "mixed""#));
        assert!(t(r#""Zoë".upperAscii() == "ZOë""#));
        assert!(t("size(level) == 5 && level.size() == 5"));
        assert!(t("size(user.name) == 3"));
        assert!(t("size(tags) == 3 && tags.size() == 3"));
        assert!(t("size(labels) == 2"));
        assert!(t("size([1, 2, count]) == 3"));
        assert!(t("size('') == 0"));
        // Wrong types are errors.
        assert!(!t("count.contains('7')"));
        assert!(!t("msg.contains(7)"));
        assert!(!t("size(count) == 1"));
        assert!(!t("count.matches('7')"));
        assert!(!t("missing.startsWith('')"));
    }

    #[test]
    fn more_conversions() {
        assert!(t(
            "uint(7) == 7u && uint('42') == 42u && uint(3.9) == 3u && uint(7u) == 7u"
        ));
        assert!(t("uint(count) == 7u && uint(0.5) == 0u"));
        assert!(!t("uint(-1) == 0u"));
        assert!(!t("uint(-1.0) == 0u"));
        assert!(!t("uint('-1') == 0u"));
        assert!(!t("uint(1e20) == 0u"));
        assert!(t("int(7u) == 7 && double(7u) == 7.0 && string(7u) == '7'"));
        assert!(!t("int(18446744073709551615u) == 0"));
        for yes in ["true", "True", "TRUE", "t", "1"] {
            assert!(t(&format!("bool('{yes}')")), "{yes}");
            assert!(t(&format!("bool('{yes}') == true")), "{yes}");
        }
        for no in ["false", "False", "FALSE", "f", "0"] {
            assert!(t(&format!("!bool('{no}')")), "{no}");
        }
        assert!(t("bool(ok) && bool(true)"));
        assert!(!t("bool('yes')"));
        assert!(!t("!bool('yes')"));
        assert!(!t("bool(1)"));
        assert!(!t("bool(missing)"));
        assert!(on("bool(flag)", r#"{"flag": "true"}"#));
        assert!(!on("bool(flag)", r#"{"flag": "false"}"#));
    }

    #[test]
    fn timestamp_accessors() {
        // 2026-11-21T09:34:39.250Z is a Saturday, day 324 of the year (0-based).
        let ev = r#"{"at": "2026-11-21T09:34:39.250Z", "late": "2026-12-31T23:30:00-02:00"}"#;
        let tsx = "timestamp(at)";
        for (call, want) in [
            ("getFullYear()", 2026),
            ("getMonth()", 10),
            ("getDayOfMonth()", 20),
            ("getDate()", 21),
            ("getDayOfWeek()", 6),
            ("getDayOfYear()", 324),
            ("getHours()", 9),
            ("getMinutes()", 34),
            ("getSeconds()", 39),
            ("getMilliseconds()", 250),
            ("getHours('UTC')", 9),
            ("getHours('+02:00')", 11),
            ("getMinutes('+05:30')", 4),
            ("getHours('-10:00')", 23),
            ("getDate('-10:00')", 20),
            ("getDayOfWeek('-10:00')", 5),
        ] {
            let src = format!("{tsx}.{call} == {want}");
            assert!(on(&src, ev), "{src}");
            let off = format!("{tsx}.{call} == {}", want + 1);
            assert!(!on(&off, ev), "{off}");
        }
        // An offset that crosses the year boundary.
        assert!(on("timestamp(late).getFullYear() == 2027", ev));
        assert!(on("timestamp(late).getFullYear('-02:00') == 2026", ev));
        assert!(on(
            "timestamp(late).getMonth() == 0 && timestamp(late).getDayOfYear() == 0",
            ev
        ));
        assert!(on(
            "timestamp(late).getDayOfYear('-02:00') == 364 && timestamp(late).getDate('-02:00') == 31",
            ev
        ));
        assert!(t("timestamp('2024-12-31T00:00:00Z').getDayOfYear() == 365"));
        assert!(t(
            "timestamp('1969-12-31T23:59:59.999Z').getMilliseconds() == 999"
        ));
        assert!(t("timestamp('1969-12-31T23:59:59Z').getDayOfWeek() == 3"));
        assert!(t("timestamp('0001-01-01T00:00:00Z').getFullYear() == 1"));
        // Durations: whole units, and the milliseconds within the second.
        assert!(t(
            "duration('1h30m').getHours() == 1 && duration('1h30m').getMinutes() == 90"
        ));
        assert!(t(
            "duration('90.5s').getSeconds() == 90 && duration('90.5s').getMilliseconds() == 500"
        ));
        assert!(t("duration('-90.5s').getSeconds() == -90"));
        assert!(!t("duration('1h').getFullYear() == 0"));
        assert!(!t("duration('1h').getHours('+01:00') == 1"));
        // Not a timestamp: an error, so false.
        assert!(!t("ts.getHours() == 12"));
        assert!(!t("missing.getHours() == 0"));
        assert!(t("timestamp(ts).getHours() == 12"));
    }

    #[test]
    fn dynamic_patterns() {
        assert!(on(
            "msg.matches(pat)",
            r#"{"msg": "abc123", "pat": "^[a-z]+\\d+$"}"#
        ));
        assert!(!on(
            "msg.matches(pat)",
            r#"{"msg": "abc", "pat": "^\\d+$"}"#
        ));
        assert!(on(
            "matches(msg, '^' + prefix)",
            r#"{"msg": "abc", "prefix": "ab"}"#
        ));
        // An invalid pattern at run time is an error: false, also negated.
        assert!(!on("msg.matches(pat)", r#"{"msg": "a(", "pat": "("}"#));
        assert!(!on("!msg.matches(pat)", r#"{"msg": "a(", "pat": "("}"#));
        assert!(!on("msg.matches(pat)", r#"{"msg": "a"}"#));
        // A pattern too large to compile is refused, not a hang.
        assert!(!on(
            "msg.matches(pat)",
            r#"{"msg": "a", "pat": "((a{1000}){1000}){1000}"}"#
        ));
    }

    #[test]
    fn conversions() {
        assert!(t("int('42') == 42"));
        assert!(t("int(3.9) == 3 && int(-3.9) == -3"));
        assert!(t("int(count) == 7"));
        assert!(t("double('1.5') == 1.5"));
        assert!(t("double(count) / 2 == 3.5"));
        assert!(t("string(count) == '7'"));
        assert!(t("string(1.5) == '1.5'"));
        assert!(t("string(true) == 'true'"));
        assert!(t("string(level) == level"));
        assert!(t("string(http.status) + level == '503error'"));
        assert!(t("int(timestamp('1970-01-01T00:01:00Z')) == 60"));
        assert!(!t("int('abc') == 0"));
        assert!(!t("int(1e300) == 0"));
        assert!(!t("double('x') == 0.0"));
        assert!(!t("string(null) == 'null'"));
        assert!(!t("string(tags) == ''"));
        assert!(!t("int(true) == 1"));
    }

    #[test]
    fn timestamps_and_durations() {
        assert!(t(r#"timestamp(ts) == timestamp("2026-11-20T12:00:00Z")"#));
        assert!(t(
            r#"timestamp(ts) > timestamp("2026-11-20T11:59:59.999Z")"#
        ));
        assert!(t(
            r#"timestamp(ts) < timestamp("2026-11-20T13:00:00+00:30")"#
        ));
        assert!(t(
            r#"timestamp(ts) == timestamp("2026-11-20T13:00:00+01:00")"#
        ));
        assert!(t(r#"duration("5s") < duration("1m")"#));
        assert!(t(r#"duration("90s") == duration("1m30s")"#));
        assert!(t(r#"duration("1h") > duration("59m59.999s")"#));
        assert!(t(
            r#"timestamp(ts) - timestamp("2026-11-20T11:00:00Z") == duration("1h")"#
        ));
        assert!(t(
            r#"timestamp(ts) + duration("1h") > timestamp("2026-11-20T12:30:00Z")"#
        ));
        assert!(t(
            r#"timestamp(ts) - duration("1d") == timestamp("2026-11-19T12:00:00Z")"#
        ));
        assert!(t(r#"-duration("1s") < duration("0")"#));
        assert!(t(r#"string(timestamp(ts)) == ts"#));
        assert!(t(r#"string(duration("1m30.5s")) == "90.5s""#));
        assert!(t(r#"duration(string(count) + "s") == duration("7s")"#));
        assert!(t(r#"timestamp(0) == timestamp("1970-01-01T00:00:00Z")"#));
        // Timestamps and durations do not order against each other or strings.
        assert!(!t(r#"timestamp(ts) > duration("1s")"#));
        assert!(!t(r#"timestamp(ts) > ts"#));
        assert!(t(r#"timestamp(ts) != ts"#));
        // A field that is not a timestamp: error, so false.
        assert!(!t(
            r#"timestamp(level) < timestamp("2030-01-01T00:00:00Z")"#
        ));
        assert!(!t(
            r#"timestamp(missing) < timestamp("2030-01-01T00:00:00Z")"#
        ));
    }

    #[test]
    fn brief_examples() {
        // The forms the documentation promises, one by one.
        assert!(t(r#"level in ["error", "fatal"]"#));
        assert!(!on(
            r#"level in ["error", "fatal"]"#,
            r#"{"level": "info"}"#
        ));
        assert!(on(
            r#"a["b-c"] == 1 && a.d[0] == 'x'"#,
            r#"{"a": {"b-c": 1, "d": ["x"]}}"#
        ));
        assert!(on(r#"a["b-c"][1] == 2"#, r#"{"a": {"b-c": [1, 2]}}"#));
        assert!(t("has(http.status) && !has(http.body)"));
        assert!(t(
            "size(level) == 5 && level.size() == 5 && size(tags) == 3 && size(labels) == 2"
        ));
        assert!(t("level == 'error' ? http.status >= 500 : false"));
        assert!(t(r#"timestamp("2026-11-21T09:34:39Z") > timestamp(ts)"#));
        assert!(t(r#"duration("1h30m") == duration("90m")"#));
    }

    #[test]
    fn unsigned_integers() {
        assert!(t("1u == 1u && 1u != 2u"));
        assert!(t("1u + 2u * 3u == 7u"));
        assert!(t("7u / 2u == 3u && 7u % 4u == 3u"));
        assert!(t("0xFFu == 255u"));
        // Cross-type numeric comparisons are exact.
        assert!(t("1u == 1 && 1 == 1u && 1u == 1.0 && 1.0 == 1u"));
        assert!(t("count == 7u && count > 6u && count < 8u && 6u < count"));
        assert!(t("-1 < 0u && 0u > -1 && !(0u == -1)"));
        assert!(t("18446744073709551615u > 9223372036854775807"));
        assert!(t("18446744073709551615u < 18446744073709551616.0"));
        assert!(t("2u > 1.5 && 1.5 < 2u && 1u > -0.5 && !(1u == 1.5)"));
        assert!(t("7u in [1, 7] && 7 in [7u] && 7.0 in [7u]"));
        // Overflow and underflow are errors.
        assert!(!t("18446744073709551615u + 1u > 0u"));
        assert!(!t("0u - 1u == 0u"));
        assert!(!t("1u / 0u == 0u"));
        assert!(!t("1u % 0u == 0u"));
        // Ints and uints do not mix in arithmetic (as in CEL); doubles do (as with ints).
        assert!(!t("1u + 1 == 2"));
        assert!(!t("count + 1u == 8"));
        assert!(t("1u + 0.5 == 1.5"));
        // A JSON integer above i64::MAX reads as a uint.
        assert!(on(
            "n == 18446744073709551615u && n > 9223372036854775807 && n > 1",
            r#"{"n": 18446744073709551615}"#
        ));
        assert!(on(
            "n == 18446744073709551616.0",
            r#"{"n": 18446744073709551616}"#
        ));
    }

    #[test]
    fn bytes_values() {
        assert!(t("b'abc' == b'abc' && b'abc' != b'abd'"));
        assert!(t("b'abc' < b'abd' && b'\\xff' > b'a'"));
        assert!(t("size(b'\\303\\277') == 2 && size('\\303\\277') == 2"));
        assert!(t("b'ÿ' == b'\\303\\277'"));
        assert!(t("b'a' + b'b' == b'ab'"));
        assert!(t(
            "bytes('é') == b'\\xc3\\xa9' && string(b'\\xc3\\xa9') == 'é'"
        ));
        assert!(t("bytes(level) == b'error'"));
        // Bytes never equal strings; invalid UTF-8 does not convert to a string.
        assert!(!t("b'abc' == 'abc'"));
        assert!(t("b'abc' != 'abc'"));
        assert!(!t("string(b'\\xff') == ''"));
        assert!(!t("b'a' < 'b'"));
        assert!(!t("b'a' + 'b' == b'ab'"));
    }

    #[test]
    fn ternary() {
        assert!(t("ok ? count == 7 : false"));
        assert!(t("!ok ? false : true"));
        assert!(t("(count > 5 ? 'big' : 'small') == 'big'"));
        assert!(t("count > 100 ? false : count > 5 ? true : false"));
        assert!(!t("count ? true : true"));
        assert!(!t("missing ? true : true"));
        // Only the chosen branch is evaluated.
        assert!(t("ok ? true : 1 / 0 == 0"));
    }

    #[test]
    fn has_and_missing_fields() {
        assert!(t("has(level)"));
        assert!(t("has(http.status)"));
        assert!(t("has(user.id)"), "a null field exists");
        assert!(!t("has(user.email)"));
        assert!(!t("has(missing)"));
        assert!(!t("has(missing.deeper)"));
        assert!(t(r#"has(labels["app.kubernetes.io/name"])"#));
        assert!(t("has(items[1].name) && !has(items[2])"));
        assert!(t("user.id == null"));
        assert!(t("missing == null"));
        assert!(t("missing != 'x'"));
        assert!(!t("missing == 'x'"));
        assert!(t("size(missing.path) == 0 || true"));
        // Ordering against a missing field is an error, so false either way round.
        assert!(!t("missing > 1"));
        assert!(!t("missing <= 1"));
        assert!(!t("!(missing > 1)"));
        assert!(!t("user.id > 0"));
        // Selecting into a scalar reads as missing.
        assert!(t("level.sub == null"));
        assert!(t("tags.x == null && tags[5] == null"));
    }

    #[test]
    fn type_mismatch_semantics() {
        // Equality across types: false (and != true), never an error.
        assert!(!t("count == '7'"));
        assert!(t("count != '7'"));
        assert!(!t("level == 1"));
        assert!(!t("ok == 1"));
        assert!(!t("null == false"));
        assert!(!t("tags == 'a'"));
        assert!(t("tags == ['a', 'b', 'prod']"));
        assert!(!t("tags == ['a', 'b']"));
        assert!(t("codes == [200.0, 503]"));
        assert!(t("labels != tags"));
        assert!(t("nested.a == [1, [2, 3]]"));
        assert!(on(
            "a == b",
            r#"{"a": {"x": 1, "y": [2]}, "b": {"y": [2], "x": 1.0}}"#
        ));
        assert!(!on("a == b", r#"{"a": {"x": 1}, "b": {"x": 2}}"#));
        assert!(!on("a == b", r#"{"a": {"x": 1}, "b": {"y": 1}}"#));
        // Ordering across types: an error, so false, including its negation.
        assert!(!t("level > 1"));
        assert!(!t("level <= 1"));
        assert!(!t("!(level > 1)"));
        assert!(!t("ok < 1"));
        assert!(!t("tags < tags"));
        // NaN: ordering is false, not an error.
        assert!(!t("0.0 / 0.0 < 1.0"));
        assert!(!t("0.0 / 0.0 >= 1.0"));
        assert!(t("!(0.0 / 0.0 < 1.0)"));
        assert!(t("0.0 / 0.0 != 0.0 / 0.0"));
        // Non-bool results: false.
        assert!(!t("count"));
        assert!(!t("level"));
        assert!(!t("missing"));
        assert!(!t("!count"));
    }

    #[test]
    fn short_circuit_with_errors() {
        // `false && error` and `error && false` are false; `true || error`, `error || true` true.
        assert!(!t("false && level > 1"));
        assert!(!t("level > 1 && false"));
        assert!(t("true || level > 1"));
        assert!(t("level > 1 || true"));
        assert!(t("!(false && level > 1)"));
        assert!(t("!(level > 1 && false)"));
        // Otherwise the error wins: the condition is false, even negated.
        assert!(!t("true && level > 1"));
        assert!(!t("level > 1 && true"));
        assert!(!t("!(true && level > 1)"));
        assert!(!t("false || level > 1"));
        assert!(!t("!(false || level > 1)"));
        assert!(!t("level > 1 || false"));
        // Errors in longer chains.
        assert!(t("level > 1 || missing > 2 || ok"));
        assert!(!t("level > 1 || missing > 2 || !ok"));
        assert!(!t("level > 1 && missing > 2 && !ok"));
        assert!(!t("ok && count && true"));
        assert!(t("ok || count"));
        // Non-bool operands count as errors.
        assert!(!t("count && false") || !t("count && true"));
        assert!(t("count || true"));
        assert!(!t("count || false"));
    }

    #[test]
    fn raw_lines_have_only_message() {
        let b = Batch::from_lines(
            Bytes::from_static(b"GET /index.html 200\nPOST /login 500\n"),
            0,
        );
        let c = Condition::compile(r#"message.startsWith("POST") && !has(level)"#).unwrap();
        let kept: Vec<bool> = b.events.iter().map(|e| c.matches(&b, e)).collect();
        assert_eq!(kept, vec![false, true]);
        let c = Condition::compile(r#"message.matches(" 5\\d\\d$")"#).unwrap();
        assert!(c.matches(&b, &b.events[1]));
        assert!(!c.matches(&b, &b.events[0]));
        let c = Condition::compile("size(message) == 19").unwrap();
        assert!(c.matches(&b, &b.events[0]));
    }

    #[test]
    fn overlay_values() {
        let b = overlay_batch(&[
            ("level", Value::Str("warn".into())),
            ("http.status", Value::Int(404)),
            ("latency", Value::Float(0.5)),
            ("flag", Value::Bool(false)),
            ("gone", Value::Null),
            (
                "tags",
                Value::Array(vec![Value::Str("a".into()), Value::Int(1)]),
            ),
            (
                "obj",
                Value::Object(vec![
                    ("k".into(), Value::Str("v".into())),
                    ("n".into(), Value::Int(2)),
                ]),
            ),
            (
                "raw",
                Value::RawJson(Bytes::from_static(br#"{"x": [1, 2, "three"], "y": "z"}"#)),
            ),
        ]);
        for src in [
            "level == 'warn'",
            "level in ['warn', 'error']",
            "http.status == 404 && http.status >= 400.0",
            "latency < 1 && latency == 0.5",
            "!flag && flag == false",
            "has(gone) && gone == null",
            "'a' in tags && 1 in tags && 1.0 in tags && size(tags) == 2",
            "tags == ['a', 1]",
            "obj.k == 'v' && 'n' in obj && size(obj) == 2",
            "obj == obj",
            "size(raw) == 2 && 'y' in raw",
            "message.endsWith('200')",
        ] {
            assert!(eval_on(src, &b), "{src}");
        }
        // The overlay does not look inside JSON fragments: a nested path reads as missing.
        assert!(eval_on("!has(raw.y)", &b));
    }

    #[test]
    fn many_events() {
        let b = json_batch(&[
            r#"{"level": "info", "status": 200}"#,
            r#"{"level": "error", "status": 500}"#,
            r#"{"level": "debug"}"#,
            r#"{"status": "503"}"#,
        ]);
        let c = Condition::compile(r#"level != "debug" && status >= 500"#).unwrap();
        let kept: Vec<bool> = b.events.iter().map(|e| c.matches(&b, e)).collect();
        assert_eq!(kept, vec![false, true, false, false]);
        let c =
            Condition::compile("has(status) ? status == 200 || status == '503' : true").unwrap();
        let kept: Vec<bool> = b.events.iter().map(|e| c.matches(&b, e)).collect();
        assert_eq!(kept, vec![true, false, true, true]);
    }

    #[test]
    fn agrees_with_the_json_parser_tape() {
        let lines = [
            EV.replace('\n', " "),
            r#"{"msg": "caf\u00e9 \"q\"", "a": {"b\u0021": [1, {"c": -2.5e0}]}, "n": null}"#
                .to_string(),
        ];
        let text = lines.join("\n");
        let mut parsed = Batch::from_lines(Bytes::from(text.into_bytes()), 0);
        let mut rejected = Vec::new();
        assert_eq!(
            crate::parsers::json::parse_batch(&mut parsed, &mut rejected),
            2
        );
        let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let built = json_batch(&line_refs);
        for src in [
            "level == 'error' && http.status >= 500",
            "'prod' in tags && size(tags) == 3 && tags == ['a', 'b', 'prod']",
            "labels['app.kubernetes.io/name'] == 'api'",
            "quoted == 'say \"hi\"\\n'",
            "msg == 'café \"q\"'",
            "msg.contains('é') && size(msg) == 8",
            "a['b!'][1].c == -2.5 && a['b!'][0] == 1.0",
            "size(a) == 1 && 'b!' in a",
            "has(n) && n == null && !has(m)",
            "items[1].name == 'y' && nested.a[1] == [2, 3]",
            "user.name.matches('^Zo.$')",
        ] {
            let c = Condition::compile(src).unwrap();
            for i in 0..2 {
                assert_eq!(
                    c.matches(&parsed, &parsed.events[i]),
                    c.matches(&built, &built.events[i]),
                    "{src} on event {i}"
                );
            }
            assert!(
                (0..2).any(|i| c.matches(&parsed, &parsed.events[i])),
                "{src} matched nothing"
            );
        }
    }

    // -- compile-time API -------------------------------------------------------------------

    #[test]
    fn fields_and_source() {
        let src = r#"level != "debug" && (http.status >= 500 || has(user.id)) && labels["a.b"] in ["x"] && level.contains(svc)"#;
        let c = Condition::compile(src).unwrap();
        assert_eq!(c.source(), src);
        let got: Vec<String> = c.fields().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            vec!["level", "http.status", "user.id", "labels.\"a.b\"", "svc"]
        );
        assert_eq!(c.fields()[3].segments().len(), 2);
        assert!(Condition::compile("1 == 1").unwrap().fields().is_empty());
        assert_eq!(
            Condition::compile("items[0].name == 'x'").unwrap().fields()[0].to_string(),
            "items.0.name"
        );
    }

    #[test]
    fn compile_errors_with_columns() {
        let cases: &[(&str, &str)] = &[
            ("", "empty condition (at column 1)"),
            (
                "a && (b || c == 1",
                "expected ')' to close '(' opened at column 6 (at column 18)",
            ),
            (
                "x == (1 + (2 * 3)",
                "expected ')' to close '(' opened at column 6 (at column 18)",
            ),
            (
                r#"level == "debug"#,
                "unterminated string literal (at column 10)",
            ),
            (
                r#"level == "debug" x"#,
                "unexpected identifier 'x' after the end of the expression (at column 18)",
            ),
            ("level == 'a')", "unexpected ')' after the end of the expression (at column 13)"),
            ("foo(level)", "unknown function 'foo' (at column 1)"),
            ("level.bar()", "unknown method 'bar' (at column 7)"),
            (
                "contains(level, 'x')",
                "unknown function 'contains' (it is a method: x.contains(...)) (at column 1)",
            ),
            (
                "level.has()",
                "unknown method 'has' (it is a function: has(...)) (at column 7)",
            ),
            (
                "size(a, b) > 1",
                "'size' expects 1 argument, got 2 (at column 1)",
            ),
            (
                "msg.contains()",
                "'contains' expects 1 argument, got 0 (at column 5)",
            ),
            (
                "x.lowerAscii(1) == 'a'",
                "'lowerAscii' expects 0 arguments, got 1 (at column 3)",
            ),
            ("msg.matches(pattern)", "ok"),
            (
                "msg.matches(1)",
                "the pattern of matches() must be a string, found int (at column 13)",
            ),
            (
                "ts.getHours('Europe/Paris') == 1",
                "unsupported time zone \"Europe/Paris\": use 'UTC' or a fixed offset like '+02:00' (zone names are not supported) (at column 13)",
            ),
            (
                "ts.getHours('+24:00') == 1",
                "time zone offset \"+24:00\" out of range (at column 13)",
            ),
            (
                "ts.getHours(zone) == 1",
                "the time zone must be a string literal, like '+02:00' or 'UTC' (at column 13)",
            ),
            (
                "ts.getHours(1, 2) == 1",
                "'getHours' expects 0 or 1 arguments, got 2 (at column 4)",
            ),
            ("getHours(ts) == 1", "unknown function 'getHours' (it is a method: x.getHours(...)) (at column 1)"),
            ("-1u < 0u", "a uint cannot be negated (at column 2)"),
            ("-'a' < 'b'", "a string cannot be negated (at column 2)"),
            (
                "timestamp(ts) > now()",
                "unknown function 'now' (conditions are deterministic: compare with a timestamp literal) (at column 17)",
            ),
            ("size(b'\\u0041') == 1", "'\\u' escapes are not allowed in bytes literals (at column 8)"),
            ("x == 1.5u", "unexpected character 'u' after number (at column 9)"),
            ("x == 18446744073709551616u", "unsigned integer literal out of range (at column 6)"),
            ("msg.matches('(a')", "invalid regex: unclosed group (at column 13)"),
            (
                "has(1)",
                "has() expects a field path, like has(user.id) (at column 5)",
            ),
            (
                "t > timestamp('2026-11-20')",
                "invalid timestamp \"2026-11-20\": expected RFC 3339, like 2026-11-20T12:00:00Z (at column 15)",
            ),
            (
                "d > duration('5 s')",
                "invalid duration \"5 s\": missing or unknown unit (use ns, us, ms, s, m, h or d) (at column 14)",
            ),
            (
                "labels[key] == 1",
                "an index must be a string or non-negative integer literal (at column 8)",
            ),
            (
                "items[-1] == 1",
                "an index must be a string or non-negative integer literal (at column 7)",
            ),
            (
                "[1, 2][0] == 1",
                "fields can only be selected or indexed on a field path (at column 1)",
            ),
            (
                "level.size().x == 1",
                "fields can only be selected or indexed on a field path (at column 1)",
            ),
            (
                "a in 'abc'",
                "the right side of 'in' must be a list or a field, found string (at column 6)",
            ),
            ("1 + 2", "expected a bool expression, found int (at column 1)"),
            ("ok && 'yes'", "expected a bool expression, found string (at column 7)"),
            ("!size(x)", "expected a bool expression, found int (at column 2)"),
            ("(a + 1) ? 1 : 2", "expected a bool expression, found int (at column 2)"),
            ("a ? 1 : b", "ok"),
            ("x == 9223372036854775808", "integer literal out of range (at column 6)"),
            ("a =! b", "unexpected '='; did you mean '=='? (at column 3)"),
            ("a == 1 &", "unexpected '&'; did you mean '&&'? (at column 8)"),
            ("a.b.", "expected a field or method name after '.', found end of input (at column 5)"),
            ("'héllo' == x €", "unexpected character '€' (at column 14)"),
            ("f(", "expected an expression, found end of input (at column 3)"),
        ];
        for (src, want) in cases {
            match Condition::compile(src) {
                Ok(_) => assert_eq!(*want, "ok", "{src} compiled"),
                Err(e) => assert_eq!(e.to_string(), *want, "{src}"),
            }
        }
        let e = Condition::compile("x ==").unwrap_err();
        assert_eq!(e.column, 5);
        assert_eq!(e.message, "expected an expression, found end of input");
        assert!(cerr("msg.matches('[z-a]')")
            .starts_with("invalid regex: invalid character class range"));
    }

    #[test]
    fn deep_nesting_is_rejected_not_crashing() {
        let deep = format!("{}a{}", "(".repeat(1_000), ")".repeat(1_000));
        assert!(cerr(&deep).contains("nested too deeply"));
        let chain = vec!["count"; 5_000].join(" + ") + " > 0";
        assert!(cerr(&chain).contains("nested too deeply"));
        // The deepest accepted trees still evaluate without trouble.
        let near = format!("{}ok{}", "!(".repeat(60), ")".repeat(60));
        assert!(t(&near));
        let sum = vec!["1"; 190].join(" + ") + " == 190";
        assert!(t(&sum));
        let ors = vec!["count == 1"; 5_000].join(" || ") + " || ok";
        assert!(t(&ors));
    }

    #[test]
    fn hot_paths_do_not_allocate() {
        let lines = [
            r#"{"level": "info", "msg": "GET /a 200", "http": {"status": 200}}"#,
            r#"{"level": "debug", "msg": "cache miss", "http": {"status": 503}}"#,
            r#"{"msg": "no level"}"#,
        ];
        let text = lines.join("\n");
        let mut b = Batch::from_lines(Bytes::from(text.into_bytes()), 0);
        let mut rejected = Vec::new();
        assert_eq!(crate::parsers::json::parse_batch(&mut b, &mut rejected), 3);
        for src in [
            r#"level != "debug""#,
            r#"level != "debug" && http.status >= 200"#,
            r#"level in ["error", "fatal", "info"]"#,
            "http.status > 499u || http.status == 200.0",
            "msg.contains('miss') || msg.startsWith('GET') || msg.endsWith('x')",
            r"msg.matches(r'^GET /[a-z]+ \d{3}$')",
            "has(level) ? size(msg) > 3 : false",
            "timestamp('2026-11-21T09:34:39Z').getHours() == 9",
        ] {
            let c = Condition::compile(src).unwrap();
            // Warm up (a regex takes its per-thread cache on first use).
            let want: Vec<bool> = b.events.iter().map(|e| c.matches(&b, e)).collect();
            assert!(want.contains(&true), "{src} matched nothing");
            let mut got = Vec::with_capacity(b.events.len());
            let n = alloc_count::allocations_in(|| {
                for e in &b.events {
                    got.push(c.matches(&b, e));
                }
            });
            assert_eq!(n, 0, "{src} allocated");
            assert_eq!(got, want);
        }
        // The counter does count: a string built per event allocates.
        let c = Condition::compile("level + '!' == 'info!'").unwrap();
        let n = alloc_count::allocations_in(|| {
            assert!(c.matches(&b, &b.events[0]));
        });
        assert!(n > 0);
    }

    #[test]
    fn condition_is_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
        assert_traits::<Condition>();
        let c = Condition::compile("level == 'error'").unwrap();
        let b = json_batch(&[EV]);
        assert!(c.clone().matches(&b, &b.events[0]));
    }

    // -- robustness -------------------------------------------------------------------------

    mod props {
        use super::*;
        use proptest::prelude::*;

        const EVENTS: &[&str] = &[
            EV,
            r#"{"level": "info", "count": -3, "tags": [], "http": {"status": "x"}, "pat": "(["}"#,
            r#"{"pat": "^i", "count": 18446744073709551615, "ts": "9999-12-31T23:59:59Z"}"#,
            r#"{}"#,
        ];

        fn batches() -> Vec<Batch> {
            vec![
                json_batch(EVENTS),
                Batch::from_lines(Bytes::from_static(b"plain line\n\xff\xfe bad utf8"), 0),
                overlay_batch(&[
                    ("count", Value::Float(f64::NAN)),
                    (
                        "raw",
                        Value::RawJson(Bytes::from_static(b"[1, {\"a\": null}]")),
                    ),
                    ("level", Value::Str("WARN".into())),
                ]),
            ]
        }

        fn atom() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("level".to_string()),
                Just("count".to_string()),
                Just("http.status".to_string()),
                Just("tags".to_string()),
                Just("labels['tier']".to_string()),
                Just("missing".to_string()),
                Just("raw".to_string()),
                Just("message".to_string()),
                Just("ts".to_string()),
                Just("null".to_string()),
                Just("true".to_string()),
                Just("0.0".to_string()),
                Just("-9223372036854775808".to_string()),
                Just("9223372036854775807".to_string()),
                Just("timestamp('2026-11-20T12:00:00Z')".to_string()),
                Just("duration('1h')".to_string()),
                Just("1u".to_string()),
                Just("18446744073709551615u".to_string()),
                Just("b'\\xff'".to_string()),
                Just("pat".to_string()),
                any::<i64>().prop_map(|i| i.to_string()),
                any::<f64>().prop_map(|f| format!("{f:?}")),
                "[a-z\\\\\"é]{0,4}".prop_map(|s| format!("{s:?}")),
            ]
        }

        /// Random well-formed-ish expressions over every operator and function.
        fn expr() -> impl Strategy<Value = String> {
            atom().prop_recursive(5, 48, 3, |inner| {
                let op = prop_oneof![
                    Just("+"),
                    Just("-"),
                    Just("*"),
                    Just("/"),
                    Just("%"),
                    Just("<"),
                    Just("<="),
                    Just(">"),
                    Just(">="),
                    Just("=="),
                    Just("!="),
                    Just("in"),
                    Just("&&"),
                    Just("||"),
                ];
                let func = prop_oneof![
                    Just("size"),
                    Just("int"),
                    Just("double"),
                    Just("string"),
                    Just("timestamp"),
                    Just("duration"),
                    Just("uint"),
                    Just("bool"),
                    Just("bytes"),
                ];
                let method = prop_oneof![
                    Just(".size()"),
                    Just(".lowerAscii()"),
                    Just(".upperAscii()"),
                    Just(".contains('e')"),
                    Just(".startsWith('e')"),
                    Just(".endsWith('')"),
                    Just(".matches('^[a-z]+$')"),
                    Just(".matches(pat)"),
                    Just(".getHours()"),
                    Just(".getDayOfYear('-03:30')"),
                    Just(".getMilliseconds()"),
                    Just(".getFullYear('UTC')"),
                ];
                prop_oneof![
                    (inner.clone(), op, inner.clone())
                        .prop_map(|(a, o, b)| format!("({a} {o} {b})")),
                    (func, inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
                    (inner.clone(), method).prop_map(|(a, m)| format!("({a}){m}")),
                    inner.clone().prop_map(|a| format!("!({a})")),
                    inner.clone().prop_map(|a| format!("-({a})")),
                    (inner.clone(), inner.clone(), inner.clone())
                        .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
                    proptest::collection::vec(inner.clone(), 0..4)
                        .prop_map(|v| format!("[{}]", v.join(", "))),
                    (inner.clone(), inner).prop_map(|(a, b)| format!("({a}).contains({b})")),
                ]
            })
        }

        fn run_all(c: &Condition, batches: &[Batch]) {
            for b in batches {
                for ev in &b.events {
                    let _ = c.matches(b, ev);
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                let src = String::from_utf8_lossy(&bytes);
                if let Ok(c) = Condition::compile(&src) {
                    run_all(&c, &batches());
                }
            }

            #[test]
            fn random_text_never_panics(src in "[ -~é\\n\\t]{0,48}") {
                if let Ok(c) = Condition::compile(&src) {
                    run_all(&c, &batches());
                }
            }

            #[test]
            fn random_token_soup_never_panics(
                toks in proptest::collection::vec(prop_oneof![
                    Just("("), Just(")"), Just("["), Just("]"), Just("."), Just(","), Just("?"),
                    Just(":"), Just("!"), Just("-"), Just("+"), Just("=="), Just("<"), Just("&&"),
                    Just("||"), Just("in"), Just("level"), Just("count"), Just("tags"), Just("1"),
                    Just("2.5"), Just("'s'"), Just("r'\\d'"), Just("null"), Just("has"),
                    Just("size"), Just("contains"), Just("matches"), Just("timestamp"),
                    Just("int"), Just("0x"), Just("\"\\u"), Just("'"),
                ], 0..24)
            ) {
                let src = toks.join(" ");
                if let Ok(c) = Condition::compile(&src) {
                    run_all(&c, &batches());
                }
                let tight = toks.concat();
                if let Ok(c) = Condition::compile(&tight) {
                    run_all(&c, &batches());
                }
            }

            #[test]
            fn compiled_random_conditions_never_panic(src in expr()) {
                match Condition::compile(&src) {
                    Ok(c) => {
                        run_all(&c, &batches());
                        prop_assert_eq!(c.source(), src.as_str());
                    }
                    Err(e) => {
                        prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1, "{}", e);
                    }
                }
            }

            #[test]
            fn error_columns_are_in_range(src in "[a-z0-9 ()\\[\\]'\"=!<>&|.,+*/-]{0,32}") {
                if let Err(e) = Condition::compile(&src) {
                    prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1, "{}: {}", src, e);
                }
            }
        }
    }
}
