//! The handlers: ingest (HTTP), the patient step and the episode step (queue
//! consumers). The Lambda functions and `tendon serve` call exactly these.
use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};
use tendon_hl7::{Header, Message};

use crate::inspect::{ack_bytes, inspect};
use crate::mapping::{MappedMessage, extract};
use crate::model::{DomainEvent, MessageStatus, OrgConfig, PatientRecord, StoredMessage};
use crate::ports::{
    Clock, Commit, CommitOutcome, ConfigStore, HandOff, Intake, MessageLog, PatientStore,
    QueueName, RecordWrite, StepStore, StoreError, StoreResult, WorkItem, WorkQueue, WorkflowStore,
};
use crate::rules::{self, Context, Decision};
use crate::validation::{invalid_value_warnings, validate};
use crate::workflow::dispatch::appointment_updates;
use crate::workflow::enrol::enrol;
use crate::workflow::steps::{ScheduledStep, StepStatus, StepUpdate};
use crate::{ErrorCode, Issue};

/// The default limit on a posted message (docs/interface.md §4).
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
/// itself when there is no usable header. A body of several messages
/// (`multiple_messages`) is identified by its bytes too, so that its first
/// message, resent alone, is a new message and not a reused control ID.
fn message_id(org: &str, input: &[u8], body_hash: &str) -> String {
    let mut key = org.as_bytes().to_vec();
    let header = Header::sniff(input)
        .filter(|h| !h.control_id.is_empty())
        .filter(|_| crate::inspect::several_messages(input).is_none());
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
fn status_for(errors: &[Issue]) -> MessageStatus {
    use tendon_hl7::AckCode;
    match crate::inspect::ack_code(errors) {
        AckCode::Reject => MessageStatus::Rejected,
        AckCode::Error => MessageStatus::Failed,
        AckCode::Accept if errors.iter().any(|e| e.code.ignores_message()) => {
            MessageStatus::Ignored
        }
        AckCode::Accept => MessageStatus::Accepted,
    }
}

fn group(org: &str, patient: Option<&str>, message_id: &str) -> String {
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
        return Ok(Err(HttpReply::json(
            401,
            "missing_ingest_key",
            "send the org's ingest key as 'Authorization: Bearer <key>'",
        )));
    };
    let config = match cfg.org_for_key(&key_hash(key)).await? {
        Some(org) => cfg.org_config(&org).await?,
        None => None,
    };
    Ok(config
        .ok_or_else(|| HttpReply::json(401, "invalid_ingest_key", "the ingest key is not valid")))
}

