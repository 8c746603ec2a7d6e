//! [`MessageLog`]: received messages, the JSON record beside the raw bytes.
use rusqlite::{Connection, OptionalExtension, params};
use tendon_core::model::{MessageStatus, StoredMessage};
use tendon_core::ports::{Inserted, MessageLog, StoreError, StoreResult};

use crate::{Fail, SqliteStore, write_tx};

/// The sort key of `received_at`: Unix nanoseconds, or NULL (first) if it is
/// not an RFC 3339 instant.
pub(crate) fn received_key(received_at: &str) -> Option<i64> {
    let ts = received_at.parse::<jiff::Timestamp>().ok()?;
    i64::try_from(ts.as_nanosecond()).ok()
}

/// The message with its raw bytes, if stored.
pub(crate) fn load(conn: &Connection, org: &str, id: &str) -> Result<Option<StoredMessage>, Fail> {
    let row: Option<(String, Vec<u8>)> = conn
        .prepare_cached("SELECT json, raw FROM messages WHERE org = ?1 AND id = ?2")?
        .query_row([org, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((json, raw)) = row else {
        return Ok(None);
    };
    let mut message: StoredMessage = serde_json::from_str(&json)?;
    message.raw = raw;
    Ok(Some(message))
}

/// Writes back the mutable parts of a stored message (status, patient ID, the
/// JSON record); the raw bytes never change.
pub(crate) fn save_state(conn: &Connection, message: &StoredMessage) -> Result<(), Fail> {
    let json = serde_json::to_string(message)?;
    conn.prepare_cached(
        "UPDATE messages SET status = ?3, patient_id = ?4, json = ?5 WHERE org = ?1 AND id = ?2",
    )?
    .execute(params![
        message.org,
        message.id,
        message.status.as_str(),
        message.patient_id,
        json
    ])?;
    Ok(())
}

impl MessageLog for SqliteStore {
    async fn insert_message(&self, message: &StoredMessage) -> StoreResult<Inserted> {
        let json = serde_json::to_string(message)
            .map_err(|e| Fail::Json(e).into_store_error("insert_message"))?;
        let m = message.clone();
        self.run("insert_message", move |conn| {
            let tx = write_tx(conn)?;
            let added = tx
                .prepare_cached(
                    "INSERT INTO messages (org, id, status, control_id, received_at, patient_id, json, raw)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (org, id) DO NOTHING",
                )?
                .execute(params![
                    m.org,
                    m.id,
                    m.status.as_str(),
                    m.control_id,
                    received_key(&m.received_at),
                    m.patient_id,
                    json,
                    m.raw
                ])?;
            if added == 1 {
                tx.commit()?;
                return Ok(Inserted::New);
            }
            let existing = load(&tx, &m.org, &m.id)?.ok_or_else(|| StoreError::Backend("insert_message: the existing message vanished".to_owned()))?;
            tx.finish()?;
            Ok(Inserted::Existing(existing))
        })
        .await
    }

    async fn get_message(&self, org: &str, id: &str) -> StoreResult<Option<StoredMessage>> {
        let (org, id) = (org.to_owned(), id.to_owned());
        self.read_now("get_message", move |conn| load(conn, &org, &id))
            .await
    }

    /// Oldest first by `received_at`, then by insertion; `raw` is left empty.
    async fn list_messages(
        &self,
        org: &str,
        status: Option<MessageStatus>,
    ) -> StoreResult<Vec<StoredMessage>> {
        let org = org.to_owned();
        self.read("list_messages", move |conn| {
            let mut out = Vec::new();
            let mut push = |json: rusqlite::Result<String>| -> Result<(), Fail> {
                out.push(serde_json::from_str::<StoredMessage>(&json?)?);
                Ok(())
            };
            match status {
                None => {
                    let mut stmt = conn.prepare_cached("SELECT json FROM messages WHERE org = ?1 ORDER BY received_at, rowid")?;
                    for json in stmt.query_map([&org], |r| r.get(0))? {
                        push(json)?;
                    }
                }
                Some(status) => {
                    let mut stmt = conn.prepare_cached("SELECT json FROM messages WHERE org = ?1 AND status = ?2 ORDER BY received_at, rowid")?;
                    for json in stmt.query_map([org.as_str(), status.as_str()], |r| r.get(0))? {
                        push(json)?;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// The parked messages are exactly the `pending` ones (a partial index).
    async fn pending_messages(&self, org: &str, patient_id: &str) -> StoreResult<Vec<String>> {
        let (org, patient_id) = (org.to_owned(), patient_id.to_owned());
        self.read_now("pending_messages", move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM messages WHERE org = ?1 AND patient_id = ?2 AND status = 'pending' ORDER BY received_at, rowid",
            )?;
            let ids = stmt
                .query_map([&org, &patient_id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(ids)
        })
        .await
    }

    async fn reset_message(&self, org: &str, id: &str) -> StoreResult<()> {
        let (org, id) = (org.to_owned(), id.to_owned());
        self.run("reset_message", move |conn| {
            let tx = write_tx(conn)?;
            let Some(mut message) = load(&tx, &org, &id)? else {
                return Err(Fail::Store(StoreError::NotFound(format!("message {id}"))));
            };
            message.status = MessageStatus::Accepted;
            message.errors.clear();
            message.steps_done.clear();
            message.replays += 1;
            save_state(&tx, &message)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
