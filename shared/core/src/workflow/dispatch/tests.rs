//! Appointment changes and the steps about them: reminders re-timed,
//! skipped or left alone, by a commit's updates and at dispatch.
use jiff::Timestamp;

use super::{Verdict, appointment_updates, verdict};
use crate::AppointmentStatus;
use crate::model::{Appointment, DomainEvent, EventKind, Patient, PatientRecord, Source};
use crate::org::{Org, OrgConfig};
use crate::workflow::Workflow;
use crate::workflow::enrol::enrol;
use crate::workflow::steps::{ScheduledStep, StepStatus, StepUpdate};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn config(trigger: &str) -> OrgConfig {
    let wf = Workflow::parse(&format!(
        r#"{{"title": "Reminder", "status": "active", "trigger": {{"event": "{trigger}"}},
            "steps": [{{"schedule": {{"direction": "before", "amount": 1, "unit": "days"}},
                        "task": {{"kind": "email", "subject": "Soon", "body": "Soon."}}}}]}}"#
    ))
    .unwrap();
    OrgConfig {
        org: Org {
            id: "ORG".into(),
            name: "Org".into(),
            timezone: "America/Los_Angeles".into(),
            ie_types: Vec::new(),
            field_map: Default::default(),
        },
        locations: Vec::new(),
        practitioners: Vec::new(),
        workflows: vec![wf],
    }
}

fn record(start: &str, status: AppointmentStatus) -> PatientRecord {
    PatientRecord {
        patient: Patient {
            id: "P1".into(),
            source: Source::Emr,
            first_name: "A".into(),
            last_name: "B".into(),
            birth_date: None,
            gender: None,
            email: Some("a@example.com".into()),
            mobile: None,
            demographics_at: None,
            created_at: "2026-11-01T00:00:00Z".parse().unwrap(),
            merged_into: None,
            unsubscribed: false,
            text_opt_out: false,
            inactive: None,
            sex_label: None,
            enrolled_at: None,
        },
        episodes: Vec::new(),
        appointments: vec![Appointment {
            id: "A1".into(),
            appointment_type: None,
            start: Some(start.into()),
            status,
            case_id: None,
            practitioner_id: None,
            location_id: None,
            initial_evaluation: false,
            updated_by: None,
        }],
        version: 1,
    }
}

fn event(kind: EventKind, id: &str) -> DomainEvent {
    DomainEvent {
        id: id.into(),
        org: "ORG".into(),
        kind,
        patient_id: "P1".into(),
        case_id: None,
        appointment_id: Some("A1".into()),
        at: "2026-11-01T00:00:00Z".parse().unwrap(),
        message_id: "m".into(),
    }
}

const BOOKED: &str = "2026-12-20T10:00:00-08:00";
const NOW: &str = "2026-12-01T12:00:00Z";

/// The reminder a booking of A1 at BOOKED schedules (due 2026-12-19 10:00 local).
fn reminder(cfg: &OrgConfig) -> ScheduledStep {
    let booked = record(BOOKED, AppointmentStatus::Scheduled);
    let e = event(EventKind::AppointmentScheduled, "e1");
    let steps = enrol(cfg, &cfg.workflows, &booked, &e, ts(NOW));
    assert_eq!(steps.len(), 1);
    steps.into_iter().next().unwrap()
}

fn updates(
    cfg: &OrgConfig,
    after: &PatientRecord,
    kind: EventKind,
    pending: &[ScheduledStep],
) -> Vec<StepUpdate> {
    appointment_updates(cfg, after, &[event(kind, "e2")], pending, ts(NOW))
}

#[test]
fn a_move_earlier_or_later_re_times_the_reminder_from_the_new_start() {
    let cfg = config("appointment_scheduled");
    let step = reminder(&cfg);
    for (start, due) in [
        ("2026-12-10T09:30:00-08:00", "2026-12-09T17:30:00Z"),
        ("2026-12-24T10:00:00-08:00", "2026-12-23T18:00:00Z"),
    ] {
        let moved = record(start, AppointmentStatus::Scheduled);
        let out = updates(
            &cfg,
            &moved,
            EventKind::AppointmentRescheduled,
            std::slice::from_ref(&step),
        );
        assert_eq!(out.len(), 1, "{start}");
        let new = &out[0].step;
        assert_eq!(
            (new.status, new.anchor.as_deref()),
            (StepStatus::Scheduled, Some(start))
        );
        assert_eq!(new.due_at, ts(due), "{start}");
        assert_eq!(out[0].read_claim, None);
    }
}

#[test]
fn a_move_whose_reminder_time_has_passed_skips_it() {
    let cfg = config("appointment_scheduled");
    let step = reminder(&cfg);
    let moved = record("2026-12-01T20:00:00-08:00", AppointmentStatus::Scheduled);
    let out = updates(&cfg, &moved, EventKind::AppointmentRescheduled, &[step]);
    assert_eq!(
        (out[0].step.status, out[0].step.note.as_deref()),
        (StepStatus::Skipped, Some("past_due_at_reschedule"))
    );
}

