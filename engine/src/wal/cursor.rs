//! The reader cursor: the first sequence number the sink has not acknowledged, persisted in a
//! 32-byte file of two CRC'd slots written in turn (`seq u64 | generation u64 | CRC32C u32 |
//! zero u32`), so a write torn by a crash leaves the other slot intact. No rename, no fsync:
//! a cursor write the kernel did not keep only means replaying records that were already
//! delivered (at-least-once), never losing one. Advancing it deletes the segments wholly
//! below it.

use super::index::SharedIndex;
use super::WalMetrics;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const CURSOR_FILE: &str = "cursor";
const SLOT: usize = 24;

fn encode_slot(seq: u64, generation: u64) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[0..8].copy_from_slice(&seq.to_le_bytes());
    s[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32c::crc32c(&s[0..16]);
    s[16..20].copy_from_slice(&crc.to_le_bytes());
    s
}

fn decode_slot(s: &[u8]) -> Option<(u64, u64)> {
    if s.len() < SLOT {
        return None;
    }
    let crc = u32::from_le_bytes([s[16], s[17], s[18], s[19]]);
    if crc32c::crc32c(&s[0..16]) != crc {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&s[0..8]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[8..16]);
    Some((u64::from_le_bytes(a), u64::from_le_bytes(b)))
}

/// Reads the cursor file in `dir`: `(seq, generation)`; `(0, 0)` when there is none or no
/// slot is valid.
pub fn read_cursor(dir: &Path) -> io::Result<(u64, u64)> {
    let path = dir.join(CURSOR_FILE);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let mut buf = [0u8; 2 * SLOT];
    let mut got = 0;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let a = decode_slot(&buf[..got.min(SLOT)]);
    let b = if got > SLOT {
        decode_slot(&buf[SLOT..got])
    } else {
        None
    };
    Ok(match (a, b) {
        (Some(x), Some(y)) => {
            if x.1 >= y.1 {
                x
            } else {
                y
            }
        }
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => {
            if got > 0 {
                tracing::warn!(
                    file = %path.display(),
                    "WAL cursor unreadable; replaying the whole buffer (records may be delivered twice)"
                );
            }
            (0, 0)
        }
    })
}

/// The sink side's acknowledged position in one WAL.
pub struct WalCursor {
    dir: PathBuf,
    file: File,
    acked: u64,
    generation: u64,
    index: SharedIndex,
    metrics: Arc<WalMetrics>,
}

impl WalCursor {
    pub(crate) fn open(
        dir: &Path,
        acked: u64,
        generation: u64,
        index: SharedIndex,
        metrics: Arc<WalMetrics>,
    ) -> io::Result<WalCursor> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(CURSOR_FILE))?;
        Ok(WalCursor {
            dir: dir.to_path_buf(),
            file,
            acked,
            generation,
            index,
            metrics,
        })
    }

    /// The first sequence number not acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Acknowledges every record below `seq`: persists the cursor (if it moved), then deletes
    /// the segments wholly below it.
    pub fn advance(&mut self, seq: u64) -> io::Result<()> {
        if seq > self.acked {
            self.generation += 1;
            let slot = (self.generation % 2) * SLOT as u64;
            self.file
                .write_all_at(&encode_slot(seq, self.generation), slot)?;
            self.acked = seq;
            self.metrics.cursor_writes.fetch_add(1, Ordering::Relaxed);
        }
        // Also when the cursor did not move: the writer may have rolled past an old segment
        // since (after a crash that lost acknowledged records).
        let gone = match self.index.lock() {
            Ok(mut ix) => ix.take_below(self.acked),
            Err(_) => return Err(io::Error::other("WAL segment index poisoned")),
        };
        for s in gone {
            // The first one becomes the writer's spare (renamed, so recovery never takes it
            // for a segment); the others are deleted.
            let spare = self.dir.join(super::segment::spare_file_name(s.base));
            let delete = match std::fs::rename(&s.path, &spare) {
                Ok(()) => match self.index.lock() {
                    Ok(mut ix) => ix.offer_spare(spare),
                    Err(_) => Some(spare),
                },
                Err(_) => Some(s.path.clone()),
            };
            let Some(path) = delete else {
                self.metrics
                    .segments_deleted
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.metrics
                        .segments_deleted
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot delete acknowledged WAL segment")
                }
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_survive_a_torn_one() {
        let d = tempfile::tempdir().unwrap();
        let index = SharedIndex::default();
        let m = Arc::new(WalMetrics::default());
        let mut c = WalCursor::open(d.path(), 0, 0, index, m).unwrap();
        c.advance(5).unwrap();
        c.advance(9).unwrap();
        assert_eq!(read_cursor(d.path()).unwrap().0, 9);
        // Tear the newest slot (generation 2 lives in slot 0): the older one is used.
        let f = OpenOptions::new()
            .write(true)
            .open(d.path().join(CURSOR_FILE))
            .unwrap();
        f.write_all_at(&[0xAB; 7], 3).unwrap();
        assert_eq!(read_cursor(d.path()).unwrap().0, 5);
        std::fs::write(d.path().join(CURSOR_FILE), [1u8; 3]).unwrap();
        assert_eq!(read_cursor(d.path()).unwrap().0, 0);
    }
}
