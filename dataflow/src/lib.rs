//! The dataflow layer: the TOML schema ([`config`]), graph checks ([`graph`]), the planner
//! ([`plan`]), the running topology ([`topology`]), the HTTP API ([`api`]); the `sluice`
//! command line lives in `main.rs`.

pub mod api;
pub mod config;
pub mod graph;
pub mod plan;
pub mod topology;
