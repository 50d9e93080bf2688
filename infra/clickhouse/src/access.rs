//! Who may read what in ClickHouse, as ClickHouse itself enforces it: the tenant-bound read-only
//! users that analysts' SQL and export filters run as, their grants, row policies and settings
//! profiles, written as a ClickHouse users file.
//!
//! The same file serves the local engine (which reads users only from such a file) and a
//! ClickHouse server (`users.d/`). The tenant is bound by an HTTP header that the API sets on the
//! connection: query text cannot change a header, and a read-only profile cannot change the
//! settings the row policies depend on (docs/security.md).

use std::fmt::Write as _;

use crate::ClickHouseSettings;

/// The HTTP header that names the tenant a tenant-bound connection may read. Lower case: HTTP/1
/// clients send header names that way, and ClickHouse matches them as sent.
pub const TENANT_HEADER: &str = "x-sealtrail-tenant";

/// The environment variable the tenant-bound users' password comes from: ClickHouse reads it when
/// it loads the checked-in users file, and the components read it to log in.
pub const READER_PASSWORD_ENV: &str = "CLICKHOUSE_READER_PASSWORD";

/// The tables a tenant-bound user may read, each behind a row policy on `tenant_id`.
pub const TENANT_TABLES: [&str; 2] = ["events", "tenant_checkpoints"];

/// A tenant-bound, read-only ClickHouse user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantReader {
    /// Analysts' `/v1/query` and the API's event reads: short, small answers.
    Analyst,
    /// Export filters: a tenant's whole history may be scanned, within bounds.
    Exporter,
}

impl TenantReader {
    pub const ALL: [Self; 2] = [Self::Analyst, Self::Exporter];

    pub fn user(self) -> &'static str {
        match self {
            Self::Analyst => "sealtrail_analyst",
            Self::Exporter => "sealtrail_exporter",
        }
    }

    /// What ClickHouse enforces on every query of this user.
    pub fn limits(self) -> ReaderLimits {
        match self {
            Self::Analyst => ReaderLimits {
                max_execution_time_secs: 10,
                max_memory_usage: 1 << 30,
                max_result_rows: 100_000,
                max_result_bytes: 64 << 20,
                max_rows_to_read: 200_000_000,
                max_concurrent_queries: 8,
            },
            Self::Exporter => ReaderLimits {
                max_execution_time_secs: 900,
                max_memory_usage: 2 << 30,
                max_result_rows: 0,
                max_result_bytes: 0,
                max_rows_to_read: 0,
                max_concurrent_queries: 4,
            },
        }
    }
}

/// A component's own ClickHouse user: the tables it reads and writes, and nothing else (no DDL,
/// no users, no system tables beyond what ClickHouse always allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// Projects sealed events and checkpoints.
    Sink,
    /// The API's control plane (keys, holds, webhooks, policies, verification jobs) and its
    /// verification and proof reads.
    Api,
    /// The export processor's chain reads (its SQL filters run as `sealtrail_exporter`).
    Export,
    /// Deletes expired events, leaving tombstones.
    Retention,
    /// The ingest edge: it checks producers' API keys and reads nothing else, so a stolen edge
    /// credential reads no event.
    Ingest,
    /// Compares the projection with the sealed topic: reads the projected tables, and the
    /// webhooks it tells of incidents.
    Monitor,
}

impl Component {
    pub const ALL: [Self; 6] = [
        Self::Sink,
        Self::Api,
        Self::Export,
        Self::Retention,
        Self::Ingest,
        Self::Monitor,
    ];

