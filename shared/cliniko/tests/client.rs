//! The client against the fake Cliniko, in-process on 127.0.0.1: no network.
//! Timing assertions read the fake's request log; the tests never sleep to
//! synchronise.
use std::time::{Duration, Instant, UNIX_EPOCH};

use tendon_cliniko::{Client, ClientConfig, base_url_for_shard, shard_of};
use tendon_core::cliniko::ClinikoConnection;
use tendon_core::cliniko::api::{
    AppointmentList, ClinikoApi, ClinikoAppointment, ClinikoAppointmentType, ClinikoCase,
    ClinikoError, ClinikoPatient, ClinikoPhone, ClinikoPractitioner, Listing, PatientList,
};
use tendon_fake_cliniko::FakeCliniko;

const KEY: &str = "MS0xLWl4SzYYsecretkeybody-au2";
/// Cliniko asks for `Application (contact email)`.
const UA: &str = "Tendon tests (ci@tendon-health.dev)";

/// A client for the fake, with fast retries.
fn config(fake: &FakeCliniko) -> ClientConfig {
    ClientConfig {
        base_url: Some(fake.base_url().to_owned()),
        retry_base: Duration::from_millis(2),
        max_attempts: 3,
        max_rate_limit_wait: Duration::from_secs(5),
        ..ClientConfig::new(KEY, UA)
    }
}

fn client_for(fake: &FakeCliniko) -> Client {
    Client::new(config(fake)).unwrap()
}

fn patient(id: &str, updated_at: &str) -> ClinikoPatient {
    ClinikoPatient {
        id: id.to_owned(),
        first_name: Some(format!("First{id}")),
        last_name: Some("Patientman".into()),
        updated_at: updated_at.to_owned(),
        ..Default::default()
    }
}

/// Every page of a patient list.
async fn all_patients(
    client: &Client,
    list: PatientList,
    since: Option<&str>,
) -> Result<Vec<ClinikoPatient>, ClinikoError> {
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client.patients(list, since, next.as_deref()).await?;
        all.extend(page.items);
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok(all),
        }
    }
}

fn ids(patients: &[ClinikoPatient]) -> Vec<&str> {
    patients.iter().map(|p| p.id.as_str()).collect()
}

#[test]
fn shards_and_base_urls() {
    assert_eq!(shard_of("abc-au2").unwrap(), "au2");
    assert_eq!(shard_of("abc-uk12").unwrap(), "uk12");
    assert_eq!(shard_of("abc").unwrap(), "au1");
    // Case-insensitive: a key pasted as `…-AU2` is on au2.
    assert_eq!(shard_of("abc-AU2").unwrap(), "au2");
    for bad in ["abc-au", "abc-a2", "abc-au123", "abc-", "abc-2au", ""] {
        assert!(
            matches!(shard_of(bad), Err(ClinikoError::InvalidKey(_))),
            "{bad:?}"
        );
        if !bad.is_empty() {
            let e = Client::new(ClientConfig::new(bad, UA)).unwrap_err();
            assert!(matches!(e, ClinikoError::InvalidKey(_)));
            assert!(!e.to_string().contains(bad), "{e}");
        }
    }
    assert_eq!(base_url_for_shard("ca1"), "https://api.ca1.cliniko.com/v1");

    let c = Client::new(ClientConfig::new("abc-au2", UA)).unwrap();
    assert_eq!(c.shard(), "au2");
    assert_eq!(c.base_url(), "https://api.au2.cliniko.com/v1");
    let c = Client::new(ClientConfig::new("abc", UA)).unwrap();
    assert_eq!(c.shard(), "au1");
    assert_eq!(c.base_url(), "https://api.au1.cliniko.com/v1");

    let c = Client::new(ClientConfig {
        base_url: Some("http://127.0.0.1:9/v1/".into()),
        ..ClientConfig::new("abc-uk1", UA)
    })
    .unwrap();
    assert_eq!(c.shard(), "uk1");
    assert_eq!(c.base_url(), "http://127.0.0.1:9/v1");
    let e = Client::new(ClientConfig {
        base_url: Some("ftp://example.test/v1".into()),
        ..ClientConfig::new("abc-uk1", UA)
    })
    .unwrap_err();
    assert!(matches!(e, ClinikoError::Unavailable(_)));
}

