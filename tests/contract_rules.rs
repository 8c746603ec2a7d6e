//! Every docs/interface.md §2 rule and every §7 error code, end to end on both backends:
//! the real `tendon serve` over HTTP and the operator CLI with `--json`.
//!
//! Each scenario is a `fn(&Tendon, org)` with an org of its own, so all of them
//! share one server per backend and run in parallel. A scenario asserts the
//! final state: the ACK (MSA-1, MSA-2 and the ERR codes and fields),
//! `messages list` (status and `errors[].code:field` per message) and
//! `patient show` (demographics, episodes and appointments).
//!
//! `TENDON_SCENARIO=substring` runs only the matching scenarios, and
//! `TENDON_SCENARIO_THREADS=N` runs N at a time (default 4).
mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::{
    Backend, Clinic, Hl7, Tendon, appointment, appointments, case_episode, default_episode,
    demographics, episodes, outcome_of,
};
use serde_json::json;

/// The worked example's appointment start.
const START: &str = "2026-12-01T10:00:00-08:00";
const IE: &str = "Initial Eval";
const FU: &str = "Follow Up";

type Scenario = fn(&Tendon, &str);

/// `(name, scenario)` for each scenario function.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), $name as Scenario)),*]
    };
}

/// Every scenario, by name.
const SCENARIOS: &[(&str, Scenario)] = scenarios![
    // §2: creating a patient.
    worked_example_creates_default_and_case_episodes,
    without_a_treating_therapist_the_supervising_one_is_the_ie_practitioner,
    siu_missing_each_required_field_is_missing_field,
    adt_missing_required_fields_is_missing_field,
    unknown_clinic_is_unknown_location,
    unknown_ie_practitioner_is_unknown_practitioner,
    non_ie_type_for_an_unknown_patient_is_no_episode_of_care,
    // §2: episodes and appointments of a known patient.
    known_patient_new_case_without_ie_is_no_episode_of_care,
    new_case_ie_creates_a_case_episode_whose_supervisor_never_changes,
    appointment_lifecycle_on_a_known_case,
    sch25_statuses_map_to_appointment_statuses,
    blocked_slots_are_acknowledged_and_ignored,
    inactive_case_status_discharges_the_case_episode,
    // §2: ADT.
    adt_updates_demographics_of_a_known_patient,
    an_unreadable_optional_value_is_left_out_with_a_warning,
    adt_for_an_unknown_patient_is_pending,
    pending_adt_is_reapplied_when_an_siu_creates_the_patient,
    a40_merge_moves_everything_to_an_existing_survivor,
    a40_merge_into_a_new_id,
    a_reverse_a40_fails_at_once_and_blocks_nothing,
    // Stale updates and replay.
    stale_updates_do_not_overwrite_newer_state,
    replay_fixes_failed_messages_once_and_only_once,
    // §7 and §4 at ingest.
    invalid_hl7_is_rejected,
    two_messages_in_one_body_are_rejected_as_a_whole,
    account_mismatch_is_rejected,
    control_id_reused_is_rejected_and_the_original_is_unaffected,
    unsupported_message_types_are_acknowledged_and_ignored,
    exact_duplicate_is_acknowledged_again_without_effect,
    bad_keys_and_oversized_bodies_store_nothing,
];

/// Scenarios running at once (each is mostly waiting on the binary and the
/// workers); `TENDON_SCENARIO_THREADS` overrides it.
const PARALLEL: usize = 4;

fn threads() -> usize {
    std::env::var("TENDON_SCENARIO_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(PARALLEL)
}

fn run_all(backend: Backend) {
    let filter = std::env::var("TENDON_SCENARIO").unwrap_or_default();
    let chosen: Vec<(usize, &(&str, Scenario))> = SCENARIOS
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| name.contains(filter.as_str()))
        .collect();
    let started = Instant::now();
    let mut t = Tendon::new(backend, "contract");
    t.serve();
    eprintln!("{backend:?}: server up in {:.1?}", started.elapsed());
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for worker in 0..threads() {
            let (t, chosen, next, failures) = (&t, &chosen, &next, &failures);
            std::thread::Builder::new()
                .name(format!("{backend:?}-{worker}"))
                .spawn_scoped(s, move || {
                    while let Some((i, (name, scenario))) =
                        chosen.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        let org = format!("ORG{i:02}");
                        let began = Instant::now();
                        let result = catch_unwind(AssertUnwindSafe(|| scenario(t, &org)));
                        let took = began.elapsed();
                        match result {
                            Ok(()) => eprintln!("{backend:?} {name} ({org}): ok in {took:.1?}"),
                            Err(panic) => {
                                let why = panic
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| {
                                        panic.downcast_ref::<&str>().map(|s| (*s).to_owned())
                                    })
                                    .unwrap_or_default();
                                eprintln!("{backend:?} {name} ({org}): FAILED in {took:.1?}");
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("{name} ({org}): {why}"));
                            }
                        }
                    }
                })
                .expect("a scenario thread");
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        let log = t.server_log();
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        eprintln!(
            "{backend:?}: the server logged {} warnings and errors; the last ones:\n{}",
            problems.len(),
            problems[problems.len().saturating_sub(40)..].join("\n")
        );
    }
    eprintln!(
        "{backend:?}: {} scenarios, {} failed, in {:.1?}",
        chosen.len(),
        failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed on the {backend:?} backend:\n\n{}",
        failures.len(),
        chosen.len(),
        failures.join("\n\n")
    );
}

