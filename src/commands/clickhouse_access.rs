//! `sealtrail clickhouse-access`: writes the ClickHouse users file (users.d) that gives sealtrail's
//! tenant-bound readers their grants, row policies and limits, for a server sealtrail does not
//! start itself. `infra/clickhouse/users.d/sealtrail.xml` is its output with the defaults.

use std::path::PathBuf;

use anyhow::Context as _;
use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_clickhouse::access::{AccessConfig, Component, PasswordSource, READER_PASSWORD_ENV};

#[derive(Debug, clap::Args)]
pub struct ClickHouseAccessArgs {
    /// A database holding sealtrail's tables; repeatable.
    #[arg(long = "database", default_value = ClickHouseSettings::DEFAULT_DATABASE)]
    databases: Vec<String>,
    /// Where the readers may connect from (an address or a subnet); repeatable.
    #[arg(long = "network", default_value = "::/0")]
    networks: Vec<String>,
    /// The environment variable ClickHouse reads the readers' password from.
    #[arg(long, default_value = READER_PASSWORD_ENV)]
    password_env: String,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &ClickHouseAccessArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.databases
            .iter()
            .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')),
        "--database takes plain names (letters, digits, underscores)"
    );
    let xml = AccessConfig {
        databases: args.databases.clone(),
        networks: args.networks.clone(),
        password: PasswordSource::FromEnv(args.password_env.clone()),
        component_passwords: Component::ALL
            .iter()
            .map(|component| (*component, PasswordSource::FromEnv(component.password_env())))
            .collect(),
        default_admin: None,
    }
    .users_xml();
    match &args.out {
        Some(path) => {
            std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?;
            let components: Vec<String> = Component::ALL.iter().map(|c| c.password_env()).collect();
            eprintln!(
                "wrote {}; mount it in the server's users.d and set {} and {} there",
                path.display(),
                args.password_env,
                components.join(", ")
            );
        }
        None => print!("{xml}"),
    }
    Ok(())
}
