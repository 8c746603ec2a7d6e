//! What a commit's domain events bring with them, for both writers of
//! patient records (the HL7 steps in [`processing`](crate::processing) and
//! the Cliniko sync): the workflow steps the events schedule
//! (`enrolments`), the pending steps they move or skip (`step_updates`, on
//! the steps `pending_steps` reads), and one log line per event
//! (`log_events`).
use jiff::Timestamp;

use crate::model::{DomainEvent, PatientRecord};
use crate::org::OrgConfig;
use crate::ports::{RecordWrite, StepSchedule, StoreResult};
use crate::workflow::dispatch::appointment_updates;
use crate::workflow::enrol::enrol;
use crate::workflow::steps::{ScheduledStep, StepStatus, StepUpdate};

/// One log line per domain event a commit recorded (the dashboard's
/// `PatientsCreated` and event counts are metric filters on them).
pub(crate) fn log_events(events: &[DomainEvent]) {
    for e in events {
        tracing::info!(org = %e.org, patient_id = %e.patient_id, event = e.kind.as_str(), "domain event");
    }
}

/// What `events` do to the pending steps (`pending`) of the records
/// `writes` leave: moved or skipped with their appointments.
pub(crate) fn step_updates(
    config: &OrgConfig,
    writes: &[RecordWrite],
    events: &[DomainEvent],
    pending: &[ScheduledStep],
    now: Timestamp,
) -> Vec<StepUpdate> {
    writes
        .iter()
        .flat_map(|w| {
            let id = &w.record.patient.id;
            let events: Vec<DomainEvent> = events
                .iter()
                .filter(|e| &e.patient_id == id)
                .cloned()
                .collect();
            let pending: Vec<ScheduledStep> = pending
                .iter()
                .filter(|s| &s.patient_id == id)
                .cloned()
                .collect();
            appointment_updates(config, &w.record, &events, &pending, now)
        })
        .collect()
}

/// The pending workflow steps of the patients whose appointments `events`
/// move, cancel or delete (read only then: most commits need none).
pub(crate) async fn pending_steps<S: StepSchedule>(
    store: &S,
    config: &OrgConfig,
    events: &[DomainEvent],
) -> StoreResult<Vec<ScheduledStep>> {
    if config.workflows.is_empty() {
        return Ok(Vec::new());
    }
    let mut patients: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.moves_or_ends_appointment())
        .map(|e| e.patient_id.as_str())
        .collect();
    patients.dedup();
    let mut out = Vec::new();
    for pid in patients {
        out.extend(
            store
                .list_steps(&config.org.id, Some(pid))
                .await?
                .into_iter()
                .filter(|s| s.status == StepStatus::Scheduled),
        );
    }
    Ok(out)
}

/// The workflow steps `events` schedule, each computed on the patient as the
/// commit leaves it (`writes`, else `unchanged`).
pub(crate) fn enrolments(
    config: &OrgConfig,
    writes: &[RecordWrite],
    unchanged: Option<&PatientRecord>,
    events: &[DomainEvent],
    now: Timestamp,
) -> Vec<ScheduledStep> {
    if config.workflows.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<ScheduledStep> = Vec::new();
    for event in events {
        let record = writes
            .iter()
            .map(|w| &w.record)
            .chain(unchanged)
            .find(|r| r.patient.id == event.patient_id);
        if let Some(record) = record {
            for step in enrol(config, &config.workflows, record, event, now) {
                if !out.iter().any(|s| s.id == step.id) {
                    out.push(step);
                }
            }
        }
    }
    out
}

/// The steps to commit with `writes`: the patients they enrol are marked
/// (`enrolled_at`, their first enrolment) in `writes`; then a test
/// partition's steps are dropped, so its patients show they would have been
/// enrolled and nothing is sent.
pub(crate) fn enrol_marked(
    config: &OrgConfig,
    writes: &mut [RecordWrite],
    steps: Vec<ScheduledStep>,
    now: Timestamp,
) -> Vec<ScheduledStep> {
    for w in writes.iter_mut() {
        let p = &mut w.record.patient;
        if p.enrolled_at.is_none() && steps.iter().any(|s| s.patient_id == p.id) {
            p.enrolled_at = Some(now);
        }
    }
    if crate::mode::is_test(&config.org.id) {
        return Vec::new();
    }
    steps
}
