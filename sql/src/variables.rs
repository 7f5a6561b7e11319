//! Environment variables in job files: `'${NAME}'` and `'${NAME:-default}'` inside quoted
//! strings.
//!
//! One job file then serves several places: the docker compose stack sets the bucket and the
//! checkpoint folder through the environment, a laptop run uses the defaults. Only quoted
//! strings are expanded (option values, `SET` values, literals), never SQL text or comments,
//! so a variable cannot change the statement's shape and error positions stay those of the
//! file. `$${` stands for a literal `${`.

use std::fmt;

/// A variable reference that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableError {
    /// Byte offset of the `${` in the string.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for VariableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Expands every `${NAME}` and `${NAME:-default}` in `text` with `lookup`. A variable that
/// is unset, or set to the empty string, takes its default; without a default it is an error.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, VariableError> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let offset = text.len() - rest.len() + at;
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(body_start) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(VariableError {
                offset,
                message: "'${' without a closing '}' (write '$${' for a literal '${')".into(),
            });
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(VariableError {
                offset,
                message: format!(
                    "'${{{body}}}' is not a variable reference: expected ${{NAME}} or \
                     ${{NAME:-default}} with a name of letters, digits and '_'"
                ),
            });
        }
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(VariableError {
                    offset,
                    message: format!(
                        "environment variable {name} is not set (give it a default: \
                         ${{{name}:-value}})"
                    ),
                })
            }
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "BUCKET" => Some("demo".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(expand("s3://${BUCKET}/tx", env).unwrap(), "s3://demo/tx");
        assert_eq!(
            expand(
                "${MISSING:-out/cp}|${BUCKET:-x}|${EMPTY:-e}|${MISSING:-}",
                env
            )
            .unwrap(),
            "out/cp|demo|e|"
        );
        assert_eq!(
            expand("$dt $hour:00:00 costs $5", env).unwrap(),
            "$dt $hour:00:00 costs $5"
        );
        assert_eq!(expand("$${BUCKET}", env).unwrap(), "${BUCKET}");
    }

    #[test]
    fn says_what_is_wrong_and_where() {
        let e = expand("path ${MISSING}", env).unwrap_err();
        assert_eq!(e.offset, 5);
        assert!(e.message.contains("MISSING is not set"), "{e}");
        assert_eq!(expand("${BUCKET", env).unwrap_err().offset, 0);
        let e = expand("a ${1X}", env).unwrap_err();
        assert!(e.message.contains("not a variable reference"), "{e}");
    }
}
