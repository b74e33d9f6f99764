//! The Sluice engine: the data model and the runtime every other crate builds on.
//!
//! Data moves in [`batch::Batch`]es: one contiguous byte buffer holding raw lines, events as
//! spans into it, a flat table of parsed fields (the "tape" a parser fills), and an overlay of
//! changes that is only written out at the sink. An event nobody changed leaves as the bytes it
//! came in with.
//!
//! Batches travel between threads through bounded single-producer/single-consumer rings
//! ([`ring`]); each batch carries an [`ack::AckToken`] whose last drop acknowledges it to the
//! source that produced it. Shards are executor threads pinned to cores; everything that
//! touches the executor library lives in [`runtime`], so it could be swapped.
//!
//! Costs: nothing here allocates, locks or makes a system call per event. Allocation is per
//! batch (the event and field vectors), locks are per batch at most (latency histograms).

pub mod ack;
pub mod batch;
pub mod context;
pub mod encode;
pub mod fields;
pub mod memory;
pub mod metrics;
pub mod path;
pub mod pipeline;
pub mod ring;
pub mod runtime;
pub mod shard;
pub mod shutdown;
pub mod source;
pub mod units;
pub mod value;
pub mod wal;

pub use ack::AckToken;
pub use batch::{Batch, Event};
pub use path::FieldPath;
pub use value::{Value, ValueRef};
