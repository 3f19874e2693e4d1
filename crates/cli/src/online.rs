//! `materialize`, `materialize-incremental` and `get-online-features`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use larder_materialize::{Materializer, Progress, ViewReport};
use larder_model::feast::{FeastKind, FeastObject};
use larder_model::types::FeatureType;
use larder_registry::Registry;
use larder_serving::{OnlineRequest, get_online_features};

use crate::Format;
use larder_config::Settings;

/// Parse a time: RFC 3339, `YYYY-MM-DDTHH:MM:SS[.f]` (UTC), `YYYY-MM-DD`, or `now`.
pub fn parse_time(s: &str) -> Result<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let t = s.trim();
    let dt: DateTime<Utc> = if t.eq_ignore_ascii_case("now") {
        Utc::now()
    } else if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        d.with_timezone(&Utc)
    } else if let Ok(n) = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
        n.and_utc()
    } else if let Ok(n) = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f") {
        n.and_utc()
    } else if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)
            .map(|n| n.and_utc())
            .ok_or_else(|| anyhow!("invalid date {s:?}"))?
    } else {
        bail!("invalid time {s:?}: use RFC 3339 (2024-01-01T00:00:00Z), 2024-01-01T00:00:00 (UTC), 2024-01-01 or now")
    };
    dt.timestamp_nanos_opt()
        .ok_or_else(|| anyhow!("time {s:?} is out of range"))
}

/// Progress bars with rows/s, one per view.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Progress for Bars {
    fn view_started(&self, view: &str, start_ns: i64, end_ns: i64) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        let style = ProgressStyle::with_template("{spinner} {prefix}: {human_pos} rows ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(view.to_string());
        bar.set_message(format!(
            "{} .. {}",
            larder_model::json::timestamp_to_json(start_ns),
            larder_model::json::timestamp_to_json(end_ns)
        ));
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut b) = self.bars.lock() {
            b.insert(view.to_string(), bar);
        }
    }

    fn rows_written(&self, view: &str, rows: u64) {
        if let Ok(b) = self.bars.lock()
            && let Some(bar) = b.get(view)
        {
            bar.inc(rows);
        }
    }

    fn view_finished(&self, r: &ViewReport) {
        if let Ok(b) = self.bars.lock()
            && let Some(bar) = b.get(&r.view)
        {
            match &r.error {
                None => bar.finish_with_message("done"),
                Some(e) => bar.abandon_with_message(format!("FAILED: {e}")),
            }
        }
    }
}

async fn materializer(settings: &Settings, registry: Arc<dyn Registry>, project: &str) -> Result<Materializer> {
    let cfg = settings.online_store()?;
    let online = larder_online::open(&cfg)
        .await
        .with_context(|| format!("cannot open {}", cfg.describe()))?;
    let mut m = Materializer::new(registry, online, project);
    m.postgres_url = settings.offline_postgres_url()?;
    Ok(m)
}

fn summarize(reports: &[ViewReport]) -> Result<()> {
    let mut failed = 0;
    for r in reports {
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        // A shard's run says so, and that it left the interval to whoever runs all shards.
        let shard = r
            .shard
            .map(|s| format!(", shard {s} (interval not recorded)"))
            .unwrap_or_default();
        match &r.error {
            None => println!(
                "{}: {} rows in {:.2}s ({:.0} rows/s), {} .. {}{shard}",
                r.view,
                r.rows,
                secs,
                r.rows as f64 / secs,
                larder_model::json::timestamp_to_json(r.start_ns),
                larder_model::json::timestamp_to_json(r.end_ns)
            ),
            Some(e) => {
                failed += 1;
                let shard = r.shard.map(|s| format!(" (shard {s})")).unwrap_or_default();
                eprintln!("{}{shard}: FAILED, interval not recorded: {e}", r.view);
            }
        }
    }
    if reports.is_empty() {
        println!("nothing to materialize");
    }
    if failed > 0 {
        bail!("{failed} of {} feature views failed", reports.len());
    }
    Ok(())
}

pub async fn materialize(
    settings: &Settings,
    registry: Arc<dyn Registry>,
    project: &str,
    start: Option<&str>,
    end: &str,
    views: &[String],
    shard: Option<larder_materialize::Shard>,
) -> Result<()> {
    let mut m = materializer(settings, registry, project).await?;
    m.shard = shard;
    let bars: Arc<dyn Progress> = Arc::new(Bars::new());
    let end = parse_time(end)?;
    let reports = match start {
        Some(s) => m.materialize(views, parse_time(s)?, end, bars).await?,
        None => m.materialize_incremental(views, end, bars).await?,
    };
    summarize(&reports)
}

