//! `tendon doctor` end to end on both backends, through the real binary: a
//! clinic's messages with four causes of failure (a location, a practitioner
//! and an Initial Evaluation type missing from the configuration, and a
//! sender that leaves the email empty) and an unsupported type. The doctor
//! names each cause once, with its count and the messages it blocks, and
//! nothing else; its fix commands, pasted into a shell, fix the
//! configuration; after the replay only what the sender must fix is left.
mod common;

use std::process::Command;

use common::{Backend, Clinic, Hl7, Tendon};
use serde_json::{Value as Json, json};

#[test]
fn the_doctor_on_the_local_backend() {
    the_doctor_names_each_cause_and_its_fix(Backend::Local);
}

#[test]
fn the_doctor_on_the_aws_backend() {
    the_doctor_names_each_cause_and_its_fix(Backend::Aws);
}

#[test]
fn a_reviewed_plan_on_the_local_backend() {
    a_reviewed_plan_applies_what_is_left(Backend::Local);
}

#[test]
fn a_reviewed_plan_on_the_aws_backend() {
    a_reviewed_plan_applies_what_is_left(Backend::Aws);
}

#[test]
fn a_test_mode_key_on_the_local_backend() {
    a_test_mode_key_answers_as_live_and_changes_nothing_live(Backend::Local);
}

#[test]
fn a_test_mode_key_on_the_aws_backend() {
    a_test_mode_key_answers_as_live_and_changes_nothing_live(Backend::Aws);
}

#[test]
fn an_org_with_nothing_wrong_gets_one_line() {
    let mut t = Tendon::local("doctor-ok");
    let key = serve_acme(&mut t);
    let c = acme(&t, key);
    c.send_accepted([&now(c.siu("M1"))]);
    c.settle();
    let out = t
        .command()
        .args(["doctor", "--org", "ACME01"])
        .output()
        .expect("tendon runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ACME01: nothing wrong in 1 message(s).\n"
    );
    let (ok, _, err) = t.cli(&["doctor", "--org", "NOPE"]);
    assert!(!ok && err.contains("no org \"NOPE\""), "{err}");
    let (ok, _, err) = t.cli(&["doctor", "--org", "ACME01", "--since", "yesterday"]);
    assert!(!ok && err.contains("--since"), "{err}");
}

/// Creates the worked example's org on `t` with the default workflows and
/// starts `tendon serve`: the org's ingest key.
fn serve_acme(t: &mut Tendon) -> String {
    let key = t.clinic("ACME01").key;
    t.ok(&["workflow", "install-defaults", "--org", "ACME01"]);
    t.serve();
    key
}

fn acme(t: &Tendon, key: String) -> Clinic<'_> {
    Clinic {
        t,
        org: "ACME01".to_owned(),
        key,
    }
}

/// MSH-7 now, as a sender with a correct clock sends it.
fn now(m: Hl7) -> Hl7 {
    m.set(
        "MSH-7",
        &jiff::Timestamp::now()
            .strftime("%Y%m%d%H%M%S+0000")
            .to_string(),
    )
}

/// The worked example for another patient, case and appointment.
fn visit(c: &Clinic<'_>, cid: &str, patient: &str, appointment: &str) -> Hl7 {
    now(c.siu(cid))
        .patient(patient)
        .set("SCH-2", appointment)
        .set("PV1-19", &format!("C-{patient}"))
}

fn of_type(m: Hl7, code: &str, name: &str) -> Hl7 {
    let kind = format!("{code}^{name}");
    m.set("SCH-8", &kind).set("AIS-3", &kind)
}

