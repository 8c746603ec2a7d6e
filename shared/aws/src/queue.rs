//! [`WorkQueue`] on SQS FIFO, and the consumer side the Lambda handlers and
//! tests use (what an event source mapping does: receive, then delete on
//! success; a message not deleted comes back after the visibility timeout and
//! moves to the DLQ after `maxReceiveCount` receives).
use aws_sdk_sqs::types::MessageSystemAttributeName;
use tendon_core::doctor::{QueueDepth, QueueDepths};
use tendon_core::ports::{QueueName, StoreError, StoreResult, WorkItem, WorkQueue};

use crate::{AwsStore, backend};

/// SQS's limit on message group and deduplication IDs.
const MAX_ID_LEN: usize = 128;

/// `id` as an SQS FIFO group or deduplication ID: as it is if it is at most
/// 128 characters of ASCII alphanumerics and punctuation, else `sha256:` and
/// its SHA-256 (hex), which is valid and still one-to-one in practice.
pub fn queue_safe_id(id: &str) -> String {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if valid {
        id.to_owned()
    } else {
        format!("sha256:{}", tendon_core::hash::sha256_hex(id.as_bytes()))
    }
}

pub use tendon_core::batch::Received;

impl WorkQueue for AwsStore {
    /// SendMessage: the item as JSON, `group` as the message group and
    /// `dedupe_id` as the deduplication ID (both through [`queue_safe_id`]).
    async fn send(
        &self,
        queue: QueueName,
        group: &str,
        dedupe_id: &str,
        item: &WorkItem,
    ) -> StoreResult<()> {
        const WHAT: &str = "queue send";
        let body = serde_json::to_string(item)
            .map_err(|_| StoreError::backend(WHAT, "the item could not be encoded"))?;
        self.count();
        self.sqs()
            .send_message()
            .queue_url(self.queue_url(queue))
            .message_body(body)
            .message_group_id(queue_safe_id(group))
            .message_deduplication_id(queue_safe_id(dedupe_id))
            .send()
            .await
            .map_err(|e| backend(WHAT, &e))?;
        Ok(())
    }
}