#[tokio::test]
async fn a_client_for_a_stored_connection() {
    let fake = FakeCliniko::start().await;
    fake.set_api_keys([KEY]);
    let connection = ClinikoConnection {
        org: "ACME01".into(),
        api_key: KEY.into(),
        shard: "au2".into(),
        base_url: Some(fake.base_url().into()),
        token: "t".into(),
        watermark: None,
        connected_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        last_sync_at: None,
    };
    let client = Client::for_connection_with(&connection, UA).unwrap();
    assert_eq!(client.shard(), "au2");
    assert_eq!(client.base_url(), fake.base_url());
    client.verify().await.unwrap();
    let without_override = Client::for_connection_with(
        &ClinikoConnection {
            base_url: None,
            ..connection.clone()
        },
        UA,
    )
    .unwrap();
    assert_eq!(
        without_override.base_url(),
        "https://api.au2.cliniko.com/v1"
    );
    // No client, so no request, without a User-Agent that names a contact.
    for ua in ["", "Tendon", "Tendon (integrations@tendon.example)"] {
        let e = Client::for_connection_with(&connection, ua).unwrap_err();
        assert!(matches!(e, ClinikoError::UserAgent(_)), "{ua:?}");
    }
    assert_eq!(fake.total_requests(), 1);
}

#[tokio::test]
async fn sends_basic_auth_accept_and_user_agent() {
    let fake = FakeCliniko::start().await;
    fake.set_api_keys([KEY]);
    let client = Client::new(ClientConfig {
        user_agent: "Tendon test (tests@tendon-health.dev)".into(),
        ..config(&fake)
    })
    .unwrap();
    client.verify().await.unwrap();
    let log = fake.requests();
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/v1/patients");
    assert_eq!(r.query_value("per_page").as_deref(), Some("1"));
    assert_eq!(r.auth_user.as_deref(), Some(KEY));
    assert_eq!(r.auth_password.as_deref(), Some(""));
    assert_eq!(r.accept.as_deref(), Some("application/json"));
    assert_eq!(
        r.user_agent.as_deref(),
        Some("Tendon test (tests@tendon-health.dev)")
    );
    assert_eq!(client.requests_made(), 1);
}

#[tokio::test]
async fn pages_of_100_until_no_next() {
    let fake = FakeCliniko::start().await;
    for id in 1..=250u64 {
        fake.upsert_patient(patient(&id.to_string(), "2026-02-01T00:00:00Z"));
    }
    let client = client_for(&fake);
    let got = all_patients(&client, PatientList::Active, None)
        .await
        .unwrap();
    assert_eq!(got.len(), 250);
    let want: Vec<String> = (1..=250u64).map(|i| i.to_string()).collect();
    assert_eq!(
        ids(&got),
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(got[0].first_name.as_deref(), Some("First1"));

    let log = fake.requests_to("/v1/patients");
    assert_eq!(log.len(), 3);
    assert_eq!(client.requests_made(), 3);
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.query_value("per_page").as_deref(), Some("100"), "{i}");
    }
    assert_eq!(log[0].query_value("page"), None);
    assert_eq!(log[1].query_value("page").as_deref(), Some("2"));
    assert_eq!(log[2].query_value("page").as_deref(), Some("3"));
}

#[tokio::test]
async fn ids_above_2_pow_53_stay_exact() {
    let fake = FakeCliniko::start().await;
    // 2^53 + 1 and i64::MAX: a JSON number read as f64 would round both.
    let big = "9007199254740993";
    let biggest = "9223372036854775807";
    fake.upsert_patient(patient(big, "2026-02-01T00:00:00Z"));
    fake.upsert_patient(patient(biggest, "2026-02-01T00:00:00Z"));
    fake.upsert_appointment(ClinikoAppointment {
        id: biggest.into(),
        patient_id: Some(big.into()),
        starts_at: "2026-03-01T09:00:00Z".into(),
        ..Default::default()
    });
    let client = client_for(&fake);
    for legacy in [false, true] {
        // Legacy: the IDs as JSON numbers.
        fake.set_legacy_json(legacy);
        let got = all_patients(&client, PatientList::Active, None)
            .await
            .unwrap();
        assert_eq!(ids(&got), [big, biggest], "legacy {legacy}");
        assert_eq!(client.patient(big).await.unwrap().id, big);
        let appts = client
            .appointments(AppointmentList::Booked, None, None, None)
            .await
            .unwrap();
        assert_eq!(appts.items[0].id, biggest);
        assert_eq!(appts.items[0].patient_id.as_deref(), Some(big));
    }
}

