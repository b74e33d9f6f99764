//! Maps a key path (`sources.app.include`) back to its line and column in the TOML text, so
//! every config error can point at the place to fix.

use toml_edit::{ImDocument, Item, Value};

pub struct Locator {
    doc: Option<ImDocument<String>>,
    line_starts: Vec<usize>,
}

impl Locator {
    pub fn new(text: &str) -> Locator {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator {
            doc: ImDocument::parse(text.to_string()).ok(),
            line_starts,
        }
    }

    /// 1-based (line, column) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        (line.max(1), offset - start + 1)
    }

    /// The position of the deepest part of `path` that exists (the key itself if it does,
    /// else its closest ancestor).
    pub fn find(&self, path: &[String]) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut best: Option<usize> = None;
        let mut item: &Item = doc.as_item();
        let mut inline: Option<&Value> = None;
        for seg in path {
            if let Some(v) = inline {
                // Inside an inline table or array: record the key's position and go on.
                let (span, next) = match v {
                    Value::InlineTable(t) => (t.key(seg).and_then(|k| k.span()), t.get(seg)),
                    Value::Array(a) => {
                        let next = seg.parse::<usize>().ok().and_then(|i| a.get(i));
                        (next.and_then(|v| v.span()), next)
                    }
                    _ => (None, None),
                };
                if let Some(s) = span {
                    best = Some(s.start);
                }
                match next {
                    Some(n) => inline = Some(n),
                    None => break,
                }
                continue;
            }
            let Item::Table(t) = item else { break };
            if let Some(s) = t.key(seg).and_then(|k| k.span()) {
                best = Some(s.start);
            } else if let Some(s) = t.span() {
                best.get_or_insert(s.start);
            }
            match t.get(seg) {
                Some(Item::Value(v)) => inline = Some(v),
                Some(next) => item = next,
                None => break,
            }
        }
        best.map(|o| self.line_col(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_tables_and_inline_tables() {
        let text = "[engine]\nshards = 2\n\n[sources.app]\ntype = \"file\"\ninclude = [\"a\", \"b\"]\nbuf = { kind = \"disk\" }\n";
        let l = Locator::new(text);
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(l.find(&p("engine.shards")), Some((2, 1)));
        assert_eq!(l.find(&p("sources.app.type")), Some((5, 1)));
        assert_eq!(l.find(&p("sources.app.include")), Some((6, 1)));
        assert_eq!(l.find(&p("sources.app.include.1")).unwrap().0, 6);
        assert_eq!(l.find(&p("sources.app.buf.kind")).unwrap(), (7, 9));
        // A key that does not exist falls back to its table.
        assert_eq!(l.find(&p("sources.app.nope")).unwrap().0, 4);
    }
}
