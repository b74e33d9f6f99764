//! `response = "bulk"`: request bodies in Elasticsearch `_bulk` form and the per-item
//! answer read back.
//!
//! Each event line is preceded by the action line `{"index":{}}` (the index comes from the
//! URI, e.g. `http://es:9200/logs/_bulk`), so item `i` of the answer is event `i` of the body.
//! A 2xx answer is read as `{"errors":BOOL,"items":[{"ACTION":{"status":N,...}},...]}`:
//! with `errors` false every event was stored (the items are skipped without being
//! collected); otherwise each item's status is judged like a request's status.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The action line written before each event.
pub const ACTION: &[u8] = b"{\"index\":{}}\n";

/// Appends `lines` (whole lines, each ending in `\n`) to `body`, each after [`ACTION`].
pub fn push_lines(body: &mut Vec<u8>, lines: &[u8]) {
    let mut rest = lines;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        body.extend_from_slice(ACTION);
        body.extend_from_slice(&rest[..end]);
        if rest[end - 1] != b'\n' {
            body.push(b'\n');
        }
        rest = &rest[end..];
    }
}

/// The event lines of a bulk body (every second line), each with its `\n`.
pub fn events(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    let mut n = 0usize;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        n += 1;
        if n.is_multiple_of(2) {
            return Some(line);
        }
    })
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    errors: bool,
}

#[derive(Deserialize)]
struct ItemBody {
    #[serde(default)]
    status: u16,
}

#[derive(Deserialize)]
struct Full {
    #[serde(default)]
    items: Vec<BTreeMap<String, ItemBody>>,
}

/// What a bulk answer said.
#[derive(Debug, PartialEq, Eq)]
pub enum BulkAnswer {
    /// `errors: false`: every item stored.
    AllOk,
    /// The status of each item, in order.
    Items(Vec<u16>),
}

/// Reads a 2xx bulk answer; an error when it is not one.
pub fn parse_answer(body: &[u8]) -> Result<BulkAnswer, String> {
    let head: Head =
        serde_json::from_slice(body).map_err(|e| format!("not a _bulk answer: {e}"))?;
    if !head.errors {
        return Ok(BulkAnswer::AllOk);
    }
    let full: Full =
        serde_json::from_slice(body).map_err(|e| format!("not a _bulk answer: {e}"))?;
    Ok(BulkAnswer::Items(
        full.items
            .iter()
            .map(|m| m.values().next().map_or(0, |i| i.status))
            .collect(),
    ))
}