/// Join key → type for the views a request touches, so `--entity` text parses right.
async fn key_types(
    registry: &dyn Registry,
    project: &str,
    features: &[String],
    service: Option<&str>,
) -> Result<HashMap<String, FeatureType>> {
    let mut views: Vec<(String, HashMap<String, String>)> = Vec::new();
    if let Some(svc) = service {
        let Some(FeastObject::FeatureService(fs)) = registry.get(project, FeastKind::FeatureService, svc).await? else {
            bail!("Feature service {svc} does not exist in project {project}");
        };
        for p in fs.spec.unwrap_or_default().features {
            views.push((p.feature_view_name, p.join_key_map.into_iter().collect()));
        }
    } else {
        for f in features {
            let v = f.split_once(':').map(|(v, _)| v).unwrap_or(f);
            let v = v.split_once('@').map(|(v, _)| v).unwrap_or(v);
            views.push((v.to_string(), HashMap::new()));
        }
    }
    let mut out = HashMap::new();
    for (v, jkm) in views {
        if let Some(FeastObject::FeatureView(fv)) = registry.get(project, FeastKind::FeatureView, &v).await? {
            for c in fv.spec.unwrap_or_default().entity_columns {
                if let Some(t) = FeatureType::from_value_type(c.value_type) {
                    out.insert(jkm.get(&c.name).cloned().unwrap_or(c.name), t);
                }
            }
        }
    }
    Ok(out)
}

pub struct OnlineArgs<'a> {
    pub features: &'a [String],
    pub feature_service: Option<&'a str>,
    pub entities: &'a [String],
    pub full_feature_names: bool,
    pub output: Format,
}

pub async fn get(settings: &Settings, registry: Arc<dyn Registry>, project: &str, a: OnlineArgs<'_>) -> Result<()> {
    let features: Vec<String> = a
        .features
        .iter()
        .flat_map(|f| f.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect();
    if features.is_empty() && a.feature_service.is_none() {
        bail!("give --features VIEW:FEATURE,... or --feature-service NAME");
    }
    let types = key_types(registry.as_ref(), project, &features, a.feature_service).await?;
    let mut entities = Vec::new();
    for e in a.entities {
        let (k, vals) = e
            .split_once('=')
            .ok_or_else(|| anyhow!("--entity {e:?}: use JOIN_KEY=V1,V2,..."))?;
        let t = types.get(k).copied().unwrap_or(FeatureType::INT64);
        let values = vals
            .split(',')
            .map(|v| larder_model::json::parse_key_value(v.trim(), t).map_err(|m| anyhow!("--entity {k}: {m}")))
            .collect::<Result<Vec<_>>>()?;
        entities.push((k.to_string(), values));
    }
    let cfg = settings.online_store()?;
    let online = larder_online::open(&cfg)
        .await
        .with_context(|| format!("cannot open {}", cfg.describe()))?;
    let req = OnlineRequest {
        features,
        feature_service: a.feature_service.map(String::from),
        entities,
        full_feature_names: a.full_feature_names,
    };
    let resp = get_online_features(registry.as_ref(), online.as_ref(), project, &req).await?;
    match a.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&resp.to_json())?),
        Format::Yaml => print!("{}", serde_yaml::to_string(&resp.to_json())?),
        Format::Table => {
            let rows = resp.columns.first().map(|c| c.values.len()).unwrap_or(0);
            let header: Vec<String> = resp.columns.iter().map(|c| c.name.clone()).collect();
            let mut table = vec![header];
            for i in 0..rows {
                table.push(
                    resp.columns
                        .iter()
                        .map(|c| match c.statuses[i] {
                            larder_serving::FieldStatus::NotFound => "NOT_FOUND".to_string(),
                            _ => larder_model::json::value_to_json(&c.values[i]).to_string(),
                        })
                        .collect(),
                );
            }
            crate::output::print_rows(&table);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("2024-01-01T11:00:00Z").unwrap(), 1_704_106_800_000_000_000);
        assert_eq!(parse_time("2024-01-01T11:00:00").unwrap(), 1_704_106_800_000_000_000);
        assert_eq!(
            parse_time("2024-01-01T12:00:00+01:00").unwrap(),
            1_704_106_800_000_000_000
        );
        assert_eq!(parse_time("2024-01-01").unwrap(), 1_704_067_200_000_000_000);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("now").is_ok());
    }
}