/// The clinic's day: one message per cause, a follow-up behind the first
/// cause, an unsupported type and a message that goes through. The ACKs,
/// as `MSA-1 MSA-2 errors`.
fn send_day(c: &Clinic<'_>) -> Vec<String> {
    let messages = [
        // An Initial Evaluation at location 34, then its case's follow-up.
        visit(c, "M1", "P1", "A1")
            .set("AIL-3", "34^^^Eastside Clinic")
            .set("PV1-3", "34^^^^^^^^Eastside Clinic"),
        of_type(visit(c, "M2", "P1", "A2"), "FU", "Follow Up"),
        // An Initial Evaluation by a therapist who is not configured.
        visit(c, "M3", "P2", "A3").set(
            "AIP-3",
            "1235123^Smith^Pat~1234567893^Smith^Pat^^^^^^^^^^NPI",
        ),
        // The clinic's other evaluation type.
        of_type(visit(c, "M4", "P3", "A4"), "EV", "Eval - New"),
        // No email.
        visit(c, "M5", "P4", "A5").set("PID-13", "^PRN^PH^^1^503^5550100"),
        // A type Tendon does not process.
        now(c.siu("M6")).set("MSH-9", "ORU^R01^ORU_R01"),
        visit(c, "M7", "P5", "A7"),
    ];
    messages.iter().map(|m| c.send(m).summary()).collect()
}

