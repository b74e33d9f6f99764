//! Parsers: raw lines in, fields out, spans into the batch buffer rather than copies.
//!
//! `json` fills the batch's tape directly (it is the hot path). Every other format
//! implements [`sink::LineParser`] and reports fields through a [`sink::FieldSink`].

pub mod grok;
pub mod json;
pub mod regex;
pub mod sink;
pub mod timestamp;
