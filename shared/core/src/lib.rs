//! Tendon's domain core: pure, behind ports (no I/O, no AWS, no SQLite).
//!
//! The modules, from the leaves up:
//! - the contract's vocabulary: [`field_types`] (§3.1 field names and coded
//!   values), [`error_code`] (§7 codes and [`Issue`]), [`hash`] (SHA-256 hex), [`reply`] (the HTTP answer);
//! - reading HL7: [`normalize`], [`mapping`] (the §3 field map and
//!   extraction), [`report`] (the check of one message: the required
//!   data, the ACK, [`inspect`]);
//! - the records and the ports: [`model`] (patients, stored messages, domain
//!   events), [`org`] (an org and its configuration), [`ports`];
//! - deciding: [`rules`] (the patient and episode rules), [`event_effects`]
//!   (the workflow steps a commit's events schedule or move);
//! - the handlers: [`intake`] (ingest, replay, the sweeper), [`processing`]
//!   (the patient and episode steps), [`batch`] (queue batches from
//!   receive to delete, dead letters), [`keys`] (ingest keys), [`health`];
//! - the workflow engine ([`workflow`]) and the Cliniko sync ([`cliniko`]);
//! - [`doctor`]: what is wrong with an org's integration, and the fixes;
//! - [`mode`]: test-mode keys and the separate data they write;
//! - helpers: [`join`] (a few futures polled together).

pub mod batch;
pub mod cliniko;
pub mod doctor;
pub mod error_code;
pub mod event_effects;
pub mod field_types;
#[cfg(test)]
mod fixtures;
pub mod hash;
pub mod health;
pub mod intake;
pub mod join;
pub mod keys;
pub mod mapping;
pub mod mode;
pub mod model;
pub mod normalize;
pub mod org;
pub mod ports;
pub mod processing;
pub mod reply;
pub mod report;
pub mod rules;
pub mod workflow;

pub use error_code::{ErrorCode, Issue};
pub use field_types::{AppointmentStatus, CaseStatus, FieldName, Gender, MessageType};
pub use mapping::{FieldMap, MapContext, MappedMessage, extract};
pub use report::{Report, inspect};
