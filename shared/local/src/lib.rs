//! Tendon's embedded local backend: the core's storage ports on SQLite, and
//! SQS-FIFO-like work queues in SQLite tables, for `tendon serve` and tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tendon_core::ports::{QueueName, WorkItem, WorkQueue};
//! use tendon_local::SqliteStore;
//!
//! let store = SqliteStore::open(std::path::Path::new("tendon.db"))?;
//! let item = WorkItem { org: "ACME01".into(), message_id: "m1".into() };
//! store.send(QueueName::Patients, "ACME01#P555", "m1", &item).await?;
//! for got in store.receive(QueueName::Patients, 10, Duration::from_secs(30), tendon_local::now_ms()).await? {
//!     // ... handle got.item, then:
//!     store.delete(&got.receipt).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! One [`SqliteStore`] implements [`ConfigStore`](tendon_core::ports::ConfigStore),
//! [`MessageLog`](tendon_core::ports::MessageLog),
//! [`PatientStore`](tendon_core::ports::PatientStore) and
//! [`WorkQueue`](tendon_core::ports::WorkQueue) with the semantics their docs
//! give (the `tendon_core::contract` suite checks them). Records are stored
//! as the core's JSON; the columns beside them exist for keys, filters and
//! ordering only.
//!
//! All SQLite work runs on tokio's blocking pool (`spawn_blocking`) against
//! one connection behind a mutex, so async callers never block the runtime
//! and every operation sees a consistent database. Errors become
//! [`StoreError::Backend`](tendon_core::ports::StoreError) with the operation
//! and SQLite's reason, never a stored value.
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tendon_core::ports::{StoreError, StoreResult};

mod config;
mod messages;
mod patients;
mod queue;
mod schema;
pub mod worker;

pub use queue::{DEDUPE_WINDOW, Received};

/// How many receives a queue message gets before it moves to the dead letters.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// How long a writer waits for another connection's lock (another process on
/// the same file) before the operation fails and is retried.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store. Cloning is cheap: clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    max_receive_count: u32,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("max_receive_count", &self.max_receive_count)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file and brings its schema up to date.
    /// The file uses WAL journaling with `synchronous=NORMAL`, a busy timeout
    /// and enforced foreign keys.
    pub fn open(path: &Path) -> Result<SqliteStore, String> {
        let shown = path.display();
        let conn =
            Connection::open(path).map_err(|e| format!("cannot open the database {shown}: {e}"))?;
        let setup = || -> rusqlite::Result<String> {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(mode)
        };
        let mode = setup().map_err(|e| format!("cannot set up the database {shown}: {e}"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "cannot use write-ahead logging on the database {shown} (journal mode stays {mode})"
            ));
        }
        Self::init(conn).map_err(|e| format!("cannot prepare the database {shown}: {e}"))
    }

    /// A private in-memory database (one connection), for tests.
    pub fn open_in_memory() -> Result<SqliteStore, String> {
        let conn = Connection::open_in_memory()
            .map_err(|e| format!("cannot open an in-memory database: {e}"))?;
        Self::init(conn).map_err(|e| format!("cannot prepare the in-memory database: {e}"))
    }

    fn init(mut conn: Connection) -> rusqlite::Result<SqliteStore> {
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
        })
    }

    /// Sets how many receives a queue message gets before the next receive
    /// moves it to the dead letters instead (SQS `maxReceiveCount`; at least 1).
    pub fn with_max_receive_count(mut self, max_receive_count: u32) -> SqliteStore {
        self.max_receive_count = max_receive_count.max(1);
        self
    }

    pub fn max_receive_count(&self) -> u32 {
        self.max_receive_count
    }

    /// Runs `f` on the connection in the blocking pool. `what` names the
    /// operation in errors.
    pub(crate) async fn run<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let task = tokio::task::spawn_blocking(move || {
            // A panic while the lock was held rolled its transaction back
            // (rusqlite rolls back on drop), so the connection is still sound.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        });
        match task.await {
            Ok(result) => result.map_err(|fail| fail.into_store_error(what)),
            Err(join) if join.is_panic() => Err(StoreError::Backend(format!(
                "{what}: the sqlite task panicked"
            ))),
            Err(_) => Err(StoreError::Backend(format!(
                "{what}: the sqlite task was cancelled"
            ))),
        }
    }
}

/// Starts a write transaction that takes the write lock at once, so a
/// read-then-write cannot fail halfway on a lock held by another process.
pub(crate) fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Now, in Unix milliseconds: the `now_ms` to pass to the queue methods in
/// production.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Why an operation failed, before it becomes a [`StoreError`].
#[derive(Debug)]
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Json(serde_json::Error),
    Store(StoreError),
}

impl Fail {
    fn into_store_error(self, what: &str) -> StoreError {
        match self {
            Fail::Store(e) => e,
            // SQLite's reasons name tables, columns and constraints, never values.
            Fail::Sql(e) => StoreError::Backend(format!("{what}: sqlite: {e}")),
            // serde_json's messages may quote a value: keep only where it broke.
            Fail::Json(e) => StoreError::Backend(format!(
                "{what}: a stored record could not be read or written ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            )),
        }
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Sql(e)
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Fail {
        Fail::Json(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

/// A `u64` version as SQLite's `INTEGER`.
pub(crate) fn sql_int(n: u64) -> Result<i64, Fail> {
    i64::try_from(n).map_err(|_| {
        Fail::Store(StoreError::Backend(
            "a version number is out of SQLite's range".to_owned(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_errors_do_not_quote_stored_values() {
        let e = serde_json::from_str::<u64>("\"Ana Rivera 1985-03-12\"").expect_err("not a number");
        assert!(
            e.to_string().contains("Ana"),
            "serde_json would quote the value: {e}"
        );
        let StoreError::Backend(text) = Fail::Json(e).into_store_error("load_patient") else {
            panic!("a decoding failure is a backend error");
        };
        assert!(!text.contains("Ana") && !text.contains("1985"), "{text}");
        assert!(text.starts_with("load_patient: "), "{text}");
    }

    #[test]
    fn store_errors_pass_through() {
        let e = Fail::from(StoreError::NotFound("org X".to_owned())).into_store_error("update_org");
        assert_eq!(e, StoreError::NotFound("org X".to_owned()));
    }

    #[tokio::test]
    async fn a_missing_table_is_a_backend_error() {
        let store = SqliteStore::open_in_memory().expect("store");
        let got = store
            .run("probe", |conn| {
                conn.execute("DELETE FROM no_such_table", [])?;
                Ok(())
            })
            .await;
        assert!(
            matches!(got, Err(StoreError::Backend(ref t)) if t.starts_with("probe: sqlite: ")),
            "{got:?}"
        );
    }
}