/// The `413` for a body over `max_body`: `size` bytes, when known.
fn too_large(size: Option<u64>, max_body: usize) -> HttpReply {
    let message = match size {
        Some(size) => format!("the message is {size} bytes; the limit is {max_body}"),
        None => format!("the message is over the limit of {max_body} bytes"),
    };
    HttpReply::json(413, "body_too_large", &message)
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
        queued: true,
        acknowledged: true,
        raw: body.to_vec(),
    };
    let hand_off = (message.status == MessageStatus::Accepted).then(|| hand_off_of(&message));
    match intake.store_and_queue(&message, hand_off.as_ref()).await? {
        crate::ports::Inserted::New => {}
        crate::ports::Inserted::Existing(prev) if prev.body_hash == message.body_hash => {
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
        crate::ports::Inserted::Existing(prev) => {
            message.errors = vec![Issue::new(
                ErrorCode::ControlIdReused,
                Some(crate::FieldName::ControlId),
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

/// What a queue consumer should do with the record it was handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// Done (or nothing to do): delete the record from the queue.
    Done,
}

/// The two processing steps, one per queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Patient,
    Episode,
}

impl Step {
    fn of(queue: QueueName) -> Step {
        match queue {
            QueueName::Patients => Step::Patient,
            QueueName::Episodes => Step::Episode,
        }
    }

    /// The guard a commit of this step carries (`Commit::step`).
    fn name(self) -> &'static str {
        match self {
            Step::Patient => PATIENT_STEP,
            Step::Episode => EPISODE_STEP,
        }
    }
}

/// Whether a stored message still has processing to do: accepted (in flight),
/// pending (parked until its patient exists), or failed only because the queue
/// gave up on it (so a DLQ redrive resumes it).
fn is_open(message: &StoredMessage) -> bool {
    match message.status {
        MessageStatus::Accepted | MessageStatus::Pending => true,
        MessageStatus::Failed => {
            !message.errors.is_empty()
                && message
                    .errors
                    .iter()
                    .all(|e| e.code == ErrorCode::DeadLetter)
        }
        _ => false,
    }
}

struct Loaded {
    message: StoredMessage,
    config: OrgConfig,
    fields: MappedMessage,
    /// The patient ID the step is about: for the patient step, the message's as
    /// re-read now; for the episode step, the one the patient step resolved.
    patient_id: Option<String>,
    /// That patient's record, after following merge aliases.
    patient: Option<PatientRecord>,
    /// The messages parked for that patient ID.
    pending: Vec<String>,
}

/// Reads the stored message, the org's current configuration and the patient
/// (one `read_step`, plus a read only when the queued hint is out of date or a
/// merge alias must be followed). `None`: nothing to do (gone, closed, or this
/// step already done).
async fn load<S: StepStore>(store: &S, item: &WorkItem, step: Step) -> StoreResult<Option<Loaded>> {
    let org = item.org.as_str();
    let input = store
        .read_step(org, &item.message_id, item.patient_id.as_deref())
        .await?;
    let Some(message) = input.message else {
        tracing::warn!(org = %org, message_id = %item.message_id, "queued message not found; dropped");
        return Ok(None);
    };
    if !is_open(&message) || message.steps_done.iter().any(|s| s == step.name()) {
        return Ok(None);
    }
    let Some(config) = input.config else {
        return Err(StoreError::NotFound(format!("org {org}")));
    };
    let fields = match Message::parse(&message.raw) {
        Ok(parsed) => extract(&parsed, &config.map_context()),
        Err(_) => MappedMessage::default(),
    };
    let patient_id = match step {
        Step::Patient => fields.patient_id.clone(),
        Step::Episode => message.patient_id.clone(),
    };
    let (record, pending) = match &patient_id {
        Some(id) if item.patient_id.as_ref() == Some(id) => (input.patient, input.pending),
        Some(id) => (
            store.load_patient(org, id).await?,
            store.pending_messages(org, id).await?,
        ),
        None => (None, Vec::new()),
    };
    let patient = follow_aliases(store, org, record).await?;
    Ok(Some(Loaded {
        message,
        config,
        fields,
        patient_id,
        patient,
        pending,
    }))
}

/// Follows merge aliases (a bounded chain) to the surviving record.
async fn follow_aliases<P: PatientStore>(
    store: &P,
    org: &str,
    mut rec: Option<PatientRecord>,
) -> StoreResult<Option<PatientRecord>> {
    for _ in 0..4 {
        match rec.as_ref().and_then(|r| r.patient.merged_into.clone()) {
            Some(next) => rec = store.load_patient(org, &next).await?,
            None => break,
        }
    }
    Ok(rec)
}

/// The patient step's decision: re-check the required data with the current
/// configuration (replay re-reads the message), then apply the rules.
async fn decide_patient<P: PatientStore>(
    store: &P,
    loaded: &Loaded,
    ctx: &Context<'_>,
) -> StoreResult<Decision> {
    let m = &loaded.fields;
    let recheck = validate(m, &loaded.config.org.field_map, Some(&loaded.config.org.id));
    if recheck
        .iter()
        .any(|e| e.code.ack_code() != tendon_hl7::AckCode::Accept)
    {
        return Ok(Decision {
            status: status_for(&recheck),
            errors: recheck,
            writes: Vec::new(),
            events: Vec::new(),
            then_episode_step: false,
        });
    }
    let prior = match m.prior_patient_id.as_deref() {
        Some(prior) => store.load_patient(&ctx.config.org.id, prior).await?,
        None => None,
    };
    Ok(rules::patient_step(
        ctx,
        m,
        loaded.patient.as_ref(),
        prior.as_ref(),
    ))
}

/// The commit of a decision. A parked message commits under its own guard
/// (`patient:parked`), so when its patient appears it can still run the
/// patient step once.
fn commit_of(
    loaded: &Loaded,
    step: Step,
    decision: &Decision,
    pending: &[ScheduledStep],
    now: Timestamp,
) -> Commit {
    let parked = decision.status == MessageStatus::Pending;
    let resolved = match step {
        Step::Patient => decision
            .writes
            .first()
            .map(|w| w.record.patient.id.clone())
            .or_else(|| loaded.patient_id.clone()),
        Step::Episode => loaded
            .patient
            .as_ref()
            .map(|r| r.patient.id.clone())
            .or_else(|| loaded.patient_id.clone()),
    };
    let was_parked = loaded.pending.contains(&loaded.message.id);
    Commit {
        org: loaded.config.org.id.clone(),
        message_id: loaded.message.id.clone(),
        step: if parked {
            format!("{}:parked", step.name())
        } else {
            step.name().to_owned()
        },
        status: decision.status,
        // The ingest warnings stay with the message once it is processed.
        errors: {
            let mut errors = decision.errors.clone();
            let warnings = invalid_value_warnings(&loaded.fields, &errors);
            errors.extend(warnings);
            errors
        },
        patient_id: resolved,
        records: decision.writes.clone(),
        events: decision.events.clone(),
        park: parked.then(|| loaded.patient_id.clone()).flatten(),
        unpark: (!parked && was_parked)
            .then(|| loaded.patient_id.clone())
            .flatten(),
        scheduled: enrolments(
            &loaded.config,
            &decision.writes,
            loaded.patient.as_ref(),
            &decision.events,
            now,
        ),
        step_updates: step_updates(
            &loaded.config,
            &decision.writes,
            &decision.events,
            pending,
            now,
        ),
    }
}

/// One log line per domain event a commit recorded (the dashboard's
/// `PatientsCreated` and event counts are metric filters on them).
pub(crate) fn log_events(events: &[DomainEvent]) {
    for e in events {
        tracing::info!(org = %e.org, patient_id = %e.patient_id, event = e.kind.as_str(), "domain event");
    }
}

/// One log line per error code a message failed with (the dashboard's
/// failures by code).
fn log_failures(org: &str, message_id: &str, errors: &[Issue]) {
    for issue in errors {
        tracing::info!(org = %org, message_id = %message_id, code = issue.code.as_str(), "message failed");
    }
}

/// What `events` do to the pending steps (`pending`) of the records
/// `writes` leave: moved or skipped with their appointments.
pub(crate) fn step_updates(
    config: &OrgConfig,
    writes: &[RecordWrite],
    events: &[DomainEvent],
    pending: &[ScheduledStep],
    now: Timestamp,
) -> Vec<StepUpdate> {
    writes
        .iter()
        .flat_map(|w| {
            let id = &w.record.patient.id;
            let events: Vec<DomainEvent> = events
                .iter()
                .filter(|e| &e.patient_id == id)
                .cloned()
                .collect();
            let pending: Vec<ScheduledStep> = pending
                .iter()
                .filter(|s| &s.patient_id == id)
                .cloned()
                .collect();
            appointment_updates(config, &w.record, &events, &pending, now)
        })
        .collect()
}

/// The pending workflow steps of the patients whose appointments `events`
/// move, cancel or delete (read only then: most commits need none).
pub(crate) async fn pending_steps<S: WorkflowStore>(
    store: &S,
    config: &OrgConfig,
    events: &[DomainEvent],
) -> StoreResult<Vec<ScheduledStep>> {
    if config.workflows.is_empty() {
        return Ok(Vec::new());
    }
    let mut patients: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.moves_or_ends_appointment())
        .map(|e| e.patient_id.as_str())
        .collect();
    patients.dedup();
    let mut out = Vec::new();
    for pid in patients {
        out.extend(
            store
                .list_steps(&config.org.id, Some(pid))
                .await?
                .into_iter()
                .filter(|s| s.status == StepStatus::Scheduled),
        );
    }
    Ok(out)
}

/// The workflow steps `events` schedule, each computed on the patient as the
/// commit leaves it (`writes`, else `unchanged`).
pub(crate) fn enrolments(
    config: &OrgConfig,
    writes: &[RecordWrite],
    unchanged: Option<&PatientRecord>,
    events: &[DomainEvent],
    now: Timestamp,
) -> Vec<ScheduledStep> {
    if config.workflows.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<ScheduledStep> = Vec::new();
    for event in events {
        let record = writes
            .iter()
            .map(|w| &w.record)
            .chain(unchanged)
            .find(|r| r.patient.id == event.patient_id);
        if let Some(record) = record {
            for step in enrol(config, &config.workflows, record, event, now) {
                if !out.iter().any(|s| s.id == step.id) {
                    out.push(step);
                }
            }
        }
    }
    out
}

/// The patient function's handler for one queue record.
pub async fn patient_step<S, Q, K>(
    store: &S,
    queue: &Q,
    clock: &K,
    item: &WorkItem,
) -> StoreResult<StepOutcome>
where
    S: StepStore,
    Q: WorkQueue,
    K: Clock,
{
    run_step(store, queue, clock, QueueName::Patients, item).await
}

/// The episode function's handler for one queue record.
pub async fn episode_step<S, Q, K>(
    store: &S,
    queue: &Q,
    clock: &K,
    item: &WorkItem,
) -> StoreResult<StepOutcome>
where
    S: StepStore,
    Q: WorkQueue,
    K: Clock,
{
    run_step(store, queue, clock, QueueName::Episodes, item).await
}

/// The handler of a queue: the patient step for `patients`, the episode step
/// for `episodes`. Every consumer (Lambda, local worker, AWS poller) calls this.
///
/// Read, decide (`rules`), commit atomically with a per-step guard; on a
/// version conflict, read and decide again. After the commit: queue the episode
/// step, and re-queue the messages that were parked for a patient this step
/// created. Both are repeated by a redelivery, so a crash between the commit
/// and the sends loses nothing.
pub async fn run_step<S, Q, K>(
    store: &S,
    queue: &Q,
    clock: &K,
    name: QueueName,
    item: &WorkItem,
) -> StoreResult<StepOutcome>
where
    S: StepStore,
    Q: WorkQueue,
    K: Clock,
{
    let step = Step::of(name);
    for _ in 0..MAX_ATTEMPTS {
        let Some(loaded) = load(store, item, step).await? else {
            if step == Step::Patient {
                resume_after_patient_step(store, queue, item).await?;
            }
            return Ok(StepOutcome::Done);
        };
        let now = clock.now();
        let ctx = Context {
            config: &loaded.config,
            message_id: &loaded.message.id,
            now: rfc3339(now),
        };
        let decision = match step {
            Step::Patient => decide_patient(store, &loaded, &ctx).await?,
            Step::Episode => rules::episode_step(&ctx, &loaded.fields, loaded.patient.as_ref()),
        };
        let pending = pending_steps(store, &loaded.config, &decision.events).await?;
        let commit = commit_of(&loaded, step, &decision, &pending, now);
        match store.commit(&commit).await? {
            CommitOutcome::Conflict => continue,
            outcome @ (CommitOutcome::Applied | CommitOutcome::AlreadyApplied) => {
                tracing::info!(org = %item.org, message_id = %item.message_id, step = step.name(), status = decision.status.as_str(), "step done");
                if outcome == CommitOutcome::Applied {
                    log_events(&decision.events);
                    if decision.status == MessageStatus::Failed {
                        log_failures(&item.org, &item.message_id, &decision.errors);
                    }
                }
                if decision.then_episode_step {
                    send_to_episodes(queue, &loaded.message, commit.patient_id.as_deref()).await?;
                }
                let created = decision.writes.iter().any(|w| {
                    w.expected_version.is_none()
                        && Some(&w.record.patient.id) == loaded.patient_id.as_ref()
                });
                if created && let Some(pid) = &loaded.patient_id {
                    requeue_parked(queue, &item.org, pid, &loaded.pending, &loaded.message.id)
                        .await?;
                }
                return Ok(StepOutcome::Done);
            }
        }
    }
    Err(StoreError::Backend(format!(
        "{} step for message {} kept conflicting",
        step.name(),
        item.message_id
    )))
}

async fn send_to_episodes<Q: WorkQueue>(
    queue: &Q,
    message: &StoredMessage,
    patient_id: Option<&str>,
) -> StoreResult<()> {
    let group = group(&message.org, message.patient_id.as_deref(), &message.id);
    // Per replay, so a replayed message's episode step is not taken for a duplicate.
    let dedupe = format!("{}:episode:{}", message.id, message.replays);
    let item = WorkItem {
        org: message.org.clone(),
        message_id: message.id.clone(),
        patient_id: patient_id.map(str::to_owned),
    };
    queue
        .send(QueueName::Episodes, &group, &dedupe, &item)
        .await
}

/// Puts the messages parked for a patient that now exists back on the patients
/// queue, behind the message that created it (same group).
async fn requeue_parked<Q: WorkQueue>(
    queue: &Q,
    org: &str,
    patient_id: &str,
    parked: &[String],
    created_by: &str,
) -> StoreResult<()> {
    for id in parked.iter().filter(|id| *id != created_by) {
        let item = WorkItem {
            org: org.to_owned(),
            message_id: id.clone(),
            patient_id: Some(patient_id.to_owned()),
        };
        let dedupe = format!("{id}:unpark:{created_by}");
        queue
            .send(
                QueueName::Patients,
                &group(org, Some(patient_id), id),
                &dedupe,
                &item,
            )
            .await?;
        tracing::info!(org = %org, message_id = %id, "parked message re-queued");
    }
    Ok(())
}

/// A redelivered record whose patient step is already committed: redo what
/// follows the commit (the first delivery may have died before it): queue the
/// episode step, and re-queue messages parked for the patient it created.
async fn resume_after_patient_step<S: StepStore, Q: WorkQueue>(
    store: &S,
    queue: &Q,
    item: &WorkItem,
) -> StoreResult<()> {
    let Some(m) = store.get_message(&item.org, &item.message_id).await? else {
        return Ok(());
    };
    if !m.steps_done.iter().any(|s| s == PATIENT_STEP) {
        return Ok(());
    }
    if is_open(&m) && !m.steps_done.iter().any(|s| s == EPISODE_STEP) {
        send_to_episodes(queue, &m, m.patient_id.as_deref()).await?;
    }
    if let Some(pid) = m.patient_id.as_deref() {
        let parked = store.pending_messages(&item.org, pid).await?;
        if !parked.is_empty() && store.load_patient(&item.org, pid).await?.is_some() {
            requeue_parked(queue, &item.org, pid, &parked, &m.id).await?;
        }
    }
    Ok(())
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
    let id = message_id(&org, body, &sha256_hex(body));
    intake.set_acknowledged(&org, &id, false).await
}

/// One record of a queue batch: its ID (SQS message ID or local receipt), its
/// message group, how many times it has been received (this time included),
/// and the pointer it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    pub id: String,
    pub group: String,
    pub receive_count: u32,
    pub item: WorkItem,
}

