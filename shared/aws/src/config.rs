//! [`ConfigStore`]: orgs, ingest keys (hashes), locations, practitioners and
//! (read here, written in `workflows`) workflows, all under `ORG#<org>`
//! except the keys (`KEY#<hash>`); and the in-process caches of those reads
//! ([`Caches`]), which keep a warm Lambda's requests per message down:
//!
//! - **Configuration by token** (always on): every configuration change writes
//!   a fresh `config_token` on the org item. A processing step reads the org
//!   item in the same BatchGetItem as the message and the patient, and uses the
//!   cached configuration only if its token still matches, so a step never
//!   decides on a stale configuration.
//! - **Ingest** (opt-in, [`AwsStore::with_ingest_cache`](crate::AwsStore::with_ingest_cache)):
//!   ingest keys found and org configurations are kept for a short TTL. Ingest
//!   uses the configuration only for its synchronous checks; the steps re-read
//!   the message with the current one. A revoked key or a changed field map
//!   takes effect at ingest within the TTL.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem, Update};
use serde::Serialize;
use tendon_core::mode::{self, Mode};
use tendon_core::org::{Location, Org, OrgConfig, Practitioner};
use tendon_core::ports::{ConfigStore, IngestKey, StoreError, StoreResult};
use tendon_core::workflow::Workflow;

use crate::items::{
    CONFIG_TOKEN, Item, KEY_SK, LOC_PREFIX, ORG_SK, PRAC_PREFIX, WORKFLOW_PREFIX, from_item, key,
    key_list_pk, key_pk, org_pk, s, string_attr, to_item,
};
use crate::{AwsStore, backend, build, next_seq};

/// Why one item of a cancelled transaction failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Not this item.
    Fine,
    /// Its condition expression was false.
    Condition,
    /// Another transaction or write touched it at the same time.
    Conflict,
    Other,
}

/// The per-item reasons of a cancelled transaction.
pub(crate) fn cancellation(err: &TransactWriteItemsError) -> Option<Vec<Reason>> {
    match err {
        TransactWriteItemsError::TransactionCanceledException(e) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| match r.code() {
                    None | Some("None") => Reason::Fine,
                    Some("ConditionalCheckFailed") => Reason::Condition,
                    Some("TransactionConflict") => Reason::Conflict,
                    Some(_) => Reason::Other,
                })
                .collect(),
        ),
        _ => None,
    }
}

pub(crate) fn org_not_found(org: &str) -> StoreError {
    StoreError::NotFound(format!("org {org}"))
}

