//! What a sync answers: its report (profiles synced, failed, unchanged,
//! deactivated; the appointments; the records it could not read) and its
//! error.
use serde::Serialize;
use thiserror::Error;

use super::profile::Outcome;
use crate::cliniko::api::{ClinikoError, Unreadable};
use crate::cliniko::appointments::AppointmentReport;
use crate::ports::StoreError;

#[derive(Debug, Error)]
pub enum SyncError {
    #[error(
        "org {0} has no Cliniko connection: run `tendon cliniko connect --org {0} --api-key KEY`"
    )]
    NotConnected(String),
    #[error("org {0} does not exist")]
    NoOrg(String),
    #[error(transparent)]
    Cliniko(#[from] ClinikoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failed profile in a sync's result (docs/interface.md §5 `cliniko sync`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureReport {
    pub cliniko_id: String,
    pub missing: Vec<String>,
}

/// A sync's result: `synced` counts profiles imported or updated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub synced: usize,
    pub failed: usize,
    pub failures: Vec<FailureReport>,
    /// Profiles read that needed no change (the overlap, a repeated sync).
    pub unchanged: usize,
    /// Records made inactive (archived, deleted or merged in Cliniko).
    pub deactivated: usize,
    /// Profiles read, in all lists.
    pub read: usize,
    /// What the appointments changed since the last sync did.
    pub appointments: AppointmentReport,
    /// Records Cliniko sent that are not in its documented shape: each is
    /// skipped with its ID and the reason, and the sync goes on.
    pub unreadable: Vec<UnreadableReport>,
}

/// A record a sync could not read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnreadableReport {
    /// The Cliniko list it came from (`patients`, `individual_appointments`...).
    pub list: &'static str,
    pub cliniko_id: Option<String>,
    pub reason: String,
}

impl SyncReport {
    pub(super) fn skipped(&mut self, list: &'static str, unreadable: Vec<Unreadable>) {
        self.unreadable
            .extend(unreadable.into_iter().map(|u| UnreadableReport {
                list,
                cliniko_id: u.cliniko_id,
                reason: u.reason,
            }));
    }

    pub(super) fn count(&mut self, id: &str, outcome: &Outcome) {
        self.read += 1;
        match outcome {
            Outcome::Created | Outcome::Updated => self.synced += 1,
            Outcome::Unchanged | Outcome::Ignored => self.unchanged += 1,
            Outcome::Deactivated => self.deactivated += 1,
            Outcome::Failed(missing) => {
                self.failed += 1;
                self.failures.push(FailureReport {
                    cliniko_id: id.to_owned(),
                    missing: missing.iter().map(|m| (*m).to_owned()).collect(),
                });
            }
        }
    }
}
