//! End to end on the AWS backend against moto: `tendon aws bootstrap`, the
//! operator commands with `--backend aws`, and `tendon serve --backend aws`
//! polling the real (moto) SQS queues and writing DynamoDB.
mod common;

use std::process::Command;

use common::{Tendon, WORKED, msa};

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
    // bootstrap, then org create, location add and practitioner add with --backend aws.
    let mut aws = Tendon::aws("cli");
    let key = aws.clinic("ACME01").key;
    aws.serve();

    let (status, ack) = aws.post(Some(&key), WORKED.as_bytes());
    assert_eq!(status, 200);
    assert_eq!(msa(&ack), ("AA".into(), "MSG00042".into()), "{ack:?}");

    // serve's pollers process the queues; wait for the outcome, not for time.
    aws.wait_until("ACME01", "MSG00042 processed", |msgs| {
        msgs.first().is_some_and(|m| m["status"] == "processed")
    });
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

/// `GET /health` under `tendon serve --backend aws`: `200` on the bootstrapped
/// table and queues; `503` naming DynamoDB (`store`) or SQS (`queue`) when
/// the server is pointed at one that does not exist.
#[test]
fn health_on_the_aws_backend_names_the_failing_part() {
    let mut aws = Tendon::aws("health");
    let health = |t: &Tendon| {
        let (status, body) = t.request("GET", "/health", "", b"");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body:?}"));
        (status, json)
    };
    aws.serve();
    assert_eq!(health(&aws), (200, serde_json::json!({"status": "ok"})));
    aws.stop_server();

    aws.serve_with(&[("TENDON_TABLE", "no-such-table")]);
    let (status, json) = health(&aws);
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["status"], "unavailable");
    assert_eq!(json["failing"], serde_json::json!(["store"]));
    aws.stop_server();

    let queue = format!("{}/no-such-queue.fifo", moto_endpoint());
    aws.serve_with(&[("TENDON_PATIENTS_QUEUE_URL", &queue)]);
    let (status, json) = health(&aws);
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["failing"], serde_json::json!(["queue"]));
}

/// moto's endpoint (`http://127.0.0.1:PORT`).
fn moto_endpoint() -> String {
    common::moto::moto().endpoint.clone()
}

/// With `--backend aws`, a command whose stdout nobody reads any more
/// (`tendon messages list | head -3`) ends quietly: exit 0, nothing on
/// stderr, never a panic.
#[test]
fn a_closed_stdout_ends_a_command_quietly_on_the_aws_backend() {
    let aws = Tendon::aws("closed");
    aws.clinic("ACME01");
    let commands: &[&[&str]] = &[
        &["messages", "list", "--org", "ACME01"],
        &["messages", "list", "--org", "ACME01", "--json"],
        &["org", "keys", "--org", "ACME01"],
        &["patient", "list", "--org", "ACME01", "--json"],
    ];
    for args in commands {
        let mut command = aws.command();
        command.args(*args);
        let (status, stderr) = common::with_closed_stdout(command);
        assert!(
            status.success() && stderr.is_empty(),
            "tendon {args:?} with a closed stdout: {status}, stderr {stderr:?}"
        );
    }
}