/// The findings as (code, subject, messages, blocked).
fn causes(doctor: &Json) -> Vec<(String, String, u64, u64)> {
    doctor["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["subject"].as_str().unwrap_or("-").to_owned(),
                f["messages"].as_u64().unwrap(),
                f["blocked"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The day sent with a test-mode key gets the ACKs and the doctor findings
/// the same day gets live, and creates no live patient, no step and no
/// email; its plan applies in test mode only; its data is deleted in one
/// command, the live data untouched.
fn a_test_mode_key_answers_as_live_and_changes_nothing_live(backend: Backend) {
    let mut t = Tendon::new(backend, "testmode");
    let live_key = serve_acme(&mut t);
    let issued = t.ok(&["org", "add-key", "--org", "ACME01", "--test"]);
    assert_eq!(issued["mode"], "test");
    let test = acme(&t, issued["ingest_key"].as_str().unwrap().to_owned());
    let test_acks = send_day(&test);
    t.settle_test("ACME01");

    assert_eq!(t.messages("ACME01"), Vec::<Json>::new(), "nothing live");
    assert_eq!(test.patients(), Vec::<Json>::new(), "no live patient");
    assert_eq!(
        t.ok(&["workflow", "steps", "--org", "ACME01"]),
        json!([]),
        "no step scheduled"
    );
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    assert_eq!(
        t.ok(&["dispatch", "--at", &later]),
        json!({"sent": 0, "skipped": 0, "failed": 0})
    );
    assert_eq!(t.ok(&["outbox", "list", "--org", "ACME01"]), json!([]));
    let would_be: Vec<Json> = t
        .ok(&["patient", "list", "--org", "ACME01", "--mode", "test"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(would_be, [json!("P5")], "what the day would have created");
    let listed = t.test_messages("ACME01");
    let m7 = listed.iter().find(|m| m["control_id"] == "M7").unwrap();
    let events: Vec<&str> = m7["would"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"patient_created"), "{m7:#}");
    let test_doctor = t.ok(&["doctor", "--org", "ACME01", "--mode", "test"]);
    assert_eq!(
        test_doctor["would_create"],
        json!({"patients": 1, "episodes": 2})
    );

    // The same day, live.
    let live = acme(&t, live_key);
    let live_acks = send_day(&live);
    live.settle();
    assert_eq!(test_acks, live_acks, "the same ACKs");
    let live_doctor = t.ok(&["doctor", "--org", "ACME01"]);
    assert_eq!(
        causes(&test_doctor),
        causes(&live_doctor),
        "the same findings"
    );
    let replay = test_doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "missing_field")
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        replay.ends_with("tendon messages replay --org ACME01 --mode test --failed"),
        "{replay}"
    );

    // A test-mode plan applies to the test-mode messages only.
    let file = t.db().with_extension("test-plan.json");
    let path = file.to_str().unwrap();
    t.ok(&[
        "doctor", "--org", "ACME01", "--mode", "test", "--plan", path,
    ]);
    let (ok, _, err) = t.cli(&["doctor", "--org", "ACME01", "--apply", path]);
    assert!(
        !ok && err.contains("apply it with --mode test") && err.contains("nothing was applied"),
        "{err}"
    );
    let applied = t.ok(&[
        "doctor", "--org", "ACME01", "--mode", "test", "--apply", path,
    ]);
    assert_eq!(applied["applied"]["replayed"], 4, "{applied}");
    assert_eq!(applied["after"], json!({"failed": 1, "patients": 4}));
    t.settle_test("ACME01");
    assert_eq!(live.patients().len(), 1, "live: still only P5");

    let deleted = t.ok(&["org", "delete-test-data", "--org", "ACME01"]);
    assert_eq!(
        deleted["deleted"],
        json!({"messages": 7, "patients": 4}),
        "{deleted}"
    );
    assert_eq!(t.test_messages("ACME01"), Vec::<Json>::new());
    assert_eq!(t.messages("ACME01").len(), 7, "the live messages stay");
    assert_eq!(
        t.ok(&["org", "delete-test-data", "--org", "ACME01"])["deleted"],
        json!({"messages": 0, "patients": 0})
    );
}

fn the_doctor_names_each_cause_and_its_fix(backend: Backend) {
    let mut t = Tendon::new(backend, "doctor");
    let key = serve_acme(&mut t);
    let c = acme(&t, key);
    send_day(&c);
    c.settle();

    let found = t.ok(&["doctor", "--org", "ACME01"]);
    assert_eq!(found["messages"], 7);
    let findings = found["findings"].as_array().expect("findings");
    let named: Vec<(&str, &str, u64, u64)> = findings
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap(),
                f["subject"].as_str().unwrap_or("-"),
                f["messages"].as_u64().unwrap(),
                f["blocked"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("unknown_location", "34", 1, 1),
            ("unknown_practitioner", "1235123", 1, 0),
            ("ie_type_not_configured", "Eval - New", 1, 0),
            ("missing_field", "patient_email", 1, 0),
            ("ignored_types", "-", 1, 0),
        ],
        "{found:#}"
    );
    let fix = |i: usize| findings[i]["fix"].as_str().unwrap().to_owned();
    assert_eq!(
        fix(0),
        "tendon location add --org ACME01 --id 34 --name 'Eastside Clinic'"
    );
    assert_eq!(
        fix(1),
        "tendon practitioner add --org ACME01 --id 1235123 --first Pat --last Smith --npi 1234567893"
    );
    assert_eq!(
        fix(2),
        "tendon ie-type add --org ACME01 --type 'Eval - New'"
    );
    assert_eq!(findings[0]["examples"], serde_json::json!(["M1"]));
    assert_eq!(findings[3]["share"], 1.0 / 6.0, "1 of the 6 SIU messages");

    for i in 0..3 {
        paste(&t, &fix(i));
    }
    assert_eq!(
        t.ok(&["messages", "replay", "--org", "ACME01", "--failed"])["replayed"],
        5
    );
    c.settle();
    for patient in ["P1", "P2", "P3"] {
        let p = c.patient(patient);
        assert_eq!(p["id"], patient);
    }
    let appointments = common::appointments(&c.patient("P1"));
    assert_eq!(
        appointments.len(),
        2,
        "the follow-up is processed after its IE"
    );

    let after = t.ok(&["doctor", "--org", "ACME01"]);
    let left: Vec<&str> = after["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["missing_field", "ignored_types"], "{after:#}");
}

/// Runs a printed fix as an operator pastes it, in a shell, against `t`.
fn paste(t: &Tendon, fix: &str) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tendon"))
        .parent()
        .unwrap()
        .to_owned();
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(fix).env(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    for (k, v) in t.command().get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    let out = sh.env("TENDON_DB", t.db()).output().expect("sh runs");
    assert!(
        out.status.success(),
        "{fix}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `doctor --plan` writes the fixes; a person deletes the practitioner (a
/// decision: practitioners are never added from messages alone); `--apply`
/// adds the rest and replays what they unblock, in order; a second apply
/// changes nothing; bad plans are refused whole.
fn a_reviewed_plan_applies_what_is_left(backend: Backend) {
    let mut t = Tendon::new(backend, "plan");
    let key = serve_acme(&mut t);
    let c = acme(&t, key);
    send_day(&c);
    c.settle();
    let file = t.db().with_extension("plan.json");
    let wrote = t.ok(&[
        "doctor",
        "--org",
        "ACME01",
        "--plan",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        (
            &wrote["locations"],
            &wrote["practitioners"],
            &wrote["ie_types"],
            &wrote["replay"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(4)),
        "{wrote}"
    );
    let mut plan: Json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        plan["locations"],
        json!([{"id": "34", "name": "Eastside Clinic"}])
    );
    assert_eq!(
        plan["practitioners"],
        json!([{"id": "1235123", "first_name": "Pat", "last_name": "Smith", "npi": "1234567893"}])
    );
    assert_eq!(plan["ie_types"], json!(["Eval - New"]));
    let order: Vec<&str> = plan["replay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["control_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["M1", "M2", "M3", "M4"], "in the order received");

    // Refused whole, nothing applied: another org's plan, a malformed one.
    let refuse = |text: String, why: &str| {
        let bad = t.db().with_extension("bad.json");
        std::fs::write(&bad, text).unwrap();
        let (ok, _, err) = t.cli(&[
            "doctor",
            "--org",
            "ACME01",
            "--apply",
            bad.to_str().unwrap(),
        ]);
        assert!(
            !ok && err.contains(why) && err.contains("nothing was applied"),
            "{err}"
        );
    };
    let mut other = plan.clone();
    other["org"] = json!("OTHER");
    refuse(other.to_string(), "the plan is for org \"OTHER\"");
    refuse(
        "{\"org\": \"ACME01\", \"locations\": 3}".to_owned(),
        "is not a plan",
    );
    let mut blank = plan.clone();
    blank["locations"][0]["name"] = json!(" ");
    refuse(blank.to_string(), "needs an id and a name");
    assert_eq!(c.patients().len(), 1, "nothing applied: only P5");

    // The reviewer keeps the practitioner out.
    plan["practitioners"] = json!([]);
    std::fs::write(&file, plan.to_string()).unwrap();
    let applied = t.ok(&[
        "doctor",
        "--org",
        "ACME01",
        "--apply",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        applied["applied"]["added"],
        json!(["location 34", "ie_type Eval - New"]),
        "{applied}"
    );
    assert_eq!(applied["applied"]["replayed"], 4);
    assert_eq!(applied["before"], json!({"failed": 5, "patients": 1}));
    assert_eq!(
        applied["after"],
        json!({"failed": 2, "patients": 3}),
        "P1 and P3 created; P2 (its practitioner) and P4 (no email) still failed"
    );
    c.settle();
    assert_eq!(
        common::appointments(&c.patient("P1")).len(),
        2,
        "the follow-up after its IE"
    );
    c.no_patient("P2");

    // The same plan again: nothing to add, nothing failed to replay but P2's.
    let again = t.ok(&[
        "doctor",
        "--org",
        "ACME01",
        "--apply",
        file.to_str().unwrap(),
    ]);
    assert_eq!(again["applied"]["added"], json!([]));
    assert_eq!(
        again["applied"]["unchanged"],
        json!(["location 34", "ie_type Eval - New"])
    );
    assert_eq!(again["before"], again["after"], "{again}");

    // A location that now exists under another name is left as it is.
    t.ok(&[
        "location",
        "add",
        "--org",
        "ACME01",
        "--id",
        "34",
        "--name",
        "East Side",
    ]);
    let last = t.ok(&[
        "doctor",
        "--org",
        "ACME01",
        "--apply",
        file.to_str().unwrap(),
    ]);
    let skipped: Vec<&str> = last["applied"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    let skipped = skipped.join("\n");
    assert!(
        skipped.contains("location 34: it exists now, named \"East Side\""),
        "{last}"
    );
    assert!(
        skipped.contains("message M1: it is processed now, not failed"),
        "{last}"
    );
}
