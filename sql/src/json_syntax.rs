//! Flink's JSON function syntax that the SQL parser does not read, rewritten in a
//! statement's tokens before it is parsed:
//!
//! - `JSON_VALUE(doc, path [RETURNING type] [{NULL | ERROR | DEFAULT e} ON EMPTY]
//!   [{NULL | ERROR | DEFAULT e} ON ERROR])` → a `CASE` over `sluice_json_status(doc, path)`
//!   (`empty`, `error` or `ok`) that casts the value to the type, and takes the ON EMPTY
//!   action when the path finds nothing (or JSON null) and the ON ERROR one when the JSON or
//!   path is invalid, the value is not a scalar or does not convert to the type;
//! - `JSON_OBJECT([KEY] k VALUE v, ... [{NULL | ABSENT} ON NULL])` →
//!   `sluice_json_object('NULL' | 'ABSENT', k, v, ...)` (NULL ON NULL by default);
//! - `JSON_ARRAY(v, ... [{NULL | ABSENT} ON NULL])` → `sluice_json_array(...)` (ABSENT ON
//!   NULL by default).
//!
//! A call without any of these clauses is left as written (plain `JSON_VALUE(doc, path)` is
//! a function of its own).

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use sluice_engine::Result;

use crate::location::SourceFile;
use crate::windows::{is_word, matching_paren, significant_tokens};

/// Rewrites the JSON calls of a statement's tokens.
pub fn rewrite_json_syntax(
    file: &SourceFile,
    mut tokens: Vec<TokenWithSpan>,
) -> Result<Vec<TokenWithSpan>> {
    // Each pass rewrites the first call after the previous one; calls nested in its
    // arguments keep their tokens, after it, and are rewritten by later passes.
    let mut from = 0;
    loop {
        let significant = significant_tokens(&tokens);
        let found = significant
            .windows(2)
            .filter(|w| w[0] >= from)
            .find_map(|w| {
                let name = ["JSON_VALUE", "JSON_OBJECT", "JSON_ARRAY"]
                    .into_iter()
                    .find(|n| is_word(&tokens[w[0]].token, n))?;
                (tokens[w[1]].token == Token::LParen).then_some((name, w[0], w[1]))
            });
        let Some((name, at, open)) = found else {
            return Ok(tokens);
        };
        let span = tokens[at].span;
        let close = matching_paren(&tokens, open).ok_or_else(|| {
            file.error_at(span.start, format!("unbalanced parentheses in {name}(...)"))
        })?;
        let args = split_args(&tokens[open + 1..close]);
        let text = match name {
            "JSON_VALUE" => match json_value(&args) {
                Some(text) => text,
                None => format!("json_value({})", text_of(&tokens[open + 1..close])),
            },
            "JSON_OBJECT" => json_object(&args).ok_or_else(|| {
                file.error_at(
                    span.start,
                    "JSON_OBJECT takes `[KEY] key VALUE value` pairs, then optionally \
                     NULL ON NULL or ABSENT ON NULL",
                )
            })?,
            _ => json_array(&args),
        };
        let replacement = Tokenizer::new(&GenericDialect {}, &text)
            .tokenize()
            .map_err(|e| file.error_at(span.start, format!("{name}(...): {e}")))?
            .into_iter()
            .map(|t| TokenWithSpan::new(t, span))
            .collect::<Vec<_>>();
        tokens.splice(at..=close, replacement);
        from = at + 1;
    }
}

/// The tokens of the arguments, split at commas outside parentheses, without whitespace at
/// either end.
fn split_args(tokens: &[TokenWithSpan]) -> Vec<Vec<Token>> {
    let mut args = vec![Vec::new()];
    let mut depth = 0usize;
    for t in tokens {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                args.push(Vec::new());
                continue;
            }
            _ => {}
        }
        args.last_mut()
            .expect("one argument at least")
            .push(t.token.clone());
    }
    for a in &mut args {
        while a.first().is_some_and(|t| matches!(t, Token::Whitespace(_))) {
            a.remove(0);
        }
        while a.last().is_some_and(|t| matches!(t, Token::Whitespace(_))) {
            a.pop();
        }
    }
    if args.len() == 1 && args[0].is_empty() {
        args.clear();
    }
    args
}

