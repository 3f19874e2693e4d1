//! `get-historical-features`: a point-in-time correct training set from an
//! entity file, written to Parquet.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use larder_config::Settings;
use larder_registry::Registry;
use larder_registry::cache::Snapshot;

pub struct HistoricalArgs<'a> {
    pub entities: &'a Path,
    pub features: &'a [String],
    pub feature_service: Option<&'a str>,
    pub full_feature_names: bool,
    pub output: &'a Path,
}

pub async fn get(
    settings: &Settings,
    reg: std::sync::Arc<dyn Registry>,
    project: &str,
    args: HistoricalArgs<'_>,
) -> Result<()> {
    if args.features.is_empty() == args.feature_service.is_none() {
        bail!("pass either --features or --feature-service");
    }
    if args.output.extension().and_then(|e| e.to_str()) != Some("parquet") {
        bail!("--output must name a .parquet file");
    }
    let snapshot = Snapshot::new(reg.snapshot().await.context("cannot read the registry")?);
    let postgres_url = settings.offline_postgres_url()?;
    let request = larder_historical::resolve(
        &snapshot,
        project,
        args.features,
        args.feature_service,
        args.full_feature_names,
        postgres_url.as_deref(),
    )?;
    let entities = larder_historical::read_entity_file(args.entities)?;
    let bar = ProgressBar::new(request.views.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} views joined [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(format!("{} entity rows", entities.num_rows()));
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    let result = tokio::task::spawn_blocking({
        let bar = bar.clone();
        move || {
            larder_offline::historical::get_historical_features(&entities, &request, &mut |done| {
                bar.set_position(done as u64)
            })
        }
    })
    .await
    .context("the retrieval stopped unexpectedly")??;
    bar.finish_and_clear();
    larder_historical::write_parquet(args.output, &result.batch)?;
    for s in &result.stats {
        tracing::info!(
            view = %s.view,
            files = s.files,
            row_groups_scanned = s.row_groups_scanned,
            row_groups_fetched = s.row_groups_fetched,
            row_groups_total = s.row_groups_total,
            rows_scanned = s.rows_scanned,
            rows_matched = s.rows_matched,
            "view joined"
        );
    }
    let matched: Vec<String> = result
        .stats
        .iter()
        .map(|s| format!("{} {}/{}", s.view, s.rows_matched, result.batch.num_rows()))
        .collect();
    println!(
        "wrote {} rows x {} columns to {} in {:.2?} (rows with features per view: {})",
        result.batch.num_rows(),
        result.batch.num_columns(),
        args.output.display(),
        started.elapsed(),
        matched.join(", ")
    );
    Ok(())
}
