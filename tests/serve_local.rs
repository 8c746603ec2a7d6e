//! End to end on the local backend: the real `tendon` binary, `tendon serve`
//! over HTTP, and the operator commands, on a fresh SQLite database per test.
mod common;

use common::{Tendon, WORKED, msa};

/// The worked example's org, location, practitioner and IE type; returns the ingest key.
fn acme(env: &Tendon) -> String {
    env.clinic("ACME01").key
}

fn messages(env: &Tendon) -> Vec<serde_json::Value> {
    env.messages("ACME01")
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
    let replayed = env.ok(&[
        "messages",
        "replay",
        "--org",
        "ACME01",
        "--control-id",
        "MSG00042",
    ]);
    assert_eq!(replayed["replayed"], 1);
    let p = env.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]);
    assert_eq!(p["last_name"], "Rivera");
    let (ok, _, err) = env.cli(&[
        "messages",
        "replay",
        "--org",
        "ACME01",
        "--control-id",
        "MSG9",
    ]);
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
    env.ok(&[
        "messages",
        "replay",
        "--org",
        "ACME01",
        "--control-id",
        "MSG00042",
    ]);
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
    let org = env.ok(&[
        "ie-type",
        "add",
        "--org",
        "ACME01",
        "--type",
        "initial eval",
    ]);
    assert_eq!(
        org["ie_types"],
        serde_json::json!(["Initial Eval"]),
        "IE types are case-insensitive"
    );
    let org = env.ok(&[
        "ie-type",
        "add",
        "--org",
        "ACME01",
        "--type",
        "Telehealth Initial Eval",
    ]);
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
