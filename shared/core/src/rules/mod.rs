//! docs/interface.md §2: the patient and episode rules, as pure decisions.
//!
//! A processing step loads the patient records a message touches, asks these
//! functions what to do, and commits the answer atomically. Nothing here does
//! I/O, so every rule is unit-tested directly.
//!
//! In order: what a rule answers ([`Decision`]) and the [`Context`] it is
//! asked in; the checks both steps make first; the patient step; the episode
//! step.
use jiff::Timestamp;

use crate::mapping::MappedMessage;
use crate::model::{
    Appointment, DomainEvent, Episode, EpisodeStatus, EventKind, MessageStatus, Patient,
    PatientRecord, Source,
};
use crate::org::OrgConfig;
use crate::ports::RecordWrite;
use crate::{AppointmentStatus, CaseStatus, ErrorCode, FieldName, Issue};

#[cfg(test)]
mod tests;

/// What one processing step decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub status: MessageStatus,
    pub errors: Vec<Issue>,
    pub writes: Vec<RecordWrite>,
    pub events: Vec<DomainEvent>,
    /// The episode step still has to run (SIU messages after the patient step).
    pub then_episode_step: bool,
}

impl Decision {
    fn outcome(status: MessageStatus) -> Decision {
        Decision {
            status,
            errors: Vec::new(),
            writes: Vec::new(),
            events: Vec::new(),
            then_episode_step: false,
        }
    }

    fn failed(code: ErrorCode, field: FieldName, message: String) -> Decision {
        Decision {
            errors: vec![Issue::new(code, Some(field), message)],
            ..Decision::outcome(MessageStatus::Failed)
        }
    }
}

/// Who and when, for the events a decision records.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub config: &'a OrgConfig,
    pub message_id: &'a str,
    pub now: Timestamp,
}

impl Context<'_> {
    fn event(
        &self,
        kind: EventKind,
        patient: &str,
        case_id: Option<&str>,
        appointment_id: Option<&str>,
    ) -> DomainEvent {
        let subject = appointment_id.or(case_id).unwrap_or(patient);
        DomainEvent {
            id: format!("{}:{}:{subject}", self.message_id, kind.as_str()),
            org: self.config.org.id.clone(),
            kind,
            patient_id: patient.to_owned(),
            case_id: case_id.map(str::to_owned),
            appointment_id: appointment_id.map(str::to_owned),
            at: self.now,
            message_id: self.message_id.to_owned(),
        }
    }
}

fn bump(record: &PatientRecord) -> RecordWrite {
    RecordWrite {
        record: PatientRecord {
            version: record.version + 1,
            ..record.clone()
        },
        expected_version: Some(record.version),
    }
}

/// True when a message with time `msg` may overwrite state last set at `stored`.
/// A message without MSH-7 is taken as the newest (arrival order).
fn is_newer(msg: Option<Timestamp>, stored: Option<Timestamp>) -> bool {
    match (msg, stored) {
        (Some(m), Some(s)) => m >= s,
        _ => true,
    }
}

/// The IE practitioner: the treating therapist, else the supervising one.
pub(crate) fn ie_practitioner(m: &MappedMessage) -> Option<(&str, FieldName)> {
    m.treating_therapist
        .id
        .as_deref()
        .map(|id| (id, FieldName::TreatingTherapistId))
        .or_else(|| {
            m.supervising_therapist
                .id
                .as_deref()
                .map(|id| (id, FieldName::SupervisingTherapistId))
        })
}

