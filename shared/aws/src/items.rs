//! Keys, item encoding and the small request helpers every port uses.
use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tendon_core::ports::StoreResult;

use crate::{AwsStore, backend, build, codec, next_seq};

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn org_pk(org: &str) -> String {
    format!("ORG#{org}")
}
pub(crate) const ORG_SK: &str = "ORG";
pub(crate) const LOC_PREFIX: &str = "LOC#";
pub(crate) const PRAC_PREFIX: &str = "PRAC#";

pub(crate) fn key_pk(hash: &str) -> String {
    format!("KEY#{hash}")
}
pub(crate) const KEY_SK: &str = "KEY";
pub(crate) fn key_list_pk(org: &str) -> String {
    format!("ORG#{org}#KEYS")
}

pub(crate) fn message_pk(org: &str, id: &str) -> String {
    format!("ORG#{org}#MSG#{id}")
}
pub(crate) const MESSAGE_SK: &str = "MSG";
pub(crate) fn message_list_pk(org: &str) -> String {
    format!("ORG#{org}#MSGS")
}

pub(crate) fn patient_pk(org: &str, id: &str) -> String {
    format!("ORG#{org}#PAT#{id}")
}
pub(crate) const PATIENT_SK: &str = "REC";
/// Beside a patient ID's record: the messages parked for it (a string set).
pub(crate) const PARKED_SK: &str = "PARKED";
pub(crate) const PARKED_IDS: &str = "ids";
/// The org item's attribute that every configuration change sets anew.
pub(crate) const CONFIG_TOKEN: &str = "config_token";
/// Sort-key prefix of a large raw message's chunks, beside the message item.
pub(crate) const RAW_CHUNK_PREFIX: &str = "RAW#";
pub(crate) fn patient_list_pk(org: &str) -> String {
    format!("ORG#{org}#PATS")
}

pub(crate) fn event_pk(org: &str) -> String {
    format!("ORG#{org}#EVT")
}

/// Sort-key prefix of a workflow, in the org partition (`org_config` reads it).
pub(crate) const WORKFLOW_PREFIX: &str = "WF#";
/// Sort-key prefix of a scheduled step, in its patient's partition.
pub(crate) const STEP_PREFIX: &str = "STEP#";
/// Sort-key prefix of an assignment marker (a sent survey or exercise), in
/// the patient's partition.
pub(crate) const ASSIGNMENT_PREFIX: &str = "ASG#";
/// The `due` GSI and its key attributes (set only on scheduled steps).
pub(crate) const DUE_INDEX: &str = "due";
pub(crate) const DUE_PK: &str = "due_pk";
pub(crate) const DUE_AT: &str = "due_at";

/// The `by_org` GSI: one partition per org (the items' own `org`
/// attribute) whose sort key `org_sk` only messages (`MSG#<received>#<id>`),
/// patient records (`PAT#<id>`) and failed workflow steps (`STEP#<id>`)
/// carry, so it holds those and nothing else; the doctor's overview reads
/// an org in a few Query pages through it.
pub(crate) const BY_ORG_INDEX: &str = "by_org";
pub(crate) const BY_ORG_PK: &str = "org";
pub(crate) const BY_ORG_SK: &str = "org_sk";
pub(crate) const BY_ORG_MESSAGE: &str = "MSG#";
pub(crate) const BY_ORG_PATIENT: &str = "PAT#";
pub(crate) const BY_ORG_STEP: &str = "STEP#";
/// What the `by_org` index keeps of an item besides its keys: a message's
/// record without its raw body, a patient record's `patient` (not its
/// episodes and appointments). A failed step keeps only its keys.
pub(crate) const BY_ORG_PROJECTED: &[&str] = &[
    "id",
    "control_id",
    "type",
    "status",
    "errors",
    "received_at",
    "body_hash",
    "patient_id",
    "steps_done",
    "replays",
    "queued",
    "acknowledged",
    "facts",
    "patient",
];

/// Unix milliseconds as a fixed-width sort key (up to the year 2286).
pub(crate) fn ms_key(ms: i64) -> String {
    format!("{:013}", ms.clamp(0, 9_999_999_999_999))
}

