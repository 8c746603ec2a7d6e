//! Processing: the patient step and the episode step, one per queue
//! ([`run_step`]). A step reads the stored message, the org's configuration
//! and the patient, decides with [`rules`], and commits the decision
//! atomically under a per-step guard; then it queues the episode step and
//! re-queues the messages parked for a patient it created.
use jiff::Timestamp;
use tendon_hl7::Message;

use crate::ErrorCode;
use crate::event_effects::{enrol_marked, enrolments, log_events, pending_steps, step_updates};
use crate::intake::{group, log_failures, status_for};
use crate::mapping::{MappedMessage, extract};
use crate::model::{MessageStatus, PatientRecord, StoredMessage};
use crate::org::OrgConfig;
use crate::ports::{
    Clock, Commit, CommitOutcome, PatientStore, QueueName, StepStore, StoreError, StoreResult,
    WorkItem, WorkQueue,
};
use crate::report::{invalid_value_warnings, validate};
use crate::rules::{self, Context, Decision};
use crate::workflow::steps::ScheduledStep;

const PATIENT_STEP: &str = "patient";
const EPISODE_STEP: &str = "episode";
/// Optimistic-concurrency retries before the step is handed back to the queue.
const MAX_ATTEMPTS: usize = 8;

/// The two processing steps, one per queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Patient,
    Episode,
}

impl Step {
    pub(crate) fn of(queue: QueueName) -> Step {
        match queue {
            QueueName::Patients => Step::Patient,
            QueueName::Episodes => Step::Episode,
        }
    }

    /// The guard a commit of this step carries (`Commit::step`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Patient => PATIENT_STEP,
            Step::Episode => EPISODE_STEP,
        }
    }
}

/// Whether a stored message still has processing to do: accepted (in flight),
/// pending (parked until its patient exists), or failed only because the queue
/// gave up on it (so a DLQ redrive resumes it).
pub(crate) fn is_open(message: &StoredMessage) -> bool {
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
    let recheck = validate(
        m,
        &loaded.config.org.field_map,
        Some(loaded.config.org.account_id()),
    );
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
    let mut records = decision.writes.clone();
    let enrolled = enrolments(
        &loaded.config,
        &decision.writes,
        loaded.patient.as_ref(),
        &decision.events,
        now,
    );
    let scheduled = enrol_marked(&loaded.config, &mut records, enrolled, now);
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
        records,
        events: decision.events.clone(),
        park: parked.then(|| loaded.patient_id.clone()).flatten(),
        unpark: (!parked && was_parked)
            .then(|| loaded.patient_id.clone())
            .flatten(),
        scheduled,
        step_updates: step_updates(
            &loaded.config,
            &decision.writes,
            &decision.events,
            pending,
            now,
        ),
    }
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
) -> StoreResult<()>
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
            return Ok(());
        };
        let now = clock.now();
        let ctx = Context {
            config: &loaded.config,
            message_id: &loaded.message.id,
            now,
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
                return Ok(());
            }
        }
    }
    Err(StoreError::backend_detail(format!(
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