#[tokio::test]
async fn updated_since_is_sent_and_honoured() {
    let fake = FakeCliniko::start().await;
    fake.upsert_patient(patient("1", "2025-12-31T23:59:59Z"));
    fake.upsert_patient(patient("2", "2026-01-01T00:00:00Z"));
    fake.upsert_patient(patient("3", "2026-01-01T00:00:01Z"));
    fake.upsert_patient(patient("4", "2026-03-01T12:00:00Z"));
    let client = client_for(&fake);
    let got = all_patients(&client, PatientList::Active, Some("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(ids(&got), ["3", "4"]);
    let r = &fake.requests()[0];
    assert_eq!(r.query_values("q[]"), ["updated_at:>2026-01-01T00:00:00Z"]);
    // Encoded for a query string: brackets, colons and `>` escaped.
    assert!(
        r.query
            .as_deref()
            .unwrap()
            .contains("q%5B%5D=updated_at%3A%3E2026-01-01T00%3A00%3A00Z"),
        "{:?}",
        r.query
    );

    // Another offset is sent as the same instant in UTC.
    let got = all_patients(
        &client,
        PatientList::Active,
        Some("2026-03-01T21:00:00+10:00"),
    )
    .await
    .unwrap();
    assert_eq!(ids(&got), ["4"]);
    assert_eq!(
        fake.requests()[1].query_values("q[]"),
        ["updated_at:>2026-03-01T11:00:00Z"]
    );
}

#[tokio::test]
async fn archived_deleted_and_merged_patients() {
    let fake = FakeCliniko::start().await;
    fake.set_clock(Some("2026-04-01T08:00:00Z".parse().unwrap()));
    for id in ["1", "2", "3", "4"] {
        fake.upsert_patient(patient(id, ""));
    }
    fake.archive_patient("2");
    fake.delete_patient("3");
    fake.set_clock(Some("2026-04-01T08:10:00Z".parse().unwrap()));
    fake.merge_patients("4", "1");
    let client = client_for(&fake);

    let active = all_patients(&client, PatientList::Active, None)
        .await
        .unwrap();
    assert_eq!(ids(&active), ["1"]);
    assert_eq!(active[0].updated_at, "2026-04-01T08:00:00Z");
    assert_eq!(active[0].archived_at, None);

    let archived = all_patients(&client, PatientList::Archived, None)
        .await
        .unwrap();
    assert_eq!(ids(&archived), ["2", "4"]);
    assert_eq!(
        archived[0].archived_at.as_deref(),
        Some("2026-04-01T08:00:01Z")
    );
    // Archiving bumped updated_at.
    assert_eq!(archived[0].updated_at, "2026-04-01T08:00:01Z");
    assert_eq!(archived[1].merged_into_id.as_deref(), Some("1"));
    assert_eq!(
        archived[1].merged_at.as_deref(),
        Some("2026-04-01T08:10:00Z")
    );
    assert_eq!(archived[0].merged_into_id, None);

    let deleted = all_patients(&client, PatientList::Deleted, None)
        .await
        .unwrap();
    assert_eq!(ids(&deleted), ["3"]);
    assert!(deleted[0].deleted_at.is_some());

    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/patients",
            "/v1/patients/archived",
            "/v1/patients/deleted"
        ]
    );

    // The since filter applies to these lists too.
    let none = all_patients(&client, PatientList::Archived, Some("2026-04-01T08:00:01Z"))
        .await
        .unwrap();
    assert_eq!(ids(&none), ["4"]);
}

