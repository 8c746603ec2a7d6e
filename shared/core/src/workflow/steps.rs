//! Scheduled steps (what enrolment writes and dispatch claims) and deliveries
//! (what dispatch records before it sends).
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::model::Schedule;
use super::task::{Task, TaskKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waiting for `due_at` (or claimed by a dispatcher until `claimed_until`).
    Scheduled,
    Sent,
    Skipped,
    Failed,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Scheduled => "scheduled",
            StepStatus::Sent => "sent",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
        }
    }
}

/// One send of one workflow step for one patient. It carries the step's
/// schedule and task as they were when it was scheduled, so re-importing a
/// workflow changes only what is scheduled afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledStep {
    /// Derived from the trigger event, the workflow step and the occurrence,
    /// so enrolling twice writes one step.
    pub id: String,
    pub org: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    /// The step's index in the workflow.
    pub step: usize,
    /// 0 for the first send of a repeating step, then 1, 2, ...
    pub occurrence: u32,
    pub patient_id: String,
    pub case_id: Option<String>,
    pub appointment_id: Option<String>,
    /// The trigger event (its id) and when it fired (RFC 3339).
    pub event_id: String,
    pub fired_at: Timestamp,
    /// For an appointment trigger: the appointment start the schedule counted from.
    pub anchor: Option<String>,
    /// When it is due (RFC 3339, UTC).
    pub due_at: Timestamp,
    /// The IANA zone the schedule was computed in (the location's, else the org's).
    pub zone: String,
    pub schedule: Schedule,
    pub task: Task,
    pub status: StepStatus,
    /// Send attempts that failed.
    #[serde(default)]
    pub attempts: u32,
    /// Why it was skipped or failed (a code, never patient data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set by a dispatcher's claim: nobody else takes it before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until: Option<Timestamp>,
    /// How many times an operator made it due again after it failed
    /// (`workflow retry-step`); each is a new send, with a delivery of its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resends: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ScheduledStep {
    /// The identity of the send, the same for every step record that would
    /// send the same thing (an appointment rescheduled away and back, a step
    /// retried after a crash): deliveries are keyed by it.
    pub fn delivery_key(&self) -> String {
        let subject = match (&self.appointment_id, &self.anchor) {
            (Some(appt), Some(anchor)) if self.schedule.direction == super::Direction::Before => {
                format!("appt:{appt}@{anchor}")
            }
            _ => format!("event:{}", self.event_id),
        };
        // A resend is a new send; the first keeps the key it always had.
        let resend = match self.resends {
            0 => String::new(),
            n => format!("\0resend:{n}"),
        };
        crate::hash::sha256_hex(
            format!(
                "{}\0{}\0{}\0{}\0{}\0{}{resend}",
                self.org,
                self.workflow_id,
                self.workflow_version,
                self.step,
                self.occurrence,
                subject
            )
            .as_bytes(),
        )
    }
}

/// A pending step a commit changes: moved with its rescheduled appointment,
/// or skipped with its canceled one. It is written only if the stored step is
/// still `scheduled` with the claim it was read with (`read_claim`), so a
/// dispatcher that took it meanwhile makes the commit conflict and decide again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepUpdate {
    /// The new state (no claim).
    pub step: ScheduledStep,
    pub read_claim: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Text,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "text" => Some(Channel::Text),
            _ => None,
        }
    }

    /// Sets whether `patient` has opted out of workflow messages on this
    /// channel (email: unsubscribed; text: STOP); true if that changed it.
    pub fn set_opt_out(self, patient: &mut crate::model::Patient, opted_out: bool) -> bool {
        let flag = match self {
            Channel::Email => &mut patient.unsubscribed,
            Channel::Text => &mut patient.text_opt_out,
        };
        let changed = *flag != opted_out;
        *flag = opted_out;
        changed
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Recorded, and the send may or may not have happened (a crash here
    /// repeats the send at most once).
    Sending,
    Sent,
    Failed,
}

/// One message to a patient, recorded before it is sent (the outbox).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// [`ScheduledStep::delivery_key`].
    pub id: String,
    pub org: String,
    pub channel: Channel,
    /// The address or E.164 number.
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The content assigned, for survey, education, exercise and care-plan tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
    pub kind: TaskKind,
    pub workflow_id: String,
    pub step: usize,
    pub patient_id: String,
    pub step_id: String,
    pub status: DeliveryStatus,
    /// The provider's message ID (SES, SNS), once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
}
