//! The record format: `u32 length | u32 CRC32C | rkyv-archived BatchHeader | payload | pad`.
//!
//! `length` counts the archived header and the payload (not the 8-byte prefix, not the
//! padding); the CRC32C covers the length word, the header and the payload. Records start on
//! 8-byte boundaries (the padding is zeros), so an archived header read straight from a page
//! is aligned. A length word of zero marks the end of the written part of a segment (the
//! preallocated space reads as zeros). The payload is one sink batch exactly as the shard
//! encoded it for the sink; replay hands it back without parsing.

use rkyv::{Archive, Deserialize, Serialize};

/// Bytes before the header: the length word and the CRC.
pub const RECORD_PREFIX: usize = 8;
/// Size of the archived [`BatchHeader`].
pub const BATCH_HEADER_LEN: usize = 16;
/// Records start on multiples of this.
pub const RECORD_ALIGN: usize = 8;
/// The largest payload one record may carry (a sink batch is far smaller).
pub const MAX_PAYLOAD: usize = 256 << 20;

/// What a record says about its batch, archived with rkyv in front of the payload.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// The record's sequence number in its WAL (one per record, increasing by one).
    pub seq: u64,
    /// Events in the batch.
    pub events: u32,
    /// Bytes of payload after the header.
    pub payload_len: u32,
}

const _: () = assert!(std::mem::size_of::<ArchivedBatchHeader>() == BATCH_HEADER_LEN);

#[repr(C, align(8))]
struct Aligned([u8; BATCH_HEADER_LEN]);

/// Bytes a record with `payload_len` bytes of payload takes on disk, padding included.
pub fn record_size(payload_len: usize) -> usize {
    let raw = RECORD_PREFIX + BATCH_HEADER_LEN + payload_len;
    raw.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// Appends one encoded record to `out`. `payload.len()` must be at most [`MAX_PAYLOAD`].
pub fn encode_record(seq: u64, events: u32, payload: &[u8], out: &mut Vec<u8>) {
    encode_record_with(seq, events, payload.len(), out, |o| {
        o.extend_from_slice(payload)
    });
}

/// Appends one encoded record to `out` whose payload `fill` appends in place (exactly
/// `payload_len` bytes, at most [`MAX_PAYLOAD`]): no intermediate payload buffer.
pub fn encode_record_with(
    seq: u64,
    events: u32,
    payload_len: usize,
    out: &mut Vec<u8>,
    fill: impl FnOnce(&mut Vec<u8>),
) {
    debug_assert!(payload_len <= MAX_PAYLOAD);
    let header = BatchHeader {
        seq,
        events,
        payload_len: payload_len as u32,
    };
    let mut hb = Aligned([0u8; BATCH_HEADER_LEN]);
    // A fixed-size struct of plain integers: serializing into 16 bytes cannot fail.
    let written = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(
        &header,
        rkyv::ser::writer::Buffer::from(&mut hb.0),
    )
    .map(|b| b.len())
    .unwrap_or(0);
    debug_assert_eq!(written, BATCH_HEADER_LEN);
    let len = (BATCH_HEADER_LEN + payload_len) as u32;
    let start = out.len();
    out.reserve(record_size(payload_len));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&hb.0);
    fill(out);
    assert_eq!(
        out.len() - start,
        RECORD_PREFIX + BATCH_HEADER_LEN + payload_len,
        "a WAL record's payload must be exactly the announced length"
    );
    let rec = &out[start..];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&rec[..4]), &rec[RECORD_PREFIX..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + record_size(payload_len), 0);
}

/// The result of looking at the bytes where a record should start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid record: its header, where its payload lies in the buffer, and its size
    /// on disk (padding included).
    Record {
        header: BatchHeader,
        payload_start: usize,
        size: usize,
    },
    /// A zero length word: nothing was written here.
    End,
    /// The buffer holds only part of the record; `need` bytes would hold all of it.
    Incomplete { need: usize },
    /// Not a valid record.
    Corrupt(&'static str),
}

