//! Why a command failed. `main` prints it after `tendon: ` on stderr and
//! exits 1 (docs/interface.md §5.3), except [`CliError::StdoutClosed`], which
//! ends the command quietly with exit 0, as Unix tools do.
use tendon_core::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store (SQLite, or DynamoDB and SQS) failed; the error keeps the
    /// operation and the backend's own code.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Whoever read stdout went away (`tendon messages list | head -3`).
    #[error("stdout is closed")]
    StdoutClosed,
    /// Stdout could not be written for another reason.
    #[error("cannot write to stdout: {0}")]
    Output(#[source] std::io::Error),
    /// What was asked cannot be done; the text says why, and what to do.
    #[error("{0}")]
    Refused(String),
}

/// A command's result.
pub type CliResult<T = ()> = Result<T, CliError>;

impl From<String> for CliError {
    fn from(reason: String) -> CliError {
        CliError::Refused(reason)
    }
}

impl From<&str> for CliError {
    fn from(reason: &str) -> CliError {
        CliError::Refused(reason.to_owned())
    }
}
