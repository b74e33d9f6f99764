//! Segment files: naming, the 32-byte segment header, and a sequential record scanner over a
//! segment read with plain `pread` (recovery and the sink-side reader; never on a shard).
//!
//! A segment is named by the sequence number of its first record
//! (`00000000000000000042.wal`), preallocated to the configured size, and starts with
//! `magic (8) | version u32 | header length u32 | base sequence u64 | CRC32C u32 | zero u32`.
//! Records follow from offset [`SEGMENT_HEADER_LEN`], sequence numbers `base, base + 1, ...`.
//! A recycled segment (see [`SPARE_SUFFIX`]) still holds its earlier records after the new
//! ones; their sequence numbers are below the segment's base, which marks them as the end.

use super::format::{decode_record, BatchHeader, Decoded, RECORD_PREFIX};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const SEGMENT_MAGIC: [u8; 8] = *b"SLUICWAL";
pub const SEGMENT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: u64 = 32;
pub const SEGMENT_SUFFIX: &str = ".wal";
/// An acknowledged segment kept for reuse (`00000000000000000042.spare`): the next roll
/// renames it instead of creating and preallocating a new file, so the writer overwrites
/// allocated blocks (often still in the page cache) and a commit needs no metadata write.
pub const SPARE_SUFFIX: &str = ".spare";

/// `00000000000000000042.wal` for base 42.
pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

/// `00000000000000000042.spare` for the recycled segment that had base 42.
pub fn spare_file_name(base: u64) -> String {
    format!("{base:020}{SPARE_SUFFIX}")
}

/// The base sequence a segment file name stands for.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn encode_segment_header(base: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&base.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The base sequence in a segment header, or what is wrong with it.
pub fn decode_segment_header(h: &[u8]) -> Result<u64, &'static str> {
    if h.len() < SEGMENT_HEADER_LEN as usize {
        return Err("short segment header");
    }
    if h[0..8] != SEGMENT_MAGIC {
        return Err("bad magic");
    }
    let crc = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    if crc32c::crc32c(&h[0..24]) != crc {
        return Err("segment header CRC mismatch");
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != SEGMENT_VERSION {
        return Err("unsupported segment version");
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[16..24]);
    Ok(u64::from_le_bytes(b))
}

/// Reads and checks the header of the segment at `path`; bytes read go to `counter`.
pub fn read_segment_header(
    path: &Path,
    counter: &AtomicU64,
) -> io::Result<Result<u64, &'static str>> {
    let f = File::open(path)?;
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    let mut got = 0;
    while got < h.len() {
        let n = f.read_at(&mut h[got..], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    counter.fetch_add(got as u64, Ordering::Relaxed);
    Ok(decode_segment_header(&h[..got]))
}

/// One step of a scan.
#[derive(Debug)]
pub enum Scanned {
    /// A valid record at `offset`; its payload is `SegmentScanner::payload()`.
    Record { header: BatchHeader, offset: u64 },
    /// Nothing more was written (a zero length word, a record older than the segment, or the
    /// file ends on a record boundary).
    End { offset: u64 },
    /// A short or damaged record at `offset`.
    Bad { offset: u64, reason: &'static str },
}

/// Reads a segment's records in order through a read-ahead buffer.
pub struct SegmentScanner {
    file: File,
    path: PathBuf,
    /// The base sequence the file name gives: a record below it is left from the segment's
    /// earlier life (a recycled spare) and reads as the end.
    base: u64,
    file_len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
    payload: (usize, usize),
    bytes_read: u64,
}

const READ_CHUNK: usize = 1 << 20;

impl SegmentScanner {
    /// Opens `path` positioned at its first record.
    pub fn open(path: &Path) -> io::Result<SegmentScanner> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_segment_name)
            .unwrap_or(0);
        Ok(SegmentScanner {
            file,
            path: path.to_path_buf(),
            base,
            file_len,
            pos: SEGMENT_HEADER_LEN,
            buf: Vec::new(),
            buf_start: SEGMENT_HEADER_LEN,
            payload: (0, 0),
            bytes_read: 0,
        })
    }

    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The offset of the next record.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The payload of the record the last `next` returned.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.payload.0..self.payload.1]
    }

    /// Forgets what was read ahead of the current position, and the file's length, so the
    /// next call reads the file again. For a segment that is being written: the read-ahead may
    /// hold zeros (preallocated space) or a record half copied that are whole on disk by now.
    pub fn refresh(&mut self) -> io::Result<()> {
        let keep = (self.pos - self.buf_start) as usize;
        self.buf.truncate(keep.min(self.buf.len()));
        self.file_len = self.file.metadata()?.len();
        Ok(())
    }

    /// Makes the buffer hold at least `need` bytes from `self.pos` (fewer at end of file).
    fn fill(&mut self, need: usize) -> io::Result<()> {
        let have_from = (self.pos - self.buf_start) as usize;
        if self.buf.len() >= have_from + need {
            return Ok(());
        }
        self.buf.drain(..have_from.min(self.buf.len()));
        self.buf_start = self.pos;
        let want = need.max(READ_CHUNK);
        let end = (self.pos + want as u64).min(self.file_len);
        while self.buf_start + (self.buf.len() as u64) < end {
            let at = self.buf_start + self.buf.len() as u64;
            let n = (end - at) as usize;
            let old = self.buf.len();
            self.buf.resize(old + n, 0);
            let got = self.file.read_at(&mut self.buf[old..], at)?;
            self.buf.truncate(old + got);
            self.bytes_read += got as u64;
            if got == 0 {
                break;
            }
        }
        Ok(())
    }

    /// The next record, the end, or the damage that stops the scan. After `End` or `Bad` the
    /// scanner stays where it is.
    pub fn next_record(&mut self) -> io::Result<Scanned> {
        let offset = self.pos;
        if offset >= self.file_len {
            return Ok(Scanned::End { offset });
        }
        let mut need = RECORD_PREFIX;
        loop {
            self.fill(need)?;
            let from = (self.pos - self.buf_start) as usize;
            let avail = &self.buf[from..];
            match decode_record(avail) {
                Decoded::Record {
                    header,
                    payload_start,
                    size,
                } => {
                    if header.seq < self.base {
                        // What a recycled segment held before: the end of what was written.
                        return Ok(Scanned::End { offset });
                    }
                    // Whole records, padding included, even when the file was cut inside the
                    // padding: the next record starts aligned.
                    self.payload = (
                        from + payload_start,
                        from + payload_start + header.payload_len as usize,
                    );
                    self.pos += size as u64;
                    return Ok(Scanned::Record { header, offset });
                }
                Decoded::End => return Ok(Scanned::End { offset }),
                Decoded::Corrupt(reason) => return Ok(Scanned::Bad { offset, reason }),
                Decoded::Incomplete { need: n } => {
                    if avail.len() >= n || offset + avail.len() as u64 >= self.file_len {
                        // The file ends inside the record.
                        return Ok(Scanned::Bad {
                            offset,
                            reason: "short record",
                        });
                    }
                    need = n;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.wal");
        assert_eq!(parse_segment_name("00000000000000000042.wal"), Some(42));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_segment_name("cursor"), None);
    }

    #[test]
    fn header_round_trip_and_every_byte_corruption() {
        let h = encode_segment_header(123_456);
        assert_eq!(decode_segment_header(&h), Ok(123_456));
        for i in 0..28 {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(decode_segment_header(&bad).is_err(), "byte {i}");
        }
        assert!(decode_segment_header(&h[..20]).is_err());
    }
}
