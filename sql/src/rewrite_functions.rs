//! Flink function syntax DataFusion does not read, rewritten in the parsed query before it is
//! planned:
//!
//! - `IF(c, a, b)` → `CASE WHEN c THEN a ELSE b END`;
//! - `TIMESTAMPADD(MINUTE, n, ts)`, `TIMESTAMPDIFF(DAY, a, b)`: the unit keyword becomes a
//!   string argument of the functions in `functions::flink`;
//! - `YEAR(x)`, `QUARTER`, `MONTH`, `WEEK`, `DAYOFYEAR`, `DAYOFMONTH`, `DAYOFWEEK`, `HOUR`,
//!   `MINUTE`, `SECOND` → `EXTRACT(... FROM x)` (Flink's DAYOFWEEK counts from Sunday = 1);
//! - `FLOOR(ts TO unit)` → `DATE_TRUNC('unit', ts)`, `CEIL(ts TO unit)` → the next unit
//!   boundary at or after `ts`;
//! - `SIGN(x)` → `(x - x) + CASE ...` (the sign in `x`'s type), `TRUNCATE` → `trunc`, `LOG(x)` → `ln(x)` (Flink's one-argument LOG is
//!   natural), `UNIX_TIMESTAMP()` → the current epoch second, `TO_DATE(s, 'java pattern')`
//!   → `to_date(s, 'strftime pattern')`;
//! - `GREATEST`, `LEAST` → NULL when any argument is NULL, else DataFusion's;
//! - `REGEXP_REPLACE(s, re, r)` → the same with the `g` flag: every match is replaced;
//! - `LISTAGG(x [, separator])` → `string_agg(x, separator)` (`,` by default);
//! - `FIRST_VALUE(x)`, `LAST_VALUE(x)` → the same `IGNORE NULLS`, as Flink's skip NULLs.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, visit_expressions_mut, CaseWhen, CeilFloorKind, DateTimeField, Expr, FunctionArg,
    FunctionArgExpr, FunctionArguments, Ident, ObjectName, Query, Value,
};

fn args_of(f: &ast::Function) -> Option<Vec<Expr>> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `CASE WHEN c1 THEN r1 ... ELSE otherwise END`.
fn case(whens: Vec<(Expr, Expr)>, otherwise: Expr) -> Expr {
    Expr::Case {
        case_token: ast::helpers::attached_token::AttachedToken::empty(),
        end_token: ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: whens
            .into_iter()
            .map(|(condition, result)| CaseWhen { condition, result })
            .collect(),
        else_result: Some(Box::new(otherwise)),
    }
}

fn string(s: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(s.to_string()).into())
}

/// A unit keyword argument (`MINUTE`) as its name, if it is one.
fn unit_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(id.value.to_ascii_uppercase()),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.to_ascii_uppercase()),
            _ => None,
        },
        _ => None,
    }
}

fn field_name(field: &DateTimeField) -> Option<&'static str> {
    Some(match field {
        DateTimeField::Year => "YEAR",
        DateTimeField::Quarter => "QUARTER",
        DateTimeField::Month => "MONTH",
        DateTimeField::Week(_) => "WEEK",
        DateTimeField::Day => "DAY",
        DateTimeField::Hour => "HOUR",
        DateTimeField::Minute => "MINUTE",
        DateTimeField::Second => "SECOND",
        _ => return None,
    })
}

fn extract(field: DateTimeField, e: Expr) -> Expr {
    Expr::Extract {
        field,
        syntax: ast::ExtractSyntax::From,
        expr: Box::new(e),
    }
}

