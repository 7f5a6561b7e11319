//! Errors of a job file: where in the file a planning error belongs, and how it reads.
//!
//! The place comes from typed facts, never from the wording of a message: the span
//! DataFusion attaches to an error (its diagnostic), the column a schema error is about, or
//! the function call whose argument types fit none of its signatures (found by checking the
//! calls of the plan against their signatures, the way DataFusion's type coercion does).

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::type_coercion::functions::{fields_with_udf, UDFCoercionExt};
use datafusion::logical_expr::ExprSchemable;

use super::*;

/// The location of the first token in `tokens` that is the word `name`.
pub(super) fn find_word(tokens: &[TokenWithSpan], name: &str) -> Option<Location> {
    let exact = tokens
        .iter()
        .find(|t| matches!(&t.token, Token::Word(w) if w.value == name));
    let any_case = || {
        tokens
            .iter()
            .find(|t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case(name)))
    };
    exact.or_else(any_case).map(|t| t.span.start)
}

/// The text of the first call of `function` in `tokens`, from its name to the closing
/// parenthesis.
pub(super) fn call_text(tokens: &[TokenWithSpan], function: &str) -> Option<String> {
    let start = tokens.iter().position(
        |t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case(function)),
    )?;
    let open = start
        + tokens[start..]
            .iter()
            .position(|t| t.token == Token::LParen)?;
    let close = crate::windows::matching_paren(tokens, open)?;
    Some(
        tokens[start..=close]
            .iter()
            .map(|t| t.token.to_string())
            .collect(),
    )
}

/// A DataFusion message as a user should read it: without DataFusion's prefixes and
/// internal table names, and only its first sentence.
pub(super) fn clean_message(message: &str, windows: &HashMap<String, WindowEntry>) -> String {
    let mut m = message.to_string();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Execution error: ",
        "Optimizer rule 'type_coercion' failed\ncaused by\n",
    ] {
        m = m.replace(prefix, "");
    }
    for (name, w) in windows {
        m = m.replace(name, &format!("{}({})", w.call.function(), w.call.input));
    }
    m = m.replace("datafusion.public.", "");
    // DataFusion lists every valid field; the first sentence says what is wrong.
    if let Some(i) = m.find(". Valid fields are") {
        m.truncate(i);
    }
    m.lines().next().unwrap_or_default().to_string()
}

/// A function call whose argument types fit none of the function's signatures.
pub(super) struct BadCall {
    pub name: String,
    pub arguments: Vec<DataType>,
}

impl BadCall {
    pub fn message(&self) -> String {
        let types: Vec<String> = self.arguments.iter().map(flink_name).collect();
        let (noun, list) = match types.len() {
            1 => ("an argument of type", types[0].clone()),
            _ => ("arguments of types", format!("({})", types.join(", "))),
        };
        format!("{} does not accept {noun} {list}", self.name.to_uppercase())
    }
}

/// Whether arguments of these types fit one of `func`'s signatures (after coercion).
fn fits<F: UDFCoercionExt>(types: &[DataType], func: &F) -> bool {
    let fields: Vec<arrow::datatypes::FieldRef> = types
        .iter()
        .enumerate()
        .map(|(i, t)| std::sync::Arc::new(Field::new(format!("arg{i}"), t.clone(), true)))
        .collect();
    fields_with_udf(&fields, func).is_ok()
}

/// The first call in `expr` (over `schema`) whose arguments fit none of the function's
/// signatures.
fn bad_call_in(expr: &Expr, schema: &DFSchema) -> Option<BadCall> {
    let types = |args: &[Expr]| -> Option<Vec<DataType>> {
        args.iter().map(|a| a.get_type(schema).ok()).collect()
    };
    let mut found = None;
    let _ = expr.apply(|e| {
        let checked = match e {
            Expr::ScalarFunction(ScalarFunction { func, args }) => {
                types(args).map(|t| (func.name().to_string(), fits(&t, func.as_ref()), t))
            }
            Expr::AggregateFunction(AggregateFunction { func, params }) => {
                types(&params.args).map(|t| (func.name().to_string(), fits(&t, func.as_ref()), t))
            }
            _ => None,
        };
        match checked {
            Some((name, false, arguments)) => {
                found = Some(BadCall { name, arguments });
                Ok(TreeNodeRecursion::Stop)
            }
            _ => Ok(TreeNodeRecursion::Continue),
        }
    });
    found
}