pub(crate) fn org_exists_check(
    store: &AwsStore,
    what: &str,
    org: &str,
) -> StoreResult<TransactWriteItem> {
    let check = ConditionCheck::builder()
        .table_name(&store.table)
        .set_key(Some(key(org_pk(org), ORG_SK)))
        .condition_expression("attribute_exists(pk)")
        .build()
        .map_err(|_| build(what))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// A fresh configuration token: unique per change, so a cached configuration
/// is known current when the org item still carries its token.
fn new_config_token() -> String {
    format!("{:x}-{:x}", next_seq(), std::process::id())
}

/// The org must exist, and its configuration token changes with this write.
pub(crate) fn org_changed(
    store: &AwsStore,
    what: &str,
    org: &str,
) -> StoreResult<TransactWriteItem> {
    let update = Update::builder()
        .table_name(&store.table)
        .set_key(Some(key(org_pk(org), ORG_SK)))
        .condition_expression("attribute_exists(pk)")
        .update_expression("SET #t = :t")
        .expression_attribute_names("#t", CONFIG_TOKEN)
        .expression_attribute_values(":t", s(new_config_token()))
        .build()
        .map_err(|_| build(what))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// The org item: the org and a fresh configuration token.
fn org_item(what: &str, org: &Org) -> StoreResult<Item> {
    let mut item = to_item(what, org, org_pk(&org.id), ORG_SK)?;
    item.insert(CONFIG_TOKEN.to_owned(), s(new_config_token()));
    Ok(item)
}

/// One Put of a transaction, under `condition` if given.
pub(crate) fn transact_put(
    store: &AwsStore,
    what: &str,
    item: Item,
    condition: Option<&str>,
) -> StoreResult<TransactWriteItem> {
    let put = Put::builder()
        .table_name(&store.table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|_| build(what))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

impl AwsStore {
    /// Sends a transaction; `Ok(None)` if it went through, `Ok(Some(reasons))`
    /// if it was cancelled by conditions or conflicts (and nothing else).
    pub(crate) async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> StoreResult<Option<Vec<Reason>>> {
        self.count();
        self.count_writes(items.len());
        match self
            .dynamo
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(e) => {
                if let Some(reasons) = e.as_service_error().and_then(cancellation)
                    && !reasons.contains(&Reason::Other)
                    && reasons.iter().any(|r| *r != Reason::Fine)
                {
                    return Ok(Some(reasons));
                }
                Err(backend(what, &e))
            }
        }
    }

    /// [`AwsStore::transact`] where only condition failures are expected:
    /// `Ok(Some(failed))` flags the items whose condition was false.
    pub(crate) async fn transact_conditions(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> StoreResult<Option<Vec<bool>>> {
        match self.transact(what, items).await? {
            None => Ok(None),
            Some(reasons) if reasons.contains(&Reason::Condition) => Ok(Some(
                reasons.iter().map(|r| *r == Reason::Condition).collect(),
            )),
            // Cancelled by another transaction on the same items (DynamoDB's reason code).
            Some(_) => Err(StoreError::backend_code(
                what,
                "TransactionConflict",
                "TransactionConflict",
            )),
        }
    }

    /// Puts a location or practitioner of an existing org.
    async fn put_child<T: Serialize>(
        &self,
        what: &str,
        org: &str,
        sk: String,
        value: &T,
    ) -> StoreResult<()> {
        let item = to_item(what, value, org_pk(org), sk)?;
        let items = vec![
            org_changed(self, what, org)?,
            transact_put(self, what, item, None)?,
        ];
        match self.transact_conditions(what, items).await? {
            None => Ok(()),
            Some(_) => Err(org_not_found(org)),
        }
    }
}

impl ConfigStore for AwsStore {
    async fn create_org(&self, org: &Org, key_hash: &str) -> StoreResult<()> {
        const WHAT: &str = "create_org";
        let org_item = org_item(WHAT, org)?;
        let mut key_item = key(key_pk(key_hash), KEY_SK);
        key_item.insert("org".to_owned(), s(org.id.clone()));
        let items = vec![
            transact_put(self, WHAT, org_item, Some("attribute_not_exists(pk)"))?,
            transact_put(self, WHAT, key_item, Some("attribute_not_exists(pk)"))?,
            transact_put(self, WHAT, key_listing(&org.id, key_hash, Mode::Live), None)?,
        ];
        match self.transact_conditions(WHAT, items).await? {
            None => Ok(()),
            Some(failed) if failed.first() == Some(&true) => {
                Err(StoreError::AlreadyExists(format!("org {}", org.id)))
            }
            Some(_) => Err(StoreError::AlreadyExists("ingest key".to_owned())),
        }
    }

    async fn update_org(&self, org: &Org) -> StoreResult<()> {
        const WHAT: &str = "update_org";
        let item = org_item(WHAT, org)?;
        if self
            .put_if(WHAT, item, Some("attribute_exists(pk)"))
            .await?
        {
            Ok(())
        } else {
            Err(org_not_found(&org.id))
        }
    }

    /// Adding a key the org already has is a no-op; a key of another org is
    /// `AlreadyExists`; an unknown org is `NotFound`.
    async fn add_ingest_key(&self, org: &str, key_hash: &str, mode: Mode) -> StoreResult<()> {
        const WHAT: &str = "add_ingest_key";
        let mut key_item = key(key_pk(key_hash), KEY_SK);
        key_item.insert("org".to_owned(), s(org));
        key_item.insert(MODE.to_owned(), s(mode.as_str()));
        let key_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(key_item))
            .condition_expression("attribute_not_exists(pk) OR #org = :org")
            .expression_attribute_names("#org", "org")
            .expression_attribute_values(":org", s(org))
            .build()
            .map_err(|_| build(WHAT))?;
        let items = vec![
            org_exists_check(self, WHAT, org)?,
            TransactWriteItem::builder().put(key_put).build(),
            transact_put(self, WHAT, key_listing(org, key_hash, mode), None)?,
        ];
        match self.transact_conditions(WHAT, items).await? {
            None => Ok(()),
            Some(failed) if failed.first() == Some(&true) => Err(org_not_found(org)),
            Some(_) => Err(StoreError::AlreadyExists("ingest key".to_owned())),
        }
    }

    async fn ingest_keys(&self, org: &str) -> StoreResult<Vec<IngestKey>> {
        let mut keys: Vec<(Option<jiff::Timestamp>, IngestKey)> = self
            .query_all("ingest_keys", key_list_pk(org))
            .await?
            .into_iter()
            .filter_map(|item| {
                let hash = string_attr(&item, "sk")?.to_owned();
                let created_at = string_attr(&item, "created_at").and_then(|t| t.parse().ok());
                let mode = item_mode(&item);
                Some((
                    created_at,
                    IngestKey {
                        hash,
                        created_at,
                        mode,
                    },
                ))
            })
            .collect();
        // Oldest first (the listing's sort key is the hash).
        keys.sort_by(|a, b| (a.0, &a.1.hash).cmp(&(b.0, &b.1.hash)));
        Ok(keys.into_iter().map(|(_, k)| k).collect())
    }

    /// The key item (only if it is this org's) and its listing, in one
    /// transaction. A warm ingest function that cached the key keeps
    /// accepting it for up to its TTL ([`INGEST_TTL`]).
    async fn revoke_ingest_key(&self, org: &str, key_hash: &str) -> StoreResult<()> {
        const WHAT: &str = "revoke_ingest_key";
        let key_delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(key_pk(key_hash), KEY_SK)))
            .condition_expression("#org = :org")
            .expression_attribute_names("#org", "org")
            .expression_attribute_values(":org", s(org))
            .build()
            .map_err(|_| build(WHAT))?;
        let listing_delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(key_list_pk(org), key_hash.to_owned())))
            .build()
            .map_err(|_| build(WHAT))?;
        let items = vec![
            TransactWriteItem::builder().delete(key_delete).build(),
            TransactWriteItem::builder().delete(listing_delete).build(),
        ];
        match self.transact_conditions(WHAT, items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::NotFound("ingest key".to_owned())),
        }
    }

    /// A GetItem, or the ingest cache (a key found stays valid for its TTL).
    async fn org_for_key(&self, key_hash: &str) -> StoreResult<Option<String>> {
        if let Some(org) = self.caches.ingest_key(key_hash) {
            return Ok(Some(org));
        }
        let item = self.get("org_for_key", key_pk(key_hash), KEY_SK).await?;
        let org = item
            .and_then(|i| string_attr(&i, "org").map(|org| mode::partition(org, item_mode(&i))));
        if let Some(org) = &org {
            self.caches.remember_ingest_key(key_hash, org);
        }
        Ok(org)
    }

    async fn put_location(&self, org: &str, location: &Location) -> StoreResult<()> {
        self.put_child(
            "put_location",
            org,
            format!("{LOC_PREFIX}{}", location.id),
            location,
        )
        .await
    }

    async fn put_practitioner(&self, org: &str, practitioner: &Practitioner) -> StoreResult<()> {
        self.put_child(
            "put_practitioner",
            org,
            format!("{PRAC_PREFIX}{}", practitioner.id),
            practitioner,
        )
        .await
    }

    /// One strongly consistent Query of the org's partition, or the ingest
    /// cache when this store has one (see [`AwsStore::with_ingest_cache`]).
    /// A test partition reads its org's items.
    async fn org_config(&self, partition: &str) -> StoreResult<Option<OrgConfig>> {
        let org = mode::org_of(partition);
        let config = match self.caches.ingest_config(org) {
            Some(config) => Some(config),
            None => self.fetch_org_config(org).await?.map(|(_, config)| config),
        };
        Ok(config.map(|c| c.for_partition(partition)))
    }
}

