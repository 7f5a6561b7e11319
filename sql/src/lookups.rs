//! Lookup joins in a query's syntax: `JOIN t FOR SYSTEM_TIME AS OF s.proc_time AS d`.
//!
//! The SQL parser reads `FOR SYSTEM_TIME AS OF` only in dialects Sluice does not use, and
//! DataFusion would plan it as if it were not written; so, before parsing, each such table
//! is renamed to a generated one (`__lookup_N`, registered with the table's columns) and the
//! clause is taken out of the statement's tokens. The planner recognises the join by the
//! generated name. Without an alias the table keeps its own name as one, so the query's
//! `t.col` references still resolve.

use datafusion::sql::sqlparser::ast::Expr as Ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Whitespace, Word};
use sluice_engine::Result;

use crate::location::SourceFile;
use crate::windows::{is_word, significant_tokens};

/// One `FOR SYSTEM_TIME AS OF` table of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupCall {
    /// The generated table name the query now reads.
    pub generated: String,
    /// The table as the job defines it.
    pub table: String,
    /// The time the rows are looked up at: `(qualifier, column)`.
    pub time: (Option<String>, String),
    /// Where the table is named, for errors.
    pub location: Location,
}

/// The prefix of generated lookup table names.
pub const PREFIX: &str = "__lookup_";

/// Words after a table that are not its alias.
const NOT_ALIASES: &[&str] = &[
    "ON", "USING", "WHERE", "JOIN", "LEFT", "RIGHT", "INNER", "FULL", "CROSS", "GROUP", "ORDER",
    "UNION", "LIMIT", "HAVING", "WINDOW",
];

fn word(value: &str, span: datafusion::sql::sqlparser::tokenizer::Span) -> TokenWithSpan {
    TokenWithSpan::new(
        Token::Word(Word {
            value: value.to_string(),
            quote_style: None,
            keyword: Keyword::NoKeyword,
        }),
        span,
    )
}

/// Replaces each `t FOR SYSTEM_TIME AS OF col` of a statement by `__lookup_N [AS t]`,
/// numbering from `next_id`.
pub fn extract_lookups(
    file: &SourceFile,
    mut tokens: Vec<TokenWithSpan>,
    next_id: &mut usize,
) -> Result<(Vec<TokenWithSpan>, Vec<LookupCall>)> {
    let mut calls = Vec::new();
    loop {
        let significant = significant_tokens(&tokens);
        let found = significant.windows(5).position(|w| {
            matches!(tokens[w[0]].token, Token::Word(_))
                && ["FOR", "SYSTEM_TIME", "AS", "OF"]
                    .iter()
                    .zip(&w[1..])
                    .all(|(k, &i)| is_word(&tokens[i].token, k))
        });
        let Some(k) = found else { break };
        let name_index = significant[k];
        let location = tokens[name_index].span.start;
        let table = match &tokens[name_index].token {
            Token::Word(w) => w.value.clone(),
            _ => unreachable!("matched a word above"),
        };
        // The time: the longest run of `word (. word)*` after OF.
        let first = k + 5;
        let mut last = first;
        while last + 2 < significant.len()
            && tokens[significant[last + 1]].token == Token::Period
            && matches!(tokens[significant[last + 2]].token, Token::Word(_))
        {
            last += 2;
        }
        let time_tokens: Vec<TokenWithSpan> = significant
            .get(first..=last)
            .unwrap_or_default()
            .iter()
            .map(|&i| tokens[i].clone())
            .collect();
        let after = significant.get(last + 1).map(|&i| &tokens[i].token);
        let ends_time = matches!(
            after,
            None | Some(Token::Word(_) | Token::RParen | Token::Comma | Token::SemiColon)
        );
        let mut text: String = time_tokens.iter().map(|t| t.token.to_string()).collect();
        if !ends_time {
            text.push_str(" ...");
        }
        let time = Parser::new(&GenericDialect {})
            .with_tokens_with_locations(time_tokens)
            .parse_expr()
            .ok()
            .as_ref()
            .and_then(time_column)
            .filter(|_| ends_time && significant.get(first).is_some())
            .ok_or_else(|| {
                file.error_at(
                    location,
                    format!(
                        "FOR SYSTEM_TIME AS OF {text}: a lookup join takes the time of a column, \
                         the stream's processing-time attribute (a column declared `AS PROCTIME()`)"
                    ),
                )
            })?;
        let has_alias = match after {
            Some(Token::Word(w)) => {
                is_word(&Token::Word(w.clone()), "AS")
                    || w.quote_style.is_some()
                    || !NOT_ALIASES.iter().any(|n| w.value.eq_ignore_ascii_case(n))
            }
            _ => false,
        };
        let generated = format!("{PREFIX}{}", *next_id);
        *next_id += 1;
        let span = tokens[name_index].span;
        let mut replacement = vec![word(&generated, span)];
        if !has_alias {
            replacement.extend([
                TokenWithSpan::new(Token::Whitespace(Whitespace::Space), span),
                word("AS", span),
                TokenWithSpan::new(Token::Whitespace(Whitespace::Space), span),
                word(&table, span),
            ]);
        }
        tokens.splice(name_index..=significant[last], replacement);
        calls.push(LookupCall {
            generated,
            table,
            time,
            location,
        });
    }
    Ok((tokens, calls))
}

