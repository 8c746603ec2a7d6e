//! End to end on the local backend: the real `tendon` binary, `tendon serve`
//! over HTTP, and the operator commands, on a fresh SQLite database per test.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{LOCAL_DEADLINE, Tendon, WORKED, msa};

/// The worked example's org, location, practitioner and IE type; returns the ingest key.
fn acme(env: &Tendon) -> String {
    env.clinic("ACME01").key
}

fn messages(env: &Tendon) -> Vec<serde_json::Value> {
    env.messages("ACME01")
}

/// The path of the worked example's file (for `hl7 inspect FILE`).
const WORKED_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/worked-example.hl7"
);

/// `messages replay --org ACME01 --control-id CID`.
fn replay_args(control_id: &str) -> [&str; 6] {
    [
        "messages",
        "replay",
        "--org",
        "ACME01",
        "--control-id",
        control_id,
    ]
}

/// `ie-type add --org ACME01 --type TYPE`, which must succeed: the org.
fn add_ie_type(env: &Tendon, ie_type: &str) -> serde_json::Value {
    env.ok(&["ie-type", "add", "--org", "ACME01", "--type", ie_type])
}

#[test]
fn worked_example_end_to_end_and_duplicates_have_no_effect() {
    let mut env = Tendon::local("worked");
    let key = acme(&env);
    env.serve();
    assert_eq!(env.post(Some(&key), WORKED.as_bytes()).0, 200);
    for _ in 0..2 {
        let (status, ack) = env.post(Some(&key), WORKED.as_bytes());
        assert_eq!((status, msa(&ack)), (200, ("AA".into(), "MSG00042".into())));
    }
    let msgs = env.settle("ACME01");
    assert_eq!(msgs.len(), 1, "a duplicate is stored once");
    assert_eq!(msgs[0]["status"], "processed");
    let p = env.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]);
    assert_eq!(p["last_name"], "Rivera");
    assert_eq!(p["source"], "emr");
    let eps = p["episodes"].as_array().unwrap();
    assert_eq!(eps.len(), 2);
    assert_eq!(eps.iter().filter(|e| e["default"] == true).count(), 1);
    let case = eps.iter().find(|e| e["case_id"] == "C-42").unwrap();
    assert_eq!(
        (
            case["name"].as_str(),
            case["supervising_practitioner_id"].as_str()
        ),
        (Some("Right Shoulder"), Some("445566"))
    );
    let appts = p["appointments"].as_array().unwrap();
    assert_eq!(appts.len(), 1);
    assert_eq!(appts[0]["start"], "2026-12-01T10:00:00-08:00");
    assert_eq!(appts[0]["status"], "scheduled");
    assert_eq!(
        env.ok(&["patient", "list", "--org", "ACME01"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// The README's first minutes on any day: the worked example dated from
/// today (`hl7 example`) goes all the way to a sent welcome email on the
/// dispatcher's next pass, and the day-before steps wait for their day.
#[test]
fn the_readme_walkthrough_sends_the_welcome_email_today() {
    let mut env = Tendon::local("readme");
    let key = acme(&env);
    env.ok(&["workflow", "install-defaults", "--org", "ACME01"]);
    env.serve();
    let example = env
        .command()
        .args(["hl7", "example"])
        .output()
        .expect("tendon runs");
    assert!(example.status.success());
    let (status, ack) = env.post(Some(&key), &example.stdout);
    assert_eq!((status, msa(&ack)), (200, ("AA".into(), "MSG00042".into())));
    let msgs = env.settle("ACME01");
    assert_eq!(msgs[0]["status"], "processed");

    let next_pass = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)).to_string();
    env.ok(&["dispatch", "--at", &next_pass]);
    let outbox = env.ok(&["outbox", "list", "--org", "ACME01"]);
    let mut sent: Vec<_> = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["workflow_id"].as_str().unwrap_or_default(),
                m["step"].as_u64(),
                m["channel"].as_str().unwrap_or_default(),
                m["to"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    sent.sort();
    let ana = "ana.rivera@example.com";
    assert_eq!(
        sent,
        [
            ("welcome-emr", Some(0), "email", ana),
            ("welcome-emr", Some(1), "email", ana)
        ],
        "the welcome email and the education it assigns, once each: {outbox}"
    );
    let welcome = outbox.as_array().unwrap().iter().find(|m| m["step"] == 0);
    assert_eq!(welcome.unwrap()["subject"], "Welcome to ACME01 PT, Ana");
    // The reminders and the PRO form the day before are still to come.
    let steps = env.ok(&["workflow", "steps", "--org", "ACME01", "--patient", "P555"]);
    let waiting = steps
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "scheduled")
        .count();
    assert!(waiting >= 3, "the day-before steps are scheduled: {steps}");
}

#[test]
fn ingest_rejects_bad_keys_bodies_and_reused_control_ids() {
    let mut env = Tendon::local("ingest");
    let key = acme(&env);
    env.serve();
    assert_eq!(env.post(None, WORKED.as_bytes()).0, 401);
    assert_eq!(env.post(Some("tdn_wrong"), WORKED.as_bytes()).0, 401);
    assert_eq!(env.post(Some(&key), &vec![b'x'; (1 << 20) + 1]).0, 413);
    assert!(
        messages(&env).is_empty(),
        "nothing stored without a valid key or over the limit"
    );

    env.post(Some(&key), WORKED.as_bytes());
    let (_, ack) = env.post(Some(&key), WORKED.replace("Rivera", "Rivers").as_bytes());
    assert_eq!(msa(&ack).0, "AR");
    assert!(ack.contains("control_id_reused"), "{ack:?}");

    let (_, ack) = env.post(
        Some(&key),
        WORKED
            .replace("|ACME01|", "|OTHER9|")
            .replace("MSG00042", "MSG9")
            .as_bytes(),
    );
    assert_eq!(msa(&ack).0, "AR");
    assert!(ack.contains("account_mismatch"));

    let (_, ack) = env.post(Some(&key), b"garbage");
    assert_eq!(msa(&ack), ("AR".into(), String::new()));
    assert!(ack.contains("invalid_hl7"));

    let (_, ack) = env.post(
        Some(&key),
        WORKED
            .replace("MSG00042", "MSG2")
            .replace("^NET^Internet^ana.rivera@example.com", "")
            .as_bytes(),
    );
    assert_eq!(msa(&ack), ("AE".into(), "MSG2".into()));
    assert!(ack.contains("missing_field^patient_email"), "{ack:?}");

    let oru = "MSH|^~\\&|EMR|ACME01|||20261120||ORU^R01|MSG3|P|2.5.1\rOBX|1\r";
    assert_eq!(msa(&env.post(Some(&key), oru.as_bytes()).1).0, "AA");

    let msgs = env.settle("ACME01");
    let status_of = |cid: &str| {
        msgs.iter()
            .find(|m| m["control_id"] == cid)
            .map(|m| m["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status_of("MSG2").as_deref(), Some("failed"));
    assert_eq!(status_of("MSG3").as_deref(), Some("ignored"));
    assert_eq!(status_of("MSG9").as_deref(), Some("rejected"));
    assert_eq!(msgs.iter().filter(|m| m["status"] == "rejected").count(), 3);

    // Replaying the reused control ID replays the accepted message only: the
    // rejected copy (Rivers) is never applied.
    let replayed = env.ok(&replay_args("MSG00042"));
    assert_eq!(replayed["replayed"], 1);
    let p = env.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]);
    assert_eq!(p["last_name"], "Rivera");
    let (ok, _, err) = env.cli(&replay_args("MSG9"));
    assert!(
        !ok && err.contains("account_mismatch") && err.contains("cannot be replayed"),
        "{err}"
    );
}

#[test]
fn failures_are_recorded_and_replay_fixes_them() {
    let mut env = Tendon::local("replay");
    let key = acme(&env);
    env.serve();
    let unknown = WORKED.replace("445566^Okafor", "424242^Okafor");
    assert_eq!(msa(&env.post(Some(&key), unknown.as_bytes()).1).0, "AA");
    let adt = "MSH|^~\\&|EMR|ACME01|||20261121||ADT^A08|ADT1|P|2.5.1\rPID|1||P777^^^^MR||Doe^Jo\r";
    env.post(Some(&key), adt.as_bytes());
    let msgs = env.settle("ACME01");
    assert_eq!(msgs[0]["status"], "failed");
    assert_eq!(msgs[0]["errors"][0]["code"], "unknown_practitioner");
    assert_eq!(
        msgs[1]["status"], "pending",
        "ADT for an unknown patient waits"
    );
    let (ok, _, err) = env.cli(&["patient", "show", "--org", "ACME01", "--id", "P555"]);
    assert!(!ok && err.contains("no patient"));

    env.ok(&[
        "practitioner",
        "add",
        "--org",
        "ACME01",
        "--id",
        "424242",
        "--first",
        "New",
        "--last",
        "Therapist",
    ]);
    assert_eq!(
        env.ok(&["messages", "replay", "--org", "ACME01", "--failed"])["replayed"],
        1
    );
    let msgs = env.settle("ACME01");
    assert_eq!(msgs[0]["status"], "processed");
    let p = env.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]);
    assert_eq!(p["episodes"].as_array().unwrap().len(), 2);
    // Replaying again is idempotent.
    env.ok(&replay_args("MSG00042"));
    env.settle("ACME01");
    assert_eq!(
        env.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]),
        p
    );
}

