//! The schema, as numbered migrations tracked in `PRAGMA user_version`.
//!
//! To change the schema, append a migration; never edit one that has shipped.
use rusqlite::Connection;

/// Migration `i` brings the database from `user_version` `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: configuration, the message log, patients, events and the work queues.
    r#"
CREATE TABLE orgs (
    id   TEXT PRIMARY KEY NOT NULL,
    json TEXT NOT NULL
) STRICT;

CREATE TABLE ingest_keys (
    hash TEXT PRIMARY KEY NOT NULL,
    org  TEXT NOT NULL REFERENCES orgs (id)
) STRICT;
CREATE INDEX ingest_keys_org ON ingest_keys (org);

CREATE TABLE locations (
    org  TEXT NOT NULL REFERENCES orgs (id),
    id   TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (org, id)
) STRICT;

CREATE TABLE practitioners (
    org  TEXT NOT NULL REFERENCES orgs (id),
    id   TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (org, id)
) STRICT;

-- received_at: Unix nanoseconds of StoredMessage.received_at, for ordering
-- (RFC 3339 text does not sort when fractional seconds come and go).
CREATE TABLE messages (
    org         TEXT NOT NULL,
    id          TEXT NOT NULL,
    status      TEXT NOT NULL,
    control_id  TEXT,
    received_at INTEGER,
    patient_id  TEXT,
    json        TEXT NOT NULL,
    raw         BLOB NOT NULL,
    PRIMARY KEY (org, id)
) STRICT;
CREATE INDEX messages_org_status ON messages (org, status, received_at);
CREATE INDEX messages_org_received ON messages (org, received_at);

CREATE TABLE patients (
    org     TEXT NOT NULL,
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    json    TEXT NOT NULL,
    PRIMARY KEY (org, id)
) STRICT;

CREATE TABLE events (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    org  TEXT NOT NULL,
    id   TEXT NOT NULL,
    json TEXT NOT NULL,
    UNIQUE (org, id)
) STRICT;
CREATE INDEX events_org_seq ON events (org, seq);

-- SQS-FIFO-like queues. visible_at is Unix ms (0: visible at once); receipt
-- is set while a delivery is in flight.
CREATE TABLE queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    dedupe_id     TEXT NOT NULL,
    body          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,
    enqueued_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX queue_order ON queue (queue, id);
CREATE INDEX queue_group ON queue (queue, group_id, id);
CREATE UNIQUE INDEX queue_receipt ON queue (receipt);

-- Dedupe IDs seen in the last DEDUPE_WINDOW, per queue.
CREATE TABLE queue_dedupe (
    queue      TEXT NOT NULL,
    dedupe_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, dedupe_id)
) STRICT;
CREATE INDEX queue_dedupe_expiry ON queue_dedupe (expires_at);

CREATE TABLE dead_letters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    dedupe_id     TEXT NOT NULL,
    body          TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    enqueued_at   INTEGER NOT NULL,
    dead_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX dead_letters_queue ON dead_letters (queue, id);
"#,
    // 1 → 2: parked ADTs are found by patient when the patient is created.
    r#"
CREATE INDEX messages_pending ON messages (org, patient_id, received_at) WHERE status = 'pending';
"#,
    // 2 → 3: workflows, their scheduled steps and the deliveries (outbox).
    r#"
CREATE TABLE workflows (
    org  TEXT NOT NULL,
    id   TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (org, id)
) STRICT;
CREATE TABLE scheduled_steps (
    id            TEXT PRIMARY KEY,
    org           TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    status        TEXT NOT NULL,
    due_at        INTEGER NOT NULL,
    claimed_until INTEGER,
    json          TEXT NOT NULL
) STRICT;
-- Dispatch reads only this index: its size follows the due steps, not all steps.
CREATE INDEX scheduled_steps_due ON scheduled_steps (due_at) WHERE status = 'scheduled';
CREATE INDEX scheduled_steps_patient ON scheduled_steps (org, patient_id, due_at);
CREATE TABLE deliveries (
    org          TEXT NOT NULL,
    id           TEXT NOT NULL,
    patient_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    completed_at INTEGER,
    json         TEXT NOT NULL,
    PRIMARY KEY (org, id)
) STRICT;
CREATE INDEX deliveries_patient ON deliveries (org, patient_id);
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
"#,
    // 3 → 4: Cliniko connections (the "Open in" token is unique) and the
    // profiles a sync could not import.
    r#"
CREATE TABLE cliniko_connections (
    org   TEXT PRIMARY KEY NOT NULL REFERENCES orgs (id),
    token TEXT NOT NULL UNIQUE,
    json  TEXT NOT NULL
) STRICT;
CREATE TABLE cliniko_failures (
    org        TEXT NOT NULL,
    cliniko_id TEXT NOT NULL,
    json       TEXT NOT NULL,
    PRIMARY KEY (org, cliniko_id)
) STRICT;
"#,
    // 4 → 5: email addresses that bounced or complained, per org.
    r#"
CREATE TABLE suppressed_addresses (
    org     TEXT NOT NULL,
    address TEXT NOT NULL,
    reason  TEXT NOT NULL,
    PRIMARY KEY (org, address)
) STRICT;
"#,
    // 5 → 6: when each ingest key was issued (NULL for older keys), for
    // `org keys` and revocation.
    r#"
ALTER TABLE ingest_keys ADD COLUMN created_at TEXT;
"#,
    // 6 → 7: messages stored but not yet on the queue (a replay's reset; ingest
    // stores and queues in one transaction), and the sweeper's claim on them.
    // The partial index holds only those, so a sweep reads nothing else.
    r#"
ALTER TABLE messages ADD COLUMN unqueued_at INTEGER;
ALTER TABLE messages ADD COLUMN claimed_until INTEGER;
CREATE INDEX messages_unqueued ON messages (unqueued_at) WHERE unqueued_at IS NOT NULL;
"#,
    // 7 → 8: test-mode keys (`live` or `test`, tendon_core::mode).
    r#"
ALTER TABLE ingest_keys ADD COLUMN mode TEXT NOT NULL DEFAULT 'live';
"#,
];

/// Applies the migrations the database has not had, each in its own write
/// transaction (so two processes opening one new file do not both apply it).
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    loop {
        // Immediate: the write lock at once, before reading the version.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return tx.commit();
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