impl AwsStore {
    /// The org's configuration and its token, read now (and cached).
    pub(crate) async fn fetch_org_config(
        &self,
        org: &str,
    ) -> StoreResult<Option<(String, OrgConfig)>> {
        const WHAT: &str = "org_config";
        let mut found = None;
        let mut locations: Vec<Location> = Vec::new();
        let mut practitioners: Vec<Practitioner> = Vec::new();
        let mut workflows: Vec<Workflow> = Vec::new();
        let mut token = String::new();
        for item in self.query_all(WHAT, org_pk(org)).await? {
            let sk = string_attr(&item, "sk").unwrap_or_default().to_owned();
            if sk == ORG_SK {
                token = string_attr(&item, CONFIG_TOKEN)
                    .unwrap_or_default()
                    .to_owned();
                found = Some(from_item::<Org>(WHAT, item)?);
            } else if sk.starts_with(LOC_PREFIX) {
                locations.push(from_item(WHAT, item)?);
            } else if sk.starts_with(PRAC_PREFIX) {
                practitioners.push(from_item(WHAT, item)?);
            } else if sk.starts_with(WORKFLOW_PREFIX) {
                workflows.push(crate::workflows::decode_workflow(WHAT, item)?);
            }
        }
        let Some(org) = found else {
            return Ok(None);
        };
        locations.sort_by(|a, b| a.id.cmp(&b.id));
        practitioners.sort_by(|a, b| a.id.cmp(&b.id));
        workflows.sort_by(|a, b| a.id.cmp(&b.id));
        let config = OrgConfig {
            org,
            locations,
            practitioners,
            workflows,
        };
        self.caches.remember_config(&token, &config);
        Ok(Some((token, config)))
    }
}

