//! The Elasticsearch `_bulk` body: NDJSON pairs of an action line and (for `index` and
//! `create`) a source line, and the answer Elasticsearch would give.
//!
//! - `index` / `create`: the source line becomes an event, its exact bytes (the `_index` and
//!   `_id` are not added to it). A source line that is not an object (`{...}`) or is missing
//!   is an item error (status 400, `mapper_parsing_exception` /
//!   `action_request_validation_exception`).
//! - `delete`: no source line; answered `404 not_found` (Sluice keeps no documents), which
//!   Elasticsearch does not count as an error.
//! - `update`: its `{"doc":...}` line is consumed and the item fails with 400 (Sluice cannot
//!   update stored documents; ship with `index` or `create`).
//! - An action line that is not one of those is an item error; the line after it is taken
//!   as its source line unless it is itself a valid action line.
//!
//! An item with neither an `_index` nor an index in the URL fails like in Elasticsearch.
//! Accepted items get an `_id` (the client's, or a generated 20-character one).

use serde::Deserialize;
use std::borrow::Cow;
use std::io::Write;

/// The action of a bulk item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Index,
    Create,
    Delete,
    Update,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Delete => "delete",
            Action::Update => "update",
        }
    }
}

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its source line is event number `n` of the request.
    Accepted(u32),
    /// A delete: nothing stored, nothing to delete.
    NotFound,
    /// Refused: HTTP status, Elasticsearch error type, reason.
    Failed(u16, &'static str, &'static str),
}

/// One item of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    pub action: Action,
    pub index: Option<Cow<'a, str>>,
    pub id: Option<Cow<'a, str>>,
    pub outcome: Outcome,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ActionLine<'a> {
    Index(#[serde(borrow)] Meta<'a>),
    Create(#[serde(borrow)] Meta<'a>),
    Delete(#[serde(borrow)] Meta<'a>),
    Update(#[serde(borrow)] Meta<'a>),
}

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(borrow, default)]
    _index: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    _id: Option<Cow<'a, str>>,
}

fn parse_action(line: &[u8]) -> Option<ActionLine<'_>> {
    serde_json::from_slice(line).ok()
}

/// Non-blank lines of a body, trimmed, as `(start, end)`.
#[derive(Clone)]
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Iterator for Lines<'_> {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        while self.pos < self.buf.len() {
            let start = self.pos;
            let end =
                memchr::memchr(b'\n', &self.buf[start..]).map_or(self.buf.len(), |k| start + k);
            self.pos = end + 1;
            let mut s = start;
            let mut e = end;
            while s < e && matches!(self.buf[s], b' ' | b'\t' | b'\r') {
                s += 1;
            }
            while e > s && matches!(self.buf[e - 1], b' ' | b'\t' | b'\r') {
                e -= 1;
            }
            if s < e {
                return Some((s, e));
            }
        }
        None
    }
}

/// Parses a bulk body: the accepted documents go to `spans` (in order; [`Outcome::Accepted`]
/// holds the span's number), every item to `items`. `default_index` is the URL's index.
pub fn parse<'a>(
    buf: &'a [u8],
    default_index: Option<&'a str>,
    spans: &mut Vec<(u32, u32)>,
    items: &mut Vec<Item<'a>>,
) {
    if buf.len() > u32::MAX as usize {
        return;
    }
    let mut lines = Lines { buf, pos: 0 };
    while let Some((s, e)) = lines.next() {
        let Some(action) = parse_action(&buf[s..e]) else {
            // Malformed: the next line is its document unless it is an action itself.
            let mut peek = lines.clone();
            if let Some((ns, ne)) = peek.next() {
                if parse_action(&buf[ns..ne]).is_none() {
                    lines = peek;
                }
            }
            items.push(Item {
                action: Action::Index,
                index: default_index.map(Cow::Borrowed),
                id: None,
                outcome: Outcome::Failed(
                    400,
                    "illegal_argument_exception",
                    "Malformed action/metadata line: expected {\"index\"|\"create\"|\"delete\"|\"update\": {...}}",
                ),
            });
            continue;
        };
        let (act, meta) = match action {
            ActionLine::Index(m) => (Action::Index, m),
            ActionLine::Create(m) => (Action::Create, m),
            ActionLine::Delete(m) => (Action::Delete, m),
            ActionLine::Update(m) => (Action::Update, m),
        };
        let index = meta._index.or(default_index.map(Cow::Borrowed));
        let id = meta._id;
        let mut outcome = match act {
            Action::Index | Action::Create => match lines.next() {
                None => Outcome::Failed(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: the action has no source line;",
                ),
                Some((ds, de)) => {
                    if buf[ds] == b'{' && buf[de - 1] == b'}' {
                        spans.push((ds as u32, (de - ds) as u32));
                        Outcome::Accepted(spans.len() as u32 - 1)
                    } else {
                        Outcome::Failed(
                            400,
                            "mapper_parsing_exception",
                            "failed to parse: the source line is not a JSON object",
                        )
                    }
                }
            },
            Action::Delete => {
                if id.is_none() {
                    Outcome::Failed(
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: id is missing;",
                    )
                } else {
                    Outcome::NotFound
                }
            }
            Action::Update => {
                lines.next();
                Outcome::Failed(
                    400,
                    "action_request_validation_exception",
                    "update is not supported by sluice: send the document with index or create",
                )
            }
        };
        if index.is_none() {
            if let Outcome::Accepted(_) = outcome {
                spans.pop();
            }
            outcome = Outcome::Failed(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            );
        }
        items.push(Item {
            action: act,
            index,
            id,
            outcome,
        });
    }
}

