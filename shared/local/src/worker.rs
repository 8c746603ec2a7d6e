//! Queue workers for the local backend: the same handlers as the patient and
//! episode Lambdas, fed from the SQLite queues the way an SQS event source
//! mapping feeds a function (batches, in order per message group).
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tendon_core::batch::{BatchRecord, run_queue_batch};
use tendon_core::model::StoredMessage;
use tendon_core::ports::{
    HandOff, Inserted, Intake, QueueName, StoreResult, SystemClock, Unqueued, WorkItem, WorkQueue,
};

use crate::SqliteStore;
use tokio::sync::Notify;

/// How long a received record stays invisible; a worker that dies mid-batch
/// leaves its records to be redelivered after this.
pub const VISIBILITY: Duration = Duration::from_secs(30);
const BATCH: usize = 10;

/// The SQLite queues, waking the local workers when something is sent.
#[derive(Clone)]
pub struct LocalQueue {
    store: SqliteStore,
    patients: Arc<Notify>,
    episodes: Arc<Notify>,
}

impl LocalQueue {
    pub fn new(store: SqliteStore) -> LocalQueue {
        LocalQueue {
            store,
            patients: Arc::new(Notify::new()),
            episodes: Arc::new(Notify::new()),
        }
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn notify(&self, queue: QueueName) -> &Notify {
        match queue {
            QueueName::Patients => &self.patients,
            QueueName::Episodes => &self.episodes,
        }
    }
}

impl WorkQueue for LocalQueue {
    async fn send(
        &self,
        queue: QueueName,
        group: &str,
        dedupe_id: &str,
        item: &WorkItem,
    ) -> StoreResult<()> {
        self.store.send(queue, group, dedupe_id, item).await?;
        // notify_one keeps a permit when no worker is waiting, so no wake-up is lost.
        self.notify(queue).notify_one();
        Ok(())
    }
}

/// The store's [`Intake`], waking the patients worker when a pointer was queued.
impl Intake for LocalQueue {
    async fn store_and_queue(
        &self,
        message: &StoredMessage,
        hand_off: Option<&HandOff>,
    ) -> StoreResult<Inserted> {
        let inserted = self.store.store_and_queue(message, hand_off).await?;
        if let (Inserted::New, Some(h)) = (&inserted, hand_off) {
            self.notify(h.queue).notify_one();
        }
        Ok(inserted)
    }

    async fn queue_stored(
        &self,
        org: &str,
        id: &str,
        hand_off: &HandOff,
        acknowledge: bool,
    ) -> StoreResult<()> {
        self.store
            .queue_stored(org, id, hand_off, acknowledge)
            .await?;
        self.notify(hand_off.queue).notify_one();
        Ok(())
    }

    fn set_acknowledged(
        &self,
        org: &str,
        id: &str,
        acknowledged: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.set_acknowledged(org, id, acknowledged)
    }

    fn claim_unqueued(
        &self,
        stored_before: jiff::Timestamp,
        now: jiff::Timestamp,
        claim_until: jiff::Timestamp,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Unqueued>>> + Send {
        self.store
            .claim_unqueued(stored_before, now, claim_until, limit)
    }
}

/// Receives one batch and runs it through the queue's handler, in order. After a
/// record fails, the rest of its group is left for redelivery, as FIFO requires.
pub async fn process_batch(queue: &LocalQueue, name: QueueName) -> StoreResult<usize> {
    process_batch_at(queue, name, crate::now_ms()).await
}

/// [`process_batch`] as if at `now_ms`, so tests can expire visibility timeouts
/// without waiting.
pub async fn process_batch_at(
    queue: &LocalQueue,
    name: QueueName,
    now_ms: i64,
) -> StoreResult<usize> {
    let store = &queue.store;
    let batch = store.receive(name, BATCH, VISIBILITY, now_ms).await?;
    let records: Vec<BatchRecord> = batch
        .iter()
        .map(|r| BatchRecord {
            id: r.receipt.clone(),
            group: r.group.clone(),
            receive_count: r.receive_count,
            item: r.item.clone(),
        })
        .collect();
    let retry = run_queue_batch(
        store,
        queue,
        &SystemClock,
        name,
        &records,
        store.max_receive_count(),
    )
    .await;
    // Records to retry stay in flight and come back after the visibility
    // timeout, as with SQS; the rest are done.
    let done: Vec<String> = records
        .iter()
        .filter(|r| !retry.contains(&r.id))
        .map(|r| r.id.clone())
        .collect();
    store.delete_many(done).await?;
    Ok(batch.len())
}

/// Processes until both queues are empty (records in flight elsewhere are not waited for).
pub async fn drain(queue: &LocalQueue) -> StoreResult<()> {
    loop {
        let n = process_batch(queue, QueueName::Patients).await?
            + process_batch(queue, QueueName::Episodes).await?;
        if n == 0 {
            return Ok(());
        }
    }
}

/// A worker for one queue, forever: woken by sends, and every second to pick up
/// redeliveries and work queued by other processes (`messages replay`).
pub async fn run(queue: LocalQueue, name: QueueName) {
    loop {
        match process_batch(&queue, name).await {
            Ok(0) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), queue.notify(name).notified())
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(queue = name.as_str(), error = %e, "queue worker failed; retrying");
                let _ = tokio::time::timeout(Duration::from_secs(1), std::future::pending::<()>())
                    .await;
            }
        }
    }
}