/// The key and listing items' attribute naming a key's [`Mode`] (absent: live).
const MODE: &str = "mode";

fn item_mode(item: &Item) -> Mode {
    string_attr(item, MODE)
        .and_then(|m| m.parse().ok())
        .unwrap_or_default()
}

/// The listing item of an org's key, stamped with the time it was issued.
fn key_listing(org: &str, key_hash: &str, mode: Mode) -> Item {
    let mut item = key(key_list_pk(org), key_hash.to_owned());
    item.insert(MODE.to_owned(), s(mode.as_str()));
    item.insert(
        "created_at".to_owned(),
        s(jiff::Timestamp::now().to_string()),
    );
    item
}

/// How long ingest trusts a cached key or configuration.
pub const INGEST_TTL: Duration = Duration::from_secs(30);

/// The caches of configuration reads (see the module doc); one per store,
/// shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct Caches {
    /// org → (token, configuration).
    configs: Mutex<HashMap<String, (String, OrgConfig)>>,
    /// `Some`: the ingest cache is on, with this TTL.
    ingest_ttl: Option<Duration>,
    keys: Mutex<HashMap<String, (Instant, String)>>,
    ingest_configs: Mutex<HashMap<String, Instant>>,
}

fn fresh(at: Instant, ttl: Option<Duration>) -> bool {
    ttl.is_some_and(|ttl| at.elapsed() < ttl)
}

