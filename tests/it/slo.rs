//! The service level objectives as Prometheus and Grafana read them: every rule and dashboard
//! query parses as `PromQL`, every recording rule they use is defined, and the histogram buckets
//! the objectives count (`le="2.0"`, `le="60.0"`, `le="1.024"`) are what the components expose.

use std::collections::BTreeSet;

use serde_json::Value as Json;
use serde_yaml_ng::Value;

fn read(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// `(file, expr, record name if a recording rule)` of every rule of a rules file.
fn rules(file: &str) -> Vec<(String, String, Option<String>)> {
    let parsed: Value = serde_yaml_ng::from_str(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let groups = parsed["groups"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{file} has groups"));
    groups
        .iter()
        .flat_map(|group| group["rules"].as_sequence().into_iter().flatten())
        .map(|rule| {
            let expr = rule["expr"].as_str().map_or_else(
                || rule["expr"].as_f64().map(|v| v.to_string()).unwrap_or_default(),
                str::to_owned,
            );
            (file.to_owned(), expr, rule["record"].as_str().map(str::to_owned))
        })
        .collect()
}

fn dashboard_queries(file: &str, value: &Json, queries: &mut Vec<(String, String)>) {
    match value {
        Json::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field.as_str()) {
                    ("expr", Some(query)) => queries.push((file.to_owned(), query.to_owned())),
                    _ => dashboard_queries(file, field, queries),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|item| dashboard_queries(file, item, queries)),
        _ => {}
    }
}

/// The recording rules (`sealtrail:...`) an expression reads.
fn recorded_names(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("sealtrail:"))
        .collect()
}

#[test]
fn every_rule_and_dashboard_query_parses_and_reads_only_defined_recordings() {
    let mut expressions = rules("infra/prometheus/alerts.yml");
    expressions.extend(rules("infra/prometheus/rules/slo.yml"));
    let prometheus: Value = serde_yaml_ng::from_str(&read("infra/prometheus/prometheus.yml")).expect("YAML");
    let files: Vec<&str> = prometheus["rule_files"]
        .as_sequence()
        .expect("rule files")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        files,
        ["alerts.yml", "rules/slo.yml"],
        "Prometheus loads both rule files"
    );
    let recorded: BTreeSet<String> = expressions.iter().filter_map(|(_, _, name)| name.clone()).collect();
    assert!(recorded.contains("sealtrail:slo_error_ratio:rate30d"), "{recorded:?}");
    let mut queries: Vec<(String, String)> = expressions
        .iter()
        .map(|(file, expr, _)| (file.clone(), expr.clone()))
        .collect();
    for file in ["executive", "oncall", "debug", "slo"] {
        let path = format!("infra/grafana/dashboards/{file}.json");
        let dashboard: Json = serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        dashboard_queries(&path, &dashboard, &mut queries);
    }
    for (file, query) in &queries {
        // Grafana's own variables are not PromQL; give them the values Grafana would.
        let promql = query
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h");
        if let Err(error) = promql_parser::parser::parse(&promql) {
            panic!("{file}: `{query}` is not PromQL: {error}");
        }
        for name in recorded_names(query) {
            assert!(
                recorded.contains(name),
                "{file}: `{query}` reads {name}, which no rule records"
            );
        }
    }
}

#[test]
fn the_buckets_the_objectives_count_are_exposed() {
    let sink = sealtrail_runtime::Metrics::new("sink");
    sink.produce_to_queryable(0.5);
    let monitor = sealtrail_runtime::Metrics::new("monitor");
    monitor.assurance().checkpoint_verified(0, 1, 3.0);
    let api = sealtrail_runtime::Metrics::new("api");
    api.http_request("/v1/query", "POST", 200, 0.1);
    let exposed = [sink.render(), monitor.render(), api.render()].join("\n");
    for (rule, sample) in [
        (
            "le=\"2.0\"",
            "sealtrail_produce_to_queryable_seconds_bucket{le=\"2.0\"}",
        ),
        (
            "le=\"60.0\"",
            "sealtrail_checkpoint_verify_delay_seconds_bucket{le=\"60.0\"}",
        ),
        ("le=\"1.024\"", "le=\"1.024\""),
    ] {
        assert!(
            exposed.lines().any(|line| line.contains(sample)),
            "the rules count {rule}, which is not exposed:\n{exposed}"
        );
    }
    let slo = read("infra/prometheus/rules/slo.yml");
    for bucket in ["le=\\\"2.0\\\"", "le=\\\"60.0\\\"", "le=\\\"1.024\\\""] {
        assert!(slo.contains(bucket), "the rules count {bucket}");
    }
}
