//! [`TestData`]: deleting a test partition. Its items are found from its
//! listings (messages, patients) and its event partition, then deleted in
//! BatchWriteItem requests of 25. Not one transaction (DynamoDB's hold 100
//! items): a delete cut short leaves some of the partition, and running it
//! again deletes the rest. Pointers already on the SQS queues stay there
//! and are dropped when their message is not found.
use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use tendon_core::join::join_all;
use tendon_core::ports::{MessageLog, PartitionDeleted, StoreError, StoreResult, TestData};

use crate::items::{
    Item, PK, SK, event_pk, key, message_list_pk, message_pk, patient_list_pk, patient_pk,
    string_attr,
};
use crate::{AwsStore, backend, build};

const WHAT: &str = "delete_partition";
/// BatchWriteItem's limit.
const BATCH: usize = 25;
/// Partition queries in flight together.
const QUERIES_AT_ONCE: usize = 16;

impl TestData for AwsStore {
    async fn delete_partition(&self, partition: &str) -> StoreResult<PartitionDeleted> {
        let messages = self.list_messages(partition, None).await?;
        let patients = self.listed_ids(WHAT, patient_list_pk(partition)).await?;
        let mut pks: Vec<String> = messages
            .iter()
            .map(|m| message_pk(partition, &m.id))
            .collect();
        // Patient partitions: records, parked messages, steps (a patient ID
        // a message names may have only its parked messages).
        let patient_ids: BTreeSet<&str> = patients
            .iter()
            .map(String::as_str)
            .chain(messages.iter().filter_map(|m| m.patient_id.as_deref()))
            .collect();
        pks.extend(patient_ids.iter().map(|id| patient_pk(partition, id)));
        pks.extend([
            message_list_pk(partition),
            patient_list_pk(partition),
            event_pk(partition),
        ]);
        // The partitions' queries, QUERIES_AT_ONCE at a time rather than one
        // after another: a test partition of a few hundred messages is
        // otherwise as many sequential round trips.
        let mut keys = Vec::new();
        for group in pks.chunks(QUERIES_AT_ONCE) {
            let pages = join_all(
                group
                    .iter()
                    .map(|pk| self.query_all(WHAT, pk.clone()))
                    .collect(),
            )
            .await;
            for items in pages {
                for item in items? {
                    if let (Some(pk), Some(sk)) = (string_attr(&item, PK), string_attr(&item, SK)) {
                        keys.push(key(pk.to_owned(), sk));
                    }
                }
            }
        }
        self.batch_delete(keys).await?;
        Ok(PartitionDeleted {
            messages: messages.len(),
            patients: patients.len(),
        })
    }
}

impl AwsStore {
    /// Deletes the items with these keys, 25 a request, retrying what
    /// DynamoDB leaves unprocessed (throttling) with a growing pause.
    async fn batch_delete(&self, keys: Vec<Item>) -> StoreResult<()> {
        for chunk in keys.chunks(BATCH) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map_err(|_| build(WHAT))?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<StoreResult<_>>()?;
            let mut rounds = 0u32;
            while !pending.is_empty() {
                rounds += 1;
                if rounds > 20 {
                    return Err(StoreError::backend(
                        WHAT,
                        "the batch delete kept being throttled; run it again",
                    ));
                }
                if rounds > 1 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << rounds.min(6))).await;
                }
                self.count();
                self.count_writes(pending.len());
                let out = self
                    .dynamo
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| backend(WHAT, &e))?;
                if let Some(mut left) = out.unprocessed_items
                    && let Some(left) = left.remove(&self.table)
                {
                    pending = left;
                }
            }
        }
        Ok(())
    }
}
