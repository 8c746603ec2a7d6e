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
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tendon_core::ports::{StoreError, StoreResult};
use tokio::sync::oneshot;

mod cliniko;
mod config;
mod health;
mod messages;
mod patients;
mod queue;
mod schema;
mod workflows;

pub use queue::{DEDUPE_WINDOW, LocalQueue, Received, VISIBILITY, drain, process_batch_at};
pub use workflows::LocalOutbox;

/// How many receives a queue message gets before it moves to the dead letters.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// How long a writer waits for another connection's lock (another process on
/// the same file) before the operation fails and is retried.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many queued writes share one transaction.
const MAX_GROUP: usize = 256;

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
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            f: Some(f),
            result: None,
            reply,
        });
        self.writer
            .submit(job)
            .map_err(|()| StoreError::backend(what, "the sqlite writer has stopped"))?;
        match answer.await {
            Ok(result) => result.map_err(|fail| fail.into_store_error(what)),
            Err(_) => Err(StoreError::backend(what, "the sqlite task was cancelled")),
        }
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

/// One write waiting for, or run by, the writer thread.
trait Job: Send {
    /// Runs the write inside the group's transaction, in its own savepoint.
    fn run(&mut self, conn: &mut Connection);
    /// Answers the caller once the group's transaction committed or failed.
    fn finish(self: Box<Self>, committed: Result<(), &CommitFailure>);
}

struct Pending<T, F> {
    f: Option<F>,
    result: Option<Result<T, Fail>>,
    reply: oneshot::Sender<Result<T, Fail>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&mut Connection) -> Result<T, Fail> + Send,
{
    fn run(&mut self, conn: &mut Connection) {
        let Some(f) = self.f.take() else {
            return;
        };
        if conn.is_autocommit() {
            // An earlier write's error made SQLite roll the whole group back.
            self.result = Some(Err(Fail::Commit(CommitFailure::new(
                "the transaction was rolled back",
            ))));
            return;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            self.result = Some(Err(Fail::Sql(e)));
            return;
        }
        // A panic is this write's failure only: its savepoint is rolled back.
        let result = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
            Ok(result) => result,
            Err(_) => Err(Fail::Panicked),
        };
        let end = match &result {
            Ok(_) => conn.execute_batch("RELEASE job"),
            Err(_) => conn.execute_batch("ROLLBACK TO job; RELEASE job"),
        };
        self.result = Some(match (result, end) {
            (Ok(_), Err(e)) => Err(Fail::Sql(e)),
            (result, _) => result,
        });
    }

    fn finish(self: Box<Self>, committed: Result<(), &CommitFailure>) {
        let result = match (self.result, committed) {
            (Some(Ok(_)), Err(failure)) | (None, Err(failure)) => {
                Err(Fail::Commit(failure.clone()))
            }
            (Some(result), Ok(())) => result,
            (Some(Err(e)), Err(_)) => Err(e),
            (None, Ok(())) => Err(Fail::Commit(CommitFailure::new("the write did not run"))),
        };
        // The caller may have gone away; the write stands either way.
        let _ = self.reply.send(result);
    }
}