fn text_of(tokens: &[TokenWithSpan]) -> String {
    tokens.iter().map(|t| t.token.to_string()).collect()
}

fn text(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|t| t.to_string())
        .collect::<String>()
        .trim()
        .to_string()
}

/// Positions of the words of `tokens` outside parentheses, upper-cased.
fn top_words(tokens: &[Token]) -> Vec<(usize, String)> {
    let mut depth = 0usize;
    let mut words = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(w) if depth == 0 && w.quote_style.is_none() => {
                words.push((i, w.value.to_ascii_uppercase()))
            }
            _ => {}
        }
    }
    words
}

/// What JSON_VALUE does when the path finds nothing or fails.
enum Action {
    Null,
    Error,
    Default(String),
}

/// The `CASE` for a JSON_VALUE with clauses; None without any.
fn json_value(args: &[Vec<Token>]) -> Option<String> {
    let [doc, rest] = args else { return None };
    let words = top_words(rest);
    let first_clause = words
        .iter()
        .find(|(_, w)| matches!(w.as_str(), "RETURNING" | "NULL" | "ERROR" | "DEFAULT"))?
        .0;
    let path = text(&rest[..first_clause]);
    let clause_words: Vec<&(usize, String)> =
        words.iter().filter(|(i, _)| *i >= first_clause).collect();
    let mut data_type = "VARCHAR".to_string();
    let (mut on_empty, mut on_error) = (Action::Null, Action::Null);
    let mut k = 0;
    while k < clause_words.len() {
        let (i, w) = clause_words[k];
        match w.as_str() {
            "RETURNING" => {
                let end = clause_words[k + 1..]
                    .iter()
                    .find(|(_, w)| matches!(w.as_str(), "NULL" | "ERROR" | "DEFAULT"))
                    .map_or(rest.len(), |(j, _)| *j);
                let written = text(&rest[i + 1..end]);
                data_type = if written.eq_ignore_ascii_case("STRING") {
                    "VARCHAR".into()
                } else {
                    written
                };
                k += 1;
                while k < clause_words.len() && clause_words[k].0 < end {
                    k += 1;
                }
            }
            "NULL" | "ERROR" | "DEFAULT" => {
                // ... ON EMPTY | ON ERROR: the next `ON` word ends the action.
                let on = clause_words[k + 1..].iter().position(|(_, w)| w == "ON")? + k + 1;
                let target = clause_words.get(on + 1)?.1.as_str();
                let action = match w.as_str() {
                    "NULL" => Action::Null,
                    "ERROR" => Action::Error,
                    _ => Action::Default(text(&rest[i + 1..clause_words[on].0])),
                };
                match target {
                    "EMPTY" => on_empty = action,
                    "ERROR" => on_error = action,
                    _ => return None,
                }
                k = on + 2;
            }
            _ => return None,
        }
    }
    let doc = text(doc);
    let status = format!("sluice_json_status({doc}, {path})");
    let value = format!("TRY_CAST(json_value({doc}, {path}) AS {data_type})");
    let act = |a: &Action, what: &str| match a {
        Action::Null => format!("CAST(NULL AS {data_type})"),
        Action::Default(e) => format!("CAST({e} AS {data_type})"),
        Action::Error => format!(
            "CAST(sluice_fail({}) AS {data_type})",
            quote(&format!(
                "JSON_VALUE({doc}, {path}) {what} (ERROR ON {})",
                if what.starts_with("found") {
                    "EMPTY"
                } else {
                    "ERROR"
                }
            ))
        ),
    };
    Some(format!(
        "(CASE WHEN {status} IS NULL THEN CAST(NULL AS {data_type}) \
         WHEN {status} = 'empty' THEN {} \
         WHEN {status} = 'error' OR {value} IS NULL THEN {} \
         ELSE {value} END)",
        act(&on_empty, "found nothing"),
        act(&on_error, "failed: invalid JSON or path, a value that is not a scalar, or one that does not convert"),
    ))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `NULL ON NULL` / `ABSENT ON NULL` at the end of the last argument: the mode, and the
/// argument without it.
fn null_clause(args: &mut [Vec<Token>]) -> Option<&'static str> {
    let last = args.last_mut()?;
    let words = top_words(last);
    let n = words.len();
    if n >= 3 && words[n - 2].1 == "ON" && words[n - 1].1 == "NULL" {
        let mode = match words[n - 3].1.as_str() {
            "NULL" => "NULL",
            "ABSENT" => "ABSENT",
            _ => return None,
        };
        last.truncate(words[n - 3].0);
        return Some(mode);
    }
    None
}

