//! SQS as the core's [`Consumer`]: `tendon serve --backend aws` and
//! `tendon messages replay` poll the queues through `consume`, the way an
//! event source mapping does. The deployed functions get their batches from
//! the mapping instead (`lambda.rs`).
use std::time::Duration;

use tendon_core::batch::{Consumer, Received};
use tendon_core::ports::{QueueName, StoreResult};

use crate::AwsStore;

impl Consumer for AwsStore {
    /// ReceiveMessage, long-polling up to `wait` (SQS allows 20 s).
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Received>> {
        let max = i32::try_from(max).unwrap_or(10);
        let wait = i32::try_from(wait.as_secs()).unwrap_or(20);
        self.receive_batch(queue, max, wait).await
    }

    async fn delete(&self, queue: QueueName, receipts: Vec<String>) -> StoreResult<()> {
        self.delete_many(queue, &receipts).await
    }

    fn max_receive_count(&self) -> u32 {
        crate::lambda::max_receive_count()
    }
}
