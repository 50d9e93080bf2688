//! Analysts' SQL, made safe to run: parsed with a real SQL parser, checked against what the API
//! exposes, and rewritten so that every read of a table goes through the caller's tenant view.
//!
//! Nothing here concatenates strings into SQL. The query is parsed into an AST; each reference to
//! an exposed view (`events`, `checkpoints`) is replaced by a subquery over the real table
//! restricted by a ClickHouse query parameter that carries the tenant; the AST is rendered back to
//! SQL. A query that cannot be proven harmless is refused with the reason and the offending part.

mod clickhouse_message;
mod confirm;
mod functions;
mod lexical;
mod render;
mod views;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArguments, ObjectName, ObjectNamePart, Query, Select, SetExpr, Spanned, Statement, TableFactor,
    Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Span;

pub use clickhouse_message::sanitized as sanitized_clickhouse_message;
pub use confirm::{ConfirmError, ScopeViolation, check_query_tree, confirm_scope};
pub use views::{TENANT_PARAMETER, View};

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// How deeply expressions and subqueries may nest.
const MAX_NESTING: usize = 24;

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}{}", at.as_ref().map(|at| format!(" (at {at})")).unwrap_or_default())]
pub struct Refusal {
    pub reason: String,
    /// The offending part: its position and text, when there is one.
    pub at: Option<String>,
}

fn refuse(reason: impl Into<String>, at: Option<String>) -> Refusal {
    Refusal {
        reason: reason.into(),
        at,
    }
}

/// Where a node starts in the query, and how it reads.
fn locate(node: &(impl Spanned + std::fmt::Display)) -> String {
    locate_span(node.span(), node)
}

fn locate_span(span: Span, node: &impl std::fmt::Display) -> String {
    let start = span.start;
    let mut text = node.to_string();
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    if start.line > 0 {
        format!("line {}, column {}: {text}", start.line, start.column)
    } else {
        text
    }
}

/// A checked and rewritten query, ready to be sent with the tenant as the query parameter
/// [`TENANT_PARAMETER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantQuery {
    pub sql: String,
    /// How many reads of the views the text holds, each restricted to the tenant.
    pub restricted_reads: usize,
}

impl TenantQuery {
    /// The text as the ClickHouse client must be given it: the client reads `?` as a bind marker,
    /// and `??` as a literal question mark.
    pub fn client_text(&self) -> String {
        self.sql.replace('?', "??")
    }
}

/// Checks `sql` and rewrites it so it reads only the tenant's rows of the exposed views, which live
/// in `database`.
pub fn rewrite(sql: &str, database: &str) -> Result<TenantQuery, Refusal> {
    if sql.len() > MAX_QUERY_BYTES {
        return Err(refuse(
            format!("the query is {} bytes; the limit is {MAX_QUERY_BYTES}", sql.len()),
            None,
        ));
    }
    lexical::check(sql)?;
    let dialect = ClickHouseDialect {};
    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|e| refuse(format!("the query does not parse: {e}"), None))?;
    let mut statement = match statements.len() {
        1 => statements.remove(0),
        0 => return Err(refuse("the query is empty", None)),
        n => return Err(refuse(format!("one statement per query; this has {n}"), None)),
    };
    let Statement::Query(_) = &statement else {
        return Err(refuse("only SELECT queries are allowed", Some(locate(&statement))));
    };
    let mut guard = Guard {
        database,
        common_tables: BTreeSet::new(),
        restricted_reads: 0,
    };
    if let ControlFlow::Break(refusal) = statement.visit(&mut guard) {
        return Err(refusal);
    }
    render::separate_unary_operators(&mut statement);
    let rendered = statement.to_string();
    render::check_faithful(&rendered, &statement)?;
    // Every restriction the guard put in must have survived rendering (no analyst string can hold
    // the marker: it contains control characters).
    if rendered.matches(views::RENDERED_TENANT_MARKER).count() != guard.restricted_reads {
        return Err(refuse("the query cannot be rendered unambiguously", None));
    }
    let sql = rendered.replace(views::RENDERED_TENANT_MARKER, views::TENANT_PLACEHOLDER);
    Ok(TenantQuery {
        sql,
        restricted_reads: guard.restricted_reads,
    })
}

struct Guard<'a> {
    database: &'a str,
    /// Names given by `WITH name AS (...)`: references to them read the tenant's data already.
    common_tables: BTreeSet<String>,
    /// Views replaced by their tenant-restricted subqueries so far.
    restricted_reads: usize,
}

