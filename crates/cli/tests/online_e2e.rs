//! Online stores with Feast 0.67 as the client (acceptance test of SQLite,
//! Redis and PostgreSQL).
//!
//! Forward: `larder apply` + `larder materialize` of the example, then
//! Feast's `get_online_features` (same registry, same `feature_store.yaml`),
//! `larder get-online-features -o json` and the newest Parquet rows must
//! agree on values, statuses and event timestamps
//! (e2e/feast/check_online.py). Reverse: `larder apply`, then Feast's
//! `materialize` (e2e/feast/feast_materialize.py), then the same comparison.
//!
//! The window `[2024-01-01T00:00, 2024-01-02T12:00)` leaves out the last 12
//! of the 48 hourly rows, so "newest in the window" is not "newest overall".
//! Feast's file offline store includes the end instant (`start <= ts <=
//! end`), Larder's does not, so the reverse tests expect the 12:00 rows
//! (`--end-inclusive`) and the forward tests the 11:00 rows.

mod support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use larder_testkit::{PgDatabase, RedisDb};
use serde_json::Value;
use support::*;

const START: &str = "2024-01-01T00:00:00";
const END: &str = "2024-01-02T12:00:00";
/// Not a driver of the example: NOT_FOUND (PRESENT with null on Feast's Redis).
const MISSING_ID: i64 = 99_999;
const VIEW: &str = "driver_hourly_stats";
const FEATURES: [&str; 10] = [
    "conv_rate",
    "acc_rate",
    "avg_daily_trips",
    "trips_today",
    "rating",
    "earnings_today",
    "online_minutes",
    "completed_trips",
    "city",
    "is_premium",
];

