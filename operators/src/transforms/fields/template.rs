//! Value templates of the `fields` transform: literal text with `{{ field.path }}`
//! placeholders, like `"{{ host }}-{{ service }}"`, rendered per event into a string.
//!
//! A placeholder renders a string field's text, any other value's JSON text (`503`, `true`,
//! `null`, `{"a":1}`), and nothing for a missing field. `{{` always opens a placeholder (there
//! is no escape); it must be closed by `}}` and hold a field path (see
//! [`FieldPath::parse`]). Unlike the connectors' path templates, there are no strftime
//! specifiers: `%` is plain text.

use super::tree::{lookup, Scalar};
use sluice_engine::{FieldPath, Value};

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Field(FieldPath),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `s`; `Ok(None)` when it holds no placeholder (a plain string).
    pub fn parse(s: &str) -> Result<Option<Template>, String> {
        if !s.contains("{{") {
            return Ok(None);
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let inner = &rest[open + 2..];
            let close = inner
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in template `{s}`"))?;
            let path = FieldPath::parse(inner[..close].trim())
                .map_err(|e| format!("in template `{s}`: {e}"))?;
            parts.push(Part::Field(path));
            rest = &inner[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Some(Template { parts }))
    }

    /// Renders against the event `root` into `out` (cleared first).
    pub fn render(&self, root: &Value, out: &mut String) {
        out.clear();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Field(path) => {
                    let Some(v) = lookup(root, path.segments()) else {
                        continue;
                    };
                    match Scalar::of(v) {
                        Scalar::Null => out.push_str("null"),
                        Scalar::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                        Scalar::Number(t) | Scalar::Str(t) | Scalar::Compound(t) => {
                            out.push_str(&t)
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let ev = Value::from_toml_like(
            &serde_json::from_str(
                r#"{"host": "web-1", "svc": {"name": "api"}, "n": 3, "ok": true, "z": null,
                    "q": "a\"b", "o": {"k": [1]}}"#,
            )
            .unwrap(),
        );
        let mut out = String::new();
        let t = Template::parse("{{ host }}-{{svc.name}}/{{n}}{{ok}}{{z}}{{ missing }}%Y{{q}}")
            .unwrap()
            .unwrap();
        t.render(&ev, &mut out);
        assert_eq!(out, "web-1-api/3truenull%Ya\"b");
        let t = Template::parse("{{o}}").unwrap().unwrap();
        t.render(&ev, &mut out);
        assert_eq!(out, r#"{"k":[1]}"#);
        assert_eq!(Template::parse("plain } {").unwrap(), None);
        assert_eq!(
            Template::parse("x{{ a").unwrap_err(),
            "unclosed `{{` in template `x{{ a`"
        );
        assert!(Template::parse("{{ }}").unwrap_err().contains("empty path"));
        assert!(Template::parse("{{ a b }}").is_err());
    }
}
