//! `type = "console"`: writes events to standard output (or standard error), one per line.

use crate::sinks::writer::{self, Chunk, ChunkWriter};
use crate::sinks::SinkRuntime;
use serde::Deserialize;
use sluice_engine::context::BuildCtx;
use sluice_engine::encode::Encoding;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::ring::WhenFull;
use sluice_engine::wal::DiskBufferConfig;
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
        disk: Option<DiskBufferConfig>,
    ) -> Result<SinkRuntime, String> {
        let w: Box<dyn writer::ChunkWriter> = Box::new(ConsoleWriter(self.stream));
        let (parts, thread) = match disk {
            Some(cfg) => crate::sinks::disk_buffer::build(
                ctx.shards,
                &ctx.data_dir.join("buffers").join(&metrics.id),
                cfg,
                self.encoding,
                None,
                metrics,
                &ctx.registry,
                w,
            )
            .map_err(|e| format!("cannot open the disk buffer: {e}"))?,
            None => writer::build(ctx.shards, self.encoding, None, metrics, when_full, w),
        };
        Ok(SinkRuntime {
            parts,
            thread: Some(thread),
            on_exit: None,
        })
    }
}
