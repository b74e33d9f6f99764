//! Sinks: where events go.

pub mod blackhole;
pub mod console;
pub mod dead_letter;
pub mod disk_buffer;
pub mod file;
pub mod http;
pub mod writer;

use sluice_engine::pipeline::ShardSink;

/// A built sink: one shard-side part per shard, and maybe a writer thread.
pub struct SinkRuntime {
    pub parts: Vec<Box<dyn ShardSink>>,
    /// Started by the topology after the shards.
    pub thread: Option<Box<dyn FnOnce() + Send>>,
    /// Runs after the pipeline stopped (summary lines).
    pub on_exit: Option<Box<dyn FnOnce() + Send>>,
}
