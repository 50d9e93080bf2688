//! docker-compose.yml cannot run on machines without a Docker engine; it is parsed and checked.

use serde_json::Value as Json;
use serde_yaml_ng::Value;

/// The metric contract of the components: dashboards that query any other name show nothing.
const METRICS: [&str; 13] = [
    "sealtrail_errors_total",
    "sealtrail_events_in_total",
    "sealtrail_events_out_total",
    "sealtrail_events_rejected_total",
    "sealtrail_events_skipped_total",
    "sealtrail_checkpoints_total",
    "sealtrail_consumer_lag",
    "sealtrail_group_lag",
    "sealtrail_dlq_depth",
    "sealtrail_chain_head_offset",
    "sealtrail_last_checkpoint",
    "sealtrail_up",
    "sealtrail_build_info",
];
const HISTOGRAMS: [&str; 3] = [
    "sealtrail_batch_duration_seconds",
    "sealtrail_audit_lag_seconds",
    "sealtrail_http_request_duration_seconds",
];

fn read(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// With `<<` merge keys applied, as Docker Compose reads them.
fn compose() -> Value {
    let mut compose: Value = serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("valid YAML");
    compose.apply_merge().expect("valid merge keys");
    compose
}

fn image_of<'a>(services: &'a Value, name: &str) -> &'a str {
    services[name]["image"]
        .as_str()
        .unwrap_or_else(|| panic!("service {name} has an image"))
}

#[test]
fn compose_names_the_production_services() {
    let compose = compose();
    let services = &compose["services"];
    assert!(image_of(services, "kafka").starts_with("apache/kafka:"));
    assert!(image_of(services, "schema-registry").starts_with("confluentinc/cp-schema-registry:"));
    assert!(image_of(services, "clickhouse").starts_with("clickhouse/clickhouse-server:"));
    assert!(image_of(services, "otel-collector").starts_with("otel/opentelemetry-collector"));
    assert!(image_of(services, "jaeger").starts_with("jaegertracing/"));
    // KRaft: no ZooKeeper anywhere.
    assert!(
        services
            .as_mapping()
            .expect("map")
            .keys()
            .all(|k| !k.as_str().unwrap_or_default().contains("zookeeper"))
    );
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"].as_str(),
        Some("broker,controller")
    );
}

#[test]
fn sealtrail_services_are_built_here_and_configured_like_the_local_stack() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("map");
    let ours: Vec<&Value> = services
        .iter()
        .filter(|(name, _)| name.as_str().unwrap_or_default().starts_with("sealtrail-"))
        .map(|(_, service)| service)
        .collect();
    for name in [
        "sealtrail-seal",
        "sealtrail-sink",
        "sealtrail-api",
        "sealtrail-ingest",
        "sealtrail-migrate",
        "sealtrail-topics",
    ] {
        assert!(services.contains_key(name), "{name} is deployed");
    }
    for service in ours {
        assert_eq!(service["build"]["dockerfile"].as_str(), Some("infra/docker/Dockerfile"));
        let environment = &service["environment"];
        for variable in [
            "KAFKA_BOOTSTRAP",
            "SCHEMA_REGISTRY_URL",
            "CLICKHOUSE_URL",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ] {
            assert!(environment[variable].as_str().is_some(), "{variable} in {service:?}");
        }
    }
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/docker/Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked"));
}

