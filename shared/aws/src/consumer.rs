//! Polling the queues the way an SQS event source mapping does, for
//! `tendon serve --backend aws` and `tendon messages replay` on the AWS backend.
//! The deployed functions get their batches from the mapping instead.
use tendon_core::batch::{BatchRecord, run_queue_batch};
use tendon_core::ports::{QueueName, StoreResult, SystemClock};

use crate::AwsStore;

/// Receives one batch (long-polling up to `wait_seconds`), runs it in order,
/// and deletes every record not left for retry. Returns the batch size.
pub async fn process_batch(
    store: &AwsStore,
    queue: QueueName,
    wait_seconds: i32,
) -> StoreResult<usize> {
    let batch = store.receive_batch(queue, 10, wait_seconds).await?;
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
        store,
        &SystemClock,
        queue,
        &records,
        crate::lambda::max_receive_count(),
    )
    .await;
    let done: Vec<String> = records
        .iter()
        .filter(|r| !retry.contains(&r.id))
        .map(|r| r.id.clone())
        .collect();
    store.delete_many(queue, &done).await?;
    Ok(batch.len())
}

/// Processes until both queues answer empty.
pub async fn drain(store: &AwsStore) -> StoreResult<()> {
    loop {
        let n = process_batch(store, QueueName::Patients, 0).await?
            + process_batch(store, QueueName::Episodes, 0).await?;
        if n == 0 {
            return Ok(());
        }
    }
}

/// A poller for one queue, forever.
pub async fn run(store: AwsStore, queue: QueueName) {
    loop {
        if let Err(e) = process_batch(&store, queue, 10).await {
            tracing::error!(queue = queue.as_str(), error = %e, "queue poller failed; retrying");
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                std::future::pending::<()>(),
            )
            .await;
        }
    }
}