#[tokio::test]
async fn one_patient_every_field_and_not_found() {
    let fake = FakeCliniko::start().await;
    let full = ClinikoPatient {
        id: "77".into(),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        date_of_birth: Some("1990-12-10".into()),
        sex: Some("Female".into()),
        gender_identity: Some("Woman".into()),
        email: Some("ada@example.test".into()),
        phone_numbers: vec![
            ClinikoPhone {
                phone_type: Some("Mobile".into()),
                number: "61400000000".into(),
            },
            ClinikoPhone {
                phone_type: None,
                number: "0390000000".into(),
            },
        ],
        time_zone: Some("Australia/Melbourne".into()),
        country: Some("Australia".into()),
        accepted_email_marketing: Some(true),
        accepted_sms_marketing: Some(false),
        archived_at: None,
        deleted_at: None,
        merged_at: None,
        merged_into_id: None,
        updated_at: "2026-02-02T02:02:02Z".into(),
    };
    fake.upsert_patient(full.clone());
    let client = client_for(&fake);
    assert_eq!(client.patient("77").await.unwrap(), full);
    assert_eq!(fake.requests()[0].path, "/v1/patients/77");

    // Deleted patients are still served one by one.
    fake.delete_patient("77");
    assert!(client.patient("77").await.unwrap().deleted_at.is_some());

    assert_eq!(client.patient("78").await, Err(ClinikoError::NotFound));
    // A path-like ID is encoded, not followed.
    assert_eq!(
        client.patient("77/../78").await,
        Err(ClinikoError::NotFound)
    );
    assert_eq!(fake.requests()[3].path, "/v1/patients/77%2F..%2F78");
}

#[tokio::test]
async fn empty_strings_nulls_and_deprecated_gender() {
    let fake = FakeCliniko::start().await;
    fake.upsert_patient(ClinikoPatient {
        id: "5".into(),
        updated_at: "2026-02-01T00:00:00Z".into(),
        ..Default::default()
    });
    fake.set_patient_json("5", "sex", "".into());
    fake.set_patient_json("5", "gender", "Male".into());
    fake.set_patient_json("5", "email", "".into());
    fake.set_patient_json("5", "patient_phone_numbers", serde_json::Value::Null);
    let client = client_for(&fake);
    for legacy in [false, true] {
        fake.set_legacy_json(legacy);
        let p = client.patient("5").await.unwrap();
        assert_eq!(p.sex.as_deref(), Some("Male"));
        assert_eq!(p.email, None);
        assert_eq!(p.first_name, None);
        assert_eq!(p.archived_at, None);
        assert!(p.phone_numbers.is_empty());
        assert_eq!(p.accepted_email_marketing, None);
    }
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized() {
    let fake = FakeCliniko::start().await;
    fake.set_api_keys(["someoneelse-au2"]);
    let client = client_for(&fake);
    let e = client.verify().await.unwrap_err();
    assert_eq!(e, ClinikoError::Unauthorized);
    assert!(!e.to_string().contains(KEY));
    // 401 is final: no retry.
    assert_eq!(fake.total_requests(), 1);

    // The same key without its shard suffix is the same key.
    fake.set_api_keys([KEY.trim_end_matches("-au2")]);
    client.verify().await.unwrap();
}

#[tokio::test]
async fn waits_for_the_rate_limit_reset() {
    let fake = FakeCliniko::start().await;
    // The reset is the next whole second: at most a second away.
    fake.rate_limit_next(1, Duration::from_millis(1));
    let client = client_for(&fake);
    client.verify().await.unwrap();
    let log = fake.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].status, 429);
    assert_eq!(log[1].status, 200);
    let reset = UNIX_EPOCH + Duration::from_secs(log[0].rate_limit_reset.unwrap());
    assert!(log[0].at < reset);
    assert!(
        log[1].at >= reset,
        "retried at {:?}, before the reset {:?}",
        log[1].at,
        reset
    );
    assert_eq!(client.requests_made(), 2);
}

#[tokio::test]
async fn a_far_reset_fails_fast_as_rate_limited() {
    let fake = FakeCliniko::start().await;
    fake.rate_limit_next(1, Duration::from_secs(3600));
    let client = client_for(&fake);
    let e = client.verify().await.unwrap_err();
    assert_eq!(fake.rate_limited_count(), 1);
    let ClinikoError::RateLimited { retry_at } = &e else {
        panic!("{e:?}");
    };
    let retry_at: jiff::Timestamp = retry_at.parse().unwrap();
    let ahead = retry_at.duration_since(jiff::Timestamp::now());
    assert!(
        ahead > jiff::SignedDuration::from_mins(59) && ahead <= jiff::SignedDuration::from_mins(61),
        "{ahead:?}"
    );
    assert_eq!(fake.total_requests(), 1);
}

