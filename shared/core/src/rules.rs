//! docs/interface.md §2: the seed's patient and episode rules, as pure decisions.
//!
//! A processing step loads the patient records a message touches, asks these
//! functions what to do, and commits the answer atomically. Nothing here does
//! I/O, so every rule is unit-tested directly.
use crate::mapping::MappedMessage;
use crate::model::{
    Appointment, DomainEvent, Episode, EpisodeStatus, EventKind, MessageStatus, Patient,
    PatientRecord, Source,
};
use crate::org::OrgConfig;
use crate::ports::RecordWrite;
use crate::{AppointmentStatus, CaseStatus, ErrorCode, FieldName, Issue};

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
    /// Now, RFC 3339 UTC.
    pub now: String,
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
            at: self.now.clone(),
            message_id: self.message_id.to_owned(),
        }
    }
}

/// MSH-7 as an RFC 3339 instant, for the stale-update checks.
pub fn message_time(m: &MappedMessage) -> Option<String> {
    m.message_time.map(|t| t.to_string())
}

/// True when a message with time `msg` may overwrite state last set at `stored`.
/// A message without MSH-7 is taken as the newest (arrival order).
fn is_newer(msg: Option<&str>, stored: Option<&str>) -> bool {
    let parse = |s: &str| s.parse::<jiff::Timestamp>().ok();
    match (msg.and_then(parse), stored.and_then(parse)) {
        (Some(m), Some(s)) => m >= s,
        _ => true,
    }
}

