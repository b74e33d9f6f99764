//! The parsed-field table of a batch: a flat, preorder "tape" of JSON nodes.
//!
//! A parser appends one [`FieldEntry`] per key/value (objects) or element (arrays), pointing
//! into the batch's byte buffer; nothing is copied or unescaped. Each entry knows where its
//! subtree ends, so a lookup skips whole siblings. One table serves every event of a batch;
//! an event owns a contiguous range of it.

/// What kind of JSON value an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Null,
    False,
    True,
    Number,
    String,
    Object,
    Array,
}

/// The key or value bytes still hold JSON escapes (`\"`, `\n`, `\u00e9`).
pub const KEY_ESCAPED: u8 = 1;
/// See [`KEY_ESCAPED`].
pub const VALUE_ESCAPED: u8 = 2;

/// One node of the tape. Offsets are into the batch buffer. For strings the value span
/// excludes the quotes; for objects and arrays it covers the brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldEntry {
    pub key_start: u32,
    pub key_len: u32,
    pub value_start: u32,
    pub value_len: u32,
    /// Index one past the last entry of this node's subtree (siblings start there).
    pub end: u32,
    pub kind: Kind,
    pub flags: u8,
}

impl FieldEntry {
    pub fn key<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.key_start as usize..(self.key_start + self.key_len) as usize]
    }
    pub fn value<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.value_start as usize..(self.value_start + self.value_len) as usize]
    }
    /// The value as it stands in the JSON text (strings with their quotes).
    pub fn raw_value<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        if self.kind == Kind::String {
            &buf[self.value_start as usize - 1..(self.value_start + self.value_len) as usize + 1]
        } else {
            self.value(buf)
        }
    }
    pub fn key_escaped(&self) -> bool {
        self.flags & KEY_ESCAPED != 0
    }
    pub fn value_escaped(&self) -> bool {
        self.flags & VALUE_ESCAPED != 0
    }
}

/// All parsed nodes of one batch.
#[derive(Debug, Clone, Default)]
pub struct FieldTable {
    pub entries: Vec<FieldEntry>,
}

impl FieldTable {
    pub fn with_capacity(n: usize) -> FieldTable {
        FieldTable {
            entries: Vec::with_capacity(n),
        }
    }

    /// Finds the entry for `path` among the children in `range` (an object's members).
    /// Segments that look like numbers index arrays.
    pub fn find<S: AsRef<str>>(
        &self,
        buf: &[u8],
        mut start: u32,
        mut end: u32,
        path: &[S],
    ) -> Option<u32> {
        let mut in_array = false;
        for (depth, seg) in path.iter().enumerate() {
            let seg = seg.as_ref().as_bytes();
            let mut i = start;
            let mut found = None;
            if in_array {
                let want: usize = std::str::from_utf8(seg).ok()?.parse().ok()?;
                let mut n = 0usize;
                while i < end {
                    if n == want {
                        found = Some(i);
                        break;
                    }
                    n += 1;
                    i = self.entries[i as usize].end;
                }
            } else {
                while i < end {
                    let e = &self.entries[i as usize];
                    if key_matches(e, buf, seg) {
                        found = Some(i);
                        // Last duplicate key wins, as in most JSON readers.
                    }
                    i = e.end;
                }
            }
            let idx = found?;
            if depth + 1 == path.len() {
                return Some(idx);
            }
            let e = &self.entries[idx as usize];
            match e.kind {
                Kind::Object => in_array = false,
                Kind::Array => in_array = true,
                _ => return None,
            }
            start = idx + 1;
            end = e.end;
        }
        None
    }
}

fn key_matches(e: &FieldEntry, buf: &[u8], seg: &[u8]) -> bool {
    if !e.key_escaped() {
        return e.key_len as usize == seg.len() && e.key(buf) == seg;
    }
    let mut scratch = Vec::new();
    crate::value::unescape_json_str(e.key(buf), &mut scratch) && scratch == seg
}
