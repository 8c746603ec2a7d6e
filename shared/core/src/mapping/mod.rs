//! The docs/interface.md §3 default field map, per-org overrides, and extraction of a
//! parsed message into a typed [`MappedMessage`].
//!
//! `field_map` says where each field is read from, `extraction` reads them,
//! and `mapped` holds what it read.
mod extraction;
mod field_map;
mod mapped;
#[cfg(test)]
mod tests;

pub use extraction::{DEFAULT_TIME_ZONE, MapContext, extract};
pub use field_map::{FieldMap, default_paths};
pub use mapped::{InvalidValue, MappedMessage, Therapist, rfc3339};
