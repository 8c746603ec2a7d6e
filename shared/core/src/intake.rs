//! Intake: what happens to a message between the HTTP request and the
//! patients queue. `POST /hl7` ([`ingest`], with [`ingest_too_large`] for a
//! body refused unread, and [`unanswered`] for a request that got no reply)
//! authenticates the key, stores, checks and acknowledges the message, and
//! hands an accepted one to the queue; [`replay`] hands stored messages over
//! again, and the sweeper ([`sweep_unqueued`]) finishes a hand-off that did
//! not reach the queue. Each answers an [`HttpReply`] (`reply.rs`).
use jiff::Timestamp;
use tendon_hl7::Header;

use crate::hash::sha256_hex;
use crate::keys::key_hash;
use crate::model::{MessageFacts, MessageStatus, StoredMessage};
use crate::org::OrgConfig;
use crate::ports::{
    Clock, ConfigStore, HandOff, Inserted, Intake, MessageLog, QueueName, StoreResult, WorkItem,
};
pub use crate::reply::HttpReply;
use crate::report::{ack_bytes, ack_code, inspect, several_messages};
use crate::{ErrorCode, FieldName, Issue};

/// The default limit on a posted message (docs/interface.md §4).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The dedupe identity of a message: (org, MSH-3, MSH-4, MSH-10), or the body
/// itself when there is no usable header. A body of several messages
/// (`multiple_messages`) is identified by its bytes too, so that its first
/// message, resent alone, is a new message and not a reused control ID.
fn message_id(org: &str, input: &[u8], body_hash: &str, several: bool) -> String {
    let mut key = org.as_bytes().to_vec();
    let header = Header::sniff(input)
        .filter(|h| !h.control_id.is_empty())
        .filter(|_| !several);
    match header {
        Some(h) => {
            for part in [h.sending_application, h.sending_facility, h.control_id] {
                key.push(0);
                key.extend_from_slice(part);
            }
        }
        None => {
            key.extend_from_slice(b"\0body\0");
            key.extend_from_slice(body_hash.as_bytes());
        }
    }
    sha256_hex(&key)
}

/// The stored status for a message with these ingest errors (docs/interface.md §4).
pub(crate) fn status_for(errors: &[Issue]) -> MessageStatus {
    use tendon_hl7::AckCode;
    match ack_code(errors) {
        AckCode::Reject => MessageStatus::Rejected,
        AckCode::Error => MessageStatus::Failed,
        AckCode::Accept if errors.iter().any(|e| e.code.ignores_message()) => {
            MessageStatus::Ignored
        }
        AckCode::Accept => MessageStatus::Accepted,
    }
}

pub(crate) fn group(org: &str, patient: Option<&str>, message_id: &str) -> String {
    format!("{org}#{}", patient.unwrap_or(message_id))
}

/// The key of an `Authorization: Bearer <key>` header, if there is one.
fn bearer_key(authorization: Option<&str>) -> Option<&str> {
    authorization
        .map(str::trim)
        .and_then(|h| {
            h.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| h[7..].trim())
        })
        .filter(|k| !k.is_empty())
}

/// The patients-queue pointer of a stored message. Ingest and every replay
/// have their own dedupe ID, so the queue never takes a replay for a
/// duplicate delivery, while a resent pointer of the same one is dropped.
fn hand_off(org: &str, id: &str, patient_id: Option<&str>, replays: u32) -> HandOff {
    let dedupe_id = match replays {
        0 => id.to_owned(),
        n => format!("{id}:replay:{n}"),
    };
    HandOff {
        queue: QueueName::Patients,
        group: group(org, patient_id, id),
        dedupe_id,
        item: WorkItem {
            org: org.to_owned(),
            message_id: id.to_owned(),
            patient_id: patient_id.map(str::to_owned),
        },
    }
}

fn hand_off_of(message: &StoredMessage) -> HandOff {
    hand_off(
        &message.org,
        &message.id,
        message.patient_id.as_deref(),
        message.replays,
    )
}

/// The org configuration of the request's ingest key, or the `401` that
/// refuses the request.
async fn authenticate<C: ConfigStore>(
    cfg: &C,
    authorization: Option<&str>,
) -> StoreResult<Result<OrgConfig, HttpReply>> {
    let Some(key) = bearer_key(authorization) else {
        return Ok(Err(HttpReply::json_error(
            401,
            "missing_ingest_key",
            "send the org's ingest key as 'Authorization: Bearer <key>'",
        )));
    };
    let config = match cfg.org_for_key(&key_hash(key)).await? {
        Some(org) => cfg.org_config(&org).await?,
        None => None,
    };
    Ok(config.ok_or_else(|| {
        HttpReply::json_error(401, "invalid_ingest_key", "the ingest key is not valid")
    }))
}