/// An entry's `due` index sort key: when it can be claimed, then its ID (a
/// scheduled step's, or an unqueued message's).
pub(crate) fn due_key(ms: i64, id: &str) -> String {
    format!("{}#{id}", ms_key(ms))
}

pub(crate) fn delivery_pk(org: &str, id: &str) -> String {
    format!("ORG#{org}#DLV#{id}")
}
pub(crate) const DELIVERY_SK: &str = "DLV";
pub(crate) fn delivery_list_pk(org: &str) -> String {
    format!("ORG#{org}#DLVS")
}

pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// A listing item of `id`, sorted by `time_key` (an instant's sort key),
/// then the order written ([`next_seq`]), then the ID.
pub(crate) fn listing_item(list_pk: String, time_key: &str, id: &str) -> Item {
    let mut item = key(list_pk, format!("{time_key}#{:020}#{id}", next_seq()));
    item.insert("id".to_owned(), s(id));
    item
}

/// `value` as an item with the given key.
pub(crate) fn to_item<T: Serialize>(
    what: &str,
    value: &T,
    pk: String,
    sk: impl Into<String>,
) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::to_item(value).map_err(|_| codec(what))?;
    item.extend(key(pk, sk));
    Ok(item)
}

pub(crate) fn from_item<T: DeserializeOwned>(what: &str, item: Item) -> StoreResult<T> {
    serde_dynamo::from_item(item).map_err(|_| codec(what))
}

pub(crate) fn to_value<T: Serialize>(what: &str, value: &T) -> StoreResult<AttributeValue> {
    serde_dynamo::to_attribute_value(value).map_err(|_| codec(what))
}

pub(crate) fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A conditional request's output, or `None` if its condition failed.
pub(crate) fn conditional<O, E, R>(
    what: &str,
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> StoreResult<Option<O>>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error().and_then(|e| e.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(backend(what, &e)),
    }
}

/// `Ok(true)` if a conditional write happened, `Ok(false)` if its condition
/// failed.
pub(crate) fn written<O, E, R>(
    what: &str,
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> StoreResult<bool>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    conditional(what, result).map(|out| out.is_some())
}

impl AwsStore {
    /// An UpdateItem of the item (`pk`, `sk`), counted as one request and one
    /// item write; the caller adds the expressions and sends it.
    pub(crate) fn update_one(&self, pk: String, sk: impl Into<String>) -> UpdateItemFluentBuilder {
        self.count();
        self.count_writes(1);
        self.dynamo
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
    }

    /// A PutItem of `item`, counted as one request and one item write; the
    /// caller adds any condition and sends it.
    pub(crate) fn put_one(&self, item: Item) -> PutItemFluentBuilder {
        self.count();
        self.count_writes(1);
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
    }

    /// One PutItem, under `condition` if given: `Ok(false)` if the condition failed.
    pub(crate) async fn put_if(
        &self,
        what: &str,
        item: Item,
        condition: Option<&str>,
    ) -> StoreResult<bool> {
        let result = self
            .put_one(item)
            .set_condition_expression(condition.map(str::to_owned))
            .send()
            .await;
        written(what, result)
    }