impl Caches {
    pub(crate) fn with_ingest_ttl(ttl: Duration) -> Caches {
        Caches {
            ingest_ttl: Some(ttl),
            ..Caches::default()
        }
    }

    /// The cached configuration of `org`, if its token is `token`.
    pub(crate) fn config(&self, org: &str, token: &str) -> Option<OrgConfig> {
        let configs = self.configs.lock().ok()?;
        configs
            .get(org)
            .filter(|(t, _)| t == token)
            .map(|(_, c)| c.clone())
    }

    pub(crate) fn remember_config(&self, token: &str, config: &OrgConfig) {
        if let Ok(mut configs) = self.configs.lock() {
            configs.insert(config.org.id.clone(), (token.to_owned(), config.clone()));
        }
        if self.ingest_ttl.is_some()
            && let Ok(mut at) = self.ingest_configs.lock()
        {
            at.insert(config.org.id.clone(), Instant::now());
        }
    }

    /// Ingest's view: the configuration fetched within the TTL.
    pub(crate) fn ingest_config(&self, org: &str) -> Option<OrgConfig> {
        let at = *self.ingest_configs.lock().ok()?.get(org)?;
        if !fresh(at, self.ingest_ttl) {
            return None;
        }
        let configs = self.configs.lock().ok()?;
        configs.get(org).map(|(_, c)| c.clone())
    }

    pub(crate) fn ingest_key(&self, key_hash: &str) -> Option<String> {
        let keys = self.keys.lock().ok()?;
        keys.get(key_hash)
            .filter(|(at, _)| fresh(*at, self.ingest_ttl))
            .map(|(_, org)| org.clone())
    }

    pub(crate) fn remember_ingest_key(&self, key_hash: &str, org: &str) {
        if self.ingest_ttl.is_some()
            && let Ok(mut keys) = self.keys.lock()
        {
            keys.insert(key_hash.to_owned(), (Instant::now(), org.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(org: &str, tz: &str) -> OrgConfig {
        OrgConfig {
            org: Org {
                id: org.into(),
                name: "N".into(),
                timezone: tz.into(),
                ie_types: Vec::new(),
                field_map: Default::default(),
            },
            locations: Vec::new(),
            practitioners: Vec::new(),
            workflows: Vec::new(),
        }
    }

    #[test]
    fn a_configuration_is_used_only_with_its_token() {
        let c = Caches::default();
        c.remember_config("t1", &config("A", "UTC"));
        assert_eq!(c.config("A", "t1"), Some(config("A", "UTC")));
        assert_eq!(c.config("A", "t2"), None, "a changed token misses");
        assert_eq!(c.config("B", "t1"), None);
        c.remember_config("t2", &config("A", "America/Denver"));
        assert_eq!(c.config("A", "t1"), None);
        assert_eq!(c.config("A", "t2"), Some(config("A", "America/Denver")));
    }

    #[test]
    fn ingest_entries_live_for_the_ttl_and_only_when_enabled() {
        let off = Caches::default();
        off.remember_config("t", &config("A", "UTC"));
        off.remember_ingest_key("h", "A");
        assert_eq!(off.ingest_config("A"), None);
        assert_eq!(off.ingest_key("h"), None);

        let on = Caches::with_ingest_ttl(Duration::from_secs(60));
        on.remember_config("t", &config("A", "UTC"));
        on.remember_ingest_key("h", "A");
        assert_eq!(on.ingest_config("A"), Some(config("A", "UTC")));
        assert_eq!(on.ingest_key("h"), Some("A".to_owned()));
        assert_eq!(on.ingest_key("other"), None);

        let expired = Caches::with_ingest_ttl(Duration::ZERO);
        expired.remember_config("t", &config("A", "UTC"));
        expired.remember_ingest_key("h", "A");
        assert_eq!(expired.ingest_config("A"), None);
        assert_eq!(expired.ingest_key("h"), None);
    }
}
