//! Queue batches, from receive to delete: a FIFO batch run in order through
//! the processing step of its queue ([`run_queue_batch`]), the records to
//! retry, and the marking of a message whose step is about to go to the
//! dead-letter queue. The Lambda consumers get their batches from the event
//! source mapping; everything else polls through the [`Consumer`] port with
//! one loop ([`consume_batch`], [`drain`], [`run`]): the local workers,
//! `tendon serve --backend aws` and `tendon messages replay`. The
//! [`QueueDepths`] port says how full the queues are (for the doctor).
use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::model::MessageStatus;
use crate::ports::{
    Clock, Commit, QueueName, StepStore, StoreError, StoreResult, WorkItem, WorkQueue,
};
use crate::processing::{Step, is_open, run_step};
use crate::{ErrorCode, Issue};

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
    Fut: std::future::Future<Output = StoreResult<()>>,
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

/// Records taken per receive: SQS's maximum.
pub const BATCH: usize = 10;

/// How long a poller waits for a record before it receives again (SQS long
/// polling; locally, a send wakes the worker sooner).
pub const POLL_WAIT: Duration = Duration::from_secs(10);

/// The pause after a failed receive or delete, before the next try.
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One delivery of a queued record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Deletes (or, locally, releases) this delivery, and no later one.
    pub receipt: String,
    pub item: WorkItem,
    /// The message group.
    pub group: String,
    /// How many times the record has been delivered, this time included.
    pub receive_count: u32,
}

/// The consuming side of a queue backend.
pub trait Consumer: Send + Sync {
    /// Up to `max` records of `queue`, in group order, each now invisible to
    /// other receivers; when there are none, waits up to `wait` for one.
    fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = StoreResult<Vec<Received>>> + Send;

    /// Deletes these deliveries: the records are done.
    fn delete(
        &self,
        queue: QueueName,
        receipts: Vec<String>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The receive after which a failing record moves to the dead-letter
    /// queue (SQS's `maxReceiveCount`).
    fn max_receive_count(&self) -> u32;
}

/// One work queue as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    pub queue: QueueName,
    /// Records waiting to be received.
    pub waiting: u64,
    /// Records received and not yet deleted (being processed, or waiting
    /// out their visibility timeout before a retry).
    pub in_flight: u64,
    /// Records in its dead-letter queue.
    pub dead_lettered: u64,
    /// When its oldest record was sent, where the backend can tell (SQS
    /// reports that age only as a CloudWatch metric, which the queue-age
    /// alarms watch).
    pub oldest: Option<Timestamp>,
}

/// The work queues' depths: SQL locally; SQS's own attributes on AWS.
pub trait QueueDepths: Send + Sync {
    fn depths(&self) -> impl Future<Output = StoreResult<Vec<QueueDepth>>> + Send;
}

/// Receives one batch of `name` (waiting up to `wait`), runs it in order, and
/// deletes every record not left for retry: those come back after their
/// visibility timeout, as on SQS. Returns the batch size.
pub async fn consume_batch<S, Q, C, K>(
    store: &S,
    queue: &Q,
    consumer: &C,
    clock: &K,
    name: QueueName,
    wait: Duration,
) -> StoreResult<usize>
where
    S: StepStore,
    Q: WorkQueue,
    C: Consumer,
    K: Clock,
{
    let received = consumer.receive(name, BATCH, wait).await?;
    let records: Vec<BatchRecord> = received
        .into_iter()
        .map(|r| BatchRecord {
            id: r.receipt,
            group: r.group,
            receive_count: r.receive_count,
            item: r.item,
        })
        .collect();
    let retry = run_queue_batch(
        store,
        queue,
        clock,
        name,
        &records,
        consumer.max_receive_count(),
    )
    .await;
    let n = records.len();
    let done: Vec<String> = records
        .into_iter()
        .map(|r| r.id)
        .filter(|id| !retry.contains(id))
        .collect();
    if !done.is_empty() {
        consumer.delete(name, done).await?;
    }
    Ok(n)
}

/// Consumes both queues until both answer empty (records in flight
/// elsewhere are not waited for).
pub async fn drain<S, Q, C, K>(store: &S, queue: &Q, consumer: &C, clock: &K) -> StoreResult<()>
where
    S: StepStore,
    Q: WorkQueue,
    C: Consumer,
    K: Clock,
{
    loop {
        let mut n = 0;
        for name in [QueueName::Patients, QueueName::Episodes] {
            n += consume_batch(store, queue, consumer, clock, name, Duration::ZERO).await?;
        }
        if n == 0 {
            return Ok(());
        }
    }
}

/// Consumes `name` for ever, waiting [`POLL_WAIT`] for work; after a failure
/// it pauses [`RETRY_PAUSE`] (through `sleep`, the runtime's) and goes on.
pub async fn run<S, Q, C, K, W>(
    store: &S,
    queue: &Q,
    consumer: &C,
    clock: &K,
    name: QueueName,
    sleep: impl Fn(Duration) -> W,
) where
    S: StepStore,
    Q: WorkQueue,
    C: Consumer,
    K: Clock,
    W: Future<Output = ()>,
{
    loop {
        if let Err(e) = consume_batch(store, queue, consumer, clock, name, POLL_WAIT).await {
            tracing::error!(queue = name.as_str(), error = %e, "queue consumer failed; retrying");
            sleep(RETRY_PAUSE).await;
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
                    Err(StoreError::backend_detail("down"))
                } else {
                    Ok(())
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
