//! Type coercion of one value for the `fields` transform's `coerce` option, with a small
//! lenient timestamp reader (RFC 3339 / ISO 8601 text, or Unix epoch numbers whose unit is
//! told by their magnitude).

use super::tree::Scalar;
use crate::parsers::timestamp::Timestamp;
use serde::Deserialize;
use sluice_engine::Value;

/// What `coerce` turns a field into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoerceType {
    /// An integer: integers stay, doubles are truncated toward zero, strings are parsed
    /// (as an integer, else as a number then truncated), booleans are 1 / 0.
    Int,
    /// A double: numbers convert, strings are parsed, booleans are 1.0 / 0.0.
    Float,
    /// A boolean: `true false 1 0 yes no on off` in any case (strings), numbers are true
    /// when not zero.
    Bool,
    /// RFC 3339 text in UTC (`2026-11-21T09:34:39.250Z`), from RFC 3339 / ISO 8601 text or
    /// Unix epoch numbers (or numeric strings).
    Timestamp,
    /// A string: numbers keep their text, booleans are `true` / `false`, objects and arrays
    /// become their JSON text.
    String,
}

/// Converts `v` to `to`; `None` when it cannot (then the field is left as it is). `null`
/// never converts.
pub fn coerce(v: &Value, to: CoerceType) -> Option<Value> {
    let s = Scalar::of(v);
    if s == Scalar::Null {
        return None;
    }
    match to {
        CoerceType::Int => to_int(&s).map(Value::Int),
        CoerceType::Float => to_float(&s).map(Value::Float),
        CoerceType::Bool => to_bool(&s).map(Value::Bool),
        CoerceType::String => Some(Value::Str(match s {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Number(t) | Scalar::Str(t) | Scalar::Compound(t) => t,
            Scalar::Null => return None,
        })),
        CoerceType::Timestamp => {
            let nanos = match &s {
                Scalar::Number(t) | Scalar::Str(t) => parse_time(t.trim())?,
                _ => return None,
            };
            let mut out = Vec::with_capacity(30);
            Timestamp::from_unix_nanos(nanos).write_rfc3339(&mut out);
            String::from_utf8(out).ok().map(Value::Str)
        }
    }
}

fn to_int(s: &Scalar) -> Option<i64> {
    match s {
        Scalar::Bool(b) => Some(*b as i64),
        Scalar::Number(t) | Scalar::Str(t) => {
            let t = t.trim();
            t.parse::<i64>()
                .ok()
                .or_else(|| float_to_int(t.parse().ok()?))
        }
        _ => None,
    }
}

fn float_to_int(f: f64) -> Option<i64> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    (f.is_finite() && (-TWO_63..TWO_63).contains(&f)).then(|| f.trunc() as i64)
}

fn to_float(s: &Scalar) -> Option<f64> {
    match s {
        Scalar::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Scalar::Number(t) | Scalar::Str(t) => {
            t.trim().parse::<f64>().ok().filter(|f| f.is_finite())
        }
        _ => None,
    }
}

