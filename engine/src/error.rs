//! The one error type of Sluice.
//!
//! Every failure a user can cause or meet (bad SQL, a bad option, an unreadable file, a
//! malformed record when errors are not ignored) becomes one `Error` whose `Display` is a
//! single sentence naming the table, option, file or line. Its [`ErrorKind`] says what
//! kind of failure it is (and decides the exit code); the library error it came from
//! (Arrow, DataFusion, I/O, an AWS SDK) stays attached as its source, so code that must
//! decide something looks at the typed cause, never at the wording of the message.

use std::fmt;
use std::sync::Arc;

/// Result alias used across Sluice.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Sluice error: a message meant for the user, already carrying its context.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// The table option the error is about, so a job file's error can point at it.
    option: Option<String>,
    /// The message already names the file, line and column it is about.
    located: bool,
    /// A consequence of another task's failure, not a cause of its own.
    downstream_stopped: bool,
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The job file is wrong: its SQL, its tables, its types.
    Plan,
    /// A value is wrong: a table option, a `SET` setting, a command-line argument.
    Config,
    /// A connector could not read or write: a file, a stream, a bucket, a service.
    Connector,
    /// A record could not be decoded and errors are not ignored.
    Data,
    /// A bug in Sluice: an invariant did not hold.
    Internal,
}

impl ErrorKind {
    /// The exit code of a `sluice` command that fails with this kind of error.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Plan => 3,
            ErrorKind::Config => 4,
            ErrorKind::Connector => 5,
            ErrorKind::Data => 6,
            ErrorKind::Internal => 70,
        }
    }
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
            option: None,
            located: false,
            downstream_stopped: false,
        }
    }
    pub fn plan(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Plan, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    pub fn connector(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connector, message)
    }
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attaches the library error this one came from.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Takes over `other`'s cause (the typed library error it came from).
    pub fn with_cause_of(mut self, other: &Error) -> Self {
        self.source = other.source.clone();
        self
    }

    /// Says which table option the error is about.
    pub fn for_option(mut self, key: impl Into<String>) -> Self {
        self.option = Some(key.into());
        self
    }

    /// The table option the error is about, if one is.
    pub fn option(&self) -> Option<&str> {
        self.option.as_deref()
    }

    /// Marks the message as naming its file, line and column already.
    pub fn located(mut self) -> Self {
        self.located = true;
        self
    }

    pub fn is_located(&self) -> bool {
        self.located
    }

    /// A task could not hand its output on because the task it feeds has stopped: the
    /// consequence of that task's failure, which is the error to report.
    pub fn downstream_stopped() -> Self {
        Self {
            downstream_stopped: true,
            ..Self::internal("a downstream task stopped")
        }
    }

    pub fn is_downstream_stopped(&self) -> bool {
        self.downstream_stopped
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The DataFusion error this one came from, if it did.
    pub fn datafusion(&self) -> Option<&datafusion::error::DataFusionError> {
        self.source.as_deref()?.downcast_ref()
    }

    /// Prefixes the message with where it happened (`"table 'tx'"`, `"file a.json:3"`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// This error as an operator met it while processing rows: a value that cannot be cast,
    /// parsed or computed (a DataFusion execution error, or Arrow's cast, parse, overflow or
    /// division by zero) is a data error there, not a plan error or a bug.
    pub fn at_run_time(self) -> Self {
        use arrow::error::ArrowError;
        use datafusion::error::DataFusionError;
        let value_error = |e: &ArrowError| {
            matches!(
                e,
                ArrowError::CastError(_)
                    | ArrowError::ParseError(_)
                    | ArrowError::DivideByZero
                    | ArrowError::ArithmeticOverflow(_)
                    | ArrowError::ComputeError(_)
            )
        };
        let is_value_error = match self.source.as_deref() {
            Some(source) => match source.downcast_ref::<DataFusionError>() {
                Some(df) => match df.find_root() {
                    DataFusionError::Execution(_) => true,
                    DataFusionError::ArrowError(e, _) => value_error(e),
                    _ => false,
                },
                None => source.downcast_ref::<ArrowError>().is_some_and(value_error),
            },
            None => false,
        };
        match is_value_error && matches!(self.kind, ErrorKind::Plan | ErrorKind::Internal) {
            true => self.into_kind(ErrorKind::Data),
            false => self,
        }
    }

    /// The same error as another kind (a connector's option error is a config error of
    /// the job that set the option).
    pub fn into_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::internal(format!("arrow: {e}")).with_source(e)
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        // DataFusion nests context; the innermost message is the one a user understands.
        Error::plan(e.find_root().to_string()).with_source(e)
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use datafusion::common::{Column, SchemaError};
    use datafusion::error::DataFusionError;

    use super::*;

    #[test]
    fn the_typed_cause_stays_reachable() {
        let df = DataFusionError::SchemaError(
            Box::new(SchemaError::FieldNotFound {
                field: Box::new(Column::from_name("fee")),
                valid_fields: vec![],
            }),
            Box::new(None),
        );
        let e = Error::from(df).context("table 'tx'");
        assert_eq!(e.kind(), ErrorKind::Plan);
        assert!(e.message().starts_with("table 'tx': "));
        let cause = e.datafusion().expect("the DataFusion error");
        assert!(matches!(cause, DataFusionError::SchemaError(s, _)
            if matches!(**s, SchemaError::FieldNotFound { .. })));
        assert!(e.source().is_some());
        assert_eq!(e.into_kind(ErrorKind::Config).kind().exit_code(), 4);
    }

    #[test]
    fn a_value_error_met_at_run_time_is_a_data_error() {
        let cast = DataFusionError::ArrowError(
            Box::new(arrow::error::ArrowError::CastError(
                "'abc' is not a number".into(),
            )),
            None,
        );
        assert_eq!(Error::from(cast).at_run_time().kind(), ErrorKind::Data);
        let failed = DataFusionError::Execution("JSON_VALUE found nothing".into());
        assert_eq!(Error::from(failed).at_run_time().kind(), ErrorKind::Data);
        // A missing column is still the plan's fault, and a schema mismatch a bug.
        let missing = DataFusionError::Plan("no field x".into());
        assert_eq!(Error::from(missing).at_run_time().kind(), ErrorKind::Plan);
        let schema = arrow::error::ArrowError::SchemaError("columns differ".into());
        assert_eq!(
            Error::from(schema).at_run_time().kind(),
            ErrorKind::Internal
        );
    }
}
