//! Sources: where events come from.

pub mod file;
pub mod generator;
pub mod http;
pub mod stdin;
pub mod syslog;

use sluice_engine::ack::AckReceiver;
use sluice_engine::shard::ShardSource;
use sluice_engine::source::ConnectorOutput;
use std::sync::Arc;

/// Where a built source runs.
pub enum SourceShape {
    /// One part per shard, run as local tasks on the shards.
    Shards {
        parts: Vec<Box<dyn ShardSource>>,
        /// Deal batches over all shards instead of processing them where they were read.
        spread: bool,
    },
    /// A connector thread that hands batches to the shards through rings.
    Thread(Box<dyn FnOnce(ConnectorOutput) + Send>),
}

/// A built source.
pub struct SourceRuntime {
    pub shape: SourceShape,
    /// Told about every acknowledged batch (file checkpoints).
    pub receiver: Option<Arc<dyn AckReceiver>>,
    /// A helper thread (checkpoint writer); it returns once the process stopped, and is
    /// joined after the shards.
    pub background: Option<Box<dyn FnOnce() + Send>>,
}

impl SourceRuntime {
    pub fn shards(parts: Vec<Box<dyn ShardSource>>, spread: bool) -> SourceRuntime {
        SourceRuntime {
            shape: SourceShape::Shards { parts, spread },
            receiver: None,
            background: None,
        }
    }

    pub fn thread(f: Box<dyn FnOnce(ConnectorOutput) + Send>) -> SourceRuntime {
        SourceRuntime {
            shape: SourceShape::Thread(f),
            receiver: None,
            background: None,
        }
    }
}