#[test]
fn prometheus_scrapes_every_component_that_serves_metrics() {
    let compose = compose();
    let services = &compose["services"];
    assert!(image_of(services, "prometheus").starts_with("prom/prometheus:"));
    assert!(image_of(services, "grafana").starts_with("grafana/grafana:"));
    let prometheus: Value = serde_yaml_ng::from_str(&read("infra/prometheus/prometheus.yml")).expect("valid YAML");
    let jobs = prometheus["scrape_configs"].as_sequence().expect("scrape configs");
    let mut served = Vec::new();
    for (name, service) in services.as_mapping().expect("map") {
        let name = name.as_str().unwrap_or_default();
        let Some(address) = service["environment"]["SEALTRAIL_METRICS_ADDR"].as_str() else {
            continue;
        };
        let target = format!("{name}:{}", address.rsplit_once(':').expect("host:port").1);
        let job = jobs
            .iter()
            .find(|job| job["job_name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("a scrape job named {name}"));
        let configs = job["static_configs"].as_sequence().into_iter().flatten();
        assert!(
            configs
                .flat_map(|config| config["targets"].as_sequence().into_iter().flatten())
                .any(|scraped| scraped.as_str() == Some(target.as_str())),
            "{name} is scraped at {target}"
        );
        served.push(name);
    }
    served.sort_unstable();
    // Not the one-shot set-up services: once they exit, their silence would read as an outage.
    let processors = [
        "sealtrail-api",
        "sealtrail-export",
        "sealtrail-ingest",
        "sealtrail-monitor",
        "sealtrail-retention",
        "sealtrail-seal",
        "sealtrail-sink",
    ];
    assert_eq!(served, processors);
}

#[test]
fn dashboards_query_only_the_metric_contract() {
    for file in ["executive", "oncall", "debug", "slo"] {
        let text = read(&format!("infra/grafana/dashboards/{file}.json"));
        let dashboard: Json = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
        assert!(
            dashboard["title"].as_str().is_some_and(|title| !title.is_empty()),
            "{file} has a title"
        );
        assert!(
            dashboard["panels"].as_array().is_some_and(|panels| !panels.is_empty()),
            "{file} has panels"
        );
        let mut queries = Vec::new();
        collect_queries(&dashboard, &mut queries);
        assert!(!queries.is_empty(), "{file} queries Prometheus");
        for query in queries {
            let words = query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
            for name in words.filter(|word| word.starts_with("sealtrail_")) {
                assert!(
                    in_contract(name),
                    "{file}: {name} in `{query}` is not in the metric contract"
                );
            }
        }
    }
}

fn in_contract(name: &str) -> bool {
    METRICS.contains(&name)
        || ["_bucket", "_sum", "_count"]
            .into_iter()
            .any(|suffix| name.strip_suffix(suffix).is_some_and(|base| HISTOGRAMS.contains(&base)))
}

/// The `PromQL` of panel targets (`expr`) and of template variables (`query`), at any depth: rows nest panels.
fn collect_queries<'a>(value: &'a Json, queries: &mut Vec<&'a str>) {
    match value {
        Json::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field.as_str()) {
                    ("expr" | "query", Some(query)) => queries.push(query),
                    _ => collect_queries(field, queries),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|item| collect_queries(item, queries)),
        _ => {}
    }
}

/// The dashboards' contract is what the components really expose.
#[test]
fn the_metric_contract_is_what_the_components_expose() {
    let metrics = sealtrail_runtime::Metrics::new("seal");
    metrics.events_in(1);
    metrics.events_out(1);
    metrics.rejected("not_avro");
    metrics.skipped_many("already_sealed", 1);
    metrics.error("consume");
    metrics.checkpoint();
    metrics.consumer_lags("raw", &[(0, 1)]);
    metrics.group_lag("raw", 1);
    metrics.dlq_depth("dlq", 1);
    metrics.chain_head(0, 1);
    metrics.last_checkpoint(0, 1);
    metrics.batch_duration(0.1);
    metrics.audit_lag(sealtrail_runtime::AuditStage::OccurredToSealed, 0.1);
    metrics.http_request("/v1/query", "POST", 200, 0.1);
    let text = metrics.render();
    let exposed = |name: &str| {
        text.lines()
            .any(|line| line.starts_with(name) && !line.starts_with('#'))
    };
    for name in METRICS {
        assert!(exposed(name), "{name} is not exposed:\n{text}");
    }
    for name in HISTOGRAMS {
        assert!(exposed(&format!("{name}_bucket")), "{name} is not exposed:\n{text}");
    }
}

/// A service's environment as `(name, value)` pairs, in either form Compose accepts: a map, or a
/// list of `NAME=value`.
fn environment(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Mapping(variables) => variables
            .iter()
            .map(|(name, value)| (scalar(name), scalar(value)))
            .collect(),
        Value::Sequence(entries) => entries
            .iter()
            .map(|entry| {
                let entry = scalar(entry);
                let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other)
            .expect("a YAML scalar")
            .trim()
            .to_owned(),
    }
}

fn variable<'a>(environment: &'a [(String, String)], name: &str) -> Option<&'a str> {
    environment
        .iter()
        .find(|(variable, _)| variable == name)
        .map(|(_, value)| value.as_str())
}

