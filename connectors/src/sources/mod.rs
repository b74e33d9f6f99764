//! Sources: where events come from.

pub mod file;
pub mod generator;
pub mod stdin;

use sluice_engine::shard::ShardSource;
use sluice_engine::source::ConnectorOutput;

/// How a built source runs.
pub enum SourceRuntime {
    /// One part per shard, run as local tasks on the shards.
    Shards {
        parts: Vec<Box<dyn ShardSource>>,
        /// Deal batches over all shards instead of processing them where they were read.
        spread: bool,
    },
    /// A connector thread that hands batches to the shards through rings.
    Thread(Box<dyn FnOnce(ConnectorOutput) + Send>),
}
