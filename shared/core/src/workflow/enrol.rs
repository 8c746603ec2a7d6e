//! Enrolment: when a trigger fires, the org's active workflows whose trigger
//! and patient group match schedule their steps. It runs inside the commit
//! that records the event, so a step is scheduled exactly when (and as often
//! as) its event is recorded. Workflows switched on later do not back-fill.
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::catalogue::BodyRegion;
use super::model::{Direction, PatientGroup, Workflow, WorkflowStatus};
use super::schedule;
use super::steps::{ScheduledStep, StepStatus};
use crate::AppointmentStatus;
use crate::model::{Appointment, DomainEvent, EventKind, PatientRecord};
use crate::org::OrgConfig;

/// The zone a patient's schedule runs in: the appointment's location's, else the org's.
pub fn zone_for(config: &OrgConfig, location: Option<&str>) -> (String, TimeZone) {
    let name = location
        .and_then(|id| config.location(id))
        .and_then(|l| l.timezone.clone())
        .unwrap_or_else(|| config.org.timezone.clone());
    match TimeZone::get(&name) {
        Ok(tz) => (name, tz),
        Err(_) => ("UTC".to_owned(), TimeZone::UTC),
    }
}

/// Whole years from `birth_date` (ISO date) to `at` in `zone`.
pub fn age_at(birth_date: &str, at: Timestamp, zone: &TimeZone) -> Option<u32> {
    let born: jiff::civil::Date = birth_date.parse().ok()?;
    let today = at.to_zoned(zone.clone()).date();
    let mut years = i32::from(today.year()) - i32::from(born.year());
    if (today.month(), today.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

fn group_admits(
    group: &PatientGroup,
    record: &PatientRecord,
    appointment: Option<&Appointment>,
    case_description: Option<&str>,
    at: Timestamp,
    zone: &TimeZone,
) -> bool {
    let p = &record.patient;
    if !group.source.admits(p.source) {
        return false;
    }
    if !group.locations.is_empty() {
        let here = match appointment {
            Some(a) => a.location_id.iter().any(|l| group.locations.contains(l)),
            None => record
                .appointments
                .iter()
                .filter_map(|a| a.location_id.as_ref())
                .any(|l| group.locations.contains(l)),
        };
        if !here {
            return false;
        }
    }
    if group.min_age.is_some() || group.max_age.is_some() {
        let Some(age) = p.birth_date.as_deref().and_then(|b| age_at(b, at, zone)) else {
            return false;
        };
        if group.min_age.is_some_and(|m| age < m) || group.max_age.is_some_and(|m| age > m) {
            return false;
        }
    }
    if let Some(g) = group.gender
        && p.gender != Some(g)
    {
        return false;
    }
    if !group.body_regions.is_empty() {
        let region = case_description.and_then(BodyRegion::from_description);
        if !region.is_some_and(|r| group.body_regions.iter().any(|n| n == r.as_str())) {
            return false;
        }
    }
    true
}

/// Whether this is the patient's first event of its kind (for `first_only`).
fn is_first(record: &PatientRecord, event: &DomainEvent) -> bool {
    let count = |ie_only: bool, status: AppointmentStatus| {
        record
            .appointments
            .iter()
            .filter(|a| a.status == status && (!ie_only || a.initial_evaluation))
            .count()
    };
    match event.kind {
        EventKind::InitialEvaluationArrived => count(true, AppointmentStatus::Arrived) <= 1,
        EventKind::AppointmentArrived => count(false, AppointmentStatus::Arrived) <= 1,
        EventKind::InitialEvaluationScheduled => {
            record
                .appointments
                .iter()
                .filter(|a| a.initial_evaluation)
                .count()
                <= 1
        }
        EventKind::AppointmentScheduled => record.appointments.len() <= 1,
        EventKind::EpisodeCreated => record.episodes.iter().filter(|e| !e.default).count() <= 1,
        _ => true,
    }
}

/// The steps `event` schedules. `record` is the patient as the event's commit
/// leaves it; `now` is when the trigger fired.
pub fn enrol(
    config: &OrgConfig,
    workflows: &[Workflow],
    record: &PatientRecord,
    event: &DomainEvent,
    now: Timestamp,
) -> Vec<ScheduledStep> {
    let appointment = event
        .appointment_id
        .as_deref()
        .and_then(|id| record.appointment(id));
    let case_id = event
        .case_id
        .clone()
        .or_else(|| appointment.and_then(|a| a.case_id.clone()));
    let case_description = case_id
        .as_deref()
        .and_then(|c| record.case_episode(c))
        .map(|e| e.name.as_str());
    let (zone_name, zone) = zone_for(config, appointment.and_then(|a| a.location_id.as_deref()));
    let anchor = appointment.and_then(|a| a.start.clone());
    let anchor_ts = anchor.as_deref().and_then(|s| s.parse::<Timestamp>().ok());
    let mut out = Vec::new();
    for wf in workflows {
        if wf.status != WorkflowStatus::Active || wf.trigger.event != event.kind {
            continue;
        }
        if wf.trigger.first_only && !is_first(record, event) {
            continue;
        }
        if !group_admits(
            &wf.patient_group,
            record,
            appointment,
            case_description,
            now,
            &zone,
        ) {
            continue;
        }
        for (index, def) in wf.steps.iter().enumerate() {
            let Some(due) = schedule::due(&def.schedule, now, anchor_ts, &zone, 0) else {
                continue;
            };
            let mut step = ScheduledStep {
                id: step_id(&event.org, &wf.id, wf.version, index, &event.id, 0),
                org: event.org.clone(),
                workflow_id: wf.id.clone(),
                workflow_version: wf.version,
                step: index,
                occurrence: 0,
                patient_id: record.patient.id.clone(),
                case_id: case_id.clone(),
                appointment_id: event.appointment_id.clone(),
                event_id: event.id.clone(),
                fired_at: now,
                anchor: anchor.clone(),
                due_at: due,
                zone: zone_name.clone(),
                schedule: def.schedule.clone(),
                task: def.task.clone(),
                status: StepStatus::Scheduled,
                attempts: 0,
                note: None,
                claimed_until: None,
                resends: 0,
            };
            // A reminder whose time passed before the appointment was even
            // booked is recorded as skipped, not sent late.
            if def.schedule.direction == Direction::Before && due < now {
                step.status = StepStatus::Skipped;
                step.note = Some("past_due_at_enrolment".to_owned());
            }
            out.push(step);
        }
    }
    out
}

/// The ID of a scheduled step: one per (event, workflow version, step, occurrence).
pub fn step_id(
    org: &str,
    workflow: &str,
    version: u32,
    step: usize,
    event: &str,
    occurrence: u32,
) -> String {
    crate::hash::sha256_hex(
        format!("{org}\0{workflow}\0{version}\0{step}\0{event}\0{occurrence}").as_bytes(),
    )
}

/// The next send of a repeating step, if its schedule has one left.
pub fn next_occurrence(step: &ScheduledStep) -> Option<ScheduledStep> {
    let repeat = step.schedule.repeat.as_ref()?;
    let next = step.occurrence + 1;
    if repeat.max.is_some_and(|m| next >= m) {
        return None;
    }
    let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
    let fired = step.fired_at;
    let anchor = step.anchor.as_deref().and_then(|a| a.parse().ok());
    let due = schedule::due(&step.schedule, fired, anchor, &zone, next)?;
    Some(ScheduledStep {
        id: step_id(
            &step.org,
            &step.workflow_id,
            step.workflow_version,
            step.step,
            &step.event_id,
            next,
        ),
        occurrence: next,
        due_at: due,
        status: StepStatus::Scheduled,
        attempts: 0,
        note: None,
        claimed_until: None,
        resends: 0,
        ..step.clone()
    })
}
