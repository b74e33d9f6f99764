//! The parsed-field table of a batch: a flat, preorder "tape" of JSON nodes.
//!
//! A parser appends one [`FieldEntry`] per key/value (objects) or element (arrays), pointing
//! into the batch's byte buffer; nothing is copied or unescaped. Each entry knows where its
//! subtree ends, so a lookup skips whole siblings. One table serves every event of a batch;
//! an event owns a contiguous range of it.
//!
//! Parsers of other formats (syslog, logfmt, ...) write fields whose keys, and some values,
//! are not in the line: a constant key like `host`, a normalised `level`, a timestamp in
//! RFC 3339. Those bytes go to the table's side arena [`FieldTable::aux`], and the entry
//! says so with [`KEY_AUX`] / [`VALUE_AUX`]. Such parsers also produce values that are not
//! JSON text (a syslog message is plain text, an object has no braces in the line): their
//! entries carry [`PLAIN`] and are written out by walking the tape
//! ([`FieldTable::write_json`]) instead of copying text. Always read key and value bytes
//! through [`FieldTable::key`] / [`FieldTable::value`], which pick the right buffer.

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
/// The key bytes are in the table's side arena, not the batch buffer.
pub const KEY_AUX: u8 = 4;
/// The value bytes are in the table's side arena, not the batch buffer.
pub const VALUE_AUX: u8 = 8;
/// The node is not JSON text: a string's bytes are plain text without surrounding quotes,
/// an object or array has no bracketed text of its own. Written by walking the tape.
pub const PLAIN: u8 = 16;

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
    /// The key bytes, for entries whose key is in `buf` (not [`KEY_AUX`]); prefer
    /// [`FieldTable::key`].
    pub fn key<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.key_start as usize..(self.key_start + self.key_len) as usize]
    }
    /// The value bytes, for entries whose value is in `buf` (not [`VALUE_AUX`]); prefer
    /// [`FieldTable::value`].
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
    /// The node is JSON text that can be copied as is.
    pub fn is_json_text(&self) -> bool {
        self.flags & PLAIN == 0
    }
}

/// All parsed nodes of one batch.
#[derive(Debug, Clone, Default)]
pub struct FieldTable {
    pub entries: Vec<FieldEntry>,
    /// Bytes of keys and values that are not in the batch buffer.
    pub aux: Vec<u8>,
}

impl FieldTable {
    pub fn with_capacity(n: usize) -> FieldTable {
        FieldTable {
            entries: Vec::with_capacity(n),
            aux: Vec::new(),
        }
    }

    /// The key bytes of `e` (from `buf` or the side arena).
    pub fn key<'a>(&'a self, e: &FieldEntry, buf: &'a [u8]) -> &'a [u8] {
        let src = if e.flags & KEY_AUX != 0 {
            &self.aux[..]
        } else {
            buf
        };
        src.get(e.key_start as usize..(e.key_start as usize + e.key_len as usize))
            .unwrap_or_default()
    }

    /// The value bytes of `e` (from `buf` or the side arena). For JSON-text strings the
    /// span excludes the quotes; for JSON-text containers it covers the brackets.
    pub fn value<'a>(&'a self, e: &FieldEntry, buf: &'a [u8]) -> &'a [u8] {
        let src = if e.flags & VALUE_AUX != 0 {
            &self.aux[..]
        } else {
            buf
        };
        src.get(e.value_start as usize..(e.value_start as usize + e.value_len as usize))
            .unwrap_or_default()
    }

    /// Writes node `index` as JSON text: copied when it is JSON text, walked when [`PLAIN`].
    pub fn write_json(&self, buf: &[u8], index: u32, out: &mut Vec<u8>) {
        let e = &self.entries[index as usize];
        if e.is_json_text() {
            if e.kind == Kind::String {
                out.push(b'"');
                out.extend_from_slice(self.value(e, buf));
                out.push(b'"');
            } else {
                out.extend_from_slice(self.value(e, buf));
            }
            return;
        }
        match e.kind {
            Kind::Null => out.extend_from_slice(b"null"),
            Kind::True => out.extend_from_slice(b"true"),
            Kind::False => out.extend_from_slice(b"false"),
            Kind::Number => out.extend_from_slice(self.value(e, buf)),
            Kind::String => self.write_str(self.value(e, buf), e.value_escaped(), out),
            Kind::Object => {
                out.push(b'{');
                self.write_members(buf, index + 1, e.end, out);
                out.push(b'}');
            }
            Kind::Array => {
                out.push(b'[');
                let mut i = index + 1;
                let mut first = true;
                while i < e.end {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    self.write_json(buf, i, out);
                    i = self.entries[i as usize].end.max(i + 1);
                }
                out.push(b']');
            }
        }
    }

    /// Writes the members `start..end` of an object as `"k":v,...` (no braces).
    pub fn write_members(&self, buf: &[u8], start: u32, end: u32, out: &mut Vec<u8>) {
        let mut i = start;
        let mut first = true;
        while i < end {
            let e = &self.entries[i as usize];
            if !first {
                out.push(b',');
            }
            first = false;
            self.write_str(self.key(e, buf), e.key_escaped(), out);
            out.push(b':');
            if e.kind == Kind::String {
                // Most members are strings: written here rather than through a call.
                if e.is_json_text() {
                    out.push(b'"');
                    out.extend_from_slice(self.value(e, buf));
                    out.push(b'"');
                } else {
                    self.write_str(self.value(e, buf), e.value_escaped(), out);
                }
            } else {
                self.write_json(buf, i, out);
            }
            i = e.end.max(i + 1);
        }
    }

    #[inline(always)]
    fn write_str(&self, s: &[u8], escaped: bool, out: &mut Vec<u8>) {
        if escaped {
            out.push(b'"');
            out.extend_from_slice(s);
            out.push(b'"');
        } else {
            crate::value::write_json_str(s, out);
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
                    if key_matches(self.key(e, buf), e.key_escaped(), seg) {
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

fn key_matches(key: &[u8], escaped: bool, seg: &[u8]) -> bool {
    if !escaped {
        return key == seg;
    }
    let mut scratch = Vec::new();
    crate::value::unescape_json_str(key, &mut scratch) && scratch == seg
}