    pub fn user(self) -> &'static str {
        match self {
            Self::Sink => "sealtrail_sink",
            Self::Api => "sealtrail_api",
            Self::Export => "sealtrail_export",
            Self::Retention => "sealtrail_retention",
            Self::Ingest => "sealtrail_ingest",
            Self::Monitor => "sealtrail_monitor",
        }
    }

    /// The `sealtrail` subcommand that runs as this user.
    pub fn process(self) -> &'static str {
        self.user().trim_start_matches("sealtrail_")
    }

    /// The environment variable a server's users file reads this user's password from.
    pub fn password_env(self) -> String {
        format!("CLICKHOUSE_{}_PASSWORD", self.process().to_uppercase())
    }

    /// What the component reads of ClickHouse's own tables, each with the row policy that keeps
    /// it to its own user's rows: `(privileges, system table, row filter)`.
    ///
    /// The sink ends its own user's inserts that may still be running before it reads where a
    /// partition stands (`KILL QUERY ... SYNC` reads these columns of `system.processes`), so an
    /// insert that outlived its caller cannot land after the check and store rows twice.
    pub fn system_grants(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Self::Sink => &[(
                "SELECT(query_id, user, query, current_database)",
                "processes",
                "user = currentUser()",
            )],
            Self::Api | Self::Export | Self::Retention | Self::Ingest | Self::Monitor => &[],
        }
    }

    /// `(privileges, table)` pairs, on each of sealtrail's databases.
    pub fn grants(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Sink => &[
                ("SELECT", "schema_migrations"),
                ("SELECT, INSERT", "events"),
                ("SELECT, INSERT", "event_entries"),
                ("SELECT, INSERT", "checkpoints"),
                ("SELECT, INSERT", "tenant_checkpoints"),
                ("SELECT", "tombstones"),
            ],
            Self::Export => &[
                ("SELECT", "schema_migrations"),
                ("SELECT", "events"),
                ("SELECT", "event_entries"),
                ("SELECT", "checkpoints"),
                ("SELECT", "tenant_checkpoints"),
                ("SELECT", "tombstones"),
                ("SELECT", "retention_runs"),
                ("SELECT", "legal_holds"),
                ("SELECT", "cosignatures"),
            ],
            Self::Retention => &[
                ("SELECT", "schema_migrations"),
                ("SELECT, ALTER DELETE", "events"),
                ("SELECT, ALTER DELETE", "event_entries"),
                ("SELECT", "checkpoints"),
                ("SELECT, INSERT, ALTER DELETE", "tombstones"),
                ("SELECT, INSERT", "retention_runs"),
                ("SELECT", "retention_policies"),
                ("SELECT", "legal_holds"),
            ],
            Self::Api => &[
                ("SELECT", "schema_migrations"),
                ("SELECT", "events"),
                ("SELECT", "event_entries"),
                ("SELECT", "checkpoints"),
                ("SELECT", "tenant_checkpoints"),
                ("SELECT", "tombstones"),
                ("SELECT", "retention_runs"),
                ("SELECT, INSERT", "api_keys"),
                ("SELECT, INSERT", "api_key_usage"),
                ("SELECT, INSERT", "legal_holds"),
                ("SELECT, INSERT", "webhooks"),
                ("SELECT, INSERT", "webhook_deliveries"),
                ("SELECT, INSERT", "verification_jobs"),
                ("SELECT, INSERT", "retention_policies"),
                ("SELECT, INSERT", "alert_rules"),
            ],
            Self::Ingest => &[
                ("SELECT", "schema_migrations"),
                ("SELECT", "api_keys"),
                ("SELECT, INSERT", "api_key_usage"),
            ],
            Self::Monitor => &[
                ("SELECT", "schema_migrations"),
                ("SELECT", "events"),
                ("SELECT", "checkpoints"),
                ("SELECT", "tombstones"),
                ("SELECT", "webhooks"),
                ("SELECT, INSERT", "webhook_deliveries"),
                ("SELECT, INSERT", "cosignatures"),
                ("SELECT", "alert_rules"),
            ],
        }
    }
}

/// Limits of a settings profile; 0 means unlimited, as in ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    pub max_execution_time_secs: u64,
    pub max_memory_usage: u64,
    pub max_result_rows: u64,
    pub max_result_bytes: u64,
    pub max_rows_to_read: u64,
    pub max_concurrent_queries: u64,
}

/// How the users file gives the tenant-bound users their password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The SHA-256 of the password, written into the file (the local stack).
    Sha256Hex(String),
    /// Read by ClickHouse from this environment variable when it loads the file (a server).
    FromEnv(String),
}

