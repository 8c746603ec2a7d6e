//! What Tendon's tests share (a dev-only crate: take it as a dev-dependency).
//!
//! - `moto` (with the feature `moto`): the moto harness, one `moto_server`
//!   per test binary and AWS clients and stores on it;
//! - [`acme`]: the worked example's org ACME01 (location 12, practitioner
//!   445566, the IE type `Initial Eval`), its ingest key and the worked
//!   example itself;
//! - [`post`] and [`try_post`]: a message through the real ingest handler, as
//!   `POST /hl7`;
//! - [`poison_message`]: a stored message that can never be processed.
//!
//! The port contract suite is the `tendon-contract` crate.

pub mod acme;
#[cfg(feature = "moto")]
pub mod moto;

use tendon_core::intake::{DEFAULT_MAX_BODY, ingest};
use tendon_core::model::{MessageStatus, StoredMessage};
use tendon_core::ports::{ConfigStore, Intake, StoreResult, SystemClock};
use tendon_core::reply::HttpReply;

/// `POST /hl7` of `body` with the ingest key `key`, through the real handler
/// ([`ingest`]) on the system clock: the ACK's text. Panics unless the handler
/// answers, with status 200.
pub async fn post<C: ConfigStore, I: Intake>(cfg: &C, intake: &I, key: &str, body: &str) -> String {
    let reply = try_post(cfg, intake, key, body).await.expect("ingest");
    assert_eq!(reply.status, 200, "POST /hl7 answers 200");
    String::from_utf8(reply.body).expect("ack text")
}

/// [`post`] as the handler returns it: an `Err` is a request that gets no
/// answer at all (the store or the queue failed).
pub async fn try_post<C: ConfigStore, I: Intake>(
    cfg: &C,
    intake: &I,
    key: &str,
    body: &str,
) -> StoreResult<HttpReply> {
    let auth = format!("Bearer {key}");
    ingest(
        cfg,
        intake,
        &SystemClock,
        Some(&auth),
        body.as_bytes(),
        DEFAULT_MAX_BODY,
    )
    .await
}

/// The worked example stored, accepted and queued, as message `poison-1` of
/// GHOST1, an org no store configures: every attempt to process it fails with
/// an infrastructure error, never with a recorded outcome.
pub fn poison_message() -> StoredMessage {
    StoredMessage {
        org: "GHOST1".into(),
        id: "poison-1".into(),
        control_id: Some("MSG00042".into()),
        message_type: Some("SIU^S12".into()),
        status: MessageStatus::Accepted,
        errors: Vec::new(),
        received_at: "2026-11-20T17:30:00Z".parse().unwrap(),
        body_hash: "x".into(),
        patient_id: Some("P555".into()),
        steps_done: Vec::new(),
        replays: 0,
        queued: true,
        acknowledged: true,
        facts: None,
        raw: acme::WORKED.replace("|ACME01|", "|GHOST1|").into_bytes(),
    }
}
