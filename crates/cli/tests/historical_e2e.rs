//! `larder get-historical-features` against Feast 0.67's own file offline
//! store on the same registry and data: every row Feast returns has the
//! same values and nulls in Larder's training set, and Larder returns every
//! entity row (Feast's file store drops those before all feature data).

mod support;

use std::path::Path;

use larder_testkit::PgDatabase;
use serde_json::Value;
use support::*;

/// `larder -c CFG get-historical-features --entities E <selection> --output O`.
fn historical(cfg: &str, entities: &Path, selection: &[&str], output: &Path) -> std::process::Output {
    let mut args = vec![
        "-c",
        cfg,
        "get-historical-features",
        "--entities",
        entities.to_str().unwrap(),
    ];
    args.extend_from_slice(selection);
    args.extend(["--output", output.to_str().unwrap()]);
    larder(&args)
}

/// The e2e entity frame (`entities.parquet`, `entities.csv`) written into `dir`.
fn gen_entities(python: &Path, dir: &Path) -> std::path::PathBuf {
    let out = feast_script(
        python,
        &[
            "e2e/feast/check_historical.py",
            "gen",
            "--out-dir",
            dir.to_str().unwrap(),
        ],
    );
    assert_success("check_historical.py gen", &out);
    dir.join("entities.parquet")
}

fn last_json(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {text}"));
    serde_json::from_str(line).unwrap()
}

fn compare(python: &Path, dir: &Path, entities: &Path, larder: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "e2e/feast/check_historical.py",
        "compare",
        "--repo-dir",
        dir.to_str().unwrap(),
        "--entities",
        entities.to_str().unwrap(),
        "--larder",
        larder.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = feast_script(python, &args);
    assert_success("check_historical.py compare", &out);
    last_json(&out)
}

/// Feast's file store drops entity rows before all feature data; its PostgreSQL store does not.
fn assert_agrees(what: &str, r: &Value) {
    assert_agrees_dropping(what, r, true)
}

fn assert_agrees_dropping(what: &str, r: &Value, feast_drops: bool) {
    println!("{what}: {r}");
    assert_eq!(r["mismatch_count"], 0, "{what}: {r:#}");
    assert_eq!(r["missing_columns"].as_array().map(Vec::len), Some(0), "{what}: {r:#}");
    assert_eq!(
        r["larder_rows"], r["entity_rows"],
        "{what}: Larder keeps every entity row: {r:#}"
    );
    assert_eq!(r["larder_row_ids_complete"], true, "{what}: {r:#}");
    assert!(r["cells_compared"].as_u64().unwrap() > 500, "{what}: {r:#}");
    // The frame holds rows before all feature data, which Feast's file store drops.
    assert_eq!(r["feast_dropped"].as_u64().unwrap() > 0, feast_drops, "{what}: {r:#}");
}

#[test]
fn training_sets_match_feasts_file_offline_store() {
    let Some(python) = feast_python() else { return };
    let (dir, cfg) = example_repo(ExampleData::Shared);
    gen_entities(&python, dir.path());
    let cfg = cfg.to_str().unwrap();
    let features = "driver_hourly_stats:conv_rate,driver_hourly_stats:acc_rate,driver_hourly_stats:avg_daily_trips,driver_hourly_stats:trips_today,driver_hourly_stats:rating,driver_hourly_stats:city,driver_hourly_stats:is_premium";

    // Parquet and CSV entity files give the same training set.
    for (input, output) in [
        ("entities.parquet", "larder.parquet"),
        ("entities.csv", "larder_csv.parquet"),
    ] {
        let entities = dir.path().join(input);
        let output = dir.path().join(output);
        let out = historical(cfg, &entities, &["--features", features], &output);
        assert_success("larder get-historical-features", &out);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("wrote 400 rows"),
            "{out:?}"
        );
        let r = compare(
            &python,
            dir.path(),
            &dir.path().join("entities.parquet"),
            &output,
            &["--features", features],
        );
        assert_agrees(input, &r);
    }

    // A feature service with full feature names.
    let output = dir.path().join("larder_service.parquet");
    let entities = dir.path().join("entities.parquet");
    let out = historical(
        cfg,
        &entities,
        &["--feature-service", "driver_activity", "--full-feature-names"],
        &output,
    );
    assert_success("larder get-historical-features --feature-service", &out);
    let r = compare(
        &python,
        dir.path(),
        &entities,
        &output,
        &["--feature-service", "driver_activity", "--full-feature-names"],
    );
    assert_agrees("feature service", &r);
    assert_eq!(
        r["feature_columns"],
        serde_json::json!(["driver_hourly_stats__conv_rate", "driver_hourly_stats__avg_daily_trips"])
    );
}