/// Decodes the record at the start of `buf` (which may hold more after it).
pub fn decode_record(buf: &[u8]) -> Decoded {
    if buf.len() < RECORD_PREFIX {
        if buf.iter().all(|&b| b == 0) && buf.len() >= 4 {
            return Decoded::End;
        }
        return Decoded::Incomplete {
            need: RECORD_PREFIX,
        };
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Decoded::End;
    }
    if !(BATCH_HEADER_LEN..=BATCH_HEADER_LEN + MAX_PAYLOAD).contains(&len) {
        return Decoded::Corrupt("length out of range");
    }
    let size = record_size(len - BATCH_HEADER_LEN);
    let body_end = RECORD_PREFIX + len;
    if buf.len() < body_end {
        return Decoded::Incomplete { need: size };
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let actual = crc32c::crc32c_append(crc32c::crc32c(&buf[0..4]), &buf[RECORD_PREFIX..body_end]);
    if crc != actual {
        return Decoded::Corrupt("CRC mismatch");
    }
    let mut hb = Aligned([0u8; BATCH_HEADER_LEN]);
    hb.0.copy_from_slice(&buf[RECORD_PREFIX..RECORD_PREFIX + BATCH_HEADER_LEN]);
    let header = match rkyv::access::<ArchivedBatchHeader, rkyv::rancor::Error>(&hb.0) {
        Ok(a) => BatchHeader {
            seq: a.seq.to_native(),
            events: a.events.to_native(),
            payload_len: a.payload_len.to_native(),
        },
        Err(_) => return Decoded::Corrupt("invalid batch header"),
    };
    if header.payload_len as usize != len - BATCH_HEADER_LEN {
        return Decoded::Corrupt("header length disagrees with record length");
    }
    Decoded::Record {
        header,
        payload_start: RECORD_PREFIX + BATCH_HEADER_LEN,
        size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(seq: u64, events: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_record(seq, events, payload, &mut v);
        v
    }

    #[test]
    fn round_trip_sizes() {
        for n in [0usize, 1, 7, 8, 9, 100, 4096] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let rec = one(42 + n as u64, 3, &payload);
            assert_eq!(rec.len(), record_size(n));
            assert_eq!(rec.len() % RECORD_ALIGN, 0);
            match decode_record(&rec) {
                Decoded::Record {
                    header,
                    payload_start,
                    size,
                } => {
                    assert_eq!(header.seq, 42 + n as u64);
                    assert_eq!(header.events, 3);
                    assert_eq!(size, rec.len());
                    assert_eq!(&rec[payload_start..payload_start + n], &payload[..]);
                }
                other => panic!("{other:?}"),
            }
            // Every strict prefix is incomplete (or, for a prefix of zeros, never a record).
            for cut in 0..rec.len().min(RECORD_PREFIX + BATCH_HEADER_LEN + n) {
                assert!(
                    !matches!(decode_record(&rec[..cut]), Decoded::Record { .. }),
                    "prefix {cut} decoded"
                );
            }
        }
    }

    #[test]
    fn every_byte_corruption_is_caught() {
        let payload = b"{\"message\":\"hello\",\"n\":1}\n{\"message\":\"x\"}\n";
        let rec = one(7, 2, payload);
        let body_end = RECORD_PREFIX + BATCH_HEADER_LEN + payload.len();
        for i in 0..body_end {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = rec.clone();
                bad[i] ^= flip;
                match decode_record(&bad) {
                    Decoded::Record { .. } => panic!("byte {i} flip {flip:#x} accepted"),
                    Decoded::End | Decoded::Incomplete { .. } | Decoded::Corrupt(_) => {}
                }
            }
        }
    }

    #[test]
    fn zeros_are_the_end() {
        assert_eq!(decode_record(&[0u8; 64]), Decoded::End);
    }
}
