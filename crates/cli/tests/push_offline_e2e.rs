//! Push to the offline store end to end (issue 13, item 3): a live `larder
//! serve` over a copy of the bundled example (whose push source
//! `driver_stats_push` has a single Parquet file as batch source, or, in
//! the crash test, a directory):
//!
//! - `to: offline` appends the rows to the file: `larder
//!   get-historical-features` returns them, the online store does not
//!   have them until `larder materialize-incremental` picks them up;
//! - `to: online_and_offline` writes both at once;
//! - a server SIGKILLed while pushing leaves no partial visible file:
//!   every visible `*.parquet` of a directory source reads fully, and a
//!   single-file source holds the old or the new content, whole pushes only.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use larder_model::types::FeatureType;
use larder_offline::{ReadSpec, SourceLocation, SourceSpec, read_parquet_blocking};
use larder_protos::feast::types::value::Val;
use serde_json::{Value, json};
use support::*;

/// Rows of the example's data file.
const EXAMPLE_ROWS: u64 = 48_000;

/// A copy of the example (manifests and data) in `dir`, with a config of
/// its own; `directory` turns the batch source into a directory holding
/// the example's file. Returns the config path and the batch source path.
fn setup(dir: &Path, directory: bool) -> (PathBuf, PathBuf) {
    let example = example_dir();
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    for e in std::fs::read_dir(example.join("manifests")).unwrap() {
        let e = e.unwrap();
        let text = std::fs::read_to_string(e.path()).unwrap();
        let text = if directory {
            text.replace("path: ../data/driver_stats.parquet", "path: ../data/stats_dir")
        } else {
            text
        };
        std::fs::write(manifests.join(e.file_name()), text).unwrap();
    }
    let data = if directory {
        let d = dir.join("data/stats_dir");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            example.join("data/driver_stats.parquet"),
            d.join("driver_stats.parquet"),
        )
        .unwrap();
        d
    } else {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let f = dir.join("data/driver_stats.parquet");
        std::fs::copy(example.join("data/driver_stats.parquet"), &f).unwrap();
        f
    };
    let cfg = dir.join("feature_store.yaml");
    std::fs::write(&cfg, sqlite_repo_yaml(dir)).unwrap();
    let c = cfg.to_str().unwrap();
    larder_ok(&["-c", c, "apply", "-f", manifests.to_str().unwrap()]);
    let out = larder_ok(&["-c", c, "materialize", "2024-01-01", "2024-01-03"]);
    assert!(out.contains("driver_hourly_stats: 1000 rows"), "{out}");
    (cfg, data)
}

/// POST JSON, waiting up to a minute (pushes of many rows): `(status, body)`,
/// None if the server cannot be reached or hung up.
fn post(port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    raw_post_json(port, path, body, Duration::from_secs(60))
}

/// `n` full rows of driver_hourly_stats for drivers `first..first + n` at `ts`.
fn rows(first: i64, n: usize, ts: &str, city: &str, trips: i64) -> Value {
    let ids: Vec<i64> = (first..first + n as i64).collect();
    json!({
        "driver_id": ids, "event_timestamp": vec![ts; n], "created": vec![ts; n],
        "conv_rate": vec![0.5; n], "acc_rate": vec![0.25; n], "avg_daily_trips": vec![trips; n],
        "trips_today": vec![1; n], "rating": vec![Value::Null; n], "earnings_today": vec![10.5; n],
        "online_minutes": vec![30; n], "completed_trips": vec![99; n], "city": vec![city; n],
        "is_premium": vec![true; n],
    })
}

fn push(port: u16, to: &str, df: Value) -> (u16, String) {
    let body = json!({"push_source_name": "driver_stats_push", "to": to, "df": df}).to_string();
    post(port, "/push", &body).expect("server reachable")
}