#[tokio::test]
async fn retries_5xx_with_backoff() {
    let fake = FakeCliniko::start().await;
    fake.fail_next(1, 500);
    fake.fail_next(1, 503);
    let client = Client::new(ClientConfig {
        retry_base: Duration::from_millis(20),
        ..config(&fake)
    })
    .unwrap();
    client.verify().await.unwrap();
    let log = fake.requests();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 503, 200]);
    // Jittered into the upper half of 20 ms, then of 40 ms.
    let gap1 = log[1].since_start - log[0].since_start;
    let gap2 = log[2].since_start - log[1].since_start;
    assert!(gap1 >= Duration::from_millis(10), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(20), "{gap2:?}");
}

#[tokio::test]
async fn gives_up_on_5xx_after_max_attempts() {
    let fake = FakeCliniko::start().await;
    fake.fail_next(5, 503);
    let client = client_for(&fake);
    let e = client.verify().await.unwrap_err();
    assert!(matches!(e, ClinikoError::Unavailable(_)), "{e:?}");
    assert_eq!(fake.total_requests(), 3);
    assert_eq!(client.requests_made(), 3);
}

#[tokio::test]
async fn transport_errors_are_retried_then_unavailable() {
    // A port that was just free: connections are refused, locally.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::new(ClientConfig {
        base_url: Some(format!("http://127.0.0.1:{port}/v1")),
        retry_base: Duration::from_millis(1),
        max_attempts: 2,
        ..ClientConfig::new(KEY, UA)
    })
    .unwrap();
    let e = client.patient("1").await.unwrap_err();
    assert!(matches!(e, ClinikoError::Unavailable(_)), "{e:?}");
    assert!(!e.to_string().contains("127.0.0.1"), "{e}");
    assert_eq!(client.requests_made(), 2);
}