/// The `413` for a body over `max_body`: `size` bytes, when known.
fn too_large(size: Option<u64>, max_body: usize) -> HttpReply {
    let message = match size {
        Some(size) => format!("the message is {size} bytes; the limit is {max_body}"),
        None => format!("the message is over the limit of {max_body} bytes"),
    };
    HttpReply::json_error(413, "body_too_large", &message)
}

/// `POST /hl7` with a body the HTTP server knows is over `max_body` without
/// having read it all (it stops reading there): the answer [`ingest`] gives
/// such a body, in the same order (`401` for a missing or wrong key, then
/// `413`), and nothing is stored. `size` is the body's length when known
/// (`Content-Length`).
pub async fn ingest_too_large<C: ConfigStore>(
    cfg: &C,
    authorization: Option<&str>,
    size: Option<u64>,
    max_body: usize,
) -> StoreResult<HttpReply> {
    Ok(match authenticate(cfg, authorization).await? {
        Ok(_) => too_large(size, max_body),
        Err(refused) => refused,
    })
}

/// `POST /hl7`: authenticate, store, validate and acknowledge one message.
/// The message is stored before the reply is built, and an accepted one is
/// queued (as a pointer) for the patient step.
pub async fn ingest<C, I, K>(
    cfg: &C,
    intake: &I,
    clock: &K,
    authorization: Option<&str>,
    body: &[u8],
    max_body: usize,
) -> StoreResult<HttpReply>
where
    C: ConfigStore,
    I: Intake,
    K: Clock,
{
    let config = match authenticate(cfg, authorization).await? {
        Ok(config) => config,
        Err(refused) => return Ok(refused),
    };
    if body.len() > max_body {
        return Ok(too_large(Some(body.len() as u64), max_body));
    }
    let org = config.org.id.clone();
    let now = clock.now();
    let report = inspect(body, &config.map_context());
    let body_hash = sha256_hex(body);
    let mut message = StoredMessage {
        org: org.clone(),
        id: message_id(&org, body, &body_hash, report.holds_several_messages()),
        control_id: report.control_id.clone(),
        message_type: report.message_type.clone(),
        status: status_for(&report.errors),
        errors: report.errors.clone(),
        received_at: now,
        body_hash,
        patient_id: report.fields.patient_id.clone(),
        steps_done: Vec::new(),
        replays: 0,
        queued: true,
        acknowledged: true,
        facts: report
            .message_type
            .is_some()
            .then(|| MessageFacts::of(&report.fields)),
        raw: body.to_vec(),
    };
    let hand_off = (message.status == MessageStatus::Accepted).then(|| hand_off_of(&message));
    match intake.store_and_queue(&message, hand_off.as_ref()).await? {
        Inserted::New => {}
        Inserted::Existing(prev) if prev.body_hash == message.body_hash => {
            // A retry of a message we have: same answer, no further effect. If
            // the first attempt failed before the message was queued or
            // answered, finish that now.
            message = prev;
            if message.status == MessageStatus::Accepted && !message.queued {
                intake
                    .queue_stored(&org, &message.id, &hand_off_of(&message), true)
                    .await?;
            } else if !message.acknowledged {
                intake.set_acknowledged(&org, &message.id, true).await?;
            }
        }
        Inserted::Existing(prev) => {
            message.errors = vec![Issue::new(
                ErrorCode::ControlIdReused,
                Some(FieldName::ControlId),
                "this control ID (MSH-10) was already used by this sender for a different message"
                    .to_owned(),
            )];
            message.status = MessageStatus::Rejected;
            message.id = sha256_hex(format!("{}:{}", prev.id, message.body_hash).as_bytes());
            intake.store_and_queue(&message, None).await?;
        }
    }
    tracing::info!(org = %org, message_id = %message.id, status = message.status.as_str(), "hl7 message stored");
    if matches!(
        message.status,
        MessageStatus::Failed | MessageStatus::Rejected
    ) {
        log_failures(&org, &message.id, &message.errors);
    }
    let stamp = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y%m%d%H%M%S+0000")
        .to_string();
    Ok(HttpReply::hl7(ack_bytes(
        body,
        &message.errors,
        &stamp,
        &message.id[..20],
    )))
}