/// Why a message cannot create a patient or a case episode, if it cannot.
fn creation_blocker(ctx: &Context<'_>, m: &MappedMessage) -> Option<Decision> {
    let cfg = ctx.config;
    let clinic = m.clinic_id.as_deref().unwrap_or_default();
    if cfg.location(clinic).is_none() {
        return Some(Decision::failed(
            ErrorCode::UnknownLocation,
            FieldName::ClinicId,
            format!(
                "clinic ID {clinic:?} is not a configured location of org {}",
                cfg.org.account_id()
            ),
        ));
    }
    let kind = m.appointment_type.as_deref().unwrap_or_default();
    if !cfg.org.is_ie_type(kind) {
        return Some(Decision::failed(
            ErrorCode::NoEpisodeOfCare,
            FieldName::CaseId,
            format!(
                "case {:?} has no episode of care, and appointment type {kind:?} is not one of the org's Initial Evaluation types, so none can be created",
                m.case_id.as_deref().unwrap_or_default()
            ),
        ));
    }
    match ie_practitioner(m) {
        Some((id, _)) if cfg.practitioner(id).is_some() => None,
        Some((id, field)) => Some(Decision::failed(
            ErrorCode::UnknownPractitioner,
            field,
            format!(
                "practitioner {id:?} is not configured for org {}; practitioners are never created from messages",
                cfg.org.account_id()
            ),
        )),
        None => Some(Decision::failed(
            ErrorCode::UnknownPractitioner,
            FieldName::SupervisingTherapistId,
            "the Initial Evaluation names no treating or supervising therapist".to_owned(),
        )),
    }
}

/// Copies the message's demographics onto a patient; absent values keep what is there.
fn apply_demographics(p: &mut Patient, m: &MappedMessage, at: Option<Timestamp>) {
    let set = |slot: &mut Option<String>, v: &Option<String>| {
        if v.is_some() {
            slot.clone_from(v);
        }
    };
    if let Some(v) = &m.patient_family_name {
        p.last_name.clone_from(v);
    }
    if let Some(v) = &m.patient_given_name {
        p.first_name.clone_from(v);
    }
    set(
        &mut p.birth_date,
        &m.patient_birth_date.map(|d| d.to_string()),
    );
    if m.patient_gender.is_some() {
        p.gender = m.patient_gender;
    }
    set(&mut p.email, &m.patient_email);
    set(&mut p.mobile, &m.patient_mobile);
    if at.is_some() {
        p.demographics_at = at;
    }
}

/// The patient step (patient function): create or update the patient and its
/// Default EOC, merge on A40, or park an ADT for an unknown patient as pending.
///
/// `current` is the message's patient (after following a merge alias);
/// `prior` is MRG-1's patient for an A40.
pub fn patient_step(
    ctx: &Context<'_>,
    m: &MappedMessage,
    current: Option<&PatientRecord>,
    prior: Option<&PatientRecord>,
) -> Decision {
    let Some(kind) = m.message_type.as_ref() else {
        return Decision::outcome(MessageStatus::Ignored);
    };
    let Some(patient_id) = m.patient_id.as_deref() else {
        return Decision::failed(
            ErrorCode::MissingField,
            FieldName::PatientId,
            "patient_id is required".into(),
        );
    };
    let at = m.message_time;
    if kind.is("ADT", "A40") {
        return merge(m, patient_id, current, prior, at);
    }
    match (current, kind.is_siu()) {
        (Some(rec), siu) => {
            let mut write = bump(rec);
            if is_newer(at, rec.patient.demographics_at) {
                apply_demographics(&mut write.record.patient, m, at);
            }
            let changed = write.record.patient != rec.patient;
            Decision {
                writes: if changed { vec![write] } else { Vec::new() },
                then_episode_step: siu,
                ..Decision::outcome(if siu {
                    MessageStatus::Accepted
                } else {
                    MessageStatus::Processed
                })
            }
        }
        (None, false) => Decision::outcome(MessageStatus::Pending),
        (None, true) => {
            if let Some(blocked) = creation_blocker(ctx, m) {
                return blocked;
            }
            let mut record = PatientRecord::new_patient(patient_id, Source::Emr, ctx.now);
            apply_demographics(&mut record.patient, m, at);
            Decision {
                writes: vec![RecordWrite {
                    record,
                    expected_version: None,
                }],
                events: vec![ctx.event(EventKind::PatientCreated, patient_id, None, None)],
                then_episode_step: true,
                ..Decision::outcome(MessageStatus::Accepted)
            }
        }
    }
}

