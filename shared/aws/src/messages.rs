//! [`MessageLog`]: the message item (`ORG#<org>#MSG#<id>` / `MSG`, raw bytes
//! as a Binary attribute) and its listing item (`ORG#<org>#MSGS` /
//! `<received>#<seq>#<id>`), written together.
//!
//! [`Intake`]: DynamoDB and SQS share no transaction, so ingest stores the
//! message `queued: false, acknowledged: false` first, with the keys of the
//! sparse `due` index under the [`INTAKE_SHARD`] partition; then sends its
//! pointer; then records it queued and acknowledged, which takes it out of the
//! index. A message the process never got to queue stays in the index, where
//! the sweeper (`intake::sweep_unqueued`, run by the dispatch function each
//! minute) finds it.
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;
use tendon_core::model::{MessageStatus, StoredMessage};
use tendon_core::ports::{
    HandOff, Inserted, Intake, MessageLog, StoreError, StoreResult, Unqueued, WorkQueue,
};

use crate::config::transact_put;
use crate::items::{
    BY_ORG_MESSAGE, BY_ORG_SK, DUE_AT, DUE_PK, Item, MESSAGE_SK, PK, RAW_CHUNK_PREFIX, SK, due_key,
    from_item, key, listing_item, message_list_pk, message_pk, ms_key, s, string_attr, to_item,
    to_value,
};
use crate::{AwsStore, backend};

const RAW: &str = "raw";

/// The sort key of `received_at`: Unix nanoseconds shifted to be unsigned and
/// zero-padded (so text order is time order), or all zeros (first) if it is
/// not an RFC 3339 instant.
pub(crate) fn received_key(received_at: &str) -> String {
    match received_at.parse::<jiff::Timestamp>() {
        Ok(t) => instant_key(t),
        Err(_) => "0".repeat(20),
    }
}

/// The sort key of an instant, as [`received_key`] makes it.
pub(crate) fn instant_key(at: jiff::Timestamp) -> String {
    let nanos = at.as_nanosecond() + (1i128 << 63);
    format!("{nanos:020}")
}

/// The most raw bytes kept inside the message item. A DynamoDB item is at most
/// 400 KB, so a larger message (ingest takes up to 1 MiB) is stored in chunks
/// of this size beside it, written in the same transaction.
const RAW_INLINE_MAX: usize = 300 * 1024;
/// Attribute of a chunked message item: how many chunks there are.
const RAW_CHUNKS: &str = "raw_chunks";

fn blob(item: &mut Item) -> Vec<u8> {
    match item.remove(RAW) {
        Some(AttributeValue::B(blob)) => blob.into_inner(),
        _ => Vec::new(),
    }
}

