//! Materialization: for each feature view, read the latest row per entity
//! key inside `[start, end)` from its batch source, write it to the online
//! store, and only then record the interval in the registry, as Feast does.
//! Views run in parallel up to a bound; a failed view never advances its
//! interval and never stops the others; re-runs are idempotent because the
//! stores keep the newest row per key.
//!
//! A run may also be one [`Shard`] of a view: it writes only the keys that
//! hash to that shard and records no interval, since only the caller knows
//! when every shard has finished.
//!
//! Every finished view run is told to the materializer's [`Recorder`], if
//! it has one: [`metrics::MaterializeMetrics`] turns runs into Prometheus
//! metrics (Feast's `feast_materialization_*` families and Larder's row
//! counts) in whichever registry the caller serves or pushes.

pub mod metrics;
mod shard;
mod spill;

pub use shard::{Shard, ShardError, entity_key_hash};

use std::sync::Arc;
use std::time::{Duration, Instant};

use larder_model::feast::{FeastKind, FeastObject};
use larder_model::types::FeatureType;
use larder_offline::{ReadSpec, SourceSpec, read_latest};
use larder_online::{OnlineStore, ViewSchema};
use larder_protos::feast::core as fc;
use larder_protos::prost_types::Timestamp;
use larder_registry::Registry;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error("registry: {0}")]
    Registry(#[from] larder_registry::RegistryError),
    #[error("feature view {0} does not exist in project {1}")]
    UnknownView(String, String),
    #[error("feature view {0} is not online; materialization writes only online views")]
    NotOnline(String),
    #[error("start {start} must be before end {end}")]
    EmptyWindow { start: String, end: String },
}

