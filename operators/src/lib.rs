//! Sluice operators: what runs on the batches inside a shard.
//!
//! - [`parsers`]: turn raw lines into fields without copying them (JSON into the batch's tape).
//! - [`condition`]: the CEL condition language, compiled once into an evaluator.
//! - [`transforms`]: the configurable operators (`parse`, `filter`, `fields`), each a config
//!   struct and a `build()` into a [`sluice_engine::pipeline::Transform`].

pub mod condition;
pub mod parsers;
pub mod transforms;
