//! The integration doctor (`tendon doctor`): reads an org's stored messages
//! and configuration and says what is wrong, most harmful first, each
//! finding with its count, when it was first and last seen, example control
//! IDs (never patient data) and the command that fixes it.
//!
//! `facts` is what ingest keeps of each message for it ([`MessageFacts`]), so
//! the message list alone explains a failure; `findings` (the causes of
//! failures), `delivery` (stuck messages, no active workflow, patients no
//! message reaches, failed steps), `cliniko` (the sync and the profiles it
//! could not import) and `sender` (refusals, parked ADTs, the clock,
//! ignored types) are the analysis, pure, which [`analyse`] puts in order;
//! [`diagnose`] reads the store and runs it; `queues` reads the queues'
//! depths ([`QueueDepths`], shared by every org) for the caller to add;
//! `plan` turns the fixes into a [`Plan`] a person reviews, and [`apply`]s
//! what they keep.
mod cliniko;
mod delivery;
mod facts;
mod findings;
mod plan;
mod queues;
mod sender;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use jiff::Timestamp;

use crate::cliniko::{ClinikoConnection, ClinikoFailure};
use crate::mode::Mode;
use crate::model::{DomainEvent, EventKind, Patient, StoredMessage};
use crate::org::OrgConfig;
use crate::ports::{
    ClinikoStore, ConfigStore, DispatchLog, OrgOverview, Overview, StoreResult, Suppression,
    Suppressions,
};
use crate::workflow::steps::ScheduledStep;

pub use crate::batch::{QueueDepth, QueueDepths};
pub use crate::model::MessageFacts;
pub use cliniko::unusable as cliniko_unusable;
pub use findings::{Diagnosis, FailedMessage, Finding, WouldCreate};
pub use plan::{
    Applied, Plan, PlanRefused, PlannedLocation, PlannedPractitioner, PlannedReplay, apply, plan_of,
};
pub use queues::queue_findings;

/// What the doctor reads of one org.
pub struct OrgState<'a> {
    pub config: &'a OrgConfig,
    /// Sorted oldest first.
    pub messages: &'a [StoredMessage],
    pub patients: &'a [Patient],
    /// Workflow steps (only the failed ones are read).
    pub steps: &'a [ScheduledStep],
    pub cliniko: Option<&'a ClinikoConnection>,
    pub cliniko_failures: &'a [ClinikoFailure],
    pub suppressed: &'a [Suppression],
    /// When the dispatcher (every org's) last ran.
    pub last_dispatch: Option<Timestamp>,
}

/// Every finding for one org, most harmful first.
pub fn analyse(state: &OrgState<'_>, now: Timestamp) -> Vec<Finding> {
    let OrgState {
        config,
        messages,
        patients,
        steps,
        cliniko,
        cliniko_failures,
        suppressed,
        last_dispatch,
    } = *state;
    let org = config.org.id.as_str();
    let known: HashSet<String> = patients.iter().map(|p| p.id.clone()).collect();
    // Nothing is processed at all: that comes first.
    let mut findings: Vec<Finding> = delivery::stuck(org, messages, now).into_iter().collect();
    findings.extend(findings::failures(config, messages, &known));
    findings.extend(delivery::dispatcher(config, patients, last_dispatch, now));
    findings.extend(delivery::delivery(config, patients, steps));
    findings.extend(delivery::reach(org, patients, suppressed));
    findings.extend(cliniko::cliniko(cliniko, cliniko_failures, now));
    findings.extend(sender::rejected(org, messages));
    findings.extend(sender::pending(org, messages, now));
    findings.extend(sender::clock_skew(messages));
    findings.extend(sender::ignored(messages));
    findings
}

/// Reads the org's configuration, messages (received at or after `since`),
/// patients, workflow steps and Cliniko connection, and analyses them. `org`
/// may be a test partition ([`crate::mode`]): its data, the org's
/// configuration. `None` when the org does not exist.
pub async fn diagnose<S>(
    store: &S,
    org: &str,
    since: Option<Timestamp>,
    now: Timestamp,
) -> StoreResult<Option<Diagnosis>>
where
    S: ConfigStore + OrgOverview + ClinikoStore + Suppressions + DispatchLog,
{
    let Some(config) = store.org_config(org).await? else {
        return Ok(None);
    };
    let Overview {
        mut messages,
        patients,
        failed_steps: steps,
    } = store.overview(org, since).await?;
    messages.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
    let connection = store.connection(org).await?;
    let cliniko_failures = match &connection {
        Some(_) => store.failures(org).await?,
        None => Vec::new(),
    };
    let suppressed = store.suppressed_addresses(org).await?;
    let last_dispatch = store.last_dispatch_pass().await?;
    let state = OrgState {
        config: &config,
        messages: &messages,
        patients: &patients,
        steps: &steps,
        cliniko: connection.as_ref(),
        cliniko_failures: &cliniko_failures,
        suppressed: &suppressed,
        last_dispatch,
    };
    let (live, mode) = crate::mode::split(org);
    let would_create = match mode {
        Mode::Live => None,
        Mode::Test => Some(would_create(&store.list_events(org).await?)),
    };
    Ok(Some(Diagnosis {
        org: live.to_owned(),
        mode,
        would_create,
        since,
        messages: messages.len(),
        findings: analyse(&state, now),
        queues: Vec::new(),
        last_dispatch_pass: last_dispatch,
        cliniko: connection,
    }))
}

/// The patients and episodes of care (each patient's Default included) a
/// partition's events say were created.
fn would_create(events: &[DomainEvent]) -> WouldCreate {
    let count = |kind: EventKind| events.iter().filter(|e| e.kind == kind).count();
    let patients = count(EventKind::PatientCreated);
    WouldCreate {
        patients,
        episodes: patients + count(EventKind::EpisodeCreated),
    }
}
