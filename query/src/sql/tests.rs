use super::*;

fn rewritten(sql: &str) -> String {
    match rewrite(sql, "sealtrail") {
        Ok(query) => query.sql,
        Err(refusal) => panic!("{sql}: refused: {refusal}"),
    }
}

fn refused(sql: &str) -> Refusal {
    match rewrite(sql, "sealtrail") {
        Ok(query) => panic!("{sql}: accepted as {}", query.sql),
        Err(refusal) => refusal,
    }
}

/// Every read of a real table in the rewritten SQL is one of the tenant-restricted subqueries.
fn assert_every_read_is_restricted(sql: &str) {
    let reads = sql.matches("`sealtrail`.").count();
    let restricted = sql.matches("{sealtrail_tenant:String}").count();
    assert!(reads > 0, "{sql}");
    assert!(
        restricted >= reads,
        "{reads} reads but only {restricted} tenant restrictions: {sql}"
    );
}

#[test]
fn a_plain_query_reads_the_tenant_view() {
    let sql = rewritten(
        "SELECT action, count() FROM events WHERE occurred_at > now() - INTERVAL 1 DAY GROUP BY action ORDER BY 2 DESC LIMIT 10",
    );
    assert!(
        sql.contains("FROM (SELECT * FROM `sealtrail`.events WHERE tenant_id = {sealtrail_tenant:String}) AS events"),
        "{sql}"
    );
    assert_every_read_is_restricted(&sql);
}

#[test]
fn aliases_are_kept_and_every_reference_is_restricted() {
    for sql in [
        "SELECT e.action FROM events AS e",
        "SELECT a.seq FROM events a JOIN events b ON a.seq = b.seq",
        "SELECT seq FROM events UNION ALL SELECT seq FROM events",
        "SELECT seq FROM events WHERE seq IN (SELECT seq FROM events WHERE action = 'user.login')",
        "SELECT (SELECT max(seq) FROM events) AS head",
        "SELECT * FROM (SELECT * FROM events) AS inner_events",
        "WITH recent AS (SELECT * FROM events WHERE seq > 10) SELECT count() FROM recent",
        "SELECT number, tenant_heads FROM checkpoints ORDER BY number DESC LIMIT 1",
        "SELECT * FROM events WHERE EXISTS (SELECT 1 FROM checkpoints)",
    ] {
        assert_every_read_is_restricted(&rewritten(sql));
    }
}

#[test]
fn the_tenant_never_travels_in_the_sql_text() {
    // A literal that looks like the parameter stays a literal; the parameter is bound by the API.
    let sql = rewritten("SELECT * FROM events WHERE tenant_id = 'other-tenant'");
    assert!(sql.contains("tenant_id = 'other-tenant'"), "{sql}");
    assert_every_read_is_restricted(&sql);
}

#[test]
fn other_tables_system_tables_and_table_functions_are_refused() {
    for sql in [
        "SELECT * FROM system.tables",
        "SELECT * FROM sealtrail.events",
        "SELECT * FROM `sealtrail`.`events`",
        "SELECT * FROM api_keys",
        "SELECT * FROM schema_migrations",
        "SELECT * FROM remote('127.0.0.1', sealtrail.events)",
        "SELECT * FROM url('http://example.com/x.csv', CSV)",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM numbers(10)",
        "SELECT * FROM events UNION ALL SELECT * FROM system.one",
        "SELECT * FROM events WHERE seq IN (SELECT seq FROM system.numbers)",
        "SELECT * FROM EVENTS",
    ] {
        let refusal = refused(sql);
        assert!(refusal.at.is_some() || !refusal.reason.is_empty(), "{sql}: {refusal}");
    }
}

#[test]
fn functions_outside_the_allowlist_are_refused() {
    for (sql, function) in [
        ("SELECT dictGet('d', 'x', 1) FROM events", "dictGet"),
        ("SELECT joinGet('j', 'x', 1) FROM events", "joinGet"),
        ("SELECT getSetting('readonly') FROM events", "getSetting"),
        ("SELECT hostName() FROM events", "hostName"),
        ("SELECT currentDatabase()", "currentDatabase"),
        ("SELECT count() FROM events WHERE action = file('x')", "file"),
        ("SELECT system.f(1) FROM events", "system.f"),
    ] {
        let refusal = refused(sql);
        assert!(refusal.to_string().contains(function), "{sql}: {refusal}");
    }
    assert_every_read_is_restricted(&rewritten(
        "SELECT toStartOfDay(occurred_at) AS day, countIf(outcome = 'DENIED') FROM events GROUP BY day",
    ));
}

#[test]
fn statements_other_than_select_and_clauses_that_escape_are_refused() {
    for sql in [
        "DROP TABLE events",
        "INSERT INTO events SELECT * FROM events",
        "ALTER TABLE events DELETE WHERE 1",
        "SELECT * FROM events SETTINGS max_execution_time = 1000",
        "SELECT * FROM events FORMAT CSV",
        "SELECT * FROM events INTO OUTFILE '/tmp/x'",
        "SELECT 1; SELECT * FROM system.tables",
        "SELECT * FROM events; DROP TABLE events",
        "WITH events AS (SELECT * FROM system.tables) SELECT * FROM events",
        "",
        "SELECT * FROM events WHERE",
    ] {
        refused(sql);
    }
}