/// What the users file describes.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// The databases holding sealtrail's tables; each gets the grants and row policies.
    pub databases: Vec<String>,
    /// Where the tenant-bound users may connect from (`127.0.0.1`, `::/0`, a subnet...).
    pub networks: Vec<String>,
    pub password: PasswordSource,
    /// Each component user's password: `FromEnv(component.password_env())` on a server.
    pub component_passwords: Vec<(Component, PasswordSource)>,
    /// Also define `ADMIN_USER` with this password, and the `default` user the embedded engine
    /// runs its own serving query as (it cannot log in with a password) with only what that
    /// query needs: the local engine, whose users all come from this file. A server keeps its own.
    pub default_admin: Option<PasswordSource>,
}

/// The local engine's administrator, for operators (`migrate`, `keys`, `verify`).
pub const ADMIN_USER: &str = "sealtrail_admin";

impl AccessConfig {
    /// The users file (`<clickhouse><profiles>...<users>...</clickhouse>`).
    pub fn users_xml(&self) -> String {
        let mut xml = String::from(
            "<?xml version=\"1.0\"?>\n<!-- Written by sealtrail (infra/clickhouse/src/access.rs); docs/security.md explains it. -->\n<clickhouse>\n  <profiles>\n",
        );
        if self.default_admin.is_some() {
            xml.push_str("    <default></default>\n");
        }
        for reader in TenantReader::ALL {
            profile(&mut xml, reader);
        }
        xml.push_str("  </profiles>\n  <users>\n");
        if let Some(password) = &self.default_admin {
            // Without a password (the engine's serving query logs in as it), so with nothing but
            // what that query does: start listeners and count rows of `numbers`.
            xml.push_str(
                "    <default>\n      <password></password>\n      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\n      \
                 <profile>default</profile>\n      <quota>default</quota>\n      <grants><query>GRANT SYSTEM LISTEN ON *.*</query>\
                 <query>GRANT SELECT ON system.numbers</query></grants>\n    </default>\n",
            );
            let _ = writeln!(xml, "    <{ADMIN_USER}>");
            self.credentials(&mut xml, password);
            let _ = writeln!(
                xml,
                "      <profile>default</profile>\n      <quota>default</quota>\n      <access_management>1</access_management>\n    </{ADMIN_USER}>"
            );
        }
        for reader in TenantReader::ALL {
            self.user(&mut xml, reader);
        }
        for (component, password) in &self.component_passwords {
            self.component_user(&mut xml, *component, password);
        }
        xml.push_str("  </users>\n  <quotas>\n    <default></default>\n  </quotas>\n</clickhouse>\n");
        xml
    }

    fn component_user(&self, xml: &mut String, component: Component, password: &PasswordSource) {
        let name = component.user();
        let _ = writeln!(xml, "    <{name}>");
        self.credentials(xml, password);
        let _ = writeln!(
            xml,
            "      <profile>default</profile>\n      <quota>default</quota>\n      <grants>"
        );
        for database in &self.databases {
            for (privileges, table) in component.grants() {
                let _ = writeln!(
                    xml,
                    "        <query>GRANT {privileges} ON {}.{table}</query>",
                    escape(&quoted_identifier(database))
                );
            }
        }
        for (privileges, table, _) in component.system_grants() {
            let _ = writeln!(xml, "        <query>GRANT {privileges} ON system.{table}</query>");
        }
        xml.push_str("      </grants>\n");
        if !component.system_grants().is_empty() {
            xml.push_str("      <databases>\n        <system>\n");
            for (_, table, filter) in component.system_grants() {
                let _ = writeln!(xml, "          <{table}><filter>{}</filter></{table}>", escape(filter));
            }
            xml.push_str("        </system>\n      </databases>\n");
        }
        let _ = writeln!(xml, "    </{name}>");
    }

    /// The password and the networks a user may connect from.
    fn credentials(&self, xml: &mut String, password: &PasswordSource) {
        match password {
            PasswordSource::Sha256Hex(hex) => {
                let _ = writeln!(xml, "      <password_sha256_hex>{}</password_sha256_hex>", escape(hex));
            }
            PasswordSource::FromEnv(variable) => {
                let _ = writeln!(xml, "      <password from_env=\"{}\"/>", escape(variable));
            }
        }
        xml.push_str("      <networks>");
        for network in &self.networks {
            let _ = write!(xml, "<ip>{}</ip>", escape(network));
        }
        xml.push_str("</networks>\n");
    }

