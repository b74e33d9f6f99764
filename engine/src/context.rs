//! What building a component needs to know about the process it will run in.

use crate::metrics::Registry;
use crate::shutdown::Lifecycle;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct BuildCtx {
    /// Number of shards (one pipeline copy each).
    pub shards: usize,
    /// Upper bound on events per batch.
    pub batch_size: usize,
    pub data_dir: PathBuf,
    pub registry: Arc<Registry>,
    pub lifecycle: Arc<Lifecycle>,
}
