//! The redactor on arbitrary text with every detector, a literal and patterns, in both
//! modes: never panics, valid UTF-8 stays valid UTF-8, and text nothing matched is left
//! alone. The same text as JSON events through the transform encodes without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_engine::batch::Batch;
use sluice_engine::encode::{encode_batch, Encoding};
use sluice_engine::metrics::{ComponentKind, Registry};
use sluice_operators::parsers::json::parse_batch;
use sluice_operators::transforms::redact::{Detector, Redact, RedactConfig, RedactMode, Redactor};
use std::cell::RefCell;

struct Setup {
    replace: Redactor,
    hash: Redactor,
    transform: Redact,
}

fn config(mode: RedactMode) -> RedactConfig {
    RedactConfig {
        fields: vec!["message".into(), "a.b".into(), "msg".into()],
        literals: vec!["secret".into(), "é".into(), "sec".into()],
        case_insensitive: true,
        patterns: vec![
            r"pass(word)?=\S+".into(),
            r"\d{3}-\d{2}-\d{4}".into(),
            "x*".into(),
        ],
        detectors: Detector::ALL.to_vec(),
        mode,
        replace: "[REDACTED]".into(),
        hash_key: (mode == RedactMode::Hash).then(|| "fuzz-key".into()),
    }
}

thread_local! {
    static SETUP: RefCell<Setup> = RefCell::new({
        let metrics = Registry::new().component("redact", ComponentKind::Transform, "redact");
        Setup {
            replace: config(RedactMode::Replace).redactor().expect("config"),
            hash: config(RedactMode::Hash).redactor().expect("config"),
            transform: config(RedactMode::Replace).build(&metrics).expect("config"),
        }
    });
}

fuzz_target!(|data: &[u8]| {
    SETUP.with(|setup| {
        let setup = &mut *setup.borrow_mut();
        let utf8 = std::str::from_utf8(data).is_ok();
        for redactor in [&mut setup.replace, &mut setup.hash] {
            let mut out = b"sentinel".to_vec();
            if redactor.redact_into(data, &mut out) {
                if utf8 {
                    assert!(std::str::from_utf8(&out).is_ok());
                }
            } else {
                assert_eq!(out, b"sentinel");
            }
        }
        let mut batch = Batch::from_lines(bytes::Bytes::copy_from_slice(data), 0);
        let mut rejected = Vec::new();
        parse_batch(&mut batch, &mut rejected);
        setup.transform.apply(&mut batch);
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, &batch, &mut out);
        if utf8 {
            assert!(std::str::from_utf8(&out).is_ok());
        }
        out.clear();
        encode_batch(Encoding::Text, &batch, &mut out);
    });
});
