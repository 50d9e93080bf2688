//! Latency of the query API on a large table (`sealtrail bench-api`), through the real HTTP API
//! (authentication, rate limiting, tenant rewrite, and the audit record of every read, which waits
//! for Kafka's acknowledgement), next to the same query sent to ClickHouse directly.

use sealtrail_runtime::RegistryConnection;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_api::audit::AccessRecorder;
use sealtrail_api::auth::Role;
use sealtrail_api::auth::api_keys::KeyStore;
use sealtrail_api::auth::jwt::JwtVerifier;
use sealtrail_api::rate_limit::RateLimit;
use sealtrail_api::server::{ApiConfig, router};
use sealtrail_api::webhooks::WebhookSettings;
use sealtrail_clickhouse::{ClickHouseSettings, apply_migrations, wait_for_clickhouse};
use sealtrail_emit::AuditEmitter;
use sealtrail_kafka::KafkaSettings;
use serde_json::json;

/// What to measure, and where.
#[derive(Debug, Clone)]
pub struct ApiBench {
    pub clickhouse: ClickHouseSettings,
    pub kafka: KafkaSettings,
    pub kafka_connect_timeout: Duration,
    pub registry: RegistryConnection,
    /// Rows in the benchmark's events table.
    pub rows: u64,
    /// Tenants the rows are spread over.
    pub tenants: u64,
    /// Requests timed per query kind.
    pub requests: usize,
    /// Keep the generated database afterwards (it is dropped by default).
    pub keep: bool,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct ApiReport {
    /// The tenant queried (the busiest) and the rows its filter answers.
    pub tenant: String,
    pub filter_rows: usize,
    /// `GET /v1/events` with a time window and an actor filter.
    pub filter: Latencies,
    /// `POST /v1/query` grouping a month by action.
    pub group: Latencies,
    /// The filter's query sent to ClickHouse alone (no API, no audit record).
    pub direct_filter: Latencies,
    /// The database the rows were kept in, with `keep`.
    pub kept_in: Option<String>,
}

/// Days of history the rows cover.
const DAYS: u64 = 90;
/// Actors per tenant.
const ACTORS: u64 = 500;

/// Fills a table of `rows` events, serves the API in process, and times the queries.
pub async fn measure(args: ApiBench) -> anyhow::Result<ApiReport> {
    anyhow::ensure!(
        args.rows > 0 && args.tenants > 0 && args.requests > 0,
        "--rows, --tenants and --requests must be positive"
    );
    let mut clickhouse = args.clickhouse.clone();
    wait_for_clickhouse(&clickhouse, Duration::from_secs(30)).await?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    // A database the tenant-bound readers may read (ClickHouse binds row policies to named
    // databases), emptied first.
    ClickHouseSettings::BENCH_DATABASE.clone_into(&mut clickhouse.database);
    drop_unless_kept(&clickhouse, false).await?;
    apply_migrations(&clickhouse).await?;
    fill(&clickhouse, args.rows, args.tenants).await?;

    let url = start_api(&args, &clickhouse, run).await?;
    // The busiest tenant, one of its actors, a week of its history, and its busiest month.
    let tenant = "tenant-000";
    let key = KeyStore::new(clickhouse.client())
        .create(tenant, Role::Auditor, "bench")
        .await?
        .key;
    let http = reqwest::Client::new();
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |at: time::OffsetDateTime| at.format(&time::format_description::well_known::Rfc3339);
    let (week_from, week_to) = (
        rfc3339(now - time::Duration::days(14))?,
        rfc3339(now - time::Duration::days(7))?,
    );
    let (month_from, month_to) = (
        rfc3339(now - time::Duration::days(40))?,
        rfc3339(now - time::Duration::days(10))?,
    );
    let filter_path = format!("/v1/events?from={week_from}&to={week_to}&actor=actor-7&limit=100");
    let group_sql = format!(
        "SELECT action, count() AS n FROM events WHERE occurred_at >= parseDateTimeBestEffort('{month_from}') \
         AND occurred_at < parseDateTimeBestEffort('{month_to}') GROUP BY action ORDER BY n DESC"
    );
    let filter_rows = http
        .get(format!("{url}{filter_path}"))
        .bearer_auth(&key)
        .send()
        .await?
        .error_for_status()?
        .json::<serde_json::Value>()
        .await?["events"]
        .as_array()
        .map_or(0, Vec::len);

    let filter = time_requests("tenant window + actor filter via the API", args.requests, || async {
        http.get(format!("{url}{filter_path}"))
            .bearer_auth(&key)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok(())
    })
    .await?;
    let group = time_requests("GROUP BY action over a month via the API", args.requests, || async {
        http.post(format!("{url}/v1/query"))
            .bearer_auth(&key)
            .json(&json!({"sql": group_sql}))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok(())
    })
    .await?;
    let client = clickhouse.client();
    let direct_filter = time_requests("the same filter sent to ClickHouse directly", args.requests, || async {
        client
            .query(
                "SELECT * FROM events WHERE tenant_id = {tenant:String} AND actor_id = 'actor-7' \
                 AND occurred_at >= parseDateTimeBestEffort({from:String}) AND occurred_at < parseDateTimeBestEffort({to:String}) \
                 ORDER BY occurred_at, seq LIMIT 100",
            )
            .param("tenant", tenant)
            .param("from", &week_from)
            .param("to", &week_to)
            .fetch_bytes("JSONEachRow")?
            .collect()
            .await?;
        Ok(())
    })
    .await?;
    drop_unless_kept(&clickhouse, args.keep).await?;
    Ok(ApiReport {
        tenant: tenant.to_owned(),
        filter_rows,
        filter,
        group,
        direct_filter,
        kept_in: args.keep.then(|| clickhouse.database.clone()),
    })
}

async fn drop_unless_kept(clickhouse: &ClickHouseSettings, keep: bool) -> anyhow::Result<()> {
    if keep {
        return Ok(());
    }
    for database in [clickhouse.database.clone()] {
        clickhouse
            .server_client()
            .query("DROP DATABASE IF EXISTS ?")
            .bind(clickhouse::sql::Identifier(&database))
            .execute()
            .await
            .with_context(|| format!("dropping the benchmark database {database}"))?;
    }
    Ok(())
}

/// Serves the API in process on a free port, with audit records going to a topic of their own.
async fn start_api(args: &ApiBench, clickhouse: &ClickHouseSettings, run: u64) -> anyhow::Result<String> {
    let kafka = args.kafka.clone();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka_connect_timeout).await?;
    let audit_topic = format!("bench-api-audit-{run}");
    sealtrail_kafka::ensure_topics(&kafka, &[sealtrail_kafka::TopicSpec::new(&audit_topic, 4)]).await?;
    let emitter = AuditEmitter::connect(&kafka, &args.registry, &audit_topic).await?;
    let app = router(ApiConfig {
        metrics: sealtrail_runtime::Metrics::new("api"),
        routes: sealtrail_api::server::ServedRoutes::All,
        ingest: sealtrail_api::ingest::IngestSettings::default(),
        client_identities: sealtrail_api::auth::client_certs::ClientIdentities::default(),
        clickhouse: clickhouse.clone(),
        jwt: JwtVerifier::new(None, None)?,
        tokenizer: None,
        recorder: AccessRecorder::new(emitter),
        rate_limit: RateLimit {
            per_second: 1e6,
            burst: 1_000_000,
        },
        webhooks: WebhookSettings::default(),
        trusted_keys: Vec::new(),
        exports: None,
    })
    .await?;
    serve_in_process(app).await
}

