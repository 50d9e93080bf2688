//! What a caller is told when ClickHouse refuses their query: the error's name and its first
//! sentence, with every quoted name or value that was not in the caller's own SQL blanked out.
//! ClickHouse's messages quote the rewritten query, the database, the real table names and
//! "maybe you meant" suggestions; none of that is the caller's to see.

/// A message safe to return for ClickHouse's `message`, given the caller's `own_sql`.
pub fn sanitized(message: &str, own_sql: &str) -> String {
    let name = error_name(message);
    let text = message.split_once("DB::Exception: ").map_or(message, |(_, rest)| rest);
    let mut first = text;
    for cut in [
        " In scope",
        " in scope",
        ". Maybe you meant",
        " (version",
        ": While",
        " while ",
        ". Stack trace",
        ": in ",
        "\n",
    ] {
        if let Some(at) = first.find(cut) {
            first = &first[..at];
        }
    }
    let first = blank_foreign_quotes(first.trim_end_matches('.'), own_sql);
    match name {
        Some(name) => format!("ClickHouse refused the query ({name}): {first}"),
        None => format!("ClickHouse refused the query: {first}"),
    }
}

/// `UNKNOWN_IDENTIFIER` from `... (UNKNOWN_IDENTIFIER) (version 26.7...)`.
fn error_name(message: &str) -> Option<&str> {
    message
        .match_indices('(')
        .map(|(at, _)| &message[at + 1..])
        .filter_map(|rest| rest.split_once(')').map(|(inside, _)| inside))
        .find(|inside| !inside.is_empty() && inside.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
}

/// Replaces each `quoted`, 'quoted' or "quoted" part that does not occur in `own_sql` by `…`.
fn blank_foreign_quotes(text: &str, own_sql: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['`', '\'', '"']) {
        let quote = rest[start..].chars().next().unwrap_or('`');
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else {
            out.push_str(&rest[start..]);
            return scrub(&out);
        };
        let inside = &after[..end];
        out.push(quote);
        out.push_str(if !inside.is_empty() && own_sql.contains(inside) {
            inside
        } else {
            "…"
        });
        out.push(quote);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    scrub(&out)
}

/// Names of the storage that may appear unquoted.
fn scrub(text: &str) -> String {
    [
        "tenant_checkpoints",
        "sealtrail_analyst",
        "sealtrail_exporter",
        "getClientHTTPHeader",
    ]
    .iter()
    .fold(text.to_owned(), |text, name| text.replace(name, "…"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rewritten_query_and_foreign_names_are_not_echoed() {
        let message = "Code: 47. DB::Exception: Unknown expression identifier `nope` in scope SELECT nope FROM (SELECT * FROM `sealtrail`.events WHERE tenant_id = 'acme') AS events. Maybe you meant: ['seq']. (UNKNOWN_IDENTIFIER) (version 26.7.2.1)";
        let answer = sanitized(message, "SELECT nope FROM events");
        assert_eq!(
            answer,
            "ClickHouse refused the query (UNKNOWN_IDENTIFIER): Unknown expression identifier `nope`"
        );
        let leaky = "Code: 60. DB::Exception: Unknown table expression identifier 'sealtrail.api_keys' (UNKNOWN_TABLE) (version 26.7.2.1)";
        let answer = sanitized(leaky, "SELECT 1");
        assert!(
            !answer.contains("api_keys") && !answer.contains("sealtrail"),
            "{answer}"
        );
        assert!(answer.contains("UNKNOWN_TABLE"), "{answer}");
    }
}
