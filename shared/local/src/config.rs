//! [`ConfigStore`]: orgs, ingest keys (hashes), locations and practitioners.
use rusqlite::{Connection, OptionalExtension, params};
use tendon_core::org::{Location, Org, OrgConfig, Practitioner};
use tendon_core::ports::{ConfigStore, IngestKey, StoreError, StoreResult};

use crate::{Fail, SqliteStore, read_tx, write_tx};

fn org_exists(conn: &Connection, org: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM orgs WHERE id = ?1")?
        .exists([org])
}

fn org_not_found(org: &str) -> Fail {
    Fail::Store(StoreError::NotFound(format!("org {org}")))
}

/// Upserts a location or practitioner row of an existing org.
fn put_child(
    conn: &mut Connection,
    table: &'static str,
    org: &str,
    id: &str,
    json: &str,
) -> Result<(), Fail> {
    let tx = write_tx(conn)?;
    if !org_exists(&tx, org)? {
        return Err(org_not_found(org));
    }
    let sql = format!(
        "INSERT INTO {table} (org, id, json) VALUES (?1, ?2, ?3) ON CONFLICT (org, id) DO UPDATE SET json = excluded.json"
    );
    tx.prepare_cached(&sql)?.execute(params![org, id, json])?;
    tx.commit()?;
    Ok(())
}

fn children<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    table: &'static str,
    org: &str,
) -> Result<Vec<T>, Fail> {
    let sql = format!("SELECT json FROM {table} WHERE org = ?1 ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([org], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for json in rows {
        out.push(serde_json::from_str(&json?)?);
    }
    Ok(out)
}

impl ConfigStore for SqliteStore {
    async fn create_org(&self, org: &Org, key_hash: &str) -> StoreResult<()> {
        let json =
            serde_json::to_string(org).map_err(|e| Fail::Json(e).into_store_error("create_org"))?;
        let (id, key_hash) = (org.id.clone(), key_hash.to_owned());
        let now = jiff::Timestamp::now().to_string();
        self.run("create_org", move |conn| {
            let tx = write_tx(conn)?;
            let added = tx
                .prepare_cached("INSERT INTO orgs (id, json) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING")?
                .execute(params![id, json])?;
            if added == 0 {
                return Err(Fail::Store(StoreError::AlreadyExists(format!("org {id}"))));
            }
            let added = tx
                .prepare_cached("INSERT INTO ingest_keys (hash, org, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (hash) DO NOTHING")?
                .execute(params![key_hash, id, now])?;
            if added == 0 {
                // Dropping the transaction rolls the org back too.
                return Err(Fail::Store(StoreError::AlreadyExists("ingest key".to_owned())));
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn update_org(&self, org: &Org) -> StoreResult<()> {
        let json =
            serde_json::to_string(org).map_err(|e| Fail::Json(e).into_store_error("update_org"))?;
        let id = org.id.clone();
        self.run("update_org", move |conn| {
            let changed = conn
                .prepare_cached("UPDATE orgs SET json = ?2 WHERE id = ?1")?
                .execute(params![id, json])?;
            if changed == 0 {
                return Err(org_not_found(&id));
            }
            Ok(())
        })
        .await
    }

    /// Adding a key the org already has is a no-op; a key of another org is
    /// `AlreadyExists`.
    async fn add_ingest_key(&self, org: &str, key_hash: &str) -> StoreResult<()> {
        let (org, key_hash) = (org.to_owned(), key_hash.to_owned());
        let now = jiff::Timestamp::now().to_string();
        self.run("add_ingest_key", move |conn| {
            let tx = write_tx(conn)?;
            if !org_exists(&tx, &org)? {
                return Err(org_not_found(&org));
            }
            let owner: Option<String> = tx
                .prepare_cached("SELECT org FROM ingest_keys WHERE hash = ?1")?
                .query_row([&key_hash], |r| r.get(0))
                .optional()?;
            match owner {
                Some(owner) if owner == org => Ok(()),
                Some(_) => Err(Fail::Store(StoreError::AlreadyExists(
                    "ingest key".to_owned(),
                ))),
                None => {
                    tx.prepare_cached(
                        "INSERT INTO ingest_keys (hash, org, created_at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![key_hash, org, now])?;
                    tx.commit()?;
                    Ok(())
                }
            }
        })
        .await
    }

    async fn ingest_keys(&self, org: &str) -> StoreResult<Vec<IngestKey>> {
        let org = org.to_owned();
        self.read_now("ingest_keys", move |conn| {
            let mut stmt = conn.prepare_cached(
                // rowid: insertion order, i.e. oldest first.
                "SELECT hash, created_at FROM ingest_keys WHERE org = ?1 ORDER BY rowid",
            )?;
            let rows = stmt.query_map([org], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut keys = Vec::new();
            for row in rows {
                let (hash, created_at) = row?;
                keys.push(IngestKey {
                    hash,
                    created_at: created_at.and_then(|t| t.parse().ok()),
                });
            }
            Ok(keys)
        })
        .await
    }

    async fn revoke_ingest_key(&self, org: &str, key_hash: &str) -> StoreResult<()> {
        let (org, key_hash) = (org.to_owned(), key_hash.to_owned());
        self.run("revoke_ingest_key", move |conn| {
            let removed = conn
                .prepare_cached("DELETE FROM ingest_keys WHERE hash = ?1 AND org = ?2")?
                .execute(params![key_hash, org])?;
            if removed == 0 {
                return Err(Fail::Store(StoreError::NotFound("ingest key".to_owned())));
            }
            Ok(())
        })
        .await
    }

    async fn org_for_key(&self, key_hash: &str) -> StoreResult<Option<String>> {
        let key_hash = key_hash.to_owned();
        self.read_now("org_for_key", move |conn| {
            let org = conn
                .prepare_cached("SELECT org FROM ingest_keys WHERE hash = ?1")?
                .query_row([key_hash], |r| r.get(0))
                .optional()?;
            Ok(org)
        })
        .await
    }

    async fn put_location(&self, org: &str, location: &Location) -> StoreResult<()> {
        let json = serde_json::to_string(location)
            .map_err(|e| Fail::Json(e).into_store_error("put_location"))?;
        let (org, id) = (org.to_owned(), location.id.clone());
        self.run("put_location", move |conn| {
            put_child(conn, "locations", &org, &id, &json)
        })
        .await
    }

    async fn put_practitioner(&self, org: &str, practitioner: &Practitioner) -> StoreResult<()> {
        let json = serde_json::to_string(practitioner)
            .map_err(|e| Fail::Json(e).into_store_error("put_practitioner"))?;
        let (org, id) = (org.to_owned(), practitioner.id.clone());
        self.run("put_practitioner", move |conn| {
            put_child(conn, "practitioners", &org, &id, &json)
        })
        .await
    }

    async fn org_config(&self, org: &str) -> StoreResult<Option<OrgConfig>> {
        let org = org.to_owned();
        self.read_now("org_config", move |conn| {
            // One read transaction: a consistent snapshot even with other writers.
            let tx = read_tx(conn)?;
            let json: Option<String> = tx
                .prepare_cached("SELECT json FROM orgs WHERE id = ?1")?
                .query_row([&org], |r| r.get(0))
                .optional()?;
            let Some(json) = json else {
                return Ok(None);
            };
            let config = OrgConfig {
                org: serde_json::from_str(&json)?,
                locations: children(&tx, "locations", &org)?,
                practitioners: children(&tx, "practitioners", &org)?,
                workflows: crate::workflows::load_workflows(&tx, &org)?,
            };
            tx.finish()?;
            Ok(Some(config))
        })
        .await
    }
}