#[tokio::test]
async fn malformed_json_is_malformed() {
    let fake = FakeCliniko::start().await;
    fake.upsert_patient(patient("1", "2026-02-01T00:00:00Z"));
    fake.malformed_next(1);
    let client = client_for(&fake);
    let e = client
        .patients(PatientList::Active, None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, ClinikoError::Malformed(_)), "{e:?}");
    // Not retried; the next call is fine.
    assert_eq!(fake.total_requests(), 1);
    let page = client
        .patients(PatientList::Active, None, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_side_limiter_holds_the_sixth_request_for_the_window() {
    let fake = FakeCliniko::start().await;
    let window = Duration::from_millis(800);
    let client = Client::new(ClientConfig {
        requests_per_minute: 5,
        rate_window: window,
        ..config(&fake)
    })
    .unwrap();
    // Every slot is taken after this instant, so the sixth cannot be let
    // through before `start + window`.
    let start = Instant::now();
    // Six calls at once from clones and from separately made clients of the
    // same key (a sync and an "Open in" click): they share the one budget.
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let c = if i % 2 == 0 {
                client.clone()
            } else {
                Client::new(ClientConfig {
                    requests_per_minute: 5,
                    rate_window: window,
                    ..config(&fake)
                })
                .unwrap()
            };
            tokio::spawn(async move { c.verify().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let mut arrivals: Vec<Instant> = fake.requests().iter().map(|r| r.arrived).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 6);
    let after: Vec<Duration> = arrivals.iter().map(|a| *a - start).collect();
    // Five go straight away; the sixth waits for the first to leave the window.
    assert!(after[4] < window / 2, "{after:?}");
    assert!(after[5] >= window, "{after:?}");
}

#[tokio::test]
async fn the_client_never_exceeds_a_limit_the_server_enforces() {
    let fake = FakeCliniko::start().await;
    // The server allows 5 per 250 ms; the client budgets 5 per 500 ms, the
    // difference being room for scheduling delays between the two.
    fake.enforce_rate_limit(Some((5, Duration::from_millis(250))));
    for id in 1..=3u64 {
        fake.upsert_patient(patient(&id.to_string(), "2026-02-01T00:00:00Z"));
    }
    let client = Client::new(ClientConfig {
        requests_per_minute: 5,
        rate_window: Duration::from_millis(500),
        ..config(&fake)
    })
    .unwrap();
    for _ in 0..11 {
        client.patient("2").await.unwrap();
    }
    assert_eq!(fake.rate_limited_count(), 0);
    assert_eq!(fake.total_requests(), 11);
    let log = fake.requests();
    assert!(log[10].since_start - log[0].since_start >= Duration::from_millis(750));
}

#[tokio::test]
async fn appointments_with_linked_ids() {
    let fake = FakeCliniko::start().await;
    fake.upsert_appointment(ClinikoAppointment {
        id: "100".into(),
        patient_id: Some("7".into()),
        practitioner_id: Some("8".into()),
        appointment_type_id: Some("9".into()),
        patient_case_id: Some("10".into()),
        business_id: Some("11".into()),
        starts_at: "2026-03-01T09:00:00Z".into(),
        cancelled_at: None,
        deleted_at: None,
        archived_at: None,
        patient_arrived: true,
        did_not_arrive: false,
        updated_at: "2026-02-20T00:00:00Z".into(),
    });
    fake.upsert_appointment(ClinikoAppointment {
        id: "101".into(),
        patient_id: Some("7".into()),
        practitioner_id: Some("8".into()),
        appointment_type_id: Some("9".into()),
        business_id: Some("11".into()),
        starts_at: "2026-03-08T09:00:00Z".into(),
        cancelled_at: Some("2026-03-02T10:00:00Z".into()),
        did_not_arrive: true,
        updated_at: "2026-03-02T10:00:00Z".into(),
        ..Default::default()
    });
    fake.upsert_appointment(ClinikoAppointment {
        id: "102".into(),
        patient_id: Some("70".into()),
        starts_at: "2026-03-09T09:00:00Z".into(),
        updated_at: "2026-03-02T10:00:00Z".into(),
        ..Default::default()
    });
    let client = client_for(&fake);

    let page = client
        .appointments(AppointmentList::Booked, Some("7"), None, None)
        .await
        .unwrap();
    assert_eq!(page.next, None);
    // Cliniko leaves cancelled appointments out of the main list.
    assert_eq!(page.items.len(), 1);
    let a = &page.items[0];
    assert_eq!(a.id, "100");
    assert_eq!(a.patient_id.as_deref(), Some("7"));
    assert_eq!(a.practitioner_id.as_deref(), Some("8"));
    assert_eq!(a.appointment_type_id.as_deref(), Some("9"));
    assert_eq!(a.patient_case_id.as_deref(), Some("10"));
    assert_eq!(a.business_id.as_deref(), Some("11"));
    assert_eq!(a.starts_at, "2026-03-01T09:00:00Z");
    assert!(a.patient_arrived && !a.did_not_arrive);
    let cancelled = client
        .appointments(AppointmentList::Cancelled, Some("7"), None, None)
        .await
        .unwrap();
    let b = &cancelled.items[0];
    assert_eq!(b.id, "101");
    assert_eq!(b.patient_case_id, None);
    assert_eq!(b.cancelled_at.as_deref(), Some("2026-03-02T10:00:00Z"));
    assert!(b.did_not_arrive);
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/v1/individual_appointments");
    assert_eq!(r.query_values("q[]"), ["patient_id:=7"]);
    assert_eq!(r.query_value("per_page").as_deref(), Some("100"));

    let page = client
        .appointments(
            AppointmentList::Booked,
            None,
            Some("2026-03-01T00:00:00Z"),
            None,
        )
        .await
        .unwrap();
    let got: Vec<&str> = page.items.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(got, ["102"]);
    assert_eq!(
        fake.requests()[2].query_values("q[]"),
        ["updated_at:>2026-03-01T00:00:00Z"]
    );
    // The deleted list is asked by `deleted_at`: Cliniko refuses `updated_at` there.
    let deleted = client
        .appointments(
            AppointmentList::Deleted,
            None,
            Some("2026-03-01T00:00:00Z"),
            None,
        )
        .await
        .unwrap();
    assert!(deleted.items.is_empty());
    let r = fake.requests().pop().unwrap();
    assert_eq!(r.path, "/v1/individual_appointments/deleted");
    assert_eq!(r.query_values("q[]"), ["deleted_at:>2026-03-01T00:00:00Z"]);

    let both = client
        .appointments(
            AppointmentList::Booked,
            Some("70"),
            Some("2026-03-01T00:00:00Z"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(both.items.len(), 1);
    assert_eq!(
        fake.requests().pop().unwrap().query_values("q[]"),
        ["patient_id:=70", "updated_at:>2026-03-01T00:00:00Z"]
    );
}

#[tokio::test]
async fn cases_types_and_practitioners() {
    let fake = FakeCliniko::start().await;
    fake.upsert_patient_case(ClinikoCase {
        id: "20".into(),
        patient_id: Some("7".into()),
        name: "Left knee".into(),
        closed: false,
        updated_at: "2026-01-05T00:00:00Z".into(),
    });
    fake.upsert_patient_case(ClinikoCase {
        id: "21".into(),
        patient_id: Some("8".into()),
        name: "Shoulder".into(),
        closed: true,
        updated_at: "2026-01-06T00:00:00Z".into(),
    });
    for (id, name) in [("30", "Initial consult"), ("31", "Follow-up")] {
        fake.upsert_appointment_type(ClinikoAppointmentType {
            id: id.into(),
            name: name.into(),
            archived: false,
        });
    }
    fake.upsert_practitioner(ClinikoPractitioner {
        id: "40".into(),
        first_name: Some("Pat".into()),
        last_name: Some("Physio".into()),
        active: true,
    });
    fake.upsert_practitioner(ClinikoPractitioner {
        id: "41".into(),
        first_name: Some("Old".into()),
        last_name: None,
        active: false,
    });
    let client = client_for(&fake);

    let cases = client.patient_cases(Some("8"), None, None).await.unwrap();
    assert_eq!(
        cases.items,
        [ClinikoCase {
            id: "21".into(),
            patient_id: Some("8".into()),
            name: "Shoulder".into(),
            closed: true,
            updated_at: "2026-01-06T00:00:00Z".into(),
        }]
    );
    let cases = client
        .patient_cases(None, Some("2026-01-05T00:00:00Z"), None)
        .await
        .unwrap();
    assert_eq!(cases.items.len(), 1);
    assert_eq!(cases.items[0].id, "21");
    let cases = client.patient_cases(None, None, None).await.unwrap();
    assert_eq!(cases.items[0].patient_id.as_deref(), Some("7"));
    assert_eq!(cases.items[0].name, "Left knee");

    let types = client
        .appointment_types(Listing::Current, None)
        .await
        .unwrap();
    let names: Vec<&str> = types.items.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Initial consult", "Follow-up"]);
    assert_eq!(types.items[1].id, "31");

    let practitioners = client.practitioners(Listing::Current, None).await.unwrap();
    assert_eq!(practitioners.items.len(), 1);
    assert!(practitioners.items[0].active);
    assert_eq!(practitioners.items[0].first_name.as_deref(), Some("Pat"));
    // Former staff are on their own list.
    let former = client.practitioners(Listing::Retired, None).await.unwrap();
    assert_eq!(former.items.len(), 1);
    assert!(!former.items[0].active);
    assert_eq!(former.items[0].last_name, None);

    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/patient_cases",
            "/v1/patient_cases",
            "/v1/patient_cases",
            "/v1/appointment_types",
            "/v1/practitioners",
            "/v1/practitioners/inactive"
        ]
    );
}

#[tokio::test]
async fn the_key_never_shows() {
    let fake = FakeCliniko::start().await;
    let cfg = config(&fake);
    let client = Client::new(cfg.clone()).unwrap();
    let body = KEY.trim_end_matches("-au2");
    for shown in [
        format!("{client:?}"),
        format!("{cfg:?}"),
        format!("{client:#?}"),
    ] {
        assert!(!shown.contains(body), "{shown}");
        assert!(shown.contains("****-au2"), "{shown}");
    }

    let mut errors = Vec::new();
    fake.set_api_keys(["other"]);
    errors.push(client.verify().await.unwrap_err());
    fake.set_api_keys([KEY]);
    errors.push(client.patient("404").await.unwrap_err());
    fake.fail_next(3, 502);
    errors.push(client.verify().await.unwrap_err());
    fake.malformed_next(1);
    errors.push(client.verify().await.unwrap_err());
    fake.rate_limit_next(1, Duration::from_secs(600));
    errors.push(client.verify().await.unwrap_err());
    errors.push(Client::new(ClientConfig::new(format!("{body}-X9Y"), UA)).unwrap_err());
    errors.push(Client::new(ClientConfig::new(format!("{body} -au1"), UA)).unwrap_err());
    assert_eq!(errors.len(), 7);
    for e in &errors {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(body), "{shown}");
    }
}

/// A `/deleted` list that refuses even `deleted_at` is read whole: deleted
/// lists are short, and an entry read again changes nothing.
#[tokio::test]
async fn a_deleted_list_that_refuses_its_filter_is_read_whole() {
    let fake = FakeCliniko::start().await;
    fake.upsert_patient(patient("5", "2026-01-01T00:00:00Z"));
    fake.delete_patient("5");
    fake.refuse_filter("deleted_at");
    let client = client_for(&fake);
    let page = client
        .patients(PatientList::Deleted, Some("2026-01-01T00:00:00Z"), None)
        .await
        .unwrap();
    assert_eq!(ids(&page.items), ["5"]);
    assert!(page.items[0].deleted_at.is_some());
    let asked: Vec<(u16, Vec<String>)> = fake
        .requests()
        .iter()
        .map(|r| (r.status, r.query_values("q[]")))
        .collect();
    assert_eq!(
        asked,
        [
            (400, vec!["deleted_at:>2026-01-01T00:00:00Z".to_owned()]),
            (200, vec![])
        ]
    );
}

/// Where Cliniko no longer serves a separate cancelled or deleted list
/// (404), the main list with the current reference's "any value" filter
/// brings them, and only the kind asked for is kept.
#[tokio::test]
async fn without_a_separate_list_the_main_one_is_filtered() {
    let fake = FakeCliniko::start().await;
    let appt = |id: &str, cancelled: Option<&str>, deleted: Option<&str>| ClinikoAppointment {
        id: id.into(),
        patient_id: Some("7".into()),
        starts_at: "2026-03-08T09:00:00Z".into(),
        cancelled_at: cancelled.map(str::to_owned),
        deleted_at: deleted.map(str::to_owned),
        updated_at: "2026-03-02T10:00:00Z".into(),
        ..Default::default()
    };
    fake.upsert_appointment(appt("100", None, None));
    fake.upsert_appointment(appt("101", Some("2026-03-02T10:00:00Z"), None));
    fake.upsert_appointment(appt("102", None, Some("2026-03-02T10:00:00Z")));
    fake.retire_path("/v1/individual_appointments/cancelled");
    fake.retire_path("/v1/individual_appointments/deleted");
    let client = client_for(&fake);
    let since = Some("2026-03-01T00:00:00Z");
    let ids = |page: tendon_core::cliniko::api::Page<ClinikoAppointment>| -> Vec<String> {
        page.items.into_iter().map(|a| a.id).collect()
    };
    let cancelled = client
        .appointments(AppointmentList::Cancelled, None, since, None)
        .await
        .unwrap();
    assert_eq!(ids(cancelled), ["101"]);
    let deleted = client
        .appointments(AppointmentList::Deleted, None, since, None)
        .await
        .unwrap();
    assert_eq!(ids(deleted), ["102"]);
    let asked: Vec<(String, u16, Vec<String>)> = fake
        .requests()
        .into_iter()
        .map(|r| (r.path.clone(), r.status, r.query_values("q[]")))
        .collect();
    let since_filter = "updated_at:>2026-03-01T00:00:00Z".to_owned();
    assert_eq!(
        asked,
        [
            (
                "/v1/individual_appointments/cancelled".to_owned(),
                404,
                vec![since_filter.clone()]
            ),
            (
                "/v1/individual_appointments".to_owned(),
                200,
                vec![since_filter.clone(), "cancelled_at:*".to_owned()]
            ),
            (
                "/v1/individual_appointments/deleted".to_owned(),
                404,
                vec!["deleted_at:>2026-03-01T00:00:00Z".to_owned()]
            ),
            (
                "/v1/individual_appointments".to_owned(),
                200,
                vec![since_filter, "archived_at:*".to_owned()]
            ),
        ]
    );
}
