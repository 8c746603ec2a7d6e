//! [`Suppressions`] on DynamoDB: the email addresses of an org that no
//! workflow email goes to, one item per address in the org's `SUPPRESS`
//! partition (`ORG#<org>#SUPPRESS` / `<address>`, trimmed and lowercased);
//! and the secret that signs the unsubscribe links that suppress an address
//! (one settings item), kept here with what those links do.
use aws_sdk_dynamodb::types::ReturnValue;
use tendon_core::ports::{StoreError, StoreResult, Suppression, Suppressions};

use crate::items::{Item, SK, key, s, string_attr};
use crate::{AwsStore, backend};

/// The partition of an org's suppressed addresses.
fn suppress_pk(org: &str) -> String {
    format!("ORG#{org}#SUPPRESS")
}

/// An address as stored (its item's `sk`).
fn address_sk(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

impl Suppressions for AwsStore {
    /// A Put of `ORG#<org>#SUPPRESS` / `<address>` (the first reason stays).
    async fn suppress_address(&self, org: &str, address: &str, reason: &str) -> StoreResult<()> {
        const WHAT: &str = "suppress_address";
        let mut item = key(suppress_pk(org), address_sk(address));
        item.insert("reason".to_owned(), s(reason));
        // Suppressed already: the first reason stays.
        self.put_if(WHAT, item, Some("attribute_not_exists(pk)"))
            .await
            .map(|_| ())
    }

    /// One GetItem.
    async fn is_suppressed(&self, org: &str, address: &str) -> StoreResult<bool> {
        Ok(self
            .get("is_suppressed", suppress_pk(org), &address_sk(address))
            .await?
            .is_some())
    }

    /// A Query of `ORG#<org>#SUPPRESS` (its `sk` is the address).
    async fn suppressed_addresses(&self, org: &str) -> StoreResult<Vec<Suppression>> {
        Ok(self
            .query_all("suppressed_addresses", suppress_pk(org))
            .await?
            .iter()
            .filter_map(|item| {
                Some(Suppression {
                    address: string_attr(item, SK)?.to_owned(),
                    reason: string_attr(item, "reason").unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    /// A DeleteItem that returns the old item, so it tells whether there was one.
    async fn unsuppress_address(&self, org: &str, address: &str) -> StoreResult<bool> {
        const WHAT: &str = "unsuppress_address";
        self.count();
        self.count_writes(1);
        let out = self
            .dynamo
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(suppress_pk(org), address_sk(address))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| backend(WHAT, &e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// The settings item holding the unsubscribe secret (made on first use).
const SETTINGS_PK: &str = "SETTINGS";
const UNSUBSCRIBE_SECRET_SK: &str = "UNSUBSCRIBE_SECRET";

impl AwsStore {
    /// The secret that signs unsubscribe links: made on first use (a
    /// conditional Put, so concurrent first uses agree), then read.
    pub async fn unsubscribe_secret(&self) -> StoreResult<String> {
        const WHAT: &str = "unsubscribe_secret";
        let read =
            |item: Option<Item>| item.and_then(|i| string_attr(&i, "value").map(str::to_owned));
        if let Some(secret) = read(
            self.get(WHAT, SETTINGS_PK.to_owned(), UNSUBSCRIBE_SECRET_SK)
                .await?,
        ) {
            return Ok(secret);
        }
        let fresh = tendon_core::keys::new_ingest_key().map_err(StoreError::backend_detail)?;
        let mut item = key(SETTINGS_PK.to_owned(), UNSUBSCRIBE_SECRET_SK);
        item.insert("value".to_owned(), s(fresh));
        // Made meanwhile by another first use: that one is read.
        self.put_if(WHAT, item, Some("attribute_not_exists(pk)"))
            .await?;
        read(
            self.get(WHAT, SETTINGS_PK.to_owned(), UNSUBSCRIBE_SECRET_SK)
                .await?,
        )
        .ok_or_else(|| StoreError::backend(WHAT, "the secret was not stored"))
    }
}
