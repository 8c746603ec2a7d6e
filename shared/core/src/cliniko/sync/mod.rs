//! The one-way sync of Cliniko profiles into patient records (docs/cliniko.md).
//!
//! Cliniko is the source of truth: a profile's fields overwrite the record's.
//! A profile without the required fields (first and last name, date of
//! birth, sex, email) is not imported; it is saved as a failure until a later
//! sync finds it fixed. Archived, deleted and merged profiles make their
//! record inactive, and its pending workflow steps are skipped in the same
//! commit. A new record gets its Default episode of care and a
//! `patient_created` event, which enrols it in matching workflows.
//!
//! Every write is idempotent without a message guard: the record is written
//! only if it changed (and only over the version it was read at), and the
//! event's ID derives from the profile, so a repeated or overlapping sync
//! writes nothing twice.
//!
//! The modules: `profile` decides what a profile does (pure), `apply`
//! writes it, `lists` reads Cliniko's paged lists, `connection` connects an
//! org and places its watermark, `run` runs a sync, and `report` holds what
//! a sync answers.
mod apply;
mod connection;
mod lists;
mod profile;
mod report;
mod run;

pub use apply::apply_profile;
pub use connection::{WATERMARK_OVERLAP, connect, since};
pub use profile::{Outcome, REQUIRED, decide, missing_fields, phone_region, sex, shard_region};
pub use report::{FailureReport, SyncError, SyncReport, UnreadableReport};
pub use run::{OrgSync, sync_all, sync_org, sync_patient};
