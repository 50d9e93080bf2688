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

/// Stands for the tenant in the templates below. It stays a string literal while the rendered text
/// is checked, and becomes the query parameter afterwards; it holds control characters, which
/// analysts' strings may not, so no literal of theirs can be taken for it.
pub(super) const TENANT_MARKER: &str = "\u{1}sealtrail_tenant\u{1}";
/// How the marker renders, and what replaces it in the final text.
pub(super) const RENDERED_TENANT_MARKER: &str = "'\u{1}sealtrail_tenant\u{1}'";
pub(super) const TENANT_PLACEHOLDER: &str = "{sealtrail_tenant:String}";
/// Stands for the database in the templates below until it becomes a quoted identifier.
const DATABASE_MARKER: &str = "sealtrail_database";

/// A view analysts may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The tenant's sealed events, every column of `<database>.events`.
    Events,
    /// The signed checkpoints that cover the tenant's events, with only the tenant's own head
    /// (read from `<database>.tenant_checkpoints`).
    Checkpoints,
}

impl View {
    pub const ALL: [Self; 2] = [Self::Events, Self::Checkpoints];

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|view| view.name() == name)
    }

    /// The table the view reads.
    pub fn table(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Checkpoints => "tenant_checkpoints",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Checkpoints => "checkpoints",
        }
    }

    fn template(self) -> &'static str {
        match self {
            Self::Events => "SELECT * FROM sealtrail_database.events WHERE tenant_id = 'TENANT'",
            // A checkpoint carries the heads of every tenant of its partition; `tenant_checkpoints`
            // holds one row per checkpoint and tenant with that tenant's head only, so analysts
            // never read (and are never granted) another tenant's head.
            Self::Checkpoints => {
                "SELECT sealed_partition, number, scheme, prev_checkpoint_hash, entries_root, entry_count, \
                 tenant_heads_root, tenant_count, source_offset, dlq_next_offset, created_at, key_id, checkpoint_hash, signature, \
                 tenant_heads, layout_epoch, layout_partitions, closes_epoch \
                 FROM sealtrail_database.tenant_checkpoints WHERE tenant_id = 'TENANT'"
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
        if value.value == Value::SingleQuotedString("TENANT".to_owned()) {
            value.value = Value::SingleQuotedString(TENANT_MARKER.to_owned());
        }
        ControlFlow::Continue(())
    }
}
