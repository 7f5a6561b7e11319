//! Window table functions: `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset]))`,
//! `HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])` and
//! `CUMULATE(TABLE t, DESCRIPTOR(ts), step, size [, offset])` and
//! `SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)`, each also without the outer
//! `TABLE(...)`, and the legacy `GROUP BY TUMBLE(ts, size)` / `HOP(ts, slide, size)` /
//! `SESSION(ts, gap)`.
//!
//! A window call is taken out of the query and replaced by a generated table
//! `__window_N`: the input's columns plus `window_start`, `window_end` and `window_time`.
//! DataFusion then plans an ordinary `GROUP BY window_start, window_end` over it, and the
//! planner turns the scan of `__window_N` into the engine's window assigner. The TVF form
//! is rewritten on the token stream, because `TABLE t` and `DESCRIPTOR(c)` are not
//! expressions sqlparser knows; the legacy form is an ordinary function call and is
//! rewritten on the syntax tree.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, visit_expressions_mut, DateTimeField, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, ObjectName, Query, SetExpr, TableAlias, TableFactor,
    UnaryOperator, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Word};
use sluice_engine::{Error, Result};

use crate::location::SourceFile;

use sluice_engine::window::WindowShape;

/// One window call found in a statement.
#[derive(Debug, Clone)]
pub struct WindowCall {
    /// The generated table that replaces the call (`__window_N`).
    pub table_name: String,
    /// TUMBLE, HOP (with its slide), CUMULATE (with its step) or SESSION (with its gap).
    pub kind: WindowKind,
    /// SESSION's `PARTITION BY` columns.
    pub partition_by: Vec<(String, Location)>,
    /// The windowed table or view.
    pub input: String,
    pub input_location: Location,
    /// The time attribute column in `DESCRIPTOR(...)`.
    pub descriptor: String,
    pub descriptor_location: Location,
    pub size_ms: i64,
    pub offset_ms: i64,
    pub location: Location,
}

/// What windows a call makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Windows of fixed bounds, cut into slices (size and offset in the call).
    Sliced(WindowShape),
    /// Sessions of one key, closed by a gap of this many milliseconds without rows.
    Session { gap_ms: i64 },
}

impl WindowCall {
    /// The function's name, for messages.
    pub fn function(&self) -> &'static str {
        match self.kind {
            WindowKind::Sliced(WindowShape::Tumble) => "TUMBLE",
            WindowKind::Sliced(WindowShape::Hop { .. }) => "HOP",
            WindowKind::Sliced(WindowShape::Cumulate { .. }) => "CUMULATE",
            WindowKind::Session { .. } => "SESSION",
        }
    }
}

/// The intervals a window function takes before its optional offset, and what they are.
fn leading_intervals(function: &str) -> &'static [&'static str] {
    match function {
        "HOP" => &["slide", "size"],
        "CUMULATE" => &["step", "size"],
        "SESSION" => &["gap"],
        _ => &["size"],
    }
}