    fn user(&self, xml: &mut String, reader: TenantReader) {
        let name = reader.user();
        let _ = writeln!(xml, "    <{name}>");
        self.credentials(xml, &self.password);
        let _ = writeln!(xml, "      <profile>{name}</profile>\n      <quota>default</quota>");
        xml.push_str("      <grants>\n");
        for database in &self.databases {
            for table in TENANT_TABLES {
                let _ = writeln!(
                    xml,
                    "        <query>GRANT SELECT ON {}.{table}</query>",
                    escape(&quoted_identifier(database))
                );
            }
        }
        xml.push_str("      </grants>\n      <databases>\n");
        for database in &self.databases {
            let _ = writeln!(xml, "        <{}>", escape(database));
            for table in TENANT_TABLES {
                let _ = writeln!(
                    xml,
                    "          <{table}><filter>{}</filter></{table}>",
                    escape(&row_filter())
                );
            }
            let _ = writeln!(xml, "        </{}>", escape(database));
        }
        let _ = writeln!(xml, "      </databases>\n    </{name}>");
    }
}

/// The row policy of every table a tenant-bound user reads: the rows of the tenant the
/// connection's header names, and none when the header is missing (no tenant id is empty).
pub fn row_filter() -> String {
    format!("tenant_id = getClientHTTPHeader('{TENANT_HEADER}')")
}

fn profile(xml: &mut String, reader: TenantReader) {
    let limits = reader.limits();
    let _ = writeln!(xml, "    <{}>", reader.user());
    // readonly=1: no writes, no DDL, and no change of any setting, by the query text or by the
    // connection, so none of the limits below (nor the header function) can be lifted.
    for (setting, value) in [
        ("readonly", "1".to_owned()),
        ("allow_ddl", "0".to_owned()),
        ("allow_introspection_functions", "0".to_owned()),
        ("allow_get_client_http_header", "1".to_owned()),
        ("max_execution_time", limits.max_execution_time_secs.to_string()),
        ("timeout_overflow_mode", "throw".to_owned()),
        ("max_memory_usage", limits.max_memory_usage.to_string()),
        ("max_result_rows", limits.max_result_rows.to_string()),
        ("max_result_bytes", limits.max_result_bytes.to_string()),
        ("result_overflow_mode", "throw".to_owned()),
        ("max_rows_to_read", limits.max_rows_to_read.to_string()),
        ("read_overflow_mode", "throw".to_owned()),
        (
            "max_concurrent_queries_for_user",
            limits.max_concurrent_queries.to_string(),
        ),
        // Bounds the work of one block, so the time limit is checked often even for array
        // functions that expand a single row.
        ("function_range_max_elements_in_block", "10000000".to_owned()),
        ("max_query_size", "262144".to_owned()),
        ("max_ast_depth", "256".to_owned()),
        ("max_ast_elements", "100000".to_owned()),
        ("max_expanded_ast_elements", "500000".to_owned()),
        ("max_subquery_depth", "32".to_owned()),
        ("max_threads", "2".to_owned()),
    ] {
        let _ = writeln!(xml, "      <{setting}>{value}</{setting}>");
    }
    let _ = writeln!(xml, "    </{}>", reader.user());
}

/// `` `name` `` with backticks doubled, as ClickHouse reads a quoted identifier.
fn quoted_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The main configuration the local engine starts with: users from `users_file`, and access
/// control that refuses system tables and rows without a policy unless granted.
pub fn local_engine_config(users_file: &std::path::Path) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<clickhouse>\n  <user_directories>\n    <users_xml><path>{}</path></users_xml>\n  </user_directories>\n{}</clickhouse>\n",
        escape(&users_file.display().to_string()),
        ACCESS_CONTROL_IMPROVEMENTS
    )
}

