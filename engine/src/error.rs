//! The one error type of Sluice.
//!
//! Every failure a user can cause or meet (bad SQL, a bad option, an unreadable file, a
//! malformed record when errors are not ignored) becomes one `Error` whose `Display` is a
//! single sentence naming the table, option, file or line. Library errors (Arrow,
//! DataFusion, I/O) are wrapped with the context of where they happened.

use std::fmt;

/// Result alias used across Sluice.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Sluice error: a message meant for the user, already carrying its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// What kind of failure an [`Error`] is; decides nothing but the exit code and the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The job file is wrong: SQL, options, types.
    Plan,
    /// A connector could not read or write: file, network, service.
    Connector,
    /// A record could not be decoded and errors are not ignored.
    Data,
    /// A bug in Sluice: an invariant did not hold.
    Internal,
}

impl Error {
    pub fn plan(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Plan,
            message: message.into(),
        }
    }
    pub fn connector(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Connector,
            message: message.into(),
        }
    }
    pub fn data(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Data,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Prefixes the message with where it happened (`"table 'tx'"`, `"file a.json:3"`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::internal(format!("arrow: {e}"))
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        // DataFusion nests context; the innermost message is the one a user understands.
        Error::plan(e.find_root().to_string())
    }
}

/// Adds context to any error that converts into [`Error`].
pub trait ResultExt<T> {
    fn context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}