#[test]
fn bad_requests_fail_clearly_and_write_nothing() {
    let (dir, cfg) = example_repo(ExampleData::Shared);
    let cfg = cfg.to_str().unwrap();
    let output = dir.path().join("out.parquet");
    let csv = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let run = |entities: &Path, features: &str| historical(cfg, entities, &["--features", features], &output);
    let good = csv("good.csv", "driver_id,event_timestamp\n1001,2024-01-01T05:00:00Z\n");
    let cases: [(&Path, &str, &str); 5] = [
        (
            &csv("no_ts.csv", "driver_id,city\n1001,Berlin\n"),
            "driver_hourly_stats:conv_rate",
            "no event_timestamp column",
        ),
        (
            &csv("no_key.csv", "id,event_timestamp\n1001,2024-01-01T05:00:00Z\n"),
            "driver_hourly_stats:conv_rate",
            "no column driver_id for the join key driver_id of view driver_hourly_stats",
        ),
        (
            &csv("text_key.csv", "driver_id,event_timestamp\nabc,2024-01-01T05:00:00Z\n"),
            "driver_hourly_stats:conv_rate",
            "but join key driver_id of view driver_hourly_stats is Int64",
        ),
        (&good, "driver_hourly_stats:nope", "Feature nope not found"),
        (
            &dir.path().join("missing.parquet"),
            "driver_hourly_stats:conv_rate",
            "missing.parquet",
        ),
    ];
    for (entities, features, expected) in cases {
        let out = run(entities, features);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{entities:?} {features}: should fail");
        assert!(
            stderr.contains(expected),
            "{entities:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!output.exists(), "nothing is written on failure");
    }
    let out = run(&good, "driver_hourly_stats:conv_rate");
    assert_success("one good row", &out);
    assert!(output.exists());
    // No temporary file is left beside the output.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The example's rows in a PostgreSQL table, its view reading them through
/// a PostgreSQL source; Larder pushes the join into the database, Feast 0.67
/// runs its PostgreSQL offline store's SQL: the same values for every row.
#[tokio::test]
async fn postgres_source_matches_feasts_postgres_offline_store() {
    let Some(python) = feast_python() else { return };
    let db = PgDatabase::create("larder_hist").await;
    let dir = tempfile::tempdir().unwrap();
    let parquet = example_dir().join("data/driver_stats.parquet");
    let out = feast_script(
        &python,
        &[
            "e2e/feast/check_historical.py",
            "load-pg",
            "--parquet",
            parquet.to_str().unwrap(),
            "--table",
            "driver_stats",
            "--database",
            db.name(),
            "--host",
            db.host(),
            "--port",
            &db.port().to_string(),
            "--user",
            db.user(),
        ],
    );
    assert_success("check_historical.py load-pg", &out);
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(
        manifests.join("objects.yaml"),
        "apiVersion: larder.dev/v1alpha1\nkind: FeatureStore\nmetadata: {name: driver-stats}\nspec: {project: driver_stats}\n---\n\
         apiVersion: larder.dev/v1alpha1\nkind: Entity\nmetadata: {name: driver}\nspec: {joinKey: driver_id, valueType: Int64}\n---\n\
         apiVersion: larder.dev/v1alpha1\nkind: DataSource\nmetadata: {name: driver-stats-pg}\nspec:\n  name: driver_stats_pg\n  timestampField: event_timestamp\n  createdTimestampColumn: created\n  postgres: {table: driver_stats}\n---\n\
         apiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: driver-hourly-stats}\nspec:\n  name: driver_hourly_stats\n  entities: [driver]\n  source: driver-stats-pg\n  ttl: 1d\n  features:\n\
         \x20   - {name: conv_rate, type: Float32}\n    - {name: avg_daily_trips, type: Int64}\n    - {name: rating, type: Float64}\n    - {name: city, type: String}\n    - {name: is_premium, type: Bool}\n",
    )
    .unwrap();
    let yaml = sqlite_repo_yaml(dir.path()).replace(
        "offline_store:\n  type: file\n",
        &format!(
            "offline_store:\n  type: postgres\n  host: {}\n  port: {}\n  database: {}\n  user: {}\n  password: unused\n  sslmode: disable\n",
            db.host(),
            db.port(),
            db.name(),
            db.user()
        ),
    );
    assert!(yaml.contains("type: postgres"));
    let cfg = dir.path().join("feature_store.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    larder_ok(&["-c", cfg, "apply", "-f", manifests.to_str().unwrap()]);
    gen_entities(&python, dir.path());
    let features = "driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips,driver_hourly_stats:rating,driver_hourly_stats:city,driver_hourly_stats:is_premium";
    let entities = dir.path().join("entities.parquet");
    let output = dir.path().join("larder_pg.parquet");
    let out = historical(cfg, &entities, &["--features", features], &output);
    assert_success("larder get-historical-features (PostgreSQL source)", &out);
    let r = compare(&python, dir.path(), &entities, &output, &["--features", features]);
    assert_agrees_dropping("PostgreSQL source", &r, false);
}

/// A Feast repo in `<dir>/remote` on the same registry whose offline store
/// is the offline server on `port`.
fn remote_repo(dir: &Path, port: u16) -> std::path::PathBuf {
    let remote = dir.join("remote");
    std::fs::create_dir(&remote).unwrap();
    // The same registry and online store (whose tables `larder apply` made).
    let yaml = sqlite_repo_yaml(dir).replace(
        "offline_store:\n  type: file\n",
        &format!("offline_store:\n  type: remote\n  host: 127.0.0.1\n  port: {port}\n"),
    );
    assert!(yaml.contains("type: remote"));
    std::fs::write(remote.join("feature_store.yaml"), yaml).unwrap();
    remote
}

/// Start `larder offline-server` and wait until it accepts connections.
fn start_offline_server(cfg: &str, log: std::path::PathBuf) -> LarderProcess {
    start_offline_server_with(cfg, log, &[])
}

/// [`start_offline_server`] with more flags (`--tls-cert …`).
fn start_offline_server_with(cfg: &str, log: std::path::PathBuf, flags: &[&str]) -> LarderProcess {
    let cfg = cfg.to_string();
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    LarderProcess::start(
        "larder offline-server",
        log,
        &[
            "LARDER_CONFIG",
            "LARDER_PROJECT",
            "LARDER_REGISTRY",
            "LARDER_HOST",
            "LARDER_OFFLINE_PORT",
        ],
        move |port| {
            let mut args: Vec<String> = [
                "-c",
                &cfg,
                "offline-server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ]
            .map(String::from)
            .to_vec();
            args.extend(flags.iter().cloned());
            args
        },
        |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    )
}

/// Feast 0.67's SDK with `offline_store: {type: remote}` builds its
/// training sets through `larder offline-server` (Arrow Flight DoExchange):
/// every entity row, and values identical to Larder's CLI (itself pinned
/// against Feast's file offline store above) for features and for a
/// feature service with full feature names; malformed commands get clear
/// errors.
#[test]
fn feast_sdk_reads_training_sets_through_the_offline_server() {
    let Some(python) = feast_python() else { return };
    let (dir, cfg) = example_repo(ExampleData::Shared);
    let cfg = cfg.to_str().unwrap();
    let server = start_offline_server(cfg, dir.path().join("offline-server.log"));
    let remote = remote_repo(dir.path(), server.port);
    gen_entities(&python, dir.path());
    let entities = dir.path().join("entities.parquet");
    let features = "driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips,driver_hourly_stats:rating,driver_hourly_stats:city,driver_hourly_stats:is_premium";
    for (extra, name) in [
        (vec!["--features", features], "features"),
        (
            vec!["--feature-service", "driver_activity", "--full-feature-names"],
            "service",
        ),
    ] {
        let output = dir.path().join(format!("larder_{name}.parquet"));
        assert_success(
            "larder get-historical-features",
            &historical(cfg, &entities, &extra, &output),
        );
        let r = compare(&python, &remote, &entities, &output, &extra);
        assert_agrees_dropping(&format!("remote offline store ({name})"), &r, false);
        assert_eq!(r["feast_rows"], 400, "{r:#}");
    }

    let out = feast_script(
        &python,
        &[
            "e2e/feast/check_historical.py",
            "flight-errors",
            "--port",
            &server.port.to_string(),
        ],
    );
    assert_success("check_historical.py flight-errors", &out);
    let errors = last_json(&out);
    for (case, expected) in [
        ("missing_field", "missing field \"feature_refs\""),
        ("unknown_api", "not served"),
        ("unknown_view", "Feature view nope does not exist"),
        ("unknown_feature", "Feature nope not found"),
        ("no_timestamp", "no event_timestamp column"),
    ] {
        let text = errors[case].as_str().unwrap_or_default();
        assert!(text.contains(expected), "{case}: expected {expected:?} in {text:?}");
    }
    assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
}

/// Feast's `write_to_offline_store` through `larder offline-server`
/// (`get_table_column_names_and_types_from_data_source` over DoExchange,
/// `offline_write_batch` over DoPut) appends the row to the view's batch
/// source; Feast then reads it back through the same server.
#[test]
fn feast_sdk_writes_to_the_offline_store_through_the_offline_server() {
    let Some(python) = feast_python() else { return };
    // A copy of the example: the write changes its Parquet file.
    let (dir, cfg) = example_repo(ExampleData::Copied);
    let cfg = cfg.to_str().unwrap();
    let server = start_offline_server(cfg, dir.path().join("offline-server.log"));
    let remote = remote_repo(dir.path(), server.port);
    let source = dir.path().join("data/driver_stats.parquet");
    let out = feast_script(
        &python,
        &[
            "e2e/feast/check_historical.py",
            "remote-write",
            "--repo-dir",
            remote.to_str().unwrap(),
            "--source-file",
            source.to_str().unwrap(),
        ],
    );
    assert_success("check_historical.py remote-write", &out);
    let r = last_json(&out);
    assert_eq!(r["source_rows"], 48_001, "{r}");
    assert_eq!(r["rows"]["1001"]["conv_rate"], 0.625, "{r}");
    assert_eq!(r["rows"]["1001"]["city"], "Pushed", "{r}");
    assert_ne!(r["rows"]["1002"]["city"], "Pushed", "{r}");
    assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
}

/// Feast's `materialize` through `larder offline-server`
/// (`pull_latest_from_table_or_query` over DoExchange) fills Feast's online
/// store with the latest row of each driver in the window, as computed
/// from the source file.
#[test]
fn feast_sdk_materializes_through_the_offline_server() {
    let Some(python) = feast_python() else { return };
    let (dir, cfg) = example_repo(ExampleData::Shared);
    let server = start_offline_server(cfg.to_str().unwrap(), dir.path().join("offline-server.log"));
    let remote = remote_repo(dir.path(), server.port);
    let source = example_dir().join("data/driver_stats.parquet");
    let out = feast_script(
        &python,
        &[
            "e2e/feast/check_historical.py",
            "remote-materialize",
            "--repo-dir",
            remote.to_str().unwrap(),
            "--source-file",
            source.to_str().unwrap(),
        ],
    );
    assert_success("check_historical.py remote-materialize", &out);
    let r = last_json(&out);
    for driver in ["1001", "1500", "2000"] {
        let (got, want) = (&r["online"][driver], &r["expected"][driver]);
        assert_eq!(got["city"], want["city"], "{driver}: {r}");
        let (g, w) = (got["conv_rate"].as_f64().unwrap(), want["conv_rate"].as_f64().unwrap());
        assert!((g - w).abs() < 1e-6, "{driver}: {r}");
    }
    assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
}

/// The offline server over TLS (`--tls-cert`/`--tls-key`, a self-signed
/// certificate made with openssl): Feast's SDK with `scheme: https` and the
/// certificate reads the same training set as over plain gRPC.
#[test]
fn feast_sdk_reads_through_the_offline_server_over_tls() {
    let Some(python) = feast_python() else { return };
    let (dir, cfg) = example_repo(ExampleData::Shared);
    let (cert, key) = larder_testkit::tls::self_signed_cert(dir.path());
    let server = start_offline_server_with(
        cfg.to_str().unwrap(),
        dir.path().join("offline-server.log"),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let remote = remote_repo(dir.path(), server.port);
    let yaml = std::fs::read_to_string(remote.join("feature_store.yaml"))
        .unwrap()
        .replace(
            "  type: remote\n",
            &format!("  type: remote\n  scheme: https\n  cert: {}\n", cert.display()),
        );
    std::fs::write(remote.join("feature_store.yaml"), yaml).unwrap();
    gen_entities(&python, dir.path());
    let entities = dir.path().join("entities.parquet");
    let output = dir.path().join("larder.parquet");
    let features = "driver_hourly_stats:conv_rate,driver_hourly_stats:city";
    assert_success(
        "larder get-historical-features",
        &historical(cfg.to_str().unwrap(), &entities, &["--features", features], &output),
    );
    let r = compare(&python, &remote, &entities, &output, &["--features", features]);
    assert_agrees_dropping("remote offline store over TLS", &r, false);
    assert_eq!(r["feast_rows"], 400, "{r:#}");
}
