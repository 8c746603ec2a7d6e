//! What a port answers when it fails: [`StoreError`], and the backend failure
//! it carries, [`BackendError`] (the operation, the backend's own error code
//! as data, and a short detail that never quotes a stored value).
use std::fmt;

use thiserror::Error;

/// An infrastructure failure or a refused write. Business failures are never
/// errors: they are recorded outcomes on the message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    /// The backend failed; the work is retried (and ends in a DLQ if it keeps failing).
    #[error("storage backend failed: {0}")]
    Backend(BackendError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// A backend failure of `operation` (e.g. `"queue send"`,
    /// `"load_patient"`) without an error code from the backend.
    pub fn backend(operation: impl Into<String>, detail: impl Into<String>) -> StoreError {
        StoreError::Backend(BackendError::new(operation, detail))
    }

    /// A backend failure of `operation` with the backend's own error code
    /// (e.g. `ConditionalCheckFailedException`, `DatabaseBusy`, `timeout`).
    pub fn backend_code(
        operation: impl Into<String>,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) -> StoreError {
        StoreError::Backend(BackendError::new(operation, detail).with_code(code))
    }

    /// A backend failure that names no operation: only the detail is shown.
    pub fn backend_detail(detail: impl Into<String>) -> StoreError {
        StoreError::Backend(BackendError::unattributed(detail))
    }

    /// The backend's error code, for a `Backend` error that has one: branch
    /// on this rather than on the text.
    pub fn code(&self) -> Option<&str> {
        match self {
            StoreError::Backend(e) => e.code(),
            StoreError::AlreadyExists(_) | StoreError::NotFound(_) => None,
        }
    }
}

impl From<BackendError> for StoreError {
    fn from(e: BackendError) -> StoreError {
        StoreError::Backend(e)
    }
}

/// Why a storage backend failed: which operation, the backend's error code
/// when it gave one (a DynamoDB, SQS, SES or SNS service error code such as
/// `ProvisionedThroughputExceededException` or `TransactionConflict`, an SDK
/// failure kind such as `timeout` or `dispatch failure`, or SQLite's result
/// code such as `DiskFull` or `ConstraintViolation`), and a short detail.
///
/// Shown as `{operation}: {detail}`, or the detail alone when no operation is
/// named; the code is data beside the text (the detail usually says it too).
/// Nothing here quotes a stored value: no patient data.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub struct BackendError {
    operation: Option<String>,
    code: Option<String>,
    detail: String,
}

impl BackendError {
    /// A failure of `operation`, without a code.
    pub fn new(operation: impl Into<String>, detail: impl Into<String>) -> BackendError {
        BackendError {
            operation: Some(operation.into()),
            code: None,
            detail: detail.into(),
        }
    }

    /// A failure that names no operation.
    pub fn unattributed(detail: impl Into<String>) -> BackendError {
        BackendError {
            operation: None,
            code: None,
            detail: detail.into(),
        }
    }

    /// The same failure with the backend's error code.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> BackendError {
        self.code = Some(code.into());
        self
    }

    /// The operation that failed, e.g. `"queue send"` or `"load_patient"`.
    pub fn operation(&self) -> Option<&str> {
        self.operation.as_deref()
    }

    /// The backend's own error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// What happened, in a few words.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.operation {
            Some(operation) => write!(f, "{operation}: {}", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_and_its_detail_are_shown_as_before() {
        let e = StoreError::backend("insert_message", "the existing message vanished");
        assert_eq!(
            e.to_string(),
            "storage backend failed: insert_message: the existing message vanished"
        );
        assert_eq!(e.code(), None);
        let StoreError::Backend(b) = &e else {
            panic!("a backend error: {e:?}");
        };
        assert_eq!(b.operation(), Some("insert_message"));
        assert_eq!(b.detail(), "the existing message vanished");
    }

    #[test]
    fn a_code_is_data_and_leaves_the_text_alone() {
        let e = StoreError::backend_code(
            "queue send",
            "ProvisionedThroughputExceededException",
            "ProvisionedThroughputExceededException",
        );
        assert_eq!(
            e.to_string(),
            "storage backend failed: queue send: ProvisionedThroughputExceededException"
        );
        assert_eq!(e.code(), Some("ProvisionedThroughputExceededException"));
        let sqlite =
            StoreError::backend_code("commit", "DiskFull", "sqlite: database or disk is full");
        assert_eq!(
            sqlite.to_string(),
            "storage backend failed: commit: sqlite: database or disk is full"
        );
        assert_eq!(sqlite.code(), Some("DiskFull"));
    }

    #[test]
    fn without_an_operation_only_the_detail_is_shown() {
        let e = StoreError::backend_detail("Cliniko case 7 kept conflicting");
        assert_eq!(
            e.to_string(),
            "storage backend failed: Cliniko case 7 kept conflicting"
        );
        let StoreError::Backend(b) = &e else {
            panic!("a backend error: {e:?}");
        };
        assert_eq!(b.operation(), None);
        assert_eq!(b.code(), None);
    }

    #[test]
    fn only_backend_errors_have_a_code() {
        assert_eq!(StoreError::NotFound("org X".to_owned()).code(), None);
        assert_eq!(StoreError::AlreadyExists("org X".to_owned()).code(), None);
        let e: StoreError = BackendError::new("get", "timeout")
            .with_code("timeout")
            .into();
        assert_eq!(e.code(), Some("timeout"));
        assert_eq!(e, StoreError::backend_code("get", "timeout", "timeout"));
        assert_ne!(e, StoreError::backend("get", "timeout"), "the code counts");
    }

    #[test]
    fn a_backend_error_is_no_source_so_chains_print_it_once() {
        use std::error::Error as _;
        assert!(StoreError::backend("get", "timeout").source().is_none());
    }
}
