//! The delivery part of the analysis (pure): whether what Tendon decides
//! reaches patients. An org with patients and no active workflow, patients
//! no active workflow took, patients no message can reach, suppressed
//! addresses and many opt-outs, workflow steps that failed, and messages
//! stored but not processed after minutes (the workers stopped, or a dead
//! letter holds a patient's queue).
use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::findings::{Finding, Tally, config_org, messages_org};
use crate::model::{MessageStatus, Patient, StoredMessage};
use crate::org::OrgConfig;
use crate::ports::Suppression;
use crate::workflow::model::WorkflowStatus;
use crate::workflow::steps::{ScheduledStep, StepStatus};

/// Whether any of the org's workflows is active (else nothing is ever sent).
fn has_active_workflow(config: &OrgConfig) -> bool {
    config
        .workflows
        .iter()
        .any(|w| w.status == WorkflowStatus::Active)
}

/// A message still `accepted` this long after it arrived is stuck: processing
/// takes seconds.
const STUCK_AFTER: SignedDuration = SignedDuration::from_mins(5);
const EXAMPLES: usize = 3;

/// The delivery findings of an org: its configuration, its patients and
/// their scheduled steps.
pub(super) fn delivery(
    config: &OrgConfig,
    patients: &[Patient],
    steps: &[ScheduledStep],
) -> Vec<Finding> {
    let org = config.org.id.as_str();
    let mut found = Vec::new();
    let reachable: Vec<&Patient> = patients
        .iter()
        .filter(|p| p.merged_into.is_none() && p.inactive.is_none())
        .collect();
    let active = has_active_workflow(config);
    if !active && !reachable.is_empty() {
        found.push(Finding {
            summary: format!(
                "the org has {} patient(s) and no active workflow: nobody receives anything",
                reachable.len()
            ),
            messages: reachable.len(),
            fix: format!(
                "tendon workflow install-defaults --org {}, or import and activate the clinic's own",
                config_org(org)
            ),
            ..Finding::of("no_active_workflow", &Tally::default())
        });
    }
    let outside: Vec<&&Patient> = reachable
        .iter()
        .filter(|p| p.enrolled_at.is_none())
        .collect();
    if active && !outside.is_empty() {
        found.push(Finding {
            summary: format!(
                "{} of {} patient(s) are in no active workflow: no workflow's patient group and trigger took them, so nothing is scheduled for them",
                outside.len(),
                reachable.len()
            ),
            messages: outside.len(),
            share: Some(outside.len() as f64 / reachable.len() as f64),
            examples: outside.iter().take(EXAMPLES).map(|p| p.id.clone()).collect(),
            fix: format!(
                "check the active workflows' patient groups and triggers (tendon workflow list --org {}); a workflow for them: tendon workflow import",
                config_org(org)
            ),
            ..Finding::of("not_enrolled", &Tally::default())
        });
    }
    let unreachable: Vec<&&Patient> = reachable
        .iter()
        .filter(|p| p.email.is_none() && p.mobile.is_none())
        .collect();
    if !unreachable.is_empty() {
        found.push(Finding {
            summary: format!(
                "{} of {} patient(s) have neither an email address nor a mobile number: no workflow message reaches them",
                unreachable.len(),
                reachable.len()
            ),
            messages: unreachable.len(),
            share: Some(unreachable.len() as f64 / reachable.len() as f64),
            examples: unreachable.iter().take(EXAMPLES).map(|p| p.id.clone()).collect(),
            fix: "the clinic records an email (PID-13 NET) or a mobile (PID-13 CP) in the EMR or Cliniko; the next message or sync brings it".to_owned(),
            ..Finding::of("no_contact", &Tally::default())
        });
    }
    found.extend(failed_steps(org, steps));
    found
}

/// The dispatcher runs each minute: this long without a pass, it has stopped.
const IDLE_AFTER: SignedDuration = SignedDuration::from_mins(5);

/// The dispatcher has not run for [`IDLE_AFTER`] (or never, while the org
/// has had patients that long) though the org has an active workflow: due
/// steps wait, nobody receives anything.
pub(super) fn dispatcher(
    config: &OrgConfig,
    patients: &[Patient],
    last_pass: Option<Timestamp>,
    now: Timestamp,
) -> Option<Finding> {
    let active = has_active_workflow(config);
    let first_patient = patients.iter().map(|p| p.created_at).min()?;
    let since = match last_pass {
        Some(at) => at,
        None => first_patient,
    };
    let idle = now.duration_since(since);
    if !active || idle <= IDLE_AFTER {
        return None;
    }
    let summary = match last_pass {
        Some(_) => format!(
            "the dispatcher last ran {} minute(s) ago: due workflow steps wait",
            idle.as_secs() / 60
        ),
        None => "the dispatcher has never run: no workflow step is sent".to_owned(),
    };
    Some(Finding {
        summary,
        first_seen: since,
        last_seen: now,
        fix: "run it each minute: tendon serve does locally; on AWS check the dispatch function's EventBridge schedule and its errors (docs/operations.md)".to_owned(),
        ..Finding::of("dispatcher_idle", &Tally::default())
    })
}

