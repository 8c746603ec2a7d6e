//! The workflow engine (docs/workflows.md, docs/interface.md §6) end to end on both
//! backends: workflows imported with the CLI, HL7 posted to the real
//! `tendon serve`, time driven with `tendon dispatch --at`, and the outcome
//! read back from `workflow steps` (status and note), `outbox list`, the
//! dispatch reports and, on moto, what went out through SES and SNS.
//!
//! A dispatch pass takes the due steps of every org, so each scenario runs
//! on a deployment of its own (a SQLite file, or tables and queues on moto)
//! with its own `tendon serve`; the scenarios run in parallel. Serve passes
//! every real minute at the real time, so appointments start days from the
//! real today, and the passes a scenario runs are at instants in the future,
//! where only its own steps are due.
//!
//! `TENDON_SCENARIO=substring` runs only the matching scenarios, and
//! `TENDON_SCENARIO_THREADS=N` runs N at a time (default 4).
mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{Backend, Clinic, Deployments, Hl7, Scenario, Tendon, moto_state, run_scenarios};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::{Value as Json, json};

/// Every scenario, by name.
/// (The longest first, so the run ends sooner.)
const SCENARIOS: &[(&str, Scenario)] = crate::scenarios![
    every_trigger_unit_and_task_kind_delivers_once_when_due,
    concurrent_passes_send_each_step_once,
    default_workflows_simulate_a_local_timeline,
    a_canceled_appointment_skips_its_reminder,
    a_rescheduled_appointment_moves_its_reminder,
    a_deactivated_workflow_skips_and_never_back_fills,
    patient_group_filters_choose_who_is_enrolled,
    following_the_unsubscribe_link_stops_later_emails,
    texts_wait_for_the_daytime_window,
    patient_fields_cannot_inject_html_or_headers,
    a_repeat_counts_on_from_the_first_send_up_to_max,
    import_says_which_part_of_a_definition_is_wrong,
    completing_the_assigned_survey_ends_a_repeat,
    a_reminder_moves_with_an_appointment_moved_earlier,
    a_canceled_then_rebooked_appointment_is_reminded_once,
    a_late_pass_and_the_next_one_send_each_step_once,
];

#[test]
fn workflows_on_the_local_backend() {
    run_scenarios(Backend::Local, "wf", SCENARIOS, Deployments::PerScenario);
}

#[test]
fn workflows_on_the_aws_backend() {
    run_scenarios(Backend::Aws, "wf", SCENARIOS, Deployments::PerScenario);
}

/// `workflow retry-step` makes a failed step due again, once, and the next
/// pass sends it as a delivery of its own.
#[test]
fn an_operator_retries_a_failed_step() {
    use tendon_core::ports::StepSchedule;
    use tendon_core::workflow::steps::StepStatus;
    let mut t = Tendon::local("retry");
    t.serve();
    let c = t.clinic("ACME01");
    import(
        &t,
        "ACME01",
        &workflow(
            "eve",
            "appointment_scheduled",
            json!({}),
            &[step("before", 1, "days", email("Tomorrow", "See you."))],
        ),
    );
    send_all(&c, &[booking(&c, "M1", "P1", "A1", local(5, 10, 0))]);
    drop(c);
    // From here the test's passes are the only ones.
    t.stop_server();
    let store = tendon_local::SqliteStore::open(t.db()).expect("the deployment's database");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // The send failed for good, as a provider's refusal leaves the step.
    let mut failed = runtime
        .block_on(store.list_steps("ACME01", Some("P1")))
        .expect("steps")
        .remove(0);
    failed.status = StepStatus::Failed;
    failed.note = Some("rejected: invalid_address".into());
    runtime
        .block_on(store.finish_step(&failed, None))
        .expect("recorded");

    let retry = |id: &str| {
        t.cli(&[
            "workflow",
            "retry-step",
            "--org",
            "ACME01",
            "--patient",
            "P1",
            "--id",
            id,
        ])
    };
    let (ok, shown, err) = retry(&failed.id);
    assert!(ok, "{err}");
    assert_eq!(
        (&shown["status"], &shown["resends"], &shown["note"]),
        (&json!("scheduled"), &json!(1), &json!("retried"))
    );
    let (ok, _, err) = retry(&failed.id);
    assert!(!ok && err.contains("not failed"), "{err}");
    let (ok, _, err) = retry("nope");
    assert!(!ok && err.contains("has no step"), "{err}");

    let pass = |at: Timestamp| {
        counts(&t.ok(&[
            "dispatch",
            "--at",
            &at.to_string(),
            "--public-url",
            "http://127.0.0.1",
        ]))
    };
    let now = Timestamp::now();
    assert_eq!(
        pass(now + 1.minute()),
        [1, 0, 0],
        "sent when the operator asked"
    );
    assert_eq!(pass(now + 2.minutes()), [0, 0, 0], "and once");
    let steps = t.ok(&["workflow", "steps", "--org", "ACME01", "--patient", "P1"]);
    assert_eq!(steps[0]["status"], "sent");
}

/// `org suppressions` lists what the feedback function suppressed, and
/// `org unsuppress` lifts one address (the stores' behaviour, both backends,
/// is in the store contract).
#[test]
fn an_operator_lists_and_lifts_suppressed_addresses() {
    use tendon_core::ports::Suppressions;
    let t = Tendon::local("suppress");
    t.clinic("ACME01");
    let store = tendon_local::SqliteStore::open(t.db()).expect("the deployment's database");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for (address, reason) in [
        ("Ana@Example.com", "bounce"),
        ("bo@example.com", "complaint"),
    ] {
        runtime
            .block_on(store.suppress_address("ACME01", address, reason))
            .expect("suppressed");
    }
    let listed = t.ok(&["org", "suppressions", "--org", "ACME01"]);
    assert_eq!(
        listed,
        json!([
            {"address": "ana@example.com", "reason": "bounce"},
            {"address": "bo@example.com", "reason": "complaint"}
        ])
    );
    let lifted = t.ok(&[
        "org",
        "unsuppress",
        "--org",
        "ACME01",
        "--address",
        "ANA@example.com",
    ]);
    assert_eq!(lifted["unsuppressed"], "ana@example.com");
    assert!(
        !runtime
            .block_on(store.is_suppressed("ACME01", "ana@example.com"))
            .expect("read"),
        "workflow email may go to it again"
    );
    let (ok, _, err) = t.cli(&[
        "org",
        "unsuppress",
        "--org",
        "ACME01",
        "--address",
        "ana@example.com",
    ]);
    assert!(!ok && err.contains("is not suppressed"), "{err}");
    let (ok, _, err) = t.cli(&["org", "suppressions", "--org", "NOPE"]);
    assert!(!ok && err.contains("no org"), "{err}");
    assert_eq!(
        t.ok(&["org", "suppressions", "--org", "ACME01"]),
        json!([{"address": "bo@example.com", "reason": "complaint"}])
    );
}

// ---------------------------------------------------------------------------
// Time, on the clinic's clock.

/// The zone of every [`Clinic`] (and of its location 12).
const ZONE: &str = "America/Los_Angeles";

fn zone() -> TimeZone {
    TimeZone::get(ZONE).expect("the clinic's zone")
}

/// Today on the clinic's clock, as of the first call (so a run that spans
/// midnight does not see two todays).
fn today() -> Date {
    static TODAY: std::sync::OnceLock<Date> = std::sync::OnceLock::new();
    *TODAY.get_or_init(|| Timestamp::now().to_zoned(zone()).date())
}

/// The first day from `days` after today whose night before has no DST
/// change, so "N hours before" lands on the local hour the day before.
fn day_without_dst_change(days: i64) -> i64 {
    let offset = |d: i64| local(d, 12, 0).to_zoned(zone()).offset();
    (days..days + 7)
        .find(|&d| offset(d - 1) == offset(d))
        .expect("at most one DST change a week")
}

/// `days` after today at `hour:minute` on the clinic's clock.
fn local(days: i64, hour: i8, minute: i8) -> Timestamp {
    today()
        .checked_add(days.days())
        .and_then(|d| d.at(hour, minute, 0, 0).to_zoned(zone()))
        .expect("a local time")
        .timestamp()
}

/// An HL7 timestamp (`YYYYMMDDHHMM`) on the clinic's clock.
fn hl7_time(at: Timestamp) -> String {
    at.to_zoned(zone()).strftime("%Y%m%d%H%M").to_string()
}

/// How templates show an appointment start (`appointment.start_local`).
fn start_local(at: Timestamp) -> String {
    at.to_zoned(zone())
        .strftime("%A, %B %-d at %-I:%M %p")
        .to_string()
}