/// The IE practitioner: the treating therapist, else the supervising one.
fn ie_practitioner(m: &MappedMessage) -> Option<(&str, FieldName)> {
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
                cfg.org.id
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
                cfg.org.id
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
fn apply_demographics(p: &mut Patient, m: &MappedMessage, at: Option<String>) {
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

fn bump(record: &PatientRecord) -> RecordWrite {
    RecordWrite {
        record: PatientRecord {
            version: record.version + 1,
            ..record.clone()
        },
        expected_version: Some(record.version),
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
    let at = message_time(m);
    if kind.is("ADT", "A40") {
        return merge(m, patient_id, current, prior, at);
    }
    match (current, kind.is_siu()) {
        (Some(rec), siu) => {
            let mut write = bump(rec);
            if is_newer(at.as_deref(), rec.patient.demographics_at.as_deref()) {
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
            let mut patient = Patient {
                id: patient_id.to_owned(),
                source: Source::Emr,
                first_name: String::new(),
                last_name: String::new(),
                birth_date: None,
                gender: None,
                email: None,
                mobile: None,
                demographics_at: None,
                created_at: ctx.now.clone(),
                merged_into: None,
                unsubscribed: false,
                text_opt_out: false,
                inactive: None,
                sex_label: None,
            };
            apply_demographics(&mut patient, m, at);
            let default = Episode {
                name: "Default".to_owned(),
                default: true,
                case_id: None,
                supervising_practitioner_id: None,
                status: EpisodeStatus::Active,
                created_at: ctx.now.clone(),
            };
            Decision {
                writes: vec![RecordWrite {
                    record: PatientRecord {
                        patient,
                        episodes: vec![default],
                        appointments: Vec::new(),
                        version: 1,
                    },
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
    at: Option<String>,
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
    if is_newer(at.as_deref(), t.patient.demographics_at.as_deref()) {
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
    at: Option<String>,
) -> Option<RecordWrite> {
    let mut write = bump(rec);
    if is_newer(at.as_deref(), rec.patient.demographics_at.as_deref()) {
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
            created_at: ctx.now.clone(),
        });
        events.push(ctx.event(EventKind::EpisodeCreated, pid, Some(case_id), None));
    }

    let at = message_time(m);
    let old = rec.appointment(appt_id);
    if old.is_none_or(|a| is_newer(at.as_deref(), a.updated_by.as_deref())) {
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
            updated_by: at.or_else(|| old.and_then(|a| a.updated_by.clone())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{MapContext, extract};
    use crate::org::{Location, Org, Practitioner};
    use tendon_hl7::Message;

    const WORKED: &str = include_str!("../../../examples/worked-example.hl7");

    fn config() -> OrgConfig {
        OrgConfig {
            org: Org {
                id: "ACME01".into(),
                name: "Acme PT".into(),
                timezone: "America/Los_Angeles".into(),
                ie_types: vec!["Initial Eval".into()],
                field_map: Default::default(),
            },
            locations: vec![Location {
                id: "12".into(),
                name: "Salem".into(),
                timezone: None,
            }],
            practitioners: ["445566", "990011"]
                .map(|id| Practitioner {
                    id: id.into(),
                    first_name: "T".into(),
                    last_name: "P".into(),
                    npi: None,
                    email: None,
                })
                .to_vec(),
            workflows: Vec::new(),
        }
    }

    fn fields(input: &str) -> MappedMessage {
        let cfg = config();
        let ctx: MapContext = cfg.map_context();
        extract(&Message::parse(input.as_bytes()).unwrap(), &ctx)
    }

    fn ctx<'a>(cfg: &'a OrgConfig, id: &'a str) -> Context<'a> {
        Context {
            config: cfg,
            message_id: id,
            now: "2026-11-20T17:30:00Z".into(),
        }
    }

    fn kinds(d: &Decision) -> Vec<&'static str> {
        d.events.iter().map(|e| e.kind.as_str()).collect()
    }

    /// Runs both steps for an SIU, as the pipeline does; returns the final record.
    fn siu(
        cfg: &OrgConfig,
        id: &str,
        input: &str,
        rec: Option<PatientRecord>,
    ) -> (Vec<&'static str>, Decision, Option<PatientRecord>) {
        let m = fields(input);
        let c = ctx(cfg, id);
        let p = patient_step(&c, &m, rec.as_ref(), None);
        let mut events = kinds(&p);
        let rec = p.writes.first().map(|w| w.record.clone()).or(rec);
        if !p.then_episode_step {
            return (events, p, rec);
        }
        let e = episode_step(&c, &m, rec.as_ref());
        events.extend(kinds(&e));
        let rec = e.writes.first().map(|w| w.record.clone()).or(rec);
        (events, e, rec)
    }

    #[test]
    fn worked_example_creates_patient_default_and_case_episodes() {
        let cfg = config();
        let (events, d, rec) = siu(&cfg, "m1", WORKED, None);
        assert_eq!(d.status, MessageStatus::Processed);
        assert_eq!(
            events,
            [
                "patient_created",
                "episode_created",
                "appointment_scheduled",
                "initial_evaluation_scheduled"
            ]
        );
        let rec = rec.unwrap();
        assert_eq!(rec.patient.id, "P555");
        assert_eq!(rec.patient.last_name, "Rivera");
        assert_eq!(rec.episodes.len(), 2);
        assert!(rec.episodes[0].default);
        let case = rec.case_episode("C-42").unwrap();
        assert_eq!(case.name, "Right Shoulder");
        assert_eq!(
            case.supervising_practitioner_id.as_deref(),
            Some("445566"),
            "the IE's treating therapist"
        );
        let appt = rec.appointment("A9001").unwrap();
        assert_eq!(appt.status, AppointmentStatus::Scheduled);
        assert_eq!(appt.start.as_deref(), Some("2026-12-01T10:00:00-08:00"));
        assert_eq!(appt.case_id.as_deref(), Some("C-42"));
    }

    #[test]
    fn creation_needs_location_ie_type_and_known_practitioner() {
        let cfg = config();
        let code = |input: String| siu(&cfg, "m", &input, None).1.errors[0].code;
        assert_eq!(
            code(WORKED.replace("AIL|1||12^", "AIL|1||99^")),
            ErrorCode::UnknownLocation
        );
        assert_eq!(
            code(WORKED.replace("IE^Initial Eval|45", "FU^Follow Up|45")),
            ErrorCode::NoEpisodeOfCare
        );
        assert_eq!(
            code(WORKED.replace("445566^Okafor", "777777^Okafor")),
            ErrorCode::UnknownPractitioner
        );
        // No treating therapist: the supervising one is the IE practitioner.
        let d = siu(&cfg, "m", &WORKED.replace("445566^Okafor^Chidi", ""), None).1;
        assert_eq!(d.errors[0].code, ErrorCode::UnknownPractitioner);
        assert_eq!(d.errors[0].field, Some(FieldName::SupervisingTherapistId));
    }

    #[test]
    fn a_new_case_needs_an_ie_and_the_supervisor_is_never_updated() {
        let cfg = config();
        let (_, _, rec) = siu(&cfg, "m1", WORKED, None);
        // A follow-up for the same case by another therapist: appointment added, supervisor kept.
        let follow_up = WORKED
            .replace("A9001", "A9002")
            .replace("IE^Initial Eval|45", "FU^Follow Up|45")
            .replace("445566^Okafor", "990011^Other");
        let (events, d, rec) = siu(&cfg, "m2", &follow_up, rec);
        assert_eq!(d.status, MessageStatus::Processed);
        assert_eq!(events, ["appointment_scheduled"]);
        let rec = rec.unwrap();
        assert_eq!(
            rec.case_episode("C-42")
                .unwrap()
                .supervising_practitioner_id
                .as_deref(),
            Some("445566")
        );
        assert_eq!(
            rec.appointment("A9002").unwrap().practitioner_id.as_deref(),
            Some("990011")
        );
        // A new case without an IE cannot create its EOC.
        let other_case = follow_up
            .replace("A9002", "A9003")
            .replace("|C-42", "|C-43");
        let (_, d, _) = siu(&cfg, "m3", &other_case, Some(rec.clone()));
        assert_eq!(d.errors[0].code, ErrorCode::NoEpisodeOfCare);
        // With an IE it does, supervised by that IE's practitioner.
        let new_case = WORKED
            .replace("A9001", "A9004")
            .replace("|C-42", "|C-43")
            .replace("445566^Okafor", "990011^Other");
        let (events, _, rec) = siu(&cfg, "m4", &new_case, Some(rec));
        assert_eq!(
            events,
            [
                "episode_created",
                "appointment_scheduled",
                "initial_evaluation_scheduled"
            ]
        );
        assert_eq!(
            rec.unwrap()
                .case_episode("C-43")
                .unwrap()
                .supervising_practitioner_id
                .as_deref(),
            Some("990011")
        );
    }

    #[test]
    fn appointment_lifecycle_events_and_stale_updates() {
        let cfg = config();
        let (_, _, rec) = siu(&cfg, "m1", WORKED, None);
        let later = |input: &str, t: &str| input.replace("20261120093000-0800", t);
        let arrived = later(
            &WORKED
                .replace("SIU^S12^SIU_S12", "SIU^S14")
                .replace("||Booked", "||Arrived"),
            "20261201100500-0800",
        );
        let (events, _, rec) = siu(&cfg, "m2", &arrived, rec);
        assert_eq!(
            events,
            ["appointment_arrived", "initial_evaluation_arrived"]
        );
        // An older S15 arriving late does not undo the arrival.
        let stale_cancel = later(
            &WORKED.replace("SIU^S12^SIU_S12", "SIU^S15"),
            "20261125000000-0800",
        );
        let (events, d, rec) = siu(&cfg, "m3", &stale_cancel, rec);
        assert_eq!((events.len(), d.status), (0, MessageStatus::Processed));
        assert_eq!(
            rec.as_ref().unwrap().appointment("A9001").unwrap().status,
            AppointmentStatus::Arrived
        );
        let reschedule = later(
            &WORKED
                .replace("A9001", "A9005")
                .replace("IE^Initial Eval|45", "FU^Follow Up|45"),
            "20261202000000-0800",
        );
        let (_, _, rec) = siu(&cfg, "m4", &reschedule, rec);
        let moved = later(
            &reschedule.replace("^^45^202612011000", "^^45^202612031000"),
            "20261202010000-0800",
        );
        let (events, _, rec) = siu(&cfg, "m5", &moved, rec);
        assert_eq!(events, ["appointment_rescheduled"]);
        for (trigger, kind) in [
            ("S26", "appointment_no_show"),
            ("S17", "appointment_deleted"),
        ] {
            let m = later(
                &reschedule.replace("SIU^S12^SIU_S12", &format!("SIU^{trigger}")),
                "20261204000000-0800",
            );
            assert_eq!(siu(&cfg, "m6", &m, rec.clone()).0, [kind]);
        }
    }

    #[test]
    fn inactive_case_discharges_the_episode_once() {
        let cfg = config();
        let (_, _, rec) = siu(&cfg, "m1", WORKED, None);
        let inactive = WORKED
            .replace("|C-42", &format!("|C-42{}Inactive", "|".repeat(22)))
            .replace("20261120093000", "20261121093000");
        let (events, _, rec) = siu(&cfg, "m2", &inactive, rec);
        assert_eq!(events, ["episode_discharged"]);
        assert_eq!(
            rec.as_ref().unwrap().case_episode("C-42").unwrap().status,
            EpisodeStatus::Discharged
        );
        assert!(siu(&cfg, "m3", &inactive, rec).0.is_empty());
    }

    const A08: &str = "MSH|^~\\&|EMR|ACME01|||20261121090000||ADT^A08|A1|P|2.5.1\rPID|1||P555^^^^MR||Rivera-Lopez^Ana||19850312|F|||||^NET^Internet^ana.new@example.com\r";

    #[test]
    fn adt_updates_known_patients_and_parks_unknown_ones() {
        let cfg = config();
        let m = fields(A08);
        let c = ctx(&cfg, "a1");
        assert_eq!(
            patient_step(&c, &m, None, None).status,
            MessageStatus::Pending
        );
        let (_, _, rec) = siu(&cfg, "m1", WORKED, None);
        let d = patient_step(&c, &m, rec.as_ref(), None);
        assert_eq!(d.status, MessageStatus::Processed);
        let updated = &d.writes[0].record.patient;
        assert_eq!(updated.last_name, "Rivera-Lopez");
        assert_eq!(updated.email.as_deref(), Some("ana.new@example.com"));
        // An older A08 does not overwrite newer demographics.
        let older = fields(
            &A08.replace("20261121090000", "20261101090000")
                .replace("Rivera-Lopez", "Old"),
        );
        let d2 = patient_step(&c, &older, Some(&d.writes[0].record), None);
        assert!(d2.writes.is_empty());
    }

    #[test]
    fn a40_moves_episodes_and_appointments_to_the_survivor() {
        let cfg = config();
        let (_, _, prior) = siu(&cfg, "m1", WORKED, None);
        let a40 = "MSH|^~\\&|EMR|ACME01|||20261122090000||ADT^A40|M1|P|2.5.1\rPID|1||P900^^^^MR||Rivera^Ana\rMRG|P555\r";
        let m = fields(a40);
        let d = patient_step(&ctx(&cfg, "a40"), &m, None, prior.as_ref());
        assert_eq!(d.status, MessageStatus::Processed);
        let survivor = &d.writes[0];
        assert_eq!(
            (
                survivor.record.patient.id.as_str(),
                survivor.expected_version
            ),
            ("P900", None)
        );
        assert!(survivor.record.case_episode("C-42").is_some());
        assert!(survivor.record.appointment("A9001").is_some());
        let alias = &d.writes[1].record;
        assert_eq!(alias.patient.merged_into.as_deref(), Some("P900"));
        assert!(alias.episodes.is_empty() && alias.appointments.is_empty());
        // Applying it again (the alias is already merged) changes nothing more.
        let again = patient_step(&ctx(&cfg, "a40"), &m, Some(&survivor.record), Some(alias));
        assert!(again.writes.is_empty());
    }

    #[test]
    fn a_reverse_a40_fails_at_once_as_merge_reversed() {
        let cfg = config();
        let (_, _, prior) = siu(&cfg, "m1", WORKED, None);
        let a40 = "MSH|^~\\&|EMR|ACME01|||20261122090000||ADT^A40|M1|P|2.5.1\rPID|1||P900^^^^MR||Rivera^Ana\rMRG|P555\r";
        let d = patient_step(&ctx(&cfg, "a40"), &fields(a40), None, prior.as_ref());
        let survivor = d.writes[0].record.clone();
        // P555 now leads to P900. Merging P900 into P555: the message's patient
        // (P555, followed to P900) is the prior record itself.
        let reverse = "MSH|^~\\&|EMR|ACME01|||20261122091000||ADT^A40|M2|P|2.5.1\rPID|1||P555^^^^MR||Rivera^Ana\rMRG|P900\r";
        let d2 = patient_step(
            &ctx(&cfg, "a40-reverse"),
            &fields(reverse),
            Some(&survivor),
            Some(&survivor),
        );
        assert_eq!(d2.status, MessageStatus::Failed);
        assert!(d2.writes.is_empty(), "{:?}", d2.writes);
        assert_eq!(
            (d2.errors[0].code, d2.errors[0].field),
            (ErrorCode::MergeReversed, Some(FieldName::PriorPatientId))
        );
    }
}
