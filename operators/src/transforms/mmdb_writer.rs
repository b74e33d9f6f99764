//! A minimal writer of MaxMind DB (`.mmdb`) files, for test fixtures: the `enrich`
//! transform's GeoIP tests (and end-to-end tests) build small databases with it instead of
//! shipping binary files.
//!
//! It writes format 2.0 as the MaxMind DB specification lays it out: a binary search tree
//! of 24-bit records over IPv4 addresses (`ip_version = 4`), the 16-byte separator, a data
//! section of typed values (maps, strings, doubles, unsigned integers, arrays, booleans;
//! no pointers, so equal values are stored twice), then the `\xAB\xCD\xEFMaxMind.com` marker
//! and the metadata map.

use std::net::Ipv4Addr;

/// A value of the data section.
#[derive(Debug, Clone, PartialEq)]
pub enum MmdbValue {
    Str(String),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Bool(bool),
    Array(Vec<MmdbValue>),
    /// Keys in the order given.
    Map(Vec<(String, MmdbValue)>),
}

impl MmdbValue {
    /// A map from `(key, value)` pairs.
    pub fn map<const N: usize>(pairs: [(&str, MmdbValue); N]) -> MmdbValue {
        MmdbValue::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    pub fn str(s: &str) -> MmdbValue {
        MmdbValue::Str(s.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Record {
    Empty,
    Node(u32),
    /// Offset in the data section.
    Data(u32),
}

/// Builds an IPv4 database in memory.
pub struct MmdbWriter {
    database_type: String,
    nodes: Vec<[Record; 2]>,
    data: Vec<u8>,
}

/// Largest value a 24-bit record holds.
const MAX_RECORD: u32 = (1 << 24) - 1;

impl MmdbWriter {
    pub fn new(database_type: &str) -> MmdbWriter {
        MmdbWriter {
            database_type: database_type.to_string(),
            nodes: vec![[Record::Empty; 2]],
            data: Vec::new(),
        }
    }

    /// Maps `network/prefix_len` to `value`. A later, longer prefix inside an earlier
    /// network is not supported (the earlier network's record is replaced).
    pub fn insert(
        &mut self,
        network: Ipv4Addr,
        prefix_len: u8,
        value: &MmdbValue,
    ) -> Result<(), String> {
        if !(1..=32).contains(&prefix_len) {
            return Err(format!("prefix length {prefix_len} is not in 1..=32"));
        }
        let offset = u32::try_from(self.data.len()).map_err(|_| "data section too large")?;
        encode(value, &mut self.data)?;
        let addr = u32::from(network);
        let mut node = 0usize;
        for depth in 0..prefix_len {
            let bit = ((addr >> (31 - depth)) & 1) as usize;
            if depth + 1 == prefix_len {
                self.nodes[node][bit] = Record::Data(offset);
                break;
            }
            node = match self.nodes[node][bit] {
                Record::Node(n) => n as usize,
                Record::Empty | Record::Data(_) => {
                    let n = self.nodes.len();
                    self.nodes.push([Record::Empty; 2]);
                    self.nodes[node][bit] = Record::Node(n as u32);
                    n
                }
            };
        }
        Ok(())
    }

    /// The complete file.
    pub fn finish(&self) -> Result<Vec<u8>, String> {
        let node_count = u32::try_from(self.nodes.len()).map_err(|_| "too many nodes")?;
        let mut out = Vec::with_capacity(self.nodes.len() * 6 + 16 + self.data.len() + 256);
        for node in &self.nodes {
            for record in node {
                let v = match *record {
                    Record::Empty => node_count,
                    Record::Node(n) => n,
                    Record::Data(off) => node_count + 16 + off,
                };
                if v > MAX_RECORD {
                    return Err("database too large for 24-bit records".into());
                }
                out.extend_from_slice(&v.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let metadata = MmdbValue::map([
            ("binary_format_major_version", MmdbValue::U16(2)),
            ("binary_format_minor_version", MmdbValue::U16(0)),
            ("build_epoch", MmdbValue::U64(1_700_000_000)),
            ("database_type", MmdbValue::str(&self.database_type)),
            (
                "description",
                MmdbValue::map([("en", MmdbValue::str("Sluice test database"))]),
            ),
            ("ip_version", MmdbValue::U16(4)),
            ("languages", MmdbValue::Array(vec![MmdbValue::str("en")])),
            ("node_count", MmdbValue::U32(node_count)),
            ("record_size", MmdbValue::U16(24)),
        ]);
        encode(&metadata, &mut out)?;
        Ok(out)
    }
}

/// Data section type numbers.
mod kind {
    pub const STRING: u8 = 2;
    pub const DOUBLE: u8 = 3;
    pub const UINT16: u8 = 5;
    pub const UINT32: u8 = 6;
    pub const MAP: u8 = 7;
    pub const UINT64: u8 = 9;
    pub const ARRAY: u8 = 11;
    pub const BOOLEAN: u8 = 14;
}

/// Writes a control byte (and extended type byte and size bytes).
fn control(out: &mut Vec<u8>, type_num: u8, size: usize) -> Result<(), String> {
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65_536 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else if size < 65_821 + (1 << 24) {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    } else {
        return Err(format!("value of size {size} is too large"));
    };
    if type_num <= 7 {
        out.push((type_num << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(type_num - 7);
    }
    out.extend_from_slice(&extra);
    Ok(())
}

fn unsigned(out: &mut Vec<u8>, type_num: u8, v: u64) -> Result<(), String> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, type_num, 8 - skip)?;
    out.extend_from_slice(&bytes[skip..]);
    Ok(())
}

fn encode(v: &MmdbValue, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        MmdbValue::Str(s) => {
            control(out, kind::STRING, s.len())?;
            out.extend_from_slice(s.as_bytes());
        }
        MmdbValue::Double(d) => {
            control(out, kind::DOUBLE, 8)?;
            out.extend_from_slice(&d.to_be_bytes());
        }
        MmdbValue::U16(n) => unsigned(out, kind::UINT16, u64::from(*n))?,
        MmdbValue::U32(n) => unsigned(out, kind::UINT32, u64::from(*n))?,
        MmdbValue::U64(n) => unsigned(out, kind::UINT64, *n)?,
        MmdbValue::Bool(b) => control(out, kind::BOOLEAN, usize::from(*b))?,
        MmdbValue::Array(items) => {
            control(out, kind::ARRAY, items.len())?;
            for item in items {
                encode(item, out)?;
            }
        }
        MmdbValue::Map(pairs) => {
            control(out, kind::MAP, pairs.len())?;
            for (k, v) in pairs {
                encode(&MmdbValue::Str(k.clone()), out)?;
                encode(v, out)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_maxminddb_crate_reads_and_verifies_what_it_writes() {
        let mut w = MmdbWriter::new("Test-City");
        let long = "x".repeat(300);
        w.insert(
            Ipv4Addr::new(10, 1, 0, 0),
            16,
            &MmdbValue::map([
                ("name", MmdbValue::str("ten-one")),
                ("n", MmdbValue::U32(70_000)),
                ("pi", MmdbValue::Double(3.25)),
                ("ok", MmdbValue::Bool(true)),
                ("long", MmdbValue::Str(long.clone())),
                ("list", MmdbValue::Array(vec![MmdbValue::U16(1)])),
            ]),
        )
        .unwrap();
        w.insert(
            Ipv4Addr::new(192, 0, 2, 128),
            25,
            &MmdbValue::map([("name", MmdbValue::str("doc"))]),
        )
        .unwrap();
        let bytes = w.finish().unwrap();
        let reader = maxminddb::Reader::from_source(bytes).unwrap();
        reader.verify().unwrap();
        assert_eq!(reader.metadata().database_type, "Test-City");
        assert_eq!(reader.metadata().languages, vec!["en".to_string()]);

        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Rec {
            name: String,
            n: Option<u32>,
            pi: Option<f64>,
            ok: Option<bool>,
            long: Option<String>,
            list: Option<Vec<u16>>,
        }
        let r = reader.lookup("10.1.200.3".parse().unwrap()).unwrap();
        assert_eq!(r.network().unwrap().to_string(), "10.1.0.0/16");
        let rec: Rec = r.decode().unwrap().unwrap();
        assert_eq!(
            rec,
            Rec {
                name: "ten-one".into(),
                n: Some(70_000),
                pi: Some(3.25),
                ok: Some(true),
                long: Some(long),
                list: Some(vec![1]),
            }
        );
        let r = reader.lookup("192.0.2.200".parse().unwrap()).unwrap();
        let rec: BTreeMap<String, String> = r.decode().unwrap().unwrap();
        assert_eq!(rec["name"], "doc");
        for miss in ["192.0.2.1", "10.2.0.1", "8.8.8.8"] {
            let r = reader.lookup(miss.parse().unwrap()).unwrap();
            assert!(!r.has_data(), "{miss}");
        }
        assert!(w
            .insert(Ipv4Addr::new(1, 2, 3, 4), 33, &MmdbValue::U16(1))
            .is_err());
    }
}
