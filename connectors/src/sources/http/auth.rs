//! API keys: loaded from the config and a file, presented in `X-API-Key` or
//! `Authorization: Bearer KEY` (also `Authorization: ApiKey KEY`, the scheme Elasticsearch
//! clients use, compared as the raw token), and compared in constant time.
//!
//! Every configured key is compared with every presented credential, without stopping at
//! the first match, so the time taken does not depend on which key (if any) matched or
//! where a wrong key first differs. Only a key's length can show through timing.

use hyper::header::{HeaderMap, AUTHORIZATION};
use std::path::Path;
use subtle::{Choice, ConstantTimeEq};

/// The accepted keys.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    keys: Vec<Vec<u8>>,
}

impl ApiKeys {
    /// Keys from `inline` and from `file` (one per line; blank lines and lines starting with
    /// `#` are skipped, surrounding blanks trimmed). `None` when there are none at all:
    /// authentication is off.
    pub fn load(inline: &[String], file: Option<&Path>) -> Result<Option<ApiKeys>, String> {
        let mut keys: Vec<Vec<u8>> = inline
            .iter()
            .map(|k| k.trim().as_bytes().to_vec())
            .collect();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let before = keys.len();
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| l.as_bytes().to_vec()),
            );
            if keys.len() == before {
                return Err(format!("{} holds no keys", path.display()));
            }
        }
        if keys.iter().any(|k| k.is_empty()) {
            return Err("an API key is empty".into());
        }
        Ok((!keys.is_empty()).then_some(ApiKeys { keys }))
    }

    /// True when `presented` equals one of the keys.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let mut ok = Choice::from(0);
        for k in &self.keys {
            ok |= k.as_slice().ct_eq(presented);
        }
        ok.into()
    }

    /// True when the request carries a valid key in either header.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let mut ok = false;
        if let Some(v) = headers.get("x-api-key") {
            ok |= self.matches(v.as_bytes().trim_ascii());
        }
        for v in headers.get_all(AUTHORIZATION) {
            if let Some(token) = bearer_token(v.as_bytes()) {
                ok |= self.matches(token);
            }
        }
        ok
    }
}

/// The token of `Bearer TOKEN` or `ApiKey TOKEN` (scheme case-insensitive).
fn bearer_token(v: &[u8]) -> Option<&[u8]> {
    let v = v.trim_ascii();
    let sp = v.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = v.split_at(sp);
    if scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"apikey") {
        Some(rest.trim_ascii())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn keys_from_config_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("keys");
        std::fs::write(&f, "# comment\n\n  k2  \nk3\n").unwrap();
        let keys = ApiKeys::load(&["k1".into()], Some(&f)).unwrap().unwrap();
        for k in ["k1", "k2", "k3"] {
            assert!(keys.matches(k.as_bytes()), "{k}");
        }
        for k in ["", "k", "k12", "K1", "# comment"] {
            assert!(!keys.matches(k.as_bytes()), "{k}");
        }
        assert!(ApiKeys::load(&[], None).unwrap().is_none());
        std::fs::write(&f, "# nothing\n").unwrap();
        assert!(ApiKeys::load(&[], Some(&f)).is_err());
        assert!(ApiKeys::load(&[" ".into()], None).is_err());
        assert!(ApiKeys::load(&[], Some(&dir.path().join("missing"))).is_err());
    }

    #[test]
    fn headers() {
        let keys = ApiKeys::load(&["secret".into()], None).unwrap().unwrap();
        let mut h = HeaderMap::new();
        assert!(!keys.allows(&h));
        h.insert("x-api-key", HeaderValue::from_static("secret"));
        assert!(keys.allows(&h));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        assert!(keys.allows(&h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  secret "));
        assert!(keys.allows(&h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("ApiKey secret"));
        assert!(keys.allows(&h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic secret"));
        assert!(!keys.allows(&h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer wrong"));
        assert!(!keys.allows(&h));
        h.insert("x-api-key", HeaderValue::from_static("nope"));
        assert!(!keys.allows(&h));
    }
}
