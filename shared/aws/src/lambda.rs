//! What the queue-consumer Lambdas share: turning an SQS event into the core's
//! batch records, and the core's retry list into `ReportBatchItemFailures`.
use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tendon_core::pipeline::{BatchRecord, StepOutcome, run_batch};
use tendon_core::ports::{StoreResult, WorkItem};

/// Runs an SQS FIFO batch through `handle` in order (`pipeline::run_batch`) and
/// reports the records to retry. A record whose body is not a work item can
/// never succeed: it is reported as failed, with the rest of its group, so it
/// ends in the dead-letter queue where an operator sees it.
pub async fn handle_sqs_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: FnMut(WorkItem) -> Fut,
    Fut: Future<Output = StoreResult<StepOutcome>>,
{
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
        let item = msg
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<WorkItem>(b).ok());
        match item {
            _ if poisoned_groups.contains(&group) => failures.push(id),
            Some(item) => records.push(BatchRecord { id, group, item }),
            None => {
                tracing::error!(sqs_message_id = %id, "queue record is not a work item; leaving it for the DLQ");
                poisoned_groups.push(group);
                failures.push(id);
            }
        }
    }
    failures.extend(run_batch(&records, handle).await);
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    fn msg(id: &str, group: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.attributes.insert("MessageGroupId".into(), group.into());
        m
    }

    #[tokio::test]
    async fn a_record_that_is_not_a_work_item_fails_with_the_rest_of_its_group() {
        let item = |id: &str| format!(r#"{{"org":"O","message_id":"{id}"}}"#);
        let mut event = SqsEvent::default();
        event.records = vec![
            msg("a1", "A", &item("a1")),
            msg("b1", "B", "not json"),
            msg("a2", "A", &item("a2")),
            msg("b2", "B", &item("b2")),
        ];
        let mut ran = Vec::new();
        let response = handle_sqs_batch(event, |item| {
            ran.push(item.message_id);
            async { Ok(StepOutcome::Done) }
        })
        .await;
        assert_eq!(ran, ["a1", "a2"]);
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["b1", "b2"]);
    }
}
