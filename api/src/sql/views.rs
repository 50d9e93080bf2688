//! The views analysts query, and the tenant-restricted subqueries they stand for.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Query, Statement, TableAlias, TableFactor, Value, ValueWithSpan, VisitMut,
    VisitorMut,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;

/// The ClickHouse query parameter that carries the caller's tenant; it is never part of the SQL
/// text.
pub const TENANT_PARAMETER: &str = "sealtrail_tenant";

/// Stands for the tenant in the templates below until it becomes the query parameter.
const TENANT_MARKER: &str = "__sealtrail_tenant__";
/// Stands for the database in the templates below until it becomes a quoted identifier.
const DATABASE_MARKER: &str = "sealtrail_database";

/// A view analysts may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The tenant's sealed events, every column of `<database>.events`.
    Events,
    /// The signed checkpoints that cover the tenant's events, with only the tenant's own head.
    Checkpoints,
}

impl View {
    pub const ALL: [Self; 2] = [Self::Events, Self::Checkpoints];

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|view| view.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Checkpoints => "checkpoints",
        }
    }

    fn template(self) -> &'static str {
        match self {
            Self::Events => "SELECT * FROM sealtrail_database.events WHERE tenant_id = '__sealtrail_tenant__'",
            // A checkpoint carries the heads of every tenant of its partition: the view keeps the
            // caller's head only, and only checkpoints where the caller has one.
            Self::Checkpoints => {
                "SELECT sealed_partition, number, scheme, prev_checkpoint_hash, entries_root, entry_count, \
                 tenant_heads_root, tenant_count, source_offset, dlq_next_offset, created_at, key_id, checkpoint_hash, signature, \
                 arrayFilter(head -> tupleElement(head, 1) = '__sealtrail_tenant__', tenant_heads) AS tenant_heads \
                 FROM sealtrail_database.checkpoints \
                 WHERE has(arrayMap(head -> tupleElement(head, 1), tenant_heads), '__sealtrail_tenant__')"
            }
        }
    }

    /// `(SELECT ... FROM <database>.<table> WHERE <tenant is the parameter>) AS <alias or view name>`.
    pub fn restricted(self, database: &str, alias: Option<TableAlias>) -> TableFactor {
        TableFactor::Derived {
            lateral: false,
            subquery: Box::new(self.subquery(database)),
            alias: Some(alias.unwrap_or(TableAlias {
                explicit: true,
                name: Ident::new(self.name()),
                columns: Vec::new(),
                at: None,
            })),
            sample: None,
        }
    }

    fn subquery(self, database: &str) -> Query {
        let mut statement = Parser::parse_sql(&ClickHouseDialect {}, self.template())
            .ok()
            .and_then(|mut statements| statements.pop())
            .expect("the view templates parse");
        let _ = statement.visit(&mut Fill { database });
        match statement {
            Statement::Query(query) => *query,
            _ => unreachable!("the view templates are queries"),
        }
    }
}

/// Puts the database (as a quoted identifier) and the tenant parameter into a template.
struct Fill<'a> {
    database: &'a str,
}

impl VisitorMut for Fill<'_> {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        if let Some(ObjectNamePart::Identifier(ident)) = relation.0.first_mut()
            && ident.value == DATABASE_MARKER
        {
            *ident = Ident::with_quote('`', self.database);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if value.value == Value::SingleQuotedString(TENANT_MARKER.to_owned()) {
            value.value = Value::Placeholder(format!("{{{TENANT_PARAMETER}:String}}"));
        }
        ControlFlow::Continue(())
    }
}
