//! The integration doctor (`tendon doctor`): reads an org's stored messages
//! and configuration and says what is wrong, most harmful first, each
//! finding with its count, when it was first and last seen, example control
//! IDs (never patient data) and the command that fixes it.
//!
//! `facts` is what ingest keeps of each message for it ([`MessageFacts`]), so
//! the message list alone explains a failure; `findings` (the causes of
//! failures) and `sender` (refusals, parked ADTs, the clock, ignored types)
//! are the analysis, pure, which [`analyse`] puts in order; [`diagnose`]
//! reads the store and runs it; `plan` turns the fixes into a [`Plan`] a
//! person reviews, and [`apply`]s what they keep.
mod facts;
mod findings;
mod plan;
mod sender;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use jiff::Timestamp;

use crate::model::StoredMessage;
use crate::org::OrgConfig;
use crate::ports::{ConfigStore, MessageLog, PatientStore, StoreResult};

pub use crate::model::MessageFacts;
pub use findings::{Diagnosis, FailedMessage, Finding};
pub use plan::{
    Applied, Plan, PlanRefused, PlannedLocation, PlannedPractitioner, PlannedReplay, apply, plan_of,
};

/// Every finding for `messages` (sorted oldest first) of the org `config`
/// describes, most harmful first; `known` holds the IDs of its patients.
pub fn analyse(
    config: &OrgConfig,
    messages: &[StoredMessage],
    known: &HashSet<String>,
    now: Timestamp,
) -> Vec<Finding> {
    let org = config.org.id.as_str();
    let mut findings = findings::failures(config, messages, known);
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
    S: ConfigStore + MessageLog + PatientStore,
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
    let known = patients.into_iter().map(|p| p.id).collect();
    Ok(Some(Diagnosis {
        org: org.to_owned(),
        since,
        messages: messages.len(),
        findings: analyse(&config, &messages, &known, now),
    }))
}
