//! One sweep of the ClickHouse projection: fingerprint every checked stretch, compare the ones
//! that changed row by row with the sealed topic, and look for rows where no sealed record can
//! be. A failed comparison is read again before it is raised, so a retention run caught between
//! deleting a row and writing its tombstone is not an incident.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::incident::{Incident, IncidentKind};
use crate::processor::MonitorProcessor;
use crate::projection::{self, compare};

impl MonitorProcessor {
    /// Per assigned partition, the last sealed offset both covered by a checkpoint the monitor
    /// read and stored by the sink. What the sink stored is the newest row in ClickHouse, and the
    /// bound never goes back: rows deleted from the end stay inside it, and are found missing.
    fn checked_bounds(&mut self) -> Vec<(i32, u64)> {
        let stored = match self.projection.stored_through() {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "cannot read how far the projection goes; the projection is not swept this time");
                return Vec::new();
            }
        };
        let mut bounds = Vec::new();
        for (partition, state) in &self.partitions {
            let newest = stored.get(partition).copied().unwrap_or(-1);
            let seen = self.stored_through.entry(*partition).or_insert(-1);
            *seen = (*seen).max(newest);
            if let Ok(bound) = u64::try_from(state.covered_through.min(*seen)) {
                bounds.push((*partition, bound));
            }
        }
        bounds
    }

    pub(crate) fn sweep(&mut self) {
        let started = Instant::now();
        let bounds = self.checked_bounds();
        let size = self.config.bucket_offsets.max(1);
        let prints = match self.projection.prints(&bounds, size) {
            Ok(prints) => prints,
            Err(error) => {
                tracing::warn!(%error, "cannot fingerprint the projection; retrying at the next sweep");
                return;
            }
        };
        let mut compared = 0;
        for (partition, bound) in &bounds {
            for bucket in 0..=bound / size {
                let now = prints.get(&(*partition, bucket)).copied().unwrap_or_default();
                if self.baselines.get(&(*partition, bucket)) == Some(&now) {
                    continue;
                }
                compared += 1;
                let (from, through) = (bucket * size, (bucket * size + size - 1).min(*bound));
                match self.compare_stretch(*partition, from, through) {
                    Ok(incidents) if incidents.is_empty() => {
                        self.baselines.insert((*partition, bucket), now);
                    }
                    Ok(incidents) => incidents.iter().for_each(|incident| self.raise(incident)),
                    Err(error) => {
                        tracing::warn!(%error, partition, from, through, "cannot compare a stretch of the projection; retrying at the next sweep");
                    }
                }
            }
            self.config
                .metrics
                .assurance()
                .checked(*partition, i64::try_from(*bound).unwrap_or(i64::MAX));
        }
        if self.partitions.contains_key(&0) {
            self.find_strays();
        }
        self.summary.buckets_compared += compared;
        self.config
            .metrics
            .assurance()
            .compared(compared, started.elapsed().as_secs_f64());
    }

    /// Compares sealed offsets `from..=through` of `partition`; what differs twice in a row.
    fn compare_stretch(&mut self, partition: i32, from: u64, through: u64) -> Result<Vec<Incident>, String> {
        let expected = projection::expected(
            &self.reader,
            &mut self.readers,
            (&self.config.sealed_topic, self.config.layout_epoch),
            partition,
            from,
            through,
        )?;
        let epoch = self.config.layout_epoch;
        let first = compare(
            &expected,
            &self.projection.stored(partition, from, through)?,
            epoch,
            partition,
        );
        if first.is_empty() {
            return Ok(first);
        }
        let again = compare(
            &expected,
            &self.projection.stored(partition, from, through)?,
            epoch,
            partition,
        );
        let seen: BTreeSet<_> = first.iter().map(Incident::identity).collect();
        Ok(again.into_iter().filter(|i| seen.contains(&i.identity())).collect())
    }

    /// Rows in a later epoch, a partition the layout lacks, or past a partition's end.
    fn find_strays(&mut self) {
        let (reader, topic, count) = (&self.reader, &self.config.sealed_topic, self.config.partitions);
        let ends = || {
            (0..i32::try_from(count).unwrap_or(i32::MAX))
                .map(|p| reader.watermarks(topic, p).map(|(_, high)| high))
                .collect::<Result<Vec<i64>, _>>()
                .map_err(|error| error.to_string())
        };
        let strays = match self.projection.strays(count, ends) {
            Ok(strays) => strays,
            Err(error) => {
                tracing::warn!(%error, "cannot look for stray rows; retrying at the next sweep");
                return;
            }
        };
        for stray in strays {
            self.raise(&Incident {
                kind: IncidentKind::RowInserted,
                tenant: None,
                layout_epoch: stray.layout_epoch,
                sealed_partition: i32::try_from(stray.sealed_partition).unwrap_or(i32::MAX),
                sealed_offset: i64::try_from(stray.sealed_offset).unwrap_or(i64::MAX),
                detail: format!(
                    "{} rows reach layout epoch {} partition {} sealed offset {}, where the sealed topic has no record",
                    stray.table, stray.layout_epoch, stray.sealed_partition, stray.sealed_offset
                ),
            });
        }
    }
}
