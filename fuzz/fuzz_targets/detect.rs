//! Format detection on arbitrary lines: never panics; a line labelled CRI is accepted by the
//! CRI parser; a line labelled logfmt is run through the logfmt parser (detection is a
//! guess from the first tokens, so the parser may still find no pair: `format = "auto"` then
//! keeps the line as plain text).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_operators::parsers::cri::CriParser;
use sluice_operators::parsers::detect::{detect_format, DetectedFormat};
use sluice_operators::parsers::logfmt::LogfmtParser;
use sluice_operators::parsers::sink::{LineParser, RecordingSink};

fuzz_target!(|data: &[u8]| {
    match detect_format(data) {
        DetectedFormat::Logfmt => {
            let _ = LogfmtParser::new().parse(data, &mut RecordingSink::new());
        }
        DetectedFormat::Cri => {
            assert!(CriParser::default()
                .parse(data, &mut RecordingSink::new())
                .is_ok());
        }
        _ => {}
    }
});
