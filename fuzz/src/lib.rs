//! Helpers shared by the fuzz targets and the corpus tools:
//! - [`format`]: writing a parsed request back as text (the round trip of the `parse` target);
//! - [`ops`]: the operations the `shard` target decodes from the fuzzer's bytes;
//! - [`drive`]: running those operations against a `Shard`, checking it after each one.

pub mod drive;
pub mod format;
pub mod ops;

pub use drive::drive;
pub use format::format_request;
pub use ops::{sources, FuzzConfig, FuzzRelay, Op, Scenario};
