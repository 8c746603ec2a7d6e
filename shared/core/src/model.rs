//! The domain's records: patients with their episodes of care and
//! appointments, stored messages, and domain events. (An org and its
//! configuration are in [`org`](crate::org).) Stored by the adapters as they
//! are (JSON in SQLite, items in DynamoDB).
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{AppointmentStatus, Gender, Issue};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Emr,
    Cliniko,
}

/// A patient, keyed by (org, EMR patient ID).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    pub id: String,
    pub source: Source,
    pub first_name: String,
    pub last_name: String,
    pub birth_date: Option<String>,
    pub gender: Option<Gender>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    /// When the source last set the demographics (a message's MSH-7, a
    /// Cliniko profile's `updated_at`); older ones do not overwrite them.
    #[serde(default, deserialize_with = "lenient_instant")]
    pub demographics_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Set on a prior patient ID after an A40 merge: messages for it reach this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// The patient followed an email's unsubscribe link (or the address
    /// bounced or complained): no workflow email goes to them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsubscribed: bool,
    /// The patient opted out of texts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub text_opt_out: bool,
    /// Why the patient is no longer active at its source (`archived`,
    /// `deleted`, `merged`: a Cliniko profile); no workflow step reaches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive: Option<String>,
    /// The patient's sex in the clinic's own words (Cliniko's free-text
    /// `sex`, such as `AFAB`), beside `gender`, the contract's code for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex_label: Option<String>,
    /// When a workflow first scheduled a step for the patient (in test mode:
    /// would have); `None`: no active workflow has taken the patient yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_at: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeStatus {
    Active,
    Discharged,
}

/// An episode of care: the patient's one Default EOC, or one per EMR case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub name: String,
    pub default: bool,
    pub case_id: Option<String>,
    /// The treating therapist of the case's first IE; never updated afterwards.
    pub supervising_practitioner_id: Option<String>,
    pub status: EpisodeStatus,
    pub created_at: Timestamp,
}

impl Episode {
    /// The episode's key within its patient: `default` or `case:<case_id>`.
    pub fn key(&self) -> String {
        match &self.case_id {
            Some(c) if !self.default => format!("case:{c}"),
            _ => "default".to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: String,
    #[serde(rename = "type")]
    pub appointment_type: Option<String>,
    /// RFC 3339 with the location's offset: the clinic's own wall-clock time
    /// is part of the value (templates and `patient show` print it as is).
    pub start: Option<String>,
    pub status: AppointmentStatus,
    pub case_id: Option<String>,
    pub practitioner_id: Option<String>,
    pub location_id: Option<String>,
    pub initial_evaluation: bool,
    /// When its source last changed it (a message's MSH-7, a Cliniko
    /// record's `updated_at`); older changes do not overwrite it.
    #[serde(default, deserialize_with = "lenient_instant")]
    pub updated_by: Option<Timestamp>,
}

/// A patient with everything that hangs off it: the unit of consistency.
/// `version` counts commits, for optimistic concurrency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRecord {
    pub patient: Patient,
    pub episodes: Vec<Episode>,
    pub appointments: Vec<Appointment>,
    pub version: u64,
}

impl PatientRecord {
    /// A patient not stored yet: no demographics, its Default episode,
    /// version 1. Every new patient, from a message or from Cliniko, starts here.
    pub fn new_patient(id: &str, source: Source, now: Timestamp) -> PatientRecord {
        PatientRecord {
            patient: Patient {
                id: id.to_owned(),
                source,
                first_name: String::new(),
                last_name: String::new(),
                birth_date: None,
                gender: None,
                email: None,
                mobile: None,
                demographics_at: None,
                created_at: now,
                merged_into: None,
                unsubscribed: false,
                text_opt_out: false,
                inactive: None,
                sex_label: None,
                enrolled_at: None,
            },
            episodes: vec![Episode {
                name: "Default".to_owned(),
                default: true,
                case_id: None,
                supervising_practitioner_id: None,
                status: EpisodeStatus::Active,
                created_at: now,
            }],
            appointments: Vec::new(),
            version: 1,
        }
    }

    pub fn case_episode(&self, case_id: &str) -> Option<&Episode> {
        self.episodes
            .iter()
            .find(|e| !e.default && e.case_id.as_deref() == Some(case_id))
    }