/// The first call in `plan` whose arguments fit none of the function's signatures.
pub(super) fn bad_call(plan: &LogicalPlan) -> Option<BadCall> {
    let mut found = None;
    let _ = plan.apply(|node| {
        let schema = node
            .inputs()
            .first()
            .map(|input| std::sync::Arc::clone(input.schema()))
            .unwrap_or_else(|| std::sync::Arc::clone(node.schema()));
        node.apply_expressions(|expr| {
            found = bad_call_in(expr, &schema);
            Ok(if found.is_some() {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })
    });
    found
}

/// The column a DataFusion error says is missing.
fn missing_column(error: &DataFusionError) -> Option<String> {
    error.iter().find_map(|e| match e.find_root() {
        DataFusionError::SchemaError(schema, _) => match schema.as_ref() {
            SchemaError::FieldNotFound { field, .. } => Some(field.name.clone()),
            _ => None,
        },
        _ => None,
    })
}

impl Planner<'_> {
    /// An error of a statement's query: a call of `plan` whose arguments fit none of its
    /// function's signatures if there is one (the usual cause of a type error), else
    /// placed by [`Planner::error_in`].
    pub(super) fn query_error(
        &self,
        query: &QueryDef,
        plan: Option<&LogicalPlan>,
        error: &Error,
    ) -> Error {
        let call = match plan {
            Some(plan) => bad_call(plan),
            None => self.bad_call_in_select(&query.query),
        };
        match call {
            Some(call) => self.bad_call_error(&query.tokens, query.location, &call, error),
            None => self.error_in(&query.tokens, query.location, error),
        }
    }

    /// Places an error of a statement (its `tokens`) in the job file: where DataFusion's
    /// diagnostic says, at the column it is about, or at `fallback`.
    pub(super) fn error_in(
        &self,
        tokens: &[TokenWithSpan],
        fallback: Location,
        error: &Error,
    ) -> Error {
        let message = clean_message(error.message(), &self.windows);
        let Some(df) = error.datafusion() else {
            return self.file.locate(fallback, error, message);
        };
        let spanned = df
            .diagnostic()
            .and_then(|d| d.span)
            .map(|span| Location::new(span.start.line, span.start.column))
            .filter(|l| l.line > 0);
        let location = spanned
            .or_else(|| missing_column(df).and_then(|c| find_word(tokens, &c)))
            .unwrap_or(fallback);
        self.file.locate(location, error, message)
    }

    /// The first bad call among the expressions of a `SELECT ... FROM table` (which DataFusion
    /// could not plan as a whole): each is planned alone over the table's columns.
    fn bad_call_in_select(&self, query: &Query) -> Option<BadCall> {
        use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr, TableFactor};
        let SetExpr::Select(select) = query.body.as_ref() else {
            return None;
        };
        let [from] = select.from.as_slice() else {
            return None;
        };
        let TableFactor::Table { name, .. } = &from.relation else {
            return None;
        };
        if !from.joins.is_empty() {
            return None;
        }
        let table = TableReference::bare(name.to_string());
        let provider = block_on(self.ctx.table_provider(table.clone())).ok()?;
        let schema = DFSchema::try_from_qualified_schema(table, &provider.schema()).ok()?;
        let state = self.ctx.state();
        let items = select.projection.iter().filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        });
        items
            .chain(&select.selection)
            .chain(&select.having)
            .filter_map(|e| state.create_logical_expr(&e.to_string(), &schema).ok())
            .find_map(|expr| bad_call_in(&expr, &schema))
    }

    /// Places a call whose arguments fit no signature at the call, quoting it.
    pub(super) fn bad_call_error(
        &self,
        tokens: &[TokenWithSpan],
        fallback: Location,
        call: &BadCall,
        cause: &Error,
    ) -> Error {
        let message = match call_text(tokens, &call.name) {
            Some(text) => format!("{text}: {}", call.message()),
            None => call.message(),
        };
        let location = find_word(tokens, &call.name).unwrap_or(fallback);
        self.file.locate(location, cause, message)
    }
}
