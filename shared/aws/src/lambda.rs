//! What the queue-consumer Lambdas share: turning an SQS event into the core's
//! batch records, running them (`batch::run_queue_batch`), and reporting the
//! records to retry (`ReportBatchItemFailures`). Each function's `main` is
//! [`run_queue_function`] with its queue.
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tendon_core::batch::{BatchRecord, run_queue_batch};
use tendon_core::ports::{QueueName, SystemClock, WorkItem};

use crate::AwsStore;

/// Environment variable with the queues' `maxReceiveCount` (the template sets
/// it from the same value as the redrive policies).
pub const ENV_MAX_RECEIVE_COUNT: &str = "TENDON_MAX_RECEIVE_COUNT";
/// `maxReceiveCount` when the environment does not say.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// The queues' `maxReceiveCount`: a record failing on that receive is about to
/// move to the dead-letter queue.
pub fn max_receive_count() -> u32 {
    std::env::var(ENV_MAX_RECEIVE_COUNT)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_RECEIVE_COUNT)
}

/// The batch records of an SQS event, and the IDs of the records that can never
/// succeed: a body that is not a work item fails, with the rest of its group,
/// so it ends in the dead-letter queue where an operator sees it.
pub fn batch_records(event: SqsEvent) -> (Vec<BatchRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut poisoned_groups = Vec::new();
    for msg in event.records {
        let id = msg.message_id.clone().unwrap_or_default();
        let group = msg
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        let receive_count = msg
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let item = msg
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<WorkItem>(b).ok());
        match item {
            _ if poisoned_groups.contains(&group) => failures.push(id),
            Some(item) => records.push(BatchRecord {
                id,
                group,
                receive_count,
                item,
            }),
            None => {
                tracing::error!(sqs_message_id = %id, "queue record is not a work item; leaving it for the DLQ");
                poisoned_groups.push(group);
                failures.push(id);
            }
        }
    }
    (records, failures)
}

/// One SQS batch of `queue` through its step, in order.
pub async fn handle_sqs_batch(
    store: &AwsStore,
    queue: QueueName,
    event: SqsEvent,
) -> SqsBatchResponse {
    let (records, mut failures) = batch_records(event);
    failures.extend(
        run_queue_batch(
            store,
            store,
            &SystemClock,
            queue,
            &records,
            max_receive_count(),
        )
        .await,
    );
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|item_identifier| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = item_identifier;
            f
        })
        .collect();
    response
}

/// The `main` of a queue-consumer function: JSON logs, the store from the
/// environment, then [`handle_sqs_batch`] for every event.
pub async fn run_queue_function(queue: QueueName) -> Result<(), lambda_runtime::Error> {
    crate::init_lambda_logs();
    let store = AwsStore::from_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let store = &store;
            // Boxed: the step's future is deep, and the runtime nests it further.
            let batch = Box::pin(handle_sqs_batch(store, queue, event.payload));
            async move { Ok::<_, lambda_runtime::Error>(batch.await) }
        },
    ))
    .await
}

/// Environment variable with the public base URL (unsubscribe links).
pub const ENV_PUBLIC_URL: &str = "TENDON_PUBLIC_URL";
/// Environment variable with the profile URL template of the "Open in"
/// redirect (`{org}`, `{patient_id}`); the route itself is `tendon-http`'s.
pub use tendon_core::cliniko::open::ENV_PROFILE_URL;

/// The instant a scheduled event stands for: its `time` (RFC 3339), else now.
pub fn event_time(event: &serde_json::Value) -> jiff::Timestamp {
    event
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(jiff::Timestamp::now)
}

/// How long a dispatch invocation goes on claiming: the function's timeout
/// (60 s, template.yaml) less room to send the last claimed batch.
pub const DISPATCH_BUDGET: jiff::SignedDuration = jiff::SignedDuration::from_secs(40);

