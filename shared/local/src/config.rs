//! [`ConfigStore`]: orgs, ingest keys (hashes), locations and practitioners.
use rusqlite::{Connection, OptionalExtension, params};
use tendon_core::mode::{self, Mode};
use tendon_core::org::{Location, Org, OrgConfig, Practitioner};
use tendon_core::ports::{ConfigStore, IngestKey, StoreError, StoreResult};

use crate::sql::{encode, json_row, json_rows, org_exists, org_not_found, rows};
use crate::{Fail, SqliteStore, read_tx, write_tx};

impl SqliteStore {
    /// Upserts a location or practitioner row (`table`) of an existing org.
    async fn put_child<T: serde::Serialize>(
        &self,
        what: &'static str,
        table: &'static str,
        org: &str,
        id: &str,
        child: &T,
    ) -> StoreResult<()> {
        let json = encode(what, child)?;
        let (org, id) = (org.to_owned(), id.to_owned());
        self.run(what, move |conn| {
            let tx = write_tx(conn)?;
            if !org_exists(&tx, &org)? {
                return Err(org_not_found(&org));
            }
            let sql = format!(
                "INSERT INTO {table} (org, id, json) VALUES (?1, ?2, ?3) ON CONFLICT (org, id) DO UPDATE SET json = excluded.json"
            );
            tx.prepare_cached(&sql)?.execute(params![org, id, json])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

/// The locations or practitioners (`table`) of an org, by ID.
fn children<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    table: &'static str,
    org: &str,
) -> Result<Vec<T>, Fail> {
    let sql = format!("SELECT json FROM {table} WHERE org = ?1 ORDER BY id");
    json_rows(conn, &sql, [org])
}

impl ConfigStore for SqliteStore {
    async fn create_org(&self, org: &Org, key_hash: &str) -> StoreResult<()> {
        let json = encode("create_org", org)?;
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
        let json = encode("update_org", org)?;
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
    async fn add_ingest_key(&self, org: &str, key_hash: &str, mode: Mode) -> StoreResult<()> {
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
                        "INSERT INTO ingest_keys (hash, org, created_at, mode) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![key_hash, org, now, mode.as_str()])?;
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
            rows(
                conn,
                // rowid: insertion order, i.e. oldest first.
                "SELECT hash, created_at, mode FROM ingest_keys WHERE org = ?1 ORDER BY rowid",
                [org],
                |r| {
                    let (hash, created_at): (String, Option<String>) = (r.get(0)?, r.get(1)?);
                    Ok(IngestKey {
                        hash,
                        created_at: created_at.and_then(|t| t.parse().ok()),
                        mode: r.get::<_, String>(2)?.parse().unwrap_or_default(),
                    })
                },
            )
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
            let owner: Option<(String, String)> = conn
                .prepare_cached("SELECT org, mode FROM ingest_keys WHERE hash = ?1")?
                .query_row([key_hash], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(owner.map(|(org, m)| mode::partition(&org, m.parse().unwrap_or_default())))
        })
        .await
    }

    async fn put_location(&self, org: &str, location: &Location) -> StoreResult<()> {
        self.put_child("put_location", "locations", org, &location.id, location)
            .await
    }

    async fn put_practitioner(&self, org: &str, practitioner: &Practitioner) -> StoreResult<()> {
        let id = &practitioner.id;
        self.put_child("put_practitioner", "practitioners", org, id, practitioner)
            .await
    }

    /// A test partition reads its org's rows.
    async fn org_config(&self, partition: &str) -> StoreResult<Option<OrgConfig>> {
        let partition = partition.to_owned();
        self.read_now("org_config", move |conn| {
            let org = mode::org_of(&partition);
            // One read transaction: a consistent snapshot even with other writers.
            let tx = read_tx(conn)?;
            let Some(found) = json_row(&tx, "SELECT json FROM orgs WHERE id = ?1", [&org])? else {
                return Ok(None);
            };
            let config = OrgConfig {
                org: found,
                locations: children(&tx, "locations", org)?,
                practitioners: children(&tx, "practitioners", org)?,
                workflows: crate::workflows::load_workflows(&tx, org)?,
            };
            tx.finish()?;
            Ok(Some(config.for_partition(&partition)))
        })
        .await
    }
}