/// The window shape and size from a function's leading intervals; errors point at the
/// interval that is wrong.
fn shape_of(
    file: &SourceFile,
    function: &str,
    intervals: &[(i64, Location)],
    location: Location,
) -> Result<(WindowKind, (i64, Location))> {
    let names = leading_intervals(function);
    if intervals.len() < names.len() {
        return Err(file.error_at(
            location,
            format!("{function} needs a window {}", names[intervals.len()]),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        let (value, at) = intervals[i];
        if value <= 0 {
            return Err(file.error_at(
                at,
                format!("the window {name} must be positive, not {value} ms"),
            ));
        }
    }
    let size = intervals[names.len() - 1];
    let shape = match function {
        "HOP" | "CUMULATE" => {
            let (part, _) = intervals[0];
            if size.0 % part != 0 {
                return Err(file.error_at(
                    size.1,
                    format!(
                        "{function} needs a size that is a whole multiple of its {}: {} ms is not a multiple of {} ms",
                        names[0], size.0, part
                    ),
                ));
            }
            WindowKind::Sliced(if function == "HOP" {
                WindowShape::Hop { slide_ms: part }
            } else {
                WindowShape::Cumulate { step_ms: part }
            })
        }
        "SESSION" => WindowKind::Session { gap_ms: size.0 },
        _ => WindowKind::Sliced(WindowShape::Tumble),
    };
    Ok((shape, size))
}

const WINDOW_FUNCTIONS: [&str; 4] = ["TUMBLE", "HOP", "CUMULATE", "SESSION"];

pub(crate) fn is_word(t: &Token, word: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// The indexes of the tokens that are not whitespace.
pub(crate) fn significant_tokens(tokens: &[TokenWithSpan]) -> Vec<usize> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect()
}

/// Replaces every window TVF of a statement by a generated table name.
pub fn extract_windows(
    file: &SourceFile,
    mut tokens: Vec<TokenWithSpan>,
    next_id: &mut usize,
) -> Result<(Vec<TokenWithSpan>, Vec<WindowCall>)> {
    let mut calls = Vec::new();
    loop {
        let significant = significant_tokens(&tokens);
        let found = significant.windows(3).position(|w| {
            WINDOW_FUNCTIONS
                .iter()
                .any(|f| is_word(&tokens[w[0]].token, f))
                && tokens[w[1]].token == Token::LParen
                && is_word(&tokens[w[2]].token, "TABLE")
        });
        let Some(k) = found else { break };
        let name_index = significant[k];
        let open = significant[k + 1];
        let close = matching_paren(&tokens, open).ok_or_else(|| {
            file.error_at(
                tokens[open].span.start,
                "unbalanced parentheses in the window call",
            )
        })?;
        let location = tokens[name_index].span.start;
        let function = tokens[name_index].token.to_string().to_ascii_uppercase();
        let call = parse_call(file, &function, &tokens[open + 1..close], location, next_id)?;
        // `TABLE(TUMBLE(...))`: the outer TABLE( ... ) goes too.
        let (mut start, mut end) = (name_index, close);
        if k >= 2
            && tokens[significant[k - 1]].token == Token::LParen
            && is_word(&tokens[significant[k - 2]].token, "TABLE")
        {
            if let Some(after) = significant.iter().find(|&&i| i > close) {
                if tokens[*after].token == Token::RParen {
                    start = significant[k - 2];
                    end = *after;
                }
            }
        }
        let replacement = TokenWithSpan::new(
            Token::Word(Word {
                value: call.table_name.clone(),
                quote_style: None,
                keyword: Keyword::NoKeyword,
            }),
            Span::new(location, location),
        );
        tokens.splice(start..=end, std::iter::once(replacement));
        calls.push(call);
    }
    Ok((tokens, calls))
}

/// Index of the `)` that closes the `(` at `open`.
pub(crate) fn matching_paren(tokens: &[TokenWithSpan], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_call(
    file: &SourceFile,
    function: &str,
    args: &[TokenWithSpan],
    location: Location,
    next_id: &mut usize,
) -> Result<WindowCall> {
    let mut p = Parser::new(&GenericDialect {}).with_tokens_with_locations(args.to_vec());
    let err = |p: &Parser, what: &str| {
        file.error_at(
            p.peek_token().span.start,
            format!("{function} expects {what}"),
        )
    };
    if !p.parse_keyword(Keyword::TABLE) {
        return Err(err(&p, "TABLE <name> as its first argument"));
    }
    let input_location = p.peek_token().span.start;
    let input = p
        .parse_identifier()
        .map_err(|_| err(&p, "a table name after TABLE"))?
        .value;
    let partition_by =
        if function == "SESSION" && p.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
            partition_columns(&mut p).map_err(|what| err(&p, what))?
        } else {
            Vec::new()
        };
    if !p.consume_token(&Token::Comma) {
        return Err(err(&p, "DESCRIPTOR(<time column>) as its second argument"));
    }
    if !is_word(&p.next_token().token, "DESCRIPTOR") || !p.consume_token(&Token::LParen) {
        p.prev_token();
        return Err(err(&p, "DESCRIPTOR(<time column>) as its second argument"));
    }
    let descriptor_location = p.peek_token().span.start;
    let descriptor = p
        .parse_identifier()
        .map_err(|_| err(&p, "a column name in DESCRIPTOR(...)"))?
        .value;
    if !p.consume_token(&Token::RParen) {
        return Err(err(&p, "')' after the DESCRIPTOR column"));
    }
    let mut intervals = Vec::new();
    while p.consume_token(&Token::Comma) {
        let at = p.peek_token().span.start;
        let expr = p.parse_expr().map_err(|_| err(&p, "an INTERVAL"))?;
        intervals.push((interval_ms(&expr).map_err(|m| file.error_at(at, m))?, at));
    }
    let names = leading_intervals(function);
    let offsets = usize::from(function != "SESSION");
    if p.peek_token().token != Token::EOF {
        return Err(err(
            &p,
            &format!(
                "TABLE, DESCRIPTOR, {}{}",
                names.join(", "),
                if offsets > 0 {
                    " and an optional offset"
                } else {
                    ""
                }
            ),
        ));
    }
    if function == "SESSION" && intervals.len() > 1 {
        return Err(file.error_at(intervals[1].1, "SESSION takes a gap and no offset"));
    }
    if intervals.len() > names.len() + 1 {
        return Err(file.error_at(
            intervals[names.len() + 1].1,
            format!(
                "{function} takes {} and an offset at most",
                names.join(", ")
            ),
        ));
    }
    let (kind, size) = shape_of(file, function, &intervals, location)?;
    let offset_ms = intervals.get(names.len()).map_or(0, |i| i.0);
    new_call(
        file,
        WindowInput {
            input,
            input_location,
            descriptor,
            descriptor_location,
            partition_by,
        },
        kind,
        size,
        offset_ms,
        location,
        next_id,
    )
}

/// What a window call windows: the table and its time attribute.
struct WindowInput {
    input: String,
    input_location: Location,
    descriptor: String,
    descriptor_location: Location,
    /// SESSION's `PARTITION BY` columns.
    partition_by: Vec<(String, Location)>,
}

/// The columns after `PARTITION BY` in a SESSION call: `a, b` or `(a, b)`, up to the comma
/// before `DESCRIPTOR`; on an error, what was expected.
fn partition_columns(p: &mut Parser) -> std::result::Result<Vec<(String, Location)>, &'static str> {
    let parenthesized = p.consume_token(&Token::LParen);
    let mut columns = Vec::new();
    loop {
        let at = p.peek_token().span.start;
        let column = p
            .parse_identifier()
            .map_err(|_| "a column name after PARTITION BY")?;
        columns.push((column.value, at));
        if parenthesized {
            if p.consume_token(&Token::RParen) {
                return Ok(columns);
            }
            if !p.consume_token(&Token::Comma) {
                return Err("',' or ')' in PARTITION BY (...)");
            }
            continue;
        }
        // `, DESCRIPTOR(...)` ends the list; another comma goes on with a column.
        if p.peek_token().token != Token::Comma || is_word(&p.peek_nth_token(1).token, "DESCRIPTOR")
        {
            return Ok(columns);
        }
        p.next_token();
    }
}

fn new_call(
    file: &SourceFile,
    what: WindowInput,
    kind: WindowKind,
    (size_ms, size_at): (i64, Location),
    offset_ms: i64,
    location: Location,
    next_id: &mut usize,
) -> Result<WindowCall> {
    if size_ms <= 0 {
        return Err(file.error_at(
            size_at,
            format!("the window size must be positive, not {size_ms} ms"),
        ));
    }
    // An offset of a size or more is accepted, as Flink SQL does (its documented vectors
    // use -16 and +16 minutes on 10-minute windows): alignment only depends on
    // offset mod size.
    let id = *next_id;
    *next_id += 1;
    Ok(WindowCall {
        table_name: format!("__window_{id}"),
        kind,
        partition_by: what.partition_by,
        input: what.input,
        input_location: what.input_location,
        descriptor: what.descriptor,
        descriptor_location: what.descriptor_location,
        size_ms,
        offset_ms,
        location,
    })
}

fn unit_ms(field: &DateTimeField) -> Option<i64> {
    use DateTimeField::*;
    Some(match field {
        Millisecond | Milliseconds => 1,
        Second | Seconds => 1_000,
        Minute | Minutes => 60_000,
        Hour | Hours => 3_600_000,
        Day | Days => 86_400_000,
        Week(_) | Weeks => 7 * 86_400_000,
        _ => return None,
    })
}

/// Milliseconds of an `INTERVAL 'n' UNIT` expression (also `-INTERVAL ...`, `'-n'`, and
/// `INTERVAL 'n unit'`).
pub fn interval_ms(expr: &Expr) -> std::result::Result<i64, String> {
    match expr {
        Expr::Nested(e) => interval_ms(e),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => interval_ms(expr).map(|v| -v),
        Expr::Interval(interval) => {
            let text = match interval.value.as_ref() {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
                    other => return Err(format!("bad interval value {other}")),
                },
                other => return Err(format!("bad interval value {other}")),
            };
            let (number, unit) = match &interval.leading_field {
                Some(field) => {
                    let unit = unit_ms(field).ok_or_else(|| {
                        format!("interval unit {field} is not supported for windows")
                    })?;
                    (text.trim().to_string(), unit)
                }
                None => {
                    let mut parts = text.split_whitespace();
                    let number = parts.next().unwrap_or_default().to_string();
                    let unit_text = parts.next().unwrap_or("second").to_ascii_lowercase();
                    let unit = match unit_text.trim_end_matches('s') {
                        "millisecond" | "m" => 1,
                        "second" => 1_000,
                        "minute" => 60_000,
                        "hour" => 3_600_000,
                        "day" => 86_400_000,
                        other => return Err(format!("bad interval unit '{other}'")),
                    };
                    (number, unit)
                }
            };
            let value: f64 = number
                .parse()
                .map_err(|_| format!("bad interval '{text}': '{number}' is not a number"))?;
            Ok((value * unit as f64).round() as i64)
        }
        other => Err(format!("expected an INTERVAL, found {other}")),
    }
}

