//! The Cliniko sync (docs/cliniko.md, docs/interface.md §4 and §5) end to end on both
//! backends: `tendon cliniko connect|sync|failures` and the "Open in" route
//! of the real `tendon serve`, against a Cliniko test server
//! (`tendon-fake-cliniko`) that speaks Cliniko's documented JSON. Each
//! scenario has its own org and its own Cliniko server; they share one
//! deployment.
//!
//! `TENDON_SCENARIO=substring` runs only the matching scenarios.
mod common;

use std::sync::OnceLock;

use common::{Backend, Deployments, Scenario, Tendon, case_episode, run_scenarios};
use serde_json::{Value as Json, json};
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee, ClinikoBusiness, ClinikoCase,
    ClinikoGroupAppointment, ClinikoPatient, ClinikoPhone, ClinikoPractitioner,
};
use tendon_fake_cliniko::FakeCliniko;

const SCENARIOS: &[(&str, Scenario)] = crate::scenarios![
    a_first_sync_imports_every_page_and_saves_the_failures,
    a_re_sync_takes_only_changes_and_cliniko_wins,
    archived_deleted_and_merged_patients_stop_their_workflows,
    the_open_in_button_syncs_one_patient_then_redirects,
    connect_checks_the_key_and_never_shows_it,
    sync_rides_out_rate_limits_and_server_errors,
    appointments_make_episodes_and_drive_workflows,
    numbers_sex_and_the_user_agent_as_clinics_have_them,
    former_staff_archived_types_two_zones_and_a_class,
];

#[test]
fn cliniko_on_the_local_backend() {
    run_scenarios(Backend::Local, "cl", SCENARIOS, Deployments::Shared);
}

#[test]
fn cliniko_on_the_aws_backend() {
    run_scenarios(Backend::Aws, "cl", SCENARIOS, Deployments::Shared);
}

#[test]
fn the_scheduled_re_sync_takes_every_org_and_reports_each() {
    for backend in [Backend::Local, Backend::Aws] {
        every_org_is_synced_and_one_failure_stops_no_other(backend);
    }
}

/// `cliniko sync --all` (what the 15-minute function runs): every connected
/// org is synced; an org whose key Cliniko now refuses is reported with its
/// error, and the others still sync.
fn every_org_is_synced_and_one_failure_stops_no_other(backend: Backend) {
    let mut t = Tendon::new(backend, "clall");
    t.serve();
    let servers: Vec<FakeCliniko> = (0..3).map(|_| cliniko()).collect();
    for (i, server) in servers.iter().enumerate() {
        let o = format!("ALL{i}");
        org(&t, &o);
        for n in 0..(i as u64 + 1) {
            server.state().upsert_patient(profile(n));
        }
        connect(&t, &o, server);
    }
    // The key of ALL1 is revoked in Cliniko.
    servers[1].state().set_api_keys(["another-key"]);
    let (ok, out, err) = t.cli(&["cliniko", "sync", "--all"]);
    assert!(!ok, "a failed org makes the run fail: {out}");
    assert!(err.contains("some orgs did not sync"), "{err}");
    let rows = out.as_array().cloned().unwrap_or_default();
    let by_org = |o: &str| {
        rows.iter()
            .find(|r| r["org"] == o)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_org("ALL0")["synced"], 1, "{out}");
    assert_eq!(by_org("ALL2")["synced"], 3, "{out}");
    assert!(
        by_org("ALL1")["error"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{out}"
    );
    assert_eq!(patient_ids(&t, "ALL2").len(), 3);

    // The doctor says so, for that org only, without the key.
    let cliniko_findings = |o: &str| -> Vec<String> {
        t.ok(&["doctor", "--org", o])["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|f| f["code"].as_str().is_some_and(|c| c.starts_with("cliniko")))
            .map(|f| format!("{}: {}", f["code"].as_str().unwrap(), f["summary"]))
            .collect()
    };
    let all1 = cliniko_findings("ALL1");
    assert_eq!(all1.len(), 2, "{all1:?}");
    assert!(
        all1[0].starts_with("cliniko_connection") && all1[0].contains("401"),
        "{all1:?}"
    );
    assert!(all1[1].starts_with("cliniko_never_synced"), "{all1:?}");
    assert!(!all1.concat().contains(KEY), "{all1:?}");
    assert_eq!(cliniko_findings("ALL0"), Vec::<String>::new());
}

/// The runtime the Cliniko test servers run on (the scenarios drive the
/// `tendon` binary from their own threads).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the Cliniko servers")
    })
}

/// A key of the `uk2` shard, as Cliniko issues them.
const KEY: &str = "MS0xMjM0NTY3ODkwMTIzNDU2Nzg5LXRlc3RrZXk-uk2";

/// A Cliniko server that accepts [`KEY`].
fn cliniko() -> FakeCliniko {
    let server = runtime().block_on(FakeCliniko::start());
    server.state().set_api_keys([KEY]);
    server
}