/// `city` of `driver` from `/get-online-features` (`None`: no value).
fn online_city(port: u16, driver: i64) -> Option<String> {
    let body = json!({"features": ["driver_hourly_stats:city"], "entities": {"driver_id": [driver]}}).to_string();
    let (st, text) = post(port, "/get-online-features", &body).expect("server reachable");
    assert_eq!(st, 200, "{text}");
    let r: Value = serde_json::from_str(&text).unwrap();
    let i = r["metadata"]["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == "city")
        .unwrap();
    r["results"][i]["values"][0].as_str().map(str::to_string)
}

/// One row's feature values (`None`: null).
type Row = Vec<Option<Val>>;

/// Every row of a Parquet file or directory, decoded (join key, event
/// timestamp and `features`): `(rows read, the latest row per driver's
/// values of `features`)`. Fails on a partial or corrupt file.
fn read_all(path: &Path, ts_field: &str, features: &[(&str, FeatureType)]) -> Result<(u64, Vec<Row>), String> {
    let source = SourceSpec {
        name: "check".into(),
        location: SourceLocation::Parquet(path.to_path_buf()),
        timestamp_field: ts_field.into(),
        created_timestamp_column: None,
        field_mapping: Default::default(),
    };
    let spec = ReadSpec::new(
        vec![("driver_id".into(), FeatureType::INT64)],
        features.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        i64::MIN + 1,
        i64::MAX,
    );
    let mut out = Vec::new();
    let stats = read_parquet_blocking(&source, &spec, &mut |b| {
        out.extend(
            b.rows
                .into_iter()
                .map(|r| r.values.into_iter().map(|v| v.val).collect()),
        );
        true
    })
    .map_err(|e| e.to_string())?;
    Ok((stats.rows_read, out))
}

/// The view's features (every column of the example's file but the key and timestamps).
fn view_features() -> Vec<(&'static str, FeatureType)> {
    let t = |s: &str| FeatureType::parse(s).unwrap();
    vec![
        ("conv_rate", t("Float32")),
        ("acc_rate", t("Float32")),
        ("avg_daily_trips", t("Int64")),
        ("trips_today", t("Int32")),
        ("rating", t("Float64")),
        ("earnings_today", t("Float64")),
        ("online_minutes", t("Int32")),
        ("completed_trips", t("Int64")),
        ("city", t("String")),
        ("is_premium", t("Bool")),
    ]
}

fn historical(cfg: &Path, dir: &Path, driver: i64, at: &str) -> (Option<Val>, Option<Val>) {
    let entities = dir.join(format!("entities_{driver}.csv"));
    std::fs::write(&entities, format!("driver_id,event_timestamp\n{driver},{at}\n")).unwrap();
    let output = dir.join(format!("historical_{driver}.parquet"));
    larder_ok(&[
        "-c",
        cfg.to_str().unwrap(),
        "get-historical-features",
        "--entities",
        entities.to_str().unwrap(),
        "--features",
        "driver_hourly_stats:city,driver_hourly_stats:avg_daily_trips",
        "--output",
        output.to_str().unwrap(),
    ]);
    let (n, rows) = read_all(
        &output,
        "event_timestamp",
        &[("city", FeatureType::STRING), ("avg_daily_trips", FeatureType::INT64)],
    )
    .unwrap();
    assert_eq!(n, 1);
    (rows[0][0].clone(), rows[0][1].clone())
}

#[test]
fn push_offline_then_historical_and_materialize_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, data) = setup(dir.path(), false);
    let server = start_serve(&cfg, dir.path().join("serve.log"));
    let port = server.port;
    // Recent, so the view's 1-day ttl never hides the rows.
    let t1 = chrono::Utc::now() - chrono::Duration::hours(2);
    let ts = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let (st, body) = push(port, "offline", rows(9101, 1, &ts(t1), "Lima", 42));
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        read_all(&data, "event_timestamp", &view_features()).unwrap().0,
        EXAMPLE_ROWS + 1
    );
    assert_eq!(online_city(port, 9101), None, "offline only");

    let at = ts(t1 + chrono::Duration::minutes(30));
    assert_eq!(
        historical(&cfg, dir.path(), 9101, &at),
        (Some(Val::StringVal("Lima".into())), Some(Val::Int64Val(42)))
    );
    let before = ts(t1 - chrono::Duration::minutes(30));
    assert_eq!(historical(&cfg, dir.path(), 9101, &before), (None, None));

    let out = larder_ok(&["-c", cfg.to_str().unwrap(), "materialize-incremental", "now"]);
    assert!(out.contains("driver_hourly_stats"), "{out}");
    assert_eq!(online_city(port, 9101).as_deref(), Some("Lima"), "{out}");

    let t2 = t1 + chrono::Duration::hours(1);
    let (st, body) = push(port, "online_and_offline", rows(9102, 1, &ts(t2), "Quito", 7));
    assert_eq!(st, 200, "{body}");
    assert_eq!(online_city(port, 9102).as_deref(), Some("Quito"), "online at once");
    assert_eq!(
        historical(&cfg, dir.path(), 9102, &ts(t2 + chrono::Duration::minutes(1))),
        (Some(Val::StringVal("Quito".into())), Some(Val::Int64Val(7)))
    );
    assert_eq!(
        read_all(&data, "event_timestamp", &view_features()).unwrap().0,
        EXAMPLE_ROWS + 2
    );

    // Rows that do not fit the file: 400, nothing written.
    let mut bad = rows(9103, 1, &ts(t2), "Oslo", 1);
    bad["city"] = json!([5]);
    let (st, body) = push(port, "online_and_offline", bad);
    assert_eq!(st, 400, "{body}");
    assert_eq!(online_city(port, 9103), None);
    assert_eq!(
        read_all(&data, "event_timestamp", &view_features()).unwrap().0,
        EXAMPLE_ROWS + 2
    );
    server.terminate(Duration::from_secs(10));
}

