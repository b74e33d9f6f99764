//! File identity: device and inode, plus a fingerprint of the file's first bytes.
//!
//! The inode alone is not enough (inodes are reused) and the content alone is not enough
//! (copies), so a file is known by both: a renamed file keeps its inode and fingerprint and is
//! never read twice; a new file that got an old inode has another fingerprint and is never
//! skipped; a copy (copytruncate) has the fingerprint of the original and resumes at its
//! checkpoint. A file shorter than `fingerprint_bytes` is fingerprinted over what it has, and
//! again as it grows, so it is read at once rather than waiting to be long enough.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    /// FNV-1a of the first `fp_len` bytes.
    pub fp_hash: u64,
    /// Bytes the fingerprint covers (less than `fingerprint_bytes` while the file is short).
    pub fp_len: u32,
}

/// FNV-1a 64.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Stable shard of a file: by device and inode, so a rename keeps it where it is.
pub fn shard_of(dev: u64, ino: u64, shards: usize) -> usize {
    let mut x = dev.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ino;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % shards.max(1) as u64) as usize
}

/// gzip's magic bytes.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of(1, 42, 4), shard_of(1, 42, 4));
        let mut counts = [0usize; 4];
        for ino in 0..400 {
            counts[shard_of(2049, 100_000 + ino, 4)] += 1;
        }
        assert!(counts.iter().all(|&n| n > 60), "{counts:?}");
    }

    #[test]
    fn fingerprints_differ_by_content() {
        assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
        assert!(is_gzip(&[0x1f, 0x8b, 8]));
        assert!(!is_gzip(b"{\"a\":1}"));
    }
}
