//! The second wall: ClickHouse itself reads the final text, and the query runs only if every
//! table ClickHouse would read is one of the tenant's views.
//!
//! `EXPLAIN QUERY TREE passes = 1` resolves the text exactly as execution would (names, common
//! table expressions, subqueries) without running it. Each `TABLE` node of the tree must be a
//! table a view reads, and must be the whole `JOIN TREE` of a query whose `WHERE` is
//! `tenant_id = '<the caller's tenant>'` on that very table; `system.one` (what ClickHouse reads
//! for a SELECT without FROM) is the only other table allowed, and no table function is. A text
//! that ClickHouse reads differently from the checked tree (a comment, a string that ends
//! elsewhere) loses those restrictions in ClickHouse's reading, and is refused here.

use super::View;

/// Why ClickHouse's reading of a query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScopeViolation(&'static str);

/// Why a query did not pass ClickHouse's reading.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error(transparent)]
    Violation(#[from] ScopeViolation),
    /// ClickHouse could not read the query at all (or could not be reached).
    #[error(transparent)]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// Has ClickHouse resolve `sql` (already escaped for the client's `?` markers) on the
/// tenant-bound `client`, with the tenant as the query parameter, and checks what it would read.
pub async fn confirm_scope(
    client: &clickhouse::Client,
    sql: &str,
    database: &str,
    tenant: &str,
) -> Result<(), ConfirmError> {
    let tree = client
        .query(&format!("EXPLAIN QUERY TREE passes = 1 {sql}"))
        .param(super::TENANT_PARAMETER, tenant)
        .fetch_bytes("TSVRaw")?
        .collect()
        .await?;
    check_query_tree(&String::from_utf8_lossy(&tree), database, tenant)?;
    Ok(())
}

/// One line of the tree: its depth and text.
struct Node<'a> {
    depth: usize,
    text: &'a str,
}

/// Checks the output of `EXPLAIN QUERY TREE passes = 1` (`TSVRaw`) for a query of `tenant` on the
/// tables of `database`.
pub fn check_query_tree(tree: &str, database: &str, tenant: &str) -> Result<(), ScopeViolation> {
    let nodes: Vec<Node<'_>> = tree
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let text = line.trim_start();
            Node {
                depth: line.len() - text.len(),
                text,
            }
        })
        .collect();
    if nodes.is_empty() {
        return Err(ScopeViolation("ClickHouse returned no query tree"));
    }
    let view_tables: Vec<String> = View::ALL
        .iter()
        .map(|view| format!("{database}.{}", view.table()))
        .collect();
    let mut tables = 0;
    for (index, node) in nodes.iter().enumerate() {
        if node.text.starts_with("TABLE_FUNCTION") {
            return Err(ScopeViolation("the query reads a table function"));
        }
        if !node.text.starts_with("TABLE id:") {
            continue;
        }
        tables += 1;
        let name = field(node.text, "table_name").ok_or(ScopeViolation("a table read has no name"))?;
        if name == "system.one" {
            continue;
        }
        if !view_tables.iter().any(|table| table == name) {
            return Err(ScopeViolation("the query reads a table outside the tenant's views"));
        }
        let id = field(node.text, "id").ok_or(ScopeViolation("a table read has no id"))?;
        restricted_to_tenant(&nodes, index, id, tenant)?;
    }
    if tables == 0 {
        return Err(ScopeViolation("ClickHouse's reading of the query reads no table"));
    }
    Ok(())
}

