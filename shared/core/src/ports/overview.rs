//! What the doctor reads of a whole org in bulk ([`super::OrgOverview`]).
use crate::model::{Patient, StoredMessage};
use crate::workflow::steps::ScheduledStep;

/// An org's records as the doctor reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overview {
    /// Received at or after `since`, in any order, without raw bodies.
    pub messages: Vec<StoredMessage>,
    /// As [`super::PatientStore::list_patients`] lists them (no merged-away IDs).
    pub patients: Vec<Patient>,
    /// The workflow steps whose status is `failed`.
    pub failed_steps: Vec<ScheduledStep>,
}
