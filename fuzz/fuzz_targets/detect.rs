//! Format detection on arbitrary lines: never panics, and a line labelled logfmt or CRI is
//! accepted by that format's parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_operators::parsers::cri::CriParser;
use sluice_operators::parsers::detect::{detect_format, DetectedFormat};
use sluice_operators::parsers::logfmt::LogfmtParser;
use sluice_operators::parsers::sink::{LineParser, RecordingSink};

fuzz_target!(|data: &[u8]| {
    match detect_format(data) {
        DetectedFormat::Logfmt => {
            assert!(LogfmtParser::new()
                .parse(data, &mut RecordingSink::new())
                .is_ok());
        }
        DetectedFormat::Cri => {
            assert!(CriParser::default()
                .parse(data, &mut RecordingSink::new())
                .is_ok());
        }
        _ => {}
    }
});