fn mounts(service: &Value) -> Vec<&str> {
    service["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Like the local stack (docs/security.md, "Connections and secrets, hop by hop"): secrets are
/// files in the sealtrail-secrets volume (infra/docker/make-secrets.sh), named by path, never
/// values in docker-compose.yml.
#[test]
fn compose_names_secret_files_and_holds_no_secret() {
    assert!(!read("docker-compose.yml").contains("change-me"));
    let compose = compose();
    for (name, service) in compose["services"].as_mapping().expect("map") {
        let name = name.as_str().unwrap_or_default();
        let environment = environment(service);
        for (variable, value) in &environment {
            let upper = variable.to_ascii_uppercase();
            if upper.contains("PASSWORD") || upper.contains("SECRET") {
                assert!(
                    value.starts_with('/'),
                    "{name}: {variable} must name a file holding the secret (a `..._FILE` variable), not hold it"
                );
            }
            assert!(
                !value.to_ascii_lowercase().contains("password="),
                "{name}: {variable} holds a password (a JAAS line?): read it from a file instead"
            );
        }
    }
    assert!(
        compose["volumes"]
            .as_mapping()
            .is_some_and(|volumes| volumes.contains_key("sealtrail-secrets"))
    );
    let script = read("infra/docker/make-secrets.sh");
    assert!(script.starts_with("#!/bin/sh\n") && script.contains("umask 077"));
}

/// The secrets volume: a directory per service (infra/docker/make-secrets.sh).
const SECRETS_VOLUME: &str = "sealtrail-secrets";
/// The one service that mounts the whole volume, CA's key included: it writes every directory.
const SECRETS_WRITER: &str = "sealtrail-secrets";
/// The writer's own directory of the volume: the CA's key, every key and password.
const CA_KEY_DIRECTORY: &str = ".init";
/// The directory of public material (the CA certificate), which any service may mount.
const PUBLIC_DIRECTORY: &str = "public";
/// The directories of the secrets volume each service mounts besides `public`: its own, never
/// another's. A service not listed here mounts nothing of the volume.
const SECRET_DIRECTORIES: [(&str, &[&str]); 15] = [
    ("kafka", &["kafka"]),
    ("schema-registry", &["schema-registry"]),
    ("clickhouse", &["clickhouse"]),
    ("grafana", &["grafana"]),
    // ClickHouse's administrator only (no Kafka login): `sealtrail migrate` and operators' commands.
    ("sealtrail-migrate", &["admin"]),
    // The operator's Kafka login only.
    ("sealtrail-topics", &["operator"]),
    // `sealtrail keys init` needs no credential.
    ("sealtrail-keys", &[]),
    ("sealtrail-seal", &["seal"]),
    ("sealtrail-sink", &["sink"]),
    ("sealtrail-monitor", &["monitor"]),
    // The witness needs no credential of the pipeline: it is another party.
    ("sealtrail-witness", &[]),
    ("sealtrail-api", &["api"]),
    // The ingest edge runs as the API's identity.
    ("sealtrail-ingest", &["api"]),
    ("sealtrail-export", &["export"]),
    ("sealtrail-retention", &["retention"]),
];
/// Services whose command takes no Kafka or registry settings: the shared environment names the
/// operator's client file, which they neither read nor mount.
const WITHOUT_KAFKA: [&str; 3] = ["sealtrail-migrate", "sealtrail-keys", "sealtrail-witness"];
const KAFKA_FILES: [&str; 2] = ["KAFKA_CONFIG_FILE", "SCHEMA_REGISTRY_CONFIG_FILE"];

/// A mount of the secrets volume.
#[derive(Debug)]
struct SecretsMount {
    target: String,
    /// The directory of the volume mounted; `None` for the whole volume.
    subpath: Option<String>,
    read_only: bool,
}

/// A service's mounts of the secrets volume, in the short (`VOLUME:TARGET[:MODE]`) or the long
/// syntax.
fn secrets_mounts(service: &Value) -> Vec<SecretsMount> {
    let mut found = Vec::new();
    for mount in service["volumes"].as_sequence().into_iter().flatten() {
        if let Some(short) = mount.as_str() {
            let mut parts = short.split(':');
            if parts.next() != Some(SECRETS_VOLUME) {
                continue;
            }
            let target = parts.next().unwrap_or_default().to_owned();
            let read_only = parts
                .next()
                .is_some_and(|mode| mode.split(',').any(|option| option == "ro"));
            found.push(SecretsMount {
                target,
                subpath: None,
                read_only,
            });
        } else if mount["source"].as_str() == Some(SECRETS_VOLUME) {
            assert_eq!(mount["type"].as_str(), Some("volume"), "{mount:?}");
            found.push(SecretsMount {
                target: mount["target"].as_str().unwrap_or_default().to_owned(),
                subpath: mount["volume"]["subpath"].as_str().map(str::to_owned),
                read_only: mount["read_only"].as_bool() == Some(true),
            });
        }
    }
    found
}

/// Whether the service `name` waits for `dependency`, directly or through others.
fn starts_after(services: &Value, name: &str, dependency: &str) -> bool {
    let mut seen: Vec<&str> = Vec::new();
    let mut pending = vec![name];
    while let Some(current) = pending.pop() {
        let direct: Vec<&str> = match &services[current]["depends_on"] {
            Value::Mapping(dependencies) => dependencies.keys().filter_map(Value::as_str).collect(),
            Value::Sequence(dependencies) => dependencies.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for next in direct {
            if next == dependency {
                return true;
            }
            if !seen.contains(&next) {
                seen.push(next);
                pending.push(next);
            }
        }
    }
    false
}

/// docs/security.md: a compromised component reads no other's credentials. The volume holds a
/// directory per service; every service but the one that writes them mounts only its own
/// directories (volume subpaths, read-only) and `public`: never the volume's root, the CA's key
/// or another service's passwords.
#[test]
fn each_service_mounts_only_its_own_secrets() {
    let compose = compose();
    let services = &compose["services"];
    let map = services.as_mapping().expect("map");
    for (name, _) in SECRET_DIRECTORIES {
        assert!(map.contains_key(name), "{name} is deployed");
    }
    for (name, service) in map {
        let name = name.as_str().unwrap_or_default();
        let mounts = secrets_mounts(service);
        if name == SECRETS_WRITER {
            assert!(
                mounts
                    .iter()
                    .any(|mount| mount.subpath.is_none() && mount.target == "/secrets" && !mount.read_only),
                "{name} mounts the whole volume at /secrets, to write it: {mounts:?}"
            );
            continue;
        }
        let own = SECRET_DIRECTORIES
            .iter()
            .find(|(service, _)| *service == name)
            .map(|(_, directories)| *directories);
        if name.starts_with("sealtrail-") {
            assert!(own.is_some(), "{name}: SECRET_DIRECTORIES lists what it may mount");
        }
        for mount in &mounts {
            let Some(subpath) = mount.subpath.as_deref() else {
                panic!(
                    "{name} mounts the whole secrets volume at {} (the CA's key, every service's credentials): mount its own directory, `volume: {{ subpath: ... }}`",
                    mount.target
                );
            };
            let top_level = !subpath.is_empty() && !subpath.starts_with('.') && !subpath.contains('/');
            assert!(
                top_level && subpath != CA_KEY_DIRECTORY,
                "{name} mounts {subpath:?}: only a service's top-level directory, never {CA_KEY_DIRECTORY}"
            );
            let own =
                own.unwrap_or_else(|| panic!("{name} mounts {subpath} but SECRET_DIRECTORIES lists nothing for it"));
            assert!(
                subpath == PUBLIC_DIRECTORY || own.contains(&subpath),
                "{name} mounts {subpath}: only its own {own:?} and {PUBLIC_DIRECTORY}"
            );
            assert!(mount.read_only, "{name} mounts {subpath} read-only");
            // The same paths as in the volume: the properties files name /secrets/public/ca.pem.
            assert_eq!(
                mount.target,
                format!("/secrets/{subpath}"),
                "{name}: where {subpath} is mounted"
            );
        }
        for directory in own.unwrap_or_default() {
            assert!(
                mounts.iter().any(|mount| mount.subpath.as_deref() == Some(*directory)),
                "{name} mounts its directory {directory}"
            );
        }
        // Docker refuses a subpath that does not exist: the directories are there once the
        // writer has run.
        if !mounts.is_empty() {
            assert!(
                starts_after(services, name, SECRETS_WRITER),
                "{name} starts after {SECRETS_WRITER}"
            );
        }
    }
    let script = read("infra/docker/make-secrets.sh");
    assert!(script.contains(&format!("STATE=$SECRETS_DIR/{CA_KEY_DIRECTORY}\n")));
    assert!(script.contains("\"$STATE/ca.key\""));
    assert!(script.contains(&format!("CA=$SECRETS_DIR/{PUBLIC_DIRECTORY}/ca.pem\n")));
}

/// Every file of the secrets volume a service is told of is in what it mounts of the volume.
#[test]
fn every_secret_file_a_service_is_told_of_is_mounted() {
    let compose = compose();
    let mut told = 0;
    for (name, service) in compose["services"].as_mapping().expect("map") {
        let name = name.as_str().unwrap_or_default();
        let targets: Vec<String> = secrets_mounts(service).into_iter().map(|mount| mount.target).collect();
        for (variable, value) in environment(service) {
            if WITHOUT_KAFKA.contains(&name) && KAFKA_FILES.contains(&variable.as_str()) {
                continue;
            }
            let paths = value
                .split(|c: char| c.is_whitespace() || c == '=')
                .filter(|word| word.starts_with("/secrets/"));
            for path in paths {
                told += 1;
                let mounted = |target: &String| {
                    path.strip_prefix(target.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
                };
                assert!(
                    targets.iter().any(mounted),
                    "{name}: {variable} names {path}, which it does not mount (it mounts {targets:?})"
                );
            }
        }
    }
    assert!(told > 0, "the services are told of their secret files");
}

#[test]
fn kafka_takes_clients_over_tls_with_scram_only() {
    let compose = compose();
    let kafka = environment(&compose["services"]["kafka"]);
    let setting = |name: &str| variable(&kafka, name).unwrap_or_else(|| panic!("kafka sets {name}"));
    let protocols: Vec<(&str, &str)> = setting("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
        .split(',')
        .filter_map(|pair| pair.split_once(':'))
        .collect();
    let protocol = |listener: &str| {
        protocols
            .iter()
            .find(|(name, _)| *name == listener)
            .map(|(_, protocol)| *protocol)
    };
    let listeners = |list: &str| {
        setting(list)
            .split(',')
            .map(|listener| listener.split_once("://").expect("NAME://host:port"))
            .collect::<Vec<_>>()
    };
    // Every listener clients are told about is TLS with SASL, the sealtrail services' among them.
    let advertised = listeners("KAFKA_ADVERTISED_LISTENERS");
    for &(name, address) in &advertised {
        assert_eq!(protocol(name), Some("SASL_SSL"), "the listener {name} at {address}");
    }
    let bootstrap = variable(&environment(&compose["services"]["sealtrail-seal"]), "KAFKA_BOOTSTRAP")
        .expect("the seal's KAFKA_BOOTSTRAP")
        .to_owned();
    assert!(
        advertised.iter().any(|(_, address)| *address == bootstrap),
        "KAFKA_BOOTSTRAP {bootstrap} is an advertised listener"
    );
    // Any other (the controller's) listens on loopback only.
    for (name, address) in listeners("KAFKA_LISTENERS") {
        if protocol(name) != Some("SASL_SSL") {
            assert!(
                address.starts_with("127.0.0.1:") || address.starts_with("localhost:"),
                "the {name} listener at {address} is not TLS with SASL, so on loopback only"
            );
        }
    }
    assert_eq!(setting("KAFKA_SASL_ENABLED_MECHANISMS"), "SCRAM-SHA-512");
    assert_eq!(setting("KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"), "SCRAM-SHA-512");
}

#[test]
fn every_http_hop_of_the_compose_stack_is_https() {
    let compose = compose();
    let services = &compose["services"];
    for (name, service) in services.as_mapping().expect("map") {
        let name = name.as_str().unwrap_or_default();
        if !name.starts_with("sealtrail-") {
            continue;
        }
        let environment = environment(service);
        for url in ["CLICKHOUSE_URL", "SCHEMA_REGISTRY_URL"] {
            let value = variable(&environment, url).unwrap_or_default();
            assert!(value.starts_with("https://"), "{name}: {url} is {value}");
        }
        for file in ["SEALTRAIL_CA_FILE", "KAFKA_CONFIG_FILE", "SCHEMA_REGISTRY_CONFIG_FILE"] {
            assert!(
                variable(&environment, file).is_some_and(|path| path.starts_with("/secrets/")),
                "{name}: {file} names a file of the secrets volume"
            );
        }
    }
    let api = environment(&services["sealtrail-api"]);
    for file in ["TLS_CERT_FILE", "TLS_KEY_FILE"] {
        assert!(
            variable(&api, file).is_some_and(|path| path.starts_with("/secrets/")),
            "the API serves HTTPS: {file}"
        );
    }
    let registry = environment(&services["schema-registry"]);
    let listeners = variable(&registry, "SCHEMA_REGISTRY_LISTENERS").unwrap_or_default();
    assert!(
        listeners.split(',').all(|listener| listener.starts_with("https://")),
        "{listeners}"
    );
    assert_eq!(
        variable(&registry, "SCHEMA_REGISTRY_AUTHENTICATION_METHOD"),
        Some("BASIC")
    );
    let clickhouse = mounts(&services["clickhouse"]);
    assert!(
        clickhouse
            .iter()
            .any(|mount| mount.starts_with("./infra/clickhouse/config.d/tls.xml:"))
    );
    let tls = read("infra/clickhouse/config.d/tls.xml");
    assert!(tls.contains("<https_port>8443</https_port>") && tls.contains("<http_port remove=\"1\"/>"));
}