/// RFC 3339 with the clinic's offset, as `workflow simulate` shows times.
fn local_rfc3339(at: Timestamp) -> String {
    at.to_zoned(zone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `at` moved by `amount` `unit`s (a schedule unit) on the clinic's clock:
/// hours are elapsed time, the rest calendar units.
fn shift(at: Timestamp, amount: i64, unit: &str) -> Timestamp {
    let span = match unit {
        "hours" => amount.hours(),
        "days" => amount.days(),
        "weeks" => amount.weeks(),
        "months" => amount.months(),
        other => panic!("unit {other}"),
    };
    at.to_zoned(zone())
        .checked_add(span)
        .expect("in range")
        .timestamp()
}

fn secs(at: Timestamp, n: i64) -> Timestamp {
    at.checked_add(SignedDuration::from_secs(n))
        .expect("in range")
}

fn ts(v: &Json) -> Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an RFC 3339 instant: {v}"))
}

// ---------------------------------------------------------------------------
// Patients and messages.

/// A patient's own e-mail address: unique to the org, so what moto received
/// can be told apart.
fn email_of(org: &str, patient: &str) -> String {
    format!(
        "{}.{}@example.com",
        patient.to_ascii_lowercase(),
        org.to_ascii_lowercase()
    )
}

/// The worked example's mobile, as E.164.
const MOBILE: &str = "+15035550101";

/// An S12 booking `appointment` for `patient` (the worked example otherwise:
/// IE on case C-42 "Right Shoulder" at location 12, Ana Rivera, female, born
/// 1985) at `start`, with the patient's own e-mail and the worked mobile.
fn booking(
    c: &Clinic<'_>,
    control_id: &str,
    patient: &str,
    appointment: &str,
    start: Timestamp,
) -> Hl7 {
    c.siu(control_id)
        .patient(patient)
        .appointment(appointment)
        .start(&hl7_time(start))
        .set(
            "PID-13",
            &format!(
                "^PRN^CP^^1^503^5550101~^NET^Internet^{}",
                email_of(&c.org, patient)
            ),
        )
}

/// Sends each message (each must get `AA`), then waits until all of them
/// are `processed`.
fn send_all(c: &Clinic<'_>, msgs: &[Hl7]) {
    c.send_accepted(msgs);
    let msgs = c.settle();
    let bad: Vec<String> = msgs
        .iter()
        .filter(|m| m["status"] != "processed")
        .map(common::outcome)
        .collect();
    assert!(bad.is_empty(), "messages not processed: {bad:?}");
}

// ---------------------------------------------------------------------------
// Workflows, passes and what they leave.

fn step(direction: &str, amount: u32, unit: &str, task: Json) -> Json {
    json!({"schedule": {"direction": direction, "amount": amount, "unit": unit}, "task": task})
}

fn email(subject: &str, body: &str) -> Json {
    json!({"kind": "email", "subject": subject, "body": body})
}

fn text(body: &str) -> Json {
    json!({"kind": "text", "body": body})
}

/// A survey, education, exercise or care-plan task assigning catalogue content.
fn assign(kind: &str, content: &str) -> Json {
    json!({"kind": kind, "content": content})
}

/// An active workflow with this ID, trigger event, patient group and steps.
fn workflow(id: &str, trigger: &str, group: Json, steps: &[Json]) -> Json {
    json!({
        "id": id, "title": format!("Workflow {id}"), "status": "active",
        "patient_group": group, "trigger": {"event": trigger}, "steps": steps,
    })
}

/// `workflow import --org ORG FILE` with `definition` as the file: (success,
/// JSON, stderr).
fn try_import(t: &Tendon, org: &str, definition: &str, ext: &str) -> (bool, Json, String) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file = std::env::temp_dir().join(format!(
        "tendon-e2e-workflow-{}-{}.{ext}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, definition).expect("a temporary workflow file");
    let path = file.to_string_lossy().into_owned();
    let result = t.cli(&["workflow", "import", "--org", org, &path]);
    let _ = std::fs::remove_file(&file);
    result
}

/// Imports a workflow (JSON); it must be accepted, active.
fn import(t: &Tendon, org: &str, def: &Json) {
    let (ok, out, err) = try_import(t, org, &def.to_string(), "json");
    assert!(ok, "import of {def} failed: {err}");
    assert_eq!(
        (&out["id"], &out["status"]),
        (&def["id"], &json!("active")),
        "{out}"
    );
}

/// One `tendon dispatch --at AT` pass (unsubscribe links point at the
/// server): `[sent, skipped, failed]`.
fn dispatch(t: &Tendon, at: Timestamp) -> [u64; 3] {
    let args = dispatch_args(t, at);
    counts(&t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>()))
}

/// A dispatch report (`{"sent","skipped","failed"}`) as `[sent, skipped, failed]`.
fn counts(report: &Json) -> [u64; 3] {
    ["sent", "skipped", "failed"].map(|k| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} count in the dispatch report {report}"))
    })
}

fn dispatch_args(t: &Tendon, at: Timestamp) -> Vec<String> {
    vec![
        "dispatch".into(),
        "--at".into(),
        at.to_string(),
        "--public-url".into(),
        format!("http://{}", t.addr()),
    ]
}

/// Starts a `tendon dispatch --at AT` pass in the background, pacing email
/// at `rate` a second on AWS.
fn spawn_dispatch(t: &Tendon, at: Timestamp, rate: &str) -> std::process::Child {
    t.command()
        .args(dispatch_args(t, at))
        .arg("--json")
        .env("TENDON_SES_MAX_SEND_RATE", rate)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tendon dispatch starts")
}

/// Waits for a background pass: `[sent, skipped, failed]`.
fn report_of(pass: std::process::Child) -> [u64; 3] {
    let out = pass.wait_with_output().expect("tendon dispatch runs");
    assert!(out.status.success(), "dispatch failed");
    counts(&serde_json::from_slice(&out.stdout).expect("dispatch prints JSON"))
}

/// Imports `reminder`: an email `amount` `unit`s before every booked
/// appointment, saying when it is.
fn import_reminder(t: &Tendon, org: &str, amount: u32, unit: &str) {
    let task = email("See you soon", "On {{ appointment.start_local }}.");
    let steps = [step("before", amount, unit, task)];
    import(
        t,
        org,
        &workflow("reminder", "appointment_scheduled", json!({}), &steps),
    );
}

/// Books an appointment at `start` for each of `n` new patients (P01, P02..);
/// returns their IDs once every message is processed.
fn book_patients(c: &Clinic<'_>, n: usize, start: Timestamp) -> Vec<String> {
    let ids: Vec<String> = (1..=n).map(|i| format!("P{i:02}")).collect();
    let msgs: Vec<Hl7> = ids
        .iter()
        .enumerate()
        .map(|(i, p)| booking(c, &format!("M{i}"), p, &format!("A{i}"), start).at(1))
        .collect();
    send_all(c, &msgs);
    ids
}

/// The first line of a delivery's body.
fn first_line(delivery: &Json) -> &str {
    delivery["body"]
        .as_str()
        .and_then(|b| b.lines().next())
        .unwrap_or_default()
}

/// Asserts the outbox holds exactly one `reminder` (see [`import_reminder`]),
/// to P1, for the appointment at `start`; returns it.
fn assert_one_reminder(t: &Tendon, org: &str, start: Timestamp) -> Json {
    let out = outbox(t, org);
    let to = email_of(org, "P1");
    assert_eq!(
        outbox_summary(&out),
        [format!("reminder P1 email {to}")],
        "{out:#?}"
    );
    assert_eq!(first_line(&out[0]), format!("On {}.", start_local(start)));
    out[0].clone()
}

/// `workflow steps --org ORG`, by due time.
fn steps(t: &Tendon, org: &str) -> Vec<Json> {
    let mut all = t
        .ok(&["workflow", "steps", "--org", org])
        .as_array()
        .cloned()
        .expect("workflow steps prints an array");
    all.sort_by_key(|s| {
        (
            ts(&s["due_at"]),
            s["workflow_id"].to_string(),
            s["patient_id"].to_string(),
        )
    });
    all
}

/// Steps as `workflow patient appointment kind status note`, sorted.
fn step_summary(steps: &[Json]) -> Vec<String> {
    let mut out: Vec<String> = steps
        .iter()
        .map(|s| {
            let mut line = format!(
                "{} {} {} {} {}",
                s["workflow_id"].as_str().unwrap_or("?"),
                s["patient_id"].as_str().unwrap_or("?"),
                s["appointment_id"].as_str().unwrap_or("-"),
                s["kind"].as_str().unwrap_or("?"),
                s["status"].as_str().unwrap_or("?"),
            );
            if let Some(note) = s["note"].as_str() {
                line.push(' ');
                line.push_str(note);
            }
            line
        })
        .collect();
    out.sort();
    out
}

fn assert_steps(t: &Tendon, org: &str, expected: &[&str]) -> Vec<Json> {
    let all = steps(t, org);
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(step_summary(&all), want, "workflow steps: {all:#?}");
    all
}

/// `outbox list --org ORG`.
fn outbox(t: &Tendon, org: &str) -> Vec<Json> {
    t.ok(&["outbox", "list", "--org", org])
        .as_array()
        .cloned()
        .expect("outbox list prints an array")
}

/// Deliveries as `workflow patient channel to`, sorted.
fn outbox_summary(deliveries: &[Json]) -> Vec<String> {
    let mut out: Vec<String> = deliveries
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {}",
                d["workflow_id"].as_str().unwrap_or("?"),
                d["patient_id"].as_str().unwrap_or("?"),
                d["channel"].as_str().unwrap_or("?"),
                d["to"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    out.sort();
    out
}

/// Polls `f` until it gives a value, for at most the backend's deadline.
fn eventually<T>(t: &Tendon, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + t.deadline();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not reached within {} s",
            t.deadline().as_secs()
        );
        t.pause();
    }
}

