use std::path::PathBuf;

use anyhow::Context as _;
use sealtrail_clickhouse::{VerifyRequest, verify_tenant};
use time::OffsetDateTime;

use crate::settings::{ClickHouseArgs, parse_time};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// The tenant whose trail to verify.
    #[arg(long)]
    tenant: String,
    /// Start of the window to verify (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long, value_parser = parse_time)]
    from: Option<OffsetDateTime>,
    /// End of the window to verify (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    to: Option<OffsetDateTime>,
    /// Public keys trusted to sign checkpoints: a `.pub` file or a directory of them. They must
    /// come from outside ClickHouse (whoever can edit ClickHouse could replace them).
    #[arg(long, env = "SEALTRAIL_TRUSTED_KEYS", default_value = ".sealtrail/keys/trusted")]
    trusted_keys: PathBuf,
}

/// Exits 0 only when every event, link, head and signature verifies.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let trusted = sealtrail_runtime::keys::load_trusted(&args.trusted_keys)?;
    let request = VerifyRequest {
        tenant: args.tenant.clone(),
        from: args.from,
        to: args.to,
    };
    let report = verify_tenant(&args.clickhouse.settings()?, &request, &trusted)
        .await
        .with_context(|| format!("verification of tenant {} FAILED", args.tenant))?;
    if report.events == 0 && report.purged == 0 {
        println!(
            "tenant {}: no events in the requested window; nothing to verify",
            report.tenant
        );
        return Ok(());
    }
    println!(
        "tenant {} verified: {} events (sequence {}..{}) chained from {}",
        report.tenant,
        report.events,
        report.first_seq.unwrap_or_default(),
        report.last_seq.unwrap_or_default(),
        if report.anchored_after == 0 {
            "genesis".to_owned()
        } else {
            format!("the signed head at sequence {}", report.anchored_after)
        },
    );
    println!(
        "  {} checkpoints of partition {} verified (signatures and links), {} entries roots recomputed; signed through sequence {}",
        report.checkpoints,
        report.partition.unwrap_or_default(),
        report.entries_roots_checked,
        report.signed_through
    );
    if report.unsigned_tail() > 0 {
        println!(
            "  {} newest events are chained but not yet under a signed checkpoint (the next one covers them)",
            report.unsigned_tail()
        );
    }
    if report.purged > 0 {
        println!(
            "  {} events were purged by retention policies; their tombstones link the chain through:",
            report.purged
        );
        for range in &report.purged_ranges {
            println!(
                "    sequences {}..{} purged by policy {}",
                range.first_seq, range.last_seq, range.policy_id
            );
        }
    }
    Ok(())
}