#[test]
fn contract_rules_on_the_local_backend() {
    run_all(Backend::Local);
}

#[test]
fn contract_rules_on_the_aws_backend() {
    run_all(Backend::Aws);
}

// ---------------------------------------------------------------------------
// §2: creating a patient.

/// All four conditions hold: the patient gets exactly a Default EOC and a Case
/// EOC named by the case description, supervised by the IE's treating therapist.
fn worked_example_creates_default_and_case_episodes(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    assert_eq!(c.send(&c.siu("M1")).summary(), "AA M1");
    c.expect_messages(&["M1 processed"]);
    let p = c.patient("P555");
    assert_eq!(p["id"], "P555");
    assert_eq!(p["source"], "emr");
    assert_eq!(
        demographics(&p),
        json!({
            "first_name": "Ana", "last_name": "Rivera", "birth_date": "1985-03-12",
            "gender": "female", "email": "ana.rivera@example.com",
        })
    );
    assert_eq!(episodes(&p), worked_episodes("445566", "active"));
    assert_eq!(appointments(&p), [worked_ie("445566")]);
    assert_eq!(c.patients().len(), 1);
}

/// No AIP: the supervising therapist (PV1-7) is the IE practitioner, so the
/// case's supervisor and the appointment's practitioner.
fn without_a_treating_therapist_the_supervising_one_is_the_ie_practitioner(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let msg = c.siu("M1").without("AIP");
    assert_eq!(msg.get("PV1-7.1"), "778899");
    assert_eq!(c.send(&msg).summary(), "AA M1");
    c.expect_messages(&["M1 processed"]);
    let p = c.patient("P555");
    assert_eq!(episodes(&p), worked_episodes("778899", "active"));
    assert_eq!(appointments(&p), [worked_ie("778899")]);
}

/// Each of the 13 SIU fields, and both therapist IDs, removed in turn (every
/// place §3 reads it from): `AE` naming that field, stored `failed`, nothing created.
fn siu_missing_each_required_field_is_missing_field(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    type Strip = fn(Hl7) -> Hl7;
    let cases: [(&str, Strip); 14] = [
        ("patient_id", |m| m.set("PID-3", "")),
        ("patient_family_name", |m| m.set("PID-5.1", "")),
        ("patient_given_name", |m| m.set("PID-5.2", "")),
        ("patient_birth_date", |m| m.set("PID-7", "")),
        ("patient_gender", |m| m.set("PID-8", "")),
        ("patient_email", |m| {
            m.set("PID-13", "^PRN^PH^^1^503^5550100~^PRN^CP^^1^503^5550101")
        }),
        ("appointment_id", |m| m.set("SCH-1", "").set("SCH-2", "")),
        ("clinic_id", |m| m.set("AIL-3", "").set("PV1-3", "")),
        ("appointment_type", |m| m.set("SCH-8", "").set("AIS-3", "")),
        ("appointment_start", |m| {
            m.set("SCH-11", "")
                .set("AIS-4", "")
                .set("AIL-6", "")
                .set("AIP-6", "")
        }),
        ("appointment_status", |m| m.set("SCH-25", "")),
        ("case_id", |m| m.set("PV1-19", "")),
        ("case_description", |m| m.set("PV2-3", "")),
        ("supervising_therapist_id", |m| {
            m.set("AIP-3", "").set("PV1-7", "")
        }),
    ];
    let mut expected = Vec::new();
    for (i, (field, strip)) in cases.iter().enumerate() {
        let cid = format!("MF{i:02}");
        let ack = c.send(&strip(c.siu(&cid)));
        assert_eq!(
            ack.summary(),
            format!("AE {cid} missing_field:{field}"),
            "without {field}"
        );
        expected.push(format!("{cid} failed missing_field:{field}"));
    }
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    c.expect_messages(&expected);
    assert!(c.patients().is_empty(), "nothing is created");
    c.no_patient("P555");
}

/// ADT requires patient_id, family and given name; A40 also MRG-1.
fn adt_missing_required_fields_is_missing_field(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let cases = [
        ("A1", "patient_id", c.adt("A08", "A1").set("PID-3", "")),
        (
            "A2",
            "patient_family_name",
            c.adt("A08", "A2").set("PID-5.1", ""),
        ),
        (
            "A3",
            "patient_given_name",
            c.adt("A31", "A3").set("PID-5.2", ""),
        ),
        // MRG-1 is read into `prior_patient_id` (as `hl7 inspect` names it).
        ("A4", "prior_patient_id", c.adt("A40", "A4")),
        ("A5", "prior_patient_id", c.adt("A40", "A5").with("MRG|")),
    ];
    let (report, errors) = c.inspect(&cases[3].2);
    assert_eq!(report["type"], "ADT^A40");
    assert_eq!(errors, ["missing_field:prior_patient_id"], "{report:#}");
    for (cid, field, msg) in &cases {
        assert_eq!(
            c.send(msg).summary(),
            format!("AE {cid} missing_field:{field}")
        );
    }
    c.expect_messages(&[
        "A1 failed missing_field:patient_id",
        "A2 failed missing_field:patient_family_name",
        "A3 failed missing_field:patient_given_name",
        "A4 failed missing_field:prior_patient_id",
        "A5 failed missing_field:prior_patient_id",
    ]);
    assert!(c.patients().is_empty());
}