/// 1001, 1500, 2000, the missing id, then every other driver: the request
/// order is not sorted, and every driver's newest row gets compared.
fn ids() -> String {
    let mut ids = vec![1001, 1500, 2000, MISSING_ID];
    ids.extend((1002..2000).filter(|i| *i != 1500));
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn feature_refs() -> String {
    FEATURES
        .iter()
        .map(|f| format!("{VIEW}:{f}"))
        .collect::<Vec<_>>()
        .join(",")
}

enum Online<'a> {
    Sqlite,
    /// A logical database leased to the test (flushed before and after).
    Redis(&'a RedisDb),
    Postgres(&'a PgDatabase),
}

/// A temp repo dir whose feature_store.yaml both `larder -c` and
/// `FeatureStore(repo_path=…)` read.
struct Repo {
    dir: tempfile::TempDir,
    cfg: PathBuf,
    /// Step timings, printed at the end (`--no-capture` shows them).
    steps: Vec<(String, f64)>,
    name: &'static str,
}

impl Repo {
    fn new(name: &'static str, online: &Online) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let registry = match online {
            Online::Postgres(db) => format!("  registry_type: sql\n  path: {}\n", db.feast_url()),
            _ => format!("  registry_type: sql\n  path: sqlite:///{d}/registry.db\n"),
        };
        let store = match online {
            Online::Sqlite => format!("  type: sqlite\n  path: {d}/online.db\n"),
            Online::Redis(db) => format!("  type: redis\n  connection_string: \"{}\"\n", db.connection_string()),
            Online::Postgres(db) => format!(
                "  type: postgres\n  host: {}\n  port: {}\n  database: {}\n  db_schema: feast_online\n  user: {}\n  password: unused\n  sslmode: disable\n",
                db.host(),
                db.port(),
                db.name(),
                db.user()
            ),
        };
        let yaml = format!(
            "project: driver_stats\nprovider: local\nregistry:\n{registry}  schema_mode: verify\nonline_store:\n{store}offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
        );
        let cfg = dir.path().join("feature_store.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        Self {
            dir,
            cfg,
            steps: Vec::new(),
            name,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn timed<T>(&mut self, step: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.steps.push((step.to_string(), t.elapsed().as_secs_f64()));
        out
    }

    fn larder(&mut self, step: &str, args: &[&str]) -> String {
        let cfg = self.cfg.to_str().unwrap().to_string();
        let mut all = vec!["-c", cfg.as_str()];
        all.extend_from_slice(args);
        self.timed(step, || larder_ok(&all))
    }

    fn apply(&mut self) {
        let manifests = example_dir().join("manifests");
        self.larder("larder apply", &["apply", "-f", manifests.to_str().unwrap()]);
    }

    fn larder_materialize(&mut self) {
        let out = self.larder("larder materialize", &["materialize", START, END]);
        assert!(out.contains(&format!("{VIEW}: 1000 rows")), "{out}");
    }

    fn feast_materialize(&mut self, python: &Path) {
        let dir = self.path().to_str().unwrap().to_string();
        let out = self.timed("feast materialize", || {
            feast_script(
                python,
                &[
                    "e2e/feast/feast_materialize.py",
                    "--repo-dir",
                    &dir,
                    "--start",
                    START,
                    "--end",
                    END,
                ],
            )
        });
        assert_success("feast_materialize.py", &out);
    }

    /// `larder get-online-features -o json`, saved for check_online.py.
    fn larder_get(&mut self, args: &[&str]) -> (PathBuf, Value) {
        let ids = format!("driver_id={}", ids());
        let mut all = vec!["get-online-features"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--entity", &ids, "-o", "json"]);
        let text = self.larder("larder get-online-features", &all);
        let json: Value = serde_json::from_str(&text).expect("larder prints JSON");
        let path = self.path().join("larder.json");
        std::fs::write(&path, &text).unwrap();
        (path, json)
    }

    fn check(&mut self, python: &Path, larder_json: &Path, extra: &[&str]) {
        let dir = self.path().to_str().unwrap().to_string();
        let parquet = example_dir().join("data/driver_stats.parquet");
        let ids = ids();
        let mut args = vec![
            "e2e/feast/check_online.py",
            "--repo-dir",
            &dir,
            "--larder-json",
            larder_json.to_str().unwrap(),
            "--parquet",
            parquet.to_str().unwrap(),
            "--start",
            START,
            "--end",
            END,
            "--ids",
            &ids,
        ];
        args.extend_from_slice(extra);
        let out = self.timed("check_online.py (feast get_online_features)", || {
            feast_script(python, &args)
        });
        assert_success("check_online.py", &out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("OK "), "{stdout}");
        eprintln!("{}: {}", self.name, stdout.trim());
    }

    fn report(&self) {
        let total: f64 = self.steps.iter().map(|(_, s)| s).sum();
        let steps: Vec<String> = self.steps.iter().map(|(n, s)| format!("{n} {s:.2}s")).collect();
        eprintln!("{} timings: {} (total {total:.2}s)", self.name, steps.join(", "));
    }
}

/// Larder writes, Feast and Larder read.
fn forward(python: &Path, name: &'static str, online: &Online) {
    let mut repo = Repo::new(name, online);
    repo.apply();
    repo.larder_materialize();
    let (path, json) = repo.larder_get(&["--features", &feature_refs()]);
    assert_eq!(json["metadata"]["feature_names"][0], "driver_id");
    repo.check(python, &path, &[]);
    repo.report();
}

/// Feast writes (from the registry `larder apply` wrote), Larder and Feast read.
fn reverse(python: &Path, name: &'static str, online: &Online) {
    let mut repo = Repo::new(name, online);
    repo.apply();
    repo.feast_materialize(python);
    let (path, _) = repo.larder_get(&["--features", &feature_refs()]);
    repo.check(python, &path, &["--end-inclusive"]);
    repo.report();
}

#[test]
fn sqlite_larder_materialize_feast_reads() {
    let Some(python) = feast_python() else { return };
    forward(&python, "sqlite forward", &Online::Sqlite);
}

#[test]
fn redis_larder_materialize_feast_reads() {
    let Some(python) = feast_python() else { return };
    let redis = RedisDb::lease();
    forward(&python, "redis forward", &Online::Redis(&redis));
}

#[tokio::test]
async fn postgres_larder_materialize_feast_reads() {
    let Some(python) = feast_python() else { return };
    let db = PgDatabase::create("larder_cli").await;
    forward(&python, "postgres forward", &Online::Postgres(&db));
}

#[test]
fn sqlite_feast_materialize_larder_reads() {
    let Some(python) = feast_python() else { return };
    reverse(&python, "sqlite reverse", &Online::Sqlite);
}

#[test]
fn redis_feast_materialize_larder_reads() {
    let Some(python) = feast_python() else { return };
    let redis = RedisDb::lease();
    reverse(&python, "redis reverse", &Online::Redis(&redis));
}

#[tokio::test]
async fn postgres_feast_materialize_larder_reads() {
    let Some(python) = feast_python() else { return };
    let db = PgDatabase::create("larder_cli").await;
    reverse(&python, "postgres reverse", &Online::Postgres(&db));
}

/// `--feature-service driver_activity --full-feature-names`: the same
/// `driver_hourly_stats__<feature>` columns as Feast's
/// `get_online_features(features=store.get_feature_service(…), full_feature_names=True)`.
#[test]
fn sqlite_feature_service_full_names_match_feast() {
    let Some(python) = feast_python() else { return };
    let mut repo = Repo::new("sqlite feature service", &Online::Sqlite);
    repo.apply();
    repo.larder_materialize();
    let (path, json) = repo.larder_get(&["--feature-service", "driver_activity", "--full-feature-names"]);
    let mut names: Vec<&str> = json["metadata"]["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"driver_id"), "entity column first");
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "driver_hourly_stats__avg_daily_trips",
            "driver_hourly_stats__conv_rate",
            "driver_id"
        ]
    );
    repo.check(
        &python,
        &path,
        &["--feature-service", "driver_activity", "--full-feature-names"],
    );
    repo.report();
}
