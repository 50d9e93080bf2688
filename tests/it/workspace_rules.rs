//! Rules of the workspace that the compiler alone does not enforce.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `unsafe_code` is denied workspace-wide; the module that loads the ClickHouse engine library
/// and the one that reads librdkafka's group generation are the only places allowed to lift it.
#[test]
fn unsafe_code_is_allowed_in_the_two_ffi_modules_only() {
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
            "infra/local/src/clickhouse_engine.rs".to_owned()
        ]
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("manifest");
    assert!(manifest.contains("unsafe_code = \"deny\""));
}
