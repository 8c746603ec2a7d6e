//! The send-time checks: whether a claimed step is sent now, later, or
//! never, decided from the current state of its workflow, patient, episode
//! and appointment.
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::follow::follow_appointment;
use crate::AppointmentStatus;
use crate::model::{EpisodeStatus, EventKind, PatientRecord};
use crate::org::OrgConfig;
use crate::workflow::model::{Direction, Exit, WorkflowStatus};
use crate::workflow::schedule;
use crate::workflow::steps::{Channel, ScheduledStep};
use crate::workflow::task::TaskKind;

/// What to do with a claimed step, decided from the current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Not sent, and never will be (`reason` is a code).
    Skip(&'static str),
    /// Not yet: due again at this instant (a moved appointment, a text outside
    /// the 08:00 to 21:00 window).
    Later(Timestamp),
}

/// The send-time checks: the workflow is still active, the patient can be
/// reached, the appointment still stands (a moved one moves the step, see
/// [`follow_appointment`]), the episode is open, a repeat has not met its
/// exit, a text is in its window.
pub fn verdict(
    step: &mut ScheduledStep,
    config: &OrgConfig,
    record: Option<&PatientRecord>,
    assignments_open: bool,
    address_suppressed: bool,
    now: Timestamp,
) -> Verdict {
    let Some(wf) = config.workflows.iter().find(|w| w.id == step.workflow_id) else {
        return Verdict::Skip("workflow_removed");
    };
    if wf.status != WorkflowStatus::Active {
        return Verdict::Skip("workflow_inactive");
    }
    let Some(record) = record else {
        return Verdict::Skip("patient_missing");
    };
    let p = &record.patient;
    if p.merged_into.is_some() {
        return Verdict::Skip("patient_merged");
    }
    if p.inactive.is_some() {
        return Verdict::Skip("patient_inactive");
    }
    let channel = channel_of(step.task.kind);
    match channel {
        Channel::Email if p.email.is_none() => return Verdict::Skip("no_email"),
        Channel::Email if p.unsubscribed => return Verdict::Skip("unsubscribed"),
        Channel::Email if address_suppressed => return Verdict::Skip("address_suppressed"),
        Channel::Text if p.mobile.is_none() => return Verdict::Skip("no_mobile"),
        Channel::Text if p.text_opt_out => return Verdict::Skip("text_opt_out"),
        _ => {}
    }
    let episode = step.case_id.as_deref().and_then(|c| record.case_episode(c));
    let discharge_trigger = wf.trigger.event == EventKind::EpisodeDischarged;
    if !discharge_trigger && episode.is_some_and(|e| e.status == EpisodeStatus::Discharged) {
        return Verdict::Skip("episode_discharged");
    }
    if let Err(reason) = follow_appointment(step, wf.trigger.event, record) {
        return Verdict::Skip(reason);
    }
    if step.schedule.direction == Direction::Before {
        let start = step
            .anchor
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok());
        if start.is_some_and(|s| s <= now) {
            return Verdict::Skip("appointment_passed");
        }
    }
    // Moved later with its appointment.
    if step.due_at > now {
        return Verdict::Later(step.due_at);
    }
    if step.occurrence > 0
        && let Some(repeat) = &step.schedule.repeat
    {
        for exit in &repeat.until {
            let met = match exit {
                Exit::AssignmentsComplete => !assignments_open,
                Exit::EpisodeDischarged => {
                    episode.is_some_and(|e| e.status == EpisodeStatus::Discharged)
                }
                Exit::NoUpcomingAppointment => !record.appointments.iter().any(|a| {
                    a.status == AppointmentStatus::Scheduled
                        && a.start
                            .as_deref()
                            .and_then(|s| s.parse::<Timestamp>().ok())
                            .is_some_and(|s| s > now)
                }),
            };
            if met {
                return Verdict::Skip("repeat_exit");
            }
        }
    }
    if channel == Channel::Text {
        let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
        let window = schedule::in_text_window(now, &zone);
        if window > now {
            return Verdict::Later(window);
        }
    }
    Verdict::Send
}

pub fn channel_of(kind: TaskKind) -> Channel {
    match kind {
        TaskKind::Text => Channel::Text,
        _ => Channel::Email,
    }
}