/// The table at `index` must be the whole join tree of a query filtered on its `tenant_id`.
fn restricted_to_tenant(nodes: &[Node<'_>], index: usize, table_id: &str, tenant: &str) -> Result<(), ScopeViolation> {
    let unrestricted = ScopeViolation("a read of the tenant's tables is not restricted to the tenant");
    let join_tree = parent(nodes, index).ok_or(unrestricted.clone())?;
    if nodes[join_tree].text != "JOIN TREE" {
        return Err(unrestricted);
    }
    let query = parent(nodes, join_tree).ok_or(unrestricted.clone())?;
    if !nodes[query].text.starts_with("QUERY id:") {
        return Err(unrestricted);
    }
    let clause = children(nodes, query)
        .find(|&child| nodes[child].text == "WHERE")
        .ok_or(unrestricted.clone())?;
    let condition = children(nodes, clause).next().ok_or(unrestricted.clone())?;
    if field(nodes[condition].text, "function_name") != Some("equals") {
        return Err(unrestricted);
    }
    let arguments = children(nodes, condition)
        .find(|&child| nodes[child].text == "ARGUMENTS")
        .and_then(|arguments| children(nodes, arguments).next())
        .ok_or(unrestricted.clone())?;
    let operands: Vec<&str> = children(nodes, arguments).map(|child| nodes[child].text).collect();
    let expected_constant = quoted(tenant);
    let is_tenant_column = |text: &str| {
        text.starts_with("COLUMN id:")
            && field(text, "column_name") == Some("tenant_id")
            && field(text, "source_id") == Some(table_id)
    };
    let is_tenant_constant = |text: &str| {
        text.starts_with("CONSTANT id:") && field(text, "constant_value") == Some(expected_constant.as_str())
    };
    match operands.as_slice() {
        [column, constant] if is_tenant_column(column) && is_tenant_constant(constant) => Ok(()),
        _ => Err(unrestricted),
    }
}

/// The index of the nearest line above `index` that is less indented.
fn parent(nodes: &[Node<'_>], index: usize) -> Option<usize> {
    let depth = nodes[index].depth;
    (0..index).rev().find(|&i| nodes[i].depth < depth)
}

/// The indices of the lines directly under `index`.
fn children<'n>(nodes: &'n [Node<'_>], index: usize) -> impl Iterator<Item = usize> + 'n {
    let depth = nodes[index].depth;
    let end = (index + 1..nodes.len())
        .find(|&i| nodes[i].depth <= depth)
        .unwrap_or(nodes.len());
    let child_depth = nodes.get(index + 1).map(|node| node.depth).filter(|&d| d > depth);
    (index + 1..end).filter(move |&i| Some(nodes[i].depth) == child_depth)
}

/// The value of `name: value` in a node's text (`TABLE id: 7, alias: __table2, table_name: db.events`).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head_and_fields = text.split_once(' ').map_or("", |(_, rest)| rest);
    head_and_fields.split(", ").find_map(|pair| {
        let (key, value) = pair.split_once(": ")?;
        (key == name).then_some(value)
    })
}

/// A string constant as ClickHouse prints it: single quotes, backslash escapes.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESTRICTED: &str = "QUERY id: 0
  PROJECTION COLUMNS
    n UInt64
  JOIN TREE
    QUERY id: 3, alias: __table1, is_subquery: 1
      PROJECTION COLUMNS
        seq UInt64
      JOIN TREE
        TABLE id: 6, alias: __table2, table_name: db.events
      WHERE
        FUNCTION id: 8, function_name: equals, function_type: ordinary, result_type: UInt8
          ARGUMENTS
            LIST id: 9, nodes: 2
              COLUMN id: 10, column_name: tenant_id, result_type: String, source_id: 6
              CONSTANT id: 11, constant_value: 'acme', constant_value_type: String
";

    #[test]
    fn a_read_restricted_to_the_tenant_passes() {
        check_query_tree(RESTRICTED, "db", "acme").expect("restricted");
    }

    #[test]
    fn another_tenant_a_missing_filter_or_another_table_is_refused() {
        assert!(check_query_tree(RESTRICTED, "db", "other").is_err());
        assert!(check_query_tree(RESTRICTED, "other_db", "acme").is_err());
        let unfiltered = "QUERY id: 0\n  JOIN TREE\n    TABLE id: 6, alias: __table2, table_name: db.events\n";
        assert!(check_query_tree(unfiltered, "db", "acme").is_err());
        let keys = RESTRICTED.replace("db.events", "db.api_keys");
        assert!(check_query_tree(&keys, "db", "acme").is_err());
        let checkpoints = RESTRICTED.replace("db.events", "db.checkpoints");
        assert!(check_query_tree(&checkpoints, "db", "acme").is_err());
        let other_column = RESTRICTED.replace("column_name: tenant_id", "column_name: actor_id");
        assert!(check_query_tree(&other_column, "db", "acme").is_err());
        let other_source = RESTRICTED.replace("source_id: 6", "source_id: 7");
        assert!(check_query_tree(&other_source, "db", "acme").is_err());
        let function =
            "QUERY id: 0\n  JOIN TREE\n    TABLE_FUNCTION id: 3, alias: __table1, table_function_name: numbers\n";
        assert!(check_query_tree(function, "db", "acme").is_err());
        assert!(check_query_tree("", "db", "acme").is_err());
    }

    #[test]
    fn a_select_without_from_reads_system_one() {
        let tree = "QUERY id: 0\n  JOIN TREE\n    TABLE id: 3, alias: __table1, table_name: system.one\n";
        check_query_tree(tree, "db", "acme").expect("allowed");
    }
}