/// A complete profile; IDs beyond 2^53, as Cliniko's are.
fn profile(n: u64) -> ClinikoPatient {
    ClinikoPatient {
        id: (1_000_000_000_000_000_000 + n).to_string(),
        first_name: Some(format!("First{n}")),
        last_name: Some(format!("Last{n}")),
        date_of_birth: Some("1985-03-12".into()),
        sex: Some(
            if n.is_multiple_of(2) {
                "Female"
            } else {
                "Male"
            }
            .into(),
        ),
        email: Some(format!("patient{n}@example.com")),
        phone_numbers: vec![ClinikoPhone {
            phone_type: Some("Mobile".into()),
            number: format!("+61 4{n:08}"),
        }],
        updated_at: "2026-11-20T10:00:00Z".into(),
        ..Default::default()
    }
}

fn id(n: u64) -> String {
    profile(n).id
}

/// `cliniko connect` for `org` to `server`; returns its output.
fn connect(t: &Tendon, org: &str, server: &FakeCliniko) -> Json {
    t.ok(&[
        "cliniko",
        "connect",
        "--org",
        org,
        "--api-key",
        KEY,
        "--base-url",
        server.base_url(),
        "--public-url",
        &format!("http://{}", t.addr()),
    ])
}

fn sync(t: &Tendon, org: &str) -> Json {
    t.ok(&["cliniko", "sync", "--org", org])
}