/// Runs a FIFO batch through `handle` in order and returns the IDs of the records
/// that must be retried: each record whose handling failed, and every later record
/// of the same message group, so a group never runs out of order. Business
/// failures are not errors (they are recorded outcomes), so only infrastructure
/// errors land here.
pub async fn run_batch<F, Fut>(records: &[BatchRecord], mut handle: F) -> Vec<String>
where
    F: FnMut(BatchRecord) -> Fut,
    Fut: std::future::Future<Output = StoreResult<StepOutcome>>,
{
    let mut failed_groups = std::collections::HashSet::new();
    let mut retry = Vec::new();
    for record in records {
        if failed_groups.contains(&record.group) {
            retry.push(record.id.clone());
            continue;
        }
        if let Err(e) = handle(record.clone()).await {
            tracing::warn!(message_id = %record.item.message_id, error = %e, "step failed; the record will be retried");
            failed_groups.insert(record.group.clone());
            retry.push(record.id.clone());
        }
    }
    retry
}

/// A queue's batch through [`run_step`], in order ([`run_batch`]). A record
/// that fails on its last receive (`max_receive_count`) is about to move to the
/// dead-letter queue: its message is marked `failed` with `dead_letter`, so
/// `tendon messages list --status failed` shows it and `messages replay` (or a
/// DLQ redrive) resumes it. Both the Lambda consumers and the local workers use
/// this; returns the IDs of the records to retry.
pub async fn run_queue_batch<S, Q, K>(
    store: &S,
    queue: &Q,
    clock: &K,
    name: QueueName,
    records: &[BatchRecord],
    max_receive_count: u32,
) -> Vec<String>
where
    S: StepStore,
    Q: WorkQueue,
    K: Clock,
{
    run_batch(records, |record| async move {
        let result = run_step(store, queue, clock, name, &record.item).await;
        if let Err(e) = &result
            && record.receive_count >= max_receive_count
        {
            mark_dead_letter(store, name, &record, e).await;
        }
        result
    })
    .await
}

