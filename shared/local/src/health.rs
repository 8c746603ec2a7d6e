//! `GET /health` on the local backend: one write through the SQLite writer.
//!
//! The probe goes where ingest's writes go, so it fails when they would hang
//! or fail: the writer thread stuck (a frozen or full filesystem, a write that
//! never returns), another process holding the database's write lock, or a
//! commit that fails. It writes one row of its own table (created on first
//! use, outside the numbered migrations because nothing else reads it): a
//! read, or an empty transaction, would not touch the file.
use std::time::Duration;

use tendon_core::health::{Failing, HealthCheck, Part};

use crate::SqliteStore;

/// How long the probe waits for the writer. An idle writer answers in
/// milliseconds (one small synced commit); a busy one commits a group of
/// writes in well under a second. Shorter than the writer's 5 s busy timeout,
/// so a database locked by another process is reported as failing rather
/// than answered late, and well within a health checker's usual 5 to 10 s.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl HealthCheck for SqliteStore {
    async fn failing(&self) -> Vec<Failing> {
        let probe = self.run("health probe", |conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS health (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     checked_ms INTEGER NOT NULL
                 )",
            )?;
            conn.execute(
                "INSERT INTO health (id, checked_ms) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET checked_ms = excluded.checked_ms",
                [crate::now_ms()],
            )?;
            Ok(())
        });
        let reason = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => return Vec::new(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "the sqlite writer did not answer within {} s",
                PROBE_TIMEOUT.as_secs()
            ),
        };
        vec![Failing {
            part: Part::Store,
            reason,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_working_store_is_healthy_and_a_locked_one_is_not() {
        let dir = std::env::temp_dir().join(format!(
            "tendon-health-{}-{}",
            std::process::id(),
            crate::now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("t.db");
        let store = SqliteStore::open(&path).expect("store");
        assert_eq!(store.failing().await, []);
        assert_eq!(store.failing().await, [], "the probe can run again");

        // Another connection holds the write lock: the writer waits on it.
        let other = rusqlite::Connection::open(&path).expect("a second connection");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("the write lock");
        let failing = store.failing().await;
        assert_eq!(failing.len(), 1, "{failing:?}");
        assert_eq!(failing[0].part, Part::Store);
        other.execute_batch("ROLLBACK").expect("released");
        drop(other);

        // Healthy again once the lock is gone (the timed-out probe's write may
        // still be ahead of this one in the writer's queue).
        assert_eq!(store.failing().await, []);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