/// A40: the prior ID's episodes and appointments move to the survivor, and the
/// prior ID becomes an alias so later messages for it reach the survivor.
fn merge(
    m: &MappedMessage,
    survivor_id: &str,
    survivor: Option<&PatientRecord>,
    prior: Option<&PatientRecord>,
    at: Option<Timestamp>,
) -> Decision {
    let prior = prior.filter(|p| p.patient.id != survivor_id && p.patient.merged_into.is_none());
    // The survivor's ID already leads (through its merge alias) to the prior
    // record: this A40 would merge a record into itself, undoing the earlier
    // merge. Decided now, as a business failure: retrying cannot change it.
    if let (Some(prior), Some(survivor)) = (prior, survivor)
        && survivor.patient.id == prior.patient.id
    {
        return Decision::failed(
            ErrorCode::MergeReversed,
            FieldName::PriorPatientId,
            "MRG-1's patient already took in this message's patient (PID-3) by an earlier merge; an A40 cannot reverse a merge: unlink the two in the EMR (A37), or send the merge the other way".into(),
        );
    }
    let Some(prior) = prior else {
        // Nothing to merge: either done already, or neither side is known yet.
        return match survivor {
            Some(rec) => Decision {
                writes: updated_demographics(rec, m, at).into_iter().collect(),
                ..Decision::outcome(MessageStatus::Processed)
            },
            None => Decision::outcome(MessageStatus::Pending),
        };
    };
    let mut writes = Vec::new();
    let mut target = match survivor {
        Some(rec) => bump(rec),
        None => RecordWrite {
            record: PatientRecord {
                patient: Patient {
                    id: survivor_id.to_owned(),
                    ..prior.patient.clone()
                },
                episodes: Vec::new(),
                appointments: Vec::new(),
                version: 1,
            },
            expected_version: None,
        },
    };
    let t = &mut target.record;
    for ep in &prior.episodes {
        let taken = t.episodes.iter().any(|e| e.key() == ep.key());
        if !taken {
            t.episodes.push(ep.clone());
        }
    }
    for appt in &prior.appointments {
        if t.appointment(&appt.id).is_none() {
            t.appointments.push(appt.clone());
        }
    }
    if is_newer(at, t.patient.demographics_at) {
        apply_demographics(&mut t.patient, m, at);
    }
    let mut alias = bump(prior);
    alias.record.patient.merged_into = Some(survivor_id.to_owned());
    alias.record.episodes.clear();
    alias.record.appointments.clear();
    writes.push(target);
    writes.push(alias);
    Decision {
        writes,
        ..Decision::outcome(MessageStatus::Processed)
    }
}

fn updated_demographics(
    rec: &PatientRecord,
    m: &MappedMessage,
    at: Option<Timestamp>,
) -> Option<RecordWrite> {
    let mut write = bump(rec);
    if is_newer(at, rec.patient.demographics_at) {
        apply_demographics(&mut write.record.patient, m, at);
    }
    (write.record.patient != rec.patient).then_some(write)
}

/// The events an appointment's new status fires (docs/interface.md §6): `appointment_*`
/// for every appointment, `initial_evaluation_*` in addition for an IE.
fn status_events(status: AppointmentStatus, ie: bool) -> &'static [EventKind] {
    use EventKind::*;
    match (status, ie) {
        (AppointmentStatus::Scheduled, false) => &[AppointmentScheduled],
        (AppointmentStatus::Scheduled, true) => &[AppointmentScheduled, InitialEvaluationScheduled],
        (AppointmentStatus::Arrived, false) => &[AppointmentArrived],
        (AppointmentStatus::Arrived, true) => &[AppointmentArrived, InitialEvaluationArrived],
        (AppointmentStatus::Canceled, _) => &[AppointmentCanceled],
        (AppointmentStatus::NoShow, _) => &[AppointmentNoShow],
        (AppointmentStatus::Deleted, _) => &[AppointmentDeleted],
    }
}

