//! `tendon workflow simulate`: a patient's workflow timeline, from the steps
//! enrolment scheduled, with the repeats a step would make, on the clinic's
//! clock. Nothing is sent or stored.
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::dispatch::{Verdict, build_delivery, verdict};
use super::enrol::next_occurrence;
use super::steps::{ScheduledStep, StepStatus};
use crate::model::PatientRecord;
use crate::org::OrgConfig;

/// Projected repeats shown per repeating step (beyond the scheduled one).
pub const PROJECTED_REPEATS: u32 = 3;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When, on the clinic's clock (RFC 3339 with offset).
    pub at: String,
    /// The clinic's IANA time zone `at` is on (the location's, else the org's).
    pub zone: String,
    pub workflow_id: String,
    pub title: String,
    pub step: usize,
    pub occurrence: u32,
    pub kind: &'static str,
    /// `scheduled`, `sent`, `skipped`, `failed`, or `projected` (a repeat not
    /// scheduled yet; it is scheduled when the one before it is sent).
    pub status: &'static str,
    pub note: Option<String>,
    /// For a send still to come: the dispatcher's send-time check run now as
    /// if it were due, so "skip" reasons show early (the workflow was
    /// deactivated, the patient has no mobile, the appointment was
    /// canceled). `None` when it would be sent as things stand.
    pub would_skip: Option<&'static str>,
    /// For a send still to come that the same check would hold back: when
    /// it would go instead, on the clinic's clock (a text due outside 08:00
    /// to 21:00 waits for 08:00; a step follows its moved appointment).
    pub would_wait_until: Option<String>,
    /// The subject (or text) as it would render now.
    pub preview: Option<String>,
}

fn entry(
    step: &ScheduledStep,
    config: &OrgConfig,
    record: &PatientRecord,
    status: &'static str,
) -> TimelineEntry {
    let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
    let local = |t: Timestamp| {
        t.to_zoned(zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    };
    let at = local(step.due_at);
    let title = config
        .workflows
        .iter()
        .find(|w| w.id == step.workflow_id)
        .map(|w| w.title.clone())
        .unwrap_or_default();
    let preview = build_delivery(
        step,
        config,
        record,
        "https://example.invalid/unsubscribe",
        Timestamp::UNIX_EPOCH,
    )
    .ok()
    .map(|d| d.subject.unwrap_or(d.body));
    let (would_skip, would_wait_until) = match status {
        "scheduled" | "projected" => {
            // Assignments are taken as still open and the address as not
            // suppressed: what the store would say at send time is unknown now.
            let mut probe = step.clone();
            match verdict(&mut probe, config, Some(record), true, false, step.due_at) {
                Verdict::Skip(reason) => (Some(reason), None),
                Verdict::Later(t) if t > step.due_at => (None, Some(local(t))),
                Verdict::Send | Verdict::Later(_) => (None, None),
            }
        }
        _ => (None, None),
    };
    TimelineEntry {
        at,
        zone: step.zone.clone(),
        workflow_id: step.workflow_id.clone(),
        title,
        step: step.step,
        occurrence: step.occurrence,
        kind: step.task.kind.as_str(),
        status,
        note: step.note.clone(),
        would_skip,
        would_wait_until,
        preview,
    }
}

/// The timeline of `steps` (one patient's), oldest first.
pub fn timeline(
    steps: &[ScheduledStep],
    config: &OrgConfig,
    record: &PatientRecord,
) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for step in steps {
        out.push((
            Some(step.due_at),
            entry(step, config, record, step.status.as_str()),
        ));
        if step.status == StepStatus::Scheduled {
            let mut next = next_occurrence(step);
            for _ in 0..PROJECTED_REPEATS {
                let Some(n) = next else { break };
                out.push((Some(n.due_at), entry(&n, config, record, "projected")));
                next = next_occurrence(&n);
            }
        }
    }
    out.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.workflow_id.cmp(&b.1.workflow_id))
            .then(a.1.step.cmp(&b.1.step))
    });
    out.into_iter().map(|(_, e)| e).collect()
}
