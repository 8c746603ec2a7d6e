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

    /// Starts `tendon serve`'s dispatcher: one pass a minute, on the minute,
    /// as EventBridge Scheduler's `rate(1 minute)` runs the dispatch function.
    fn spawn_dispatcher(&self, public_url: String);

    /// Follows an unsubscribe link: true if the link is valid (the patient is
    /// then unsubscribed).
    fn unsubscribe(
        &self,
        org: &str,
        patient_id: &str,
        token: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

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

    fn spawn_dispatcher(&self, public_url: String) {
        let queue = self.clone();
        tokio::spawn(async move {
            loop {
                let now = jiff::Timestamp::now();
                if let Err(e) = dispatch_once(queue.store(), &public_url, now).await {
                    tracing::error!(error = %e, "dispatch pass failed; the next tick retries");
                }
                tokio::time::sleep(until_next_minute(jiff::Timestamp::now())).await;
            }
        });
    }

    async fn unsubscribe(&self, org: &str, patient_id: &str, token: &str) -> StoreResult<bool> {
        let store = LocalQueue::store(self);
        let secret = store.unsubscribe_secret().await?;
        if !tendon_core::workflow::dispatch::unsubscribe_token_ok(&secret, org, patient_id, token) {
            return Ok(false);
        }
        store.unsubscribe(org, patient_id).await
    }
}

/// One dispatcher pass on the embedded store at `now`.
async fn dispatch_once(
    store: &SqliteStore,
    public_url: &str,
    now: jiff::Timestamp,
) -> StoreResult<()> {
    let secret = store.unsubscribe_secret().await?;
    let d = tendon_core::workflow::dispatch::Dispatcher {
        store,
        mailer: &tendon_local::LocalOutbox,
        public_url,
        unsubscribe_secret: &secret,
    };
    let report = d.pass(now).await?;
    if report != Default::default() {
        tracing::info!(
            sent = report.sent,
            skipped = report.skipped,
            failed = report.failed,
            "dispatch pass"
        );
    }
    Ok(())
}

/// The time to the next whole minute (the tick is on the minute, like EventBridge's).
fn until_next_minute(now: jiff::Timestamp) -> std::time::Duration {
    let ms = now.as_millisecond().rem_euclid(60_000);
    std::time::Duration::from_millis(u64::try_from(60_000 - ms).unwrap_or(60_000))
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

    fn spawn_dispatcher(&self, _public_url: String) {
        tracing::warn!("the dispatcher is not available on the aws backend yet");
    }

    async fn unsubscribe(&self, _org: &str, _patient_id: &str, _token: &str) -> StoreResult<bool> {
        Ok(false)
    }
}