#[test]
fn operator_commands_validate_their_input() {
    let env = Tendon::local("cli");
    acme(&env);
    let (ok, _, err) = env.cli(&["org", "create", "--id", "ACME01", "--name", "Again"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = env.cli(&[
        "location", "add", "--org", "NOPE", "--id", "1", "--name", "X",
    ]);
    assert!(!ok && err.contains("no org"), "{err}");
    let (ok, _, err) = env.cli(&[
        "org",
        "create",
        "--id",
        "B1",
        "--name",
        "B",
        "--timezone",
        "Mars/Base",
    ]);
    assert!(!ok && err.contains("unknown time zone"), "{err}");
    let org = add_ie_type(&env, "initial eval");
    assert_eq!(
        org["ie_types"],
        serde_json::json!(["Initial Eval"]),
        "IE types are case-insensitive"
    );
    let org = add_ie_type(&env, "Telehealth Initial Eval");
    assert_eq!(org["ie_types"].as_array().unwrap().len(), 2);
    assert!(
        org.get("ingest_key").is_none(),
        "the key is shown once, at creation"
    );
    let (ok, _, err) = env.cli(&["messages", "list", "--org", "ACME01", "--status", "weird"]);
    assert!(!ok && err.contains("unknown status"), "{err}");
}

/// Key rotation: `org add-key` prints a second key, once; both keys post for
/// the org; an unknown org gets no key; `org keys` lists them by ID and
/// `org revoke-key` revokes one (the last only with --allow-none).
#[test]
fn a_second_ingest_key_works_beside_the_first() {
    let mut env = Tendon::local("addkey");
    let first = acme(&env);
    env.serve();
    let out = env.ok(&["org", "add-key", "--org", "ACME01"]);
    let second = out["ingest_key"].as_str().unwrap().to_owned();
    assert_eq!(out["org"], "ACME01");
    assert!(second.starts_with("tdn_") && second != first);
    let other = WORKED.replace("MSG00042", "MSG00043");
    assert_eq!(msa(&env.post(Some(&second), other.as_bytes()).1).0, "AA");
    assert_eq!(msa(&env.post(Some(&first), WORKED.as_bytes()).1).0, "AA");
    assert_eq!(env.settle("ACME01").len(), 2);
    let (ok, _, err) = env.cli(&["org", "add-key", "--org", "NOPE"]);
    assert!(!ok && err.contains("does not exist"), "{err}");

    // Revocation: the first key stops working at once, the second goes on.
    let listed = env.ok(&["org", "keys", "--org", "ACME01"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert_eq!(ids[1], out["key_id"], "oldest first: {listed}");
    assert!(
        !listed.to_string().contains(&second) && !listed.to_string().contains(&first),
        "keys are never shown again: {listed}"
    );
    let revoked = env.ok(&["org", "revoke-key", "--org", "ACME01", "--key-id", ids[0]]);
    assert_eq!(revoked["revoked"], ids[0]);
    assert_eq!(revoked["remaining"], 1);
    let third = WORKED.replace("MSG00042", "MSG00044");
    assert_eq!(env.post(Some(&first), third.as_bytes()).0, 401);
    assert_eq!(msa(&env.post(Some(&second), third.as_bytes()).1).0, "AA");

    // The last key needs --allow-none; unknown, short or foreign IDs are refused.
    let (ok, _, err) = env.cli(&["org", "revoke-key", "--org", "ACME01", "--key-id", ids[1]]);
    assert!(!ok && err.contains("last ingest key"), "{err}");
    let (ok, _, err) = env.cli(&["org", "revoke-key", "--org", "ACME01", "--key-id", ids[0]]);
    assert!(!ok && err.contains("no key with ID"), "{err}");
    let (ok, _, err) = env.cli(&["org", "revoke-key", "--org", "ACME01", "--key-id", "abc"]);
    assert!(!ok && err.contains("at least 8 hex digits"), "{err}");
    let (ok, _, err) = env.cli(&["org", "revoke-key", "--org", "ACME01", "--key", &first]);
    assert!(!ok && err.contains("not an ingest key"), "{err}");
    let (ok, _, err) = env.cli(&["org", "revoke-key", "--org", "ACME01"]);
    assert!(!ok && err.contains("--key-id"), "{err}");
    let gone = env.ok(&[
        "org",
        "revoke-key",
        "--org",
        "ACME01",
        "--key",
        &second,
        "--allow-none",
    ]);
    assert_eq!(gone["remaining"], 0);
    assert_eq!(env.post(Some(&second), third.as_bytes()).0, 401);
    assert_eq!(
        env.ok(&["org", "keys", "--org", "ACME01"]),
        serde_json::json!([])
    );
}

/// Per-org field-map overrides (docs/interface.md §3): `org field-map --set` moves a
/// field, the next message is read with it, `--reset` restores the default;
/// unknown fields, fixed fields and bad paths are refused.
#[test]
fn a_field_map_override_moves_a_field_and_resets() {
    let mut env = Tendon::local("fieldmap");
    let key = acme(&env);
    assert_eq!(
        env.ok(&["org", "field-map", "--org", "ACME01"]),
        serde_json::json!({"org": "ACME01", "overrides": {}})
    );
    let set = env.ok(&[
        "org",
        "field-map",
        "--org",
        "ACME01",
        "--set",
        "case_id=SCH-1.1",
    ]);
    assert_eq!(
        set["overrides"],
        serde_json::json!({"case_id": ["SCH-1.1"]})
    );
    env.serve();
    assert_eq!(msa(&env.post(Some(&key), WORKED.as_bytes()).1).0, "AA");
    env.settle("ACME01");
    let p = env.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]);
    let cases: Vec<&str> = p["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["case_id"].as_str())
        .collect();
    assert_eq!(cases, ["PL-77"], "the case ID came from SCH-1.1: {p}");

    let reset = env.ok(&["org", "field-map", "--org", "ACME01", "--reset", "case_id"]);
    assert_eq!(reset["overrides"], serde_json::json!({}));
    for (args, wanted) in [
        (vec!["--set", "case_number=PV1-19.1"], "case_number"),
        (vec!["--set", "control_id=MSH-11"], "cannot be overridden"),
        (vec!["--set", "case_id=PV1-"], "PV1-"),
        (vec!["--set", "case_id"], "FIELD=PATHS"),
        (vec!["--set", "case_id="], "--reset case_id"),
    ] {
        let mut cmd = vec!["org", "field-map", "--org", "ACME01"];
        cmd.extend(args);
        let (ok, _, err) = env.cli(&cmd);
        assert!(!ok && err.contains(wanted), "{cmd:?}: {err}");
    }
    let (ok, _, err) = env.cli(&["org", "field-map", "--org", "NOPE"]);
    assert!(!ok && err.contains("no org"), "{err}");
}

// ---------------------------------------------------------------------------
// The HTTP server's limits (docs/interface.md §4): timeouts, every oversized
// body's JSON 413, and /health.

/// How long a connection may stay open after a 1 s timeout should have
/// closed it: generous, for a busy machine. A server without the timeout
/// keeps it open past this, and the test fails.
const CLOSED_WITHIN: Duration = Duration::from_secs(30);

/// Every HTTP timeout of `tendon serve` at 1 s (the defaults are 10 to 30 s).
/// Headers and bodies get a second; a request, well beyond that, so a body
/// that stops half way always meets the body timeout first.
const SHORT_TIMEOUTS: [(&str, &str); 3] = [
    ("TENDON_HTTP_HEADER_TIMEOUT", "1"),
    ("TENDON_HTTP_BODY_TIMEOUT", "1"),
    ("TENDON_HTTP_REQUEST_TIMEOUT", "10"),
];

/// Reads until the server closes the connection (EOF or a reset); what it
/// sent. Fails when it is still open after [`CLOSED_WITHIN`].
fn read_until_closed(s: &mut TcpStream) -> String {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = CLOSED_WITHIN.saturating_sub(started.elapsed());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the server did not close the connection within {CLOSED_WITHIN:?} ({e}); it sent {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The JSON body of an HTTP answer.
fn json_body(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or(answer, |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
}

#[test]
fn slow_stalled_and_idle_connections_are_closed() {
    let mut env = Tendon::local("slow");
    let key = acme(&env);
    env.serve_with(&SHORT_TIMEOUTS);
    let addr = env.addr();
    let connect = || TcpStream::connect(&addr).expect("the server accepts connections");

    // Slowloris: half a header, on many connections at once. Each is closed
    // after the header timeout, without a request ever reaching Tendon.
    let mut halves: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"POST /hl7 HTTP/1.1\r\nHost: tendon\r\nAuthorization: Bea")
                .unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    for s in &mut halves {
        let sent = read_until_closed(s);
        assert!(!sent.contains("200 OK"), "{sent:?}");
    }
    eprintln!("50 half headers closed in {:.1?}", started.elapsed());

    // A body that stops half way: 408 `timeout`, and the connection closed.
    let mut s = connect();
    write!(
        s,
        "POST /hl7 HTTP/1.1\r\nHost: tendon\r\nAuthorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\nMSH|^~\\&|"
    )
    .unwrap();
    let answer = read_until_closed(&mut s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_eq!(json_body(&answer)["error"], "timeout", "{answer:?}");

    // A kept-alive connection is answered, then closed once idle.
    let mut s = connect();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: tendon\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut s);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer:?}");

    // None of that stored anything, and the server still answers.
    assert!(messages(&env).is_empty());
    assert_eq!(msa(&env.post(Some(&key), WORKED.as_bytes()).1).0, "AA");
}

/// Holds the SQLite database's write lock from another connection, so the
/// server's writer waits on it (its busy timeout is 5 s).
fn lock_database(env: &Tendon) -> rusqlite::Connection {
    let lock = rusqlite::Connection::open(env.db()).expect("the database opens");
    lock.busy_timeout(Duration::from_secs(30)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");
    lock
}

#[test]
fn a_stalled_store_times_out_with_503_and_the_retry_is_acknowledged() {
    let mut env = Tendon::local("stalled");
    let key = acme(&env);
    env.serve_with(&[("TENDON_HTTP_REQUEST_TIMEOUT", "1")]);
    let lock = lock_database(&env);
    let (status, answer) = env.post(Some(&key), WORKED.as_bytes());
    let json: serde_json::Value = serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("503 body is not JSON ({e}): {answer:?}"));
    assert_eq!(status, 503, "{answer}");
    assert_eq!(json["error"], "timeout", "{answer}");
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // The write queued before the timeout goes through once the lock is
    // gone; the message is then marked as never acknowledged.
    env.wait_until("ACME01", "the message marked unacknowledged", |msgs| {
        msgs.len() == 1 && msgs[0]["acknowledged"] == false
    });

    // The gateway retries until it is acknowledged (a retry may itself time
    // out while the writer catches up); the message is stored once.
    let deadline = Instant::now() + LOCAL_DEADLINE;
    loop {
        let (status, answer) = env.post(Some(&key), WORKED.as_bytes());
        if status == 200 {
            assert_eq!(msa(&answer), ("AA".into(), "MSG00042".into()));
            break;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(Instant::now() < deadline, "never acknowledged: {answer}");
    }
    let msgs = env.settle("ACME01");
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert_eq!(msgs[0]["status"], "processed");
    assert_eq!(msgs[0]["acknowledged"], true, "the retry's AA");
}

#[test]
fn health_says_ok_and_which_part_fails() {
    let mut env = Tendon::local("health");
    env.serve();
    let health = || {
        let (status, body) = env.request("GET", "/health", "", b"");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body:?}"));
        (status, json)
    };
    assert_eq!(health(), (200, serde_json::json!({"status": "ok"})));

    // A store whose writer cannot write (here: locked by another process).
    let lock = lock_database(&env);
    let (status, json) = health();
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["status"], "unavailable");
    assert_eq!(json["failing"], serde_json::json!(["store"]));
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);

    // Healthy again once the writer is through the probes it queued meanwhile.
    let deadline = Instant::now() + LOCAL_DEADLINE;
    while health().0 != 200 {
        assert!(Instant::now() < deadline, "/health stays failing");
    }
}

#[test]
fn every_oversized_body_gets_the_json_413() {
    let mut env = Tendon::local("oversize");
    let key = acme(&env);
    env.serve();
    for size in [2 << 20, 12 << 20] {
        let mut body = WORKED.as_bytes().to_vec();
        body.resize(size, b'x');
        let (status, answer) = env.post(Some(&key), &body);
        let json: serde_json::Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{size} bytes: 413 body is not JSON ({e}): {answer:?}"));
        assert_eq!(status, 413, "{size} bytes: {answer}");
        assert_eq!(json["error"], "body_too_large", "{size} bytes: {answer}");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains(&size.to_string()),
            "{json}"
        );
        // The key is checked first, whatever the size.
        assert_eq!(env.post(Some("tdn_wrong"), &body).0, 401);
    }

    // Chunked, so no Content-Length: refused once it passes the limit.
    let mut s = TcpStream::connect(env.addr()).unwrap();
    write!(
        s,
        "POST /hl7 HTTP/1.1\r\nHost: tendon\r\nAuthorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'x'; 64 << 10];
    for _ in 0..32 {
        write!(s, "{:x}\r\n", chunk.len()).unwrap();
        s.write_all(&chunk).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let answer = read_until_closed(&mut s);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert_eq!(json_body(&answer)["error"], "body_too_large");

    assert!(messages(&env).is_empty(), "nothing stored");
    assert_eq!(msa(&env.post(Some(&key), WORKED.as_bytes()).1).0, "AA");
}

/// Every way the CLI prints, with its stdout a pipe nobody reads any more
/// (`tendon messages list | head -3`): the command ends quietly, exit 0 and
/// nothing on stderr, never a panic (exit 101).
#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let env = Tendon::local("closed");
    acme(&env);
    let commands: &[&[&str]] = &[
        &["messages", "list", "--org", "ACME01"],
        &["messages", "list", "--org", "ACME01", "--json"],
        &["patient", "list", "--org", "ACME01"],
        &["org", "keys", "--org", "ACME01"],
        &["org", "keys", "--org", "ACME01", "--json"],
        &["workflow", "install-defaults", "--org", "ACME01"],
        &["workflow", "list", "--org", "ACME01"],
        &["dispatch", "--at", "2026-12-01T09:00:00Z"],
        &["cliniko", "failures", "--org", "ACME01"],
        &["hl7", "inspect", WORKED_FILE],
        &["hl7", "inspect", WORKED_FILE, "--json"],
        &["hl7", "inspect", WORKED_FILE, "--org", "ACME01"],
        &["hl7", "example"],
        &["--help"],
        &["--version"],
    ];
    for args in commands {
        let mut command = env.command();
        command.args(*args);
        let (status, stderr) = common::with_closed_stdout(command);
        assert!(
            status.success() && stderr.is_empty(),
            "tendon {args:?} with a closed stdout: {status}, stderr {stderr:?}"
        );
    }
    // What a command did before printing is done (`install-defaults` above).
    assert!(
        env.ok(&["workflow", "list", "--org", "ACME01"])
            .as_array()
            .is_some_and(|all| !all.is_empty())
    );
}

/// A command other than `org create` and `serve` pointed at a database file
/// that does not exist says so (stderr, exit 1) and creates nothing, rather
/// than starting an empty database and answering "no org". `org create`
/// starts one; `hl7 inspect --org` stores nothing, so it checks without the
/// org's configuration and says so.
#[test]
fn a_missing_database_is_named_and_never_created_by_other_commands() {
    let dir = std::env::temp_dir().join(format!("tendon-nodb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let tendon = |db: &std::path::Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tendon"))
            .env_remove("TENDON_DB")
            .env_remove("TENDON_BACKEND")
            .arg("--db")
            .arg(db)
            .args(args)
            .output()
            .expect("tendon runs")
    };
    let listing = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let reads: &[&[&str]] = &[
        &["messages", "list", "--org", "A"],
        &["messages", "replay", "--org", "A", "--failed"],
        &["patient", "list", "--org", "A"],
        &["patient", "show", "--org", "A", "--id", "P1"],
        &["location", "add", "--org", "A", "--id", "1", "--name", "X"],
        &["org", "keys", "--org", "A"],
        &["org", "add-key", "--org", "A"],
        &["workflow", "list", "--org", "A"],
        &["workflow", "install-defaults", "--org", "A"],
        &["outbox", "list", "--org", "A"],
        &["dispatch", "--at", "2026-12-01T09:00:00Z"],
        &["cliniko", "sync", "--all"],
    ];
    let in_dir = dir.join("tendon.db");
    let nowhere = dir.join("no").join("such").join("x.db");
    for db in [&in_dir, &nowhere] {
        for args in reads {
            let out = tendon(db, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success()
                    && stderr.contains(&format!(
                        "the database file {} does not exist",
                        db.display()
                    )),
                "tendon --db {} {args:?}: {} {stderr}",
                db.display(),
                out.status
            );
            assert!(out.stdout.is_empty(), "{args:?}");
            assert_eq!(
                listing(&dir),
                Vec::<String>::new(),
                "{args:?} created nothing"
            );
        }
    }
    // TENDON_DB alike.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tendon"))
        .env("TENDON_DB", &in_dir)
        .env_remove("TENDON_BACKEND")
        .args(["messages", "list", "--org", "A"])
        .output()
        .expect("tendon runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let out = tendon(
        &in_dir,
        &["hl7", "inspect", WORKED_FILE, "--org", "ACME01", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["errors"], serde_json::json!([]), "MSH-4 is checked");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("configuration"),
        "it says the org's configuration was not applied"
    );
    assert_eq!(
        listing(&dir),
        Vec::<String>::new(),
        "inspect stores nothing"
    );

    let out = tendon(&in_dir, &["org", "create", "--id", "A", "--name", "A"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(in_dir.exists(), "org create starts the database");
    let out = tendon(&in_dir, &["messages", "list", "--org", "A", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The unsubscribe link on `tendon serve`: a GET (a person, or a mail
/// scanner following the link) shows a page with one button, a form that
/// POSTs to the same URL, and leaves the patient subscribed, whether the
/// patient exists or not; a POST unsubscribes, as a plain form post or as a
/// mail client's RFC 8058 one-click; a wrong token is a 404 either way.
#[test]
fn an_unsubscribe_link_shows_a_form_on_get_and_unsubscribes_on_post() {
    use tendon_core::workflow::dispatch::{unsubscribe_token, unsubscribe_url};
    let mut env = Tendon::local("unsubscribe");
    env.serve();
    let c = env.clinic("ACME01");
    c.send(&c.siu("M1"));
    c.send(
        &c.siu("M2")
            .patient("P2")
            .appointment("A2")
            .case("C-2", "Knee"),
    );
    c.settle();
    let secret = {
        let store = tendon_local::SqliteStore::open(env.db()).expect("the deployment's database");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(store.unsubscribe_secret())
            .expect("the secret")
    };
    let link = |p: &str| unsubscribe_url("", "ACME01", p, &unsubscribe_token(&secret, "ACME01", p));
    let subscribed = |p: &str| c.patient(p)["unsubscribed"] == false;
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";

    let (status, page) = env.request("GET", &link("P555"), "", b"");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<form method=\"post\">").count(), 1, "{page}");
    assert_eq!(page.matches("<button").count(), 1, "{page}");
    assert!(!page.contains("You are unsubscribed"), "{page}");
    assert!(subscribed("P555"), "a GET changes nothing");
    assert_eq!(
        env.request("GET", &link("NOBODY"), "", b""),
        (status, page.clone()),
        "a GET does not tell whether the patient exists"
    );
    let wrong = format!("/unsubscribe/ACME01/P555/{}", "0".repeat(32));
    for method in ["GET", "POST"] {
        let (status, body) = env.request(method, &wrong, form, b"List-Unsubscribe=One-Click");
        assert_eq!(status, 404, "{method}: {body}");
        assert!(body.contains("not valid"), "{body}");
    }
    assert!(subscribed("P555"));

    // The page's button: a plain form post to the same URL.
    let (status, body) = env.request("POST", &link("P555"), form, b"List-Unsubscribe=One-Click");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("You are unsubscribed"), "{body}");
    assert!(!subscribed("P555"));
    // A POST without the one-click body acts too.
    assert!(subscribed("P2"));
    let (status, body) = env.request("POST", &link("P2"), "", b"");
    assert_eq!(status, 200, "{body}");
    assert!(!subscribed("P2"));
}
