//! Job files: Flink SQL statements separated by `;`, parsed with sqlparser.
//!
//! `CREATE TABLE` has Flink-only syntax (computed columns, `METADATA`, `WATERMARK`,
//! `PARTITIONED BY`, `WITH` options), so its column list is parsed here on top of
//! sqlparser's parser. Queries go through sqlparser after the window table functions were
//! taken out of the token stream (see [`crate::windows`]).

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{Expr, Query};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};
use sluice_engine::{Error, Result};

use crate::json_syntax::rewrite_json_syntax;
use crate::location::SourceFile;
use crate::lookups::{extract_lookups, LookupCall};
use crate::types::parse_type;
use crate::variables::expand;
use crate::windows::{extract_windows, WindowCall};

/// A column of a `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: String,
    pub location: Location,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone)]
pub enum ColumnKind {
    /// Read from the data.
    Physical(DataType),
    /// `name AS expr`, computed from the other columns.
    Computed(Box<Expr>),
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`, supplied by the connector.
    Metadata { data_type: DataType, key: String },
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone)]
pub struct WatermarkDef {
    pub column: String,
    pub column_location: Location,
    pub expr: Expr,
}

/// A `CREATE TABLE` statement.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub location: Location,
    pub columns: Vec<ColumnDef>,
    pub watermark: Option<WatermarkDef>,
    pub partition_by: Vec<String>,
    /// `WITH` options in order, with the location of each key.
    pub options: Vec<(String, String, Location)>,
    /// Tokens of the statement, to point at names in later errors.
    pub tokens: Vec<TokenWithSpan>,
}

impl TableDef {
    pub fn options_map(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn option_location(&self, key: &str) -> Location {
        self.options
            .iter()
            .find(|(k, _, _)| k == key)
            .map_or(self.location, |(_, _, l)| *l)
    }
}

/// A query with its window calls taken out, and where it came from.
#[derive(Debug, Clone)]
pub struct QueryDef {
    pub query: Box<Query>,
    pub windows: Vec<WindowCall>,
    /// Its `FOR SYSTEM_TIME AS OF` tables.
    pub lookups: Vec<LookupCall>,
    pub tokens: Vec<TokenWithSpan>,
    pub location: Location,
}

/// One statement of a job file.
#[derive(Debug, Clone)]
pub enum Statement {
    Set {
        key: String,
        value: String,
        location: Location,
    },
    CreateTable(Box<TableDef>),
    CreateView {
        name: String,
        location: Location,
        query: QueryDef,
    },
    Insert {
        table: String,
        table_location: Location,
        query: QueryDef,
    },
}

fn parser_error(file: &SourceFile, parser: &Parser, e: ParserError) -> Error {
    let message = match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => "the statement is nested too deeply".into(),
    };
    // sqlparser appends " at Line: x, Column: y"; we lead with the position instead.
    let message = match message.find(" at Line: ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    let mut location = parser.peek_token().span.start;
    if location.line == 0 {
        location = parser.peek_token_ref().span.start;
    }
    file.error_at(location, message)
}

/// Splits a job file into statements and parses each. Environment variables in quoted
/// strings are expanded first ([`crate::variables`]).
pub fn parse_job(file: &SourceFile) -> Result<Vec<Statement>> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, &file.text)
        .tokenize_with_location()
        .map_err(|e| file.error_at(e.location, e.message.clone()))?
        .into_iter()
        .map(|token| expand_variables(file, token))
        .collect::<Result<Vec<_>>>()?;
    let mut statements = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let mut window_ids = 0usize;
    for token in tokens.into_iter().chain(std::iter::once(TokenWithSpan::new(
        Token::SemiColon,
        Span::empty(),
    ))) {
        if token.token != Token::SemiColon {
            current.push(token);
            continue;
        }
        let statement = std::mem::take(&mut current);
        let meaningful = statement
            .iter()
            .any(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF));
        if meaningful {
            statements.push(parse_statement(file, statement, &mut window_ids)?);
        }
    }
    Ok(statements)
}

fn expand_variables(file: &SourceFile, mut token: TokenWithSpan) -> Result<TokenWithSpan> {
    if let Token::SingleQuotedString(text) = &mut token.token {
        *text = expand(text, |name| std::env::var(name).ok()).map_err(|e| {
            // The quote opens the string; the reference is the given bytes after it.
            let mut at = token.span.start;
            at.column += 1 + text[..e.offset].chars().count() as u64;
            file.error_at(at, e)
        })?;
    }
    Ok(token)
}

fn first_words(tokens: &[TokenWithSpan], n: usize) -> Vec<(String, Location)> {
    tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .take(n)
        .map(|t| match &t.token {
            Token::Word(w) => (w.value.to_ascii_uppercase(), t.span.start),
            other => (other.to_string(), t.span.start),
        })
        .collect()
}

fn parse_statement(
    file: &SourceFile,
    tokens: Vec<TokenWithSpan>,
    window_ids: &mut usize,
) -> Result<Statement> {
    let words = first_words(&tokens, 3);
    let location = words[0].1;
    let head: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    match head.as_slice() {
        ["SET", ..] => parse_set(file, tokens),
        ["CREATE", "TABLE", ..] | ["CREATE", "TEMPORARY", "TABLE"] => parse_create_table(file, tokens),
        ["CREATE", "VIEW", ..] | ["CREATE", "TEMPORARY", "VIEW"] => {
            let (tokens, windows) = extract_windows(file, tokens, window_ids)?;
            let (tokens, lookups) = extract_lookups(file, tokens, window_ids)?;
            let tokens = rewrite_json_syntax(file, tokens)?;
            let mut p = Parser::new(&GenericDialect {}).with_tokens_with_locations(tokens.clone());
            let e = |p: &Parser, e| parser_error(file, p, e);
            p.expect_keyword_is(Keyword::CREATE).map_err(|x| e(&p, x))?;
            let _ = p.parse_keyword(Keyword::TEMPORARY);
            p.expect_keyword_is(Keyword::VIEW).map_err(|x| e(&p, x))?;
            let name_token = p.peek_token();
            let name = p.parse_identifier().map_err(|x| e(&p, x))?.value;
            p.expect_keyword_is(Keyword::AS).map_err(|x| e(&p, x))?;
            let query = p.parse_query().map_err(|x| e(&p, x))?;
            expect_end(file, &mut p)?;
            Ok(Statement::CreateView {
                name,
                location: name_token.span.start,
                query: QueryDef { query, windows, lookups, tokens, location },
            })
        }
        ["INSERT", ..] => {
            let (tokens, windows) = extract_windows(file, tokens, window_ids)?;
            let (tokens, lookups) = extract_lookups(file, tokens, window_ids)?;
            let tokens = rewrite_json_syntax(file, tokens)?;
            let mut p = Parser::new(&GenericDialect {}).with_tokens_with_locations(tokens.clone());
            let e = |p: &Parser, e| parser_error(file, p, e);
            p.expect_keyword_is(Keyword::INSERT).map_err(|x| e(&p, x))?;
            if !p.parse_keyword(Keyword::INTO) {
                return Err(file.error_at(location, "only INSERT INTO is supported"));
            }
            let _ = p.parse_keyword(Keyword::TABLE);
            let name_token = p.peek_token();
            let table = p.parse_identifier().map_err(|x| e(&p, x))?.value;
            let query = p.parse_query().map_err(|x| e(&p, x))?;
            expect_end(file, &mut p)?;
            Ok(Statement::Insert {
                table,
                table_location: name_token.span.start,
                query: QueryDef { query, windows, lookups, tokens, location },
            })
        }
        ["SELECT", ..] => Err(file.error_at(
            location,
            "a job runs INSERT INTO statements; write the SELECT as INSERT INTO a sink table (the 'print' connector shows rows)",
        )),
        _ => Err(file.error_at(
            location,
            format!("unsupported statement starting with '{}': a job file holds SET, CREATE TABLE, CREATE VIEW and INSERT INTO", words[0].0),
        )),
    }
}

fn expect_end(file: &SourceFile, p: &mut Parser) -> Result<()> {
    let t = p.peek_token();
    if t.token == Token::EOF {
        Ok(())
    } else {
        Err(file.error_at(
            t.span.start,
            format!("unexpected '{}' at the end of the statement", t.token),
        ))
    }
}

fn string_or_ident(file: &SourceFile, p: &mut Parser) -> Result<(String, Location)> {
    let t = p.next_token();
    match t.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok((s, t.span.start)),
        Token::Word(w) => {
            // Unquoted SET keys like table.local-time-zone: glue words, dots and dashes.
            let mut key = w.value;
            loop {
                let next = p.peek_token_ref().token.clone();
                match next {
                    Token::Period => key.push('.'),
                    Token::Minus => key.push('-'),
                    Token::Word(w) if key.ends_with(['.', '-']) => key.push_str(&w.value),
                    _ => break,
                }
                p.next_token();
            }
            Ok((key, t.span.start))
        }
        Token::Number(n, _) => Ok((n, t.span.start)),
        other => Err(file.error_at(
            t.span.start,
            format!("expected a quoted string, found '{other}'"),
        )),
    }
}

fn parse_set(file: &SourceFile, tokens: Vec<TokenWithSpan>) -> Result<Statement> {
    let mut p = Parser::new(&GenericDialect {}).with_tokens_with_locations(tokens);
    p.next_token(); // SET
    let (key, location) = string_or_ident(file, &mut p)?;
    let t = p.next_token();
    if t.token != Token::Eq {
        return Err(file.error_at(t.span.start, "expected '=' in SET"));
    }
    let (value, _) = string_or_ident(file, &mut p)?;
    expect_end(file, &mut p)?;
    Ok(Statement::Set {
        key,
        value,
        location,
    })
}

fn parse_create_table(file: &SourceFile, tokens: Vec<TokenWithSpan>) -> Result<Statement> {
    // `>>` closes two nested ROW types here, never a shift.
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .flat_map(|t| match t.token {
            Token::ShiftRight => vec![
                TokenWithSpan::new(Token::Gt, t.span),
                TokenWithSpan::new(Token::Gt, t.span),
            ],
            _ => vec![t],
        })
        .collect();
    let mut p = Parser::new(&GenericDialect {}).with_tokens_with_locations(tokens.clone());
    let e = |p: &Parser, e| parser_error(file, p, e);
    let type_error = |(location, message): (Location, String)| file.error_at(location, message);
    p.expect_keyword_is(Keyword::CREATE).map_err(|x| e(&p, x))?;
    let _ = p.parse_keyword(Keyword::TEMPORARY);
    p.expect_keyword_is(Keyword::TABLE).map_err(|x| e(&p, x))?;
    let _ = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name_token = p.peek_token();
    let name = p.parse_identifier().map_err(|x| e(&p, x))?.value;
    p.expect_token(&Token::LParen).map_err(|x| e(&p, x))?;
    let mut columns = Vec::new();
    let mut watermark = None;
    loop {
        if parse_word(&mut p, "WATERMARK") {
            p.expect_keyword_is(Keyword::FOR).map_err(|x| e(&p, x))?;
            let column_token = p.peek_token();
            let column = p.parse_identifier().map_err(|x| e(&p, x))?.value;
            p.expect_keyword_is(Keyword::AS).map_err(|x| e(&p, x))?;
            let expr = p.parse_expr().map_err(|x| e(&p, x))?;
            watermark = Some(WatermarkDef {
                column,
                column_location: column_token.span.start,
                expr,
            });
        } else if p.parse_keyword(Keyword::PRIMARY) || p.parse_keyword(Keyword::CONSTRAINT) {
            // PRIMARY KEY (..) NOT ENFORCED: informational in Flink for these connectors.
            while !matches!(
                p.peek_token_ref().token,
                Token::Comma | Token::RParen | Token::EOF
            ) {
                if p.consume_token(&Token::LParen) {
                    while !matches!(p.next_token().token, Token::RParen | Token::EOF) {}
                } else {
                    p.next_token();
                }
            }
        } else {
            let column_token = p.peek_token();
            let column = p.parse_identifier().map_err(|x| e(&p, x))?.value;
            let location = column_token.span.start;
            let kind = if p.parse_keyword(Keyword::AS) {
                ColumnKind::Computed(Box::new(p.parse_expr().map_err(|x| e(&p, x))?))
            } else {
                let data_type = parse_type(&mut p).map_err(type_error)?;
                if p.parse_keyword(Keyword::METADATA) {
                    let key = if p.parse_keyword(Keyword::FROM) {
                        p.parse_literal_string().map_err(|x| e(&p, x))?
                    } else {
                        column.clone()
                    };
                    let _ = p.parse_keyword(Keyword::VIRTUAL);
                    ColumnKind::Metadata { data_type, key }
                } else {
                    ColumnKind::Physical(data_type)
                }
            };
            let _ = p.parse_keywords(&[Keyword::NOT, Keyword::NULL]);
            if p.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
                let _ = p.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]);
            }
            if p.parse_keyword(Keyword::COMMENT) {
                p.parse_literal_string().map_err(|x| e(&p, x))?;
            }
            if columns.iter().any(|c: &ColumnDef| c.name == column) {
                return Err(file.error_at(
                    location,
                    format!("column '{column}' is declared twice in table '{name}'"),
                ));
            }
            columns.push(ColumnDef {
                name: column,
                location,
                kind,
            });
        }
        if p.consume_token(&Token::Comma) {
            continue;
        }
        p.expect_token(&Token::RParen).map_err(|x| e(&p, x))?;
        break;
    }
    if p.parse_keyword(Keyword::COMMENT) {
        p.parse_literal_string().map_err(|x| e(&p, x))?;
    }
    let mut partition_by = Vec::new();
    if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        p.expect_token(&Token::LParen).map_err(|x| e(&p, x))?;
        loop {
            let t = p.peek_token();
            let column = p.parse_identifier().map_err(|x| e(&p, x))?.value;
            if !columns.iter().any(|c| c.name == column) {
                return Err(file.error_at(
                    t.span.start,
                    format!("PARTITIONED BY column '{column}' is not a column of table '{name}'"),
                ));
            }
            partition_by.push(column);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(|x| e(&p, x))?;
    }
    let mut options = Vec::new();
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen).map_err(|x| e(&p, x))?;
        loop {
            let (key, location) = string_or_ident(file, &mut p)?;
            p.expect_token(&Token::Eq).map_err(|x| e(&p, x))?;
            let (value, _) = string_or_ident(file, &mut p)?;
            if options
                .iter()
                .any(|(k, _, _): &(String, String, Location)| *k == key)
            {
                return Err(file.error_at(
                    location,
                    format!("option '{key}' is given twice for table '{name}'"),
                ));
            }
            options.push((key, value, location));
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(|x| e(&p, x))?;
    }
    expect_end(file, &mut p)?;
    if let Some(w) = &watermark {
        if !columns.iter().any(|c| c.name == w.column) {
            return Err(file.error_at(
                w.column_location,
                format!(
                    "WATERMARK FOR '{}': table '{name}' has no such column",
                    w.column
                ),
            ));
        }
    }
    Ok(Statement::CreateTable(Box::new(TableDef {
        name,
        location: name_token.span.start,
        columns,
        watermark,
        partition_by,
        options,
        tokens,
    })))
}

/// Consumes the unquoted word `word` (any case) if it is next; for Flink words that are not
/// sqlparser keywords.
fn parse_word(p: &mut Parser, word: &str) -> bool {
    match &p.peek_token_ref().token {
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) => {
            p.next_token();
            true
        }
        _ => false,
    }
}
