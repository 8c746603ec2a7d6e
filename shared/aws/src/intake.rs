//! [`Intake`]: DynamoDB and SQS share no transaction, so ingest stores the
//! message `queued: false, acknowledged: false` first, with the keys of the
//! sparse `due` index under the [`INTAKE_SHARD`] partition; then sends its
//! pointer; then records it queued and acknowledged, which takes it out of the
//! index. A message the process never got to queue stays in the index, where
//! the sweeper (`intake::sweep_unqueued`, run by the dispatch function each
//! minute) finds it.
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;
use tendon_core::model::StoredMessage;
use tendon_core::ports::{HandOff, Inserted, Intake, MessageLog, StoreResult, Unqueued, WorkQueue};

use crate::items::{
    DUE_AT, DUE_INDEX, DUE_PK, Item, MESSAGE_SK, PK, SK, message_pk, s, string_attr,
};
use crate::workflows::ms_key;
use crate::{AwsStore, backend};

/// The `due` index partition of stored, unqueued messages. Workflow steps use
/// `DUE#0`..`DUE#3`, so the dispatcher never reads these, nor the sweeper steps.
pub(crate) const INTAKE_SHARD: &str = "INTAKE";
/// The sweeper's claim on a message (Unix milliseconds).
const CLAIM: &str = "sweep_until";

/// The index sort key of a message unqueued since `ms`.
pub(crate) fn unqueued_key(ms: i64, id: &str) -> String {
    format!("{}#{id}", ms_key(ms))
}

/// The index keys that put a message on the sweeper's list from `ms` on.
pub(crate) fn unqueued_keys(item: &mut Item, ms: i64, id: &str) {
    item.insert(DUE_PK.to_owned(), s(INTAKE_SHARD));
    item.insert(DUE_AT.to_owned(), s(unqueued_key(ms, id)));
}

impl Intake for AwsStore {
    async fn store_and_queue(
        &self,
        message: &StoredMessage,
        hand_off: Option<&HandOff>,
    ) -> StoreResult<Inserted> {
        let Some(hand_off) = hand_off else {
            return self.insert_message(message).await;
        };
        let mut stored = message.clone();
        stored.queued = false;
        stored.acknowledged = false;
        let inserted = self.insert_message(&stored).await?;
        if inserted == Inserted::New {
            self.queue_stored(&message.org, &message.id, hand_off, true)
                .await?;
        }
        Ok(inserted)
    }

    /// SendMessage, then one Update: `queued` (and `acknowledged`) set, the
    /// index keys and any claim removed.
    async fn queue_stored(
        &self,
        org: &str,
        id: &str,
        hand_off: &HandOff,
        acknowledge: bool,
    ) -> StoreResult<()> {
        const WHAT: &str = "queue_stored";
        self.send(
            hand_off.queue,
            &hand_off.group,
            &hand_off.dedupe_id,
            &hand_off.item,
        )
        .await?;
        let set = if acknowledge {
            "SET #q = :yes, #ack = :yes REMOVE #dpk, #dat, #claim"
        } else {
            "SET #q = :yes REMOVE #dpk, #dat, #claim"
        };
        let mut update = self
            .update_one(message_pk(org, id), MESSAGE_SK)
            .update_expression(set)
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#q", "queued")
            .expression_attribute_names("#dpk", DUE_PK)
            .expression_attribute_names("#dat", DUE_AT)
            .expression_attribute_names("#claim", CLAIM)
            .expression_attribute_values(":yes", AttributeValue::Bool(true));
        if acknowledge {
            update = update.expression_attribute_names("#ack", "acknowledged");
        }
        // A message deleted meanwhile has nothing left to record.
        crate::items::written(WHAT, update.send().await).map(|_| ())
    }

    async fn set_acknowledged(&self, org: &str, id: &str, acknowledged: bool) -> StoreResult<()> {
        const WHAT: &str = "set_acknowledged";
        let result = self
            .update_one(message_pk(org, id), MESSAGE_SK)
            .update_expression("SET #ack = :ack")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ack", "acknowledged")
            .expression_attribute_values(":ack", AttributeValue::Bool(acknowledged))
            .send()
            .await;
        crate::items::written(WHAT, result).map(|_| ())
    }

    /// A Query of the [`INTAKE_SHARD`] partition of the `due` index, then a
    /// conditional Update per message: it claims the message only if it is
    /// still unqueued and nobody holds an unexpired claim (the item decides,
    /// not the eventually consistent index).
    async fn claim_unqueued(
        &self,
        stored_before: Timestamp,
        now: Timestamp,
        claim_until: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<Unqueued>> {
        const WHAT: &str = "claim_unqueued";
        self.count();
        let page = self
            .dynamo
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("#dpk = :shard AND #dat < :before")
            .projection_expression("#pk, #sk, #org, #id, #pid, #rp")
            .expression_attribute_names("#dpk", DUE_PK)
            .expression_attribute_names("#dat", DUE_AT)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#org", "org")
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#pid", "patient_id")
            .expression_attribute_names("#rp", "replays")
            .expression_attribute_values(":shard", s(INTAKE_SHARD))
            .expression_attribute_values(":before", s(ms_key(stored_before.as_millisecond())))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| backend(WHAT, &e))?;
        let mut claimed = Vec::new();
        for item in page.items.unwrap_or_default() {
            let (Some(pk), Some(sk), Some(org), Some(id)) = (
                string_attr(&item, PK),
                string_attr(&item, SK),
                string_attr(&item, "org"),
                string_attr(&item, "id"),
            ) else {
                continue;
            };
            let result = self
                .update_one(pk.to_owned(), sk)
                .update_expression("SET #claim = :until")
                .condition_expression(
                    "#q = :no AND (attribute_not_exists(#claim) OR #claim <= :now)",
                )
                .expression_attribute_names("#q", "queued")
                .expression_attribute_names("#claim", CLAIM)
                .expression_attribute_values(":no", AttributeValue::Bool(false))
                .expression_attribute_values(
                    ":until",
                    AttributeValue::N(claim_until.as_millisecond().to_string()),
                )
                .expression_attribute_values(
                    ":now",
                    AttributeValue::N(now.as_millisecond().to_string()),
                )
                .send()
                .await;
            if crate::items::written(WHAT, result)? {
                claimed.push(Unqueued {
                    org: org.to_owned(),
                    id: id.to_owned(),
                    patient_id: string_attr(&item, "patient_id").map(str::to_owned),
                    replays: item
                        .get("replays")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                });
            }
        }
        Ok(claimed)
    }
}
