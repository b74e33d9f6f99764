//! Config loading on arbitrary text: every input yields a config or errors, never a panic,
//! and every error names the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |v: &str| (v == "SET").then(|| "value".to_string());
    if let Err(errors) = sluice_dataflow::config::load_str(Path::new("fuzz.toml"), text, env) {
        for e in errors.0 {
            assert!(e.to_string().starts_with("fuzz.toml"));
        }
    }
});