/// Makes Elasticsearch-like document ids: 20 URL-safe base64 characters from a per-process
/// random prefix and a counter.
pub struct IdGen {
    prefix: u64,
    counter: u64,
}

impl Default for IdGen {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let prefix = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        IdGen { prefix, counter: 0 }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl IdGen {
    pub fn next_id(&mut self) -> [u8; 20] {
        self.counter = self.counter.wrapping_add(1);
        let mut raw = [0u8; 15];
        raw[..7].copy_from_slice(&self.prefix.to_be_bytes()[1..]);
        raw[7..].copy_from_slice(&self.counter.to_be_bytes());
        let mut out = [0u8; 20];
        for (i, c) in raw.chunks(3).enumerate() {
            let v = ((c[0] as u32) << 16) | ((c[1] as u32) << 8) | c[2] as u32;
            for j in 0..4 {
                out[i * 4 + j] = B64[((v >> (18 - 6 * j)) & 63) as usize];
            }
        }
        out
    }
}

/// Writes `s` as a JSON string.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut last = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&b[last..i]);
                let _ = write!(out, "\\u{:04x}", c);
                last = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[last..i]);
        out.extend_from_slice(esc);
        last = i + 1;
    }
    out.extend_from_slice(&b[last..]);
    out.push(b'"');
}