/// `col` or `t.col`.
fn time_column(e: &Ast) -> Option<(Option<String>, String)> {
    match e {
        Ast::Identifier(c) => Some((None, c.value.clone())),
        Ast::CompoundIdentifier(parts) if parts.len() == 2 => {
            Some((Some(parts[0].value.clone()), parts[1].value.clone()))
        }
        Ast::Nested(e) => time_column(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(sql: &str) -> (String, Result<Vec<LookupCall>>) {
        let (file, tokens) = crate::location::test_tokens(sql);
        let mut id = 1;
        match extract_lookups(&file, tokens, &mut id) {
            Ok((tokens, calls)) => (
                tokens.iter().map(|t| t.token.to_string()).collect(),
                Ok(calls),
            ),
            Err(e) => (String::new(), Err(e)),
        }
    }

    #[test]
    fn the_clause_becomes_a_generated_table_with_the_old_name_or_alias() {
        let (text, calls) = extract(
            "SELECT * FROM s JOIN rates FOR SYSTEM_TIME AS OF s.pt ON s.c = rates.code \
             LEFT JOIN names FOR SYSTEM_TIME AS OF pt AS n ON s.c = n.code",
        );
        assert_eq!(
            text,
            "SELECT * FROM s JOIN __lookup_1 AS rates ON s.c = rates.code \
             LEFT JOIN __lookup_2 AS n ON s.c = n.code"
        );
        let calls = calls.unwrap();
        assert_eq!(calls[0].table, "rates");
        assert_eq!(calls[0].time, (Some("s".into()), "pt".into()));
        assert_eq!(calls[1].generated, "__lookup_2");
        assert_eq!(calls[1].time, (None, "pt".into()));
        let (text, _) = extract("SELECT * FROM s JOIN r FOR SYSTEM_TIME AS OF s.pt d ON true");
        assert_eq!(text, "SELECT * FROM s JOIN __lookup_1 d ON true");
    }

    #[test]
    fn a_time_that_is_not_a_column_is_refused_where_it_is() {
        let (_, calls) = extract("SELECT * FROM s JOIN rates FOR SYSTEM_TIME AS OF NOW() ON true");
        assert_eq!(
            calls.unwrap_err().message(),
            "job.sql:1:22: FOR SYSTEM_TIME AS OF NOW ...: a lookup join takes the time of a \
             column, the stream's processing-time attribute (a column declared `AS PROCTIME()`)"
        );
    }
}