/// The writer thread and the way to it. Dropping it (with the last store
/// clone) lets the thread finish the writes already queued, then waits for it.
struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(conn: Connection) -> std::io::Result<Writer> {
        let (jobs, queued) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("tendon-sqlite-writer".to_owned())
            .spawn(move || write_loop(conn, &queued))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn submit(&self, job: Box<dyn Job>) -> Result<(), ()> {
        let jobs = self.jobs.as_ref().ok_or(())?;
        jobs.send(job).map_err(|_| ())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Takes the writes queued so far (up to [`MAX_GROUP`]), runs them in one
/// `BEGIN IMMEDIATE` transaction, commits, answers them; until the store is gone.
fn write_loop(mut conn: Connection, queued: &mpsc::Receiver<Box<dyn Job>>) {
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = queued.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queued.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let committed = match conn.execute_batch("BEGIN IMMEDIATE") {
            Err(e) => Err(CommitFailure::from(&e)),
            Ok(()) => {
                for job in &mut group {
                    job.run(&mut conn);
                }
                match conn.execute_batch("COMMIT") {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        if !conn.is_autocommit() {
                            let _ = conn.execute_batch("ROLLBACK");
                        }
                        Err(CommitFailure::from(&e))
                    }
                }
            }
        };
        for job in group.drain(..) {
            job.finish(committed.as_ref().map(|_| ()));
        }
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

/// Why an operation failed, before it becomes a [`StoreError`].
#[derive(Debug)]
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Json(serde_json::Error),
    Store(StoreError),
    /// The write ran, but its group's transaction did not commit.
    Commit(CommitFailure),
    Panicked,
}

impl Fail {
    fn into_store_error(self, what: &str) -> StoreError {
        match self {
            Fail::Store(e) => e,
            Fail::Commit(CommitFailure { code, reason }) => {
                sqlite_error(what, code, format!("sqlite: {reason}"))
            }
            Fail::Panicked => StoreError::backend(what, "the sqlite task panicked"),
            // SQLite's reasons name tables, columns and constraints, never values.
            Fail::Sql(e) => sqlite_error(what, sqlite_code(&e), format!("sqlite: {e}")),
            // serde_json's messages may quote a value: keep only where it broke.
            Fail::Json(e) => StoreError::backend(
                what,
                format!(
                    "a stored record could not be read or written ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            ),
        }
    }
}

/// Why the writer's transaction did not begin or commit: SQLite's result
/// code when it gave one (`DatabaseBusy`, `DiskFull`, ...) and its reason.
#[derive(Clone, Debug)]
pub(crate) struct CommitFailure {
    code: Option<String>,
    reason: String,
}

impl CommitFailure {
    /// A failure SQLite reported no code for.
    fn new(reason: &str) -> CommitFailure {
        CommitFailure {
            code: None,
            reason: reason.to_owned(),
        }
    }
}

impl From<&rusqlite::Error> for CommitFailure {
    fn from(e: &rusqlite::Error) -> CommitFailure {
        CommitFailure {
            code: sqlite_code(e),
            reason: e.to_string(),
        }
    }
}

/// SQLite's primary result code as rusqlite names it (`ConstraintViolation`,
/// `DatabaseBusy`, `DiskFull`, `ReadOnly`, ...), for an error SQLite raised.
fn sqlite_code(e: &rusqlite::Error) -> Option<String> {
    e.sqlite_error_code().map(|c| format!("{c:?}"))
}

fn sqlite_error(what: &str, code: Option<String>, detail: String) -> StoreError {
    match code {
        Some(code) => StoreError::backend_code(what, code, detail),
        None => StoreError::backend(what, detail),
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
        Fail::Store(StoreError::backend_detail(
            "a version number is out of SQLite's range",
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
        let StoreError::Backend(b) = Fail::Json(e).into_store_error("load_patient") else {
            panic!("a decoding failure is a backend error");
        };
        let text = b.to_string();
        assert!(!text.contains("Ana") && !text.contains("1985"), "{text}");
        assert_eq!(b.operation(), Some("load_patient"));
        assert!(text.starts_with("load_patient: "), "{text}");
        assert_eq!(b.code(), None, "serde_json has no code");
    }

    #[test]
    fn store_errors_pass_through() {
        let e = Fail::from(StoreError::NotFound("org X".to_owned())).into_store_error("update_org");
        assert_eq!(e, StoreError::NotFound("org X".to_owned()));
    }

    #[tokio::test]
    async fn a_failed_or_panicking_write_rolls_back_alone() {
        let store = SqliteStore::open_in_memory().expect("store");
        let insert = |id: &'static str, outcome: u8| {
            store.run("probe", move |conn| {
                conn.execute("INSERT INTO orgs (id, json) VALUES (?1, '{}')", [id])?;
                match outcome {
                    0 => Ok(()),
                    1 => Err(Fail::Store(StoreError::NotFound("B".to_owned()))),
                    _ => panic!("a write panicked"),
                }
            })
        };
        // Sent together, so the writer usually runs them in one transaction.
        let (a, b, c, d) = tokio::join!(
            insert("A", 0),
            insert("B", 1),
            insert("C", 2),
            insert("D", 0)
        );
        assert_eq!(a, Ok(()));
        assert_eq!(b, Err(StoreError::NotFound("B".to_owned())));
        assert_eq!(
            c,
            Err(StoreError::backend("probe", "the sqlite task panicked"))
        );
        assert_eq!(d, Ok(()));
        let ids = store
            .read("probe", |conn| {
                let mut stmt = conn.prepare("SELECT id FROM orgs ORDER BY id")?;
                let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
                Ok(ids.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
            .expect("read");
        assert_eq!(ids, ["A", "D"]);
    }

    /// An acknowledged message must survive a machine or filesystem failure:
    /// the writer commits with `synchronous=FULL` (2), not NORMAL (1).
    #[tokio::test]
    async fn the_writer_syncs_every_commit() {
        let dir = std::env::temp_dir().join(format!("tendon-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = SqliteStore::open(&dir.join("sync.db")).expect("store");
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
            .run("probe", |conn| {
                conn.execute("DELETE FROM no_such_table", [])?;
                Ok(())
            })
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
            store.run("probe", |conn| {
                conn.execute("INSERT INTO orgs (id, json) VALUES ('A', '{}')", [])?;
                Ok(())
            })
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
        let dir = std::env::temp_dir().join(format!("tendon-readonly-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = SqliteStore::open(&dir.join("ro.db")).expect("store");
        let got = store
            .read_now("probe", |conn| {
                conn.execute("INSERT INTO orgs (id, json) VALUES ('A', '{}')", [])?;
                Ok(())
            })
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

    /// A failure SQLite raised, as rusqlite hands it over.
    fn sqlite_failure(code: std::os::raw::c_int, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
    }

    #[test]
    fn a_failed_commit_keeps_sqlite_s_code() {
        for (code, name, message) in [
            (
                rusqlite::ffi::SQLITE_BUSY,
                "DatabaseBusy",
                "database is locked",
            ),
            (
                rusqlite::ffi::SQLITE_FULL,
                "DiskFull",
                "database or disk is full",
            ),
        ] {
            let failure = CommitFailure::from(&sqlite_failure(code, message));
            // Every write of the group gets the commit's failure.
            let (reply, mut answer) = oneshot::channel();
            let job: Box<dyn Job> = Box::new(Pending {
                f: None::<fn(&mut Connection) -> Result<(), Fail>>,
                result: Some(Ok(())),
                reply,
            });
            job.finish(Err(&failure));
            let fail = answer
                .try_recv()
                .expect("answered")
                .expect_err("not committed");
            let e = fail.into_store_error("insert_message");
            assert_eq!(e.code(), Some(name));
            assert_eq!(
                e.to_string(),
                format!("storage backend failed: insert_message: sqlite: {message}")
            );
        }
    }

    #[test]
    fn a_statement_s_failure_keeps_sqlite_s_code_and_others_have_none() {
        let e = Fail::Sql(sqlite_failure(
            rusqlite::ffi::SQLITE_FULL,
            "database or disk is full",
        ))
        .into_store_error("commit");
        assert_eq!(e.code(), Some("DiskFull"));
        let e = Fail::Sql(rusqlite::Error::QueryReturnedNoRows).into_store_error("get");
        assert_eq!(e.code(), None, "not raised by SQLite: {e}");
        let e = Fail::Commit(CommitFailure::new("the write did not run")).into_store_error("get");
        assert_eq!(
            e,
            StoreError::backend("get", "sqlite: the write did not run")
        );
    }
}