#[test]
fn a_cancel_or_delete_skips_the_reminder_at_once() {
    let cfg = config("appointment_scheduled");
    let step = reminder(&cfg);
    for (status, kind, note) in [
        (
            AppointmentStatus::Canceled,
            EventKind::AppointmentCanceled,
            "appointment_canceled",
        ),
        (
            AppointmentStatus::Deleted,
            EventKind::AppointmentDeleted,
            "appointment_deleted",
        ),
    ] {
        let after = record(BOOKED, status);
        let out = updates(&cfg, &after, kind, std::slice::from_ref(&step));
        assert_eq!(
            (out[0].step.status, out[0].step.note.as_deref()),
            (StepStatus::Skipped, Some(note))
        );
    }
}

#[test]
fn steps_that_stand_or_are_held_by_a_dispatcher_are_left_alone() {
    let cfg = config("appointment_scheduled");
    let step = reminder(&cfg);
    // Another appointment changed; or this one "rescheduled" to the same start.
    let same = record(BOOKED, AppointmentStatus::Scheduled);
    let mut other = event(EventKind::AppointmentCanceled, "e3");
    other.appointment_id = Some("A2".into());
    assert!(
        appointment_updates(&cfg, &same, &[other], std::slice::from_ref(&step), ts(NOW)).is_empty()
    );
    assert!(
        updates(
            &cfg,
            &same,
            EventKind::AppointmentRescheduled,
            std::slice::from_ref(&step)
        )
        .is_empty()
    );
    // Claimed beyond now: the dispatcher decides.
    let mut held = step.clone();
    held.claimed_until = Some(ts("2026-12-01T12:04:00Z"));
    let canceled = record(BOOKED, AppointmentStatus::Canceled);
    assert!(
        updates(
            &cfg,
            &canceled,
            EventKind::AppointmentCanceled,
            &[held.clone()]
        )
        .is_empty()
    );
    // An expired claim is read as it is, so the write checks it.
    held.claimed_until = Some(ts("2026-12-01T11:00:00Z"));
    let out = updates(&cfg, &canceled, EventKind::AppointmentCanceled, &[held]);
    assert_eq!(out[0].read_claim, Some(ts("2026-12-01T11:00:00Z")));
    assert_eq!(out[0].step.claimed_until, None);
}

#[test]
fn a_cancellation_workflow_keeps_its_steps_when_the_appointment_is_canceled() {
    let cfg = config("appointment_canceled");
    let canceled = record(BOOKED, AppointmentStatus::Canceled);
    let e = event(EventKind::AppointmentCanceled, "e1");
    let steps = enrol(&cfg, &cfg.workflows, &canceled, &e, ts(NOW));
    assert!(updates(&cfg, &canceled, EventKind::AppointmentCanceled, &steps).is_empty());
}

#[test]
fn dispatch_follows_a_move_it_was_not_told_about() {
    // A step a commit could not update (held by a dispatcher then) moves
    // when claimed: later, it waits; the delivery is keyed by the new start.
    let cfg = config("appointment_scheduled");
    let mut step = reminder(&cfg);
    let before_key = step.delivery_key();
    let moved = record("2026-12-24T10:00:00-08:00", AppointmentStatus::Scheduled);
    let at = step.due_at;
    assert_eq!(
        verdict(&mut step, &cfg, Some(&moved), false, false, at),
        Verdict::Later(ts("2026-12-23T18:00:00Z"))
    );
    assert_ne!(step.delivery_key(), before_key);
    assert_eq!(
        verdict(
            &mut step,
            &cfg,
            Some(&moved),
            false,
            false,
            ts("2026-12-23T18:00:00Z")
        ),
        Verdict::Send
    );
}

/// `workflow simulate` says in advance what the dispatcher will do with a
/// send still to come, from the same check (`verdict`) run as if it were due.
#[test]
fn the_timeline_tells_a_skip_or_a_wait_in_advance() {
    use crate::workflow::WorkflowStatus;
    use crate::workflow::simulate::timeline;
    let mut cfg = config("appointment_scheduled");
    let step = reminder(&cfg);
    let booked = record(BOOKED, AppointmentStatus::Scheduled);
    let as_is = &timeline(std::slice::from_ref(&step), &cfg, &booked)[0];
    assert_eq!(
        (
            as_is.status,
            as_is.would_skip,
            as_is.would_wait_until.as_deref()
        ),
        ("scheduled", None, None)
    );
    assert_eq!(as_is.at, "2026-12-19T10:00:00-08:00");
    // Canceled in the EMR: the reminder will be skipped.
    let canceled = record(BOOKED, AppointmentStatus::Canceled);
    let entry = &timeline(std::slice::from_ref(&step), &cfg, &canceled)[0];
    assert!(
        entry.would_skip.is_some_and(|r| r.contains("cancel")),
        "{entry:?}"
    );
    // Moved two days later: it will follow the appointment.
    let moved = record("2026-12-22T10:00:00-08:00", AppointmentStatus::Scheduled);
    let entry = &timeline(std::slice::from_ref(&step), &cfg, &moved)[0];
    assert_eq!(
        entry.would_wait_until.as_deref(),
        Some("2026-12-21T10:00:00-08:00")
    );
    // The workflow switched off.
    cfg.workflows[0].status = WorkflowStatus::Inactive;
    let entry = &timeline(std::slice::from_ref(&step), &cfg, &booked)[0];
    assert_eq!(entry.would_skip, Some("workflow_inactive"));
}
