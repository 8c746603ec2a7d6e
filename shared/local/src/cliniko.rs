//! [`ClinikoStore`] on SQLite: one connection per org (its token unique), and
//! the profiles a sync could not import.
use rusqlite::params;
use tendon_core::cliniko::{ClinikoConnection, ClinikoFailure};
use tendon_core::ports::{ClinikoStore, StoreError, StoreResult};

use crate::sql::{encode, json_row, json_rows, org_exists, org_not_found};
use crate::{Fail, SqliteStore, write_tx};

impl ClinikoStore for SqliteStore {
    async fn put_connection(&self, connection: &ClinikoConnection) -> StoreResult<()> {
        let body = encode("put_connection", connection)?;
        let (org, token) = (connection.org.clone(), connection.token.clone());
        self.run("put_connection", move |conn| {
            let tx = write_tx(conn)?;
            if !org_exists(&tx, &org)? {
                return Err(org_not_found(&org));
            }
            tx.prepare_cached(
                "INSERT INTO cliniko_connections (org, token, json) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org) DO UPDATE SET token = excluded.token, json = excluded.json",
            )?
            .execute(params![org, token, body])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn connection(&self, org: &str) -> StoreResult<Option<ClinikoConnection>> {
        const SQL: &str = "SELECT json FROM cliniko_connections WHERE org = ?1";
        self.read_json("connection", SQL, org).await
    }

    async fn connection_for_token(&self, token: &str) -> StoreResult<Option<ClinikoConnection>> {
        const SQL: &str = "SELECT json FROM cliniko_connections WHERE token = ?1";
        self.read_json("connection_for_token", SQL, token).await
    }

    async fn connections(&self) -> StoreResult<Vec<ClinikoConnection>> {
        self.read("connections", move |conn| {
            json_rows(
                conn,
                "SELECT json FROM cliniko_connections ORDER BY org",
                [],
            )
        })
        .await
    }

    async fn record_sync(
        &self,
        org: &str,
        watermark: Option<&str>,
        synced_at: jiff::Timestamp,
    ) -> StoreResult<()> {
        let org = org.to_owned();
        let watermark = watermark.map(str::to_owned);
        self.run("record_sync", move |conn| {
            let tx = write_tx(conn)?;
            let found: Option<ClinikoConnection> = json_row(
                &tx,
                "SELECT json FROM cliniko_connections WHERE org = ?1",
                [&org],
            )?;
            let Some(mut c) = found else {
                return Err(Fail::Store(StoreError::NotFound(format!(
                    "Cliniko connection of org {org}"
                ))));
            };
            if watermark.is_some() {
                c.watermark = watermark;
            }
            c.last_sync_at = Some(synced_at);
            tx.prepare_cached("UPDATE cliniko_connections SET json = ?2 WHERE org = ?1")?
                .execute(params![org, serde_json::to_string(&c)?])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn put_failure(&self, org: &str, failure: &ClinikoFailure) -> StoreResult<()> {
        let body = encode("put_failure", failure)?;
        let (org, id) = (org.to_owned(), failure.cliniko_id.clone());
        self.run("put_failure", move |conn| {
            conn.prepare_cached(
                "INSERT INTO cliniko_failures (org, cliniko_id, json) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org, cliniko_id) DO UPDATE SET json = excluded.json",
            )?
            .execute(params![org, id, body])?;
            Ok(())
        })
        .await
    }

    async fn clear_failure(&self, org: &str, cliniko_id: &str) -> StoreResult<()> {
        let (org, id) = (org.to_owned(), cliniko_id.to_owned());
        self.run("clear_failure", move |conn| {
            conn.prepare_cached("DELETE FROM cliniko_failures WHERE org = ?1 AND cliniko_id = ?2")?
                .execute(params![org, id])?;
            Ok(())
        })
        .await
    }

    async fn failures(&self, org: &str) -> StoreResult<Vec<ClinikoFailure>> {
        const SQL: &str = "SELECT json FROM cliniko_failures WHERE org = ?1 ORDER BY length(cliniko_id), cliniko_id";
        self.read_json("failures", SQL, org).await
    }
}