/// Generates the rows inside ClickHouse: tenant `n % tenants` with a skew (low-numbered tenants
/// get more), gap-free sequences per tenant, times over the last `DAYS` days, a pool of actors.
async fn fill(clickhouse: &ClickHouseSettings, rows: u64, tenants: u64) -> anyhow::Result<()> {
    let spinner =
        ProgressBar::new_spinner().with_message(format!("inserting {rows} events into {}", clickhouse.database));
    spinner.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    clickhouse
        .client()
        .query(
            "INSERT INTO events (tenant_id, seq, event_id, occurred_at, action, actor_id, actor_type, resource_type, \
               resource_id, outcome, category, data_class, labels, seal_policy_version, scheme, prev_hash, hash, key_id, \
               sealed_partition, sealed_offset, sealed_at) \
             SELECT tenant, row_number() OVER (PARTITION BY tenant ORDER BY number) AS seq, \
               concat('01BENCH', leftPad(toString(number), 19, '0')), \
               now64(3) - toIntervalMillisecond(number * {span_ms:UInt64} DIV {rows:UInt64}), \
               ['user.login', 'configuration.changed', 'billing.refund.posted', 'support.action.performed', 'data.exported'][number % 5 + 1], \
               concat('actor-', toString(cityHash64(number) % {actors:UInt64})), 'USER', 'account', \
               concat('acct-', toString(number % 10000)), ['SUCCESS', 'FAILURE', 'DENIED'][number % 3 + 1], \
               ['user', 'configuration', 'billing', 'support', 'data'][number % 5 + 1], 'CONFIDENTIAL', ['email'], \
               'bench', 1, lower(hex(SHA256(toString(number)))), lower(hex(SHA256(toString(number + 1)))), 'bench', \
               number % 4, number, now64(3) \
             FROM (SELECT number, concat('tenant-', leftPad(toString(toUInt64(pow(cityHash64(number) % 1000000 / 1000000, 2) * {tenants:UInt64})), 3, '0')) AS tenant \
                   FROM numbers({rows:UInt64}))",
        )
        .param("rows", rows)
        .param("tenants", tenants)
        .param("actors", ACTORS)
        .param("span_ms", DAYS * 24 * 3600 * 1000)
        .with_setting("max_memory_usage", "4000000000")
        .execute()
        .await
        .context("generating the benchmark rows")?;
    spinner.finish_and_clear();
    eprintln!(
        "bench-api: {rows} rows inserted in {:.1} s (not timed below)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Latency percentiles of one kind of request.
#[derive(Debug, Clone, Copy)]
pub struct Latencies {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub count: usize,
}

impl Latencies {
    /// The percentiles of `samples`, in milliseconds.
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let at = |quantile: f64| {
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a small index")]
            let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
            samples.get(index).copied().unwrap_or_default()
        };
        Self {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            count: samples.len(),
        }
    }
}

/// Serves `app` in process on a free loopback port; its URL.
pub async fn serve_in_process(app: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sealtrail_api::serve::serve(listener, app, None, std::future::pending()));
    Ok(url)
}

async fn time_requests<F, Fut>(what: &str, count: usize, request: F) -> anyhow::Result<Latencies>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    // Warm caches and connections first; those requests are not counted.
    for _ in 0..count.min(20) {
        request().await?;
    }
    let bar = ProgressBar::new(count as u64).with_style(ProgressStyle::with_template(&format!(
        "  {what} {{bar:30}} {{pos}}/{{len}}"
    ))?);
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        request().await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Latencies::of(samples))
}
