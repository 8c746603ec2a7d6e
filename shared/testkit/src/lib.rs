//! What Tendon's tests share (a dev-only crate: take it as a dev-dependency).
//!
//! - `moto` (with the feature `moto`): the moto harness, one `moto_server`
//!   per test binary and AWS clients and stores on it;
//! - [`acme`]: the worked example's org ACME01 (location 12, practitioner
//!   445566, the IE type `Initial Eval`), its ingest key and the worked
//!   example itself;
//! - [`post`]: a message through the real ingest handler, as `POST /hl7`.
//!
//! The port contract suite is the `tendon-contract` crate.

pub mod acme;
#[cfg(feature = "moto")]
pub mod moto;

use tendon_core::intake::{DEFAULT_MAX_BODY, ingest};
use tendon_core::ports::{ConfigStore, Intake, SystemClock};

/// `POST /hl7` of `body` with the ingest key `key`, through the real handler
/// ([`ingest`]) on the system clock: the ACK's text. Panics unless the handler
/// answers, with status 200.
pub async fn post<C: ConfigStore, I: Intake>(cfg: &C, intake: &I, key: &str, body: &str) -> String {
    let auth = format!("Bearer {key}");
    let reply = ingest(
        cfg,
        intake,
        &SystemClock,
        Some(&auth),
        body.as_bytes(),
        DEFAULT_MAX_BODY,
    )
    .await
    .expect("ingest");
    assert_eq!(reply.status, 200, "POST /hl7 answers 200");
    String::from_utf8(reply.body).expect("ack text")
}
