//! `GET /health` on AWS: the table and the patients queue answer.
//!
//! One GetItem of a key no record has (the ingest function's own read
//! permission, the table's key), and one GetQueueAttributes of the queue
//! ingest sends to, side by side, each bounded by [`PROBE_TIMEOUT`].
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use tendon_core::health::{Failing, HealthCheck, Part};

use crate::{AwsStore, backend};

/// How long each probe may take. Either call answers in milliseconds, and
/// the SDK's retries of a throttled one fit; the two run side by side, well
/// within the ingest function's 10 s timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The key the table probe reads: no record is stored under it.
const PROBE_PK: &str = "HEALTH";

impl HealthCheck for AwsStore {
    async fn failing(&self) -> Vec<Failing> {
        let table = async {
            self.get("health probe GetItem", PROBE_PK.to_owned(), PROBE_PK)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let queue = async {
            self.count();
            self.sqs()
                .get_queue_attributes()
                .queue_url(&self.patients_queue_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| backend("health probe GetQueueAttributes", &e).to_string())
        };
        let bounded = |r: Result<Result<(), String>, tokio::time::error::Elapsed>| match r {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        };
        let (table, queue) = tokio::join!(
            tokio::time::timeout(PROBE_TIMEOUT, table),
            tokio::time::timeout(PROBE_TIMEOUT, queue)
        );
        [(Part::Store, bounded(table)), (Part::Queue, bounded(queue))]
            .into_iter()
            .filter_map(|(part, r)| r.err().map(|reason| Failing { part, reason }))
            .collect()
    }
}
