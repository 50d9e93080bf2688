//! The sink settles inserts that may still be running before it reads where a partition stands:
//! against the real ClickHouse, as the sink's own user, `settle` ends that user's queries into
//! the named partitions and only those; another user's queries stay invisible and untouched.

use std::time::{Duration, Instant};

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_clickhouse::access::Component;
use sealtrail_sink::{ClickHouseStore, SinkStore};

use crate::harness::{TestStack, shared, unique};

/// A layout epoch no pipeline of the shared stack writes, so nothing real is ended.
const EPOCH: u32 = 9_999;

fn as_sink(stack: &TestStack) -> ClickHouseSettings {
    let mut sink = stack.clickhouse();
    sink.user = Some(Component::Sink.user().to_owned());
    sink.password = Some(
        std::fs::read_to_string(
            stack
                .data_dir
                .join("clickhouse-access")
                .join(format!("{}.password", Component::Sink.user())),
        )
        .expect("the sink's password file")
        .trim()
        .to_owned(),
    );
    sink
}

/// Runs a query of about `seconds` seconds (one branch of `sleep(1)` after another; ClickHouse
/// sleeps at most 3 s per block) under `query_id`; it answers `seconds`.
fn hold(settings: &ClickHouseSettings, query_id: &str, seconds: usize) -> tokio::task::JoinHandle<Result<u64, String>> {
    let client = settings.client();
    let branches = vec!["SELECT sleep(1) AS slept"; seconds].join(" UNION ALL ");
    let sql = format!("SELECT countIf(slept = 0) FROM ({branches}) SETTINGS max_threads = 1");
    let query_id = query_id.to_owned();
    tokio::spawn(async move {
        client
            .query(&sql)
            .with_setting("query_id", query_id)
            .fetch_one::<u64>()
            .await
            .map_err(|error| error.to_string())
    })
}

/// Waits (up to a minute) until the administrator sees every one of `query_ids` running.
async fn running(admin: &clickhouse::Client, query_ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: Vec<String> = admin
            .query("SELECT query_id FROM system.processes WHERE has(?, query_id)")
            .bind(query_ids)
            .fetch_all()
            .await
            .expect("the administrator reads system.processes");
        if seen.len() == query_ids.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {query_ids:?} running (saw {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn settling_a_partition_ends_the_sinks_own_queries_into_it_and_nothing_else() {
    let stack = shared();
    let admin = stack.clickhouse();
    let sink = as_sink(stack);
    let run = unique("settle");
    let named = format!("sealtrail-sink/e{EPOCH}/p1.3/{run}-named");
    let other_partition = format!("sealtrail-sink/e{EPOCH}/p0.2/{run}-other");
    let other_epoch = format!("sealtrail-sink/e{}/p3/{run}-epoch", EPOCH - 1);
    let other_user = format!("sealtrail-sink/e{EPOCH}/p3/{run}-admin");
    let held_named = hold(&sink, &named, 60);
    let untouched = [
        hold(&sink, &other_partition, 60),
        hold(&sink, &other_epoch, 60),
        hold(&admin, &other_user, 60),
    ];
    let others = [other_partition.as_str(), other_epoch.as_str(), other_user.as_str()];
    running(&admin.client(), &[&named, others[0], others[1], others[2]]).await;

    let visible: Vec<String> = sink
        .client()
        .query("SELECT query_id FROM system.processes")
        .fetch_all()
        .await
        .expect("the sink reads its own processes");
    assert!(visible.contains(&named), "{visible:?}");
    assert!(
        !visible.contains(&other_user),
        "the sink sees no other user's queries: {visible:?}"
    );

    // An attacker with the sink's password: other users' queries stay out of reach, whatever the
    // statement says, and the other columns (addresses, settings, ...) are not granted.
    let sink_client = sink.client();
    let others_seen: Vec<String> = sink_client
        .query("SELECT query FROM system.processes WHERE user != currentUser()")
        .fetch_all()
        .await
        .expect("the row policy filters, it does not refuse");
    assert!(others_seen.is_empty(), "{others_seen:?}");
    let refused = sink_client
        .query("SELECT address, http_user_agent FROM system.processes")
        .fetch_all::<(String, String)>()
        .await
        .expect_err("only the four columns settle needs are granted")
        .to_string();
    assert!(
        refused.contains("ACCESS_DENIED") || refused.contains("Not enough privileges"),
        "{refused}"
    );
    sink_client
        .query("KILL QUERY WHERE query_id = ? SYNC")
        .bind(&other_user)
        .execute()
        .await
        .expect("a KILL that matches none of the sink's own queries ends nothing");

    let store = ClickHouseStore::new(&sink, tokio::runtime::Handle::current(), EPOCH);
    tokio::task::spawn_blocking(move || store.settle(&[3]))
        .await
        .expect("joined")
        .expect("the sink may end its own queries");

    let ended = held_named.await.expect("joined");
    assert!(
        ended
            .as_ref()
            .is_err_and(|error| error.contains("QUERY_WAS_CANCELLED") || error.contains("cancel")),
        "the query into partition 3 was ended: {ended:?}"
    );
    // The others still run (another partition, another epoch, another user): settling returned
    // only once what it ended had ended, so this is after it. The administrator ends them.
    running(&admin.client(), &others).await;
    admin
        .client()
        .query("KILL QUERY WHERE has(?, query_id) SYNC")
        .bind(others.as_slice())
        .execute()
        .await
        .expect("the administrator ends the others");
    for held in untouched {
        assert!(held.await.expect("joined").is_err(), "ended by the administrator");
    }
}
