//! Two records the configuration ports hand out: an ingest key as stored,
//! and a suppressed email address.
use serde::Serialize;

use crate::mode::Mode;

/// An email address no workflow email goes to (see
/// [`super::Suppressions::suppress_address`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// Lower-cased.
    pub address: String,
    /// Why: `bounce`, `complaint`, ... (the first reason recorded).
    pub reason: String,
}

/// An ingest key as stored: its hash and when it was issued (unknown for
/// keys issued before that was recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestKey {
    pub hash: String,
    pub created_at: Option<jiff::Timestamp>,
    pub mode: Mode,
}