/// Why one view failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{0}")]
    Definition(String),
    #[error("offline source: {0}")]
    Offline(#[from] larder_offline::OfflineError),
    #[error("online store: {0}")]
    Online(#[from] larder_online::OnlineError),
    #[error("registry: {0}")]
    Registry(#[from] larder_registry::RegistryError),
    #[error("temporary sort files: {0}")]
    Spill(#[from] std::io::Error),
}

/// Observes progress (the CLI draws bars with it; servers log).
pub trait Progress: Send + Sync {
    fn view_started(&self, _view: &str, _start_ns: i64, _end_ns: i64) {}
    fn rows_written(&self, _view: &str, _rows: u64) {}
    fn view_finished(&self, _report: &ViewReport) {}
}

/// No progress output.
pub struct Quiet;
impl Progress for Quiet {}

/// Told of every finished view run, whoever started it. Unlike
/// [`Progress`], which each call is given, a recorder belongs to the
/// [`Materializer`] (a server's metrics outlive any one run).
pub trait Recorder: Send + Sync {
    fn record(&self, report: &ViewReport);
}

#[derive(Debug)]
pub struct ViewReport {
    pub view: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// Entity rows written to the online store.
    pub rows: u64,
    /// Rows the offline read handed over (the latest row per entity key in
    /// the window, counted before a shard keeps its own keys).
    pub rows_read: u64,
    /// How long the offline read took, from its start until the source was
    /// exhausted or failed; `None` when it never started or was abandoned
    /// because writing failed.
    pub read_elapsed: Option<Duration>,
    pub elapsed: Duration,
    /// The shard this run wrote; `None` for the whole view.
    pub shard: Option<Shard>,
    /// `None` on success; the interval was recorded only then (and never for a shard).
    pub error: Option<ViewError>,
}

pub struct Materializer {
    pub registry: Arc<dyn Registry>,
    pub online: Arc<dyn OnlineStore>,
    pub project: String,
    /// URL for PostgreSQL batch sources (from the `offline_store` config).
    pub postgres_url: Option<String>,
    pub max_parallel_views: usize,
    pub batch_rows: usize,
    pub dedup_capacity: usize,
    /// Entity rows per online write; `None` uses the store's preference.
    pub write_batch_rows: Option<usize>,
    /// Write only this shard's entity keys and record no interval (the
    /// caller records it once every shard succeeded); `None` = everything.
    pub shard: Option<Shard>,
    /// Told of every finished view run (metrics); `None`: nobody.
    pub recorder: Option<Arc<dyn Recorder>>,
}

impl Materializer {
    pub fn new(registry: Arc<dyn Registry>, online: Arc<dyn OnlineStore>, project: impl Into<String>) -> Self {
        Self {
            registry,
            online,
            project: project.into(),
            postgres_url: None,
            max_parallel_views: 4,
            batch_rows: ReadSpec::DEFAULT_BATCH_ROWS,
            dedup_capacity: ReadSpec::DEFAULT_DEDUP_CAPACITY,
            write_batch_rows: None,
            shard: None,
            recorder: None,
        }
    }

    /// The online views to run: all of them when `names` is empty.
    async fn select(&self, names: &[String]) -> Result<Vec<fc::FeatureView>, MaterializeError> {
        let all: Vec<fc::FeatureView> = self
            .registry
            .list(&self.project, FeastKind::FeatureView)
            .await?
            .into_iter()
            .filter_map(|o| match o {
                FeastObject::FeatureView(v) => Some(v),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Ok(all
                .into_iter()
                .filter(|v| v.spec.as_ref().is_some_and(|s| s.online))
                .collect());
        }
        names
            .iter()
            .map(|n| {
                let v = all
                    .iter()
                    .find(|v| v.spec.as_ref().is_some_and(|s| &s.name == n))
                    .ok_or_else(|| MaterializeError::UnknownView(n.clone(), self.project.clone()))?;
                if !v.spec.as_ref().is_some_and(|s| s.online) {
                    return Err(MaterializeError::NotOnline(n.clone()));
                }
                Ok(v.clone())
            })
            .collect()
    }

    /// Materialize `[start_ns, end_ns)` for `views` (all online views when empty).
    pub async fn materialize(
        &self,
        views: &[String],
        start_ns: i64,
        end_ns: i64,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<ViewReport>, MaterializeError> {
        if start_ns >= end_ns {
            return Err(MaterializeError::EmptyWindow {
                start: larder_model::json::timestamp_to_json(start_ns),
                end: larder_model::json::timestamp_to_json(end_ns),
            });
        }
        let selected = self.select(views).await?;
        Ok(self
            .run(selected.into_iter().map(|v| (v, start_ns, end_ns)).collect(), progress)
            .await)
    }

    /// Materialize each view from where its last interval ended (or `end - ttl`,
    /// or the epoch when it has neither) up to `end_ns`.
    pub async fn materialize_incremental(
        &self,
        views: &[String],
        end_ns: i64,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<ViewReport>, MaterializeError> {
        let selected = self.select(views).await?;
        let mut work = Vec::new();
        for v in selected {
            let start = incremental_start(&v, end_ns);
            if start < end_ns {
                work.push((v, start, end_ns));
            }
        }
        Ok(self.run(work, progress).await)
    }

    #[tracing::instrument(name = "materialize", skip_all, fields(project = %self.project, views = work.len(), shard = ?self.shard))]
    async fn run(&self, work: Vec<(fc::FeatureView, i64, i64)>, progress: Arc<dyn Progress>) -> Vec<ViewReport> {
        let limit = Arc::new(Semaphore::new(self.max_parallel_views.max(1)));
        let mut set = JoinSet::new();
        for (i, (view, start, end)) in work.into_iter().enumerate() {
            let job = ViewJob {
                registry: self.registry.clone(),
                online: self.online.clone(),
                project: self.project.clone(),
                postgres_url: self.postgres_url.clone(),
                batch_rows: self.batch_rows,
                dedup_capacity: self.dedup_capacity,
                write_batch_rows: self.write_batch_rows,
                shard: self.shard,
                progress: progress.clone(),
                recorder: self.recorder.clone(),
            };
            let limit = limit.clone();
            // A child of the run's span, also in the spawned task.
            let span = tracing::info_span!(
                "materialize.view",
                view = view.spec.as_ref().map_or("", |s| s.name.as_str()),
                start_ns = start,
                end_ns = end,
            );
            set.spawn(
                async move {
                    let _permit = limit.acquire_owned().await;
                    (i, job.run(view, start, end).await)
                }
                .instrument(span),
            );
        }
        let mut reports: Vec<(usize, ViewReport)> = Vec::new();
        while let Some(done) = set.join_next().await {
            match done {
                Ok(r) => reports.push(r),
                Err(e) => tracing::error!(error = %e, "materialization task failed"),
            }
        }
        reports.sort_by_key(|(i, _)| *i);
        reports.into_iter().map(|(_, r)| r).collect()
    }
}

/// Where an incremental run starts for a view (shared with the operator).
pub use larder_model::feast::incremental_start;

struct ViewJob {
    registry: Arc<dyn Registry>,
    online: Arc<dyn OnlineStore>,
    project: String,
    postgres_url: Option<String>,
    batch_rows: usize,
    dedup_capacity: usize,
    write_batch_rows: Option<usize>,
    shard: Option<Shard>,
    progress: Arc<dyn Progress>,
    recorder: Option<Arc<dyn Recorder>>,
}

/// The offline read of one view run, as far as it got.
#[derive(Default)]
struct ReadStats {
    started: Option<Instant>,
    rows: u64,
    elapsed: Option<Duration>,
}

impl ReadStats {
    /// The reader is done (exhausted or failed); the first call counts.
    fn finish(&mut self) {
        if self.elapsed.is_none() {
            self.elapsed = self.started.map(|s| s.elapsed());
        }
    }
}

impl ViewJob {
    async fn run(self, view: fc::FeatureView, start_ns: i64, end_ns: i64) -> ViewReport {
        let name = view.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        self.progress.view_started(&name, start_ns, end_ns);
        let started = Instant::now();
        let mut rows = 0u64;
        let mut read = ReadStats::default();
        let result = self.copy(&view, &name, start_ns, end_ns, &mut rows, &mut read).await;
        let result = match result {
            // A shard covers only part of the keys: the interval is not done yet.
            Ok(()) if self.shard.is_some() => Ok(()),
            Ok(()) => self
                .registry
                .apply_materialization(&self.project, &name, ts(start_ns), ts(end_ns))
                .await
                .map_err(ViewError::from),
            Err(e) => Err(e),
        };
        let report = ViewReport {
            view: name,
            start_ns,
            end_ns,
            rows,
            rows_read: read.rows,
            read_elapsed: read.elapsed,
            elapsed: started.elapsed(),
            shard: self.shard,
            error: result.err(),
        };
        if let Some(e) = &report.error {
            tracing::warn!(view = %report.view, error = %e, "materialization failed; interval not recorded");
        }
        self.progress.view_finished(&report);
        if let Some(r) = &self.recorder {
            r.record(&report);
        }
        report
    }

    async fn copy(
        &self,
        view: &fc::FeatureView,
        name: &str,
        start_ns: i64,
        end_ns: i64,
        rows: &mut u64,
        read_stats: &mut ReadStats,
    ) -> Result<(), ViewError> {
        let spec = view
            .spec
            .as_ref()
            .ok_or_else(|| ViewError::Definition(format!("feature view {name} has no spec")))?;
        let batch = spec
            .batch_source
            .as_ref()
            .ok_or_else(|| ViewError::Definition(format!("feature view {name} has no batch source")))?;
        let source = SourceSpec::from_feast(batch, self.postgres_url.as_deref())?;
        let typed = |cols: &[fc::FeatureSpecV2]| -> Result<Vec<(String, FeatureType)>, ViewError> {
            cols.iter()
                .map(|c| {
                    FeatureType::from_value_type(c.value_type)
                        .map(|t| (c.name.clone(), t))
                        .ok_or_else(|| {
                            ViewError::Definition(format!(
                                "{name}: column {} has unsupported value type {}",
                                c.name, c.value_type
                            ))
                        })
                })
                .collect()
        };
        let mut read = ReadSpec::new(typed(&spec.entity_columns)?, typed(&spec.features)?, start_ns, end_ns);
        read.batch_rows = self.batch_rows;
        read.dedup_capacity = self.dedup_capacity;
        let schema = ViewSchema::from_proto(view);
        self.online
            .update(&self.project, std::slice::from_ref(&schema), &[])
            .await?;
        read_stats.started = Some(Instant::now());
        let mut rx = read_latest(source, read);
        // Gather reader batches up to the store's preferred write size, and
        // gather the next batch while the previous one is being written: the
        // store (often another process) and the reader then work at once.
        let target = self
            .write_batch_rows
            .unwrap_or_else(|| self.online.preferred_batch_rows())
            .max(1);
        let shard = self.shard;
        let mut next = gather(&mut rx, target, shard, read_stats).await?;
        if self.online.prefers_key_order() && next.is_some() {
            let second = gather(&mut rx, target, shard, read_stats).await?;
            if second.is_some() {
                return self
                    .copy_sorted(&schema, name, [next, second], &mut rx, target, rows, read_stats)
                    .await;
            }
        }
        while let Some(batch) = next {
            let (written, gathered) = tokio::join!(
                self.write(&schema, name, &batch, rows),
                gather(&mut rx, target, shard, read_stats)
            );
            written?;
            next = gathered?;
        }
        Ok(())
    }

    /// More than one batch for a store that wants key order: sort every
    /// batch into a run on disk, then write the merged runs in key order.
    #[allow(clippy::too_many_arguments)]
    async fn copy_sorted(
        &self,
        schema: &ViewSchema,
        name: &str,
        first: [Option<larder_model::rows::RowBatch>; 2],
        rx: &mut tokio::sync::mpsc::Receiver<Result<larder_model::rows::RowBatch, larder_offline::OfflineError>>,
        target: usize,
        rows: &mut u64,
        read_stats: &mut ReadStats,
    ) -> Result<(), ViewError> {
        let blocking_failed = |e: tokio::task::JoinError| ViewError::Spill(std::io::Error::other(e));
        let mut runs = tokio::task::spawn_blocking(spill::Runs::new)
            .await
            .map_err(blocking_failed)??;
        let mut pending: Vec<larder_model::rows::RowBatch> = first.into_iter().flatten().collect();
        loop {
            // Write the gathered runs while the reader fills the next batch.
            let push = tokio::task::spawn_blocking(move || -> std::io::Result<spill::Runs> {
                for b in pending {
                    runs.push(b)?;
                }
                Ok(runs)
            });
            let (pushed, gathered) = tokio::join!(push, gather(rx, target, self.shard, read_stats));
            runs = pushed.map_err(blocking_failed)??;
            match gathered? {
                Some(b) => pending = vec![b],
                None => break,
            }
        }
        let mut merge = tokio::task::spawn_blocking(move || runs.merge(target))
            .await
            .map_err(blocking_failed)??;
        let next_batch = |mut m: spill::Merge| {
            tokio::task::spawn_blocking(move || {
                let b = m.next_batch();
                (m, b)
            })
        };
        let (m, mut batch) = next_batch(merge).await.map_err(blocking_failed)?;
        merge = m;
        while let Some(b) = batch? {
            // Merge the next batch while this one is written.
            let (written, merged) = tokio::join!(self.write(schema, name, &b, rows), next_batch(merge));
            written?;
            let (m, nb) = merged.map_err(blocking_failed)?;
            merge = m;
            batch = nb;
        }
        Ok(())
    }

    async fn write(
        &self,
        schema: &ViewSchema,
        name: &str,
        batch: &larder_model::rows::RowBatch,
        rows: &mut u64,
    ) -> Result<(), ViewError> {
        let stats = self.online.online_write_batch(&self.project, schema, batch).await?;
        *rows += stats.rows as u64;
        self.progress.rows_written(name, stats.rows as u64);
        Ok(())
    }
}

/// Reader batches joined until they hold `target` rows or the reader is
/// done; `None` once nothing is left. Rows of other shards are dropped
/// here, as they arrive, so they are never sorted, spilled or written.
async fn gather(
    rx: &mut tokio::sync::mpsc::Receiver<Result<larder_model::rows::RowBatch, larder_offline::OfflineError>>,
    target: usize,
    shard: Option<Shard>,
    stats: &mut ReadStats,
) -> Result<Option<larder_model::rows::RowBatch>, ViewError> {
    let mut pending: Option<larder_model::rows::RowBatch> = None;
    while pending.as_ref().is_none_or(|p| p.rows.len() < target) {
        let Some(batch) = rx.recv().await else {
            stats.finish();
            break;
        };
        let mut batch = batch.inspect_err(|_| stats.finish())?;
        stats.rows += batch.rows.len() as u64;
        if let Some(shard) = shard {
            batch.rows.retain(|r| shard.contains(&r.entity_key));
        }
        match &mut pending {
            Some(p) => p.rows.extend(batch.rows),
            None => pending = Some(batch),
        }
    }
    Ok(pending.filter(|p| !p.rows.is_empty()))
}

fn ts(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_start_rules() {
        let hour = 3_600_000_000_000i64;
        let mut v = fc::FeatureView {
            spec: Some(fc::FeatureViewSpec {
                ttl: Some(larder_protos::prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            meta: None,
        };
        assert_eq!(incremental_start(&v, 10 * hour), 9 * hour, "no history: end - ttl");
        v.meta = Some(fc::FeatureViewMeta {
            materialization_intervals: vec![
                fc::MaterializationInterval {
                    start_time: Some(ts(0)),
                    end_time: Some(ts(5 * hour)),
                },
                fc::MaterializationInterval {
                    start_time: Some(ts(0)),
                    end_time: Some(ts(3 * hour)),
                },
            ],
            ..Default::default()
        });
        assert_eq!(incremental_start(&v, 10 * hour), 5 * hour, "latest end");
        v.meta = None;
        v.spec.as_mut().unwrap().ttl = None;
        assert_eq!(incremental_start(&v, 10 * hour), 0, "no ttl: from the epoch");
    }
}
