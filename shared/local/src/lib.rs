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
//! let item = WorkItem { org: "ACME01".into(), message_id: "m1".into(), patient_id: None };
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
//! give (the `tendon-contract` suites check them). Records are stored
//! as the core's JSON; the columns beside them exist for keys, filters and
//! ordering only.
//!
//! Writes run on one writer connection owned by a dedicated thread, which
//! applies the writes queued while it was busy together, in one SQLite
//! transaction (group commit), each in a savepoint of its own: a failed write
//! rolls back alone, and every caller gets its answer only after the
//! transaction committed and was synced to disk, so what it wrote is visible
//! to every later read and survives a crash of the machine.
//! Reads run on a pool of read-only connections beside it (WAL readers never
//! wait for the writer): point reads on the calling thread, lists on tokio's
//! blocking pool. An in-memory database has the one connection only, so its
//! reads go through the writer too. Errors become
//! [`StoreError::Backend`](tendon_core::ports::StoreError) with the operation,
//! SQLite's result code (as data: `StoreError::code`) and its reason, never a
//! stored value.
//!
//! This file owns the store itself: opening the database, the read
//! connections, and the way to the writer thread (`writer.rs`, with the group
//! commit). `fail.rs` turns failures into `StoreError`s, `sql.rs` holds what
//! the port modules (`config.rs`, `messages.rs`, ...) share.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tendon_core::ports::{StoreError, StoreResult};

mod cliniko;
mod config;
mod fail;
mod health;
mod messages;
mod patients;
mod queue;
mod schema;
mod sql;
mod workflows;
mod writer;

pub(crate) use fail::Fail;
use writer::Writer;

pub use queue::{DEDUPE_WINDOW, LocalQueue, Received, VISIBILITY, drain, process_batch_at};
pub use workflows::LocalOutbox;

/// How many receives a queue message gets before it moves to the dead letters.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// How long a writer waits for another connection's lock (another process on
/// the same file) before the operation fails and is retried.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL pages between automatic checkpoints (SQLite's default is 1,000).
const WAL_AUTOCHECKPOINT: u32 = 4_000;

/// The SQLite store. Cloning is cheap: clones share the writer and the readers.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    /// None for an in-memory database: its reads go to the writer.
    readers: Option<Arc<Readers>>,
    max_receive_count: u32,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("max_receive_count", &self.max_receive_count)
            .finish_non_exhaustive()
    }
}

/// Sets up a file connection: busy timeout, WAL, `synchronous=FULL`.
///
/// FULL, not NORMAL: in WAL mode NORMAL leaves a commit in the OS's cache
/// until the next checkpoint, so a machine or filesystem failure after the
/// `AA` could lose an acknowledged message. With FULL each commit is synced
/// before it is answered; the writer's group commit makes one sync cover every
/// write that arrived meanwhile (docs/benchmarks.md has the cost).
fn setup_file_connection(conn: &Connection) -> rusqlite::Result<String> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", synchronous())?;
    Ok(mode)
}

/// The environment variable that lowers `synchronous` to NORMAL: for
/// measuring what durable acknowledgements cost (docs/benchmarks.md), or a
/// deployment that accepts losing the last acknowledged messages when the
/// machine fails (docs/operations.md). Any other value keeps FULL.
pub const ENV_SQLITE_SYNCHRONOUS: &str = "TENDON_SQLITE_SYNCHRONOUS";

