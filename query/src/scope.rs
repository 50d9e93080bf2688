//! Which of a tenant's events a legal hold keeps or an export holds: a time window and exact-match
//! filters, checked in Rust on rows already read or turned into a parameterised ClickHouse
//! condition. An export may add a SQL filter, which goes through the analyst query rewrite.

use sealtrail_clickhouse::{EntryRow, EventRow, unix_ms};
use serde::{Deserialize, Serialize};

/// What is wrong with a scope: the field (`scope.from`, `scope.actions`, ...) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScopeError {
    pub field: String,
    pub message: String,
}

fn refuse(field: &str, message: impl Into<String>) -> ScopeError {
    ScopeError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// An optional RFC 3339 time of the field `at`.
fn parse_time(at: &str, value: Option<&str>) -> Result<Option<time::OffsetDateTime>, ScopeError> {
    value
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
                refuse(
                    at,
                    format!("{at} must be an RFC 3339 time such as 2026-11-01T00:00:00Z"),
                )
            })
        })
        .transpose()
}

/// The tenant's events matching every field given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventScope {
    /// Events that occurred at or after (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Events that occurred before (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Actions or action namespaces (`billing.` matches every billing action).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Event categories, as classification assigned them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Exports only: a SQL boolean expression over the `events` view, as in `/v1/query`
    /// (for example `outcome = 'DENIED' AND actor_type = 'USER'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A scope's time window in Unix milliseconds: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Window {
    /// Everything.
    pub const ALL: Self = Self {
        from_ms: 0,
        to_ms: i64::MAX / 4,
    };
}

impl EventScope {
    /// Refuses a scope that is malformed, or so vague that it reads as a mistake; `filter` only
    /// where SQL filters are allowed.
    pub fn check(&self, allow_filter: bool) -> Result<(), ScopeError> {
        let window = self.window()?;
        if window.from_ms >= window.to_ms {
            return Err(refuse("scope", "scope.from must be before scope.to"));
        }
        let bad = |list: &[String]| list.iter().find(|a| a.is_empty() || a.len() > 128).cloned();
        if let Some(action) = bad(&self.actions) {
            return Err(refuse(
                "scope.actions",
                format!("`{action}` is not an action or namespace"),
            ));
        }
        if let Some(category) = bad(&self.categories) {
            return Err(refuse("scope.categories", format!("`{category}` is not a category")));
        }
        if self.filter.is_some() && !allow_filter {
            return Err(refuse("scope.filter", "a SQL filter is not allowed here"));
        }
        Ok(())
    }

    pub fn window(&self) -> Result<Window, ScopeError> {
        Ok(Window {
            from_ms: parse_time("scope.from", self.from.as_deref())?.map_or(Window::ALL.from_ms, unix_ms),
            to_ms: parse_time("scope.to", self.to.as_deref())?.map_or(Window::ALL.to_ms, unix_ms),
        })
    }

    /// Whether a row matches the exact-match fields (not the window, not the SQL filter).
    pub fn matches(&self, row: &EventRow) -> bool {
        self.matches_fields(
            &row.action,
            &row.category,
            &row.actor_id,
            (&row.resource_type, &row.resource_id),
        )
    }

    /// [`Self::matches`] for a row of `event_entries`.
    pub fn matches_entry(&self, row: &EntryRow) -> bool {
        self.matches_fields(
            &row.action,
            &row.category,
            &row.actor_id,
            (&row.resource_type, &row.resource_id),
        )
    }

    fn matches_fields(&self, action: &str, category: &str, actor: &str, (kind, id): (&str, &str)) -> bool {
        (self.actions.is_empty() || self.actions.iter().any(|a| action_matches(a, action)))
            && (self.categories.is_empty() || self.categories.iter().any(|c| c == category))
            && self.actor.as_deref().is_none_or(|wanted| wanted == actor)
            && self.resource_type.as_deref().is_none_or(|wanted| wanted == kind)
            && self.resource_id.as_deref().is_none_or(|wanted| wanted == id)
    }

