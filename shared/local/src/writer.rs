//! The single writer: one connection owned by a dedicated thread, which runs
//! the writes queued while it was busy together in one `BEGIN IMMEDIATE`
//! transaction (group commit), each in a savepoint of its own, and answers
//! every caller only once that transaction committed (or failed).
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tendon_core::ports::{StoreError, StoreResult};
use tokio::sync::oneshot;

use crate::fail::{CommitFailure, Fail};

/// At most this many queued writes share one transaction.
const MAX_GROUP: usize = 256;

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
pub(crate) struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn start(conn: Connection) -> std::io::Result<Writer> {
        let (jobs, queued) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("tendon-sqlite-writer".to_owned())
            .spawn(move || write_loop(conn, &queued))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues `f` for the writer thread and waits for its answer, which comes
    /// once the group's transaction committed. `what` names the operation in
    /// errors.
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
        self.submit(job)
            .map_err(|()| StoreError::backend(what, "the sqlite writer has stopped"))?;
        match answer.await {
            Ok(result) => result.map_err(|fail| fail.into_store_error(what)),
            Err(_) => Err(StoreError::backend(what, "the sqlite task was cancelled")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use crate::fail::sqlite_failure;

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
}
