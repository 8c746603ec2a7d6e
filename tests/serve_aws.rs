//! End to end on the AWS backend against moto: `tendon aws bootstrap`, the
//! operator commands with `--backend aws`, and `tendon serve --backend aws`
//! polling the real (moto) SQS queues and writing DynamoDB.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

#[path = "../shared/aws/tests/common/mod.rs"]
mod moto;

const WORKED: &str = include_str!("../examples/worked-example.hl7");

struct Aws {
    env: Vec<(String, String)>,
    server: Option<Child>,
}

impl Drop for Aws {
    fn drop(&mut self) {
        if let Some(child) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Aws {
    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tendon"));
        c.env_remove("TENDON_DB")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    fn ok(&self, args: &[&str]) -> Json {
        let out = self.command().args(args).arg("--json").output().unwrap();
        assert!(
            out.status.success(),
            "tendon {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn bootstrap() -> Aws {
    let endpoint = moto::moto().endpoint.clone();
    let base = vec![
        ("AWS_ENDPOINT_URL".to_owned(), endpoint),
        ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("TENDON_BACKEND".to_owned(), "aws".to_owned()),
    ];
    let aws = Aws {
        env: base,
        server: None,
    };
    let prefix = moto::unique_prefix("cli");
    let out = aws.ok(&["aws", "bootstrap", "--prefix", &prefix]);
    let mut env = aws.env.clone();
    for (k, v) in out["env"].as_object().unwrap() {
        env.push((k.clone(), v.as_str().unwrap().to_owned()));
    }
    Aws { env, server: None }
}

#[test]
fn bootstrap_refuses_a_real_account_without_yes() {
    let out = Command::new(env!("CARGO_BIN_EXE_tendon"))
        .env_remove("AWS_ENDPOINT_URL")
        .args(["aws", "bootstrap", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
}

#[test]
fn worked_example_through_serve_on_the_aws_backend() {
    let mut aws = bootstrap();
    let org = aws.ok(&[
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
    let key = org["ingest_key"].as_str().unwrap().to_owned();
    aws.ok(&[
        "location",
        "add",
        "--org",
        "ACME01",
        "--id",
        "12",
        "--name",
        "Salem Clinic",
    ]);
    aws.ok(&[
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

    let mut child = aws
        .command()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    aws.server = Some(child);
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();

    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "POST /hl7 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{WORKED}", WORKED.len()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.contains("MSA|AA|MSG00042"), "{resp:?}");

    // serve's pollers process the queues; wait for the outcome, not for time.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let msgs = aws.ok(&["messages", "list", "--org", "ACME01"]);
        if msgs[0]["status"] == "processed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not processed within 60 s: {msgs:#}"
        );
        std::thread::yield_now();
    }
    let p = aws.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]);
    assert_eq!(p["episodes"].as_array().unwrap().len(), 2);
    assert_eq!(p["appointments"][0]["start"], "2026-12-01T10:00:00-08:00");
    assert_eq!(
        aws.ok(&[
            "messages",
            "replay",
            "--org",
            "ACME01",
            "--control-id",
            "MSG00042"
        ])["replayed"],
        1
    );
    assert_eq!(
        aws.ok(&["patient", "show", "--org", "ACME01", "--id", "P555"]),
        p,
        "replay is idempotent"
    );
}