/// A clinic ID that is not a configured location: accepted, then `failed`
/// with `unknown_location`; no patient.
fn unknown_clinic_is_unknown_location(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    assert_eq!(c.send(&c.siu("M1").clinic("99")).summary(), "AA M1");
    c.expect_messages(&["M1 failed unknown_location:clinic_id"]);
    assert!(c.patients().is_empty());
    c.no_patient("P555");
}

/// The IE practitioner must be configured: the treating therapist, or the
/// supervising one when there is no treating therapist.
fn unknown_ie_practitioner_is_unknown_practitioner(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    assert_eq!(c.send(&c.siu("M1").therapist("424242")).summary(), "AA M1");
    let no_aip = c
        .siu("M2")
        .patient("P556")
        .appointment("A9002")
        .without("AIP")
        .set("PV1-7", "424243^Unknown^Someone");
    assert_eq!(c.send(&no_aip).summary(), "AA M2");
    c.expect_messages(&[
        "M1 failed unknown_practitioner:treating_therapist_id",
        "M2 failed unknown_practitioner:supervising_therapist_id",
    ]);
    assert!(c.patients().is_empty());
    c.no_patient("P555");
    c.no_patient("P556");
}

/// Condition 3: an unknown patient's non-IE appointment cannot create anything.
fn non_ie_type_for_an_unknown_patient_is_no_episode_of_care(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    assert_eq!(c.send(&c.siu("M1").follow_up()).summary(), "AA M1");
    c.expect_messages(&["M1 failed no_episode_of_care:case_id"]);
    assert!(c.patients().is_empty());
    c.no_patient("P555");
}

// ---------------------------------------------------------------------------
// §2: episodes and appointments of a known patient.

/// The clinic of `org` with the worked example (control ID M0) processed:
/// P555 with Default and C-42 (supervisor 445566) and IE A9001.
fn clinic_with_known_patient<'t>(t: &'t Tendon, org: &str) -> Clinic<'t> {
    let c = t.clinic(org);
    assert_eq!(c.send(&c.siu("M0")).summary(), "AA M0");
    let msgs = c.settle();
    assert_eq!(outcome_of(&msgs, "M0"), "M0 processed");
    c
}

/// `patient show ID`: the known patient under `last_name`, with the worked
/// example's episodes.
fn expect_known_patient(c: &Clinic<'_>, id: &str, last_name: &str) -> serde_json::Value {
    let p = c.patient(id);
    assert_eq!(p["last_name"], last_name);
    assert_eq!(episodes(&p), known_episodes());
    p
}

/// The worked example's IE appointment A9001, as `patient show` gives it,
/// with `practitioner` treating.
fn worked_ie(practitioner: &str) -> serde_json::Value {
    appointment("A9001", IE, START, "scheduled", "C-42", practitioner)
}

fn known_episodes() -> [serde_json::Value; 2] {
    worked_episodes("445566", "active")
}

/// The worked example's Default and "Right Shoulder" (C-42) episodes.
fn worked_episodes(supervisor: &str, status: &str) -> [serde_json::Value; 2] {
    [
        default_episode(),
        case_episode("Right Shoulder", "C-42", supervisor, status),
    ]
}

/// A new case ID with a non-IE appointment: `no_episode_of_care`, and the
/// patient is unchanged.
fn known_patient_new_case_without_ie_is_no_episode_of_care(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let msg = c
        .siu("M1")
        .at(1)
        .appointment("A9002")
        .follow_up()
        .case("C-43", "Left Knee");
    assert_eq!(c.send(&msg).summary(), "AA M1");
    c.expect_messages(&["M0 processed", "M1 failed no_episode_of_care:case_id"]);
    let p = c.patient("P555");
    assert_eq!(episodes(&p), known_episodes());
    assert_eq!(appointments(&p), [worked_ie("445566")]);
}

