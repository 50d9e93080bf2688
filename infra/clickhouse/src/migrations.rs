use clickhouse::Row;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{ClickHouseError, ClickHouseSettings};

/// One numbered SQL file under `infra/clickhouse/migrations/`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    /// The file name without `.sql`; it starts with the zero-padded version.
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $file_stem:literal) => {
        Migration {
            version: $version,
            name: $file_stem,
            sql: include_str!(concat!("../migrations/", $file_stem, ".sql")),
        }
    };
}

/// Every migration, in the order it is applied. A test checks this list against the folder.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_create_schema_migrations"),
    migration!(2, "0002_create_events"),
    migration!(3, "0003_create_checkpoints"),
    migration!(4, "0004_create_api_keys"),
    migration!(5, "0005_create_legal_holds"),
    migration!(6, "0006_create_webhooks"),
    migration!(7, "0007_create_verification_jobs"),
    migration!(8, "0008_create_tombstones"),
    migration!(9, "0009_create_retention_policies"),
    migration!(10, "0010_create_retention_runs"),
    migration!(11, "0011_create_tenant_checkpoints"),
    migration!(12, "0012_add_layout_epochs"),
    migration!(13, "0013_add_api_key_expiry_and_usage"),
    migration!(14, "0014_add_api_key_platform_tenants"),
    migration!(15, "0015_create_cosignatures"),
    migration!(16, "0016_create_alert_rules"),
    migration!(17, "0017_create_event_entries"),
];

/// What `apply_migrations` did with one migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: u32,
    pub name: &'static str,
    /// `false` when it had been applied by an earlier start.
    pub newly_applied: bool,
}

#[derive(Debug, Row, Deserialize)]
struct AppliedRow {
    version: u32,
    checksum: String,
}

/// The checksum each applied migration had when it was applied (the latest, if applied twice).
async fn applied_checksums(client: &clickhouse::Client) -> Result<Vec<AppliedRow>, clickhouse::error::Error> {
    client
        .query("SELECT version, argMax(checksum, applied_at) AS checksum FROM schema_migrations GROUP BY version")
        .fetch_all()
        .await
}

impl Migration {
    pub fn checksum(&self) -> String {
        use std::fmt::Write;
        let digest = Sha256::digest(self.sql.as_bytes());
        digest.iter().fold(String::with_capacity(64), |mut hex, byte| {
            write!(hex, "{byte:02x}").expect("writing to a String succeeds");
            hex
        })
    }

    /// The statements of the file: split at semicolons that end a line, comments removed.
    pub fn statements(&self) -> Vec<String> {
        let mut statements = Vec::new();
        let mut current = String::new();
        for line in self.sql.lines() {
            let code = line.trim_end();
            if code.trim_start().starts_with("--") {
                continue;
            }
            current.push_str(code);
            current.push('\n');
            if code.ends_with(';') {
                let statement = current.trim().trim_end_matches(';').trim().to_owned();
                if !statement.is_empty() {
                    statements.push(statement);
                }
                current.clear();
            }
        }
        let rest = current.trim();
        if !rest.is_empty() {
            statements.push(rest.to_owned());
        }
        statements
    }

    async fn run(&self, client: &clickhouse::Client) -> Result<(), ClickHouseError> {
        for statement in self.statements() {
            client
                .query_raw(&statement)
                .execute()
                .await
                .map_err(|source| ClickHouseError::Migration {
                    version: self.version,
                    name: self.name,
                    source,
                })?;
        }
        Ok(())
    }
}

/// Creates the database if needed and applies, in order, the migrations not applied yet.
///
/// Refuses to continue when an applied migration's file has changed since, because the
/// database would no longer match what the files describe.
pub async fn apply_migrations(settings: &ClickHouseSettings) -> Result<Vec<AppliedMigration>, ClickHouseError> {
    // A schema already up to date needs no DDL: components, which log in as users without DDL
    // grants, only check it.
    if let Ok(applied) = applied_checksums(&settings.client()).await
        && MIGRATIONS.iter().all(|migration| {
            applied
                .iter()
                .any(|row| row.version == migration.version && row.checksum == migration.checksum())
        })
    {
        return Ok(MIGRATIONS
            .iter()
            .map(|migration| AppliedMigration {
                version: migration.version,
                name: migration.name,
                newly_applied: false,
            })
            .collect());
    }
    let bootstrap = MIGRATIONS[0];
    settings
        .server_client()
        .query_raw(&format!(
            "CREATE DATABASE IF NOT EXISTS `{}`",
            settings.database.replace('`', "")
        ))
        .execute()
        .await
        .map_err(|source| ClickHouseError::Migration {
            version: 0,
            name: "create_database",
            source,
        })?;
    let client = settings.client();
    bootstrap.run(&client).await?;

    let applied = applied_checksums(&client).await.map_err(ClickHouseError::Bookkeeping)?;

    let mut report = Vec::with_capacity(MIGRATIONS.len());
    for migration in MIGRATIONS {
        let current = migration.checksum();
        if let Some(row) = applied.iter().find(|row| row.version == migration.version) {
            if row.checksum != current {
                return Err(ClickHouseError::MigrationChanged {
                    version: migration.version,
                    name: migration.name,
                    applied: row.checksum.clone(),
                    current,
                });
            }
            report.push(AppliedMigration {
                version: migration.version,
                name: migration.name,
                newly_applied: false,
            });
            continue;
        }
        migration.run(&client).await?;
        client
            .query("INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)")
            .bind(migration.version)
            .bind(migration.name)
            .bind(&current)
            .execute()
            .await
            .map_err(|source| ClickHouseError::Migration {
                version: migration.version,
                name: migration.name,
                source,
            })?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied ClickHouse migration"
        );
        report.push(AppliedMigration {
            version: migration.version,
            name: migration.name,
            newly_applied: true,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_folder_is_listed_in_order() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(folder)
            .expect("migrations folder exists")
            .map(|entry| entry.expect("readable entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .map(|path| path.file_name().expect("a file").to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| {
                assert!(
                    m.name.starts_with(&format!("{:04}_", m.version)),
                    "{} is numbered {}",
                    m.name,
                    m.version
                );
                format!("{}.sql", m.name)
            })
            .collect();
        assert_eq!(files, listed);
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let expected: Vec<u32> = (1..=u32::try_from(MIGRATIONS.len()).expect("few migrations")).collect();
        assert_eq!(versions, expected, "versions are consecutive from 1");
    }

    #[test]
    fn statements_split_at_line_ending_semicolons_and_skip_comments() {
        let migration = Migration {
            version: 9,
            name: "example",
            sql: "-- a comment; with a semicolon\nCREATE TABLE a (x String DEFAULT ';')\nENGINE = Memory;\n\nALTER TABLE a ADD COLUMN y UInt8;\n",
        };
        assert_eq!(
            migration.statements(),
            vec![
                "CREATE TABLE a (x String DEFAULT ';')\nENGINE = Memory".to_owned(),
                "ALTER TABLE a ADD COLUMN y UInt8".to_owned(),
            ]
        );
    }
}
