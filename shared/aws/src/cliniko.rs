//! [`ClinikoStore`] on DynamoDB.
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | connection | `ORG#<org>#CLINIKO` | `CONN` | [`ClinikoConnection`], the API key included (the table's KMS encryption covers it) |
//! | token | `CLINIKO_TOKEN#<token>` | `TOKEN` | attribute `org`: the "Open in" URL's token finds its connection with two GetItems |
//! | connection listing | `CLINIKO_CONNS` | `<org>` | for the scheduled re-sync of every org |
//! | failure | `ORG#<org>#CLINIKO_FAIL` | `<cliniko id>` | [`ClinikoFailure`] |
//!
//! The connection, its token item and its listing item are written in one
//! transaction with a check that the org exists; replacing a connection
//! deletes its old token item in that transaction.
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};
use tendon_core::cliniko::{ClinikoConnection, ClinikoFailure};
use tendon_core::ports::{ClinikoStore, StoreError, StoreResult};

use crate::config::{org_exists_check, org_not_found, transact_put};
use crate::items::{from_item, key, s, string_attr, to_item};
use crate::{AwsStore, backend, build};

const CONN_SK: &str = "CONN";
const TOKEN_SK: &str = "TOKEN";
const CONNS_PK: &str = "CLINIKO_CONNS";

fn connection_pk(org: &str) -> String {
    format!("ORG#{org}#CLINIKO")
}

fn token_pk(token: &str) -> String {
    format!("CLINIKO_TOKEN#{token}")
}

fn failure_pk(org: &str) -> String {
    format!("ORG#{org}#CLINIKO_FAIL")
}

fn decode_connection(what: &str, mut item: crate::items::Item) -> StoreResult<ClinikoConnection> {
    item.remove(crate::items::PK);
    item.remove(crate::items::SK);
    from_item(what, item)
}

fn decode_failure(what: &str, mut item: crate::items::Item) -> StoreResult<ClinikoFailure> {
    item.remove(crate::items::PK);
    item.remove(crate::items::SK);
    from_item(what, item)
}

impl ClinikoStore for AwsStore {
    async fn put_connection(&self, connection: &ClinikoConnection) -> StoreResult<()> {
        const WHAT: &str = "put_connection";
        let org = &connection.org;
        let old = self.connection(org).await?;
        let mut items = vec![
            org_exists_check(self, WHAT, org)?,
            transact_put(
                self,
                WHAT,
                to_item(WHAT, connection, connection_pk(org), CONN_SK)?,
                None,
            )?,
        ];
        let mut token = key(token_pk(&connection.token), TOKEN_SK);
        token.insert("org".to_owned(), s(org.clone()));
        items.push(transact_put(self, WHAT, token, None)?);
        let mut listing = key(CONNS_PK.to_owned(), org.clone());
        listing.insert("org".to_owned(), s(org.clone()));
        items.push(transact_put(self, WHAT, listing, None)?);
        if let Some(old) = old.filter(|o| o.token != connection.token) {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(token_pk(&old.token), TOKEN_SK)))
                .build()
                .map_err(|_| build(WHAT))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        match self.transact_conditions(WHAT, items).await? {
            None => Ok(()),
            Some(_) => Err(org_not_found(org)),
        }
    }

    async fn connection(&self, org: &str) -> StoreResult<Option<ClinikoConnection>> {
        const WHAT: &str = "connection";
        self.get(WHAT, connection_pk(org), CONN_SK)
            .await?
            .map(|item| decode_connection(WHAT, item))
            .transpose()
    }

    async fn connection_for_token(&self, token: &str) -> StoreResult<Option<ClinikoConnection>> {
        const WHAT: &str = "connection_for_token";
        let Some(item) = self.get(WHAT, token_pk(token), TOKEN_SK).await? else {
            return Ok(None);
        };
        let Some(org) = string_attr(&item, "org") else {
            return Ok(None);
        };
        // The token item is removed with the connection it belonged to; the
        // check covers a replacement racing this read.
        Ok(self.connection(org).await?.filter(|c| c.token == token))
    }

    async fn connections(&self) -> StoreResult<Vec<ClinikoConnection>> {
        const WHAT: &str = "connections";
        let mut out = Vec::new();
        for item in self.query_all(WHAT, CONNS_PK.to_owned()).await? {
            if let Some(org) = string_attr(&item, "org")
                && let Some(c) = self.connection(org).await?
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn record_sync(
        &self,
        org: &str,
        watermark: Option<&str>,
        synced_at: jiff::Timestamp,
    ) -> StoreResult<()> {
        const WHAT: &str = "record_sync";
        let mut set = "SET #ls = :ls".to_owned();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(connection_pk(org), CONN_SK)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ls", "last_sync_at")
            .expression_attribute_values(":ls", s(synced_at.to_string()));
        if let Some(w) = watermark {
            set.push_str(", #wm = :wm");
            update = update
                .expression_attribute_names("#wm", "watermark")
                .expression_attribute_values(":wm", s(w));
        }
        let update = update
            .update_expression(set)
            .build()
            .map_err(|_| build(WHAT))?;
        match self
            .transact_conditions(
                WHAT,
                vec![TransactWriteItem::builder().update(update).build()],
            )
            .await?
        {
            None => Ok(()),
            Some(_) => Err(StoreError::NotFound(format!(
                "Cliniko connection of org {org}"
            ))),
        }
    }

    async fn put_failure(&self, org: &str, failure: &ClinikoFailure) -> StoreResult<()> {
        const WHAT: &str = "put_failure";
        let item = to_item(WHAT, failure, failure_pk(org), failure.cliniko_id.clone())?;
        self.put_if(WHAT, item, None).await.map(|_| ())
    }

    async fn clear_failure(&self, org: &str, cliniko_id: &str) -> StoreResult<()> {
        const WHAT: &str = "clear_failure";
        self.count();
        self.count_writes(1);
        self.dynamo
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(failure_pk(org), cliniko_id)))
            .send()
            .await
            .map_err(|e| backend(WHAT, &e))?;
        Ok(())
    }

    async fn failures(&self, org: &str) -> StoreResult<Vec<ClinikoFailure>> {
        const WHAT: &str = "failures";
        let mut out = Vec::new();
        for item in self.query_all(WHAT, failure_pk(org)).await? {
            out.push(decode_failure(WHAT, item)?);
        }
        // Numeric IDs in numeric order.
        out.sort_by(|a, b| {
            (a.cliniko_id.len(), &a.cliniko_id).cmp(&(b.cliniko_id.len(), &b.cliniko_id))
        });
        Ok(out)
    }
}
