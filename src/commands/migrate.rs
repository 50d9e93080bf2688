use std::time::Duration;

use sealtrail_clickhouse::{apply_migrations, wait_for_clickhouse};

use crate::settings::ClickHouseArgs;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let settings = args.clickhouse.settings()?;
    wait_for_clickhouse(&settings, Duration::from_secs(10)).await?;
    let report = apply_migrations(&settings).await?;
    let applied = report.iter().filter(|m| m.newly_applied).count();
    println!(
        "{} migrations in place on {} (database {}), {applied} applied now",
        report.len(),
        settings.url,
        settings.database
    );
    Ok(())
}