/// More than this share of an org's patients opted out of a channel is worth
/// a look at the workflows' cadence; fewer is patients' ordinary choice.
const OPT_OUT_SHARE: f64 = 0.10;

/// Addresses suppressed after a bounce or a complaint (the clinic's data
/// holds wrong addresses), and opt-outs above [`OPT_OUT_SHARE`]. Addresses
/// are never shown: they are patient data.
pub(super) fn reach(org: &str, patients: &[Patient], suppressed: &[Suppression]) -> Vec<Finding> {
    let mut found = Vec::new();
    if !suppressed.is_empty() {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for s in suppressed {
            *reasons.entry(s.reason.as_str()).or_default() += 1;
        }
        let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        found.push(Finding {
            summary: format!(
                "{} email address(es) are suppressed after a bounce or a complaint ({}): no workflow email goes to them",
                suppressed.len(),
                why.join(", ")
            ),
            messages: suppressed.len(),
            fix: format!(
                "correct the patients' email addresses in the EMR, then lift each: tendon org unsuppress --org {} --address ADDRESS (tendon org suppressions --org {} lists them)",
                config_org(org),
                config_org(org)
            ),
            ..Finding::of("suppressed_addresses", &Tally::default())
        });
    }
    let active: Vec<&Patient> = patients
        .iter()
        .filter(|p| p.merged_into.is_none() && p.inactive.is_none())
        .collect();
    let email = active.iter().filter(|p| p.unsubscribed).count();
    let text = active.iter().filter(|p| p.text_opt_out).count();
    let share = |n: usize| n as f64 / active.len().max(1) as f64;
    if share(email) > OPT_OUT_SHARE || share(text) > OPT_OUT_SHARE {
        found.push(Finding {
            summary: format!(
                "of {} patient(s), {email} unsubscribed from email and {text} opted out of texts: more than one in ten",
                active.len()
            ),
            messages: email.max(text),
            share: Some(share(email).max(share(text))),
            fix: format!(
                "review how often the workflows write (tendon workflow list --org {}); a patient opts back in with tendon patient opt-in",
                config_org(org)
            ),
            ..Finding::of("opted_out", &Tally::default())
        });
    }
    found
}

/// Workflow steps that failed to send, by reason.
fn failed_steps(org: &str, steps: &[ScheduledStep]) -> Vec<Finding> {
    let mut by_reason: BTreeMap<String, Vec<&ScheduledStep>> = BTreeMap::new();
    for s in steps.iter().filter(|s| s.status == StepStatus::Failed) {
        let reason = s.note.clone().unwrap_or_else(|| "unknown".to_owned());
        by_reason.entry(reason).or_default().push(s);
    }
    by_reason
        .into_iter()
        .map(|(reason, failed)| {
            let first = failed.iter().map(|s| s.due_at).min().unwrap_or_default();
            let last = failed.iter().map(|s| s.due_at).max().unwrap_or_default();
            Finding {
                subject: Some(reason.clone()),
                summary: format!("{} workflow step(s) failed to send ({reason})", failed.len()),
                messages: failed.len(),
                first_seen: first,
                last_seen: last,
                examples: failed.iter().take(EXAMPLES).map(|s| s.id.clone()).collect(),
                fix: format!(
                    "fix the cause, then: tendon workflow retry-step --org {} --patient PATIENT --id STEP (tendon workflow steps --org {} lists them)",
                    config_org(org),
                    config_org(org)
                ),
                ..Finding::of("failed_steps", &Tally::default())
            }
        })
        .collect()
}

/// Messages stored and acknowledged but not processed after [`STUCK_AFTER`].
pub(super) fn stuck(org: &str, messages: &[StoredMessage], now: Timestamp) -> Option<Finding> {
    let mut tally = Tally::default();
    for m in messages.iter().filter(|m| {
        m.status == MessageStatus::Accepted && now.duration_since(m.received_at) > STUCK_AFTER
    }) {
        tally.direct(m);
    }
    (tally.messages > 0).then(|| Finding {
        summary: format!(
            "{} message(s) were stored and acknowledged more than 5 minutes ago and are not processed yet",
            tally.messages
        ),
        fix: format!(
            "check that the workers run (tendon serve locally; on AWS the patient and episode functions and the dead-letter alarms), then tendon messages list {} --status accepted",
            messages_org(org)
        ),
        ..Finding::of("stuck_messages", &tally)
    })
}