impl AwsStore {
    /// ReceiveMessage: up to `max` (1..=10) messages, waiting up to
    /// `wait_seconds` (0..=20) for the first. A body that is not a work item is
    /// a `Backend` error (it stays on the queue and ends in the DLQ).
    pub async fn receive_batch(
        &self,
        queue: QueueName,
        max: i32,
        wait_seconds: i32,
    ) -> StoreResult<Vec<Received>> {
        const WHAT: &str = "queue receive";
        self.count();
        let out = self
            .sqs()
            .receive_message()
            .queue_url(self.queue_url(queue))
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_seconds.clamp(0, 20))
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| backend(WHAT, &e))?;
        let mut got = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let item: WorkItem = serde_json::from_str(m.body().unwrap_or_default())
                .map_err(|_| StoreError::backend(WHAT, "a message body is not a work item"))?;
            let attr = |name: &MessageSystemAttributeName| {
                m.attributes()
                    .and_then(|a| a.get(name))
                    .cloned()
                    .unwrap_or_default()
            };
            let group = attr(&MessageSystemAttributeName::MessageGroupId);
            let receive_count = attr(&MessageSystemAttributeName::ApproximateReceiveCount)
                .parse()
                .unwrap_or(1);
            let receipt = m.receipt_handle.unwrap_or_default();
            got.push(Received {
                receipt,
                item,
                group,
                receive_count,
            });
        }
        Ok(got)
    }

    /// DeleteMessage: the delivery is done.
    pub async fn delete(&self, queue: QueueName, receipt: &str) -> StoreResult<()> {
        self.count();
        self.sqs()
            .delete_message()
            .queue_url(self.queue_url(queue))
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| backend("queue delete", &e))?;
        Ok(())
    }

    /// DeleteMessageBatch, ten receipts per request. A receipt SQS could not
    /// delete is an error (its message comes back and is handled again, which
    /// the steps' guards make harmless).
    pub async fn delete_many(&self, queue: QueueName, receipts: &[String]) -> StoreResult<()> {
        const WHAT: &str = "queue delete";
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                        .map_err(|_| crate::build(WHAT))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            self.count();
            let out = self
                .sqs()
                .delete_message_batch()
                .queue_url(self.queue_url(queue))
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend(WHAT, &e))?;
            if !out.failed.is_empty() {
                return Err(StoreError::backend(
                    WHAT,
                    format!(
                        "{} of {} receipts were not deleted",
                        out.failed.len(),
                        chunk.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// SQS's own attributes: GetQueueAttributes of each queue (its approximate
/// counts and its redrive policy), then of the dead-letter queue the policy
/// names. SQS reports the oldest record's age only to CloudWatch, so
/// `oldest` stays unknown here (the queue-age alarms watch it).
impl QueueDepths for AwsStore {
    async fn depths(&self) -> StoreResult<Vec<QueueDepth>> {
        const WHAT: &str = "queue depths";
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let mut out = Vec::new();
        for queue in [QueueName::Patients, QueueName::Episodes] {
            let attrs = self
                .queue_attributes(
                    WHAT,
                    self.queue_url(queue),
                    &[
                        A::ApproximateNumberOfMessages,
                        A::ApproximateNumberOfMessagesNotVisible,
                        A::RedrivePolicy,
                    ],
                )
                .await?;
            let count = |name: A| {
                attrs
                    .get(&name)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0u64)
            };
            // {"deadLetterTargetArn":"arn:aws:sqs:REGION:ACCOUNT:NAME",...}
            let dlq = attrs
                .get(&A::RedrivePolicy)
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .and_then(|p| {
                    p["deadLetterTargetArn"]
                        .as_str()
                        .and_then(|arn| arn.rsplit(':').next())
                        .map(str::to_owned)
                });
            let dead_lettered = match dlq {
                None => 0,
                Some(name) => {
                    let url = self
                        .sqs()
                        .get_queue_url()
                        .queue_name(name)
                        .send()
                        .await
                        .map_err(|e| backend(WHAT, &e))?;
                    let dlq_attrs = self
                        .queue_attributes(
                            WHAT,
                            url.queue_url().unwrap_or_default(),
                            &[A::ApproximateNumberOfMessages],
                        )
                        .await?;
                    dlq_attrs
                        .get(&A::ApproximateNumberOfMessages)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                }
            };
            out.push(QueueDepth {
                queue,
                waiting: count(A::ApproximateNumberOfMessages),
                in_flight: count(A::ApproximateNumberOfMessagesNotVisible),
                dead_lettered,
                oldest: None,
            });
        }
        Ok(out)
    }
}

impl AwsStore {
    async fn queue_attributes(
        &self,
        what: &str,
        url: &str,
        names: &[aws_sdk_sqs::types::QueueAttributeName],
    ) -> StoreResult<std::collections::HashMap<aws_sdk_sqs::types::QueueAttributeName, String>>
    {
        let out = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| backend(what, &e))?;
        Ok(out.attributes.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_pass_unchanged() {
        assert_eq!(queue_safe_id("ACME01#P555"), "ACME01#P555");
        assert_eq!(queue_safe_id("m1:replay:2"), "m1:replay:2");
        let max = "a".repeat(128);
        assert_eq!(queue_safe_id(&max), max);
    }

    #[test]
    fn long_or_invalid_ids_are_hashed() {
        for id in [
            "a".repeat(129),
            "has space".to_owned(),
            "é".to_owned(),
            String::new(),
        ] {
            let safe = queue_safe_id(&id);
            assert!(safe.starts_with("sha256:") && safe.len() == 71, "{safe}");
            assert_eq!(safe, queue_safe_id(&id), "stable");
        }
        assert_ne!(
            queue_safe_id(&"a".repeat(129)),
            queue_safe_id(&"a".repeat(130))
        );
    }
}
