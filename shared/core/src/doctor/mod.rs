//! The integration doctor (`tendon doctor`): reads an org's stored messages
//! and configuration and says what is wrong, most harmful first, each
//! finding with its count, when it was first and last seen, example control
//! IDs (never patient data) and the command that fixes it.
//!
//! `facts` is what ingest keeps of each message for it ([`MessageFacts`]), so
//! the message list alone explains a failure; `findings` (the causes of
//! failures), `delivery` (stuck messages, no active workflow, patients no
//! message reaches, failed steps) and `sender` (refusals, parked ADTs, the
//! clock, ignored types)
//! are the analysis, pure, which [`analyse`] puts in order; [`diagnose`]
//! reads the store and runs it; `plan` turns the fixes into a [`Plan`] a
//! person reviews, and [`apply`]s what they keep.
mod delivery;
mod facts;
mod findings;
mod plan;
mod sender;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use jiff::Timestamp;

use crate::model::{Patient, StoredMessage};
use crate::org::OrgConfig;
use crate::ports::{ConfigStore, MessageLog, PatientStore, StepSchedule, StoreResult};
use crate::workflow::steps::ScheduledStep;

pub use crate::model::MessageFacts;
pub use findings::{Diagnosis, FailedMessage, Finding};
pub use plan::{
    Applied, Plan, PlanRefused, PlannedLocation, PlannedPractitioner, PlannedReplay, apply, plan_of,
};

/// Every finding for the org `config` describes, most harmful first, from its
/// `messages` (sorted oldest first), its patients and their workflow steps.
pub fn analyse(
    config: &OrgConfig,
    messages: &[StoredMessage],
    patients: &[Patient],
    steps: &[ScheduledStep],
    now: Timestamp,
) -> Vec<Finding> {
    let org = config.org.id.as_str();
    let known: HashSet<String> = patients.iter().map(|p| p.id.clone()).collect();
    // Nothing is processed at all: that comes first.
    let mut findings: Vec<Finding> = delivery::stuck(org, messages, now).into_iter().collect();
    findings.extend(findings::failures(config, messages, &known));
    findings.extend(delivery::delivery(config, patients, steps));
    findings.extend(sender::rejected(org, messages));
    findings.extend(sender::pending(org, messages, now));
    findings.extend(sender::clock_skew(messages));
    findings.extend(sender::ignored(messages));
    findings
}

/// Reads the org's configuration, messages (received at or after `since`)
/// and patients, and analyses them. `None` when the org does not exist.
pub async fn diagnose<S>(
    store: &S,
    org: &str,
    since: Option<Timestamp>,
    now: Timestamp,
) -> StoreResult<Option<Diagnosis>>
where
    S: ConfigStore + MessageLog + PatientStore + StepSchedule,
{
    let Some(config) = store.org_config(org).await? else {
        return Ok(None);
    };
    let mut messages = store.list_messages(org, None).await?;
    if let Some(since) = since {
        messages.retain(|m| m.received_at >= since);
    }
    messages.sort_by_key(|m| m.received_at);
    let patients = store.list_patients(org).await?;
    let steps = store.list_steps(org, None).await?;
    Ok(Some(Diagnosis {
        org: org.to_owned(),
        since,
        messages: messages.len(),
        findings: analyse(&config, &messages, &patients, &steps, now),
    }))
}
