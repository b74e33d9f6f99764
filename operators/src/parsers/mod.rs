//! Parsers: raw lines in, fields out, spans into the batch buffer rather than copies.
//!
//! `json` fills the batch's tape directly (it is the hot path). Every other format
//! implements [`sink::LineParser`] and reports fields through a [`sink::FieldSink`].

pub mod apache;
pub mod cri;
pub mod detect;
pub mod grok;
pub mod json;
pub mod kv;
pub mod level;
pub mod logfmt;
pub mod regex;
pub mod sink;
pub mod syslog;
pub mod tape;
pub mod timestamp;
