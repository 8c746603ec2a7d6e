//! The two backends behind one interface, so every command and `serve` work on
//! both: the embedded SQLite store with its queues, or DynamoDB and SQS.
use std::future::Future;

use tendon_aws::{AwsMailer, AwsStore};
use tendon_core::batch::{self, Consumer};
use tendon_core::cliniko::sync::sync_all;
use tendon_core::doctor::QueueDepths;
use tendon_core::intake;
use tendon_core::model::StoredMessage;
use tendon_core::ports::{
    DispatchStore, Mailer, OrgOverview, QueueName, StepStore, StoreResult, SystemClock, WorkQueue,
    WorkflowStore,
};
use tendon_core::workflow::dispatch::{Dispatcher, PassReport};
use tendon_http::App;
use tendon_local::LocalOutbox;
use tendon_local::LocalQueue;

use crate::error::CliResult;

/// A backend: what the HTTP routes need (`tendon_http::App`: the store, the
/// intake, the unsubscribe secret), and the rest of what the commands use.
pub trait Backend:
    App<
        Store: StepStore + DispatchStore + WorkflowStore + OrgOverview,
        Queue: WorkQueue + Consumer + QueueDepths,
    >
{
    type Mailer: Mailer + Send + Sync + 'static;

    /// The sender: the outbox table locally; SES and SNS on AWS.
    fn mailer(&self) -> impl Future<Output = CliResult<Self::Mailer>> + Send;

    /// Processes queued work until the queues are empty.
    fn drain(&self) -> impl Future<Output = StoreResult<()>> + Send {
        batch::drain(self.store(), self.queue(), self.queue(), &SystemClock)
    }

    /// Starts the queue consumers of `tendon serve` (`batch::run`).
    fn spawn_workers(&self) {
        for name in [QueueName::Patients, QueueName::Episodes] {
            let backend = self.clone();
            tokio::spawn(async move {
                let (store, queue) = (backend.store(), backend.queue());
                batch::run(store, queue, queue, &SystemClock, name, tokio::time::sleep).await;
            });
        }
    }

    fn replay(
        &self,
        messages: &[StoredMessage],
    ) -> impl Future<Output = StoreResult<usize>> + Send {
        intake::replay(self.store(), self.queue(), messages)
    }

    /// One dispatcher pass at `at`, after a sweep of messages stored but never
    /// queued (`intake::sweep_unqueued`).
    fn dispatch(
        &self,
        public_url: &str,
        at: jiff::Timestamp,
    ) -> impl Future<Output = CliResult<PassReport>> + Send {
        async move {
            // As the dispatch function does: first queue the messages stored
            // but never queued, without letting a failed sweep stop the pass.
            match intake::sweep_unqueued(self.queue(), at).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(queued = n, "sweeper queued stored messages"),
                Err(e) => tracing::error!(error = %e, "sweep failed; the next pass retries"),
            }
            let mailer = self.mailer().await?;
            let secret = self.unsubscribe_secret().await?;
            let d = Dispatcher {
                store: self.store(),
                mailer: &mailer,
                public_url,
                unsubscribe_secret: &secret,
                clock: &tendon_core::ports::SystemClock,
                budget: None,
            };
            Ok(d.pass(at).await?)
        }
    }

    /// Starts `tendon serve`'s dispatcher: one pass a minute, on the minute,
    /// as EventBridge Scheduler's `rate(1 minute)` runs the dispatch function.
    fn spawn_dispatcher(&self, public_url: String) {
        let backend = self.clone();
        tokio::spawn(async move {
            loop {
                match backend.dispatch(&public_url, jiff::Timestamp::now()).await {
                    Ok(r) if r != PassReport::default() => {
                        tracing::info!(
                            sent = r.sent,
                            skipped = r.skipped,
                            failed = r.failed,
                            "dispatch pass"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "dispatch pass failed; the next tick retries")
                    }
                }
                tokio::time::sleep(until_next_minute(jiff::Timestamp::now())).await;
            }
        });
    }

    /// Starts `tendon serve`'s Cliniko re-sync: every connected org each
    /// `minutes` (the first after `minutes`), as the cliniko-sync function's
    /// 15-minute schedule does.
    fn spawn_cliniko_resync(&self, minutes: u64) {
        if minutes == 0 {
            return;
        }
        let backend = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60 * minutes)).await;
                let now = jiff::Timestamp::now();
                if let Err(e) = tendon_cliniko::user_agent_from_env() {
                    tracing::error!(error = %e, "Cliniko re-sync refused");
                    continue;
                }
                match sync_all(backend.store(), tendon_cliniko::client_for, now).await {
                    Ok(results) => {
                        for r in results {
                            match r.result {
                                Ok(report) => {
                                    tracing::info!(org = %r.org, synced = report.synced, failed = report.failed, "Cliniko re-sync")
                                }
                                Err(e) => {
                                    tracing::warn!(org = %r.org, error = %e, "Cliniko re-sync failed; the next one retries")
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "Cliniko re-sync failed; the next one retries")
                    }
                }
            }
        });
    }
}

/// The time to the next whole minute (the tick is on the minute, like EventBridge's).
fn until_next_minute(now: jiff::Timestamp) -> std::time::Duration {
    let ms = now.as_millisecond().rem_euclid(60_000);
    std::time::Duration::from_millis(u64::try_from(60_000 - ms).unwrap_or(60_000))
}

impl Backend for LocalQueue {
    type Mailer = LocalOutbox;

    async fn mailer(&self) -> CliResult<LocalOutbox> {
        Ok(LocalOutbox)
    }
}

impl Backend for AwsStore {
    type Mailer = AwsMailer;

    async fn mailer(&self) -> CliResult<AwsMailer> {
        Ok(AwsMailer::from_env().await?)
    }
}
