//! End to end on the local backend: the real `tendon` binary, `tendon serve`
//! over HTTP, and the operator commands, on a fresh SQLite database per test.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

const WORKED: &str = include_str!("../examples/worked-example.hl7");

struct Env {
    db: PathBuf,
    server: Option<(Child, String)>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some((child, _)) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.drop_files();
    }
}

impl Env {
    fn new(name: &str) -> Env {
        let db = std::env::temp_dir().join(format!("tendon-e2e-{name}-{}.db", std::process::id()));
        let mut env = Env { db, server: None };
        env.drop_files();
        env
    }

    fn drop_files(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db.display()));
        }
        let _ = std::fs::remove_file(self.db.with_extension("log"));
    }

    /// Runs a CLI command with `--json` and returns (success, stdout JSON or Null, stderr).
    fn cli(&self, args: &[&str]) -> (bool, Json, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tendon"))
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .arg("--json")
            .output()
            .expect("tendon runs");
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
        (
            out.status.success(),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> Json {
        let (ok, json, err) = self.cli(args);
        assert!(ok, "tendon {args:?} failed: {err}");
        json
    }

    /// The worked example's org, location, practitioner and IE type; returns the ingest key.
    fn acme(&self) -> String {
        let org = self.ok(&[
            "org",
            "create",
            "--id",
            "ACME01",
            "--name",
            "Acme PT",
            "--timezone",
            "America/Los_Angeles",
            "--ie-type",
            "Initial Eval",
        ]);
        self.ok(&[
            "location",
            "add",
            "--org",
            "ACME01",
            "--id",
            "12",
            "--name",
            "Salem Clinic",
        ]);
        self.ok(&[
            "practitioner",
            "add",
            "--org",
            "ACME01",
            "--id",
            "445566",
            "--first",
            "Chidi",
            "--last",
            "Okafor",
        ]);
        org["ingest_key"].as_str().unwrap().to_owned()
    }

    fn serve(&mut self) -> String {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tendon"))
            .arg("--db")
            .arg(&self.db)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.db.with_extension("log")).unwrap())
            .spawn()
            .expect("tendon serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_start_matches("http://")
            .to_owned();
        assert!(
            url.starts_with("127.0.0.1:"),
            "unexpected first line {line:?}"
        );
        self.server = Some((child, url.clone()));
        url
    }

    fn post(&self, key: Option<&str>, body: &[u8]) -> (u16, String) {
        let addr = &self.server.as_ref().expect("serve() first").1;
        let mut s = TcpStream::connect(addr).unwrap();
        let auth = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        write!(s, "POST /hl7 HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn messages(&self) -> Vec<Json> {
        self.ok(&["messages", "list", "--org", "ACME01"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until every stored message has left `accepted` (the workers are done).
    fn settled(&self) -> Vec<Json> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let msgs = self.messages();
            if msgs.iter().all(|m| m["status"] != "accepted") {
                return msgs;
            }
            assert!(
                Instant::now() < deadline,
                "messages still accepted after 30 s: {msgs:#?}"
            );
            std::thread::yield_now();
        }
    }
}

fn msa(ack: &str) -> (String, String) {
    let msa = ack
        .split('\r')
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or_else(|| panic!("no MSA in {ack:?}"));
    let mut parts = msa.split('|').skip(1);
    (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    )
}

#[test]
fn worked_example_end_to_end_and_duplicates_have_no_effect() {
    let mut env = Env::new("worked");
    let key = env.acme();
    env.serve();
    assert_eq!(env.post(Some(&key), WORKED.as_bytes()).0, 200);
    for _ in 0..2 {
        let (status, ack) = env.post(Some(&key), WORKED.as_bytes());
        assert_eq!((status, msa(&ack)), (200, ("AA".into(), "MSG00042".into())));
    }
    let msgs = env.settled();
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
    let mut env = Env::new("ingest");
    let key = env.acme();
    env.serve();
    assert_eq!(env.post(None, WORKED.as_bytes()).0, 401);
    assert_eq!(env.post(Some("tdn_wrong"), WORKED.as_bytes()).0, 401);
    assert_eq!(env.post(Some(&key), &vec![b'x'; (1 << 20) + 1]).0, 413);
    assert!(
        env.messages().is_empty(),
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

    let msgs = env.settled();
    let status_of = |cid: &str| {
        msgs.iter()
            .find(|m| m["control_id"] == cid)
            .map(|m| m["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status_of("MSG2").as_deref(), Some("failed"));
    assert_eq!(status_of("MSG3").as_deref(), Some("ignored"));
    assert_eq!(status_of("MSG9").as_deref(), Some("rejected"));
    assert_eq!(msgs.iter().filter(|m| m["status"] == "rejected").count(), 3);
}

#[test]
fn failures_are_recorded_and_replay_fixes_them() {
    let mut env = Env::new("replay");
    let key = env.acme();
    env.serve();
    let unknown = WORKED.replace("445566^Okafor", "424242^Okafor");
    assert_eq!(msa(&env.post(Some(&key), unknown.as_bytes()).1).0, "AA");
    let adt = "MSH|^~\\&|EMR|ACME01|||20261121||ADT^A08|ADT1|P|2.5.1\rPID|1||P777^^^^MR||Doe^Jo\r";
    env.post(Some(&key), adt.as_bytes());
    let msgs = env.settled();
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
    let msgs = env.settled();
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
    env.settled();
    assert_eq!(
        env.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]),
        p
    );
}

#[test]
fn operator_commands_validate_their_input() {
    let env = Env::new("cli");
    env.acme();
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
