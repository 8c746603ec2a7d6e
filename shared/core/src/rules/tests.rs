//! The rules end to end on the worked example and its variations: both
//! steps of an SIU as the pipeline runs them, ADT updates and A40 merges.
use tendon_hl7::Message;

use super::{Context, Decision, episode_step, patient_step};
use crate::fixtures::{WORKED, config};
use crate::mapping::{MapContext, MappedMessage, extract};
use crate::model::{EpisodeStatus, MessageStatus, PatientRecord};
use crate::org::OrgConfig;
use crate::{AppointmentStatus, ErrorCode, FieldName};

fn fields(input: &str) -> MappedMessage {
    let cfg = config();
    let ctx: MapContext = cfg.map_context();
    extract(&Message::parse(input.as_bytes()).unwrap(), &ctx)
}

fn ctx<'a>(cfg: &'a OrgConfig, id: &'a str) -> Context<'a> {
    Context {
        config: cfg,
        message_id: id,
        now: "2026-11-20T17:30:00Z".parse().unwrap(),
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
