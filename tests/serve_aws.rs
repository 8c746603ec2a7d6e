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
