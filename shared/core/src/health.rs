//! `GET /health` (docs/interface.md §4): whether the parts a deployment needs
//! answer. Each backend checks its own parts ([`HealthCheck`]); `tendon
//! serve` and the ingest function answer with [`check`], so both say the
//! same.
use std::future::Future;

use serde_json::json;

use crate::reply::HttpReply;

/// A part of a deployment that `/health` checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Where messages are stored: the SQLite file (its writer), or DynamoDB.
    Store,
    /// Where accepted messages are queued: SQS (locally the queues are
    /// tables of the store, so a failing store is a failing queue).
    Queue,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Store => "store",
            Part::Queue => "queue",
        }
    }
}

/// A part that did not answer, and why (for the log: the reply names the
/// part only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    pub part: Part,
    pub reason: String,
}

/// A backend's health probe.
pub trait HealthCheck: Send + Sync {
    /// The parts that do not answer now, none when all do. An implementation
    /// bounds its own wait: a part that does not answer in a few seconds is
    /// failing.
    fn failing(&self) -> impl Future<Output = Vec<Failing>> + Send;
}

/// `GET /health`: `200 {"status":"ok"}`, or `503
/// {"status":"unavailable","failing":["store",..],"message":..}` naming the
/// parts that do not answer (why is logged, not sent: the route is public).
pub async fn check<H: HealthCheck>(backend: &H) -> HttpReply {
    let failing = backend.failing().await;
    for f in &failing {
        tracing::error!(part = f.part.as_str(), reason = %f.reason, "health check failed");
    }
    reply(&failing)
}

/// The `/health` answer for these failing parts.
pub fn reply(failing: &[Failing]) -> HttpReply {
    let body = if failing.is_empty() {
        json!({ "status": "ok" })
    } else {
        let mut parts: Vec<&str> = failing.iter().map(|f| f.part.as_str()).collect();
        parts.sort_unstable();
        parts.dedup();
        json!({
            "status": "unavailable",
            "failing": parts,
            "message": "a part Tendon needs does not answer; see the server's log",
        })
    };
    HttpReply::json(
        if failing.is_empty() { 200 } else { 503 },
        &body.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(reply: &HttpReply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).expect("JSON")
    }

    #[test]
    fn ok_when_nothing_fails_else_503_naming_the_parts() {
        let ok = reply(&[]);
        assert_eq!((ok.status, json_of(&ok)), (200, json!({"status": "ok"})));
        let failing = |part| Failing {
            part,
            reason: "sqlite: database is locked".to_owned(),
        };
        let down = reply(&[
            failing(Part::Queue),
            failing(Part::Store),
            failing(Part::Queue),
        ]);
        let body = json_of(&down);
        assert_eq!(down.status, 503);
        assert_eq!(down.content_type, "application/json");
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["failing"], json!(["queue", "store"]));
        assert!(
            !down.body.windows(6).any(|w| w == b"sqlite"),
            "reasons are logged, not sent"
        );
    }
}