/// A new case ID with an IE creates a Case EOC supervised by that IE's
/// practitioner; later IEs on a case with another therapist do not change it.
fn new_case_ie_creates_a_case_episode_whose_supervisor_never_changes(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let new_case = c
        .siu("M1")
        .at(1)
        .appointment("A2")
        .case("C-43", "Left Knee")
        .therapist("990011");
    assert_eq!(c.send(&new_case).summary(), "AA M1");
    c.expect_messages(&["M0 processed", "M1 processed"]);
    let another_ie = c
        .siu("M2")
        .at(2)
        .appointment("A3")
        .case("C-43", "Left Knee")
        .therapist("445566");
    let ie_on_first_case = c.siu("M3").at(3).appointment("A4").therapist("990011");
    c.send_accepted([&another_ie, &ie_on_first_case]);
    c.expect_messages(&[
        "M0 processed",
        "M1 processed",
        "M2 processed",
        "M3 processed",
    ]);
    let p = c.patient("P555");
    assert_eq!(
        episodes(&p),
        [
            default_episode(),
            case_episode("Right Shoulder", "C-42", "445566", "active"),
            case_episode("Left Knee", "C-43", "990011", "active"),
        ]
    );
    assert_eq!(
        appointments(&p),
        [
            appointment("A2", IE, START, "scheduled", "C-43", "990011"),
            appointment("A3", IE, START, "scheduled", "C-43", "445566"),
            appointment("A4", IE, START, "scheduled", "C-42", "990011"),
            appointment("A9001", IE, START, "scheduled", "C-42", "445566"),
        ]
    );
    assert_eq!(c.patients().len(), 1);
}

/// On a known case: a non-IE follow-up is created under the case's EOC; S13
/// moves it, S14 modifies it; S15, S17 and S26 win over SCH-25 `Booked`.
fn appointment_lifecycle_on_a_known_case(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let follow_up = |cid: &str, id: &str, minute: u32| {
        c.siu(cid)
            .at(minute)
            .appointment(id)
            .follow_up()
            .therapist("990011")
            .start("202612081000")
    };
    let sent = [
        follow_up("M1", "A2", 1),
        follow_up("M2", "A2", 2)
            .trigger("S13")
            .start("202612101030"),
        follow_up("M3", "A2", 3)
            .trigger("S14")
            .start("202612101030")
            .therapist("445566"),
        follow_up("M4", "A3", 1),
        follow_up("M5", "A3", 2).trigger("S15"),
        follow_up("M6", "A4", 1),
        follow_up("M7", "A4", 2).trigger("S17"),
        follow_up("M8", "A5", 1),
        follow_up("M9", "A5", 2).trigger("S26"),
        c.siu("M10").at(4).trigger("S14").status("Arrived"),
    ];
    c.send_accepted(&sent);
    let mut expected = vec!["M0 processed".to_owned()];
    expected.extend((1..=10).map(|i| format!("M{i} processed")));
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    c.expect_messages(&expected);
    let p = c.patient("P555");
    assert_eq!(
        episodes(&p),
        known_episodes(),
        "the supervisor is unchanged"
    );
    let dec8 = "2026-12-08T10:00:00-08:00";
    assert_eq!(
        appointments(&p),
        [
            appointment(
                "A2",
                FU,
                "2026-12-10T10:30:00-08:00",
                "scheduled",
                "C-42",
                "445566"
            ),
            appointment("A3", FU, dec8, "canceled", "C-42", "990011"),
            appointment("A4", FU, dec8, "deleted", "C-42", "990011"),
            appointment("A5", FU, dec8, "no_show", "C-42", "990011"),
            appointment("A9001", IE, START, "arrived", "C-42", "445566"),
        ]
    );
}

/// SCH-25.1 gives the status of an S12/S14 (§3).
fn sch25_statuses_map_to_appointment_statuses(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let table = [
        ("Booked", "scheduled"),
        ("Pending", "scheduled"),
        ("Waitlist", "scheduled"),
        ("Overbook", "scheduled"),
        ("Complete", "arrived"),
        ("Arrived", "arrived"),
        ("Started", "arrived"),
        ("Cancelled", "canceled"),
        ("Dc", "canceled"),
        ("Noshow", "no_show"),
        ("Deleted", "deleted"),
    ];
    let mut expected_msgs = vec!["M0 processed".to_owned()];
    // An existing appointment changes status by SCH-25 too (S9 below).
    let mut expected_appts = vec![appointment("A9001", IE, START, "arrived", "C-42", "445566")];
    for (i, (sch25, status)) in table.iter().enumerate() {
        let (cid, id) = (format!("S{i}"), format!("B{i}"));
        let mut msg = c.siu(&cid).at(1).appointment(&id).follow_up().status(sch25);
        if i % 2 == 1 {
            msg = msg.trigger("S14");
        }
        assert_eq!(
            c.send(&msg).summary(),
            format!("AA {cid}"),
            "SCH-25 {sch25}"
        );
        expected_msgs.push(format!("{cid} processed"));
        expected_appts.push(appointment(&id, FU, START, status, "C-42", "445566"));
    }
    let complete = c.siu("S99").at(2).trigger("S14").status("Complete");
    assert_eq!(c.send(&complete).summary(), "AA S99");
    expected_msgs.push("S99 processed".to_owned());
    let expected_msgs: Vec<&str> = expected_msgs.iter().map(String::as_str).collect();
    c.expect_messages(&expected_msgs);
    // `patient show` lists appointments by ID (B10 before B2).
    expected_appts.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert_eq!(appointments(&c.patient("P555")), expected_appts);
}

