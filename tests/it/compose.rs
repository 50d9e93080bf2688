//! docker-compose.yml cannot run on machines without a Docker engine; it is parsed and checked.

use serde_yaml_ng::Value;

fn compose() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml")).expect("compose file");
    serde_yaml_ng::from_str(&text).expect("valid YAML")
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
