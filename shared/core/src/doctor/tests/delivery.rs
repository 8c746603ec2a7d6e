//! The delivery and Cliniko parts of the analysis: who nothing reaches,
//! suppressed addresses and opt-outs, the dispatcher, the last sync.
use super::*;

#[test]
fn delivery_findings_say_who_nothing_reaches() {
    let mut stuck = ok("M1", 0);
    stuck.status = MessageStatus::Accepted;
    let mut without = PatientRecord::new_patient("P9", Source::Emr, at(0)).patient;
    without.mobile = None;
    let mut merged = PatientRecord::new_patient("P8", Source::Emr, at(0)).patient;
    merged.merged_into = Some("P9".into());
    // No workflow at all, one reachable patient without email or mobile, a
    // merged alias (not a patient anyone messages), a message stuck 60 minutes.
    let cfg = config();
    let found = analyse(&state(&cfg, &[stuck], &[without, merged]), at(60));
    let named: Vec<_> = found
        .iter()
        .map(|f| (f.code, f.messages, f.examples.clone()))
        .collect();
    assert_eq!(
        named,
        [
            ("stuck_messages", 1, vec!["M1".to_owned()]),
            ("no_active_workflow", 1, Vec::new()),
            ("no_contact", 1, vec!["P9".to_owned()]),
        ]
    );
    assert_eq!(
        found[1].fix,
        "tendon workflow install-defaults --org ACME01, or import and activate the clinic's own"
    );
}

#[test]
fn cliniko_findings_say_when_it_last_synced_and_what_profiles_lack() {
    let cfg = config();
    let mut connection = crate::cliniko::ClinikoConnection {
        org: "ACME01".into(),
        api_key: "secret-au1".into(),
        shard: "au1".into(),
        base_url: None,
        token: "t".into(),
        watermark: None,
        connected_at: at(0),
        last_sync_at: None,
    };
    let failure = |id: &str, missing: &[&str]| crate::cliniko::ClinikoFailure {
        cliniko_id: id.into(),
        first_name: Some("Ana".into()),
        last_name: None,
        missing: missing.iter().map(|m| m.to_string()).collect(),
        updated_at: "2026-11-20T10:00:00Z".into(),
    };
    let failures = [failure("11", &["email"]), failure("12", &["email", "sex"])];
    let run = |connection: &crate::cliniko::ClinikoConnection| {
        let state = OrgState {
            cliniko: Some(connection),
            cliniko_failures: &failures,
            ..state(&cfg, &[], &[])
        };
        analyse(&state, at(120))
            .into_iter()
            .map(|f| (f.code, f.subject, f.messages, f.examples))
            .collect::<Vec<_>>()
    };
    let by_field = [
        (
            "cliniko_failures",
            Some("email".to_owned()),
            2,
            vec!["11".to_owned(), "12".to_owned()],
        ),
        (
            "cliniko_failures",
            Some("sex".to_owned()),
            1,
            vec!["12".to_owned()],
        ),
    ];
    let never = run(&connection);
    assert_eq!(never[0], ("cliniko_never_synced", None, 0, Vec::new()));
    assert_eq!(never[1..], by_field);
    connection.last_sync_at = Some(at(30));
    assert_eq!(run(&connection)[0].0, "cliniko_sync_late", "90 minutes ago");
    connection.last_sync_at = Some(at(110));
    assert_eq!(run(&connection), by_field, "10 minutes ago is on time");
    let unusable = cliniko_unusable("ACME01", "Cliniko refused the API key (401)");
    assert!(!format!("{unusable:?}").contains("secret"));
}