fn function_name(expr: &Expr) -> Option<(String, &ast::Function)> {
    match expr {
        Expr::Function(f) => Some((f.name.to_string().to_ascii_uppercase(), f)),
        _ => None,
    }
}

fn function_args(f: &ast::Function) -> Vec<&Expr> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Rewrites `GROUP BY TUMBLE(ts, size)` with `TUMBLE_START/END/ROWTIME(...)` into a scan of
/// a generated window table grouped by `window_start, window_end`.
pub fn rewrite_legacy(
    file: &SourceFile,
    query: &mut Query,
    next_id: &mut usize,
) -> Result<Vec<WindowCall>> {
    let mut calls = Vec::new();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Ok(calls);
    };
    let GroupByExpr::Expressions(group_by, _) = &mut select.group_by else {
        return Ok(calls);
    };
    let Some(position) = group_by.iter().position(|e| {
        function_name(e).is_some_and(|(n, _)| WINDOW_FUNCTIONS.contains(&n.as_str()))
    }) else {
        return Ok(calls);
    };
    let (name, f) = function_name(&group_by[position])
        .ok_or_else(|| Error::internal("window call vanished"))?;
    let location = f
        .name
        .0
        .first()
        .and_then(|p| p.as_ident())
        .map_or(Location::new(0, 0), |i| i.span.start);
    let args = function_args(f);
    let (descriptor, descriptor_location) = match args.first() {
        Some(Expr::Identifier(i)) => (i.value.clone(), i.span.start),
        Some(Expr::CompoundIdentifier(parts)) if !parts.is_empty() => {
            let last = &parts[parts.len() - 1];
            (last.value.clone(), last.span.start)
        }
        _ => {
            return Err(file.error_at(
                location,
                format!("{name}(time_attr, ...) expects a time column first"),
            ))
        }
    };
    let intervals = args[1..]
        .iter()
        .map(|e| {
            Ok((
                interval_ms(e).map_err(|m| file.error_at(location, m))?,
                location,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    if name == "SESSION" && intervals.len() > 1 {
        return Err(file.error_at(location, "SESSION takes a gap and no offset"));
    }
    let (kind, size) = shape_of(file, &name, &intervals, location)?;
    let offset_ms = intervals
        .get(leading_intervals(&name).len())
        .map_or(0, |i| i.0);
    let (input, input_location) = match select.from.as_slice() {
        [only] if only.joins.is_empty() => match &only.relation {
            TableFactor::Table { name, .. } => {
                let ident = name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .cloned()
                    .unwrap_or_else(|| Ident::new(name.to_string()));
                (ident.value.clone(), ident.span.start)
            }
            _ => {
                return Err(file.error_at(
                    location,
                    format!("GROUP BY {name}(...) needs a single table or view in FROM"),
                ))
            }
        },
        _ => {
            return Err(file.error_at(
                location,
                format!("GROUP BY {name}(...) needs a single table or view in FROM"),
            ))
        }
    };
    let call = new_call(
        file,
        WindowInput {
            input: input.clone(),
            input_location,
            descriptor,
            descriptor_location,
            partition_by: Vec::new(),
        },
        kind,
        size,
        offset_ms,
        location,
        next_id,
    )?;
    // window_time too, so that TUMBLE_ROWTIME may be selected.
    let columns = ["window_start", "window_end", "window_time"];
    group_by.splice(
        position..=position,
        columns.map(|c| Expr::Identifier(Ident::new(c))),
    );
    if let TableFactor::Table { name, alias, .. } = &mut select.from[0].relation {
        *name = ObjectName::from(vec![Ident::new(call.table_name.clone())]);
        if alias.is_none() {
            // Keep `t.col` references working.
            *alias = Some(TableAlias {
                explicit: true,
                name: Ident::new(input),
                columns: vec![],
                at: None,
            });
        }
    }
    let _ = visit_expressions_mut(select.as_mut(), |expr: &mut Expr| {
        if let Some((name, _)) = function_name(expr) {
            let column = match name.as_str() {
                "TUMBLE_START" | "HOP_START" | "CUMULATE_START" | "SESSION_START" => {
                    Some("window_start")
                }
                "TUMBLE_END" | "HOP_END" | "CUMULATE_END" | "SESSION_END" => Some("window_end"),
                "TUMBLE_ROWTIME" | "HOP_ROWTIME" | "CUMULATE_ROWTIME" | "SESSION_ROWTIME" => {
                    Some("window_time")
                }
                _ => None,
            };
            if let Some(column) = column {
                *expr = Expr::Identifier(Ident::new(column));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    calls.push(call);
    Ok(calls)
}