fn to_bool(s: &Scalar) -> Option<bool> {
    match s {
        Scalar::Bool(b) => Some(*b),
        Scalar::Number(t) => t.parse::<f64>().ok().map(|f| f != 0.0),
        Scalar::Str(t) => {
            let t = t.trim();
            const TRUE: &[&str] = &["true", "1", "yes", "on", "t", "y"];
            const FALSE: &[&str] = &["false", "0", "no", "off", "f", "n"];
            if TRUE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
                Some(true)
            } else if FALSE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Nanoseconds since the epoch of a timestamp written as RFC 3339 / ISO 8601 text or as an
/// epoch number.
pub fn parse_time(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let numeric = b
        .iter()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || *c == b'.' || (i == 0 && *c == b'-'))
        || s.contains(['e', 'E']) && s.parse::<f64>().is_ok();
    if numeric {
        return parse_epoch(s);
    }
    parse_iso8601(b)
}

/// An epoch number whose unit is told by its magnitude: below 10^11 seconds (up to the year
/// 5138), below 10^14 milliseconds, below 10^17 microseconds, else nanoseconds.
pub fn parse_epoch(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    let plain = !int_part.is_empty()
        && int_part.len() <= 20
        && int_part.bytes().all(|c| c.is_ascii_digit())
        && frac_part.bytes().all(|c| c.is_ascii_digit());
    let nanos: i128 = if plain {
        let whole: i128 = int_part.parse().ok()?;
        let unit = epoch_unit(whole as f64);
        let mut frac: i128 = 0;
        let mut scale: i128 = 1;
        for c in frac_part.bytes().take(18) {
            frac = frac * 10 + (c - b'0') as i128;
            scale *= 10;
        }
        whole * unit + frac * unit / scale
    } else {
        // Exponent forms (`1.7e9`): through a double.
        let f: f64 = body.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        (f * epoch_unit(f) as f64) as i128
    };
    let nanos = if neg { -nanos } else { nanos };
    i64::try_from(nanos).ok()
}

fn epoch_unit(magnitude: f64) -> i128 {
    if magnitude < 1e11 {
        1_000_000_000
    } else if magnitude < 1e14 {
        1_000_000
    } else if magnitude < 1e17 {
        1_000
    } else {
        1
    }
}

/// `YYYY-MM-DD`, optionally followed by `T`, `t` or a space and `HH:MM[:SS[(.|,)fraction]]`,
/// optionally followed (a space allowed before) by `Z`, `z` or an offset `±HH[:MM]` /
/// `±HHMM`. Without a zone the time is UTC.
fn parse_iso8601(b: &[u8]) -> Option<i64> {
    let mut r = Reader { b, i: 0 };
    let year = r.digits(4)? as i32;
    r.eat(b'-')?;
    let month = r.digits(2)?;
    r.eat(b'-')?;
    let day = r.digits(2)?;
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0);
    if r.at_end() {
        return Timestamp::from_civil(year, month, day, 0, 0, 0, 0, 0).map(|t| t.unix_nanos);
    }
    if matches!(r.peek(), Some(b'T' | b't' | b' ')) {
        r.i += 1;
        hour = r.digits(2)?;
        r.eat(b':')?;
        minute = r.digits(2)?;
        if r.peek() == Some(b':') {
            r.i += 1;
            second = r.digits(2)?;
            if matches!(r.peek(), Some(b'.' | b',')) {
                r.i += 1;
                let start = r.i;
                while r.peek().is_some_and(|c| c.is_ascii_digit()) {
                    if r.i - start < 9 {
                        nanos = nanos * 10 + (b[r.i] - b'0') as u32;
                    }
                    r.i += 1;
                }
                let n = r.i - start;
                if n == 0 {
                    return None;
                }
                for _ in n..9 {
                    nanos *= 10;
                }
            }
        }
    }
    if r.peek() == Some(b' ') {
        r.i += 1;
    }
    let offset = match r.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            r.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            r.i += 1;
            let oh = r.digits(2)? as i32;
            if r.peek() == Some(b':') {
                r.i += 1;
            }
            let om = if r.at_end() { 0 } else { r.digits(2)? as i32 };
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        Some(_) => return None,
    };
    if !r.at_end() {
        return None;
    }
    Timestamp::from_civil(year, month, day, hour, minute, second, nanos, offset)
        .map(|t| t.unix_nanos)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let part = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u32;
        }
        self.i += n;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn raw(s: &'static str) -> Value {
        Value::RawJson(Bytes::from_static(s.as_bytes()))
    }

    fn ts(v: Value) -> Option<String> {
        match coerce(&v, CoerceType::Timestamp)? {
            Value::Str(s) => Some(s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_and_bools() {
        assert_eq!(
            coerce(&raw(r#""42""#), CoerceType::Int),
            Some(Value::Int(42))
        );
        assert_eq!(
            coerce(&raw(r#"" -7 ""#), CoerceType::Int),
            Some(Value::Int(-7))
        );
        assert_eq!(coerce(&raw("3.9"), CoerceType::Int), Some(Value::Int(3)));
        assert_eq!(
            coerce(&raw(r#""-3.9""#), CoerceType::Int),
            Some(Value::Int(-3))
        );
        assert_eq!(coerce(&raw("true"), CoerceType::Int), Some(Value::Int(1)));
        assert_eq!(coerce(&raw("1e300"), CoerceType::Int), None);
        assert_eq!(coerce(&raw(r#""x1""#), CoerceType::Int), None);
        assert_eq!(coerce(&raw("null"), CoerceType::Int), None);
        assert_eq!(coerce(&raw("[1]"), CoerceType::Int), None);
        assert_eq!(
            coerce(&raw(r#""1.5""#), CoerceType::Float),
            Some(Value::Float(1.5))
        );
        assert_eq!(
            coerce(&Value::Int(2), CoerceType::Float),
            Some(Value::Float(2.0))
        );
        assert_eq!(coerce(&raw(r#""NaN""#), CoerceType::Float), None);
        assert_eq!(coerce(&raw(r#""inf""#), CoerceType::Float), None);
        for yes in [
            "\"true\"", "\"YES\"", "\"on\"", "\"1\"", "1", "-0.5", "true",
        ] {
            assert_eq!(
                coerce(&Value::RawJson(Bytes::from(yes)), CoerceType::Bool),
                Some(Value::Bool(true)),
                "{yes}"
            );
        }
        for no in [
            "\"False\"",
            "\"no\"",
            "\"OFF\"",
            "\"0\"",
            "0",
            "0.0",
            "false",
        ] {
            assert_eq!(
                coerce(&Value::RawJson(Bytes::from(no)), CoerceType::Bool),
                Some(Value::Bool(false)),
                "{no}"
            );
        }
        assert_eq!(coerce(&raw(r#""maybe""#), CoerceType::Bool), None);
    }

    #[test]
    fn strings() {
        let s = |v: Value| coerce(&v, CoerceType::String);
        assert_eq!(s(raw("1.50")), Some(Value::Str("1.50".into())));
        assert_eq!(s(raw("false")), Some(Value::Str("false".into())));
        assert_eq!(s(raw(r#""a\nb""#)), Some(Value::Str("a\nb".into())));
        assert_eq!(s(Value::Int(3)), Some(Value::Str("3".into())));
        assert_eq!(
            s(Value::Object(vec![("a".into(), raw("[1, 2]"))])),
            Some(Value::Str(r#"{"a":[1, 2]}"#.into()))
        );
        assert_eq!(s(raw("null")), None);
    }

    #[test]
    fn timestamps_from_text() {
        let t = |s: &str| ts(Value::Str(s.into()));
        assert_eq!(
            t("2026-11-21T09:34:39Z").as_deref(),
            Some("2026-11-21T09:34:39Z")
        );
        assert_eq!(
            t("2026-11-21T10:34:39.25+01:00").as_deref(),
            Some("2026-11-21T09:34:39.250Z")
        );
        assert_eq!(
            t("2026-11-21 09:34:39,123456").as_deref(),
            Some("2026-11-21T09:34:39.123456Z")
        );
        assert_eq!(
            t("2026-11-21t04:34:39-0500").as_deref(),
            Some("2026-11-21T09:34:39Z")
        );
        assert_eq!(
            t("2026-11-21T12:34:39 +03").as_deref(),
            Some("2026-11-21T09:34:39Z")
        );
        assert_eq!(
            t("2026-11-21T09:34").as_deref(),
            Some("2026-11-21T09:34:00Z")
        );
        assert_eq!(t("2026-11-21").as_deref(), Some("2026-11-21T00:00:00Z"));
        assert_eq!(
            t(" 2026-11-21T09:34:39.123456789123Z ").as_deref(),
            Some("2026-11-21T09:34:39.123456789Z")
        );
        for bad in [
            "",
            "2026-11-21T",
            "2026-13-01",
            "2026-02-29T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T09:34:39.Z",
            "2026-11-21T09:34:39+24:00",
            "2026-11-21T09:34:39Zjunk",
            "21/11/2026",
            "now",
            "-",
            ".",
            "1.2.3",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_from_epochs() {
        let n = |s: &'static str| ts(raw(s));
        assert_eq!(n("1795253679").as_deref(), Some("2026-11-21T09:34:39Z"));
        assert_eq!(
            n("1795253679.5").as_deref(),
            Some("2026-11-21T09:34:39.500Z")
        );
        assert_eq!(
            n("1795253679250").as_deref(),
            Some("2026-11-21T09:34:39.250Z")
        );
        assert_eq!(
            n("1795253679250001").as_deref(),
            Some("2026-11-21T09:34:39.250001Z")
        );
        assert_eq!(
            n("1795253679250001002").as_deref(),
            Some("2026-11-21T09:34:39.250001002Z")
        );
        assert_eq!(n("1.795253679e9").as_deref(), Some("2026-11-21T09:34:39Z"));
        assert_eq!(n("0").as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(n("-1").as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(
            n(r#""1795253679""#).as_deref(),
            Some("2026-11-21T09:34:39Z")
        );
        // Out of the representable range, or not a number.
        assert_eq!(n("99999999999999999999"), None);
        assert_eq!(n("1e400"), None);
        assert_eq!(n("true"), None);
    }
}
