//! Field paths: `http.status`, `user.id`, `"dotted.key".inner`, `items.0`.
//!
//! A path is parsed once (at config time) into segments; the hot path only compares bytes.

use std::fmt;

/// A parsed field path. Segments are compared byte for byte with JSON keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<Box<str>>,
}

/// Why a path string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path `{path}`: {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

impl FieldPath {
    /// Parses `a.b.c`; a segment may be double-quoted to hold dots or spaces (`a."b.c"`).
    pub fn parse(s: &str) -> Result<FieldPath, PathError> {
        let err = |reason| PathError {
            path: s.to_string(),
            reason,
        };
        let mut segments = Vec::new();
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(err("empty path"));
        }
        loop {
            let seg;
            if let Some(stripped) = rest.strip_prefix('"') {
                let end = stripped
                    .find('"')
                    .ok_or_else(|| err("unterminated quote"))?;
                seg = &stripped[..end];
                rest = &stripped[end + 1..];
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                seg = &rest[..end];
                rest = &rest[end..];
                if seg.is_empty() {
                    return Err(err("empty segment"));
                }
                if seg.contains(|c: char| c.is_whitespace() || c == '"') {
                    return Err(err("unquoted segment holds whitespace or a quote"));
                }
            }
            segments.push(seg.into());
            if rest.is_empty() {
                break;
            }
            rest = rest
                .strip_prefix('.')
                .ok_or_else(|| err("expected `.` between segments"))?;
            if rest.is_empty() {
                return Err(err("trailing `.`"));
            }
        }
        Ok(FieldPath { segments })
    }

    /// A path of one segment, taken literally (no dot splitting).
    pub fn single(key: &str) -> FieldPath {
        FieldPath {
            segments: vec![key.into()],
        }
    }

    pub fn from_segments(segments: Vec<Box<str>>) -> FieldPath {
        FieldPath { segments }
    }

    pub fn segments(&self) -> &[Box<str>] {
        &self.segments
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// True when `self` is `other` or an ancestor of it.
    pub fn is_prefix_of(&self, other: &FieldPath) -> bool {
        self.segments.len() <= other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| a == b)
    }

    /// `other` with the prefix `self` replaced by `to`. Caller checks `is_prefix_of`.
    pub fn rebase(&self, other: &FieldPath, to: &FieldPath) -> FieldPath {
        let mut segments = to.segments.clone();
        segments.extend(other.segments[self.segments.len()..].iter().cloned());
        FieldPath { segments }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            if s.contains(|c: char| c == '.' || c.is_whitespace()) {
                write!(f, "\"{s}\"")?;
            } else {
                f.write_str(s)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldPath({self})")
    }
}

impl<'de> serde::Deserialize<'de> for FieldPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FieldPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dotted_and_quoted() {
        let p = FieldPath::parse("http.status").unwrap();
        assert_eq!(p.segments().len(), 2);
        let q = FieldPath::parse("a.\"b.c\".d").unwrap();
        assert_eq!(&*q.segments()[1], "b.c");
        assert_eq!(q.to_string(), "a.\"b.c\".d");
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in ["", "a..b", "a.", ".a", "a.\"b", "a b"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_and_rebase() {
        let a = FieldPath::parse("a").unwrap();
        let ab = FieldPath::parse("a.b").unwrap();
        let x = FieldPath::parse("x.y").unwrap();
        assert!(a.is_prefix_of(&ab));
        assert!(!ab.is_prefix_of(&a));
        assert_eq!(a.rebase(&ab, &x).to_string(), "x.y.b");
    }
}
