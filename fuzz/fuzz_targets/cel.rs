//! CEL conditions: the first line is compiled, the other lines are JSON events it is
//! evaluated on. Compilation and evaluation never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_engine::batch::Batch;
use sluice_operators::condition::Condition;
use sluice_operators::parsers::json::parse_batch;

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(p) => (&data[..p], &data[p + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(src) = std::str::from_utf8(first) else {
        return;
    };
    let Ok(cond) = Condition::compile(src) else {
        return;
    };
    let mut batch = Batch::from_lines(bytes::Bytes::copy_from_slice(rest), 0);
    let mut rejected = Vec::new();
    parse_batch(&mut batch, &mut rejected);
    for ev in batch.events.clone() {
        let _ = cond.matches(&batch, &ev);
    }
});
