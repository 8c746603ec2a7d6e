//! The two backends behind one interface, so every command and `serve` work on
//! both: the embedded SQLite store with its queues, or DynamoDB and SQS.
use std::future::Future;

use tendon_aws::AwsStore;
use tendon_core::model::StoredMessage;
use tendon_core::pipeline;
use tendon_core::ports::{
    ConfigStore, MessageLog, PatientStore, QueueName, StoreResult, WorkQueue,
};
use tendon_local::SqliteStore;
use tendon_local::worker::{self, LocalQueue};

pub trait Backend: Clone + Send + Sync + 'static {
    type Store: ConfigStore + MessageLog + PatientStore;
    type Queue: WorkQueue;

    fn store(&self) -> &Self::Store;
    fn queue(&self) -> &Self::Queue;

    /// Processes queued work until the queues are empty.
    fn drain(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// Starts the queue consumers of `tendon serve`.
    fn spawn_workers(&self);

    fn replay(
        &self,
        messages: &[StoredMessage],
    ) -> impl Future<Output = StoreResult<usize>> + Send {
        pipeline::replay(self.store(), self.queue(), messages)
    }
}

impl Backend for LocalQueue {
    type Store = SqliteStore;
    type Queue = LocalQueue;

    fn store(&self) -> &SqliteStore {
        LocalQueue::store(self)
    }

    fn queue(&self) -> &LocalQueue {
        self
    }

    fn drain(&self) -> impl Future<Output = StoreResult<()>> + Send {
        worker::drain(self)
    }

    fn spawn_workers(&self) {
        for name in [QueueName::Patients, QueueName::Episodes] {
            tokio::spawn(worker::run(self.clone(), name));
        }
    }
}

impl Backend for AwsStore {
    type Store = AwsStore;
    type Queue = AwsStore;

    fn store(&self) -> &AwsStore {
        self
    }

    fn queue(&self) -> &AwsStore {
        self
    }

    fn drain(&self) -> impl Future<Output = StoreResult<()>> + Send {
        tendon_aws::consumer::drain(self)
    }

    fn spawn_workers(&self) {
        for name in [QueueName::Patients, QueueName::Episodes] {
            tokio::spawn(tendon_aws::consumer::run(self.clone(), name));
        }
    }
}