    pub fn appointment(&self, id: &str) -> Option<&Appointment> {
        self.appointments.iter().find(|a| a.id == id)
    }
}

/// Where a stored message is in its life (docs/interface.md §5 `messages list`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Accepted,
    Processed,
    Pending,
    Failed,
    Rejected,
    Ignored,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Accepted => "accepted",
            MessageStatus::Processed => "processed",
            MessageStatus::Pending => "pending",
            MessageStatus::Failed => "failed",
            MessageStatus::Rejected => "rejected",
            MessageStatus::Ignored => "ignored",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        [
            MessageStatus::Accepted,
            MessageStatus::Processed,
            MessageStatus::Pending,
            MessageStatus::Failed,
            MessageStatus::Rejected,
            MessageStatus::Ignored,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// A received message, stored before it is acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub org: String,
    /// Hash of (org, MSH-3, MSH-4, MSH-10): the dedupe identity.
    pub id: String,
    pub control_id: Option<String>,
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub status: MessageStatus,
    pub errors: Vec<Issue>,
    pub received_at: Timestamp,
    /// SHA-256 of the body, to tell a retry from a reused control ID.
    pub body_hash: String,
    /// The patient the message is about, for the queue's message group.
    pub patient_id: Option<String>,
    /// Processing steps already committed, so a redelivery does not repeat one.
    #[serde(default)]
    pub steps_done: Vec<String>,
    /// How many times the message was reset for replay; part of the queue
    /// dedupe IDs, so a replay is never mistaken for a duplicate delivery.
    #[serde(default)]
    pub replays: u32,
    /// False while an `accepted` message's pointer is stored but not yet on
    /// the patients queue (a backend that cannot store and queue in one step
    /// stores it first; the sweeper finishes a hand-off that did not).
    #[serde(default = "yes")]
    pub queued: bool,
    /// False when the sender was never told `AA` (or `AE`, `AR`) for this
    /// message: the reply failed after it was stored. It is processed all the
    /// same; a resend is a duplicate and acknowledges it.
    #[serde(default = "yes")]
    pub acknowledged: bool,
    /// What `tendon doctor` reads of the message, taken at ingest (absent
    /// for a message that did not parse, and in records stored before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<MessageFacts>,
    /// The message as received. Adapters store it apart from the JSON record
    /// (a BLOB column, a binary attribute); it never travels on a queue.
    #[serde(skip)]
    pub raw: Vec<u8>,
}

/// What the integration doctor needs of a message, read once at ingest, so
/// that the list of messages is enough to explain their failures (no second
/// parse, no raw bodies). None of it is patient data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFacts {
    /// MSH-7, for the sender's clock skew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_id: Option<String>,
    /// The location's name as the message gives it (AIL-3, PV1-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// The practitioner an Initial Evaluation would need: the treating
    /// therapist, else the supervising one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<PractitionerFacts>,
}

/// A practitioner as a message names one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PractitionerFacts {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npi: Option<String>,
}

/// Records stored before a field existed had it true.
fn yes() -> bool {
    true
}

/// What happened, for the workflow engine (docs/interface.md §6 triggers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PatientCreated,
    EpisodeCreated,
    InitialEvaluationScheduled,
    InitialEvaluationArrived,
    AppointmentScheduled,
    AppointmentRescheduled,
    AppointmentArrived,
    AppointmentCanceled,
    AppointmentNoShow,
    AppointmentDeleted,
    EpisodeDischarged,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PatientCreated => "patient_created",
            EventKind::EpisodeCreated => "episode_created",
            EventKind::InitialEvaluationScheduled => "initial_evaluation_scheduled",
            EventKind::InitialEvaluationArrived => "initial_evaluation_arrived",
            EventKind::AppointmentScheduled => "appointment_scheduled",
            EventKind::AppointmentRescheduled => "appointment_rescheduled",
            EventKind::AppointmentArrived => "appointment_arrived",
            EventKind::AppointmentCanceled => "appointment_canceled",
            EventKind::AppointmentNoShow => "appointment_no_show",
            EventKind::AppointmentDeleted => "appointment_deleted",
            EventKind::EpisodeDischarged => "episode_discharged",
        }
    }

    /// Whether the event moves or ends an appointment, so the workflow steps
    /// about it must follow (see `workflow::dispatch::appointment_updates`).
    pub fn moves_or_ends_appointment(self) -> bool {
        matches!(
            self,
            EventKind::AppointmentRescheduled
                | EventKind::AppointmentCanceled
                | EventKind::AppointmentDeleted
        )
    }
}

/// One entry of the durable event log. Its `id` is derived from the message and
/// the subject, so writing the same event twice is a no-op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvent {
    pub id: String,
    pub org: String,
    pub kind: EventKind,
    pub patient_id: String,
    pub case_id: Option<String>,
    pub appointment_id: Option<String>,
    /// When the event was recorded.
    pub at: Timestamp,
    /// The message that caused it.
    pub message_id: String,
}

/// An instant written by an older version, or a source's own text (a Cliniko
/// `updated_at`), that may not be one: unreadable is unknown, not an error
/// that would make the whole record unreadable.
fn lenient_instant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.and_then(|t| t.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_changed_instant_that_does_not_read_is_unknown() {
        let now = "2026-11-20T17:30:00Z".parse().unwrap();
        let mut record = PatientRecord::new_patient("P1", Source::Cliniko, now);
        record.patient.demographics_at = Some(now);
        let mut json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["patient"]["demographics_at"], "2026-11-20T17:30:00Z");
        // What an older version stored for a Cliniko profile without `updated_at`.
        json["patient"]["demographics_at"] = "".into();
        let read: PatientRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(read.patient.demographics_at, None);
        assert_eq!(read.patient.created_at, now);
        // An offset reads as the same instant.
        json["patient"]["demographics_at"] = "2026-11-20T09:30:00-08:00".into();
        let read: PatientRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(read.patient.demographics_at, Some(now));
        // A creation time is never lenient: a record without one is refused.
        json["patient"]["created_at"] = "".into();
        assert!(serde_json::from_value::<PatientRecord>(json).is_err());
    }
}
