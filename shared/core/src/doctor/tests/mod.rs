//! The analysis on variations of the worked example: each cause named once,
//! with its count, the messages it blocks and a fix that can be pasted.
use jiff::Timestamp;
use tendon_hl7::Message;

use super::*;
use crate::fixtures::{WORKED, config};
use crate::mapping::extract;
use crate::model::{MessageStatus, Patient, PatientRecord, Source};
use crate::org::OrgConfig;
use crate::{ErrorCode, FieldName, Issue};

fn at(minute: i64) -> Timestamp {
    "2026-11-20T17:30:00Z".parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_mins(minute)
}

/// The worked example with `edits` applied, stored as received at `minute`
/// with `status` and `errors`, its facts read as ingest reads them (MSH-7
/// aside: the time it arrived).
fn stored(
    cid: &str,
    minute: i64,
    edits: &[(&str, &str)],
    status: MessageStatus,
    errors: Vec<Issue>,
) -> StoredMessage {
    let mut text = WORKED.replace("MSG00042", cid);
    for (from, to) in edits {
        text = text.replace(from, to);
    }
    let cfg = config();
    let fields = extract(
        &Message::parse(text.as_bytes()).unwrap(),
        &cfg.map_context(),
    );
    StoredMessage {
        org: "ACME01".into(),
        id: cid.into(),
        control_id: Some(cid.into()),
        message_type: fields.message_type.as_ref().map(ToString::to_string),
        status,
        errors,
        received_at: at(minute),
        body_hash: cid.into(),
        patient_id: fields.patient_id.clone(),
        steps_done: Vec::new(),
        replays: 0,
        queued: true,
        acknowledged: true,
        // Sent when it arrived: a sender whose clock is right.
        facts: Some(MessageFacts {
            sent_at: Some(at(minute)),
            ..MessageFacts::of(&fields)
        }),
        raw: Vec::new(),
    }
}

fn failed(code: ErrorCode, field: FieldName) -> Vec<Issue> {
    vec![Issue::new(code, Some(field), "why")]
}

fn ok(cid: &str, minute: i64) -> StoredMessage {
    stored(cid, minute, &[], MessageStatus::Processed, Vec::new())
}

fn state<'a>(
    config: &'a OrgConfig,
    messages: &'a [StoredMessage],
    patients: &'a [Patient],
) -> OrgState<'a> {
    OrgState {
        config,
        messages,
        patients,
        steps: &[],
        cliniko: None,
        cliniko_failures: &[],
        suppressed: &[],
        last_dispatch: Some(at(59)),
    }
}

/// The analysis of `messages` for an org with the default workflows active
/// and the patients `known`, each with an email.
fn run(messages: &[StoredMessage], known: &[&str]) -> Vec<Finding> {
    let mut cfg = config();
    cfg.workflows = crate::workflow::defaults::all();
    let patients: Vec<Patient> = known
        .iter()
        .map(|id| {
            let mut p = PatientRecord::new_patient(id, Source::Emr, at(0)).patient;
            p.email = Some("someone@example.com".into());
            p.enrolled_at = Some(at(0));
            p
        })
        .collect();
    analyse(&state(&cfg, messages, &patients), at(60))
}

/// An Initial Evaluation at location 34, and the follow-up of its case.
fn at_eastside(cid: &str, patient: &str, minute: i64, ie: bool) -> StoredMessage {
    let kind = if ie {
        "IE^Initial Eval"
    } else {
        "FU^Follow Up"
    };
    let (status, errors) = if ie {
        (
            MessageStatus::Failed,
            failed(ErrorCode::UnknownLocation, FieldName::ClinicId),
        )
    } else {
        (
            MessageStatus::Failed,
            failed(ErrorCode::NoEpisodeOfCare, FieldName::CaseId),
        )
    };
    stored(
        cid,
        minute,
        &[
            ("12^^^Salem Clinic", "34^^^Eastside Clinic"),
            ("12^^^^^^^^Salem Clinic", "34^^^^^^^^Eastside Clinic"),
            ("P555^^^ACME^MR", &format!("{patient}^^^ACME^MR")),
            ("IE^Initial Eval", kind),
        ],
        status,
        errors,
    )
}

#[test]
fn an_org_with_nothing_wrong_has_no_findings() {
    assert_eq!(run(&[ok("M1", 0), ok("M2", 1)], &["P555"]), Vec::new());
}

