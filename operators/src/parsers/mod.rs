//! Parsers: raw lines in, fields out, spans into the batch buffer rather than copies.

pub mod json;