/// The `main` of the dispatch function: the store and the mailer once per
/// container, the unsubscribe secret on the first pass, then per event a sweep
/// of messages stored but never queued and a dispatcher pass.
pub async fn run_dispatch_function() -> Result<(), lambda_runtime::Error> {
    crate::init_lambda_logs();
    let store = AwsStore::from_env().await?;
    let mailer = crate::AwsMailer::from_env().await?;
    let public_url = std::env::var(ENV_PUBLIC_URL)
        .map_err(|_| format!("the environment variable {ENV_PUBLIC_URL} is not set"))?;
    // Read by the first pass, not at init: init does no network I/O, so it
    // stays near a hello-world Lambda's (docs/benchmarks.md).
    let secret = tokio::sync::OnceCell::<String>::new();
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let at = event_time(&event.payload);
            let (store, mailer, public_url, secret) = (&store, &mailer, &public_url, &secret);
            async move {
                let secret = secret
                    .get_or_try_init(|| store.unsubscribe_secret())
                    .await?;
                // Messages stored but never queued: before the steps, and never
                // in their way (a failed sweep is retried next minute).
                match tendon_core::intake::sweep_unqueued(store, at).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(queued = n, "sweeper queued stored messages"),
                    Err(e) => tracing::error!(error = %e, "sweep failed; the next pass retries"),
                }
                let dispatcher = tendon_core::workflow::dispatch::Dispatcher {
                    store,
                    mailer,
                    public_url,
                    unsubscribe_secret: secret,
                    clock: &tendon_core::ports::SystemClock,
                    budget: Some(DISPATCH_BUDGET),
                };
                let report = Box::pin(dispatcher.pass(at)).await?;
                tracing::info!(sent = report.sent, skipped = report.skipped, failed = report.failed, at = %at, "dispatch pass");
                Ok::<_, lambda_runtime::Error>(report)
            }
        },
    ))
    .await
}

/// One SQS batch of SES bounce and complaint notifications (SNS-wrapped):
/// each permanent bounce or complaint suppresses its address for the org and
/// unsubscribes its patient. A notification that is not one is logged and
/// dropped (it would fail the same way forever); a store failure leaves the
/// record for a retry.
pub async fn handle_feedback_batch(store: &AwsStore, event: SqsEvent) -> SqsBatchResponse {
    use tendon_core::workflow::feedback::{Ignored, apply, parse};
    let mut response = SqsBatchResponse::default();
    for msg in event.records {
        let id = msg.message_id.clone().unwrap_or_default();
        match parse(msg.body.as_deref().unwrap_or_default()) {
            Ok(feedback) => {
                if let Err(e) = apply(store, &feedback).await {
                    tracing::error!(sqs_message_id = %id, error = %e, "email feedback not applied; retried");
                    let mut f = BatchItemFailure::default();
                    f.item_identifier = id;
                    response.batch_item_failures.push(f);
                }
            }
            Err(Ignored::Transient) => {
                tracing::info!(sqs_message_id = %id, "transient bounce: nothing to suppress")
            }
            Err(why) => {
                tracing::warn!(sqs_message_id = %id, reason = ?why, "not an SES bounce or complaint of Tendon's mail; dropped")
            }
        }
    }
    response
}

/// The `main` of the feedback function.
pub async fn run_feedback_function() -> Result<(), lambda_runtime::Error> {
    crate::init_lambda_logs();
    let store = AwsStore::from_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let store = &store;
            async move {
                Ok::<_, lambda_runtime::Error>(handle_feedback_batch(store, event.payload).await)
            }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    fn msg(id: &str, group: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.attributes.insert("MessageGroupId".into(), group.into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), "3".into());
        m
    }

    #[test]
    fn a_scheduled_event_stands_for_its_time() {
        let e =
            serde_json::json!({"time": "2026-12-01T09:00:00Z", "detail-type": "Scheduled Event"});
        assert_eq!(
            event_time(&e),
            "2026-12-01T09:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        let before = jiff::Timestamp::now();
        assert!(event_time(&serde_json::json!({})) >= before, "no time: now");
    }

    #[test]
    fn a_record_that_is_not_a_work_item_fails_with_the_rest_of_its_group() {
        let item = |id: &str| format!(r#"{{"org":"O","message_id":"{id}"}}"#);
        let mut event = SqsEvent::default();
        event.records = vec![
            msg("a1", "A", &item("a1")),
            msg("b1", "B", "not json"),
            msg("a2", "A", &item("a2")),
            msg("b2", "B", &item("b2")),
        ];
        let (records, failed) = batch_records(event);
        let ran: Vec<_> = records.iter().map(|r| r.item.message_id.as_str()).collect();
        assert_eq!(ran, ["a1", "a2"]);
        assert!(
            records
                .iter()
                .all(|r| r.receive_count == 3 && r.group == "A")
        );
        assert_eq!(failed, ["b1", "b2"]);
    }
}
