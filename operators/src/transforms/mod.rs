//! Transforms: the operators a pipeline chains between sources and sinks.
//!
//! Each transform is a config struct (serde, unknown keys rejected) with a `build()` that
//! returns a [`sluice_engine::pipeline::Transform`]: one `process(batch, out)` call per batch.
//! Named outputs are ports: port 0 is the main output, the others are listed by
//! `named_outputs()` in order (`dropped` is port 1 wherever it exists). `route` emits nothing
//! on port 0: its routes are ports `1..=n` in config order and `_unmatched` is `n + 1`.

pub mod aggregate;
pub mod dedupe;
pub mod enrich;
pub mod fields;
pub mod filter;
pub mod keyed;
pub mod log_to_metric;
pub mod mmdb_writer;
pub mod parse;
pub mod redact;
pub mod route;
pub mod sample;
#[cfg(test)]
mod test_pipeline;
pub mod throttle;

/// Port of the `dropped` output of transforms that have one.
pub const PORT_DROPPED: u8 = 1;
