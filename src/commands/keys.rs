use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sealtrail_api::auth::Role;
use sealtrail_api::auth::api_keys::KeyStore;
use sealtrail_clickhouse::apply_migrations;
use sealtrail_runtime::keys::init_key_dir;
use time::format_description::well_known::Rfc3339;

use crate::settings::ClickHouseArgs;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create the signing and tokenization keys in a directory, if missing, and publish the
    /// signing key's public half under `<dir>/trusted/`.
    Init {
        #[arg(long, env = "SEALTRAIL_KEY_DIR", default_value = ".sealtrail/keys")]
        dir: PathBuf,
    },
    /// Issue an API key for one tenant and role; the key is printed once, alone on the last line.
    Create {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
        #[arg(long)]
        tenant: String,
        /// One of: auditor, `tenant_admin`, compliance, sre, `platform_admin`, producer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// For a producer: more tenants it writes events for (a platform producer), comma
        /// separated; it still reads nothing.
        #[arg(long = "also-tenant", value_delimiter = ',')]
        also_tenants: Vec<String>,
        /// What the key is for (shown in lists).
        #[arg(long, default_value = "")]
        label: String,
        /// Days until the key is refused; 0 for a key that never expires.
        #[arg(long, default_value_t = 90)]
        expires_in_days: u32,
    },
    /// List API keys (never their secrets), of one tenant or all.
    List {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke an API key by its id: it stops working at once, and stays listed as revoked.
    Revoke {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
        key_id: String,
    },
    /// Issue the successor of an API key (same tenant, role and label; printed once, alone on the
    /// last line) and let the old key work only for an overlap while its users switch.
    Rotate {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
        key_id: String,
        /// Hours the old key keeps working.
        #[arg(long, default_value_t = 24)]
        overlap_hours: u32,
        /// Days until the new key is refused; 0 for a key that never expires.
        #[arg(long, default_value_t = 90)]
        expires_in_days: u32,
    },
}

/// `keys list`: every key of one tenant or all, with its state and last use.
async fn list(clickhouse: &ClickHouseArgs, tenant: Option<&str>) -> anyhow::Result<()> {
    let store = key_store(clickhouse).await?;
    let keys = store.list(tenant).await?;
    let usage = store.usage().await?;
    let now = time::OffsetDateTime::now_utc();
    println!(
        "{:<16}  {:<24}  {:<14}  {:<24}  {:<24}  {:<24}  {:<24}  label",
        "key id", "tenant", "role", "created", "expires", "revoked", "last used"
    );
    for key in &keys {
        println!(
            "{:<16}  {:<24}  {:<14}  {:<24}  {:<24}  {:<24}  {:<24}  {}",
            key.key_id,
            key.tenant_id,
            key.role,
            shown(Some(key.created_at)),
            shown(key.expires_at),
            shown(key.revoked_at),
            shown(usage.get(&key.key_id).copied()),
            if key.platform_tenants.is_empty() {
                key.label.clone()
            } else {
                format!("{} (also writes for {})", key.label, key.platform_tenants.join(", "))
            }
        );
    }
    println!(
        "{} keys, {} revoked, {} expired",
        keys.len(),
        keys.iter().filter(|k| k.revoked_at.is_some()).count(),
        keys.iter()
            .filter(|k| k.revoked_at.is_none() && k.is_dead_at(now))
            .count()
    );
    Ok(())
}

fn days(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400))
}

fn shown(at: Option<time::OffsetDateTime>) -> String {
    at.and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".to_owned())
}

fn expiry(at: Option<time::OffsetDateTime>) -> String {
    at.map_or_else(|| "never".to_owned(), |at| shown(Some(at)))
}

fn parse_role(name: &str) -> Result<Role, String> {
    Role::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|role| role.name()).collect();
        format!("unknown role `{name}`; use one of {}", names.join(", "))
    })
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Init { dir } => init(&dir),
        KeysCommand::Create {
            clickhouse,
            tenant,
            role,
            also_tenants,
            label,
            expires_in_days,
        } => {
            let store = key_store(&clickhouse).await?;
            let expires_at = match days(expires_in_days) {
                None => None,
                Some(lifetime) => Some(
                    time::Duration::try_from(lifetime)
                        .ok()
                        .and_then(|lifetime| time::OffsetDateTime::now_utc().checked_add(lifetime))
                        .context("--expires-in-days ends after the year 9999; give fewer days")?,
                ),
            };
            let issued = store
                .create_bound(&tenant, &also_tenants, role, &label, expires_at)
                .await?;
            let also = if issued.stored.platform_tenants.is_empty() {
                String::new()
            } else {
                format!(" (and writing for {})", issued.stored.platform_tenants.join(", "))
            };
            println!(
                "API key {} for tenant {}{also} with role {}, expires {} (keep it: it is shown only now)",
                issued.stored.key_id,
                issued.stored.tenant_id,
                issued.stored.role,
                expiry(issued.stored.expires_at)
            );
            println!("{}", issued.key);
            Ok(())
        }
        KeysCommand::List { clickhouse, tenant } => list(&clickhouse, tenant.as_deref()).await,
        KeysCommand::Revoke { clickhouse, key_id } => {
            let store = key_store(&clickhouse).await?;
            let key = store.revoke(&key_id).await?;
            println!("API key {} of tenant {} is revoked", key.key_id, key.tenant_id);
            Ok(())
        }
        KeysCommand::Rotate {
            clickhouse,
            key_id,
            overlap_hours,
            expires_in_days,
        } => {
            let store = key_store(&clickhouse).await?;
            let overlap = Duration::from_secs(u64::from(overlap_hours) * 3600);
            let (issued, old) = store.rotate(&key_id, overlap, days(expires_in_days)).await?;
            println!(
                "API key {} replaces {} (tenant {}, role {}); {} works until {}, the new key expires {} (keep it: it is shown only now)",
                issued.stored.key_id,
                old.key_id,
                old.tenant_id,
                old.role,
                old.key_id,
                shown(old.expires_at),
                expiry(issued.stored.expires_at)
            );
            println!("{}", issued.key);
            Ok(())
        }
    }
}

async fn key_store(args: &ClickHouseArgs) -> anyhow::Result<KeyStore> {
    let settings = args.settings()?;
    apply_migrations(&settings)
        .await
        .with_context(|| format!("cannot prepare ClickHouse at {} for API keys", settings.url))?;
    Ok(KeyStore::new(settings.client()))
}

fn init(dir: &std::path::Path) -> anyhow::Result<()> {
    let keys = init_key_dir(dir)?;
    let state = if keys.created { "created" } else { "already present" };
    println!("keys {state} in {}", dir.display());
    println!(
        "  checkpoint signing key {} (key id {})",
        keys.signing_key.display(),
        keys.key_id
    );
    println!("  tokenization key       {}", keys.tokenization_key.display());
    println!(
        "  trusted public keys    {} (give these to verifiers)",
        keys.trusted.display()
    );
    Ok(())
}