fn failures(t: &Tendon, org: &str) -> Vec<Json> {
    t.ok(&["cliniko", "failures", "--org", org])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn patient_ids(t: &Tendon, org: &str) -> Vec<String> {
    t.ok(&["patient", "list", "--org", org])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn patient(t: &Tendon, org: &str, id: &str) -> Json {
    t.ok(&["patient", "show", "--org", org, "--id", id])
}

/// `workflow steps --org ORG`.
fn workflow_steps(t: &Tendon, org: &str) -> Vec<Json> {
    t.ok(&["workflow", "steps", "--org", org])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `org create`: `org`, named `name`, in `timezone`, with its Initial
/// Evaluation type if given.
fn create_org(t: &Tendon, org: &str, name: &str, timezone: &str, ie_type: Option<&str>) {
    let mut args = vec![
        "org",
        "create",
        "--id",
        org,
        "--name",
        name,
        "--timezone",
        timezone,
    ];
    if let Some(ie_type) = ie_type {
        args.extend(["--ie-type", ie_type]);
    }
    t.ok(&args);
}

/// An org as a Cliniko clinic configures it: no locations or practitioners
/// needed for profiles.
fn org(t: &Tendon, org: &str) {
    create_org(
        t,
        org,
        &format!("{org} Physio"),
        "Australia/Melbourne",
        None,
    );
}

/// An active workflow that emails "Tomorrow" a day before each appointment.
fn day_before_reminder(id: &str, title: &str) -> Json {
    json!({
        "id": id, "title": title, "status": "active",
        "trigger": {"event": "appointment_scheduled"},
        "steps": [{"schedule": {"direction": "before", "amount": 1, "unit": "days"},
                   "task": {"kind": "email", "subject": "Tomorrow", "body": "See you."}}]
    })
}

/// 250 profiles (three pages of 100), of which 3 lack required fields: every
/// page is read, the valid ones imported with a Default episode, the others
/// saved with what they lack; the IDs stay exact.
fn a_first_sync_imports_every_page_and_saves_the_failures(t: &Tendon, o: &str) {
    org(t, o);
    let server = cliniko();
    for n in 0..250 {
        let mut p = profile(n);
        match n {
            7 => p.email = None,
            8 => {
                p.date_of_birth = None;
                p.sex = Some(String::new());
            }
            9 => p.last_name = Some("  ".into()),
            _ => {}
        }
        server.state().upsert_patient(p);
    }
    connect(t, o, &server);
    server.state().clear_requests();
    let report = sync(t, o);
    assert_eq!(report["synced"], 247, "{report}");
    assert_eq!(report["failed"], 3);
    assert_eq!(
        report["failures"],
        json!([
            {"cliniko_id": id(7), "missing": ["email"]},
            {"cliniko_id": id(8), "missing": ["date_of_birth", "sex"]},
            {"cliniko_id": id(9), "missing": ["last_name"]},
        ])
    );
    assert_eq!(
        server.state().request_count("/v1/patients"),
        3,
        "three pages of 100"
    );
    assert!(
        server
            .state()
            .requests_to("/v1/patients")
            .iter()
            .all(|r| r.query_value("per_page").as_deref() == Some("100")),
        "pages of 100"
    );
    let saved = failures(t, o);
    assert_eq!(saved.len(), 3);
    assert_eq!(saved[0]["cliniko_id"], id(7));
    assert_eq!(saved[0]["first_name"], "First7");
    assert_eq!(saved[0]["missing"], json!(["email"]));

    let ids = patient_ids(t, o);
    assert_eq!(ids.len(), 247);
    assert!(ids.contains(&id(249)) && !ids.contains(&id(7)));
    let p = patient(t, o, &id(42));
    assert_eq!(p["id"], id(42), "a 64-bit ID kept exact");
    assert_eq!(p["source"], "cliniko");
    assert_eq!(p["first_name"], "First42");
    assert_eq!(p["birth_date"], "1985-03-12");
    assert_eq!(p["gender"], "female");
    assert_eq!(p["email"], "patient42@example.com");
    assert_eq!(p["mobile"], "+61400000042");
    assert_eq!(
        p["episodes"],
        json!([{"name": "Default", "default": true, "case_id": null,
                "supervising_practitioner_id": null, "status": "active"}])
    );

    // The same sync again imports nothing new.
    let again = sync(t, o);
    assert_eq!(
        (again["synced"].as_u64(), again["failed"].as_u64()),
        (Some(0), Some(3))
    );
}

/// A re-sync asks for changes since the last one (less an overlap), takes a
/// Cliniko edit over local data, imports a new profile, and a profile fixed
/// in Cliniko leaves the failure list.
fn a_re_sync_takes_only_changes_and_cliniko_wins(t: &Tendon, o: &str) {
    org(t, o);
    let server = cliniko();
    for n in 0..5 {
        let mut p = profile(n);
        if n == 4 {
            p.email = None;
        }
        server.state().upsert_patient(p);
    }
    connect(t, o, &server);
    assert_eq!(sync(t, o)["synced"], 4);
    assert_eq!(failures(t, o).len(), 1);

    server.state().update_patient(&id(1), |p| {
        p.last_name = Some("Rivera-Lopez".into());
        p.email = Some("new.address@example.com".into());
        p.updated_at = "2026-11-21T09:00:00Z".into();
    });
    server.state().update_patient(&id(4), |p| {
        p.email = Some("fixed@example.com".into());
        p.updated_at = "2026-11-21T09:00:00Z".into();
    });
    let mut fresh = profile(5);
    fresh.updated_at = "2026-11-21T09:30:00Z".into();
    server.state().upsert_patient(fresh);
    server.state().clear_requests();

    let report = sync(t, o);
    assert_eq!(report["synced"], 3, "edited, fixed and new: {report}");
    assert_eq!(report["failed"], 0);
    let filters: Vec<String> = server
        .state()
        .requests_to("/v1/patients")
        .iter()
        .flat_map(|r| r.query_values("q[]"))
        .collect();
    assert_eq!(
        filters,
        ["updated_at:>2026-11-20T09:55:00Z"],
        "changes since the watermark, less 5 minutes"
    );
    let p = patient(t, o, &id(1));
    assert_eq!(
        (p["last_name"].as_str(), p["email"].as_str()),
        (Some("Rivera-Lopez"), Some("new.address@example.com")),
        "Cliniko's edit overwrites"
    );
    assert!(failures(t, o).is_empty(), "the fixed profile left the list");
    assert_eq!(patient_ids(t, o).len(), 6);
}

/// A workflow for Cliniko patients enrols each new patient once; archived,
/// deleted and merged profiles make their patients inactive and skip their
/// pending steps.
fn archived_deleted_and_merged_patients_stop_their_workflows(t: &Tendon, o: &str) {
    org(t, o);
    let server = cliniko();
    for n in 0..5 {
        server.state().upsert_patient(profile(n));
    }
    let def = json!({
        "id": "welcome-week", "title": "A week in", "status": "active",
        "patient_group": {"source": "cliniko"},
        "trigger": {"event": "patient_created"},
        "steps": [{"schedule": {"direction": "after", "amount": 7, "unit": "days"},
                   "task": {"kind": "email", "subject": "A week in", "body": "Hi {{ patient.first_name }}"}}]
    });
    imported(t, o, &def);
    connect(t, o, &server);
    sync(t, o);
    sync(t, o);
    let steps = |t: &Tendon| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = workflow_steps(t, o)
            .iter()
            .map(|s| {
                (
                    s["patient_id"].as_str().unwrap_or_default().to_owned(),
                    format!(
                        "{} {}",
                        s["status"].as_str().unwrap_or_default(),
                        s["note"].as_str().unwrap_or_default()
                    )
                    .trim()
                    .to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        steps(t),
        (0..5)
            .map(|n| (id(n), "scheduled".to_owned()))
            .collect::<Vec<_>>(),
        "one step per patient, however often synced"
    );

    server.state().archive_patient(&id(0));
    server.state().delete_patient(&id(1));
    server.state().merge_patients(&id(2), &id(3));
    let report = sync(t, o);
    assert_eq!(report["deactivated"], 3, "{report}");
    assert_eq!(patient(t, o, &id(0))["inactive"], "archived");
    assert_eq!(patient(t, o, &id(1))["inactive"], "deleted");
    assert_eq!(
        patient(t, o, &id(2))["id"],
        id(3),
        "a merged patient leads to the one it was merged into"
    );
    let mut ids = patient_ids(t, o);
    ids.sort();
    assert!(!ids.contains(&id(2)), "{ids:?}");
    assert_eq!(
        steps(t),
        vec![
            (id(0), "skipped patient_inactive".to_owned()),
            (id(1), "skipped patient_inactive".to_owned()),
            (id(2), "skipped patient_inactive".to_owned()),
            (id(3), "scheduled".to_owned()),
            (id(4), "scheduled".to_owned()),
        ]
    );
    // Restored in Cliniko: active again.
    server.state().unarchive_patient(&id(0));
    sync(t, o);
    assert_eq!(patient(t, o, &id(0))["inactive"], Json::Null);
}

/// `GET /cliniko/open/{token}?patient_id=`: a profile made in Cliniko after
/// the last sync is imported and the browser is sent to its profile; an
/// unknown token, no or an unknown patient, get the same 404; an incomplete
/// profile says what it lacks; an edit is synced on the click.
fn the_open_in_button_syncs_one_patient_then_redirects(t: &Tendon, o: &str) {
    org(t, o);
    let server = cliniko();
    let out = connect(t, o, &server);
    let open_url = out["open_url"].as_str().unwrap().to_owned();
    let path = open_url
        .split_once(&t.addr())
        .map(|(_, p)| p.to_owned())
        .unwrap();
    assert!(path.starts_with("/cliniko/open/"), "{open_url}");
    let token = path.trim_start_matches("/cliniko/open/").to_owned();
    assert!(token.len() >= 32, "an unguessable token: {token}");

    server.state().upsert_patient(profile(1));
    let (status, head) = get(t, &format!("{path}?patient_id={}", id(1)));
    assert_eq!(status, 303, "{head}");
    let location = format!(
        "location: https://app.tendon.example/orgs/{o}/patients/{}",
        id(1)
    );
    assert!(
        head.to_ascii_lowercase()
            .contains(&location.to_ascii_lowercase()),
        "{head}"
    );
    assert_eq!(patient(t, o, &id(1))["source"], "cliniko");

    server.state().update_patient(&id(1), |p| {
        p.first_name = Some("Renamed".into());
        p.updated_at = "2026-11-21T10:00:00Z".into();
    });
    assert_eq!(get(t, &format!("{path}?patient_id={}", id(1))).0, 303);
    assert_eq!(patient(t, o, &id(1))["first_name"], "Renamed");

    let not_found = [
        format!("/cliniko/open/{}?patient_id={}", "0".repeat(32), id(1)),
        format!("{path}?patient_id={}", id(99)),
        path.clone(),
        format!("{path}?patient_id=abc"),
    ];
    let bodies: Vec<(u16, String)> = not_found
        .iter()
        .map(|p| {
            let (status, head) = get(t, p);
            (
                status,
                head.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(bodies.iter().all(|(s, _)| *s == 404), "{bodies:?}");
    assert!(
        bodies.iter().all(|(_, b)| *b == bodies[0].1),
        "an unknown token and an unknown patient answer alike"
    );

    let mut incomplete = profile(2);
    incomplete.email = None;
    server.state().upsert_patient(incomplete);
    let (status, page) = get(t, &format!("{path}?patient_id={}", id(2)));
    assert_eq!(status, 422);
    assert!(page.contains("missing: email"), "{page}");
    assert!(!page.contains("First2"), "no patient data on the page");
    assert_eq!(failures(t, o)[0]["cliniko_id"], id(2));
}

/// A raw GET to the server: (status, headers and body).
fn get(t: &Tendon, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(t.addr()).expect("connect to serve");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        t.addr()
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("a reply");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

/// A wrong key is refused with what to do, nothing is stored; a bad shard
/// suffix is refused before any call; the key is never printed back.
fn connect_checks_the_key_and_never_shows_it(t: &Tendon, o: &str) {
    org(t, o);
    let server = cliniko();
    let base = server.base_url().to_owned();
    let (ok, _, err) = t.cli(&[
        "cliniko",
        "connect",
        "--org",
        o,
        "--api-key",
        "MS0xLXdyb25n-uk2",
        "--base-url",
        &base,
    ]);
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    assert!(
        !err.contains("MS0xLXdyb25n"),
        "the key is not echoed: {err}"
    );
    let (ok, _, err) = t.cli(&["cliniko", "sync", "--org", o]);
    assert!(!ok && err.contains("cliniko connect"), "{err}");
    let (ok, _, err) = t.cli(&["cliniko", "connect", "--org", o, "--api-key", "abc-xyz"]);
    assert!(!ok && err.contains("shard"), "{err}");
    assert_eq!(
        server.state().total_requests(),
        1,
        "a bad suffix makes no call"
    );

    let out = connect(t, o, &server);
    assert_eq!(out["org"], o);
    assert_eq!(out["shard"], "uk2");
    assert!(!out.to_string().contains(&KEY[..20]), "{out}");
    let sent = server.state().requests();
    let last = sent.last().unwrap();
    assert_eq!(
        last.auth_user.as_deref(),
        Some(KEY),
        "Basic auth with the key"
    );
    assert!(
        last.user_agent
            .as_deref()
            .is_some_and(|ua| ua.contains('(') && ua.contains('@')),
        "a `Vendor (email)` User-Agent: {:?}",
        last.user_agent
    );
    // Reconnecting keeps the URL registered in Cliniko.
    assert_eq!(connect(t, o, &server)["open_url"], out["open_url"]);
}

/// A 429 with `X-RateLimit-Reset` and a 503 in the middle of a sync: the
/// client waits and retries, and the sync completes.
fn sync_rides_out_rate_limits_and_server_errors(t: &Tendon, o: &str) {
    org(t, o);
    let server = cliniko();
    for n in 0..150 {
        server.state().upsert_patient(profile(n));
    }
    connect(t, o, &server);
    server
        .state()
        .rate_limit_next(1, std::time::Duration::from_secs(1));
    server.state().fail_next(1, 503);
    let report = sync(t, o);
    assert_eq!(report["synced"], 150, "{report}");
    assert_eq!(server.state().rate_limited_count(), 1);
}

/// An instant `days` from now, whole seconds (Cliniko's precision).
fn days_ahead(days: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * days);
    jiff::Timestamp::from_second(t.as_second())
        .unwrap()
        .to_string()
}

fn imported(t: &Tendon, o: &str, def: &Json) {
    let file = std::env::temp_dir().join(format!(
        "tendon-cl-{o}-{}-{}.json",
        def["id"].as_str().unwrap_or("wf"),
        std::process::id()
    ));
    std::fs::write(&file, def.to_string()).unwrap();
    t.ok(&["workflow", "import", "--org", o, file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
}

/// Cliniko appointments go through the EMR rules: an Initial Evaluation type
/// (matched by name) creates the case's episode with its practitioner as
/// supervisor, an appointment without a case gets the patient's "Cliniko
/// care" episode, each booking enrols its reminder, a cancellation in
/// Cliniko skips it, and a closed case discharges its episode.
fn appointments_make_episodes_and_drive_workflows(t: &Tendon, o: &str) {
    create_org(
        t,
        o,
        "Knee Physio",
        "Australia/Melbourne",
        Some("Initial Consult"),
    );
    imported(t, o, &day_before_reminder("reminder", "Reminder"));
    let server = cliniko();
    let s = server.state();
    s.upsert_patient(profile(1));
    s.upsert_patient(profile(2));
    s.upsert_practitioner(ClinikoPractitioner {
        id: "77".into(),
        first_name: Some("Chidi".into()),
        last_name: Some("Okafor".into()),
        active: true,
    });
    for (tid, name) in [("5", "Initial Consult"), ("6", "Follow up")] {
        s.upsert_appointment_type(ClinikoAppointmentType {
            id: tid.into(),
            name: name.into(),
            archived: false,
        });
    }
    let case = ClinikoCase {
        id: "44".into(),
        patient_id: Some(id(1)),
        name: "Left knee".into(),
        closed: false,
        updated_at: String::new(),
    };
    s.upsert_patient_case(case.clone());
    let appt =
        |aid: &str, patient: u64, tid: &str, case: Option<&str>, days: i64| ClinikoAppointment {
            id: aid.into(),
            patient_id: Some(id(patient)),
            practitioner_id: Some("77".into()),
            appointment_type_id: Some(tid.into()),
            patient_case_id: case.map(str::to_owned),
            business_id: Some("3".into()),
            starts_at: days_ahead(days),
            ..Default::default()
        };
    s.upsert_appointment(appt("9001", 1, "5", Some("44"), 10));
    let follow_up = appt("9002", 1, "6", Some("44"), 17);
    s.upsert_appointment(follow_up.clone());
    s.upsert_appointment(appt("9003", 2, "5", None, 12));
    connect(t, o, &server);
    let report = sync(t, o);
    assert_eq!(report["appointments"]["applied"], 3, "{report}");
    assert_eq!(report["appointments"]["failures"], json!([]));

    let p1 = patient(t, o, &id(1));
    assert_eq!(
        p1["episodes"][1],
        case_episode("Left knee", "44", "77", "active"),
        "{p1}"
    );
    let appts: Vec<(String, String)> = p1["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        appts,
        [
            ("9001".into(), "scheduled".into()),
            ("9002".into(), "scheduled".into())
        ]
    );
    let p2 = patient(t, o, &id(2));
    assert_eq!(p2["episodes"][1]["name"], "Cliniko care");
    assert_eq!(p2["episodes"][1]["case_id"], format!("cliniko:{}", id(2)));

    let reminders = |t: &Tendon| -> Vec<String> {
        let mut v: Vec<String> = workflow_steps(t, o)
            .iter()
            .map(|s| {
                format!(
                    "{} {} {}",
                    s["appointment_id"].as_str().unwrap_or("-"),
                    s["status"].as_str().unwrap_or_default(),
                    s["note"].as_str().unwrap_or_default()
                )
                .trim()
                .to_owned()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        reminders(t),
        ["9001 scheduled", "9002 scheduled", "9003 scheduled"]
    );
    // Synced again: nothing new.
    assert_eq!(sync(t, o)["appointments"]["applied"], 0);
    assert_eq!(reminders(t).len(), 3);

    // Canceled, and the case closed, in Cliniko (each stamped anew).
    s.upsert_appointment(ClinikoAppointment {
        cancelled_at: Some(days_ahead(0)),
        ..follow_up
    });
    s.upsert_patient_case(ClinikoCase {
        closed: true,
        ..case
    });
    let report = sync(t, o);
    // Every appointment is in the window (their stamps are within the
    // overlap), but only the canceled one is a new version; the others are
    // counted unchanged, and the closed case is discharged on its own.
    assert_eq!(report["appointments"]["applied"], 1, "{report}");
    assert_eq!(report["appointments"]["unchanged"], 2, "{report}");
    assert_eq!(
        reminders(t),
        [
            "9001 scheduled",
            "9002 skipped appointment_canceled",
            "9003 scheduled"
        ]
    );
    let p1 = patient(t, o, &id(1));
    assert_eq!(p1["appointments"][1]["status"], "canceled");
    assert_eq!(p1["episodes"][1]["status"], "discharged");
}

/// Profiles as clinics keep them: mobiles typed in national form or with the
/// country code but no `+` (Cliniko's own example is `61444444444`), read in
/// the patient's country, else the business's; landlines never the mobile;
/// free-text `sex` never "missing", mapped to the contract's codes with the
/// clinic's words kept. And a deployment that does not name its contact to
/// Cliniko is refused before any request.
fn numbers_sex_and_the_user_agent_as_clinics_have_them(t: &Tendon, o: &str) {
    org(t, o);
    let server = cliniko();
    let s = server.state();
    s.upsert_business(ClinikoBusiness {
        id: "31".into(),
        name: Some("Fitzroy Physio".into()),
        time_zone: Some("Australia/Melbourne".into()),
        country: Some("AU".into()),
    });
    // (profile, country, phones, sex) → (mobile, gender, sex_label)
    type Person<'a> = (u64, Option<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let people: [Person; 7] = [
        (1, None, vec![("Mobile", "0412 345 678")], "Female"),
        (
            2,
            None,
            vec![("Home", "03 9999 9999"), ("Mobile", "61444444444")],
            "AFAB",
        ),
        (
            3,
            Some("United Kingdom"),
            vec![("Mobile", "07700 900123")],
            "Male",
        ),
        (
            4,
            Some("United Kingdom"),
            vec![("Mobile", "+44 7700 900456")],
            "Female to Male",
        ),
        (
            5,
            Some("New Zealand"),
            vec![("Mobile", "021 123 4567")],
            "Intersex",
        ),
        (6, None, vec![("Home", "0412 345 679")], "Not stated"),
        (7, None, vec![("Fax", "03 9999 9998")], "male"),
    ];
    for (n, country, phones, sex) in &people {
        let mut p = profile(*n);
        p.country = country.map(str::to_owned);
        p.sex = Some((*sex).to_owned());
        p.phone_numbers = phones
            .iter()
            .map(|(kind, number)| ClinikoPhone {
                phone_type: Some((*kind).to_owned()),
                number: (*number).to_owned(),
            })
            .collect();
        s.upsert_patient(p);
    }

    // No User-Agent: refused, saying what to set, and Cliniko never called.
    let out = t
        .command()
        .env_remove("TENDON_CLINIKO_USER_AGENT")
        .args(["cliniko", "connect", "--org", o, "--api-key", KEY])
        .args(["--base-url", server.base_url(), "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("TENDON_CLINIKO_USER_AGENT"), "{err}");
    assert_eq!(s.total_requests(), 0);

    connect(t, o, &server);
    let report = sync(t, o);
    assert_eq!(report["synced"], 7, "{report}");
    assert_eq!(
        report["failed"], 0,
        "free-text sex is never missing: {report}"
    );
    let seen: Vec<(Json, Json, Json)> = (1..=7)
        .map(|n| {
            let p = patient(t, o, &id(n));
            (
                p["mobile"].clone(),
                p["gender"].clone(),
                p["sex_label"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("+61412345678"), json!("female"), json!("Female")),
            (json!("+61444444444"), json!("other"), json!("AFAB")),
            (json!("+447700900123"), json!("male"), json!("Male")),
            (
                json!("+447700900456"),
                json!("other"),
                json!("Female to Male")
            ),
            (json!("+64211234567"), json!("other"), json!("Intersex")),
            (Json::Null, json!("unknown"), json!("Not stated")),
            (Json::Null, json!("male"), json!("male")),
        ]
    );
    // Every request named the deployment and its contact.
    assert!(
        s.requests()
            .iter()
            .all(|r| r.user_agent.as_deref() == Some(common::CLINIKO_USER_AGENT))
    );
}

/// The midnight of `days` from today in `zone`, at `hour`:00 local, as UTC.
fn local_time(zone: &str, days: i64, hour: i8) -> String {
    let tz = jiff::tz::TimeZone::get(zone).unwrap();
    let day = jiff::Timestamp::now().to_zoned(tz.clone()).date() + jiff::Span::new().days(days);
    day.at(hour, 0, 0, 0)
        .to_zoned(tz)
        .unwrap()
        .timestamp()
        .to_string()
}

/// A historic Initial Evaluation by a therapist who has since left, of a
/// type since archived, still opens its case (supervised by that
/// therapist); each business is a location named after it, in its own zone,
/// so each site's reminder comes at its own local hour; a class's two
/// attendees each get the class as their appointment, and one cancelling
/// skips only their reminder. A quiet re-sync then costs at most 16 requests.
fn former_staff_archived_types_two_zones_and_a_class(t: &Tendon, o: &str) {
    create_org(
        t,
        o,
        "Two Cities Physio",
        "Australia/Sydney",
        Some("Initial Consult"),
    );
    imported(t, o, &day_before_reminder("eve", "The evening before"));
    let server = cliniko();
    let s = server.state();
    // Everything was booked two hours ago (before the re-sync overlap), so
    // the last re-sync below has nothing new to read.
    s.set_clock(Some(
        jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2),
    ));
    for (bid, name, zone) in [
        ("31", "Fitzroy Physio", "Australia/Melbourne"),
        ("32", "Subiaco Physio", "Australia/Perth"),
    ] {
        s.upsert_business(ClinikoBusiness {
            id: bid.into(),
            name: Some(name.into()),
            time_zone: Some(zone.into()),
            country: Some("AU".into()),
        });
    }
    for n in 1..=4 {
        s.upsert_patient(profile(n));
    }
    // Dr Former has left: only on /practitioners/inactive.
    s.upsert_practitioner(ClinikoPractitioner {
        id: "70".into(),
        first_name: Some("Dana".into()),
        last_name: Some("Former".into()),
        active: false,
    });
    s.upsert_practitioner(ClinikoPractitioner {
        id: "77".into(),
        first_name: Some("Chidi".into()),
        last_name: Some("Okafor".into()),
        active: true,
    });
    // The old IE type is archived: only on /appointment_types/archived.
    for (tid, name, archived) in [
        ("5", "Initial Consult", true),
        ("6", "Follow up", false),
        ("8", "Pilates class", false),
    ] {
        s.upsert_appointment_type(ClinikoAppointmentType {
            id: tid.into(),
            name: name.into(),
            archived,
        });
    }
    s.upsert_patient_case(ClinikoCase {
        id: "44".into(),
        patient_id: Some(id(1)),
        name: "Left knee".into(),
        closed: false,
        updated_at: String::new(),
    });
    let appt = |aid: &str, patient: u64, who: &str, tid: &str, business: &str, start: String| {
        ClinikoAppointment {
            id: aid.into(),
            patient_id: Some(id(patient)),
            practitioner_id: Some(who.into()),
            appointment_type_id: Some(tid.into()),
            patient_case_id: Some("44".into()).filter(|_| patient == 1),
            business_id: Some(business.into()),
            starts_at: start,
            ..Default::default()
        }
    };
    // Patient 1: the former therapist's IE of the archived type, in
    // Melbourne, then a follow-up with another therapist.
    s.upsert_appointment(appt(
        "9101",
        1,
        "70",
        "5",
        "31",
        local_time("Australia/Melbourne", -30, 9),
    ));
    s.upsert_appointment(appt(
        "9102",
        1,
        "77",
        "6",
        "31",
        local_time("Australia/Melbourne", 10, 10),
    ));
    // Patient 2: an Initial Consult at 10:00 in Perth; patients 3 and 4
    // had theirs there before the class.
    let perth = "Australia/Perth";
    s.upsert_appointment(appt("9201", 2, "77", "5", "32", local_time(perth, 10, 10)));
    s.upsert_appointment(appt("9301", 3, "77", "5", "32", local_time(perth, -5, 9)));
    s.upsert_appointment(appt("9401", 4, "77", "5", "32", local_time(perth, -5, 9)));
    // A Pilates class in Perth with patients 3 and 4.
    s.upsert_group_appointment(ClinikoGroupAppointment {
        id: "600".into(),
        practitioner_id: Some("77".into()),
        appointment_type_id: Some("8".into()),
        business_id: Some("32".into()),
        starts_at: local_time("Australia/Perth", 12, 18),
        ..Default::default()
    });
    for (aid, n) in [("701", 3), ("702", 4)] {
        s.upsert_attendee(ClinikoAttendee {
            id: aid.into(),
            patient_id: Some(id(n)),
            booking_id: Some("600".into()),
            ..Default::default()
        });
    }
    connect(t, o, &server);
    let report = sync(t, o);
    assert_eq!(report["synced"], 4, "{report}");
    assert_eq!(report["appointments"]["failures"], json!([]), "{report}");
    assert_eq!(report["unreadable"], json!([]), "{report}");

    // The case opened by the former therapist's IE, supervised by them.
    let p1 = patient(t, o, &id(1));
    assert_eq!(
        p1["episodes"][1],
        case_episode("Left knee", "44", "70", "active"),
        "{p1}"
    );
    assert_eq!(p1["appointments"][1]["status"], "scheduled");
    // Each business a named location in its zone.
    let locations = t.ok(&["location", "list", "--org", o]);
    let names: Vec<(Json, Json, Json)> = locations
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["id"].clone(), l["name"].clone(), l["timezone"].clone()))
        .collect();
    assert_eq!(
        names,
        [
            (
                json!("31"),
                json!("Fitzroy Physio"),
                json!("Australia/Melbourne")
            ),
            (
                json!("32"),
                json!("Subiaco Physio"),
                json!("Australia/Perth")
            ),
        ]
    );
    // Each appointment shown, and each reminder due, at 10:00 on its own
    // site's clock: the evening-before email leaves at 10:00 the day before.
    let start_2 = patient(t, o, &id(2))["appointments"][0]["start"].clone();
    assert!(
        start_2.as_str().unwrap().contains("T10:00:00+08:00"),
        "{start_2}"
    );
    let steps = t.ok(&["workflow", "steps", "--org", o]);
    let due = |appointment: &str, zone: &str| -> (i8, String) {
        let step = steps
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["appointment_id"] == appointment)
            .unwrap_or_else(|| panic!("no step for {appointment}: {steps}"));
        let at: jiff::Timestamp = step["due_at"].as_str().unwrap().parse().unwrap();
        (
            at.to_zoned(jiff::tz::TimeZone::get(zone).unwrap()).hour(),
            step["status"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(due("9102", "Australia/Melbourne"), (10, "scheduled".into()));
    assert_eq!(due("9201", "Australia/Perth"), (10, "scheduled".into()));
    // The class: each attendee has it as their appointment, at 18:00 Perth.
    for (aid, n) in [("attendee:701", 3), ("attendee:702", 4)] {
        let p = patient(t, o, &id(n));
        assert_eq!(p["appointments"][1]["id"], aid, "{p}");
        assert_eq!(p["appointments"][1]["type"], "Pilates class");
        assert!(
            p["appointments"][1]["start"]
                .as_str()
                .unwrap()
                .contains("T18:00:00+08:00")
        );
        assert_eq!(due(aid, "Australia/Perth"), (18, "scheduled".into()));
    }

    // One attendee cancels in Cliniko: only their reminder is skipped.
    s.cancel_attendee("702");
    let report = sync(t, o);
    assert_eq!(report["appointments"]["applied"], 1, "{report}");
    let steps = t.ok(&["workflow", "steps", "--org", o]);
    let status = |aid: &str| {
        steps
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["appointment_id"] == aid)
            .map(|s| {
                format!(
                    "{} {}",
                    s["status"].as_str().unwrap(),
                    s["note"].as_str().unwrap_or("")
                )
            })
            .unwrap()
    };
    assert_eq!(status("attendee:701").trim(), "scheduled");
    assert_eq!(status("attendee:702"), "skipped appointment_canceled");
    assert_eq!(
        patient(t, o, &id(4))["appointments"][1]["status"],
        "canceled"
    );

    // A quiet re-sync: nothing changed, at most 16 requests, and none of
    // the configuration lists (nothing to apply).
    s.clear_requests();
    let report = sync(t, o);
    assert_eq!(report["synced"], 0, "{report}");
    assert_eq!(report["appointments"]["applied"], 0, "{report}");
    let paths: Vec<String> = s.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.len() <= 16, "{} requests: {paths:?}", paths.len());
    // The list in docs/benchmarks.md: the class re-read in the overlap
    // brings its attendees (one request for up to 100 classes).
    assert_eq!(
        paths,
        [
            "/v1/businesses",
            "/v1/patients",
            "/v1/patients/archived",
            "/v1/patients/deleted",
            "/v1/patient_cases",
            "/v1/individual_appointments",
            "/v1/individual_appointments/cancelled",
            "/v1/individual_appointments/deleted",
            "/v1/group_appointments",
            "/v1/group_appointments/deleted",
            "/v1/attendees",
            "/v1/attendees/cancelled",
            "/v1/attendees/deleted",
            "/v1/attendees",
        ]
    );
}