/// Records on the message that its step went to the dead-letter queue (best
/// effort: the backend may be what is failing).
async fn mark_dead_letter<S: StepStore>(
    store: &S,
    name: QueueName,
    record: &BatchRecord,
    error: &StoreError,
) {
    let item = &record.item;
    let step = Step::of(name);
    let still_open = match store.get_message(&item.org, &item.message_id).await {
        Ok(Some(m)) => is_open(&m) && !m.steps_done.iter().any(|s| s == step.name()),
        _ => false,
    };
    if !still_open {
        return;
    }
    let commit = Commit {
        org: item.org.clone(),
        message_id: item.message_id.clone(),
        step: format!("dead_letter:{}", step.name()),
        status: MessageStatus::Failed,
        errors: vec![Issue::new(
            ErrorCode::DeadLetter,
            None,
            format!(
                "the {} step failed {} times (last: {error}); the message is in the {} dead-letter queue. Fix the cause, then run `tendon messages replay`",
                step.name(),
                record.receive_count,
                name.as_str()
            ),
        )],
        patient_id: None,
        records: Vec::new(),
        events: Vec::new(),
        park: None,
        unpark: None,
        scheduled: Vec::new(),
        step_updates: Vec::new(),
    };
    match store.commit(&commit).await {
        Ok(_) => {
            tracing::error!(org = %item.org, message_id = %item.message_id, step = step.name(), "message dead-lettered")
        }
        Err(e) => {
            tracing::error!(org = %item.org, message_id = %item.message_id, error = %e, "could not mark a dead-lettered message")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, group: &str) -> BatchRecord {
        BatchRecord {
            id: id.into(),
            group: group.into(),
            receive_count: 1,
            item: WorkItem {
                org: "O".into(),
                message_id: id.into(),
                patient_id: None,
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
        let retry = block_on(run_batch(&records, |record| {
            seen.push(record.item.message_id.clone());
            let fail = record.item.message_id == "a2";
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

    /// A body of two messages is identified by its bytes: its first message
    /// resent alone is a new message, not a reused control ID.
    #[test]
    fn two_messages_in_one_body_do_not_take_the_first_ones_identity() {
        let first = "MSH|^~\\&|EMR|ACME01|||20261120||ADT^A08|M1|P|2.5.1\rPID|1||P1\r";
        let second = first.replace("|M1|", "|M2|");
        let both = format!("{first}{second}");
        let id = |body: &str| message_id("ACME01", body.as_bytes(), &sha256_hex(body.as_bytes()));
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
