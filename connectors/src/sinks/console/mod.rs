//! `type = "console"`: writes events to standard output (or standard error), one per line.

use crate::sinks::writer::{self, Chunk, ChunkWriter};
use crate::sinks::SinkRuntime;
use serde::Deserialize;
use sluice_engine::context::BuildCtx;
use sluice_engine::encode::Encoding;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::ring::WhenFull;
use std::io::Write;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    #[default]
    Stdout,
    Stderr,
}

/// Options of the `console` sink.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// `ndjson` (default) or `text` (the `message` field).
    #[serde(default)]
    pub encoding: Encoding,
    #[serde(default)]
    pub stream: Stream,
}

struct ConsoleWriter(Stream);

impl ChunkWriter for ConsoleWriter {
    fn write(&mut self, chunk: &Chunk) -> std::io::Result<()> {
        for (_, data) in &chunk.groups {
            match self.0 {
                Stream::Stdout => std::io::stdout().lock().write_all(data)?,
                Stream::Stderr => std::io::stderr().lock().write_all(data)?,
            }
        }
        Ok(())
    }
    fn flush(&mut self) {
        let _ = std::io::stdout().flush();
    }
}

impl ConsoleConfig {
    pub fn build(
        &self,
        ctx: &BuildCtx,
        metrics: Arc<ComponentMetrics>,
        when_full: WhenFull,
    ) -> SinkRuntime {
        let (parts, thread) = writer::build(
            ctx.shards,
            self.encoding,
            None,
            metrics,
            when_full,
            Box::new(ConsoleWriter(self.stream)),
        );
        SinkRuntime {
            parts,
            thread: Some(thread),
            on_exit: None,
        }
    }
}