/// Writes the `_bulk` response. `seq_no` numbers the accepted items.
pub fn write_response(
    out: &mut Vec<u8>,
    took_ms: u64,
    items: &[Item<'_>],
    ids: &mut IdGen,
    seq_no: &mut u64,
) {
    let errors = items
        .iter()
        .any(|i| matches!(i.outcome, Outcome::Failed(..)));
    let _ = write!(out, "{{\"took\":{took_ms},\"errors\":{errors},\"items\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{{\"{}\":{{", item.action.as_str());
        let mut sep = "";
        if let Some(index) = &item.index {
            out.extend_from_slice(b"\"_index\":");
            write_json_str(out, index);
            sep = ",";
        }
        let generated;
        let id: Option<&str> = match (&item.id, &item.outcome) {
            (Some(id), _) => Some(&**id),
            (None, Outcome::Accepted(_)) => {
                generated = ids.next_id();
                // Base64 characters are ASCII.
                std::str::from_utf8(&generated).ok()
            }
            (None, _) => None,
        };
        if let Some(id) = id {
            out.extend_from_slice(sep.as_bytes());
            out.extend_from_slice(b"\"_id\":");
            write_json_str(out, id);
            sep = ",";
        }
        out.extend_from_slice(sep.as_bytes());
        match item.outcome {
            Outcome::Accepted(_) | Outcome::NotFound => {
                let (result, status) = if item.outcome == Outcome::NotFound {
                    ("not_found", 404)
                } else {
                    ("created", 201)
                };
                let _ = write!(
                    out,
                    "\"_version\":1,\"result\":\"{result}\",\"_shards\":{{\"total\":1,\"successful\":1,\"failed\":0}},\"_seq_no\":{},\"_primary_term\":1,\"status\":{status}",
                    *seq_no
                );
                *seq_no += 1;
            }
            Outcome::Failed(status, kind, reason) => {
                let _ = write!(
                    out,
                    "\"status\":{status},\"error\":{{\"type\":\"{kind}\",\"reason\":"
                );
                write_json_str(out, reason);
                out.push(b'}');
            }
        }
        out.extend_from_slice(b"}}");
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, index: Option<&str>) -> (Vec<String>, serde_json::Value) {
        let mut spans = Vec::new();
        let mut items = Vec::new();
        parse(body.as_bytes(), index, &mut spans, &mut items);
        let docs = spans
            .iter()
            .map(|&(s, l)| body[s as usize..(s + l) as usize].to_string())
            .collect();
        let mut out = Vec::new();
        write_response(&mut out, 3, &items, &mut IdGen::default(), &mut 0);
        (docs, serde_json::from_slice(&out).expect("valid JSON"))
    }

    #[test]
    fn index_and_create_become_events() {
        let body = "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"m\":1}\n{\"create\":{}}\r\n{\"m\":2}\n\n";
        let (docs, r) = run(body, Some("logs"));
        assert_eq!(docs, ["{\"m\":1}", "{\"m\":2}"]);
        assert_eq!(r["errors"], false);
        assert_eq!(r["took"], 3);
        let i0 = &r["items"][0]["index"];
        assert_eq!(i0["_index"], "a");
        assert_eq!(i0["_id"], "1");
        assert_eq!(i0["status"], 201);
        assert_eq!(i0["result"], "created");
        assert_eq!(i0["_shards"]["successful"], 1);
        let i1 = &r["items"][1]["create"];
        assert_eq!(i1["_index"], "logs");
        assert_eq!(i1["_id"].as_str().unwrap().len(), 20);
        assert_eq!(i1["_seq_no"], 1);
    }

    #[test]
    fn errors_per_item() {
        let body = concat!(
            "{\"index\":{}}\n{\"ok\":1}\n",
            "garbage\n{\"swallowed\":1}\n",
            "{\"index\":{}}\nnot-an-object\n",
            "{\"delete\":{\"_id\":\"9\"}}\n",
            "{\"update\":{\"_id\":\"9\"}}\n{\"doc\":{}}\n",
            "{\"bogus\":{}}\n{\"index\":{}}\n{\"ok\":2}\n",
            "{\"create\":{}}\n"
        );
        let (docs, r) = run(body, Some("i"));
        assert_eq!(docs, ["{\"ok\":1}", "{\"ok\":2}"]);
        assert_eq!(r["errors"], true);
        let items = r["items"].as_array().unwrap();
        let statuses: Vec<(String, u64)> = items
            .iter()
            .map(|i| {
                let (k, v) = i.as_object().unwrap().iter().next().unwrap();
                (k.clone(), v["status"].as_u64().unwrap())
            })
            .collect();
        let expect = [
            ("index", 201),
            ("index", 400),
            ("index", 400),
            ("delete", 404),
            ("update", 400),
            ("index", 400),
            ("index", 201),
            ("create", 400),
        ];
        let expect: Vec<(String, u64)> = expect.iter().map(|(k, s)| (k.to_string(), *s)).collect();
        assert_eq!(statuses, expect);
        assert_eq!(
            items[1]["index"]["error"]["type"],
            "illegal_argument_exception"
        );
        assert_eq!(
            items[2]["index"]["error"]["type"],
            "mapper_parsing_exception"
        );
        assert!(items[3]["delete"].get("error").is_none());
    }

    #[test]
    fn index_required_and_escaped() {
        let (docs, r) = run("{\"index\":{\"_id\":\"q\\\"\"}}\n{}\n", None);
        assert!(docs.is_empty());
        assert_eq!(r["items"][0]["index"]["_id"], "q\"");
        assert_eq!(r["items"][0]["index"]["status"], 400);
        let (_, r) = run("{\"index\":{\"_index\":\"a\\nb\"}}\n{}\n", None);
        assert_eq!(r["items"][0]["index"]["_index"], "a\nb");
    }

    #[test]
    fn ids_are_distinct() {
        let mut g = IdGen::default();
        let a = g.next_id();
        let b = g.next_id();
        assert_ne!(a, b);
        assert!(a.iter().all(|c| B64.contains(c)));
    }
}
