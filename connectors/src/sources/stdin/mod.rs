//! `type = "stdin"`: reads newline-delimited events from standard input on a connector
//! thread. At end of input the source finishes, the pipeline drains and `sluice run` exits
//! 0, so `sluice run p.toml < file` works as a filter.

use crate::framing::LineFramer;
use crate::sources::SourceRuntime;
use bytes::BytesMut;
use serde::Deserialize;
use sluice_engine::context::BuildCtx;
use sluice_engine::source::ConnectorOutput;
use sluice_engine::units::ByteSize;
use std::io::Read;

/// Options of the `stdin` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Lines longer than this are cut to it and counted (default 100KiB).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: ByteSize,
}

fn default_max_line() -> ByteSize {
    ByteSize(100 * 1024)
}

impl StdinConfig {
    pub fn build(&self, ctx: &BuildCtx) -> SourceRuntime {
        let max_line = self.max_line_bytes.0 as usize;
        let batch_size = ctx.batch_size;
        SourceRuntime::thread(Box::new(move |out| run(out, max_line, batch_size)))
    }
}

fn run(mut out: ConnectorOutput, max_line: usize, batch_size: usize) {
    out.handle.mark_started();
    let truncated = out.handle.metrics.dropped("truncated");
    let mut framer = LineFramer::new(max_line, batch_size);
    let mut stdin = std::io::stdin().lock();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let source = out.handle.index;
    'read: loop {
        if out.lifecycle().is_draining() {
            break;
        }
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(256 * 1024);
        }
        let spare = buf.spare_capacity_mut();
        // SAFETY: `read` only writes initialized bytes into the slice and we only advance
        // the length by what it reports; the MaybeUninit slice is never read before that.
        let slice =
            unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr() as *mut u8, spare.len()) };
        let n = match stdin.read(slice) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "reading stdin failed");
                break;
            }
        };
        // SAFETY: `read` initialized the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        let eof = n == 0;
        let mut failed = false;
        let before = framer.truncated;
        framer.frame(&mut buf, eof, source, &mut |b, _| {
            if !failed && out.send(b).is_err() {
                failed = true;
            }
        });
        if framer.truncated > before {
            truncated.fetch_add(
                framer.truncated - before,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        if failed || eof {
            break 'read;
        }
    }
    out.handle.mark_finished();
}
