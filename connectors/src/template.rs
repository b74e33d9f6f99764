//! Templates for paths, index names, topics and keys: literal text, `{{ field.path }}`
//! placeholders, and strftime `%Y-%m-%d`-style specifiers applied to the event timestamp
//! (the `timestamp` field when it holds RFC 3339, else the time the batch was made).

use chrono::{DateTime, Utc};
use sluice_engine::batch::{Batch, Event};
use sluice_engine::path::FieldPath;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Field(FieldPath),
    /// A run of text holding strftime specifiers.
    Time(String),
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    /// (second, rendered time parts) of the last event, to skip re-formatting.
    cache: Option<(i64, Vec<String>)>,
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            match rest.find("{{") {
                Some(0) => {
                    let end = rest
                        .find("}}")
                        .ok_or_else(|| format!("unclosed `{{{{` in template `{s}`"))?;
                    let path = FieldPath::parse(rest[2..end].trim())
                        .map_err(|e| format!("in template `{s}`: {e}"))?;
                    parts.push(Part::Field(path));
                    rest = &rest[end + 2..];
                }
                Some(i) => {
                    push_text(&mut parts, &rest[..i], s)?;
                    rest = &rest[i..];
                }
                None => {
                    push_text(&mut parts, rest, s)?;
                    rest = "";
                }
            }
        }
        Ok(Template {
            source: s.to_string(),
            parts,
            cache: None,
        })
    }

    /// True when every event renders the same (no fields, no time).
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders for one event into `out` (cleared first).
    pub fn render(&mut self, batch: &Batch, ev: &Event, out: &mut String) {
        out.clear();
        let needs_time = self.parts.iter().any(|p| matches!(p, Part::Time(_)));
        if needs_time {
            let ts = event_time(batch, ev);
            let sec = ts.timestamp();
            if self.cache.as_ref().map(|c| c.0) != Some(sec) {
                let rendered = self
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::Time(f) => Some(ts.format(f).to_string()),
                        _ => None,
                    })
                    .collect();
                self.cache = Some((sec, rendered));
            }
        }
        let mut t = 0;
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Field(path) => {
                    if let Some(v) = batch.get(ev, path) {
                        match v.as_str() {
                            Some(s) => out.push_str(&String::from_utf8_lossy(&s)),
                            None => {
                                let mut b = Vec::new();
                                v.write_json(&mut b);
                                out.push_str(&String::from_utf8_lossy(&b));
                            }
                        }
                    }
                }
                Part::Time(_) => {
                    if let Some((_, r)) = &self.cache {
                        out.push_str(&r[t]);
                    }
                    t += 1;
                }
            }
        }
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str, whole: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    if text.contains('%') {
        // Validate the specifiers now rather than at the first event.
        use chrono::format::{Item, StrftimeItems};
        if StrftimeItems::new(text).any(|i| matches!(i, Item::Error)) {
            return Err(format!("invalid strftime specifier in template `{whole}`"));
        }
        parts.push(Part::Time(text.to_string()));
    } else {
        parts.push(Part::Literal(text.to_string()));
    }
    Ok(())
}

fn event_time(batch: &Batch, ev: &Event) -> DateTime<Utc> {
    let path = FieldPath::single("timestamp");
    if let Some(v) = batch.get(ev, &path) {
        if let Some(s) = v.as_str() {
            if let Ok(s) = std::str::from_utf8(&s) {
                if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                    return t.with_timezone(&Utc);
                }
            }
        }
    }
    let age = batch.origin.created.elapsed();
    Utc::now() - chrono::Duration::from_std(age).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_engine::batch::OverlayOp;
    use sluice_engine::Value;

    #[test]
    fn renders_fields_and_time() {
        let mut b = Batch::from_lines(Bytes::from_static(b"x"), 0);
        b.overlay.ops.push(OverlayOp::Set {
            path: FieldPath::parse("svc").unwrap(),
            value: Value::Str("auth".into()),
            if_absent: false,
        });
        b.overlay.ops.push(OverlayOp::Set {
            path: FieldPath::parse("timestamp").unwrap(),
            value: Value::Str("2026-11-20T12:34:56Z".into()),
            if_absent: false,
        });
        let mut t = Template::parse("/out/{{ svc }}/%Y-%m-%d.log").unwrap();
        assert!(!t.is_static());
        let mut s = String::new();
        let ev = b.events[0];
        t.render(&b, &ev, &mut s);
        assert_eq!(s, "/out/auth/2026-11-20.log");
        assert!(Template::parse("/static/path.log").unwrap().is_static());
        assert!(Template::parse("/x/{{ a").is_err());
        assert!(Template::parse("/x/%Q").is_err());
    }
}