/// A message item read back without its raw bytes, and how many raw chunks it has.
pub(crate) fn decode_head(
    what: &str,
    mut item: Item,
) -> StoreResult<(StoredMessage, usize, Vec<u8>)> {
    let raw = blob(&mut item);
    let chunks = item
        .remove(RAW_CHUNKS)
        .and_then(|v| v.as_n().ok().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    Ok((from_item(what, item)?, chunks, raw))
}

fn chunk_sk(i: usize) -> String {
    format!("{RAW_CHUNK_PREFIX}{i:04}")
}

impl AwsStore {
    /// A message item read back, raw bytes included (one more BatchGet for a
    /// chunked message).
    pub(crate) async fn decode_message(
        &self,
        what: &str,
        item: Item,
    ) -> StoreResult<StoredMessage> {
        let (mut message, chunks, raw) = decode_head(what, item)?;
        if chunks == 0 {
            message.raw = raw;
            return Ok(message);
        }
        let pk = message_pk(&message.org, &message.id);
        let keys = (0..chunks).map(|i| key(pk.clone(), chunk_sk(i))).collect();
        let mut parts: Vec<(String, Vec<u8>)> = self
            .batch_get(what, keys)
            .await?
            .into_iter()
            .map(|mut i| {
                (
                    string_attr(&i, "sk").unwrap_or_default().to_owned(),
                    blob(&mut i),
                )
            })
            .collect();
        if parts.len() != chunks {
            return Err(StoreError::backend(
                what,
                format!(
                    "{} of the message's {chunks} raw chunks were found",
                    parts.len()
                ),
            ));
        }
        parts.sort();
        message.raw = parts.into_iter().flat_map(|(_, b)| b).collect();
        Ok(message)
    }
}

impl MessageLog for AwsStore {
    /// One transaction: the message item (if it does not exist) and its listing
    /// item. On a duplicate, one more read returns the stored message.
    async fn insert_message(&self, message: &StoredMessage) -> StoreResult<Inserted> {
        const WHAT: &str = "insert_message";
        let mut item = to_item(
            WHAT,
            message,
            message_pk(&message.org, &message.id),
            MESSAGE_SK,
        )?;
        let chunks: Vec<&[u8]> = if message.raw.len() > RAW_INLINE_MAX {
            message.raw.chunks(RAW_INLINE_MAX).collect()
        } else {
            Vec::new()
        };
        if !message.queued {
            unqueued_keys(&mut item, message.received_at.as_millisecond(), &message.id);
        }
        item.insert(
            BY_ORG_SK.to_owned(),
            s(format!(
                "{BY_ORG_MESSAGE}{}#{}",
                instant_key(message.received_at),
                message.id
            )),
        );
        if chunks.is_empty() {
            item.insert(
                RAW.to_owned(),
                AttributeValue::B(Blob::new(message.raw.clone())),
            );
        } else {
            item.insert(
                RAW_CHUNKS.to_owned(),
                AttributeValue::N(chunks.len().to_string()),
            );
        }
        let listing = listing_item(
            message_list_pk(&message.org),
            &instant_key(message.received_at),
            &message.id,
        );
        let mut items = vec![
            transact_put(self, WHAT, item, Some("attribute_not_exists(pk)"))?,
            transact_put(self, WHAT, listing, None)?,
        ];
        // Same transaction: no chunk is written unless the message is new.
        for (i, part) in chunks.iter().enumerate() {
            let mut chunk = key(message_pk(&message.org, &message.id), chunk_sk(i));
            chunk.insert(RAW.to_owned(), AttributeValue::B(Blob::new(part.to_vec())));
            items.push(transact_put(self, WHAT, chunk, None)?);
        }
        match self.transact(WHAT, items).await? {
            None => Ok(Inserted::New),
            Some(_) => match self.get_message(&message.org, &message.id).await? {
                Some(existing) => Ok(Inserted::Existing(existing)),
                // Cancelled by a concurrent write of the same message: retried by the caller.
                None => Err(StoreError::backend(WHAT, "the transaction was cancelled")),
            },
        }
    }

    async fn get_message(&self, org: &str, id: &str) -> StoreResult<Option<StoredMessage>> {
        const WHAT: &str = "get_message";
        match self.get(WHAT, message_pk(org, id), MESSAGE_SK).await? {
            Some(item) => self.decode_message(WHAT, item).await.map(Some),
            None => Ok(None),
        }
    }

    /// Oldest first by `received_at`, then by insertion; `raw` is left empty.
    /// A Query of the listing and BatchGets of the messages.
    async fn list_messages(
        &self,
        org: &str,
        status: Option<MessageStatus>,
    ) -> StoreResult<Vec<StoredMessage>> {
        const WHAT: &str = "list_messages";
        let messages = self
            .listed(
                WHAT,
                message_list_pk(org),
                |id| key(message_pk(org, id), MESSAGE_SK),
                |item| {
                    let (m, _, _) = decode_head(WHAT, item)?;
                    Ok((m.id.clone(), m))
                },
            )
            .await?;
        Ok(messages
            .into_iter()
            .filter(|m| status.is_none_or(|s| m.status == s))
            .collect())
    }

    /// The patient ID's parked-messages item (a string set the commits keep).
    async fn pending_messages(&self, org: &str, patient_id: &str) -> StoreResult<Vec<String>> {
        self.parked(org, patient_id).await
    }

    /// One conditional Update: accepted, no errors, no steps, `replays` + 1,
    /// and unqueued (on the sweeper's list) until replay has sent it.
    async fn reset_message(&self, org: &str, id: &str) -> StoreResult<()> {
        const WHAT: &str = "reset_message";
        let result = self
            .update_one(message_pk(org, id), MESSAGE_SK)
            .update_expression(
                "SET #st = :accepted, #er = :none, #sd = :none, #rp = if_not_exists(#rp, :zero) + :one, #q = :no, #dpk = :dpk, #dat = :dat REMOVE #claim",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#q", "queued")
            .expression_attribute_names("#dpk", crate::items::DUE_PK)
            .expression_attribute_names("#dat", crate::items::DUE_AT)
            .expression_attribute_names("#claim", "sweep_until")
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":dpk", s(INTAKE_SHARD))
            .expression_attribute_values(":dat", s(due_key(jiff::Timestamp::now().as_millisecond(), id)))
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#er", "errors")
            .expression_attribute_names("#sd", "steps_done")
            .expression_attribute_names("#rp", "replays")
            .expression_attribute_values(":accepted", to_value(WHAT, &MessageStatus::Accepted)?)
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":zero", AttributeValue::N("0".to_owned()))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .send()
            .await;
        if crate::items::written(WHAT, result)? {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("message {id}")))
        }
    }
}

/// The `due` index partition of stored, unqueued messages. Workflow steps use
/// `DUE#0`..`DUE#3`, so the dispatcher never reads these, nor the sweeper steps.
pub(crate) const INTAKE_SHARD: &str = "INTAKE";
/// The sweeper's claim on a message (Unix milliseconds).
const CLAIM: &str = "sweep_until";

/// The index keys that put a message on the sweeper's list from `ms` on.
pub(crate) fn unqueued_keys(item: &mut Item, ms: i64, id: &str) {
    item.insert(DUE_PK.to_owned(), s(INTAKE_SHARD));
    item.insert(DUE_AT.to_owned(), s(due_key(ms, id)));
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
        let before = ms_key(stored_before.as_millisecond());
        let page = self
            .due_query(
                INTAKE_SHARD,
                &before,
                limit,
                "#pk, #sk, #org, #id, #pid, #rp",
            )
            .expression_attribute_names("#org", "org")
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#pid", "patient_id")
            .expression_attribute_names("#rp", "replays")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_keys_sort_by_instant() {
        let a = received_key("2026-11-20T17:30:00Z");
        let b = received_key("2026-11-20T09:30:00.25-08:00");
        let c = received_key("2026-11-20T17:30:00.5Z");
        let old = received_key("1960-01-01T00:00:00Z");
        assert!(old < a && a < b && b < c, "{old} {a} {b} {c}");
        assert_eq!(a.len(), 20);
        assert_eq!(received_key("not a time"), "0".repeat(20));
    }
}