fn synchronous() -> &'static str {
    match std::env::var(ENV_SQLITE_SYNCHRONOUS) {
        Ok(v) if v.eq_ignore_ascii_case("normal") => "NORMAL",
        _ => "FULL",
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file and brings its schema up to date.
    /// The file uses WAL journaling with `synchronous=FULL`, a busy timeout
    /// and enforced foreign keys.
    pub fn open(path: &Path) -> Result<SqliteStore, String> {
        let shown = path.display();
        let conn =
            Connection::open(path).map_err(|e| format!("cannot open the database {shown}: {e}"))?;
        let mode = setup_file_connection(&conn)
            .and_then(|mode| {
                conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
                Ok(mode)
            })
            .map_err(|e| format!("cannot set up the database {shown}: {e}"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "cannot use write-ahead logging on the database {shown} (journal mode stays {mode})"
            ));
        }
        let readers = Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        Self::init(conn, Some(readers))
            .map_err(|e| format!("cannot prepare the database {shown}: {e}"))
    }

    /// A private in-memory database (one connection), for tests.
    pub fn open_in_memory() -> Result<SqliteStore, String> {
        let conn = Connection::open_in_memory()
            .map_err(|e| format!("cannot open an in-memory database: {e}"))?;
        Self::init(conn, None).map_err(|e| format!("cannot prepare the in-memory database: {e}"))
    }

    fn init(mut conn: Connection, readers: Option<Readers>) -> Result<SqliteStore, String> {
        let prepare = |conn: &mut Connection| -> rusqlite::Result<()> {
            conn.pragma_update(None, "foreign_keys", true)?;
            schema::migrate(conn)
        };
        prepare(&mut conn).map_err(|e| e.to_string())?;
        if let Some(readers) = &readers {
            // Fail now, not on the first read, if a reader cannot open.
            let reader = readers.open().map_err(|e| e.to_string())?;
            readers.put_back(reader);
        }
        Ok(SqliteStore {
            writer: Arc::new(Writer::start(conn).map_err(|e| e.to_string())?),
            readers: readers.map(Arc::new),
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

    /// Runs `f` on the writer connection, inside the writer's transaction and
    /// a savepoint of its own (rolled back if `f` fails), and answers once
    /// that transaction committed. `what` names the operation in errors.
    pub(crate) async fn run<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    {
        self.writer.run(what, f).await
    }

    /// Runs a short read `f` at once on a read connection, on the calling
    /// thread (a WAL reader never waits for a writer), or through the writer
    /// for an in-memory database.
    pub(crate) async fn read_now<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    {
        match &self.readers {
            Some(readers) => readers.with(f).map_err(|fail| fail.into_store_error(what)),
            None => self.run(what, f).await,
        }
    }

    /// Runs a read `f` that may take a while (a list) on a read connection in
    /// the blocking pool, or through the writer for an in-memory database.
    pub(crate) async fn read<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    {
        let Some(readers) = &self.readers else {
            return self.run(what, f).await;
        };
        let readers = Arc::clone(readers);
        match tokio::task::spawn_blocking(move || readers.with(f)).await {
            Ok(result) => result.map_err(|fail| fail.into_store_error(what)),
            Err(join) if join.is_panic() => {
                Err(StoreError::backend(what, "the sqlite task panicked"))
            }
            Err(_) => Err(StoreError::backend(what, "the sqlite task was cancelled")),
        }
    }
}

/// Idle read-only connections to the database file, opened on demand (at
/// most one per thread reading at the same time).
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    fn put_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(conn);
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, Fail>) -> Result<T, Fail> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = f(&mut conn);
        // A connection left inside a transaction would pin an old snapshot.
        if conn.is_autocommit() {
            self.put_back(conn);
        }
        result
    }
}

/// Starts a write: a savepoint inside the writer's transaction, so a
/// read-then-write sees no other write between its steps, and an early
/// return (dropping it) rolls back this write alone.
pub(crate) fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Savepoint<'_>> {
    conn.savepoint()
}

/// Starts a read that needs one consistent snapshot across statements.
pub(crate) fn read_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Savepoint<'_>> {
    conn.savepoint()
}

/// Now, in Unix milliseconds: the `now_ms` to pass to the queue methods in
/// production.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store on the file `{name}.db` in a temp folder of its own, and that
    /// folder, for the test to remove.
    fn file_store(name: &str) -> (PathBuf, SqliteStore) {
        let dir = std::env::temp_dir().join(format!("tendon-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = SqliteStore::open(&dir.join(format!("{name}.db"))).expect("store");
        (dir, store)
    }

    /// A write (or read) that runs `sql` alone.
    fn execute(sql: &'static str) -> impl FnOnce(&mut Connection) -> Result<(), Fail> + Send {
        move |conn| {
            conn.execute(sql, [])?;
            Ok(())
        }
    }

    /// An acknowledged message must survive a machine or filesystem failure:
    /// the writer commits with `synchronous=FULL` (2), not NORMAL (1).
    #[tokio::test]
    async fn the_writer_syncs_every_commit() {
        let (dir, store) = file_store("sync");
        let level = store
            .run("probe", |conn| {
                Ok(conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))?)
            })
            .await;
        assert_eq!(level, Ok(2));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_missing_table_is_a_backend_error() {
        let store = SqliteStore::open_in_memory().expect("store");
        let got = store
            .run("probe", execute("DELETE FROM no_such_table"))
            .await;
        let e = got.expect_err("no such table");
        assert!(
            matches!(&e, StoreError::Backend(b) if b.operation() == Some("probe") && b.detail().starts_with("sqlite: ")),
            "{e:?}"
        );
        // SQLITE_ERROR, SQLite's generic code, is rusqlite's `Unknown`.
        assert_eq!(e.code(), Some("Unknown"));
        assert_eq!(
            e.to_string(),
            "storage backend failed: probe: sqlite: no such table: no_such_table"
        );
    }

    #[tokio::test]
    async fn a_constraint_violation_keeps_sqlite_s_code() {
        let store = SqliteStore::open_in_memory().expect("store");
        let insert = || {
            store.run(
                "probe",
                execute("INSERT INTO orgs (id, json) VALUES ('A', '{}')"),
            )
        };
        assert_eq!(insert().await, Ok(()));
        let e = insert().await.expect_err("the ID is taken");
        assert_eq!(e.code(), Some("ConstraintViolation"));
        assert_eq!(
            e.to_string(),
            "storage backend failed: probe: sqlite: UNIQUE constraint failed: orgs.id"
        );
    }

    #[tokio::test]
    async fn a_write_on_a_read_connection_keeps_sqlite_s_code() {
        let (dir, store) = file_store("readonly");
        let got = store
            .read_now(
                "probe",
                execute("INSERT INTO orgs (id, json) VALUES ('A', '{}')"),
            )
            .await;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        let e = got.expect_err("read connections are query-only");
        assert_eq!(e.code(), Some("ReadOnly"));
        assert!(
            e.to_string()
                .starts_with("storage backend failed: probe: sqlite: "),
            "{e}"
        );
    }
}