/// The unsubscribe link at the end of an email's text body.
fn unsubscribe_link(delivery: &Json) -> String {
    let body = delivery["body"].as_str().expect("a body");
    let at = body
        .rfind("Unsubscribe: ")
        .unwrap_or_else(|| panic!("no unsubscribe link in {body:?}"));
    body[at + "Unsubscribe: ".len()..].trim().to_owned()
}

// ---------------------------------------------------------------------------
// What left through moto (the AWS backend).

/// The raw MIME of every email SES took for `address`.
fn ses_raw_to(state: &Json, address: &str) -> Vec<String> {
    state["ses"]["RawMessage"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["destinations"]
                .as_array()
                .is_some_and(|d| d.iter().any(|a| a == address))
        })
        .map(|m| m["raw_data"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The texts SNS took whose message starts with `prefix`: (number, message).
fn sms_starting(state: &Json, prefix: &str) -> Vec<(String, String)> {
    state["sns"]["SMS"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["message"].as_str().is_some_and(|s| s.starts_with(prefix)))
        .map(|m| {
            (
                m["phone_number"].as_str().unwrap_or_default().to_owned(),
                m["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The values of the header `name` (any case) in a raw email. (A folded
/// header's continuation lines start with a space: not headers of their own.)
fn header<'a>(raw: &'a str, name: &str) -> Vec<&'a str> {
    let head = raw.split_once("\r\n\r\n").map_or(raw, |(head, _)| head);
    head.split("\r\n")
        .filter_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| value.trim_start())
        })
        .collect()
}

/// The decoded body of the part of `content_type` (quoted-printable).
fn mime_part(raw: &str, content_type: &str) -> String {
    let marker = format!("Content-Type: {content_type}; charset=UTF-8\r\n");
    let at = raw
        .find(&marker)
        .unwrap_or_else(|| panic!("no {content_type} part in {raw}"));
    let rest = &raw[at..];
    let body = rest
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let body = body.split("\r\n--=_tendon").next().unwrap_or_default();
    quoted_printable_decode(body)
}

fn quoted_printable_decode(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

/// The HTML parts of the org's emails, as the local outbox table keeps them.
fn local_html(t: &Tendon, org: &str) -> Vec<String> {
    use tendon_core::ports::DeliveryLog;
    let store = tendon_local::SqliteStore::open(t.db()).expect("the deployment's database");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(store.list_deliveries(org))
        .expect("deliveries")
        .into_iter()
        .filter_map(|d| d.html)
        .collect()
}

// ---------------------------------------------------------------------------
// Scenarios.

/// One workflow per docs/interface.md §6 trigger event, covering every unit, both
/// directions and every task kind. Each step is listed with its due time (a
/// `before` step exactly from the appointment start, an `after` step within
/// the time the messages took, on the clinic's clock); then, in due order,
/// a pass a second before it sends nothing, a pass at it sends exactly that
/// delivery (rendered, addressed, at that instant), and later passes nothing
/// more.
fn every_trigger_unit_and_task_kind_delivers_once_when_due(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let clinic = format!("{org} PT");
    // The discharge goes to a second patient (a man, on a knee case), so it
    // does not discharge the case the other steps are about.
    let female = json!({"gender": "female"});
    // (workflow, trigger, direction, amount, unit, task)
    let table = [
        (
            "patient-created",
            "patient_created",
            "after",
            3,
            "hours",
            email(
                "Hello {{ patient.first_name }}",
                "Welcome to {{ clinic.name }}.",
            ),
        ),
        (
            "episode-created",
            "episode_created",
            "after",
            2,
            "days",
            assign("survey", "mips:auto"),
        ),
        (
            "ie-scheduled",
            "initial_evaluation_scheduled",
            "before",
            1,
            "days",
            text("{{ clinic.name }}: see you {{ appointment.start_local }}"),
        ),
        (
            "appointment-scheduled",
            "appointment_scheduled",
            "before",
            1,
            "weeks",
            assign("education", "welcome-to-therapy"),
        ),
        (
            "ie-arrived",
            "initial_evaluation_arrived",
            "after",
            1,
            "months",
            assign("exercise", "home-exercise-program"),
        ),
        (
            "appointment-arrived",
            "appointment_arrived",
            "after",
            5,
            "hours",
            assign("care_plan", "discharge-plan"),
        ),
        (
            "appointment-canceled",
            "appointment_canceled",
            "after",
            1,
            "days",
            email(
                "Your {{ appointment.type }} was canceled",
                "Call {{ clinic.name }} to book again.",
            ),
        ),
        (
            "appointment-no-show",
            "appointment_no_show",
            "after",
            2,
            "weeks",
            assign("survey", "nps"),
        ),
        (
            "episode-discharged",
            "episode_discharged",
            "after",
            2,
            "months",
            email("Goodbye {{ patient.first_name }}", "Keep moving."),
        ),
    ];
    for (id, trigger, direction, amount, unit, task) in &table {
        let group = if *trigger == "episode_discharged" {
            json!({"gender": "male"})
        } else {
            female.clone()
        };
        let def = workflow(
            id,
            trigger,
            group,
            &[step(direction, *amount, unit, task.clone())],
        );
        if *id == "patient-created" {
            // The same definition as YAML.
            let yaml = [
                "id: patient-created",
                "title: Workflow patient-created",
                "status: active",
                "patient_group: {gender: female}",
                "trigger: {event: patient_created}",
                "steps:",
                "  - schedule: {direction: after, amount: 3, unit: hours}",
                "    task:",
                "      kind: email",
                "      subject: \"Hello {{ patient.first_name }}\"",
                "      body: \"Welcome to {{ clinic.name }}.\"",
            ]
            .join("\n");
            let (ok, out, err) = try_import(t, org, &yaml, "yaml");
            assert!(ok, "YAML import failed: {err}");
            assert_eq!(out["id"], "patient-created");
            let listed = t.ok(&["workflow", "list", "--org", org]);
            assert_eq!(
                listed[0]["steps"], def["steps"],
                "YAML and JSON say the same"
            );
        } else {
            import(t, org, &def);
        }
    }

    let ie = local(20, 10, 0);
    let ben = |cid: &str, minute: u32| {
        booking(&c, cid, "P2", "B1", local(23, 10, 0))
            .at(minute)
            .name("Stone", "Ben")
            .set("PID-8", "M")
            .case("C-77", "Left Knee")
    };
    let fired_from = Timestamp::now();
    send_all(
        &c,
        &[
            // patient_created, episode_created, appointment_scheduled, initial_evaluation_scheduled
            booking(&c, "M1", "P1", "A1", ie),
            // appointment_arrived and initial_evaluation_arrived (a new IE, arrived)
            booking(&c, "M2", "P1", "A2", local(0, 9, 0))
                .at(1)
                .status("Arrived"),
            // appointment_canceled, appointment_no_show
            booking(&c, "M3", "P1", "A3", local(21, 10, 0))
                .at(2)
                .follow_up()
                .status("Cancelled"),
            booking(&c, "M4", "P1", "A4", local(22, 10, 0))
                .at(3)
                .follow_up()
                .status("Noshow"),
            // episode_discharged, for Ben
            ben("M5", 4),
            ben("M6", 5).trigger("S14").set("PV1-41", "Inactive"),
        ],
    );
    let fired_to = Timestamp::now();

    let listed = assert_steps(
        t,
        org,
        &[
            "appointment-arrived P1 A2 care_plan scheduled",
            "appointment-canceled P1 A3 email scheduled",
            "appointment-no-show P1 A4 survey scheduled",
            "appointment-scheduled P1 A1 education scheduled",
            "episode-created P1 - survey scheduled",
            "episode-discharged P2 - email scheduled",
            "ie-arrived P1 A2 exercise scheduled",
            "ie-scheduled P1 A1 text scheduled",
            "patient-created P1 - email scheduled",
        ],
    );
    // Due times: `before` exactly, `after` from when its trigger fired.
    for s in &listed {
        let id = s["workflow_id"].as_str().unwrap();
        let (_, _, direction, amount, unit, _) = table.iter().find(|w| w.0 == id).unwrap();
        let due = ts(&s["due_at"]);
        if *direction == "before" {
            assert_eq!(
                due,
                shift(ie, -i64::from(*amount), unit),
                "{id}: {amount} {unit} before the IE"
            );
        } else {
            let amount = i64::from(*amount);
            let (from, to) = (
                shift(fired_from, amount, unit),
                shift(fired_to, amount, unit),
            );
            assert!(
                from <= due && due <= to,
                "{id}: due {due}, not {amount} {unit} after its trigger ({from} to {to})"
            );
        }
    }

    // Per workflow: the delivery's channel, address, content and subject,
    // and how its (text) body starts.
    let p1 = email_of(org, "P1");
    let p2 = email_of(org, "P2");
    let ie_text = format!("{clinic}: see you {}", start_local(ie));
    let assigned = |content: &str, name: &str| {
        let subject = format!("New in your program: {name}");
        (
            json!({"channel": "email", "to": p1, "content_id": content, "subject": subject}),
            "Hi Ana,".to_owned(),
        )
    };
    let emailed = |to: &str, subject: &str, body: String| {
        (
            json!({"channel": "email", "to": to, "content_id": null, "subject": subject}),
            body,
        )
    };
    let expected = [
        (
            "patient-created",
            emailed(&p1, "Hello Ana", format!("Welcome to {clinic}.")),
        ),
        (
            "episode-created",
            assigned(
                "quickdash",
                "QuickDASH (Disabilities of the Arm, Shoulder and Hand)",
            ),
        ),
        (
            "ie-scheduled",
            (
                json!({"channel": "text", "to": MOBILE, "content_id": null, "subject": null}),
                ie_text.clone(),
            ),
        ),
        (
            "appointment-scheduled",
            assigned("welcome-to-therapy", "What to expect from physical therapy"),
        ),
        (
            "ie-arrived",
            assigned("home-exercise-program", "Your home exercise program"),
        ),
        (
            "appointment-arrived",
            assigned("discharge-plan", "Your plan after discharge"),
        ),
        (
            "appointment-canceled",
            emailed(
                &p1,
                "Your Follow Up was canceled",
                format!("Call {clinic} to book again."),
            ),
        ),
        ("appointment-no-show", assigned("nps", "Net Promoter Score")),
        (
            "episode-discharged",
            emailed(&p2, "Goodbye Ben", "Keep moving.".to_owned()),
        ),
    ];
    let unsubscribe = format!("http://{}/unsubscribe/{org}/", t.addr());
    let mut sent = 0;
    for s in &listed {
        let id = s["workflow_id"].as_str().unwrap();
        let due = ts(&s["due_at"]);
        assert_eq!(
            dispatch(t, secs(due, -1)),
            [0, 0, 0],
            "{id}: a second before it is due"
        );
        assert_eq!(dispatch(t, due), [1, 0, 0], "{id}: when it is due");
        sent += 1;
        let out = outbox(t, org);
        assert_eq!(out.len(), sent, "{id}: one more delivery: {out:#?}");
        let d = out
            .iter()
            .find(|d| d["workflow_id"] == id)
            .unwrap_or_else(|| panic!("{id}: no delivery in {out:#?}"));
        let (_, (want, body)) = expected.iter().find(|e| e.0 == id).unwrap();
        let got: serde_json::Map<String, Json> = ["channel", "to", "content_id", "subject"]
            .iter()
            .map(|k| ((*k).to_owned(), d[*k].clone()))
            .collect();
        assert_eq!(&Json::Object(got), want, "{id}: {d:#}");
        assert_eq!(
            (&d["status"], &d["patient_id"]),
            (&json!("sent"), &s["patient_id"]),
            "{id}"
        );
        assert_eq!(ts(&d["sent_at"]), due, "{id}: sent as of the pass");
        let text_body = d["body"].as_str().unwrap();
        assert!(
            text_body.starts_with(body.as_str()),
            "{id}: body {text_body:?}"
        );
        if want["channel"] == "email" {
            let link = unsubscribe_link(d);
            assert!(
                link.starts_with(&format!(
                    "{unsubscribe}{}/",
                    d["patient_id"].as_str().unwrap()
                )),
                "{id}: {link}"
            );
        } else {
            assert!(!text_body.contains("nsubscribe"), "{id}: {text_body:?}");
        }
        assert_eq!(
            dispatch(t, due),
            [0, 0, 0],
            "{id}: a second pass at the same instant"
        );
    }
    let last = ts(&listed.last().unwrap()["due_at"]);
    assert_eq!(
        dispatch(t, shift(last, 1, "months")),
        [0, 0, 0],
        "nothing is left"
    );
    assert_eq!(outbox(t, org).len(), 9);
    let all_sent: Vec<String> = step_summary(&listed)
        .iter()
        .map(|s| s.replace(" scheduled", " sent"))
        .collect();
    assert_eq!(step_summary(&steps(t, org)), all_sent);

    if t.backend == Backend::Aws {
        let state = moto_state();
        for (who, n) in [(&p1, 7), (&p2, 1)] {
            let raw = ses_raw_to(&state, who);
            assert_eq!(raw.len(), n, "SES emails to {who}");
            for r in &raw {
                assert_eq!(header(r, "Subject").len(), 1, "{r}");
                let unsubscribe_header = header(r, "List-Unsubscribe");
                assert!(
                    unsubscribe_header.len() == 1
                        && unsubscribe_header[0].starts_with(&format!("<{unsubscribe}")),
                    "{r}"
                );
                assert_eq!(
                    header(r, "List-Unsubscribe-Post"),
                    ["List-Unsubscribe=One-Click"],
                    "RFC 8058 one-click: {r}"
                );
            }
        }
        assert_eq!(
            sms_starting(&state, &format!("{clinic}:")),
            [(MOBILE.to_owned(), ie_text.clone())],
            "the one text went through SNS"
        );
    }
}

/// An S15 before a `before` reminder is due: the cancel skips the reminder
/// `appointment_canceled` at once, and nothing is sent at its time; another
/// appointment's reminder is unaffected.
fn a_canceled_appointment_skips_its_reminder(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    import_reminder(t, org, 2, "days");
    let (a1, a2) = (local(20, 10, 0), local(21, 11, 0));
    send_all(
        &c,
        &[
            booking(&c, "M1", "P1", "A1", a1),
            booking(&c, "M2", "P1", "A2", a2).at(1).follow_up(),
        ],
    );
    assert_steps(
        t,
        org,
        &[
            "reminder P1 A1 email scheduled",
            "reminder P1 A2 email scheduled",
        ],
    );
    send_all(
        &c,
        &[booking(&c, "M3", "P1", "A1", a1).at(2).trigger("S15")],
    );
    assert_eq!(
        c.patient("P1")["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "A1")
            .unwrap()["status"],
        "canceled"
    );
    assert_steps(
        t,
        org,
        &[
            "reminder P1 A1 email skipped appointment_canceled",
            "reminder P1 A2 email scheduled",
        ],
    );

    assert_eq!(dispatch(t, shift(a1, -2, "days")), [0, 0, 0]);
    assert!(
        outbox(t, org).is_empty(),
        "nothing sent for a canceled appointment"
    );
    assert_eq!(dispatch(t, shift(a2, -2, "days")), [1, 0, 0]);
    assert_eq!(dispatch(t, secs(a2, 60)), [0, 0, 0]);
    assert_eq!(
        t.ok(&["workflow", "show", "--org", org, "--id", "reminder"])["step_counts"],
        json!([{"step": 0, "scheduled": 0, "sent": 1, "skipped": 1, "failed": 0}])
    );
    assert_one_reminder(t, org, a2);
}

/// An S13 with a new start moves the reminder at once: a pass at the old due
/// time sends nothing, a pass a second before the new time nothing, and a
/// pass at it sends once, with the new start.
fn a_rescheduled_appointment_moves_its_reminder(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    import_reminder(t, org, 1, "days");
    let (old, new) = (local(20, 10, 0), local(25, 14, 30));
    send_all(&c, &[booking(&c, "M1", "P1", "A1", old)]);
    let listed = assert_steps(t, org, &["reminder P1 A1 email scheduled"]);
    assert_eq!(ts(&listed[0]["due_at"]), shift(old, -1, "days"));
    send_all(
        &c,
        &[booking(&c, "M2", "P1", "A1", new).at(1).trigger("S13")],
    );
    let moved = assert_steps(t, org, &["reminder P1 A1 email scheduled"]);
    assert_eq!(
        ts(&moved[0]["due_at"]),
        shift(new, -1, "days"),
        "moved with the appointment"
    );

    assert_eq!(
        dispatch(t, shift(old, -1, "days")),
        [0, 0, 0],
        "the old time"
    );
    assert!(outbox(t, org).is_empty());
    assert_eq!(dispatch(t, secs(shift(new, -1, "days"), -1)), [0, 0, 0]);
    assert_eq!(
        dispatch(t, shift(new, -1, "days")),
        [1, 0, 0],
        "the new time"
    );
    assert_eq!(dispatch(t, shift(new, -1, "hours")), [0, 0, 0]);
    assert_steps(t, org, &["reminder P1 A1 email sent"]);
    let sent = assert_one_reminder(t, org, new);
    assert_eq!(ts(&sent["sent_at"]), shift(new, -1, "days"));
}

/// A workflow switched off before its step is due: the step is skipped
/// `workflow_inactive`; appointments booked while it is off get no step, and
/// switching it on again back-fills nothing: only later bookings are enrolled.
fn a_deactivated_workflow_skips_and_never_back_fills(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    import_reminder(t, org, 1, "days");
    let (a1, a2, a3) = (local(20, 10, 0), local(21, 10, 0), local(22, 10, 0));
    send_all(&c, &[booking(&c, "M1", "P1", "A1", a1)]);
    assert_steps(t, org, &["reminder P1 A1 email scheduled"]);
    let off = t.ok(&["workflow", "deactivate", "--org", org, "--id", "reminder"]);
    assert_eq!(off["status"], "inactive");
    send_all(&c, &[booking(&c, "M2", "P1", "A2", a2).at(1).follow_up()]);
    assert_steps(t, org, &["reminder P1 A1 email scheduled"]);

    assert_eq!(dispatch(t, shift(a1, -1, "days")), [0, 1, 0]);
    assert_steps(t, org, &["reminder P1 A1 email skipped workflow_inactive"]);
    let on = t.ok(&["workflow", "activate", "--org", org, "--id", "reminder"]);
    assert_eq!(on["status"], "active");
    assert_eq!(
        t.ok(&["workflow", "list", "--org", org])[0]["status"],
        "active"
    );
    assert_eq!(
        dispatch(t, shift(a2, -1, "days")),
        [0, 0, 0],
        "no back-fill"
    );
    send_all(&c, &[booking(&c, "M3", "P1", "A3", a3).at(2).follow_up()]);
    assert_steps(
        t,
        org,
        &[
            "reminder P1 A1 email skipped workflow_inactive",
            "reminder P1 A3 email scheduled",
        ],
    );
    assert_eq!(dispatch(t, shift(a3, -1, "days")), [1, 0, 0]);
    assert_one_reminder(t, org, a3);
}

/// Each patient-group filter on its own: source, locations, min_age and
/// max_age (whole years, bounds included), gender. A patient outside a
/// group gets no step of it; a pass sends exactly the steps listed.
fn patient_group_filters_choose_who_is_enrolled(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    c.ok(&[
        "location",
        "add",
        "--org",
        org,
        "--id",
        "99",
        "--name",
        "Keizer Clinic",
    ]);
    let after = |subject: &str| {
        [step(
            "after",
            1,
            "days",
            email(subject, "Hi {{ patient.first_name }}."),
        )]
    };
    for (id, group) in [
        ("emr", json!({"source": "emr"})),
        ("cliniko", json!({"source": "cliniko"})),
        ("any", json!({"source": "any"})),
        ("at-12", json!({"locations": ["12"]})),
        ("at-99", json!({"locations": ["99", "98"]})),
        ("adults", json!({"min_age": 18, "max_age": 80})),
        ("women", json!({"gender": "female"})),
        ("young-men", json!({"gender": "male", "max_age": 17})),
    ] {
        import(
            t,
            org,
            &workflow(id, "initial_evaluation_scheduled", group, &after(id)),
        );
    }
    // Birth dates in whole years before today, less a month: ages 17, 80 and 81.
    let born = |years: i64| {
        today()
            .checked_sub(years.years())
            .and_then(|d| d.checked_sub(1.months()))
            .unwrap()
            .strftime("%Y%m%d")
            .to_string()
    };
    let start = local(20, 10, 0);
    let patient = |cid: &str, id: &str, minute: u32| {
        booking(&c, cid, id, &format!("A-{id}"), start).at(minute)
    };
    send_all(
        &c,
        &[
            // 41, female, at 12.
            patient("M1", "PA", 1),
            // 17, male, at 99.
            patient("M2", "PB", 2)
                .name("Young", "Bo")
                .set("PID-7", &born(17))
                .set("PID-8", "M")
                .clinic("99"),
            // 81, female, at 12.
            patient("M3", "PC", 3)
                .name("Old", "Cy")
                .set("PID-7", &born(81)),
            // 80, male, at 12.
            patient("M4", "PD", 4)
                .name("Eighty", "Di")
                .set("PID-7", &born(80))
                .set("PID-8", "M"),
        ],
    );
    let expected = [
        "adults PA - email scheduled",
        "adults PD - email scheduled",
        "any PA - email scheduled",
        "any PB - email scheduled",
        "any PC - email scheduled",
        "any PD - email scheduled",
        "at-12 PA - email scheduled",
        "at-12 PC - email scheduled",
        "at-12 PD - email scheduled",
        "at-99 PB - email scheduled",
        "emr PA - email scheduled",
        "emr PB - email scheduled",
        "emr PC - email scheduled",
        "emr PD - email scheduled",
        "women PA - email scheduled",
        "women PC - email scheduled",
        "young-men PB - email scheduled",
    ];
    // (The trigger is an appointment's: its steps carry the appointment.)
    let expected: Vec<String> = expected
        .iter()
        .map(|e| {
            let p = e.split(' ').nth(1).unwrap();
            e.replace(" - ", &format!(" A-{p} "))
        })
        .collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_steps(t, org, &expected);
    assert_eq!(dispatch(t, shift(Timestamp::now(), 2, "days")), [17, 0, 0]);
    let out = outbox(t, org);
    let mut got: Vec<String> = out
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["subject"].as_str().unwrap(),
                d["patient_id"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = expected
        .iter()
        .map(|e| {
            let mut w = e.split(' ');
            format!("{} {}", w.next().unwrap(), w.next().unwrap())
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// The unsubscribe link at the end of an email, followed on the served
/// endpoint: a GET (a browser, or a mail scanner) shows a page with one
/// button and changes nothing; a POST (that button's plain form, or a mail
/// client's RFC 8058 one-click) unsubscribes: 200, and the
/// patient's next email is skipped `unsubscribed` (texts still go, until a
/// text opt-out: `text_opt_out`). A link
/// with a tampered token, or one patient's token on another's path, is a 404
/// and changes nothing. `workflow show` counts each step's outcomes.
fn following_the_unsubscribe_link_stops_later_emails(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    import(
        t,
        org,
        &workflow(
            "countdown",
            "appointment_scheduled",
            json!({}),
            &[
                step("before", 5, "days", email("In five days", "First.")),
                step("before", 3, "days", email("In three days", "Second.")),
                step("before", 2, "days", text("{{ clinic.name }}: in two days")),
            ],
        ),
    );
    let start = local(20, 10, 0);
    send_all(
        &c,
        &[
            booking(&c, "M1", "P1", "A1", start),
            booking(&c, "M2", "P2", "A2", start).at(1),
            booking(&c, "M3", "P3", "A3", start).at(2),
        ],
    );
    assert_eq!(dispatch(t, shift(start, -5, "days")), [3, 0, 0]);
    let first = outbox(t, org);
    let link = |p: &str| {
        let d = first
            .iter()
            .find(|d| d["patient_id"] == p)
            .unwrap_or_else(|| panic!("no email to {p}: {first:#?}"));
        let url = unsubscribe_link(d);
        let prefix = format!("http://{}", t.addr());
        let path = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{url} is not on {prefix}"))
            .to_owned();
        assert!(
            path.starts_with(&format!("/unsubscribe/{org}/{p}/")),
            "{path}"
        );
        path
    };
    let (l1, l2, l3) = (link("P1"), link("P2"), link("P3"));
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    // Tampered: another token; P1's token on P3's path; a POST likewise.
    let mut tampered = l3.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let borrowed = l3.replace(
        l3.rsplit('/').next().unwrap(),
        l1.rsplit('/').next().unwrap(),
    );
    for (method, path) in [("GET", &tampered), ("GET", &borrowed), ("POST", &tampered)] {
        let (status, body) = t.request(method, path, form, b"List-Unsubscribe=One-Click");
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    for path in [&l1, &l2, &l3] {
        let (status, body) = t.request("GET", path, "", b"");
        assert_eq!(status, 200, "GET {path}: {body}");
        assert!(body.contains("<form method=\"post\">"), "{body}");
        assert!(!body.contains("You are unsubscribed"), "{body}");
    }
    for p in ["P1", "P2", "P3"] {
        assert_eq!(c.patient(p)["unsubscribed"], false, "a GET changes nothing");
    }
    // The page's button (a plain form POST) and a mail client's one-click.
    let (status, body) = t.request("POST", &l1, "", b"");
    assert_eq!(status, 200, "POST {l1}: {body}");
    assert!(body.contains("You are unsubscribed"), "{body}");
    let (status, body) = t.request("POST", &l2, form, b"List-Unsubscribe=One-Click");
    assert_eq!(status, 200, "POST {l2}: {body}");
    assert!(body.contains("You are unsubscribed"), "{body}");
    assert_eq!(
        t.request("POST", &l1, form, b"List-Unsubscribe=One-Click")
            .0,
        200,
        "following it again is fine"
    );

    assert_eq!(dispatch(t, shift(start, -3, "days")), [1, 2, 0]);
    let listed = steps(t, org);
    for (p, status) in [("P1", "skipped"), ("P2", "skipped"), ("P3", "sent")] {
        let s = listed
            .iter()
            .find(|s| s["patient_id"] == p && s["step"] == 1)
            .unwrap();
        assert_eq!(s["status"], status, "{p}: {s:#}");
        if status == "skipped" {
            assert_eq!(s["note"], "unsubscribed", "{p}");
        }
    }
    let flags = |p: &str| {
        let shown = c.patient(p);
        (shown["unsubscribed"].clone(), shown["text_opt_out"].clone())
    };
    assert_eq!(flags("P1"), (json!(true), json!(false)));
    assert_eq!(flags("P2"), (json!(true), json!(false)));
    assert_eq!(flags("P3"), (json!(false), json!(false)));
    // The unsubscribe link is for emails; a text opt-out (an SMS STOP) is its own.
    t.ok(&[
        "patient",
        "opt-out",
        "--org",
        org,
        "--id",
        "P2",
        "--channel",
        "text",
    ]);
    assert_eq!(flags("P2"), (json!(true), json!(true)));
    assert_eq!(dispatch(t, shift(start, -2, "days")), [2, 1, 0]);
    let p2_text = steps(t, org)
        .into_iter()
        .find(|s| s["patient_id"] == "P2" && s["step"] == 2)
        .unwrap();
    assert_eq!(
        (&p2_text["status"], &p2_text["note"]),
        (&json!("skipped"), &json!("text_opt_out"))
    );
    let p1_steps = t.ok(&["workflow", "steps", "--org", org, "--patient", "P1"]);
    assert_eq!(
        step_summary(p1_steps.as_array().unwrap()),
        [
            "countdown P1 A1 email sent",
            "countdown P1 A1 email skipped unsubscribed",
            "countdown P1 A1 text sent",
        ]
    );
    let counts: Vec<Json> =
        t.ok(&["workflow", "show", "--org", org, "--id", "countdown"])["step_counts"]
            .as_array()
            .unwrap()
            .clone();
    assert_eq!(
        counts,
        [
            json!({"step": 0, "scheduled": 0, "sent": 3, "skipped": 0, "failed": 0}),
            json!({"step": 1, "scheduled": 0, "sent": 1, "skipped": 2, "failed": 0}),
            json!({"step": 2, "scheduled": 0, "sent": 2, "skipped": 1, "failed": 0}),
        ]
    );
    let out = outbox(t, org);
    let (p1, p2, p3) = (
        email_of(org, "P1"),
        email_of(org, "P2"),
        email_of(org, "P3"),
    );
    let mut want = vec![
        format!("countdown P1 email {p1}"),
        format!("countdown P1 text {MOBILE}"),
        format!("countdown P2 email {p2}"),
        format!("countdown P3 email {p3}"),
        format!("countdown P3 email {p3}"),
        format!("countdown P3 text {MOBILE}"),
    ];
    want.sort();
    assert_eq!(outbox_summary(&out), want);

    if t.backend == Backend::Aws {
        let state = moto_state();
        for (address, path, n) in [(&p1, &l1, 1), (&p2, &l2, 1), (&p3, &l3, 2)] {
            let raw = ses_raw_to(&state, address);
            assert_eq!(raw.len(), n, "SES emails to {address}");
            assert_eq!(
                header(&raw[0], "List-Unsubscribe"),
                [format!("<http://{}{path}>", t.addr())]
            );
        }
    }
}

/// Texts go out between 08:00 and 21:00 on the clinic's clock. Reminders
/// due at 20:00, 21:00, 23:00 and 06:00: the 20:00 one is sent at 20:00, the
/// rest wait (due again at 08:00) and go in the 08:00 pass; an email due at
/// 23:00 is sent at 23:00.
fn texts_wait_for_the_daytime_window(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let day = day_without_dst_change(20);
    let start = local(day, 10, 0);
    import(
        t,
        org,
        &workflow(
            "night",
            "appointment_scheduled",
            json!({}),
            &[
                step("before", 14, "hours", text("{{ clinic.name }}: 20:00")),
                step("before", 13, "hours", text("{{ clinic.name }}: 21:00")),
                step("before", 11, "hours", text("{{ clinic.name }}: 23:00")),
                step("before", 11, "hours", email("23:00", "An email at night.")),
                step("before", 4, "hours", text("{{ clinic.name }}: 06:00")),
            ],
        ),
    );
    send_all(&c, &[booking(&c, "M1", "P1", "A1", start)]);
    let eight = local(day, 8, 0);
    let due = |s: &Json| local_rfc3339(ts(&s["due_at"]));
    let listed = steps(t, org);
    let dues: Vec<String> = listed.iter().map(due).collect();
    assert_eq!(
        dues,
        [
            local_rfc3339(local(day - 1, 20, 0)),
            local_rfc3339(local(day - 1, 21, 0)),
            local_rfc3339(local(day - 1, 23, 0)),
            local_rfc3339(local(day - 1, 23, 0)),
            local_rfc3339(local(day, 6, 0)),
        ]
    );
    assert_eq!(
        dispatch(t, local(day - 1, 20, 0)),
        [1, 0, 0],
        "20:00: the 20:00 text"
    );
    assert_eq!(
        dispatch(t, local(day - 1, 21, 0)),
        [0, 0, 0],
        "21:00: outside the window"
    );
    assert_eq!(
        dispatch(t, local(day - 1, 23, 0)),
        [1, 0, 0],
        "23:00: the email only"
    );
    assert_eq!(dispatch(t, local(day, 6, 0)), [0, 0, 0], "06:00: not yet");
    let waiting: Vec<Json> = steps(t, org)
        .into_iter()
        .filter(|s| s["status"] == "scheduled")
        .collect();
    assert_eq!(waiting.len(), 3, "{waiting:#?}");
    for s in &waiting {
        assert_eq!(s["kind"], "text");
        assert_eq!(ts(&s["due_at"]), eight, "waits for 08:00: {s:#}");
    }
    assert_eq!(dispatch(t, secs(eight, -1)), [0, 0, 0], "07:59:59");
    assert_eq!(dispatch(t, eight), [3, 0, 0], "08:00");
    assert_eq!(dispatch(t, local(day, 9, 0)), [0, 0, 0]);
    let out = outbox(t, org);
    let mut sent: Vec<(String, String)> = out
        .iter()
        .map(|d| {
            (
                local_rfc3339(ts(&d["sent_at"])),
                d["subject"]
                    .as_str()
                    .map_or_else(|| d["body"].as_str().unwrap().to_owned(), str::to_owned),
            )
        })
        .collect();
    sent.sort();
    let clinic = format!("{org} PT");
    let mut want = vec![
        (
            local_rfc3339(local(day - 1, 20, 0)),
            format!("{clinic}: 20:00"),
        ),
        (local_rfc3339(local(day - 1, 23, 0)), "23:00".to_owned()),
        (local_rfc3339(eight), format!("{clinic}: 21:00")),
        (local_rfc3339(eight), format!("{clinic}: 23:00")),
        (local_rfc3339(eight), format!("{clinic}: 06:00")),
    ];
    want.sort();
    assert_eq!(sent, want);
    if t.backend == Backend::Aws {
        let state = moto_state();
        assert_eq!(
            sms_starting(&state, &format!("{clinic}:")).len(),
            4,
            "texts through SNS"
        );
    }
}

/// HL7 values reach templates as data: a last name `<script>..` is escaped
/// in the HTML part, and CR LF in the first name (HL7 hex escapes) does not
/// break the subject line, so no header can be added (on moto: the raw MIME
/// has one Subject and no Bcc).
fn patient_fields_cannot_inject_html_or_headers(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    import(
        t,
        org,
        &workflow(
            "hello",
            "patient_created",
            json!({}),
            &[step(
                "after",
                1,
                "hours",
                email(
                    "Hello {{ patient.first_name }} {{ patient.last_name }}",
                    "Dear {{ patient.first_name }} {{ patient.last_name }},\n\nWelcome.",
                ),
            )],
        ),
    );
    let msg = booking(&c, "M1", "P1", "A1", local(20, 10, 0)).name(
        "<script>alert(1)</script>",
        r"Ana\X0D\\X0A\Bcc: x@evil.example",
    );
    send_all(&c, &[msg]);
    let p = c.patient("P1");
    assert_eq!(
        p["first_name"], "Ana\r\nBcc: x@evil.example",
        "the escapes are decoded"
    );
    assert_eq!(p["last_name"], "<script>alert(1)</script>");
    let listed = assert_steps(t, org, &["hello P1 - email scheduled"]);
    assert_eq!(dispatch(t, ts(&listed[0]["due_at"])), [1, 0, 0]);
    let out = outbox(t, org);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0]["subject"], "Hello Ana Bcc: x@evil.example <script>alert(1)</script>",
        "one line"
    );
    let html = match t.backend {
        Backend::Local => {
            let all = local_html(t, org);
            assert_eq!(all.len(), 1);
            all[0].clone()
        }
        Backend::Aws => {
            let raw = ses_raw_to(&moto_state(), &email_of(org, "P1"));
            assert_eq!(raw.len(), 1, "one email through SES");
            let raw = &raw[0];
            assert_eq!(
                header(raw, "Subject"),
                ["Hello Ana Bcc: x@evil.example <script>alert(1)</script>"],
                "one Subject, on one line: {raw}"
            );
            assert!(header(raw, "Bcc").is_empty(), "no injected header: {raw}");
            assert_eq!(header(raw, "List-Unsubscribe").len(), 1, "{raw}");
            mime_part(raw, "text/html")
        }
    };
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
}

/// Two `tendon dispatch --at` processes at once over 30 patients' steps due
/// at the same instant: each step is sent exactly once (the reports add up
/// to 30, the outbox has 30, and on moto SES took one email per patient).
fn concurrent_passes_send_each_step_once(t: &Tendon, org: &str) {
    const PATIENTS: usize = 30;
    let c = t.clinic(org);
    import_reminder(t, org, 1, "days");
    let start = local(20, 10, 0);
    let ids = book_patients(&c, PATIENTS, start);
    assert_eq!(steps(t, org).len(), PATIENTS);
    let due = shift(start, -1, "days");
    let (one, two) = (spawn_dispatch(t, due, "50"), spawn_dispatch(t, due, "50"));
    let (one, two) = (report_of(one), report_of(two));
    assert_eq!(
        [0, 1, 2].map(|i| one[i] + two[i]),
        [PATIENTS as u64, 0, 0],
        "the two passes together: {one:?} and {two:?}"
    );
    assert_eq!(dispatch(t, due), [0, 0, 0]);
    let out = outbox(t, org);
    let mut to: Vec<String> = out
        .iter()
        .map(|d| d["patient_id"].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(to, ids, "one delivery per patient");
    assert!(steps(t, org).iter().all(|s| s["status"] == "sent"));
    if t.backend == Backend::Aws {
        let state = moto_state();
        for p in &ids {
            assert_eq!(
                ses_raw_to(&state, &email_of(org, p)).len(),
                1,
                "SES emails to {p}"
            );
        }
    }
}

/// `workflow install-defaults`, then the worked example (with its IE 20 days
/// out): `workflow simulate` shows the patient's timeline on the clinic's
/// clock (offset included): the welcome email and education at once, the
/// reminders and the MIPS measure the day before. The steps due now are sent
/// once, whether by serve's own pass or by ours; after the IE arrives, the
/// home program's reminder shows its projected repeats two weeks apart. A
/// second IE is reminded but not welcomed again (`first_only`).
fn default_workflows_simulate_a_local_timeline(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let installed = t.ok(&["workflow", "install-defaults", "--org", org]);
    let ids: Vec<&str> = installed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"welcome-emr") && ids.contains(&"appointment-reminder-emr"),
        "{ids:?}"
    );
    assert_eq!(
        t.ok(&["workflow", "list", "--org", org])
            .as_array()
            .unwrap()
            .len(),
        ids.len()
    );
    let start = local(20, 10, 0);
    let before = Timestamp::now();
    send_all(&c, &[booking(&c, "M1", "P555", "A1", start)]);
    let after = Timestamp::now();

    let simulate = || t.ok(&["workflow", "simulate", "--org", org, "--patient", "P555"]);
    let timeline = simulate();
    let entries = timeline.as_array().expect("simulate prints an array");
    assert!(!entries.is_empty());
    let row = |e: &Json| {
        format!(
            "{} {} {}",
            e["workflow_id"].as_str().unwrap(),
            e["step"],
            e["kind"].as_str().unwrap()
        )
    };
    let mut rows: Vec<String> = entries.iter().map(row).collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            "appointment-reminder-emr 0 email",
            "appointment-reminder-emr 1 text",
            "mips-pro-at-ie-emr 0 survey",
            "welcome-emr 0 email",
            "welcome-emr 1 education",
        ],
        "{timeline:#}"
    );
    let day_before = local_rfc3339(shift(start, -1, "days"));
    for e in entries {
        let at = e["at"].as_str().unwrap();
        let instant: Timestamp = at.parse().expect("RFC 3339");
        assert_eq!(at, local_rfc3339(instant), "on the clinic's clock: {e:#}");
        if e["workflow_id"] == "welcome-emr" {
            assert!(
                before <= secs(instant, 1) && instant <= after,
                "at once: {e:#}"
            );
        } else {
            assert_eq!(at, day_before, "{e:#}");
        }
    }
    let preview = |id: &str, step: u64| {
        entries
            .iter()
            .find(|e| e["workflow_id"] == id && e["step"] == step)
            .unwrap()["preview"]
            .clone()
    };
    assert_eq!(
        preview("welcome-emr", 0),
        format!("Welcome to {org} PT, Ana")
    );
    assert_eq!(
        preview("mips-pro-at-ie-emr", 0),
        "New in your program: QuickDASH (Disabilities of the Arm, Shoulder and Hand)"
    );
    assert_eq!(
        preview("appointment-reminder-emr", 1),
        format!(
            "{org} PT: reminder of your appointment on {}.",
            start_local(start)
        )
    );

    // Due now: serve's pass or this one sends them, once.
    let _ = dispatch(t, Timestamp::now());
    let sent = eventually(t, "the welcome steps sent", || {
        let out = outbox(t, org);
        (out.len() == 2 && out.iter().all(|d| d["status"] == "sent")).then_some(out)
    });
    let mut what: Vec<(String, Json)> = sent
        .iter()
        .map(|d| {
            (
                d["workflow_id"].as_str().unwrap().to_owned(),
                d["content_id"].clone(),
            )
        })
        .collect();
    what.sort_by_key(|w| w.1.is_string());
    assert_eq!(
        what,
        [
            ("welcome-emr".to_owned(), Json::Null),
            ("welcome-emr".to_owned(), json!("welcome-to-therapy"))
        ]
    );
    let statuses: Vec<String> = simulate()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", row(e), e["status"].as_str().unwrap()))
        .filter(|r| r.starts_with("welcome"))
        .collect();
    assert_eq!(
        statuses,
        ["welcome-emr 0 email sent", "welcome-emr 1 education sent"]
    );

    // The IE arrives: the home program's reminder repeats every 2 weeks.
    send_all(
        &c,
        &[booking(&c, "M2", "P555", "A1", start)
            .at(1)
            .trigger("S14")
            .status("Arrived")],
    );
    let timeline = simulate();
    let program: Vec<&Json> = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["workflow_id"] == "home-program-emr" && e["step"] == 1)
        .collect();
    let shown: Vec<(u64, &str)> = program
        .iter()
        .map(|e| {
            (
                e["occurrence"].as_u64().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (0, "scheduled"),
            (1, "projected"),
            (2, "projected"),
            (3, "projected")
        ]
    );
    let first: Timestamp = program[0]["at"].as_str().unwrap().parse().unwrap();
    for (i, e) in program.iter().enumerate() {
        let at = e["at"].as_str().unwrap();
        assert_eq!(
            at,
            local_rfc3339(shift(first, 2 * i as i64, "weeks")),
            "{e:#}"
        );
    }

    // A second IE, on a new (knee) case: reminded and measured too (KOS for
    // the knee), but welcomed once (`first_only`).
    let knee = local(30, 10, 0);
    send_all(
        &c,
        &[booking(&c, "M3", "P555", "A5", knee)
            .at(2)
            .case("C-43", "Left Knee")],
    );
    let all = steps(t, org);
    let count = |id: &str| all.iter().filter(|s| s["workflow_id"] == id).count();
    assert_eq!(
        [
            count("welcome-emr"),
            count("appointment-reminder-emr"),
            count("mips-pro-at-ie-emr")
        ],
        [2, 4, 2],
        "{all:#?}"
    );
    let measure = simulate()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["workflow_id"] == "mips-pro-at-ie-emr"
                && e["at"] == local_rfc3339(shift(knee, -1, "days"))
        })
        .cloned()
        .expect("the knee case's measure");
    assert_eq!(
        measure["preview"],
        "New in your program: Knee Outcome Survey - Activities of Daily Living (KOS-ADLS)"
    );
}

/// A repeating email (after 1 day, then every week, at most 3 sends): sent
/// at +1 day, +8 days and +15 days, each a week after the first on the
/// clinic's clock, and never a fourth time.
fn a_repeat_counts_on_from_the_first_send_up_to_max(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let mut def = workflow(
        "weekly",
        "initial_evaluation_scheduled",
        json!({}),
        &[step(
            "after",
            1,
            "days",
            email("Week {{ patient.first_name }}", "Keep going."),
        )],
    );
    def["steps"][0]["schedule"]["repeat"] = json!({"every": 1, "unit": "weeks", "max": 3});
    import(t, org, &def);
    send_all(&c, &[booking(&c, "M1", "P1", "A1", local(40, 10, 0))]);
    let first = ts(&assert_steps(t, org, &["weekly P1 A1 email scheduled"])[0]["due_at"]);
    for n in 0..3 {
        let due = shift(first, n, "weeks");
        assert_eq!(
            dispatch(t, secs(due, -1)),
            [0, 0, 0],
            "send {n}: not before"
        );
        assert_eq!(dispatch(t, due), [1, 0, 0], "send {n}");
        let listed = steps(t, org);
        assert_eq!(listed.len() as i64, (n + 2).min(3), "{listed:#?}");
    }
    assert_eq!(dispatch(t, shift(first, 6, "weeks")), [0, 0, 0], "max 3");
    let sent: Vec<Timestamp> = outbox(t, org).iter().map(|d| ts(&d["sent_at"])).collect();
    let want: Vec<Timestamp> = (0..3).map(|n| shift(first, n, "weeks")).collect();
    let mut sent_sorted = sent.clone();
    sent_sorted.sort();
    assert_eq!(sent_sorted, want);
    assert_steps(
        t,
        org,
        &[
            "weekly P1 A1 email sent",
            "weekly P1 A1 email sent",
            "weekly P1 A1 email sent",
        ],
    );
}

/// `workflow import` refuses a definition that cannot work and says which
/// part is wrong; nothing is stored.
fn import_says_which_part_of_a_definition_is_wrong(t: &Tendon, org: &str) {
    t.clinic(org);
    let good = workflow(
        "good",
        "patient_created",
        json!({}),
        &[step("after", 1, "days", email("Hi", "Hello."))],
    );
    let broken = |path: &[&str], value: Json| {
        let mut def = good.clone();
        let mut slot = &mut def;
        for key in path {
            slot = match key.parse::<usize>() {
                Ok(i) => &mut slot[i],
                Err(_) => &mut slot[*key],
            };
        }
        *slot = value;
        def
    };
    let cases = [
        (
            broken(&["patient_group", "shoe_size"], json!(9)),
            "shoe_size",
        ),
        (
            broken(&["trigger", "event"], json!("appointment_rescheduled")),
            "trigger.event",
        ),
        (
            broken(&["steps", "0", "schedule", "direction"], json!("before")),
            "steps[0].schedule.direction",
        ),
        (
            broken(&["steps", "0", "schedule", "unit"], json!("fortnights")),
            "fortnights",
        ),
        (
            broken(
                &["steps", "0", "schedule", "repeat"],
                json!({"every": 1, "unit": "weeks"}),
            ),
            "steps[0].schedule.repeat",
        ),
        (
            broken(
                &["steps", "0", "task", "subject"],
                json!("Hi {{ patient.first_name"),
            ),
            "steps[0].task",
        ),
        (
            broken(
                &["steps", "0", "task"],
                json!({"kind": "survey", "content": "no-such-survey"}),
            ),
            "steps[0].task.content",
        ),
        (
            broken(
                &["steps", "0", "task"],
                json!({"kind": "education", "content": "nps"}),
            ),
            "steps[0].task.content",
        ),
        (
            broken(&["patient_group"], json!({"min_age": 80, "max_age": 18})),
            "min_age",
        ),
        (broken(&["steps"], json!([])), "steps"),
    ];
    for (def, says) in &cases {
        let (ok, out, err) = try_import(t, org, &def.to_string(), "json");
        assert!(!ok, "accepted {def}: {out}");
        assert!(
            err.contains(says),
            "the error for {def} should name {says:?}: {err}"
        );
        assert_eq!(out, Json::Null, "nothing on stdout");
    }
    let (ok, _, err) = try_import(t, org, "title: [unclosed", "yaml");
    assert!(!ok && err.contains("YAML"), "{err}");
    assert_eq!(t.ok(&["workflow", "list", "--org", org]), json!([]));
    import(t, org, &good);
}

/// `assignment complete` on the survey a workflow assigned ends a repeat
/// `until: assignments_complete`: the weekly nudge goes while the survey is
/// open, and is skipped `repeat_exit` after; `workflow show` counts each
/// step's sends. An assignment completes once, and only a sent survey or
/// exercise is one.
fn completing_the_assigned_survey_ends_a_repeat(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    let mut def = workflow(
        "nudge",
        "initial_evaluation_scheduled",
        json!({}),
        &[
            step("after", 1, "hours", assign("survey", "nps")),
            step(
                "after",
                1,
                "days",
                email("Your survey is waiting", "Hi {{ patient.first_name }}."),
            ),
        ],
    );
    def["steps"][1]["schedule"]["repeat"] =
        json!({"every": 1, "unit": "weeks", "until": ["assignments_complete"], "max": 10});
    import(t, org, &def);
    send_all(&c, &[booking(&c, "M1", "P1", "A1", local(40, 10, 0))]);
    let listed = assert_steps(
        t,
        org,
        &[
            "nudge P1 A1 email scheduled",
            "nudge P1 A1 survey scheduled",
        ],
    );
    let (survey_due, nudge_due) = (ts(&listed[0]["due_at"]), ts(&listed[1]["due_at"]));
    assert_eq!(dispatch(t, survey_due), [1, 0, 0], "the survey");
    assert_eq!(dispatch(t, nudge_due), [1, 0, 0], "the first nudge");
    assert_eq!(
        dispatch(t, shift(nudge_due, 1, "weeks")),
        [1, 0, 0],
        "open: nudged again"
    );
    let out = outbox(t, org);
    let id_of = |content: Json| {
        out.iter()
            .find(|d| d["content_id"] == content)
            .and_then(|d| d["id"].as_str())
            .unwrap_or_else(|| panic!("no delivery with an id for {content}: {out:#?}"))
            .to_owned()
    };
    let (survey, nudge) = (id_of(json!("nps")), id_of(Json::Null));
    let show = |what: &str| {
        t.ok(&["workflow", "show", "--org", org, "--id", "nudge"])["step_counts"]
            .clone()
            .as_array()
            .unwrap_or_else(|| panic!("workflow show prints step_counts ({what})"))
            .iter()
            .map(|c| {
                [
                    &c["step"],
                    &c["scheduled"],
                    &c["sent"],
                    &c["skipped"],
                    &c["failed"],
                ]
                .map(|n| n.as_u64().unwrap())
            })
            .collect::<Vec<[u64; 5]>>()
    };
    // [step, scheduled, sent, skipped, failed]
    assert_eq!(show("open"), [[0, 0, 1, 0, 0], [1, 1, 2, 0, 0]]);

    let done = t.ok(&[
        "assignment",
        "complete",
        "--org",
        org,
        "--delivery",
        &survey,
    ]);
    assert_eq!(done["completed"], true, "{done}");
    for (id, why) in [
        (&survey, "completed already"),
        (&nudge, "an email is no assignment"),
    ] {
        let (ok, _, err) = t.cli(&["assignment", "complete", "--org", org, "--delivery", id]);
        assert!(!ok, "{why}");
        assert!(err.contains("no open assignment"), "{why}: {err}");
    }
    assert_eq!(
        dispatch(t, shift(nudge_due, 2, "weeks")),
        [0, 1, 0],
        "complete: no more nudges"
    );
    let last = steps(t, org).into_iter().last().unwrap();
    assert_eq!(
        (&last["status"], &last["note"], &last["occurrence"]),
        (&json!("skipped"), &json!("repeat_exit"), &json!(2))
    );
    assert_eq!(dispatch(t, shift(nudge_due, 3, "weeks")), [0, 0, 0]);
    assert_eq!(outbox(t, org).len(), 3);
    assert_eq!(show("complete"), [[0, 0, 1, 0, 0], [1, 0, 2, 1, 0]]);
}

/// An S13 moving the appointment EARLIER moves its reminder earlier too:
/// the reminder is sent a day before the new start, once (the move's commit
/// re-times it; a step re-timed only when claimed at its old due time would
/// be claimed after the new start and lost).
fn a_reminder_moves_with_an_appointment_moved_earlier(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    import_reminder(t, org, 1, "days");
    let (old, new) = (local(20, 10, 0), local(10, 10, 0));
    let moved = booking(&c, "M2", "P1", "A1", new).at(1).trigger("S13");
    send_all(&c, &[booking(&c, "M1", "P1", "A1", old), moved]);
    assert_eq!(
        dispatch(t, shift(new, -1, "days")),
        [1, 0, 0],
        "a day before the new start"
    );
    assert_eq!(
        dispatch(t, shift(old, -1, "days")),
        [0, 0, 0],
        "the old time"
    );
    assert_steps(t, org, &["reminder P1 A1 email sent"]);
    assert_one_reminder(t, org, new);
}

/// Canceled (S15), then booked again (S14 `Booked`) at another time before
/// the reminder was due: one reminder, a day before the new start (the
/// cancel skips the first booking's step; the re-booking schedules one).
fn a_canceled_then_rebooked_appointment_is_reminded_once(t: &Tendon, org: &str) {
    let c = t.clinic(org);
    import_reminder(t, org, 1, "days");
    let (first, again) = (local(20, 10, 0), local(22, 10, 0));
    send_all(
        &c,
        &[
            booking(&c, "M1", "P1", "A1", first),
            booking(&c, "M2", "P1", "A1", first).at(1).trigger("S15"),
            booking(&c, "M3", "P1", "A1", again)
                .at(2)
                .trigger("S14")
                .status("Booked"),
        ],
    );
    let _ = dispatch(t, shift(first, -1, "days"));
    let _ = dispatch(t, shift(again, -1, "days"));
    assert_one_reminder(t, org, again);
    if t.backend == Backend::Aws {
        assert_eq!(
            ses_raw_to(&moto_state(), &email_of(org, "P1")).len(),
            1,
            "one email through SES"
        );
    }
}

/// A pass that runs late (EventBridge retries an invocation, or a pass with
/// a backlog runs for minutes) and the pass of 6 minutes later, at once:
/// each step is still sent once: a claim is leased by the real time, not
/// the pass's `at` (leased from `at`, the late pass's claims would have
/// expired as it took them, and the next pass would send them again).
fn a_late_pass_and_the_next_one_send_each_step_once(t: &Tendon, org: &str) {
    const PATIENTS: usize = 30;
    let c = t.clinic(org);
    import_reminder(t, org, 1, "days");
    let start = local(20, 10, 0);
    let ids = book_patients(&c, PATIENTS, start);
    let due = shift(start, -1, "days");
    // The late pass (as of T) starts, slowly; once it is sending, the pass
    // of T + 6 minutes starts.
    let late = spawn_dispatch(t, due, "2");
    eventually(t, "the late pass sending", || {
        (!outbox(t, org).is_empty()).then_some(())
    });
    let next = spawn_dispatch(t, secs(due, 360), "50");
    let sent = report_of(late)[0] + report_of(next)[0];
    assert_eq!(sent, PATIENTS as u64, "the two passes sent each step once");
    assert_eq!(outbox(t, org).len(), PATIENTS);
    // Locally the outbox table is the mailer (one row per delivery key): SES
    // shows a double send for sure.
    if t.backend == Backend::Aws {
        let state = moto_state();
        let twice: Vec<&String> = ids
            .iter()
            .filter(|p| ses_raw_to(&state, &email_of(org, p)).len() != 1)
            .collect();
        assert!(
            twice.is_empty(),
            "SES did not take exactly one email for {twice:?}"
        );
    }
}
