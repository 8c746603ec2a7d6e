//! The docs/interface.md §3 field map, per-org overrides, and extraction of a
//! parsed message into a typed [`MappedMessage`].
//!
//! `field_map` says where each field is read from and holds what is read
//! (`MappedMessage`); `extraction` reads a parsed message through the one
//! into the other.
mod extraction;
mod field_map;
#[cfg(test)]
mod tests;

pub use extraction::{DEFAULT_TIME_ZONE, MapContext, extract};
pub use field_map::{FieldMap, InvalidValue, MappedMessage, Therapist, default_paths, rfc3339};