fn json_object(args: &[Vec<Token>]) -> Option<String> {
    let mut args = args.to_vec();
    let mode = null_clause(&mut args).unwrap_or("NULL");
    let mut parts = vec![quote(mode)];
    for arg in args.iter().filter(|a| !text(a).is_empty()) {
        let words = top_words(arg);
        let start = match words.first() {
            Some((0, w)) if w == "KEY" => 1,
            _ => 0,
        };
        let value = words.iter().find(|(i, w)| *i >= start && w == "VALUE")?.0;
        parts.push(text(&arg[start..value]));
        parts.push(text(&arg[value + 1..]));
    }
    Some(format!("sluice_json_object({})", parts.join(", ")))
}

fn json_array(args: &[Vec<Token>]) -> String {
    let mut args = args.to_vec();
    let mode = null_clause(&mut args).unwrap_or("ABSENT");
    let mut parts = vec![quote(mode)];
    parts.extend(args.iter().map(|a| text(a)).filter(|t| !t.is_empty()));
    format!("sluice_json_array({})", parts.join(", "))
}

/// `sql` with its JSON calls rewritten, for tests.
#[cfg(test)]
fn rewritten(sql: &str) -> String {
    let (file, tokens) = crate::location::test_tokens(sql);
    rewrite_json_syntax(&file, tokens)
        .unwrap()
        .iter()
        .map(|t| t.token.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_value_clauses_become_a_case() {
        assert_eq!(
            rewritten("SELECT JSON_VALUE(doc, '$.a')"),
            "SELECT json_value(doc, '$.a')"
        );
        let case = rewritten(
            "JSON_VALUE(doc, '$.a' RETURNING INT DEFAULT -1 ON EMPTY DEFAULT f(x, 2) ON ERROR)",
        );
        assert!(
            case.contains("WHEN sluice_json_status(doc, '$.a') = 'empty' THEN CAST(-1 AS INT)"),
            "{case}"
        );
        assert!(
            case.contains("THEN CAST(f(x, 2) AS INT) ELSE TRY_CAST(json_value(doc, '$.a') AS INT)"),
            "{case}"
        );
        let case = rewritten("JSON_VALUE(doc, '$.a' ERROR ON EMPTY)");
        // (A token shows its string without escaping the quotes inside.)
        assert!(
            case.contains(
                "CAST(sluice_fail('JSON_VALUE(doc, '$.a') found nothing (ERROR ON EMPTY)') \
                 AS VARCHAR)"
            ),
            "{case}"
        );
    }

    #[test]
    fn json_object_and_array_name_their_null_handling() {
        assert_eq!(
            rewritten("JSON_OBJECT(KEY 'a' VALUE 1, 'b' VALUE JSON_ARRAY(x, NULL NULL ON NULL))"),
            "sluice_json_object('NULL', 'a', 1, 'b', sluice_json_array('NULL', x, NULL))"
        );
        assert_eq!(
            rewritten("JSON_OBJECT('k' VALUE v ABSENT ON NULL)"),
            "sluice_json_object('ABSENT', 'k', v)"
        );
        assert_eq!(rewritten("JSON_ARRAY()"), "sluice_json_array('ABSENT')");
        assert_eq!(rewritten("JSON_OBJECT()"), "sluice_json_object('NULL')");
    }
}
