//! `type = "file"`: appends events to files named by a template
//! (`/var/log/out/{{ service }}-%Y-%m-%d.ndjson`), creating directories as needed and keeping
//! up to 64 files open. A file found ending inside a line (a write cut short by a crash) gets
//! that line ended before anything is appended.

use crate::sinks::writer::{self, Chunk, ChunkWriter};
use crate::sinks::SinkRuntime;
use crate::template::Template;
use serde::Deserialize;
use sluice_engine::context::BuildCtx;
use sluice_engine::encode::Encoding;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::ring::WhenFull;
use sluice_engine::wal::DiskBufferConfig;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;

/// Options of the `file` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Path template: literal text, `{{ field }}` and strftime specifiers.
    pub path: String,
    /// `ndjson` (default) or `text` (the `message` field).
    #[serde(default)]
    pub encoding: Encoding,
}

const MAX_OPEN: usize = 64;

struct FileWriter {
    open: HashMap<String, File>,
}

impl FileWriter {
    fn file(&mut self, path: &str) -> std::io::Result<&mut File> {
        if !self.open.contains_key(path) {
            if self.open.len() >= MAX_OPEN {
                self.open.clear();
            }
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            let mut f = OpenOptions::new().create(true).append(true).open(path)?;
            end_partial_line(path, &mut f)?;
            self.open.insert(path.to_string(), f);
        }
        Ok(self.open.get_mut(path).expect("just inserted"))
    }
}

/// A regular file that does not end with a newline had a write cut short (a SIGKILL can
/// interrupt a large `write` part way): its last line is ended, so what comes next (the
/// replay of the unacknowledged record, at least once) starts on a line of its own. The
/// fragment stays: nothing is truncated under a reader that may have seen it.
fn end_partial_line(path: &str, f: &mut File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok(());
    }
    let Ok(r) = File::open(path) else {
        return Ok(()); // not readable: nothing to check
    };
    let mut last = [0u8; 1];
    if r.read_at(&mut last, meta.len() - 1)? == 1 && last[0] != b'\n' {
        tracing::warn!(
            path,
            "the file ends inside a line (a write cut short by a crash); ending that line"
        );
        f.write_all(b"\n")?;
    }
    Ok(())
}

impl ChunkWriter for FileWriter {
    fn write(&mut self, chunk: &Chunk) -> std::io::Result<()> {
        for (path, data) in &chunk.groups {
            self.file(path)
                .and_then(|f| f.write_all(data))
                .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))?;
        }
        Ok(())
    }
}

impl FileSinkConfig {
    pub fn validate(&self) -> Result<Template, String> {
        if self.path.trim().is_empty() {
            return Err("`path` must not be empty".into());
        }
        Template::parse(&self.path)
    }

    pub fn build(
        &self,
        ctx: &BuildCtx,
        metrics: Arc<ComponentMetrics>,
        when_full: WhenFull,
        disk: Option<DiskBufferConfig>,
    ) -> Result<SinkRuntime, String> {
        let template = self.validate()?;
        let w: Box<dyn writer::ChunkWriter> = Box::new(FileWriter {
            open: HashMap::new(),
        });
        let (parts, thread) = match disk {
            Some(cfg) => crate::sinks::disk_buffer::build(
                ctx.shards,
                &ctx.data_dir.join("buffers").join(&metrics.id),
                cfg,
                self.encoding,
                Some(template),
                metrics,
                &ctx.registry,
                w,
            )
            .map_err(|e| format!("cannot open the disk buffer: {e}"))?,
            None => writer::build(
                ctx.shards,
                self.encoding,
                Some(template),
                metrics,
                when_full,
                w,
            ),
        };
        Ok(SinkRuntime {
            parts,
            thread: Some(thread),
            on_exit: None,
        })
    }
}
