//! Sources and sinks that touch the outside world.
//!
//! Sources either run on the shards ([`sluice_engine::shard::ShardSource`]: files, the
//! generator) or on their own connector thread that frames bytes into batches and deals them
//! to the shards' rings (stdin). Sinks have a shard-side part
//! ([`sluice_engine::pipeline::ShardSink`]) and, when they do blocking I/O, a writer thread
//! fed by one ring per shard ([`sinks::writer`]).

pub mod framing;
pub mod precise_timer;
pub mod sinks;
pub mod sources;
pub mod template;
