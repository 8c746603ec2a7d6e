//! [`MessageLog`]: the message item (`ORG#<org>#MSG#<id>` / `MSG`, raw bytes
//! as a Binary attribute) and its listing item (`ORG#<org>#MSGS` /
//! `<received>#<seq>#<id>`), written together.
use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use tendon_core::model::{MessageStatus, StoredMessage};
use tendon_core::ports::{Inserted, MessageLog, StoreError, StoreResult};

use crate::items::{
    Item, MESSAGE_SK, RAW_CHUNK_PREFIX, from_item, key, message_list_pk, message_pk, s,
    string_attr, to_item, to_value,
};
use crate::{AwsStore, build, next_seq};

const RAW: &str = "raw";

/// The sort key of `received_at`: Unix nanoseconds shifted to be unsigned and
/// zero-padded (so text order is time order), or all zeros (first) if it is
/// not an RFC 3339 instant.
pub(crate) fn received_key(received_at: &str) -> String {
    let nanos = received_at
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_nanosecond() + (1i128 << 63))
        .unwrap_or(0);
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
fn decode_head(what: &str, mut item: Item) -> StoreResult<(StoredMessage, usize, Vec<u8>)> {
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
            return Err(StoreError::Backend(format!(
                "{what}: {} of the message's {chunks} raw chunks were found",
                parts.len()
            )));
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
            let ms = message
                .received_at
                .parse::<jiff::Timestamp>()
                .map_or(0, |t| t.as_millisecond());
            crate::intake::unqueued_keys(&mut item, ms, &message.id);
        }
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
        let mut listing = key(
            message_list_pk(&message.org),
            format!(
                "{}#{:020}#{}",
                received_key(&message.received_at),
                next_seq(),
                message.id
            ),
        );
        listing.insert("id".to_owned(), s(message.id.clone()));
        let put = |item: Item, condition: Option<&str>| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_owned))
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|_| build(WHAT))
        };
        let mut items = vec![
            put(item, Some("attribute_not_exists(pk)"))?,
            put(listing, None)?,
        ];
        // Same transaction: no chunk is written unless the message is new.
        for (i, part) in chunks.iter().enumerate() {
            let mut chunk = key(message_pk(&message.org, &message.id), chunk_sk(i));
            chunk.insert(RAW.to_owned(), AttributeValue::B(Blob::new(part.to_vec())));
            items.push(put(chunk, None)?);
        }
        match self.transact(WHAT, items).await? {
            None => Ok(Inserted::New),
            Some(_) => match self.get_message(&message.org, &message.id).await? {
                Some(existing) => Ok(Inserted::Existing(existing)),
                // Cancelled by a concurrent write of the same message: retried by the caller.
                None => Err(StoreError::Backend(format!(
                    "{WHAT}: the transaction was cancelled"
                ))),
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
        let ids: Vec<String> = self
            .query_all(WHAT, message_list_pk(org))
            .await?
            .iter()
            .filter_map(|i| string_attr(i, "id").map(str::to_owned))
            .collect();
        let keys = ids
            .iter()
            .map(|id| key(message_pk(org, id), MESSAGE_SK))
            .collect();
        let mut by_id: HashMap<String, StoredMessage> = HashMap::new();
        for item in self.batch_get(WHAT, keys).await? {
            let (m, _, _) = decode_head(WHAT, item)?;
            by_id.insert(m.id.clone(), m);
        }
        Ok(ids
            .iter()
            .filter_map(|id| by_id.remove(id))
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
            .expression_attribute_values(":dpk", s(crate::intake::INTAKE_SHARD))
            .expression_attribute_values(":dat", s(crate::intake::unqueued_key(jiff::Timestamp::now().as_millisecond(), id)))
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
