//! Rules of the workspace that the compiler alone does not enforce.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != "third_party" && !name.to_string_lossy().starts_with('.') {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `unsafe_code` is denied workspace-wide; the module that loads the ClickHouse engine library,
/// the one that reads librdkafka's group generation and the one that hands librdkafka an
/// OAUTHBEARER token are the only places allowed to lift it.
#[test]
fn unsafe_code_is_allowed_in_the_three_ffi_modules_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let marker = ["allow(", "unsafe_code)"].concat();
    let mut allowed: Vec<String> = files
        .iter()
        .filter(|path| std::fs::read_to_string(path).unwrap_or_default().contains(&marker))
        .map(|path| path.strip_prefix(root).expect("inside").display().to_string())
        .collect();
    allowed.sort();
    assert_eq!(
        allowed,
        vec![
            "infra/kafka/src/group_heal.rs".to_owned(),
            "infra/kafka/src/oauth/native.rs".to_owned(),
            "infra/local/src/clickhouse_engine.rs".to_owned()
        ]
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("manifest");
    assert!(manifest.contains("unsafe_code = \"deny\""));
}

/// The names in the `[dependencies]` table of a manifest.
fn dependencies(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(manifest)).expect("manifest");
    text.lines()
        .skip_while(|line| line.trim() != "[dependencies]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| line.split(['=', '.']).next())
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The core stays pure (no runtime, no network, no store), and the export verifier stays small
/// enough for an auditor to build on its own.
#[test]
fn the_core_and_the_export_verifier_have_no_io_dependency() {
    let io = ["tokio", "rdkafka", "clickhouse", "reqwest", "axum", "hyper", "futures"];
    for manifest in ["core/Cargo.toml", "export-verifier/Cargo.toml"] {
        let found: Vec<String> = dependencies(manifest)
            .into_iter()
            .filter(|name| io.contains(&name.as_str()) || name.starts_with("sealtrail-") && name != "sealtrail-core")
            .collect();
        assert!(found.is_empty(), "{manifest} depends on {found:?}");
    }
    assert!(
        dependencies("core/Cargo.toml").contains(&"sha2".to_owned()),
        "the parser reads the table"
    );
}

/// The binary maps flags to library calls: it talks to Kafka and ClickHouse, and reads archives,
/// only through the adapters and libraries.
#[test]
fn the_binary_reaches_kafka_clickhouse_and_archives_only_through_libraries() {
    let found: Vec<String> = dependencies("Cargo.toml")
        .into_iter()
        .filter(|name| ["rdkafka", "clickhouse", "tar", "flate2"].contains(&name.as_str()))
        .collect();
    assert!(found.is_empty(), "the sealtrail binary depends on {found:?}");
    assert!(
        dependencies("Cargo.toml").contains(&"sealtrail-core".to_owned()),
        "the parser reads the table"
    );
}