    /// GetItem, strongly consistent.
    pub(crate) async fn get(&self, what: &str, pk: String, sk: &str) -> StoreResult<Option<Item>> {
        self.count();
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(what, &e))?;
        Ok(out.item)
    }

    /// Every item of a partition, in `sk` order (strongly consistent, all pages).
    pub(crate) async fn query_all(&self, what: &str, pk: String) -> StoreResult<Vec<Item>> {
        self.query_prefix(what, pk, "").await
    }

    /// The items of a partition whose `sk` starts with `prefix` (all of them
    /// if it is empty), in `sk` order (strongly consistent, all pages).
    pub(crate) async fn query_prefix(
        &self,
        what: &str,
        pk: String,
        prefix: &str,
    ) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        self.query_pages(what, self.partition_query(pk, prefix), |page| {
            out.extend(page.items.unwrap_or_default());
        })
        .await?;
        Ok(out)
    }

    /// A strongly consistent Query of the partition `pk`, of the items whose
    /// `sk` starts with `prefix` (all of them if it is empty); the caller may
    /// add a filter, then sends it with [`AwsStore::query_pages`].
    pub(crate) fn partition_query(&self, pk: String, prefix: &str) -> QueryFluentBuilder {
        let query = self
            .dynamo
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true);
        if prefix.is_empty() {
            query.key_condition_expression("#pk = :pk")
        } else {
            query
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":prefix", s(prefix))
        }
    }

    /// Sends `query` page by page (one counted request each) until the last,
    /// handing each page to `on_page`.
    pub(crate) async fn query_pages(
        &self,
        what: &str,
        query: QueryFluentBuilder,
        mut on_page: impl FnMut(QueryOutput),
    ) -> StoreResult<()> {
        let mut start = None;
        loop {
            self.count();
            let mut page = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend(what, &e))?;
            let next = page.last_evaluated_key.take();
            on_page(page);
            match next {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    /// The IDs a listing partition holds (its items' `id`), in listing order.
    pub(crate) async fn listed_ids(&self, what: &str, list_pk: String) -> StoreResult<Vec<String>> {
        Ok(self
            .query_all(what, list_pk)
            .await?
            .iter()
            .filter_map(|i| string_attr(i, "id").map(str::to_owned))
            .collect())
    }

    /// The items a listing partition names, in listing order: a Query of the
    /// listing, then BatchGets of the items (`key_of` an ID); `decode` reads
    /// one item as its ID and value. Listed items that are missing are left out.
    pub(crate) async fn listed<T>(
        &self,
        what: &str,
        list_pk: String,
        key_of: impl Fn(&str) -> Item,
        decode: impl Fn(Item) -> StoreResult<(String, T)>,
    ) -> StoreResult<Vec<T>> {
        let ids = self.listed_ids(what, list_pk).await?;
        let keys = ids.iter().map(|id| key_of(id)).collect();
        let mut by_id: HashMap<String, T> = HashMap::new();
        for item in self.batch_get(what, keys).await? {
            let (id, value) = decode(item)?;
            by_id.insert(id, value);
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// A Query of one partition of the `due` index (`shard`) for the entries
    /// claimable before `before` (a [`ms_key`]), oldest first, at most
    /// `limit`, projecting `projection` (which names at least `#pk` and
    /// `#sk`: the table key). Counted as one request; the caller adds the
    /// names of any other projected attributes and sends it.
    pub(crate) fn due_query(
        &self,
        shard: &str,
        before: &str,
        limit: usize,
        projection: &str,
    ) -> QueryFluentBuilder {
        self.count();
        self.dynamo
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("#dpk = :shard AND #dat < :before")
            .projection_expression(projection)
            .expression_attribute_names("#dpk", DUE_PK)
            .expression_attribute_names("#dat", DUE_AT)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":shard", s(shard))
            .expression_attribute_values(":before", s(before))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
    }

    /// BatchGetItem of `keys` (strongly consistent, unprocessed keys retried),
    /// in no particular order; missing items are left out.
    pub(crate) async fn batch_get(&self, what: &str, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            let mut rounds = 0;
            while !pending.is_empty() {
                rounds += 1;
                if rounds > 20 {
                    return Err(tendon_core::ports::StoreError::backend(
                        what,
                        "the batch read kept being throttled",
                    ));
                }
                if rounds > 1 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << rounds.min(6))).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|_| build(what))?;
                self.count();
                let got = self
                    .dynamo
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| backend(what, &e))?;
                if let Some(mut responses) = got.responses
                    && let Some(items) = responses.remove(&self.table)
                {
                    out.extend(items);
                }
                if let Some(mut left) = got.unprocessed_keys
                    && let Some(left) = left.remove(&self.table)
                {
                    pending = left.keys;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_instant_then_id() {
        let a = due_key(1_700_000_000_000, "b");
        let b = due_key(1_700_000_000_001, "a");
        assert!(a < b);
        assert_eq!(a.len(), 13 + 1 + 1);
        assert!(due_key(-5, "x") < a, "before 1970 clamps to the start");
        // Every key of an instant sorts before the next millisecond's bound.
        assert!(due_key(1_700_000_000_000, "\u{10ffff}") < ms_key(1_700_000_000_001));
    }
}
