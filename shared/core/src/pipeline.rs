//! The handlers: ingest (HTTP), the patient step and the episode step (queue
//! consumers). The Lambda functions and `tendon serve` call exactly these.
use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};
use tendon_hl7::{Header, Message};

use crate::inspect::{ack_bytes, inspect};
use crate::mapping::{MappedMessage, extract};
use crate::model::{MessageStatus, OrgConfig, PatientRecord, StoredMessage};
use crate::ports::{
    Clock, Commit, CommitOutcome, ConfigStore, MessageLog, PatientStore, QueueName, StoreError,
    StoreResult, WorkItem, WorkQueue,
};
use crate::rules::{self, Context, Decision};
use crate::validation::validate;
use crate::{ErrorCode, Issue};

/// The default limit on a posted message (CONTRACT §4).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

const PATIENT_STEP: &str = "patient";
const EPISODE_STEP: &str = "episode";
/// Optimistic-concurrency retries before the step is handed back to the queue.
const MAX_ATTEMPTS: usize = 8;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new ingest key: `tdn_` and 160 random bits. Only its hash is stored.
pub fn new_ingest_key() -> Result<String, String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a new key: {e}"))?;
    Ok(format!(
        "tdn_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

pub fn key_hash(key: &str) -> String {
    sha256_hex(key.trim().as_bytes())
}

/// An HTTP reply, independent of the server that sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl HttpReply {
    fn json(status: u16, error: &str, message: &str) -> HttpReply {
        HttpReply {
            status,
            content_type: "application/json",
            body: json!({ "error": error, "message": message })
                .to_string()
                .into_bytes(),
        }
    }

    fn hl7(body: Vec<u8>) -> HttpReply {
        HttpReply {
            status: 200,
            content_type: "application/hl7-v2",
            body,
        }
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

/// The dedupe identity of a message: (org, MSH-3, MSH-4, MSH-10), or the body
/// itself when there is no usable header.
fn message_id(org: &str, input: &[u8], body_hash: &str) -> String {
    let mut key = org.as_bytes().to_vec();
    match Header::sniff(input).filter(|h| !h.control_id.is_empty()) {
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

/// The stored status for a message with these ingest errors (CONTRACT §4).
fn status_for(errors: &[Issue]) -> MessageStatus {
    use tendon_hl7::AckCode;
    match crate::inspect::ack_code(errors) {
        AckCode::Reject => MessageStatus::Rejected,
        AckCode::Error => MessageStatus::Failed,
        AckCode::Accept
            if errors
                .iter()
                .any(|e| e.code == ErrorCode::UnsupportedMessageType) =>
        {
            MessageStatus::Ignored
        }
        AckCode::Accept => MessageStatus::Accepted,
    }
}

fn group(org: &str, patient: Option<&str>, message_id: &str) -> String {
    format!("{org}#{}", patient.unwrap_or(message_id))
}

/// `POST /hl7`: authenticate, store, validate and acknowledge one message.
/// The message is stored before the reply is built, and an accepted one is
/// queued (as a pointer) for the patient step.
pub async fn ingest<C, L, Q, K>(
    cfg: &C,
    log: &L,
    queue: &Q,
    clock: &K,
    authorization: Option<&str>,
    body: &[u8],
    max_body: usize,
) -> StoreResult<HttpReply>
where
    C: ConfigStore,
    L: MessageLog,
    Q: WorkQueue,
    K: Clock,
{
    let key = authorization
        .map(str::trim)
        .and_then(|h| {
            h.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| h[7..].trim())
        })
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return Ok(HttpReply::json(
            401,
            "missing_ingest_key",
            "send the org's ingest key as 'Authorization: Bearer <key>'",
        ));
    };
    let config = match cfg.org_for_key(&key_hash(key)).await? {
        Some(org) => cfg.org_config(&org).await?,
        None => None,
    };
    let Some(config) = config else {
        return Ok(HttpReply::json(
            401,
            "invalid_ingest_key",
            "the ingest key is not valid",
        ));
    };
    if body.len() > max_body {
        return Ok(HttpReply::json(
            413,
            "body_too_large",
            &format!(
                "the message is {} bytes; the limit is {max_body}",
                body.len()
            ),
        ));
    }
    let org = config.org.id.clone();
    let now = clock.now();
    let report = inspect(body, &config.map_context());
    let body_hash = sha256_hex(body);
    let mut message = StoredMessage {
        org: org.clone(),
        id: message_id(&org, body, &body_hash),
        control_id: report.control_id.clone(),
        message_type: report.message_type.clone(),
        status: status_for(&report.errors),
        errors: report.errors.clone(),
        received_at: rfc3339(now),
        body_hash,
        patient_id: report.fields.patient_id.clone(),
        steps_done: Vec::new(),
        replays: 0,
        raw: body.to_vec(),
    };
    match log.insert_message(&message).await? {
        crate::ports::Inserted::New => {}
        crate::ports::Inserted::Existing(prev) if prev.body_hash == message.body_hash => {
            // A retry of a message we have: same answer, no further effect. If the
            // first attempt died between storing and queueing, queue it now.
            message = prev;
        }
        crate::ports::Inserted::Existing(prev) => {
            message.errors = vec![Issue::new(
                ErrorCode::ControlIdReused,
                Some(crate::FieldName::ControlId),
                "this control ID (MSH-10) was already used by this sender for a different message"
                    .to_owned(),
            )];
            message.status = MessageStatus::Rejected;
            message.id = sha256_hex(format!("{}:{}", prev.id, message.body_hash).as_bytes());
            log.insert_message(&message).await?;
        }
    }
    if message.status == MessageStatus::Accepted {
        let item = WorkItem {
            org: org.clone(),
            message_id: message.id.clone(),
        };
        queue
            .send(
                QueueName::Patients,
                &group(&org, message.patient_id.as_deref(), &message.id),
                &message.id,
                &item,
            )
            .await?;
    }
    tracing::info!(org = %org, message_id = %message.id, status = message.status.as_str(), "hl7 message stored");
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

/// What a queue consumer should do with the record it was handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// Done (or nothing to do): delete the record from the queue.
    Done,
}

/// Loads a patient, following merge aliases.
async fn load_resolved<P: PatientStore>(
    store: &P,
    org: &str,
    id: &str,
) -> StoreResult<Option<PatientRecord>> {
    let mut rec = store.load_patient(org, id).await?;
    for _ in 0..4 {
        match rec.as_ref().and_then(|r| r.patient.merged_into.clone()) {
            Some(next) => rec = store.load_patient(org, &next).await?,
            None => break,
        }
    }
    Ok(rec)
}

struct Loaded {
    message: StoredMessage,
    config: OrgConfig,
    fields: MappedMessage,
}

/// Loads the stored message and re-reads it with the org's current configuration.
/// `None`: nothing to do (gone, already done, or not in an open state).
async fn load<C: ConfigStore, L: MessageLog>(
    cfg: &C,
    log: &L,
    item: &WorkItem,
    step: &str,
) -> StoreResult<Option<Loaded>> {
    let Some(message) = log.get_message(&item.org, &item.message_id).await? else {
        tracing::warn!(org = %item.org, message_id = %item.message_id, "queued message not found; dropped");
        return Ok(None);
    };
    if message.status != MessageStatus::Accepted || message.steps_done.iter().any(|s| s == step) {
        return Ok(None);
    }
    let Some(config) = cfg.org_config(&item.org).await? else {
        return Err(StoreError::NotFound(format!("org {}", item.org)));
    };
    let ctx = config.map_context();
    let fields = match Message::parse(&message.raw) {
        Ok(parsed) => extract(&parsed, &ctx),
        Err(_) => MappedMessage::default(),
    };
    Ok(Some(Loaded {
        message,
        config,
        fields,
    }))
}

fn commit_of(
    loaded: &Loaded,
    step: &str,
    decision: &Decision,
    patient_id: Option<String>,
) -> Commit {
    Commit {
        org: loaded.config.org.id.clone(),
        message_id: loaded.message.id.clone(),
        step: step.to_owned(),
        status: decision.status,
        errors: decision.errors.clone(),
        patient_id,
        records: decision.writes.clone(),
        events: decision.events.clone(),
    }
}

/// The patient function's handler for one queue record.
pub async fn patient_step<C, L, P, Q, K>(
    cfg: &C,
    log: &L,
    store: &P,
    queue: &Q,
    clock: &K,
    item: &WorkItem,
) -> StoreResult<StepOutcome>
where
    C: ConfigStore,
    L: MessageLog,
    P: PatientStore,
    Q: WorkQueue,
    K: Clock,
{
    for _ in 0..MAX_ATTEMPTS {
        let Some(loaded) = load(cfg, log, item, PATIENT_STEP).await? else {
            return resume_after_patient_step(log, queue, item).await;
        };
        let m = &loaded.fields;
        // Replay re-reads the message with the current configuration, so the
        // required-data checks run again too.
        let recheck = validate(m, &loaded.config.org.field_map, Some(&loaded.config.org.id));
        let ctx = Context {
            config: &loaded.config,
            message_id: &loaded.message.id,
            now: rfc3339(clock.now()),
        };
        let decision = if recheck
            .iter()
            .any(|e| e.code.ack_code() != tendon_hl7::AckCode::Accept)
        {
            Decision {
                status: status_for(&recheck),
                errors: recheck,
                writes: Vec::new(),
                events: Vec::new(),
                then_episode_step: false,
            }
        } else {
            let pid = m.patient_id.as_deref().unwrap_or_default();
            let current = load_resolved(store, &item.org, pid).await?;
            let prior = match m.prior_patient_id.as_deref() {
                Some(prior) => store.load_patient(&item.org, prior).await?,
                None => None,
            };
            rules::patient_step(&ctx, m, current.as_ref(), prior.as_ref())
        };
        let resolved_id = decision
            .writes
            .first()
            .map(|w| w.record.patient.id.clone())
            .or_else(|| m.patient_id.clone());
        match store
            .commit(&commit_of(&loaded, PATIENT_STEP, &decision, resolved_id))
            .await?
        {
            CommitOutcome::Conflict => continue,
            CommitOutcome::Applied | CommitOutcome::AlreadyApplied => {
                tracing::info!(org = %item.org, message_id = %item.message_id, status = decision.status.as_str(), "patient step");
                if decision.then_episode_step {
                    send_to_episodes(queue, &loaded.message, item).await?;
                }
                return Ok(StepOutcome::Done);
            }
        }
    }
    Err(StoreError::Backend(format!(
        "patient step for message {} kept conflicting",
        item.message_id
    )))
}

async fn send_to_episodes<Q: WorkQueue>(
    queue: &Q,
    message: &StoredMessage,
    item: &WorkItem,
) -> StoreResult<()> {
    let group = group(&item.org, message.patient_id.as_deref(), &message.id);
    // Per replay, so a replayed message's episode step is not taken for a duplicate.
    let dedupe = format!("{}:episode:{}", message.id, message.replays);
    queue.send(QueueName::Episodes, &group, &dedupe, item).await
}

/// A redelivered record whose patient step is already committed: make sure the
/// episode step was queued (the first delivery may have died before queueing it).
async fn resume_after_patient_step<L: MessageLog, Q: WorkQueue>(
    log: &L,
    queue: &Q,
    item: &WorkItem,
) -> StoreResult<StepOutcome> {
    if let Some(m) = log.get_message(&item.org, &item.message_id).await?
        && m.status == MessageStatus::Accepted
        && m.steps_done.iter().any(|s| s == PATIENT_STEP)
        && !m.steps_done.iter().any(|s| s == EPISODE_STEP)
    {
        send_to_episodes(queue, &m, item).await?;
    }
    Ok(StepOutcome::Done)
}

/// The episode function's handler for one queue record.
pub async fn episode_step<C, L, P, K>(
    cfg: &C,
    log: &L,
    store: &P,
    clock: &K,
    item: &WorkItem,
) -> StoreResult<StepOutcome>
where
    C: ConfigStore,
    L: MessageLog,
    P: PatientStore,
    K: Clock,
{
    for _ in 0..MAX_ATTEMPTS {
        let Some(loaded) = load(cfg, log, item, EPISODE_STEP).await? else {
            return Ok(StepOutcome::Done);
        };
        let pid = loaded.message.patient_id.clone().unwrap_or_default();
        let current = load_resolved(store, &item.org, &pid).await?;
        let ctx = Context {
            config: &loaded.config,
            message_id: &loaded.message.id,
            now: rfc3339(clock.now()),
        };
        let decision = rules::episode_step(&ctx, &loaded.fields, current.as_ref());
        let resolved_id = current.map(|r| r.patient.id);
        match store
            .commit(&commit_of(&loaded, EPISODE_STEP, &decision, resolved_id))
            .await?
        {
            CommitOutcome::Conflict => continue,
            CommitOutcome::Applied | CommitOutcome::AlreadyApplied => {
                tracing::info!(org = %item.org, message_id = %item.message_id, status = decision.status.as_str(), "episode step");
                return Ok(StepOutcome::Done);
            }
        }
    }
    Err(StoreError::Backend(format!(
        "episode step for message {} kept conflicting",
        item.message_id
    )))
}

/// `messages replay`: puts stored messages back through the same steps with the
/// org's current configuration. Replaying a processed message changes nothing
/// (every step is idempotent); a failed one is decided again.
pub async fn replay<L, Q>(log: &L, queue: &Q, messages: &[StoredMessage]) -> StoreResult<usize>
where
    L: MessageLog,
    Q: WorkQueue,
{
    for m in messages {
        log.reset_message(&m.org, &m.id).await?;
        let item = WorkItem {
            org: m.org.clone(),
            message_id: m.id.clone(),
        };
        // Per replay, so the queue does not swallow it as a duplicate delivery.
        let dedupe = format!("{}:replay:{}", m.id, m.replays + 1);
        let group = group(&m.org, m.patient_id.as_deref(), &m.id);
        queue
            .send(QueueName::Patients, &group, &dedupe, &item)
            .await?;
    }
    Ok(messages.len())
}

/// The handler of a queue: the patient step for `patients`, the episode step
/// for `episodes`. Every consumer (Lambda, local worker, AWS poller) calls this.
pub async fn run_step<S, Q, K>(
    store: &S,
    queue: &Q,
    clock: &K,
    name: QueueName,
    item: &WorkItem,
) -> StoreResult<StepOutcome>
where
    S: ConfigStore + MessageLog + PatientStore,
    Q: WorkQueue,
    K: Clock,
{
    match name {
        QueueName::Patients => patient_step(store, store, store, queue, clock, item).await,
        QueueName::Episodes => episode_step(store, store, store, clock, item).await,
    }
}

/// One record of a queue batch: its ID (SQS message ID or local receipt), its
/// message group, and the pointer it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    pub id: String,
    pub group: String,
    pub item: WorkItem,
}

/// Runs a FIFO batch through `handle` in order and returns the IDs of the records
/// that must be retried: each record whose handling failed, and every later record
/// of the same message group, so a group never runs out of order. Business
/// failures are not errors (they are recorded outcomes), so only infrastructure
/// errors land here. Both the Lambda consumers (`ReportBatchItemFailures`) and the
/// local workers use this.
pub async fn run_batch<F, Fut>(records: &[BatchRecord], mut handle: F) -> Vec<String>
where
    F: FnMut(WorkItem) -> Fut,
    Fut: std::future::Future<Output = StoreResult<StepOutcome>>,
{
    let mut failed_groups = std::collections::HashSet::new();
    let mut retry = Vec::new();
    for record in records {
        if failed_groups.contains(&record.group) {
            retry.push(record.id.clone());
            continue;
        }
        if let Err(e) = handle(record.item.clone()).await {
            tracing::warn!(message_id = %record.item.message_id, error = %e, "step failed; the record will be retried");
            failed_groups.insert(record.group.clone());
            retry.push(record.id.clone());
        }
    }
    retry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, group: &str) -> BatchRecord {
        BatchRecord {
            id: id.into(),
            group: group.into(),
            item: WorkItem {
                org: "O".into(),
                message_id: id.into(),
            },
        }
    }

    #[test]
    fn a_failure_holds_back_the_rest_of_its_group_only() {
        let records = [
            rec("a1", "A"),
            rec("b1", "B"),
            rec("a2", "A"),
            rec("b2", "B"),
            rec("a3", "A"),
        ];
        let mut seen = Vec::new();
        let retry = block_on(run_batch(&records, |item| {
            seen.push(item.message_id.clone());
            let fail = item.message_id == "a2";
            async move {
                if fail {
                    Err(StoreError::Backend("down".into()))
                } else {
                    Ok(StepOutcome::Done)
                }
            }
        }));
        assert_eq!(
            seen,
            ["a1", "b1", "a2", "b2"],
            "a3 is not run after a2 failed"
        );
        assert_eq!(retry, ["a2", "a3"]);
    }

    /// A minimal executor for a future that never waits.
    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