/// SCH-25 `Blocked` (table 0278) is a blocked slot, not a visit: `AA` without
/// ERR, stored `ignored`, whatever the trigger, and no appointment appears.
fn blocked_slots_are_acknowledged_and_ignored(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let booked = c
        .siu("K1")
        .at(1)
        .appointment("BL1")
        .follow_up()
        .status("Blocked");
    assert_eq!(c.send(&booked).summary(), "AA K1");
    // A blocked slot with no patient at all is ignored too, not failed.
    let bare = c
        .siu("K2")
        .at(2)
        .appointment("BL2")
        .trigger("S15")
        .status("BLOCKED")
        .set("PID-3", "")
        .set("PID-5", "");
    assert_eq!(c.send(&bare).summary(), "AA K2");
    c.expect_messages(&[
        "M0 processed",
        "K1 ignored blocked_slot:appointment_status",
        "K2 ignored blocked_slot:appointment_status",
    ]);
    assert_eq!(appointments(&c.patient("P555")), [worked_ie("445566")]);
}

/// PV1-41 `Inactive` discharges the case's EOC; the Default stays active.
fn inactive_case_status_discharges_the_case_episode(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let inactive = c.siu("M1").at(1).trigger("S14").set("PV1-41", "Inactive");
    assert_eq!(c.send(&inactive).summary(), "AA M1");
    c.expect_messages(&["M0 processed", "M1 processed"]);
    let p = c.patient("P555");
    assert_eq!(episodes(&p), worked_episodes("445566", "discharged"));
    assert_eq!(appointments(&p), [worked_ie("445566")]);
}

// ---------------------------------------------------------------------------
// §2: ADT.

/// A08, A31, A01, A04 and A28 each update one demographic of a known patient;
/// what a message does not carry keeps its stored value.
fn adt_updates_demographics_of_a_known_patient(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let sent = [
        c.adt("A08", "D1").at(1).name("Rivera-Lopez", "Ana"),
        c.adt("A31", "D2").at(2).name("Rivera-Lopez", "Anna"),
        c.adt("A01", "D3")
            .at(3)
            .name("Rivera-Lopez", "Anna")
            .set("PID-7", "19850313"),
        c.adt("A04", "D4")
            .at(4)
            .name("Rivera-Lopez", "Anna")
            .set("PID-8", "O"),
        c.adt("A28", "D5")
            .at(5)
            .name("Rivera-Lopez", "Anna")
            .set("PID-13", "^NET^Internet^anna@example.com"),
    ];
    c.send_accepted(&sent);
    c.expect_messages(&[
        "M0 processed",
        "D1 processed",
        "D2 processed",
        "D3 processed",
        "D4 processed",
        "D5 processed",
    ]);
    let p = c.patient("P555");
    assert_eq!(
        demographics(&p),
        json!({
            "first_name": "Anna", "last_name": "Rivera-Lopez", "birth_date": "1985-03-13",
            "gender": "other", "email": "anna@example.com",
        })
    );
    assert_eq!(episodes(&p), known_episodes(), "ADT leaves episodes alone");
    assert_eq!(appointments(&p).len(), 1);
    assert_eq!(c.patients().len(), 1);
}

/// An unreadable birth date (no 31 November) in an ADT is left out, as it is
/// in an SIU, and reported: `AA` with a warning ERR, stored `processed` with
/// `invalid_value`, the rest of the update applied and the stored date kept.
fn an_unreadable_optional_value_is_left_out_with_a_warning(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let a08 = c
        .adt("A08", "D1")
        .at(1)
        .name("Rivera-Lopez", "Ana")
        .set("PID-7", "19791131");
    assert_eq!(
        c.send(&a08).summary(),
        "AA D1 invalid_value:patient_birth_date"
    );
    c.expect_messages(&[
        "M0 processed",
        "D1 processed invalid_value:patient_birth_date",
    ]);
    let p = c.patient("P555");
    assert_eq!(p["last_name"], "Rivera-Lopez");
    assert_eq!(p["birth_date"], "1985-03-12");
}