impl VisitorMut for Guard<'_> {
    type Break = Refusal;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Refusal> {
        if let Some(settings) = &query.settings {
            let at = settings.first().map(|s| format!("SETTINGS {s}"));
            return ControlFlow::Break(refuse("SETTINGS are not allowed; limits are set by the API", at));
        }
        if let Some(format) = &query.format_clause {
            return ControlFlow::Break(refuse(
                "FORMAT is not allowed; the API chooses the response format",
                Some(format.to_string()),
            ));
        }
        if query.for_clause.is_some() || !query.locks.is_empty() || !query.pipe_operators.is_empty() {
            return ControlFlow::Break(refuse("FOR, locking and pipe clauses are not allowed", None));
        }
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let name = cte.alias.name.value.clone();
                if View::named(&name).is_some() {
                    return ControlFlow::Break(refuse(
                        format!("`{name}` is an exposed view and cannot be redefined by WITH"),
                        Some(locate_span(cte.alias.name.span, &cte.alias.name)),
                    ));
                }
                self.common_tables.insert(name);
            }
        }
        check_set_expr(&query.body)
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<Refusal> {
        if let Some(into) = &select.into {
            return ControlFlow::Break(refuse("SELECT INTO is not allowed", Some(into.to_string())));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Refusal> {
        match factor {
            TableFactor::Table { name, args, .. } => {
                if args.is_some() {
                    return ControlFlow::Break(refuse("table functions are not allowed", Some(locate(factor))));
                }
                let Some(table) = single_name(name) else {
                    return ControlFlow::Break(refuse(
                        "only the views events and checkpoints can be read (no database or schema names)",
                        Some(locate(factor)),
                    ));
                };
                if View::named(&table).is_none() && !self.common_tables.contains(&table) {
                    return ControlFlow::Break(refuse(
                        format!("unknown table `{table}`; the views are events and checkpoints"),
                        Some(locate(factor)),
                    ));
                }
                ControlFlow::Continue(())
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            other => ControlFlow::Break(refuse(
                "only views, subqueries and joins may appear in FROM",
                Some(locate(other)),
            )),
        }
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Refusal> {
        // After the children are visited: the replacement itself is not visited again.
        if let TableFactor::Table { name, alias, .. } = factor
            && let Some(view) = single_name(name).as_deref().and_then(View::named)
        {
            let alias = alias.take();
            *factor = view.restricted(self.database, alias);
            self.restricted_reads += 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<Refusal> {
        if let Value::Placeholder(_) = value.value {
            return ControlFlow::Break(refuse(
                "query parameters are set by the API, not by the query",
                Some(locate_span(value.span, &value.value)),
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Refusal> {
        // ClickHouse reads `x IN name` and `x IN (name)` as a read of the table `name`.
        if let Expr::InList { list, .. } = expr
            && let [only] = list.as_slice()
            && is_name(only)
        {
            return ControlFlow::Break(refuse(
                "IN takes a list of values or a subquery, not a name",
                Some(locate(expr)),
            ));
        }
        // `database.table.column` names a table outside the views.
        if let Expr::CompoundIdentifier(parts) = expr
            && parts.len() > 2
        {
            return ControlFlow::Break(refuse(
                "column names may be qualified by a table alias only",
                Some(locate(expr)),
            ));
        }
        if let Expr::Function(function) = expr {
            let Some(name) = single_name(&function.name) else {
                return ControlFlow::Break(refuse("qualified function names are not allowed", Some(locate(expr))));
            };
            if !functions::is_allowed(&name) {
                return ControlFlow::Break(refuse(
                    format!("function `{name}` is not allowed"),
                    Some(locate(&function.name)),
                ));
            }
            if let FunctionArguments::Subquery(_) = function.args {
                return ControlFlow::Break(refuse(
                    "a subquery as function arguments is not allowed",
                    Some(locate(expr)),
                ));
            }
        }
        ControlFlow::Continue(())
    }
}

/// SELECTs, parenthesized queries and set operations (UNION, EXCEPT, INTERSECT) of them.
fn check_set_expr(body: &SetExpr) -> ControlFlow<Refusal> {
    match body {
        SetExpr::Select(_) | SetExpr::Query(_) => ControlFlow::Continue(()),
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        other => ControlFlow::Break(refuse("only SELECT queries are allowed", Some(locate(other)))),
    }
}

/// A bare or parenthesized name (`t`, `db.t`, `((db.t))`).
fn is_name(expr: &Expr) -> bool {
    match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Nested(inner) => is_name(inner),
        _ => false,
    }
}

/// The name when it is one plain identifier.
fn single_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Some(ident.value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