#[test]
fn an_unknown_location_is_named_with_its_name_and_the_follow_ups_it_blocks() {
    let msgs = [
        at_eastside("M1", "P1", 0, true),
        at_eastside("M2", "P1", 1, false),
        at_eastside("M3", "P2", 2, true),
        ok("M4", 3),
    ];
    let found = run(&msgs, &["P555"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(
        (f.code, f.subject.as_deref(), f.messages, f.blocked),
        ("unknown_location", Some("34"), 2, 1)
    );
    assert_eq!(f.names, ["Eastside Clinic"]);
    assert_eq!(f.examples, ["M1", "M3"]);
    assert_eq!((f.first_seen, f.last_seen), (at(0), at(2)));
    assert_eq!(
        f.fix,
        "tendon location add --org ACME01 --id 34 --name 'Eastside Clinic'"
    );
}

#[test]
fn an_unknown_practitioner_is_named_with_the_npi_and_a_safe_command() {
    let edits = [
        (
            "445566^Okafor^Chidi",
            "1235123^O'Brien; rm -rf $HOME^Pat\u{7}~1234567893^O'Brien^Pat^^^^^^^^^^NPI",
        ),
        ("778899^Nguyen^Minh~1234567893^Nguyen^Minh^^^^^^^^^^NPI", ""),
    ];
    let msgs = [stored(
        "M1",
        0,
        &edits,
        MessageStatus::Failed,
        failed(
            ErrorCode::UnknownPractitioner,
            FieldName::TreatingTherapistId,
        ),
    )];
    let found = run(&msgs, &[]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        (
            found[0].code,
            found[0].subject.as_deref(),
            found[0].npi.as_deref()
        ),
        ("unknown_practitioner", Some("1235123"), Some("1234567893"))
    );
    assert_eq!(
        found[0].names,
        ["Pat O'Brien; rm -rf $HOME"],
        "control characters dropped"
    );
    assert_eq!(
        found[0].fix,
        r"tendon practitioner add --org ACME01 --id 1235123 --first Pat --last 'O'\''Brien; rm -rf $HOME' --npi 1234567893"
    );
}

#[test]
fn an_unconfigured_initial_evaluation_type_is_found_from_the_patients_never_created() {
    let eval = |cid: &str, patient: &str, minute: i64| {
        stored(
            cid,
            minute,
            &[
                ("IE^Initial Eval", "EV^Eval - New Patient"),
                ("P555^^^ACME^MR", &format!("{patient}^^^ACME^MR")),
            ],
            MessageStatus::Failed,
            failed(ErrorCode::NoEpisodeOfCare, FieldName::CaseId),
        )
    };
    let follow_up = stored(
        "M3",
        2,
        &[
            ("IE^Initial Eval", "FU^Follow Up"),
            ("P555^^^ACME^MR", "P7^^^ACME^MR"),
        ],
        MessageStatus::Failed,
        failed(ErrorCode::NoEpisodeOfCare, FieldName::CaseId),
    );
    let found = run(&[eval("M1", "P7", 0), eval("M2", "P8", 1), follow_up], &[]);
    assert_eq!(
        found.len(),
        1,
        "the follow-up is blocked, not a type of its own: {found:#?}"
    );
    let f = &found[0];
    assert_eq!(
        (f.code, f.subject.as_deref(), f.messages, f.blocked),
        ("ie_type_not_configured", Some("Eval - New Patient"), 2, 1)
    );
    assert_eq!(
        f.evidence.as_deref(),
        Some(
            "it was the first appointment of 2 patient(s) who were never created; its name suggests an evaluation"
        )
    );
    assert_eq!(
        f.fix,
        "tendon ie-type add --org ACME01 --type 'Eval - New Patient'"
    );
}

#[test]
fn a_field_the_sender_leaves_empty_is_counted_with_its_share() {
    let mut msgs: Vec<_> = (0..19).map(|i| ok(&format!("M{i}"), i)).collect();
    msgs.push(stored(
        "M19",
        19,
        &[("^NET^Internet^ana.rivera@example.com", "")],
        MessageStatus::Failed,
        failed(ErrorCode::MissingField, FieldName::PatientEmail),
    ));
    let found = run(&msgs, &["P555"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        (found[0].code, found[0].subject.as_deref(), found[0].share),
        ("missing_field", Some("patient_email"), Some(0.05))
    );
    assert!(
        found[0].summary.starts_with("1 of 20 message(s)"),
        "{}",
        found[0].summary
    );
}

#[test]
fn the_sender_side_findings_come_after_the_failures() {
    let skewed = ok("M1", 0);
    let mut oru = ok("M2", 1);
    oru.status = MessageStatus::Ignored;
    oru.message_type = Some("ORU^R01".into());
    let mut reused = ok("M3", 2);
    reused.status = MessageStatus::Rejected;
    reused.errors = vec![Issue::new(ErrorCode::ControlIdReused, None, "why")];
    let mut parked = ok("M4", -2000);
    parked.status = MessageStatus::Pending;
    let mut msgs = [
        parked,
        skewed,
        oru,
        reused,
        at_eastside("M5", "P1", 3, true),
    ];
    // Every MSH-7 two hours before the message arrived.
    for m in &mut msgs {
        m.facts.as_mut().unwrap().sent_at =
            Some(m.received_at - jiff::SignedDuration::from_hours(2));
    }
    let codes: Vec<_> = run(&msgs, &[])
        .iter()
        .map(|f| (f.code, f.subject.clone()))
        .collect();
    assert_eq!(
        codes,
        [
            ("unknown_location", Some("34".to_owned())),
            ("rejected", Some("control_id_reused".to_owned())),
            ("pending_adt", None),
            ("clock_skew", None),
            ("ignored_types", None),
        ]
    );
}

/// The org's test partition is analysed as the org is: the same findings,
/// configuration fixes for the org itself, message commands with
/// `--mode test`.
#[test]
fn a_test_partition_gets_the_same_findings_and_commands_for_its_own_messages() {
    let msgs = [
        at_eastside("M1", "P1", 0, true),
        at_eastside("M2", "P1", 1, false),
        stored(
            "M3",
            2,
            &[("^NET^Internet^ana.rivera@example.com", "")],
            MessageStatus::Failed,
            failed(ErrorCode::MissingField, FieldName::PatientEmail),
        ),
    ];
    let mut live_cfg = config();
    live_cfg.workflows = crate::workflow::defaults::all();
    let test_cfg = live_cfg
        .clone()
        .for_partition(&crate::mode::partition("ACME01", crate::mode::Mode::Test));
    let live = analyse(&state(&live_cfg, &msgs, &[]), at(60));
    let test = analyse(&state(&test_cfg, &msgs, &[]), at(60));
    let codes = |f: &[Finding]| -> Vec<(&str, usize, usize)> {
        f.iter().map(|f| (f.code, f.messages, f.blocked)).collect()
    };
    assert_eq!(codes(&test), codes(&live));
    assert_eq!(
        test[0].fix, "tendon location add --org ACME01 --id 34 --name 'Eastside Clinic'",
        "the configuration is the org's, whichever data showed the gap"
    );
    assert!(
        test[1]
            .fix
            .ends_with("tendon messages replay --org ACME01 --mode test --failed"),
        "{}",
        test[1].fix
    );
    assert!(
        live[1]
            .fix
            .ends_with("tendon messages replay --org ACME01 --failed")
    );
}

/// A case whose Initial Evaluation failed for a sender's gap, then again,
/// rescheduled, for a configuration gap: the follow-ups are charged to the
/// later failure, whose fix and replay unblock them, and the plan replays
/// them after it (found by tests/go_live.rs's realistic day).
#[test]
fn follow_ups_are_charged_to_the_latest_initial_evaluation_that_failed() {
    let no_email = stored(
        "M1",
        0,
        &[("^NET^Internet^ana.rivera@example.com", "")],
        MessageStatus::Failed,
        failed(ErrorCode::MissingField, FieldName::PatientEmail),
    );
    let rescheduled = stored(
        "M2",
        1,
        &[("445566^Okafor^Chidi", "1235123^Smith^Pat")],
        MessageStatus::Failed,
        failed(
            ErrorCode::UnknownPractitioner,
            FieldName::TreatingTherapistId,
        ),
    );
    let follow_up = stored(
        "M3",
        2,
        &[("IE^Initial Eval", "FU^Follow Up")],
        MessageStatus::Failed,
        failed(ErrorCode::NoEpisodeOfCare, FieldName::CaseId),
    );
    let found = run(&[no_email, rescheduled, follow_up], &[]);
    let named: Vec<_> = found
        .iter()
        .map(|f| (f.code, f.messages, f.blocked))
        .collect();
    assert_eq!(
        named,
        [("unknown_practitioner", 1, 1), ("missing_field", 1, 0)],
        "{found:#?}"
    );
    let diagnosis = Diagnosis {
        org: "ACME01".into(),
        mode: crate::mode::Mode::Live,
        would_create: None,
        since: None,
        messages: 3,
        findings: found,
        queues: Vec::new(),
        last_dispatch_pass: None,
        cliniko: None,
    };
    let plan = plan_of(&diagnosis, at(60));
    let replayed: Vec<&str> = plan.replay.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(replayed, ["M2", "M3"]);
}

mod delivery;