/// One log line per error code a message failed with (the dashboard's
/// failures by code).
pub(crate) fn log_failures(org: &str, message_id: &str, errors: &[Issue]) {
    for issue in errors {
        tracing::info!(org = %org, message_id = %message_id, code = issue.code.as_str(), "message failed");
    }
}

/// `messages replay`: puts stored messages back through the same steps with the
/// org's current configuration. Replaying a processed message changes nothing
/// (every step is idempotent); a failed one is decided again. The reset leaves
/// the message `queued: false` until its pointer is sent, so a crash between
/// the two leaves it to the sweeper, not stuck.
pub async fn replay<L, I>(log: &L, intake: &I, messages: &[StoredMessage]) -> StoreResult<usize>
where
    L: MessageLog,
    I: Intake,
{
    for m in messages {
        log.reset_message(&m.org, &m.id).await?;
        let hand_off = hand_off(&m.org, &m.id, m.patient_id.as_deref(), m.replays + 1);
        intake.queue_stored(&m.org, &m.id, &hand_off, false).await?;
    }
    Ok(messages.len())
}

/// How long a message may stay stored but unqueued before the sweeper queues
/// it: far longer than an ingest takes (the ingest function times out after
/// 10 s), so the sweeper never races a hand-off still under way.
pub const SWEEP_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);
/// How long a sweeper's claim on a message keeps other sweepers off it.
pub const SWEEP_CLAIM: jiff::SignedDuration = jiff::SignedDuration::from_secs(5 * 60);
const SWEEP_BATCH: usize = 100;

/// The sweeper: queues every message stored more than [`SWEEP_AFTER`] ago
/// whose pointer never reached the queue (the store succeeded, then the queue
/// failed or the process died). Safe to run concurrently: each message is
/// claimed by one sweeper. Returns how many it queued.
pub async fn sweep_unqueued<I: Intake>(intake: &I, now: Timestamp) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let claimed = intake
            .claim_unqueued(now - SWEEP_AFTER, now, now + SWEEP_CLAIM, SWEEP_BATCH)
            .await?;
        for u in &claimed {
            let hand_off = hand_off(&u.org, &u.id, u.patient_id.as_deref(), u.replays);
            intake.queue_stored(&u.org, &u.id, &hand_off, false).await?;
            tracing::warn!(org = %u.org, message_id = %u.id, "a stored message was never queued; the sweeper queued it");
        }
        total += claimed.len();
        if claimed.len() < SWEEP_BATCH {
            return Ok(total);
        }
    }
}

/// After `POST /hl7` failed or timed out without an answer: marks the message
/// of this request, if it was stored (or its store is still under way: a
/// backend applies writes in order), as never acknowledged. Best effort; the
/// reply is a 503 whatever this returns.
pub async fn unanswered<C, I>(
    cfg: &C,
    intake: &I,
    authorization: Option<&str>,
    body: &[u8],
) -> StoreResult<()>
where
    C: ConfigStore,
    I: Intake,
{
    let Some(key) = bearer_key(authorization) else {
        return Ok(());
    };
    let Some(org) = cfg.org_for_key(&key_hash(key)).await? else {
        return Ok(());
    };
    let several = several_messages(body).is_some();
    let id = message_id(&org, body, &sha256_hex(body), several);
    intake.set_acknowledged(&org, &id, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of two messages is identified by its bytes: its first message
    /// resent alone is a new message, not a reused control ID.
    #[test]
    fn two_messages_in_one_body_do_not_take_the_first_ones_identity() {
        let first = "MSH|^~\\&|EMR|ACME01|||20261120||ADT^A08|M1|P|2.5.1\rPID|1||P1\r";
        let second = first.replace("|M1|", "|M2|");
        let both = format!("{first}{second}");
        let id = |body: &str| {
            let several = several_messages(body.as_bytes()).is_some();
            message_id(
                "ACME01",
                body.as_bytes(),
                &sha256_hex(body.as_bytes()),
                several,
            )
        };
        assert_ne!(id(&both), id(first));
        assert_eq!(
            id(first),
            id(&first.replace("P1", "P2")),
            "keyed on MSH-3, 4, 10"
        );
        assert_ne!(
            id(&both),
            id(&format!("{first}{}", second.replace("P1", "P2")))
        );
    }
}