/// The server settings that make grants, not defaults, decide what a user sees.
pub const ACCESS_CONTROL_IMPROVEMENTS: &str = "  <access_control_improvements>
    <select_from_system_db_requires_grant>true</select_from_system_db_requires_grant>
    <select_from_information_schema_requires_grant>true</select_from_information_schema_requires_grant>
    <settings_constraints_replace_previous>true</settings_constraints_replace_previous>
    <table_engines_require_grant>true</table_engines_require_grant>
  </access_control_improvements>
";

impl ClickHouseSettings {
    /// A client logged in as `reader`, bound to `tenant`: it reads only that tenant's rows of
    /// [`TENANT_TABLES`], whatever SQL it sends. `None` without the readers' password.
    pub fn tenant_client(&self, reader: TenantReader, tenant: &str) -> Option<clickhouse::Client> {
        let password = self.reader_password.as_deref()?;
        Some(
            self.anonymous_client()
                .with_database(&self.database)
                .with_user(reader.user())
                .with_password(password)
                .with_header(TENANT_HEADER, tenant),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AccessConfig {
        AccessConfig {
            databases: vec!["sealtrail".to_owned(), "a<b".to_owned()],
            networks: vec!["127.0.0.1".to_owned()],
            password: PasswordSource::FromEnv("SEALTRAIL_CLICKHOUSE_READER_PASSWORD".to_owned()),
            component_passwords: Vec::new(),
            default_admin: None,
        }
    }

    #[test]
    fn every_table_a_reader_is_granted_has_a_row_policy() {
        let xml = config().users_xml();
        for reader in TenantReader::ALL {
            assert!(xml.contains(&format!("<{}>", reader.user())), "{xml}");
        }
        let grants = xml.matches("<query>GRANT SELECT ON ").count();
        let policies = xml.matches("<filter>").count();
        assert_eq!(grants, 2 * 2 * 2, "{xml}");
        assert_eq!(grants, policies, "{xml}");
        assert!(
            !xml.contains("GRANT ALL") && !xml.contains("<access_management>"),
            "{xml}"
        );
        assert!(xml.contains("a&lt;b"), "names are escaped: {xml}");
        assert!(xml.contains("<password from_env=\"SEALTRAIL_CLICKHOUSE_READER_PASSWORD\"/>"));
    }

    #[test]
    fn components_get_no_ddl_no_users_and_no_tenant_bound_tables_beyond_their_own() {
        for component in Component::ALL {
            for (privileges, table) in component.grants() {
                assert!(
                    privileges
                        .split(", ")
                        .all(|p| ["SELECT", "INSERT", "ALTER DELETE"].contains(&p)),
                    "{component:?}: {privileges}"
                );
                assert!(!table.contains('*'), "{component:?}: {table}");
            }
        }
        // What a component reads of ClickHouse's own tables is its own user's rows, a few columns.
        for component in Component::ALL {
            for (privileges, _, filter) in component.system_grants() {
                assert!(privileges.starts_with("SELECT("), "{component:?}: {privileges}");
                assert_eq!(*filter, "user = currentUser()", "{component:?}");
            }
        }
        assert_eq!(Component::Sink.password_env(), "CLICKHOUSE_SINK_PASSWORD");
    }

    #[test]
    fn the_server_configuration_checked_in_is_the_local_engines() {
        let checked_in = include_str!("../config.d/access-control.xml");
        assert!(checked_in.contains(ACCESS_CONTROL_IMPROVEMENTS), "{checked_in}");
    }

    #[test]
    fn the_file_checked_in_for_servers_is_what_the_generator_writes() {
        let expected = AccessConfig {
            databases: vec![ClickHouseSettings::DEFAULT_DATABASE.to_owned()],
            networks: vec!["::/0".to_owned()],
            password: PasswordSource::FromEnv(READER_PASSWORD_ENV.to_owned()),
            component_passwords: Component::ALL
                .iter()
                .map(|c| (*c, PasswordSource::FromEnv(c.password_env())))
                .collect(),
            default_admin: None,
        }
        .users_xml();
        let checked_in = include_str!("../users.d/sealtrail.xml");
        assert_eq!(
            checked_in, expected,
            "infra/clickhouse/users.d/sealtrail.xml is stale: regenerate it with `sealtrail clickhouse-access --out infra/clickhouse/users.d/sealtrail.xml`"
        );
    }
}
