//! The fake answering requests directly (no socket): paging and filters,
//! stamps and the lists a change moves a record between, faults, auth and
//! the enforced rate limit.
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{Value, json};
use tendon_core::cliniko::api::ClinikoPatient;

use super::{FakeState, Incoming};

fn state() -> FakeState {
    FakeState::new("http://fake.test/v1".into())
}

fn get(state: &FakeState, path_and_query: &str) -> (u16, Value) {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (path_and_query, None),
    };
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("key-au1:")
    );
    let (reply, _) = state.respond(&Incoming {
        method: "GET".into(),
        path: path.into(),
        query,
        authorization: Some(auth),
        user_agent: None,
        accept: None,
    });
    let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, body)
}

fn patient(id: u64, updated_at: &str) -> ClinikoPatient {
    ClinikoPatient {
        id: id.to_string(),
        updated_at: updated_at.into(),
        ..Default::default()
    }
}

#[test]
fn pages_keep_filters_and_order() {
    let s = state();
    for id in (1..=7).rev() {
        s.upsert_patient(patient(id, &format!("2026-01-0{id}T00:00:00Z")));
    }
    let (status, body) = get(
        &s,
        "/v1/patients?per_page=2&q%5B%5D=updated_at%3A%3E2026-01-02T00%3A00%3A00Z",
    );
    assert_eq!(status, 200);
    assert_eq!(body["total_entries"], 5);
    // Integer IDs, as the documented patients example has them.
    assert_eq!(body["patients"][0]["id"], 3);
    assert_eq!(body["patients"][1]["id"], 4);
    let next = body["links"]["next"].as_str().unwrap();
    assert_eq!(
        next,
        "http://fake.test/v1/patients?q%5B%5D=updated_at%3A%3E2026-01-02T00%3A00%3A00Z&page=2&per_page=2"
    );
    let (_, last) = get(
        &s,
        &next["http://fake.test".len()..].replace("&page=2&", "&page=3&"),
    );
    assert_eq!(last["patients"].as_array().unwrap().len(), 1);
    assert!(last["links"].get("next").is_none());
    assert!(last["links"]["previous"].is_string());
}

#[test]
fn stamps_move_forward_and_lists_follow_state() {
    let s = state();
    let t0: Timestamp = "2026-03-01T09:00:00Z".parse().unwrap();
    s.set_clock(Some(t0));
    s.upsert_patient(patient(1, ""));
    s.upsert_patient(patient(2, ""));
    assert_eq!(s.patient("1").unwrap().updated_at, "2026-03-01T09:00:00Z");
    s.archive_patient("1");
    let p1 = s.patient("1").unwrap();
    assert_eq!(p1.updated_at, "2026-03-01T09:00:01Z");
    assert_eq!(p1.archived_at.as_deref(), Some("2026-03-01T09:00:01Z"));
    s.merge_patients("2", "3");
    s.delete_patient("2");
    let ids = |path| {
        let (_, b) = get(&s, path);
        b["patients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].to_string())
            .collect::<Vec<_>>()
    };
    assert!(ids("/v1/patients").is_empty());
    assert_eq!(ids("/v1/patients/archived"), ["1"]);
    // A deleted entry is bare, as documented: `deleted_at` and its link.
    let (_, deleted) = get(&s, "/v1/patients/deleted");
    assert_eq!(
        deleted["patients"][0],
        json!({
            "deleted_at": "2026-03-01T09:00:02Z",
            "links": {"self": "http://fake.test/v1/patients/2"}
        })
    );
    let (_, two) = get(&s, "/v1/patients/2");
    assert_eq!(
        two["merged_with_patient"]["links"]["self"],
        "http://fake.test/v1/patients/3"
    );
    // `/deleted` lists take `deleted_at` (or `id`), never `updated_at`.
    assert_eq!(
        get(
            &s,
            "/v1/patients/deleted?q[]=updated_at:>2026-01-01T00:00:00Z"
        )
        .0,
        400
    );
    let (status, since) = get(
        &s,
        "/v1/patients/deleted?q[]=deleted_at:>2026-03-01T09:00:01Z",
    );
    assert_eq!((status, since["total_entries"].as_u64()), (200, Some(1)));
}

#[test]
fn faults_and_auth() {
    let s = state();
    s.set_api_keys(["key"]);
    s.fail_next(1, 503);
    s.rate_limit_next(1, Duration::from_secs(30));
    s.malformed_next(1);
    assert_eq!(get(&s, "/v1/patients").0, 503);
    assert_eq!(get(&s, "/v1/patients").0, 429);
    assert_eq!(s.rate_limited_count(), 1);
    assert_eq!(get(&s, "/v1/patients"), (200, Value::Null));
    // "key-au1" is "key" with its shard suffix.
    assert_eq!(get(&s, "/v1/patients").0, 200);
    s.set_api_keys(["other-uk1"]);
    assert_eq!(get(&s, "/v1/patients").0, 401);
    let log = s.requests();
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].auth_user.as_deref(), Some("key-au1"));
    assert_eq!(log[0].auth_password.as_deref(), Some(""));
    assert!(log[1].rate_limit_reset.is_some());
    assert_eq!(s.request_count("/v1/patients"), 5);
}

#[test]
fn enforced_rate_limit() {
    let s = state();
    s.enforce_rate_limit(Some((2, Duration::from_secs(60))));
    assert_eq!(get(&s, "/v1/practitioners").0, 200);
    assert_eq!(get(&s, "/v1/practitioners").0, 200);
    assert_eq!(get(&s, "/v1/practitioners").0, 429);
    assert_eq!(s.rate_limited_count(), 1);
}

#[test]
fn unknown_filters_are_refused() {
    let s = state();
    assert_eq!(get(&s, "/v1/patients?q[]=first_name:=Ada").0, 400);
    assert_eq!(get(&s, "/v1/patient_cases?q[]=patient_id:=1,2").0, 200);
    assert_eq!(get(&s, "/v1/nothing").0, 404);
    assert_eq!(get(&s, "/v1/patients/12").0, 404);
}