/// The rewritten form of `expr`, if it is one of the module's cases.
fn rewritten(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::Floor {
            expr,
            field: CeilFloorKind::DateTimeField(field),
        } => Some(call(
            "date_trunc",
            vec![string(field_name(field)?), (**expr).clone()],
        )),
        Expr::Ceil {
            expr,
            field: CeilFloorKind::DateTimeField(field),
        } => Some(call(
            "sluice_ceil_to",
            vec![string(field_name(field)?), (**expr).clone()],
        )),
        // Flink's FIRST_VALUE and LAST_VALUE skip NULLs (DataFusion's respect them).
        Expr::Function(f)
            if ["FIRST_VALUE", "LAST_VALUE"]
                .iter()
                .any(|n| f.name.to_string().eq_ignore_ascii_case(n))
                && f.null_treatment.is_none()
                && f.over.is_none() =>
        {
            let mut f = f.clone();
            f.null_treatment = Some(ast::NullTreatment::IgnoreNulls);
            Some(Expr::Function(f))
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("LISTAGG") => {
            // DataFusion's `string_agg`, with Flink's default separator; the call keeps its
            // FILTER and DISTINCT.
            let mut f = f.clone();
            f.name = ObjectName::from(vec![Ident::new("string_agg")]);
            if let FunctionArguments::List(list) = &mut f.args {
                if list.args.len() == 1 {
                    list.args
                        .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(string(","))));
                }
            }
            Some(Expr::Function(f))
        }
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_uppercase();
            let args = args_of(f)?;
            match (name.as_str(), args.as_slice()) {
                ("IF", [c, a, b]) => Some(case(vec![(c.clone(), a.clone())], b.clone())),
                ("TIMESTAMPADD" | "TIMESTAMPDIFF", [unit, rest @ ..]) => {
                    let unit = unit_name(unit)?;
                    let mut all = vec![string(&unit)];
                    all.extend(rest.iter().cloned());
                    Some(call(&name.to_ascii_lowercase(), all))
                }
                ("YEAR", [x]) => Some(extract(DateTimeField::Year, x.clone())),
                ("QUARTER", [x]) => Some(extract(DateTimeField::Quarter, x.clone())),
                ("MONTH", [x]) => Some(extract(DateTimeField::Month, x.clone())),
                ("WEEK", [x]) => Some(extract(DateTimeField::Week(None), x.clone())),
                ("DAYOFYEAR", [x]) => Some(extract(DateTimeField::Doy, x.clone())),
                ("DAYOFMONTH", [x]) => Some(extract(DateTimeField::Day, x.clone())),
                // Flink: 1 = Sunday ... 7 = Saturday; EXTRACT(DOW) gives 0 = Sunday.
                ("DAYOFWEEK", [x]) => Some(Expr::BinaryOp {
                    left: Box::new(extract(DateTimeField::Dow, x.clone())),
                    op: ast::BinaryOperator::Plus,
                    right: Box::new(Expr::Value(Value::Number("1".into(), false).into())),
                }),
                ("HOUR", [x]) => Some(extract(DateTimeField::Hour, x.clone())),
                ("MINUTE", [x]) => Some(extract(DateTimeField::Minute, x.clone())),
                ("SECOND", [x]) => Some(extract(DateTimeField::Second, x.clone())),
                // Flink's names for DataFusion's functions; LOG(x) is the natural logarithm
                // in Flink (DataFusion's is base 10).
                // SIGN keeps its argument's type: `(x - x) + CASE ... END`.
                ("SIGN", [x]) => {
                    let number = |n: &str| Expr::Value(Value::Number(n.into(), false).into());
                    let compare = |op| Expr::BinaryOp {
                        left: Box::new(x.clone()),
                        op,
                        right: Box::new(number("0")),
                    };
                    let sign = case(
                        vec![
                            (compare(ast::BinaryOperator::Gt), number("1")),
                            (compare(ast::BinaryOperator::Lt), number("-1")),
                        ],
                        number("0"),
                    );
                    Some(Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(Expr::BinaryOp {
                            left: Box::new(x.clone()),
                            op: ast::BinaryOperator::Minus,
                            right: Box::new(x.clone()),
                        }))),
                        op: ast::BinaryOperator::Plus,
                        right: Box::new(sign),
                    })
                }
                ("TRUNCATE", [_] | [_, _]) => Some(call("trunc", args.clone())),
                ("LOG", [x]) => Some(call("ln", vec![x.clone()])),
                // Flink's GREATEST and LEAST are NULL when any argument is (DataFusion's skip
                // NULLs).
                ("GREATEST" | "LEAST", [first, ..]) if args.len() > 1 => {
                    let any_null = args
                        .iter()
                        .map(|a| Expr::IsNull(Box::new(a.clone())))
                        .reduce(|a, b| Expr::BinaryOp {
                            left: Box::new(a),
                            op: ast::BinaryOperator::Or,
                            right: Box::new(b),
                        })
                        .unwrap_or_else(|| Expr::IsNull(Box::new(first.clone())));
                    // (The visitor does not revisit what it puts in place.)
                    Some(case(
                        vec![(any_null, Expr::Value(Value::Null.into()))],
                        call(&name.to_ascii_lowercase(), args.clone()),
                    ))
                }
                // Flink's REGEXP_REPLACE replaces every match (DataFusion's the first).
                ("REGEXP_REPLACE", [_, _, _]) => {
                    let mut all = args.clone();
                    all.push(string("g"));
                    Some(call("regexp_replace", all))
                }
                // The current time in epoch seconds.
                ("UNIX_TIMESTAMP", []) => Some(Expr::Cast {
                    kind: ast::CastKind::Cast,
                    expr: Box::new(call(
                        "floor",
                        vec![call(
                            "date_part",
                            vec![string("epoch"), call("now", vec![])],
                        )],
                    )),
                    data_type: ast::DataType::BigInt(None),
                    array: false,
                    format: None,
                }),
                // A Java date pattern, as DataFusion's strftime one.
                ("TO_DATE", [s, Expr::Value(v)]) => match &v.value {
                    Value::SingleQuotedString(pattern) => Some(call(
                        "to_date",
                        vec![
                            s.clone(),
                            string(&crate::functions::java_to_chrono(pattern)),
                        ],
                    )),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// Rewrites every case of the module in `query`.
pub fn rewrite_flink_functions(query: &mut Query) {
    let _ = visit_expressions_mut(query, |expr: &mut Expr| {
        if let Some(new) = rewritten(expr) {
            *expr = new;
        }
        ControlFlow::<()>::Continue(())
    });
}
