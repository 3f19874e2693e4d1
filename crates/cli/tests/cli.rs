//! `larder apply/plan/ls/get/delete/teardown` end to end against real
//! registries, and bad input that must leave the registry unchanged.

mod support;

use std::path::{Path, PathBuf};

use larder_testkit::{MySqlDatabase, PgDatabase, SqliteFile};
use support::*;

/// A copy of the example manifests (with the data path made absolute) to mutate.
fn manifests_copy(dir: &Path) -> PathBuf {
    let src = example_dir().join("manifests");
    let dst = dir.join("manifests");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let data = example_dir().join("data");
        let text = text.replace("../data", data.to_str().unwrap());
        std::fs::write(dst.join(p.file_name().unwrap()), text).unwrap();
    }
    dst
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

enum Snapshot {
    Sql(String),
    File(PathBuf),
}

impl Snapshot {
    async fn take(&self) -> Vec<String> {
        match self {
            Snapshot::Sql(url) => dump_sql(url).await,
            Snapshot::File(p) => vec![hex::encode(std::fs::read(p).unwrap())],
        }
    }
}

/// Each bad input gets a clear error naming the problem and changes nothing.
async fn bad_input_changes_nothing(registry: &str, snapshot: Snapshot) {
    let tmp = tempfile::tempdir().unwrap();
    let good = manifests_copy(tmp.path());
    larder_ok(&["--registry", registry, "apply", "-f", good.to_str().unwrap()]);
    let before = snapshot.take().await;

    type Edit = (&'static str, &'static str, &'static str);
    let cases: Vec<(Vec<Edit>, &str)> = vec![
        (
            vec![("driver.yaml", "joinKey: driver_id", "joinKey: [driver_id")],
            "invalid YAML",
        ),
        (
            vec![("driver.yaml", "joinKey: driver_id", "joinKey: driver_id\n  colour: red")],
            "unknown field `colour`",
        ),
        (
            vec![("driver.yaml", "kind: Entity", "kind: Entitee")],
            "unknown kind \"Entitee\"",
        ),
        (
            vec![("driver.yaml", "apiVersion: larder.dev/v1alpha1", "apiVersion: v1")],
            "unsupported apiVersion",
        ),
        (
            vec![("driver-hourly-stats.yaml", "entities: [driver]", "entities: [rider]")],
            "no Entity named \"rider\"",
        ),
        (
            vec![("driver-activity.yaml", "features: [conv_rate,", "features: [speed,")],
            "has no feature \"speed\"",
        ),
        (
            vec![(
                "driver-hourly-stats.yaml",
                "name: driver_hourly_stats",
                "name: \"drop table x\"",
            )],
            "spec.name",
        ),
        (
            vec![("driver-hourly-stats.yaml", "name: driver_hourly_stats", "name: \"a;b\"")],
            "spec.name",
        ),
        (
            vec![(
                "driver-hourly-stats.yaml",
                "name: driver_hourly_stats",
                "name: \"../x\"",
            )],
            "spec.name",
        ),
        (
            vec![(
                "driver-hourly-stats.yaml",
                "name: conv_rate",
                "name: \"conv rate; drop\"",
            )],
            "spec.features[0].name",
        ),
        (
            vec![("driver-hourly-stats.yaml", "type: Float32", "type: Float128")],
            "unknown feature type \"Float128\"",
        ),
        (
            vec![("driver-hourly-stats.yaml", "ttl: 1d", "ttl: -1d")],
            "must not be negative",
        ),
        (
            vec![("sources.yaml", "name: driver-stats-push", "name: driver-stats-source")],
            "duplicate DataSource",
        ),
    ];
    for (edits, needle) in cases {
        let case_dir = tempfile::tempdir().unwrap();
        let m = manifests_copy(case_dir.path());
        for (file, from, to) in &edits {
            edit(&m, file, from, to);
        }
        let out = larder(&["--registry", registry, "apply", "-f", m.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{needle}: apply must fail");
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
        assert!(stderr.contains(".yaml"), "error names the file:\n{stderr}");
        assert_eq!(snapshot.take().await, before, "{needle}: registry changed");
    }

    // A name of 300 characters.
    let case_dir = tempfile::tempdir().unwrap();
    let m = manifests_copy(case_dir.path());
    let long = "x".repeat(300);
    edit(
        &m,
        "driver-hourly-stats.yaml",
        "name: driver_hourly_stats",
        &format!("name: {long}"),
    );
    let out = larder(&["--registry", registry, "apply", "-f", m.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 128 characters"));
    assert_eq!(snapshot.take().await, before);

    // Invalid YAML reports the line.
    let line_dir = tempfile::tempdir().unwrap();
    let m = manifests_copy(line_dir.path());
    edit(&m, "driver.yaml", "joinKey: driver_id", "joinKey: [driver_id");
    let out = larder(&["--registry", registry, "apply", "-f", m.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line "),
        "line number reported"
    );
}

#[tokio::test]
async fn bad_input_file_registry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.pb");
    bad_input_changes_nothing(path.to_str().unwrap(), Snapshot::File(path.clone())).await;
}

#[tokio::test]
async fn bad_input_sqlite_registry() {
    let db = SqliteFile::new("registry.db");
    bad_input_changes_nothing(&db.feast_url(), Snapshot::Sql(db.url())).await;
}

#[tokio::test]
async fn bad_input_postgres_registry() {
    let db = PgDatabase::create("larder_cli").await;
    bad_input_changes_nothing(&db.postgresql_url(), Snapshot::Sql(db.url().to_string())).await;
}

#[tokio::test]
async fn apply_plan_prune_get_delete_on_mariadb() {
    let db = MySqlDatabase::create("larder_cli").await;
    let reg = db.url().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let m = manifests_copy(tmp.path());
    let m_str = m.to_str().unwrap();

    let out = larder_ok(&["--registry", &reg, "apply", "-f", m_str]);
    assert!(out.contains("created   FeatureView driver_hourly_stats"), "{out}");
    assert!(out.contains("7 created, 0 updated, 0 unchanged, 0 deleted"), "{out}");
    let out = larder_ok(&["--registry", &reg, "apply", "-f", m_str]);
    assert!(
        out.contains("0 created, 0 updated, 7 unchanged, 0 deleted"),
        "idempotent: {out}"
    );

    // plan shows a change without writing it.
    edit(&m, "driver-hourly-stats.yaml", "ttl: 1d", "ttl: 2d");
    let before = dump_sql(&reg).await;
    let out = larder_ok(&["--registry", &reg, "plan", "-f", m_str]);
    assert!(out.contains("~ update    FeatureView driver_hourly_stats"), "{out}");
    assert_eq!(dump_sql(&reg).await, before, "plan writes nothing");
    let out = larder_ok(&["--registry", &reg, "apply", "-f", m_str]);
    assert!(out.contains("updated   FeatureView driver_hourly_stats"), "{out}");
    let got = larder_ok(&[
        "--registry",
        &reg,
        "--project",
        "driver_stats",
        "get",
        "fv",
        "driver_hourly_stats",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(v["spec"]["ttl"], "2d");

    // Without --prune a removed object stays; with it, it goes.
    std::fs::remove_file(m.join("driver-activity.yaml")).unwrap();
    let out = larder_ok(&["--registry", &reg, "apply", "-f", m_str]);
    assert!(!out.contains("deleted   FeatureService"), "{out}");
    let out = larder_ok(&["--registry", &reg, "plan", "--prune", "-f", m_str]);
    assert!(out.contains("- delete    FeatureService driver_activity"), "{out}");
    let out = larder_ok(&["--registry", &reg, "apply", "--prune", "-f", m_str]);
    assert!(out.contains("deleted   FeatureService driver_activity"), "{out}");
    let ls = larder_ok(&["--registry", &reg, "--project", "driver_stats", "ls", "featureservices"]);
    assert!(!ls.contains("driver_activity"), "{ls}");

    // delete and get of missing objects are clear errors.
    larder_ok(&[
        "--registry",
        &reg,
        "--project",
        "driver_stats",
        "delete",
        "permission",
        "feature-readers",
    ]);
    let out = larder(&[
        "--registry",
        &reg,
        "--project",
        "driver_stats",
        "delete",
        "permission",
        "feature-readers",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist in project driver_stats"));
    let out = larder(&["--registry", &reg, "--project", "driver_stats", "get", "pods", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind"));

    // teardown needs confirmation, then drops the tables.
    assert!(!larder(&["--registry", &reg, "teardown"]).status.success());
    larder_ok(&["--registry", &reg, "teardown", "--yes"]);
    let ls = larder_ok(&["--registry", &reg, "--project", "driver_stats", "ls", "featureviews"]);
    assert!(!ls.contains("driver_hourly_stats"), "{ls}");
}

#[tokio::test]
async fn config_file_and_project_conflicts() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifests_copy(tmp.path());
    std::fs::write(
        tmp.path().join("larder.yaml"),
        "project: driver_stats\nregistry:\n  registry_type: sql\n  path: sqlite:///data/registry.db\n  cache_ttl_seconds: 60\nonline_store: {type: sqlite, path: data/online.db}\n",
    )
    .unwrap();
    let cfg = tmp.path().join("larder.yaml");
    let cfg = cfg.to_str().unwrap();
    larder_ok(&["-c", cfg, "apply", "-f", m.to_str().unwrap()]);
    assert!(
        tmp.path().join("data/registry.db").exists(),
        "relative registry path resolves against the config"
    );
    // apply provisions the online table, as `feast apply` does.
    let online = format!("sqlite://{}", tmp.path().join("data/online.db").display());
    let tables = || async {
        use sqlx::{Connection, Row};
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&online).await.unwrap();
        let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut c)
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>()
    };
    assert_eq!(tables().await, vec!["driver_stats_driver_hourly_stats".to_string()]);
    let ls = larder_ok(&["-c", cfg, "ls", "entities"]);
    assert!(ls.contains("driver_id"), "{ls}");

    // Pruning a view drops its online table.
    std::fs::remove_file(m.join("driver-activity.yaml")).unwrap();
    std::fs::remove_file(m.join("driver-hourly-stats.yaml")).unwrap();
    let out = larder_ok(&["-c", cfg, "apply", "--prune", "-f", m.to_str().unwrap()]);
    assert!(out.contains("deleted   FeatureView driver_hourly_stats"), "{out}");
    assert!(tables().await.is_empty(), "online table dropped with its view");

    let out = larder(&["-c", cfg, "--project", "other", "apply", "-f", m.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("declare project driver_stats"));

    let out = larder(&["apply", "-f", m.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no registry configured"));
}

#[tokio::test]
async fn materialize_and_read_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifests_copy(tmp.path());
    std::fs::write(
        tmp.path().join("larder.yaml"),
        "project: driver_stats\nregistry: data/registry.pb\nonline_store: {type: sqlite, path: data/online.db}\n",
    )
    .unwrap();
    let cfg = tmp.path().join("larder.yaml");
    let cfg = cfg.to_str().unwrap();
    larder_ok(&["-c", cfg, "apply", "-f", m.to_str().unwrap()]);

    let err = |args: &[&str]| {
        let mut all = vec!["-c", cfg];
        all.extend_from_slice(args);
        let out = larder(&all);
        assert!(!out.status.success(), "{args:?} must fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(err(&["materialize", "2024-01-02", "2024-01-01"]).contains("must be before end"));
    assert!(err(&["materialize", "yesterday", "2024-01-01"]).contains("invalid time"));
    assert!(err(&["materialize", "2024-01-01", "2024-01-02", "--views", "nope"]).contains("nope does not exist"));

    // Materialize half the window, then incrementally up to the end.
    let out = larder_ok(&["-c", cfg, "materialize", "2024-01-01T00:00:00", "2024-01-02T00:00:00"]);
    assert!(out.contains("driver_hourly_stats: 1000 rows"), "{out}");
    let out = larder_ok(&["-c", cfg, "materialize-incremental", "2024-01-03T00:00:00"]);
    assert!(
        out.contains("2024-01-02T00:00:00Z .. 2024-01-03T00:00:00Z"),
        "incremental starts where the last run ended: {out}"
    );
    let got = larder_ok(&[
        "-c",
        cfg,
        "get-online-features",
        "--features",
        "driver_hourly_stats:avg_daily_trips",
        "--entity",
        "driver_id=1001,5",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        v["metadata"]["feature_names"],
        serde_json::json!(["driver_id", "avg_daily_trips"])
    );
    assert_eq!(v["results"][1]["statuses"], serde_json::json!(["PRESENT", "NOT_FOUND"]));
    assert_eq!(v["results"][1]["event_timestamps"][0], "2024-01-02T23:00:00Z");

    assert!(
        err(&["get-online-features", "--features", "nope:x", "--entity", "driver_id=1"])
            .contains("Feature view nope does not exist")
    );
    assert!(
        err(&[
            "get-online-features",
            "--features",
            "driver_hourly_stats:speed",
            "--entity",
            "driver_id=1"
        ])
        .contains("Feature speed not found")
    );
    assert!(
        err(&[
            "get-online-features",
            "--features",
            "driver_hourly_stats:city",
            "--entity",
            "driver_id=1.5"
        ])
        .contains("is not an Int64")
    );
    assert!(
        err(&[
            "get-online-features",
            "--features",
            "driver_hourly_stats:city",
            "--entity",
            "rider_id=1"
        ])
        .contains("driver_id is required")
    );
}

/// `materialize --shard I/N`: bad values are rejected naming the rule; one
/// shard writes exactly the drivers that hash to it, the N shards write
/// every driver once between them, and only an unsharded run records an
/// interval.
#[tokio::test]
async fn materialize_shards() {
    use larder_materialize::Shard;
    use larder_model::feast::{FeastKind, FeastObject};
    use larder_registry::Registry;

    let tmp = tempfile::tempdir().unwrap();
    let m = manifests_copy(tmp.path());
    std::fs::write(
        tmp.path().join("larder.yaml"),
        "project: driver_stats\nregistry: data/registry.pb\nonline_store: {type: sqlite, path: data/online.db}\n",
    )
    .unwrap();
    let cfg = tmp.path().join("larder.yaml");
    let cfg = cfg.to_str().unwrap();
    larder_ok(&["-c", cfg, "apply", "-f", m.to_str().unwrap()]);
    let (start, end, view) = ("2024-01-01T00:00:00", "2024-01-03T00:00:00", "driver_hourly_stats");
    let materialize = |shard: Option<&str>| {
        let mut args = vec!["-c", cfg, "materialize", start, end, "--views", view];
        args.extend(shard.map(|s| ["--shard", s]).into_iter().flatten());
        larder(&args)
    };

    for (bad, rule) in [
        ("4/4", "index I must be below the count N"),
        ("7/4", "numbered 0 to N-1"),
        ("x", "expected I/N"),
        ("1/0", "count N must be at least 1"),
        ("one/4", "expected I/N"),
    ] {
        let out = materialize(Some(bad));
        assert!(!out.status.success(), "--shard {bad} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--shard") && err.contains(rule), "--shard {bad}: {err}");
    }
    let help = larder_ok(&["materialize", "--help"]);
    assert!(help.contains("--shard <I/N>") && help.contains("0 <= I < N"), "{help}");

    let intervals = || async {
        let reg = larder_registry::file::FileRegistry::open(&tmp.path().join("data/registry.pb")).unwrap();
        match reg.get("driver_stats", FeastKind::FeatureView, view).await.unwrap() {
            Some(FeastObject::FeatureView(v)) => v.meta.map(|m| m.materialization_intervals.len()).unwrap_or(0),
            other => panic!("{view}: {other:?}"),
        }
    };
    let ids: Vec<i64> = (1001..=2000).collect();
    let entity = format!(
        "driver_id={}",
        ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    );
    let present = || -> Vec<bool> {
        let got = larder_ok(&[
            "-c",
            cfg,
            "get-online-features",
            "--features",
            "driver_hourly_stats:avg_daily_trips",
            "--entity",
            &entity,
            "-o",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        v["results"][1]["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s == "PRESENT")
            .collect()
    };
    let rows_of = |out: &str| -> u64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(view))
            .unwrap_or_else(|| panic!("{out}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };

    let mut total = 0;
    for i in 0..4 {
        let shard = format!("{i}/4");
        let out = materialize(Some(&shard));
        assert_success(&format!("materialize --shard {shard}"), &out);
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains(&format!("shard {shard} (interval not recorded)")), "{out}");
        let rows = rows_of(&out);
        assert!(rows > 150, "shard {shard}: {rows} rows");
        total += rows;
        if i == 0 {
            // Exactly the drivers whose serialized key hashes to shard 0.
            let expected: Vec<bool> = ids
                .iter()
                .map(|&id| {
                    let key = larder_model::entity_key::serialize_entity_key(&larder_protos::feast::types::EntityKey {
                        join_keys: vec!["driver_id".into()],
                        entity_values: vec![larder_protos::feast::types::Value {
                            val: Some(larder_protos::feast::types::value::Val::Int64Val(id)),
                        }],
                    })
                    .unwrap();
                    Shard::new(0, 4).unwrap().contains(&key)
                })
                .collect();
            assert_eq!(present(), expected, "shard 0/4 wrote its drivers and no others");
        }
        assert_eq!(intervals().await, 0, "shard {shard} records no interval");
    }
    assert_eq!(total, 1000, "each driver written by one shard");
    assert!(present().iter().all(|p| *p), "all shards together: every driver");

    let out = larder_ok(&["-c", cfg, "materialize", start, end, "--views", view]);
    assert!(
        out.contains("driver_hourly_stats: 1000 rows") && !out.contains("shard"),
        "{out}"
    );
    assert_eq!(intervals().await, 1, "an unsharded run records its interval");
}

/// `larder render` reads a GitOps directory (other kinds skipped) and prints
/// what the operator would create, with the same builders.
#[test]
fn render_prints_the_operators_objects() {
    let samples = repo_root().join("config/samples");
    let out = larder_ok(&["render", "-f", samples.to_str().unwrap(), "-n", "team-a"]);
    assert!(
        out.contains("kind: ConfigMap") && out.contains("name: driver-stats-config"),
        "{out}"
    );
    assert!(out.contains("namespace: team-a"), "{out}");
    // The samples' Secrets are skipped, never printed.
    let secrets = std::fs::read_to_string(samples.join("secrets.yaml")).unwrap();
    assert!(!out.contains("kind: Secret") && secrets.contains("stringData"));
    let fixture = repo_root().join("crates/deploy/tests/fixtures/serving.yaml");
    let out = larder_ok(&[
        "render",
        "-f",
        fixture.to_str().unwrap(),
        "--image",
        "example.org/larder:9",
    ]);
    for kind in [
        "Deployment",
        "Service",
        "ServiceAccount",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
    ] {
        assert!(out.contains(&format!("kind: {kind}\n")), "no {kind}");
    }
    assert!(
        out.contains("image: registry.example/larder:1.2.3"),
        "the store's own image wins"
    );
    // A FeatureStore the operator could not run is an error naming the field.
    let example = example_dir().join("manifests");
    let failed = larder(&["render", "-f", example.to_str().unwrap()]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("spec.registry"));
}

/// `--log-format json` (or LARDER_LOG_FORMAT=json): every log line is one
/// JSON object; a password in the registry URL appears in no line.
#[test]
fn json_logs_and_no_password_in_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let registry = format!("sqlite:///{}", db.display());
    let out = larder(&[
        "--log-format",
        "json",
        "-vv",
        "--registry",
        &registry,
        "ls",
        "featureviews",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!logs.is_empty(), "no JSON log line at -vv: {stderr}");
    for l in &logs {
        assert!(
            l["level"].is_string() && l["target"].is_string() && l["fields"].is_object(),
            "{l}"
        );
    }
    let bad = larder(&["--log-format", "yaml", "ls", "featureviews"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("text or json"));
    // A registry that cannot be reached, with a password in its URL: logs and error name the host, never the password.
    let out = larder(&[
        "--log-format",
        "json",
        "-vv",
        "--registry",
        "postgresql://larder:Pa55-word-42@127.0.0.1:1/registry",
        "ls",
        "featureviews",
    ]);
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("Pa55-word-42"), "password leaked: {all}");
    assert!(all.contains("127.0.0.1"), "{all}");
}
