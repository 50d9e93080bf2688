//! Builds the web console (`build_console.rs`), and generates the gRPC ingest service (and a
//! client, for tests and Rust callers) from `schemas/ingest.proto` with a vendored protoc, so a
//! fresh machine needs no protobuf compiler installed.

#[path = "build_console.rs"]
mod console;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    console::build(&out_dir)?;
    let proto = "../schemas/ingest.proto";
    println!("cargo:rerun-if-changed={proto}");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_client(true)
        .file_descriptor_set_path(out_dir.join("ingest_descriptor.bin"))
        .compile_with_config(config, &[proto], &["../schemas"])?;
    Ok(())
}