/// Rows per push in the crash tests (some 600 KB of JSON).
const ROWS: usize = 5_000;

/// Rows of the source now; panics when a visible file is not whole.
fn stored_rows(data: &Path, directory: bool) -> u64 {
    let features = view_features();
    if !directory {
        return read_all(data, "event_timestamp", &features)
            .unwrap_or_else(|e| panic!("the single file is not whole: {e}"))
            .0;
    }
    let mut total = 0;
    for e in std::fs::read_dir(data).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".parquet") {
            continue;
        }
        let (n, _) = read_all(&p, "event_timestamp", &features)
            .unwrap_or_else(|e| panic!("visible file {name} is not whole: {e}"));
        assert!(n == EXAMPLE_ROWS || n == ROWS as u64, "{name}: {n} rows");
        total += n;
    }
    total
}

/// Rounds of: start the server, push `ROWS`-row batches to `to: offline`
/// from a thread until the server is gone, SIGKILL it at some point after
/// the first push succeeded; then every visible file must be whole and
/// hold whole pushes only: every acknowledged one, and perhaps the one in
/// flight.
fn kill_mid_push(directory: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, data) = setup(dir.path(), directory);
    let body = json!({
        "push_source_name": "driver_stats_push", "to": "offline",
        "df": rows(20_000, ROWS, "2024-01-02T12:00:00Z", "Lima", 1),
    })
    .to_string();
    let mut stored = 0u64;
    let mut mid_write = 0;
    let mut hidden_before = 0;
    for (round, delay_ms) in [0u64, 11, 23, 37, 53].into_iter().enumerate() {
        let server = start_serve(&cfg, dir.path().join(format!("serve{round}.log")));
        let port = server.port;
        let ok = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let pusher = {
            let (ok, stop, body) = (ok.clone(), stop.clone(), body.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match post(port, "/push", &body) {
                        Some((200, _)) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Some((st, text)) => failures.push(format!("{st}: {text}")),
                        None => break,
                    }
                }
                failures
            })
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while ok.load(Ordering::SeqCst) < 1 {
            assert!(Instant::now() < deadline, "pushes too slow:\n{}", server.log_text());
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        drop(server); // SIGKILL
        stop.store(true, Ordering::SeqCst);
        let failures = pusher.join().unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        let acknowledged = ok.load(Ordering::SeqCst) as u64;

        let temp_dir = if directory {
            data.as_path()
        } else {
            data.parent().unwrap()
        };
        let hidden = std::fs::read_dir(temp_dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
            .count();
        if hidden > hidden_before {
            mid_write += 1;
        }
        hidden_before = hidden;
        let total = stored_rows(&data, directory);
        assert_eq!(
            (total - EXAMPLE_ROWS) % ROWS as u64,
            0,
            "whole pushes only: {total} rows"
        );
        let now = (total - EXAMPLE_ROWS) / ROWS as u64;
        assert!(
            now == stored + acknowledged || now == stored + acknowledged + 1,
            "round {round}: {now} pushes stored, {stored} before and {acknowledged} acknowledged since"
        );
        stored = now;
    }
    eprintln!(
        "{} source: {stored} pushes stored; {mid_write} of 5 kills left a temporary file (killed mid-write)",
        if directory { "directory" } else { "single-file" }
    );
}

#[test]
fn kill_while_pushing_to_a_directory_leaves_only_whole_files() {
    kill_mid_push(true);
}

#[test]
fn kill_while_pushing_to_a_single_file_leaves_old_or_new_content() {
    kill_mid_push(false);
}