    /// The scope as a ClickHouse condition over `events` columns, with its parameters (named
    /// `{prefix}_...`); never the SQL filter.
    pub fn condition(&self, prefix: &str) -> Result<(String, Vec<(String, String)>), ScopeError> {
        let window = self.window()?;
        let mut parts = vec![
            format!("occurred_at >= fromUnixTimestamp64Milli({{{prefix}_from:Int64}}, 'UTC')"),
            format!("occurred_at < fromUnixTimestamp64Milli({{{prefix}_to:Int64}}, 'UTC')"),
        ];
        let mut params = vec![
            (format!("{prefix}_from"), window.from_ms.to_string()),
            (format!("{prefix}_to"), window.to_ms.to_string()),
        ];
        if !self.actions.is_empty() {
            let mut alternatives = Vec::new();
            for (index, action) in self.actions.iter().enumerate() {
                let name = format!("{prefix}_action{index}");
                alternatives.push(if action.ends_with('.') {
                    format!("startsWith(action, {{{name}:String}})")
                } else {
                    format!("action = {{{name}:String}}")
                });
                params.push((name, action.clone()));
            }
            parts.push(format!("({})", alternatives.join(" OR ")));
        }
        if !self.categories.is_empty() {
            let mut names = Vec::new();
            for (index, category) in self.categories.iter().enumerate() {
                let name = format!("{prefix}_category{index}");
                names.push(format!("{{{name}:String}}"));
                params.push((name, category.clone()));
            }
            parts.push(format!("category IN ({})", names.join(", ")));
        }
        for (column, value) in [
            ("actor_id", &self.actor),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
        ] {
            if let Some(value) = value {
                let name = format!("{prefix}_{column}");
                parts.push(format!("{column} = {{{name}:String}}"));
                params.push((name, value.clone()));
            }
        }
        Ok((parts.join(" AND "), params))
    }
}

/// The query a SQL filter runs as: the filter is parenthesised, so it can only ever be one
/// condition (a `LIMIT`, a comment or a second clause inside it does not parse), and whatever it
/// selects comes out distinct and in order, as the export's merge needs.
pub fn filter_query(filter: &str) -> String {
    format!("SELECT DISTINCT seq FROM (SELECT seq FROM events WHERE ({filter})) ORDER BY seq")
}

/// `billing.` matches every action in the namespace; anything else matches itself.
fn action_matches(wanted: &str, action: &str) -> bool {
    if wanted.ends_with('.') {
        action.starts_with(wanted)
    } else {
        action == wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(json: &str) -> Result<EventScope, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn scopes_are_checked() {
        assert!(
            scope(r#"{"from": "2026-01-01T00:00:00Z", "actions": ["billing."]}"#)
                .expect("parses")
                .check(false)
                .is_ok()
        );
        let backwards = scope(r#"{"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}"#).expect("parses");
        assert_eq!(backwards.check(false).expect_err("refused").field, "scope");
        let vague = scope(r#"{"from": "yesterday"}"#).expect("parses");
        assert_eq!(vague.check(false).expect_err("refused").field, "scope.from");
        assert!(scope(r#"{"colour": "red"}"#).is_err(), "unknown fields are refused");
        let filtered = scope(r#"{"filter": "outcome = 'DENIED'"}"#).expect("parses");
        assert!(filtered.check(true).is_ok());
        assert_eq!(filtered.check(false).expect_err("refused").field, "scope.filter");
    }

    #[test]
    fn rows_match_every_field_given() {
        let matches = |json: &str| {
            scope(json)
                .expect("parses")
                .matches_fields("billing.invoice.paid", "billing", "u1", ("invoice", "inv-1"))
        };
        assert!(matches(r#"{"actions": ["billing."], "actor": "u1"}"#));
        assert!(!matches(r#"{"actions": ["billing"]}"#));
        assert!(!matches(r#"{"categories": ["auth"]}"#));
        assert!(matches(
            r#"{"resource_id": "inv-1", "categories": ["auth", "billing"]}"#
        ));
    }

    #[test]
    fn a_filter_is_one_condition() {
        assert!(crate::sql::rewrite(&filter_query("outcome = 'DENIED'"), "db").is_ok());
        for bad in [
            "1 = 1 LIMIT 3",
            "1 = 1 --",
            "1 = 1; DROP TABLE events",
            "1 = 1 ORDER BY seq",
        ] {
            assert!(crate::sql::rewrite(&filter_query(bad), "db").is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_carry_values_only_as_parameters() {
        let (sql, params) = scope(r#"{"actions": ["billing.", "x' OR 1=1"], "actor": "o'brien"}"#)
            .expect("parses")
            .condition("h0")
            .expect("condition");
        assert!(!sql.contains("o'brien") && !sql.contains("1=1"), "{sql}");
        assert!(sql.contains("startsWith(action, {h0_action0:String})"), "{sql}");
        assert!(params.contains(&("h0_actor_id".to_owned(), "o'brien".to_owned())));
    }
}
