//! What the port modules share on a connection: a record as the JSON stored
//! for it, rows read back (as values or as the records their JSON column
//! holds; a store's read keyed by one value), the org check of writes that
//! belong to an org, and versions as SQLite integers.
use rusqlite::{Connection, OptionalExtension, Params, Row};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tendon_core::ports::{StoreError, StoreResult};

use crate::{Fail, SqliteStore};

/// `value` as the JSON stored for it; `what` names the operation in errors.
pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| Fail::Json(e).into_store_error(what))
}

/// Every row of the query `sql`, in its order, each read by `read`.
pub(crate) fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, Fail> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, read)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The records whose JSON is the first column of the query `sql`, in its order.
pub(crate) fn json_rows<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Vec<T>, Fail> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut out = Vec::new();
    for json in stmt.query_map(params, |r| r.get::<_, String>(0))? {
        out.push(serde_json::from_str(&json?)?);
    }
    Ok(out)
}

/// The record whose JSON is the first column of the query `sql`'s one row,
/// if there is a row.
pub(crate) fn json_row<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Option<T>, Fail> {
    let found: Option<String> = conn
        .prepare_cached(sql)?
        .query_row(params, |r| r.get(0))
        .optional()?;
    Ok(found.map(|json| serde_json::from_str(&json)).transpose()?)
}

/// What the JSON column of a query's rows reads as: every row's record
/// ([`json_rows`]), or the one row's if there is one ([`json_row`]).
pub(crate) trait FromJson: Sized {
    fn from_json(conn: &Connection, sql: &str, params: impl Params) -> Result<Self, Fail>;
}

impl<T: DeserializeOwned> FromJson for Vec<T> {
    fn from_json(conn: &Connection, sql: &str, params: impl Params) -> Result<Self, Fail> {
        json_rows(conn, sql, params)
    }
}

impl<T: DeserializeOwned> FromJson for Option<T> {
    fn from_json(conn: &Connection, sql: &str, params: impl Params) -> Result<Self, Fail> {
        json_row(conn, sql, params)
    }
}

impl SqliteStore {
    /// What the query `sql` reads for `key`, its one parameter
    /// ([`SqliteStore::read`]).
    pub(crate) async fn read_json<R: FromJson + Send + 'static>(
        &self,
        what: &'static str,
        sql: &'static str,
        key: &str,
    ) -> StoreResult<R> {
        let key = key.to_owned();
        self.read(what, move |conn| R::from_json(conn, sql, [&key]))
            .await
    }
}

/// Whether the org exists.
pub(crate) fn org_exists(conn: &Connection, org: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM orgs WHERE id = ?1")?
        .exists([org])
}

/// The failure of a write that needs an org that does not exist.
pub(crate) fn org_not_found(org: &str) -> Fail {
    Fail::Store(StoreError::NotFound(format!("org {org}")))
}

/// A `u64` version as SQLite's `INTEGER`.
pub(crate) fn sql_int(n: u64) -> Result<i64, Fail> {
    i64::try_from(n).map_err(|_| {
        Fail::Store(StoreError::backend_detail(
            "a version number is out of SQLite's range",
        ))
    })
}