#[test]
fn comments_and_quoting_do_not_hide_anything() {
    for sql in [
        "SELECT * FROM events -- WHERE tenant_id = 'x'\n UNION ALL SELECT * FROM system.tables",
        "SELECT * FROM events /* */ UNION ALL /* */ SELECT * FROM \"system\".\"tables\"",
        "SELECT * FROM `system`.tables",
    ] {
        match rewrite(sql, "sealtrail") {
            Ok(query) => {
                assert!(!query.sql.contains("system"), "{sql} -> {}", query.sql);
                assert_every_read_is_restricted(&query.sql);
            }
            Err(refusal) => assert!(!refusal.reason.is_empty()),
        }
    }
    // An escaped quote keeps the rest inside the string literal, where it is only text.
    let sql = rewritten("SELECT * FROM events WHERE action = 'a'' UNION SELECT * FROM system.tables --'");
    assert!(
        sql.ends_with("WHERE action = 'a'' UNION SELECT * FROM system.tables --'"),
        "{sql}"
    );
    assert_every_read_is_restricted(&sql);
}

#[test]
fn overlong_and_deeply_nested_queries_are_refused() {
    let long = format!("SELECT * FROM events WHERE action IN ({})", vec!["'a'"; 5000].join(","));
    assert!(refused(&long).reason.contains("limit"));
    let nested = format!("SELECT {}1{} FROM events", "(".repeat(200), ")".repeat(200));
    refused(&nested);
    let subqueries = format!("SELECT * FROM {}events{}", "(SELECT * FROM ".repeat(40), ")".repeat(40));
    refused(&subqueries);
}

#[test]
fn refusals_point_at_the_offending_part() {
    let refusal = refused("SELECT action\nFROM events\nJOIN system.tables t ON 1 = 1");
    let at = refusal.at.expect("a location");
    assert!(at.contains("line 3") && at.contains("system.tables"), "{at}");
}

#[test]
fn text_the_parser_and_clickhouse_could_read_differently_is_refused() {
    // The parser reads 'x\\' as a string ending in a backslash and renders it as 'x\': for
    // ClickHouse that string would go on, and the rest of the query would be its own.
    for sql in [
        r"SELECT 'x\\', ' UNION ALL SELECT secret_sha256 FROM sealtrail.api_keys -- ' FROM events",
        r"SELECT 1 AS `x\`, ` UNION ALL SELECT toString(tuple(*)) FROM sealtrail.events -- ` FROM events",
        r#"SELECT "a\" FROM events"#,
        r"SELECT * FROM events WHERE action = 'a\'b'",
        "SELECT 1 AS `a``b` FROM events",
        "SELECT 1 AS \"a\"\"b\" FROM events",
        "SELECT X'41' FROM events",
        "SELECT $$x$$ FROM events",
        "SELECT {sealtrail_tenant:String} FROM events",
        "SELECT 'a\0b' FROM events",
    ] {
        let refusal = refused(sql);
        assert!(!refusal.reason.is_empty(), "{sql}");
    }
    // A quote inside a string is written as two quotes, and stays inside.
    let sql = rewritten("SELECT * FROM events WHERE action = 'it''s'");
    assert!(sql.contains("action = 'it''s'"), "{sql}");
}

#[test]
fn a_name_on_the_right_of_in_is_refused() {
    for sql in [
        "SELECT count() FROM events WHERE (tenant_id, seq, action) IN sealtrail.events",
        "SELECT count() FROM events WHERE seq IN (sealtrail.api_keys)",
        "SELECT count() FROM events WHERE 0 IN ((system.one))",
        "SELECT count() FROM events WHERE seq IN api_keys",
        "SELECT sealtrail.events.tenant_id FROM events",
    ] {
        refused(sql);
    }
    for sql in [
        "SELECT count() FROM events WHERE seq IN (1, 2, 3)",
        "SELECT count() FROM events WHERE seq IN (SELECT seq FROM events WHERE action = 'a')",
        "SELECT e.seq FROM events AS e WHERE e.seq IN (1)",
    ] {
        assert_every_read_is_restricted(&rewritten(sql));
    }
}

#[test]
fn the_reviews_comment_smuggling_request_is_refused_and_its_operators_render_apart() {
    let attack = "SELECT - - 1, '\ntenant_id, count() AS n FROM sealtrail.events GROUP BY tenant_id --' FROM events";
    assert!(refused(attack).reason.contains("control characters"));
    for sql in [
        "SELECT - - 1 AS x FROM events",
        "SELECT seq FROM events WHERE seq = - - 1",
        "SELECT - - - seq FROM events",
        "SELECT NOT NOT 1 FROM events",
    ] {
        let text = rewritten(sql);
        assert!(!text.contains("--"), "{sql} -> {text}");
        assert_every_read_is_restricted(&text);
    }
    for sql in [
        "SELECT 0x1F FROM events",
        "SELECT 1_000 FROM events",
        "SELECT 'a\tb' FROM events",
        "SELECT 1 # comment\n FROM events",
    ] {
        refused(sql);
    }
}
