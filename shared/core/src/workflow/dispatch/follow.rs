//! Keeping a step about an appointment in step with that appointment: a
//! moved one moves a reminder, a canceled or deleted one ends it. Dispatch
//! does it before sending; a commit that changes appointments does it to
//! their pending steps at once.
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::AppointmentStatus;
use crate::model::{DomainEvent, EventKind, PatientRecord};
use crate::org::OrgConfig;
use crate::workflow::model::Direction;
use crate::workflow::schedule;
use crate::workflow::steps::{ScheduledStep, StepStatus, StepUpdate};

/// Brings a step about an appointment up to date with that appointment:
/// `Err(reason)` if the appointment no longer holds it (deleted, or canceled
/// unless the workflow is about cancellations). A `before` step of a booking
/// trigger follows the appointment's start: its anchor and due time move
/// with it. Dispatch runs it before sending, and the commit that moves or
/// cancels the appointment runs it on the appointment's pending steps.
pub fn follow_appointment(
    step: &mut ScheduledStep,
    trigger: EventKind,
    record: &PatientRecord,
) -> Result<(), &'static str> {
    let Some(appt_id) = &step.appointment_id else {
        return Ok(());
    };
    let appointment = record.appointment(appt_id);
    match appointment.map(|a| a.status) {
        None | Some(AppointmentStatus::Deleted) => return Err("appointment_deleted"),
        Some(AppointmentStatus::Canceled) if trigger != EventKind::AppointmentCanceled => {
            return Err("appointment_canceled");
        }
        _ => {}
    }
    let booking = matches!(
        trigger,
        EventKind::AppointmentScheduled | EventKind::InitialEvaluationScheduled
    );
    if step.schedule.direction != Direction::Before || !booking {
        return Ok(());
    }
    let Some(start_text) = appointment.and_then(|a| a.start.clone()) else {
        return Err("appointment_without_start");
    };
    let start: Timestamp = start_text
        .parse()
        .map_err(|_| "appointment_without_start")?;
    let anchor = step
        .anchor
        .as_deref()
        .and_then(|s| s.parse::<Timestamp>().ok());
    if anchor != Some(start) {
        let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
        let due = schedule::due(
            &step.schedule,
            step.fired_at,
            Some(start),
            &zone,
            step.occurrence,
        )
        .ok_or("schedule_out_of_range")?;
        step.anchor = Some(start_text);
        step.due_at = due;
    }
    Ok(())
}

/// What a commit whose events move, cancel or delete appointments does to
/// the patient's pending steps about them (`pending`: the patient's
/// `scheduled` steps as read): each is moved or skipped as dispatch would
/// (see [`follow_appointment`]), now rather than at its old due time. A move
/// to a time already past skips the step, as enrolment does. Steps a
/// dispatcher holds are left to it.
pub fn appointment_updates(
    config: &OrgConfig,
    record: &PatientRecord,
    events: &[DomainEvent],
    pending: &[ScheduledStep],
    now: Timestamp,
) -> Vec<StepUpdate> {
    let changed: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.moves_or_ends_appointment())
        .filter_map(|e| e.appointment_id.as_deref())
        .collect();
    let mut out = Vec::new();
    for step in pending {
        let about_changed = step
            .appointment_id
            .as_deref()
            .is_some_and(|a| changed.contains(&a));
        let held = step.claimed_until.is_some_and(|c| c > now);
        if step.status != StepStatus::Scheduled || !about_changed || held {
            continue;
        }
        let Some(wf) = config.workflows.iter().find(|w| w.id == step.workflow_id) else {
            continue;
        };
        let mut new = step.clone();
        new.claimed_until = None;
        match follow_appointment(&mut new, wf.trigger.event, record) {
            Err(reason) => {
                new.status = StepStatus::Skipped;
                new.note = Some(reason.to_owned());
            }
            Ok(()) if new.anchor == step.anchor => continue,
            Ok(()) => {
                if new.due_at < now {
                    new.status = StepStatus::Skipped;
                    new.note = Some("past_due_at_reschedule".to_owned());
                }
            }
        }
        out.push(StepUpdate {
            step: new,
            read_claim: step.claimed_until,
        });
    }
    out
}
