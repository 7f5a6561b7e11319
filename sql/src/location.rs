//! Positions in a job file, and errors that point at them.

use datafusion::sql::sqlparser::tokenizer::Location;
use sluice_engine::Error;

/// A job file's name and text, for messages of the form `file:line:column: message`.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    /// A plan error at `location` in this file.
    pub fn error_at(&self, location: Location, message: impl std::fmt::Display) -> Error {
        Error::plan(format!(
            "{}:{}:{}: {}",
            self.path,
            location.line.max(1),
            location.column.max(1),
            message
        ))
        .located()
    }

    /// `error` placed at `location` in this file, keeping its kind and cause.
    pub fn locate(
        &self,
        location: Location,
        error: &Error,
        message: impl std::fmt::Display,
    ) -> Error {
        self.error_at(location, message)
            .into_kind(error.kind())
            .with_cause_of(error)
    }
}

/// A job file `job.sql` holding `sql`, and its tokens: for the tests of the token rewrites.
#[cfg(test)]
pub(crate) fn test_tokens(
    sql: &str,
) -> (
    SourceFile,
    Vec<datafusion::sql::sqlparser::tokenizer::TokenWithSpan>,
) {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;
    let file = SourceFile {
        path: "job.sql".into(),
        text: sql.into(),
    };
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .expect("the test's SQL tokenizes");
    (file, tokens)
}
