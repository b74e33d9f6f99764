//! Parsers: raw lines in, fields out, spans into the batch buffer rather than copies.
//!
//! `json` fills the batch's tape directly (it is the hot path). Every other format
//! implements [`sink::LineParser`] and reports fields through a [`sink::FieldSink`].

pub mod apache;
pub mod cri;
pub mod detect;
pub mod json;
pub mod level;
pub mod kv;
pub mod logfmt;
pub mod sink;
pub mod tape;
pub mod syslog;
pub mod timestamp;