/// Suppressed addresses are counted by reason (never shown), and opt-outs
/// only when more than one patient in ten made them.
#[test]
fn suppressed_addresses_and_many_opt_outs_are_named_without_the_addresses() {
    let cfg = config();
    let patient = |id: &str, unsubscribed: bool| {
        let mut p = PatientRecord::new_patient(id, Source::Emr, at(0)).patient;
        p.email = Some(format!("{id}@example.com"));
        p.unsubscribed = unsubscribed;
        p.enrolled_at = Some(at(0));
        p
    };
    let suppressed = [
        crate::ports::Suppression {
            address: "p1@example.com".into(),
            reason: "bounce".into(),
        },
        crate::ports::Suppression {
            address: "p2@example.com".into(),
            reason: "complaint".into(),
        },
    ];
    let few: Vec<Patient> = (0..20).map(|i| patient(&format!("P{i}"), i == 0)).collect();
    let run = |patients: &[Patient], suppressed: &[crate::ports::Suppression]| {
        let mut cfg = cfg.clone();
        cfg.workflows = crate::workflow::defaults::all();
        let state = OrgState {
            suppressed,
            ..state(&cfg, &[], patients)
        };
        analyse(&state, at(60))
    };
    let found = run(&few, &suppressed);
    assert_eq!(
        found.iter().map(|f| f.code).collect::<Vec<_>>(),
        ["suppressed_addresses"],
        "one opt-out in 20 is a patient's choice"
    );
    assert!(found[0].summary.contains("2 email address(es)"));
    assert!(found[0].summary.contains("1 bounce, 1 complaint"));
    let text = format!("{found:?}");
    assert!(!text.contains("@example.com"), "{text}");

    let many: Vec<Patient> = (0..10).map(|i| patient(&format!("P{i}"), i < 3)).collect();
    let found = run(&many, &[]);
    assert_eq!(
        found
            .iter()
            .map(|f| (f.code, f.messages, f.share))
            .collect::<Vec<_>>(),
        [("opted_out", 3, Some(0.3))]
    );
}

/// The dispatcher's last pass: stale, or never while patients have waited,
/// is named for an org with an active workflow; a fresh start is not.
#[test]
fn a_dispatcher_that_stopped_or_never_ran_is_named() {
    let mut cfg = config();
    cfg.workflows = crate::workflow::defaults::all();
    let mut p = PatientRecord::new_patient("P1", Source::Emr, at(0)).patient;
    p.email = Some("p1@example.com".into());
    p.enrolled_at = Some(at(1));
    let patients = [p];
    let run = |last: Option<Timestamp>, now: Timestamp| {
        let state = OrgState {
            last_dispatch: last,
            ..state(&cfg, &[], &patients)
        };
        analyse(&state, now)
            .into_iter()
            .map(|f| (f.code, f.summary))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run(Some(at(50)), at(60)),
        [(
            "dispatcher_idle",
            "the dispatcher last ran 10 minute(s) ago: due workflow steps wait".to_owned()
        )]
    );
    assert_eq!(run(None, at(60))[0].0, "dispatcher_idle");
    assert_eq!(
        run(None, at(2)),
        [],
        "patients for two minutes: a fresh start"
    );
    assert_eq!(run(Some(at(59)), at(60)), []);
}

/// Patients no active workflow took are named with their share.
#[test]
fn patients_no_active_workflow_took_are_named() {
    let mut cfg = config();
    cfg.workflows = crate::workflow::defaults::all();
    let patient = |id: &str, enrolled: bool| {
        let mut p = PatientRecord::new_patient(id, Source::Emr, at(0)).patient;
        p.email = Some(format!("{id}@example.com"));
        p.enrolled_at = enrolled.then(|| at(0));
        p
    };
    let patients = [
        patient("P1", true),
        patient("P2", false),
        patient("P3", true),
        patient("P4", true),
    ];
    let found: Vec<_> = analyse(&state(&cfg, &[], &patients), at(1))
        .into_iter()
        .map(|f| (f.code, f.messages, f.share, f.examples))
        .collect();
    assert_eq!(
        found,
        [("not_enrolled", 1, Some(0.25), vec!["P2".to_owned()])]
    );
}
