//! The gRPC side of `bench-ingest`: the same events as the REST side, over client streams and
//! over unary calls.

use std::time::Instant;

use futures::StreamExt as _;
use sealtrail_api::ingest::grpc::pb::ingest_client::IngestClient;
use sealtrail_api::ingest::grpc::{message, pb};
use tonic::transport::Channel;

use super::{IngestBench, bar, event};
use crate::api::Latencies;

fn call<T>(message: T, tenant: &str, key: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse()?);
    request.metadata_mut().insert("x-tenant-id", tenant.parse()?);
    Ok(request)
}

/// The batches of the run, tenants in turn, as the REST side sends them.
fn batches(args: &IngestBench, credentials: &[(String, String)], now_ms: i64) -> Vec<(usize, pb::EventBatch)> {
    (0..args.events.div_ceil(args.batch))
        .map(|request| {
            let credential = request % credentials.len();
            let size = args.batch.min(args.events - request * args.batch);
            let events = (0..size)
                .map(|i| message(&event(&credentials[credential].0, request * args.batch + i, now_ms)))
                .collect();
            (credential, pb::EventBatch { events })
        })
        .collect()
}

async fn connect(url: &str) -> anyhow::Result<IngestClient<Channel>> {
    let channel = Channel::from_shared(url.to_owned())?.connect().await?;
    Ok(IngestClient::new(channel))
}

/// `args.concurrency` streams, one per tenant in turn, each carrying every batch of its tenant.
pub async fn streams(
    args: &IngestBench,
    url: &str,
    credentials: &[(String, String)],
    now_ms: i64,
) -> anyhow::Result<f64> {
    let client = connect(url).await?;
    let streams = args.concurrency.min(credentials.len()).max(1);
    let mut per_stream: Vec<Vec<pb::EventBatch>> = (0..streams).map(|_| Vec::new()).collect();
    for (credential, batch) in batches(args, credentials, now_ms) {
        per_stream[credential % streams].push(batch);
    }
    let progress = bar("gRPC streams through the edge", args.events)?;
    let started = Instant::now();
    let answers = futures::future::join_all(per_stream.into_iter().enumerate().map(|(index, batches)| {
        let mut client = client.clone();
        let (tenant, key) = &credentials[index];
        let progress = progress.clone();
        async move {
            let answer = client
                .stream_events(call(futures::stream::iter(batches), tenant, key)?)
                .await?
                .into_inner();
            anyhow::ensure!(answer.rejected == 0, "the edge rejected events: {answer:?}");
            progress.inc(u64::from(answer.accepted));
            Ok(())
        }
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    answers.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    #[expect(clippy::cast_precision_loss, reason = "event counts are far below 2^52")]
    Ok(args.events as f64 / elapsed)
}

/// One unary call per batch, `args.concurrency` at once.
pub async fn unary(
    args: &IngestBench,
    url: &str,
    credentials: &[(String, String)],
    now_ms: i64,
) -> anyhow::Result<(f64, Latencies)> {
    let client = connect(url).await?;
    let progress = bar("gRPC unary batches through the edge", args.events)?;
    let started = Instant::now();
    let samples: Vec<anyhow::Result<f64>> = futures::stream::iter(batches(args, credentials, now_ms))
        .map(|(credential, batch)| {
            let mut client = client.clone();
            let (tenant, key) = &credentials[credential];
            let progress = progress.clone();
            async move {
                let sent = Instant::now();
                let answer = client.send_events(call(batch, tenant, key)?).await?.into_inner();
                anyhow::ensure!(answer.rejected == 0, "the edge rejected events: {answer:?}");
                progress.inc(u64::from(answer.accepted));
                Ok(sent.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let samples = samples.into_iter().collect::<anyhow::Result<Vec<f64>>>()?;
    #[expect(clippy::cast_precision_loss, reason = "event counts are far below 2^52")]
    Ok((args.events as f64 / elapsed, Latencies::of(samples)))
}
