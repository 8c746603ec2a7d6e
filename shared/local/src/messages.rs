//! [`MessageLog`]: received messages, the JSON record beside the raw bytes;
//! [`TestData`]: deleting a test partition.
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use tendon_core::model::{MessageStatus, StoredMessage};
use tendon_core::ports::{
    HandOff, Inserted, Intake, MessageLog, PartitionDeleted, StoreError, StoreResult, TestData,
    Unqueued,
};

use crate::queue::enqueue;
use crate::sql::{encode, json_rows, rows};
use crate::{Fail, SqliteStore, now_ms, write_tx};

/// The sort key of `received_at`: Unix nanoseconds (an i64 holds them until
/// 2262; NULL, which sorts first, past that).
fn received_key(received_at: Timestamp) -> Option<i64> {
    i64::try_from(received_at.as_nanosecond()).ok()
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

/// Inserts the message unless one with its (org, id) exists, on the open
/// transaction; `unqueued_at` is set for a message stored `queued: false`.
fn insert(tx: &Connection, m: &StoredMessage, json: &str) -> Result<Inserted, Fail> {
    let added = tx
        .prepare_cached(
            "INSERT INTO messages (org, id, status, control_id, received_at, patient_id, json, raw, unqueued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (org, id) DO NOTHING",
        )?
        .execute(params![
            m.org,
            m.id,
            m.status.as_str(),
            m.control_id,
            received_key(m.received_at),
            m.patient_id,
            json,
            m.raw,
            (!m.queued).then(|| m.received_at.as_millisecond()),
        ])?;
    if added == 1 {
        return Ok(Inserted::New);
    }
    let existing = load(tx, &m.org, &m.id)?
        .ok_or_else(|| StoreError::backend("insert_message", "the existing message vanished"))?;
    Ok(Inserted::Existing(existing))
}

impl MessageLog for SqliteStore {
    async fn insert_message(&self, message: &StoredMessage) -> StoreResult<Inserted> {
        let json = encode("insert_message", message)?;
        let m = message.clone();
        self.run("insert_message", move |conn| {
            let tx = write_tx(conn)?;
            let inserted = insert(&tx, &m, &json)?;
            tx.commit()?;
            Ok(inserted)
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
        self.read("list_messages", move |conn| match status {
            None => json_rows(
                conn,
                "SELECT json FROM messages WHERE org = ?1 ORDER BY received_at, rowid",
                [&org],
            ),
            Some(status) => json_rows(
                conn,
                "SELECT json FROM messages WHERE org = ?1 AND status = ?2 ORDER BY received_at, rowid",
                [org.as_str(), status.as_str()],
            ),
        })
        .await
    }

    /// The parked messages are exactly the `pending` ones (a partial index).
    async fn pending_messages(&self, org: &str, patient_id: &str) -> StoreResult<Vec<String>> {
        let (org, patient_id) = (org.to_owned(), patient_id.to_owned());
        self.read_now("pending_messages", move |conn| {
            rows(
                conn,
                "SELECT id FROM messages WHERE org = ?1 AND patient_id = ?2 AND status = 'pending' ORDER BY received_at, rowid",
                [&org, &patient_id],
                |r| r.get(0),
            )
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
            message.queued = false;
            save_state(&tx, &message)?;
            tx.prepare_cached(
                "UPDATE messages SET unqueued_at = ?3, claimed_until = NULL WHERE org = ?1 AND id = ?2",
            )?
            .execute(params![org, id, now_ms()])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

/// Ingest stores the message and queues its pointer in one transaction: the
/// queue lives in the same database, so there is no moment at which one is
/// done and the other is not.
impl Intake for SqliteStore {
    async fn store_and_queue(
        &self,
        message: &StoredMessage,
        hand_off: Option<&HandOff>,
    ) -> StoreResult<Inserted> {
        const WHAT: &str = "store_and_queue";
        let mut m = message.clone();
        // Both are true once this transaction commits.
        if hand_off.is_some() {
            m.queued = true;
            m.acknowledged = true;
        }
        let json = encode(WHAT, &m)?;
        let pointer = hand_off
            .map(|h| Ok::<_, StoreError>((h.clone(), encode(WHAT, &h.item)?)))
            .transpose()?;
        self.run(WHAT, move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let inserted = insert(&tx, &m, &json)?;
            if let (Inserted::New, Some((h, body))) = (&inserted, &pointer) {
                enqueue(&tx, h.queue, &h.group, &h.dedupe_id, body, now)?;
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn queue_stored(
        &self,
        org: &str,
        id: &str,
        hand_off: &HandOff,
        acknowledge: bool,
    ) -> StoreResult<()> {
        const WHAT: &str = "queue_stored";
        let body = encode(WHAT, &hand_off.item)?;
        let (org, id, h) = (org.to_owned(), id.to_owned(), hand_off.clone());
        self.run(WHAT, move |conn| {
            let tx = write_tx(conn)?;
            let Some(mut message) = load(&tx, &org, &id)? else {
                return Err(Fail::Store(StoreError::NotFound(format!("message {id}"))));
            };
            enqueue(&tx, h.queue, &h.group, &h.dedupe_id, &body, now_ms())?;
            message.queued = true;
            message.acknowledged |= acknowledge;
            save_state(&tx, &message)?;
            tx.prepare_cached(
                "UPDATE messages SET unqueued_at = NULL, claimed_until = NULL WHERE org = ?1 AND id = ?2",
            )?
            .execute([&org, &id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn set_acknowledged(&self, org: &str, id: &str, acknowledged: bool) -> StoreResult<()> {
        let (org, id) = (org.to_owned(), id.to_owned());
        self.run("set_acknowledged", move |conn| {
            let tx = write_tx(conn)?;
            if let Some(mut message) = load(&tx, &org, &id)?
                && message.acknowledged != acknowledged
            {
                message.acknowledged = acknowledged;
                save_state(&tx, &message)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn claim_unqueued(
        &self,
        stored_before: Timestamp,
        now: Timestamp,
        claim_until: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<Unqueued>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("claim_unqueued", move |conn| {
            let tx = write_tx(conn)?;
            let mut claimed = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT org, id, json FROM messages
                     WHERE unqueued_at IS NOT NULL AND unqueued_at < ?1
                       AND (claimed_until IS NULL OR claimed_until <= ?2)
                     ORDER BY unqueued_at LIMIT ?3",
                )?;
                let rows = stmt.query_map(
                    params![stored_before.as_millisecond(), now.as_millisecond(), limit],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    },
                )?;
                for row in rows {
                    let (org, id, json) = row?;
                    let m: StoredMessage = serde_json::from_str(&json)?;
                    claimed.push(Unqueued {
                        org,
                        id,
                        patient_id: m.patient_id,
                        replays: m.replays,
                    });
                }
            }
            for u in &claimed {
                tx.prepare_cached(
                    "UPDATE messages SET claimed_until = ?3 WHERE org = ?1 AND id = ?2",
                )?
                .execute(params![u.org, u.id, claim_until.as_millisecond()])?;
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }
}

/// One transaction over every table that holds partition data; the queues'
/// rows of the partition (message group `<partition>#...`) go too, except a
/// delivery in flight, which finds its message gone and is dropped.
impl TestData for SqliteStore {
    async fn delete_partition(&self, partition: &str) -> StoreResult<PartitionDeleted> {
        let partition = partition.to_owned();
        self.run("delete_partition", move |conn| {
            let tx = write_tx(conn)?;
            let mut deleted = PartitionDeleted::default();
            for table in [
                "messages",
                "patients",
                "events",
                "scheduled_steps",
                "deliveries",
            ] {
                let n = tx
                    .prepare_cached(&format!("DELETE FROM {table} WHERE org = ?1"))?
                    .execute([&partition])?;
                match table {
                    "messages" => deleted.messages = n,
                    "patients" => deleted.patients = n,
                    _ => {}
                }
            }
            let group = format!("{partition}#");
            tx.prepare_cached(
                "DELETE FROM queue WHERE receipt IS NULL AND substr(group_id, 1, length(?1)) = ?1",
            )?
            .execute([&group])?;
            tx.prepare_cached(
                "DELETE FROM dead_letters WHERE substr(group_id, 1, length(?1)) = ?1",
            )?
            .execute([&group])?;
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }
}
