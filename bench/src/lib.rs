//! sealtrail's benchmarks, as a crate of their own: the seal core in process, the seal processor
//! end to end next to a plain copy, scaling out and one tenant's ceiling, the query API's latency,
//! and export throughput. Each returns its figures; `sealtrail bench`, `bench-api` and
//! `bench-export` print them (docs/performance.md). A benchmark tool, not a library others link:
//! it reports failures with `anyhow`.

pub mod api;
pub mod core_parallel;
pub mod core_throughput;
pub mod end_to_end;
pub mod export;
pub mod ingest;
pub mod latency;
pub mod peer;
pub mod scaling;

use std::time::Duration;

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        f64::midpoint(values[middle - 1], values[middle])
    }
}

pub fn per_second(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(1e-9)
}