/// An ADT for an unknown patient is stored `pending`, not `failed`, and creates nothing.
fn adt_for_an_unknown_patient_is_pending(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let msg = c.adt("A08", "D1").patient("P777").name("Doe", "Jo");
    assert_eq!(c.send(&msg).summary(), "AA D1");
    let a40 = c.adt("A40", "D2").patient("P778").with("MRG|P779");
    assert_eq!(c.send(&a40).summary(), "AA D2");
    c.expect_messages(&["D1 pending", "D2 pending"]);
    let failed = c.ok(&["messages", "list", "--org", org, "--status", "failed"]);
    assert_eq!(failed, json!([]), "a pending ADT is not a failure");
    let pending = c.ok(&["messages", "list", "--org", org, "--status", "pending"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(2));
    assert!(c.patients().is_empty());
    c.no_patient("P777");
}

/// Pending ADTs are re-applied once an SIU creates their patient: the newer
/// one's demographics apply, the one older (by MSH-7) than the SIU does not.
fn pending_adt_is_reapplied_when_an_siu_creates_the_patient(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let newer = c
        .adt("A08", "D1")
        .at(20)
        .name("Rivera-Lopez", "Ana")
        .set("PID-13", "^NET^Internet^ana.new@example.com");
    let older = c
        .adt("A31", "D2")
        .at(5)
        .name("Old", "Olga")
        .set("PID-7", "19700101");
    c.send_accepted([&newer, &older]);
    c.expect_messages(&["D1 pending", "D2 pending"]);
    assert_eq!(c.send(&c.siu("M1").at(10)).summary(), "AA M1");
    let msgs = t.wait_until(org, "every message processed", |msgs| {
        msgs.len() == 3 && msgs.iter().all(|m| m["status"] == "processed")
    });
    common::assert_outcomes(&msgs, &["D1 processed", "D2 processed", "M1 processed"]);
    let p = c.patient("P555");
    assert_eq!(
        demographics(&p),
        json!({
            "first_name": "Ana", "last_name": "Rivera-Lopez", "birth_date": "1985-03-12",
            "gender": "female", "email": "ana.new@example.com",
        })
    );
    assert_eq!(episodes(&p), known_episodes());
}

/// A40 with a known survivor: the prior ID's episodes and appointments move
/// to the survivor, and later messages for the prior ID reach the survivor.
fn a40_merge_moves_everything_to_an_existing_survivor(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let survivor = c
        .siu("M1")
        .at(1)
        .patient("P900")
        .appointment("B1")
        .case("C-50", "Neck")
        .therapist("990011");
    assert_eq!(c.send(&survivor).summary(), "AA M1");
    c.expect_messages(&["M0 processed", "M1 processed"]);
    let a40 = c.adt("A40", "D1").at(2).patient("P900").with("MRG|P555");
    assert_eq!(c.send(&a40).summary(), "AA D1");
    c.expect_messages(&["M0 processed", "M1 processed", "D1 processed"]);
    // Later messages for the prior ID: an S14 for its appointment, and a new
    // follow-up on its case.
    let arrived = c.siu("M2").at(3).trigger("S14").status("Arrived");
    let follow_up = c
        .siu("M3")
        .at(4)
        .appointment("A3")
        .follow_up()
        .therapist("990011");
    c.send_accepted([&arrived, &follow_up]);
    c.expect_messages(&[
        "M0 processed",
        "M1 processed",
        "D1 processed",
        "M2 processed",
        "M3 processed",
    ]);
    let p = c.patient("P900");
    assert_eq!(p["id"], "P900");
    assert_eq!(
        episodes(&p),
        [
            default_episode(),
            case_episode("Right Shoulder", "C-42", "445566", "active"),
            case_episode("Neck", "C-50", "990011", "active"),
        ]
    );
    assert_eq!(
        appointments(&p),
        [
            appointment("A3", FU, START, "scheduled", "C-42", "990011"),
            appointment("A9001", IE, START, "arrived", "C-42", "445566"),
            appointment("B1", IE, START, "scheduled", "C-50", "990011"),
        ]
    );
}

/// A40 whose survivor ID is new: the survivor takes over the prior patient.
fn a40_merge_into_a_new_id(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let a40 = c.adt("A40", "D1").at(1).patient("P901").with("MRG|P555");
    assert_eq!(c.send(&a40).summary(), "AA D1");
    c.expect_messages(&["M0 processed", "D1 processed"]);
    let arrived = c.siu("M1").at(2).trigger("S14").status("Arrived");
    assert_eq!(c.send(&arrived).summary(), "AA M1");
    c.expect_messages(&["M0 processed", "D1 processed", "M1 processed"]);
    let p = expect_known_patient(&c, "P901", "Rivera");
    assert_eq!(p["id"], "P901");
    assert_eq!(
        appointments(&p),
        [appointment("A9001", IE, START, "arrived", "C-42", "445566")]
    );
}

/// Merge P555 into P901, then P901 back into P555: the second A40 would merge
/// the record into itself. It fails at once with `merge_reversed` (no retries,
/// no dead letter), and the A08 behind it for the same patient is applied.
fn a_reverse_a40_fails_at_once_and_blocks_nothing(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let a40 = c.adt("A40", "D1").at(1).patient("P901").with("MRG|P555");
    assert_eq!(c.send(&a40).summary(), "AA D1");
    let reverse = c.adt("A40", "D2").at(2).patient("P555").with("MRG|P901");
    let update = c
        .adt("A08", "D3")
        .at(3)
        .patient("P555")
        .name("Rivera-Lopez", "Ana");
    c.send_accepted([&reverse, &update]);
    c.expect_messages(&[
        "M0 processed",
        "D1 processed",
        "D2 failed merge_reversed:prior_patient_id",
        "D3 processed",
    ]);
    expect_known_patient(&c, "P901", "Rivera-Lopez");
    // Replay decides the same at once, and changes nothing.
    assert_eq!(c.replay(&["--failed"]), 1);
    c.expect_messages(&[
        "M0 processed",
        "D1 processed",
        "D2 failed merge_reversed:prior_patient_id",
        "D3 processed",
    ]);
}

// ---------------------------------------------------------------------------
// Stale updates and replay.

/// An A08 older (MSH-7) than the stored demographics, and an SIU older than the
/// appointment's last change, are processed without overwriting anything. (M1
/// changes the appointment, but its PID is older than D1's, so it leaves the
/// name alone too.)
fn stale_updates_do_not_overwrite_newer_state(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let sent = [
        c.adt("A08", "D1").at(20).name("Newer", "Ana"),
        c.adt("A08", "D2")
            .at(10)
            .name("Older", "Olga")
            .set("PID-13", "^NET^Internet^old@example.com"),
        c.siu("M1").at(15).trigger("S14").status("Arrived"),
        c.siu("M2").at(10).trigger("S15"),
    ];
    c.send_accepted(&sent);
    c.expect_messages(&[
        "M0 processed",
        "D1 processed",
        "D2 processed",
        "M1 processed",
        "M2 processed",
    ]);
    let p = c.patient("P555");
    assert_eq!(
        demographics(&p),
        json!({
            "first_name": "Ana", "last_name": "Newer", "birth_date": "1985-03-12",
            "gender": "female", "email": "ana.rivera@example.com",
        })
    );
    assert_eq!(
        appointments(&p),
        [appointment("A9001", IE, START, "arrived", "C-42", "445566")]
    );
}

/// Failed business rules are fixed by configuration plus `messages replay`:
/// by control ID, or every failed message (the count is printed); replaying
/// again changes nothing.
fn replay_fixes_failed_messages_once_and_only_once(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let sent = [
        c.siu("M1").clinic("77"),
        c.siu("M2")
            .patient("P600")
            .appointment("A600")
            .therapist("424242"),
        c.siu("M3")
            .patient("P601")
            .appointment("A601")
            .therapist("424242"),
    ];
    c.send_accepted(&sent);
    c.expect_messages(&[
        "M1 failed unknown_location:clinic_id",
        "M2 failed unknown_practitioner:treating_therapist_id",
        "M3 failed unknown_practitioner:treating_therapist_id",
    ]);
    assert!(c.patients().is_empty());

    c.ok(&[
        "location", "add", "--org", org, "--id", "77", "--name", "Keizer",
    ]);
    assert_eq!(c.replay(&["--control-id", "M1"]), 1);
    c.expect_messages(&[
        "M1 processed",
        "M2 failed unknown_practitioner:treating_therapist_id",
        "M3 failed unknown_practitioner:treating_therapist_id",
    ]);
    let p555 = c.patient("P555");
    assert_eq!(episodes(&p555), known_episodes());
    assert_eq!(appointments(&p555), [worked_ie("445566")]);

    c.ok(&[
        "practitioner",
        "add",
        "--org",
        org,
        "--id",
        "424242",
        "--first",
        "New",
        "--last",
        "Hire",
    ]);
    assert_eq!(c.replay(&["--failed"]), 2);
    c.expect_messages(&["M1 processed", "M2 processed", "M3 processed"]);
    let p600 = c.patient("P600");
    assert_eq!(episodes(&p600), worked_episodes("424242", "active"));
    assert_eq!(
        appointments(&p600),
        [appointment(
            "A600",
            IE,
            START,
            "scheduled",
            "C-42",
            "424242"
        )]
    );
    let before = c.patients();
    assert_eq!(before.len(), 3);

    // Again: nothing failed is left, and a processed message replays without effect.
    assert_eq!(c.replay(&["--failed"]), 0);
    assert_eq!(c.replay(&["--control-id", "M1"]), 1);
    assert_eq!(c.replay(&["--control-id", "M2"]), 1);
    c.expect_messages(&["M1 processed", "M2 processed", "M3 processed"]);
    assert_eq!(
        c.patients(),
        before,
        "replaying twice has no further effect"
    );
}

// ---------------------------------------------------------------------------
// §7 and §4 at ingest.

/// A body that is not HL7: `AR` with an empty MSA-2, stored `rejected`.
fn invalid_hl7_is_rejected(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let ack = c.send_raw(b"garbage");
    assert_eq!(ack.summary(), "AR  invalid_hl7", "{:?}", ack.raw);
    c.expect_messages(&["- rejected invalid_hl7"]);
    assert!(c.patients().is_empty());
}

/// Two messages in one body, or a batch envelope (FHS/BHS): `AR` with
/// `multiple_messages`, stored `rejected`, and neither message applied (the
/// second is never dropped silently). Resent one per request, each is taken:
/// the rejected body does not make M1's control ID "reused".
fn two_messages_in_one_body_are_rejected_as_a_whole(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let first = c.siu("M1");
    let second = c.adt("A08", "M2").at(1).name("Rivera-Lopez", "Ana");
    let both = Hl7::parse(&format!("{}{}", first.text(), second.text()));
    assert_eq!(c.inspect(&both).1, ["multiple_messages"]);
    assert_eq!(c.send(&both).summary(), "AR M1 multiple_messages");
    let batch = format!(
        "FHS|^~\\&|EMR|{org}\rBHS|^~\\&|EMR|{org}\r{}BTS|1\rFTS|1\r",
        first.text()
    );
    assert_eq!(
        c.send_raw(batch.as_bytes()).summary(),
        "AR  multiple_messages"
    );
    c.expect_messages(&[
        "M1 rejected multiple_messages",
        "- rejected multiple_messages",
    ]);
    assert!(c.patients().is_empty());

    c.send_accepted([&first, &second]);
    c.expect_messages(&[
        "M1 rejected multiple_messages",
        "- rejected multiple_messages",
        "M1 processed",
        "M2 processed",
    ]);
    assert_eq!(c.patient("P555")["last_name"], "Rivera-Lopez");
}

/// MSH-4.1 must be the key's org when present: `AR`, `rejected`, nothing
/// created. An empty MSH-4 is fine.
fn account_mismatch_is_rejected(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let other = c.siu("M1").set("MSH-4", "OTHER9");
    assert_eq!(
        c.send(&other).summary(),
        "AR M1 account_mismatch:account_id"
    );
    c.expect_messages(&["M1 rejected account_mismatch:account_id"]);
    assert!(c.patients().is_empty());
    let no_facility = c.siu("M2").set("MSH-4", "");
    assert_eq!(c.send(&no_facility).summary(), "AA M2");
    c.expect_messages(&["M1 rejected account_mismatch:account_id", "M2 processed"]);
    assert_eq!(c.patients().len(), 1);
}

/// The same MSH-3, MSH-4 and MSH-10 with another body: `AR`, stored
/// `rejected`; the original is unaffected. Another MSH-3 is another message.
fn control_id_reused_is_rejected_and_the_original_is_unaffected(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    assert_eq!(c.send(&c.siu("M1")).summary(), "AA M1");
    c.expect_messages(&["M1 processed"]);
    let reused = c.siu("M1").name("Rivers", "Ana").appointment("A9002");
    assert_eq!(
        c.send(&reused).summary(),
        "AR M1 control_id_reused:control_id"
    );
    let other_sender = c
        .siu("M1")
        .set("MSH-3", "OTHERAPP")
        .patient("P556")
        .appointment("A9003");
    assert_eq!(c.send(&other_sender).summary(), "AA M1");
    c.expect_messages(&[
        "M1 processed",
        "M1 processed",
        "M1 rejected control_id_reused:control_id",
    ]);
    let p = expect_known_patient(&c, "P555", "Rivera");
    assert_eq!(appointments(&p), [worked_ie("445566")]);
    assert_eq!(c.patients().len(), 2);
}

/// ADT^A03 and ORU^R01: `AA` without ERR, stored `ignored`, and not processed.
fn unsupported_message_types_are_acknowledged_and_ignored(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let a03 = c.adt("A03", "U1").at(1).name("Discharged", "Ana");
    assert_eq!(c.send(&a03).summary(), "AA U1");
    let oru = format!("MSH|^~\\&|EMR|{org}|||20261120||ORU^R01|U2|P|2.5.1\rOBX|1\r");
    assert_eq!(c.send_raw(oru.as_bytes()).summary(), "AA U2");
    c.expect_messages(&[
        "M0 processed",
        "U1 ignored unsupported_message_type:message_type",
        "U2 ignored unsupported_message_type:message_type",
    ]);
    expect_known_patient(&c, "P555", "Rivera");
}

/// The same message again: `AA` again, stored once, no second effect.
fn exact_duplicate_is_acknowledged_again_without_effect(t: &Tendon, org: &str) {
    let c = clinic_with_known_patient(t, org);
    let first = c.patient("P555");
    for _ in 0..2 {
        assert_eq!(c.send(&c.siu("M0")).summary(), "AA M0");
    }
    let follow_up = c.siu("M1").at(1).appointment("A2").follow_up();
    for _ in 0..3 {
        assert_eq!(c.send(&follow_up).summary(), "AA M1");
    }
    c.expect_messages(&["M0 processed", "M1 processed"]);
    let p = c.patient("P555");
    assert_eq!(episodes(&p), episodes(&first));
    assert_eq!(
        appointments(&p),
        [
            appointment("A2", FU, START, "scheduled", "C-42", "445566"),
            appointment("A9001", IE, START, "scheduled", "C-42", "445566"),
        ]
    );
    assert_eq!(c.patients().len(), 1);
}

/// A missing or wrong key gets `401` with a JSON error, a body over 1 MiB
/// gets `413`; nothing is stored either way.
fn bad_keys_and_oversized_bodies_store_nothing(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let msg = c.siu("M1").text();
    for key in [None, Some("tdn_wrong"), Some("")] {
        let (status, body) = t.post(key, msg.as_bytes());
        assert_eq!(status, 401, "key {key:?}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("401 body is not JSON ({e}): {body:?}"));
        assert!(error["error"].is_string(), "{error}");
    }
    let mut big = c.siu("M2").text().into_bytes();
    big.resize((1 << 20) + 1, b'x');
    assert_eq!(t.post(Some(&c.key), &big).0, 413);
    assert_eq!(c.messages(), Vec::<serde_json::Value>::new());
    assert!(c.patients().is_empty());
    // The same message with the right key is taken.
    assert_eq!(c.send(&c.siu("M1")).summary(), "AA M1");
    c.expect_messages(&["M1 processed"]);
}
