//! Why an operation failed ([`Fail`]) and how that becomes the port's
//! [`StoreError`]: SQLite's result code kept as data, its reason as the
//! detail, and never a stored value (a JSON error keeps only where it broke).
use tendon_core::ports::StoreError;

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
    pub(crate) fn into_store_error(self, what: &str) -> StoreError {
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
    pub(crate) fn new(reason: &str) -> CommitFailure {
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

/// A failure SQLite raised, as rusqlite hands it over.
#[cfg(test)]
pub(crate) fn sqlite_failure(code: std::os::raw::c_int, message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
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