/// The episode step (episode function): find or create the case's EOC, then
/// create or update the appointment under it, and discharge an inactive case.
pub fn episode_step(
    ctx: &Context<'_>,
    m: &MappedMessage,
    current: Option<&PatientRecord>,
) -> Decision {
    let (Some(rec), Some(case_id), Some(appt_id)) =
        (current, m.case_id.as_deref(), m.appointment_id.as_deref())
    else {
        return Decision::failed(
            ErrorCode::NoEpisodeOfCare,
            FieldName::CaseId,
            "the message's patient has no record, so its case has no episode of care".into(),
        );
    };
    let pid = rec.patient.id.as_str();
    let mut write = bump(rec);
    let mut events = Vec::new();
    let is_ie = m
        .appointment_type
        .as_deref()
        .is_some_and(|t| ctx.config.org.is_ie_type(t));

    if rec.case_episode(case_id).is_none() {
        if let Some(blocked) = creation_blocker(ctx, m) {
            return blocked;
        }
        write.record.episodes.push(Episode {
            name: m
                .case_description
                .clone()
                .unwrap_or_else(|| format!("Case {case_id}")),
            default: false,
            case_id: Some(case_id.to_owned()),
            supervising_practitioner_id: ie_practitioner(m).map(|(id, _)| id.to_owned()),
            status: EpisodeStatus::Active,
            created_at: ctx.now,
        });
        events.push(ctx.event(EventKind::EpisodeCreated, pid, Some(case_id), None));
    }

    let at = m.message_time;
    let old = rec.appointment(appt_id);
    if old.is_none_or(|a| is_newer(at, a.updated_by)) {
        let status = m.appointment_status.unwrap_or(AppointmentStatus::Scheduled);
        let new = Appointment {
            id: appt_id.to_owned(),
            appointment_type: m.appointment_type.clone(),
            start: m.appointment_start.as_ref().map(crate::mapping::rfc3339),
            status,
            case_id: Some(case_id.to_owned()),
            practitioner_id: ie_practitioner(m).map(|(id, _)| id.to_owned()),
            location_id: m.clinic_id.clone(),
            initial_evaluation: is_ie,
            updated_by: at.or_else(|| old.and_then(|a| a.updated_by)),
        };
        let kinds: &[EventKind] = match old {
            Some(a)
                if a.status == status
                    && a.start != new.start
                    && status == AppointmentStatus::Scheduled =>
            {
                &[EventKind::AppointmentRescheduled]
            }
            Some(a) if a.status == status => &[],
            _ => status_events(status, is_ie),
        };
        events.extend(
            kinds
                .iter()
                .map(|k| ctx.event(*k, pid, Some(case_id), Some(appt_id))),
        );
        let appts = &mut write.record.appointments;
        match appts.iter_mut().find(|a| a.id == appt_id) {
            Some(slot) => *slot = new,
            None => appts.push(new),
        }
    }

    if m.case_status == Some(CaseStatus::Inactive) {
        events.extend(discharge(ctx, &mut write.record, case_id));
    }

    let changed =
        write.record.episodes != rec.episodes || write.record.appointments != rec.appointments;
    Decision {
        writes: if changed { vec![write] } else { Vec::new() },
        events,
        ..Decision::outcome(MessageStatus::Processed)
    }
}

/// Discharges the case's episode if it is active; its event if so.
fn discharge(ctx: &Context<'_>, record: &mut PatientRecord, case_id: &str) -> Option<DomainEvent> {
    let ep = record
        .episodes
        .iter_mut()
        .find(|e| !e.default && e.case_id.as_deref() == Some(case_id))
        .filter(|e| e.status == EpisodeStatus::Active)?;
    ep.status = EpisodeStatus::Discharged;
    Some(ctx.event(
        EventKind::EpisodeDischarged,
        &record.patient.id,
        Some(case_id),
        None,
    ))
}

/// A case closed at its source (a Cliniko case): its episode is discharged,
/// as an EMR message with an inactive case status does.
pub fn close_case(ctx: &Context<'_>, current: &PatientRecord, case_id: &str) -> Decision {
    let mut write = bump(current);
    match discharge(ctx, &mut write.record, case_id) {
        Some(event) => Decision {
            writes: vec![write],
            events: vec![event],
            ..Decision::outcome(MessageStatus::Processed)
        },
        None => Decision::outcome(MessageStatus::Processed),
    }
}
