//! Tendon's domain core.
//!
//! Today it holds the HL7 side of the first seed: the docs/interface.md §3 field map
//! ([`mapping`]), the required-data checks ([`validation`]) with the §7 error
//! codes ([`ErrorCode`]), and [`inspect`], which ties them together the way
//! ingest will. Everything here is pure: no I/O, no AWS, no SQLite.

pub mod cliniko;
#[cfg(feature = "contract-tests")]
pub mod contract;
pub mod fields;
pub mod health;
pub mod inspect;
pub mod join;
pub mod keys;
pub mod mapping;
pub mod model;
pub mod normalize;
pub mod pipeline;
pub mod ports;
pub mod rules;
pub mod validation;
pub mod workflow;

pub use fields::{AppointmentStatus, CaseStatus, ErrorCode, FieldName, Gender, Issue, MessageType};
pub use inspect::{Report, inspect};
pub use mapping::{FieldMap, MapContext, MappedMessage, extract};
