//! The operator's workloads run for real: the test kubelet
//! ([`support::kubelet`]) runs the exact commands, arguments, environment
//! and mounted config the operator renders (Secrets and ConfigMaps read from
//! the API server) as local processes and reports back through pod status,
//! so the real Deployment, ReplicaSet and Job controllers move the objects
//! on. Feast 0.67's SDK is the client: it reads the materialization
//! interval the operator recorded and the features the feature server
//! serves, which equal an unsharded `larder materialize` of the same window.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use larder_model::Kind;
use larder_model::feast::{FeastKind, FeastObject};
use larder_testkit::RedisDb;
use support::kubelet::{Kubelet, ensure_binaries};
use support::{RunningOperator, TestNs, condition, eventually, feast_python, registry, repo_root, samples, setup};

const VIEW: &str = "driver-hourly-stats";
const FEAST_VIEW: &str = "driver_hourly_stats";
const STORE: &str = "driver-stats";
const IDS: &str = "1001,1500,2000,99999,1002,1003,1999";
const FEATURES: &str = "driver_hourly_stats:conv_rate,driver_hourly_stats:acc_rate,driver_hourly_stats:avg_daily_trips,driver_hourly_stats:trips_today,driver_hourly_stats:rating,driver_hourly_stats:earnings_today,driver_hourly_stats:online_minutes,driver_hourly_stats:completed_trips,driver_hourly_stats:city,driver_hourly_stats:is_premium";
const WITHIN: Duration = Duration::from_secs(120);

fn data_file() -> PathBuf {
    repo_root().join("examples/driver-stats/data/driver_stats.parquet")
}

/// The samples with the Parquet file where this host has it, a 3-day ttl (the
/// window then covers the data), a feature server and `store_extra` in the store spec.
fn manifests(source_path: &Path, store_extra: &str) -> String {
    samples()
        .replace(
            "/var/lib/larder/examples/driver-stats/data/driver_stats.parquet",
            &source_path.display().to_string(),
        )
        .replace("ttl: 1d", "ttl: 3d")
        // The servers refresh their registry snapshot every cacheTTLSeconds in the background:
        // a view applied after a server started is served after at most that long.
        .replace("cacheTTLSeconds: 60", "cacheTTLSeconds: 1")
        .replace(
            "  deletionPolicy: Retain\n",
            &format!("  deletionPolicy: Retain\n{store_extra}"),
        )
}

async fn view_jobs(ns: &TestNs) -> Vec<Job> {
    Api::<Job>::namespaced(ns.client.clone(), &ns.name)
        .list(&ListParams::default().labels(&format!("larder.dev/view={VIEW}")))
        .await
        .unwrap()
        .items
}

async fn request_run(ns: &TestNs, value: &str) {
    let patch = serde_json::json!({"metadata": {"annotations": {"larder.dev/materialize-requested-at": value}}});
    ns.api(Kind::FeatureView)
        .patch(VIEW, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Run the real `larder` binary; its stdout.
fn larder(bin: &Path, config: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "larder {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_config(dir: &Path, name: &str, registry_url: &str, redis: &RedisDb) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "project: driver_stats\nregistry:\n  registry_type: sql\n  path: {registry_url}\n  cache_ttl_seconds: 0\nonline_store:\n  type: redis\n  connection_string: \"{}\"\nentity_key_serialization_version: 3\n",
            redis.connection_string()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn sharded_jobs_materialize_and_feast_reads_the_feature_server() {
    let redis = RedisDb::lease();
    let Some((ns, db)) = setup("op-e2e", Some(&redis)).await else {
        return;
    };
    let python = feast_python();
    let binaries = ensure_binaries().await;
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    let kubelet = Kubelet::start(&ns.client, &ns.name).await;
    ns.apply(&manifests(
        &data_file(),
        "  featureServer: {replicas: 1}\n  materialization: {shards: 3, backoffLimit: 0}\n",
    ))
    .await
    .unwrap();
    ns.wait_condition(Kind::FeatureView, VIEW, "Ready", true).await;

    // An on-demand run: one Job per shard, each `larder materialize … --shard I/3`.
    request_run(&ns, "2024-01-03T00:00:00Z").await;
    eventually(
        WITHIN,
        "the run's Jobs finished and the view says Materialized",
        || async {
            ns.get(Kind::FeatureView, VIEW)
                .await
                .and_then(|v| condition(&v, "Materialized"))
                .is_some_and(|c| c["status"] == "True")
        },
    )
    .await;
    let jobs = view_jobs(&ns).await;
    assert_eq!(jobs.len(), 3, "one Job per shard");
    let mut shards: Vec<String> = jobs
        .iter()
        .map(|j| {
            let c = &j.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
            let args = c.args.clone().unwrap();
            assert_eq!(c.command.as_deref(), Some(&["larder".to_string()][..]));
            assert_eq!(
                &args[..7],
                [
                    "--config",
                    "/etc/larder/larder.yaml",
                    "materialize",
                    "2023-12-31T00:00:00Z",
                    "2024-01-03T00:00:00Z",
                    "--views",
                    FEAST_VIEW
                ]
            );
            let env: Vec<&str> = c.env.as_ref().unwrap().iter().map(|e| e.name.as_str()).collect();
            assert!(env.contains(&"LARDER_REGISTRY_URL") && env.contains(&"LARDER_ONLINE_STORE_CONNECTION_STRING"));
            args[8].clone()
        })
        .collect();
    shards.sort();
    assert_eq!(shards, ["0/3", "1/3", "2/3"]);
    let view = ns.get(Kind::FeatureView, VIEW).await.unwrap();
    let status = &view.data["status"];
    assert_eq!(status["materialization"]["lastRun"]["outcome"], "Succeeded", "{status}");
    assert_eq!(status["materialization"]["handledRequest"], "2024-01-03T00:00:00Z");
    assert_eq!(status["lastMaterialized"], "2024-01-03T00:00:00Z", "{status}");
    // Exactly one interval, recorded by the operator once every shard succeeded.
    let reg = registry(&db).await;
    let Some(FeastObject::FeatureView(v)) = reg
        .get("driver_stats", FeastKind::FeatureView, FEAST_VIEW)
        .await
        .unwrap()
    else {
        panic!("view not in the registry")
    };
    let intervals = v.meta.unwrap().materialization_intervals;
    assert_eq!(intervals.len(), 1, "{intervals:?}");

    // The shards' rows equal one unsharded run of the same window into another store.
    let dir = tempfile::tempdir().unwrap();
    let larder_bin = &binaries["larder"];
    let cfg = write_config(dir.path(), "sharded.yaml", db.url(), &redis);
    let sharded = larder(
        larder_bin,
        &cfg,
        &[
            "get-online-features",
            "--features",
            FEATURES,
            "--entity",
            &format!("driver_id={IDS}"),
            "-o",
            "json",
        ],
    );
    let other = RedisDb::lease();
    let unsharded_cfg = write_config(dir.path(), "unsharded.yaml", db.url(), &other);
    larder(
        larder_bin,
        &unsharded_cfg,
        &[
            "materialize",
            "2023-12-31T00:00:00Z",
            "2024-01-03T00:00:00Z",
            "--views",
            FEAST_VIEW,
        ],
    );
    let unsharded = larder(
        larder_bin,
        &unsharded_cfg,
        &[
            "get-online-features",
            "--features",
            FEATURES,
            "--entity",
            &format!("driver_id={IDS}"),
            "-o",
            "json",
        ],
    );
    assert_eq!(sharded, unsharded);
    assert!(sharded.contains("PRESENT"), "{sharded}");

    // The feature server the operator rolled out becomes available, and so does the store.
    ns.wait_condition(Kind::FeatureStore, STORE, "FeatureServerAvailable", true)
        .await;
    ns.wait_condition(Kind::FeatureStore, STORE, "Ready", true).await;
    let (_, port) = kubelet
        .deployment_port("driver-stats-feature-server", 6566, WITHIN)
        .await;

    if let Some(python) = python {
        let client = tempfile::tempdir().unwrap();
        std::fs::write(
            client.path().join("feature_store.yaml"),
            format!(
                "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: {}\n  cache_ttl_seconds: 0\nonline_store:\n  type: remote\n  path: http://127.0.0.1:{port}\nentity_key_serialization_version: 3\n",
                db.feast_url()
            ),
        )
        .unwrap();
        // Feast's SDK sees the interval the operator recorded.
        let out = Command::new(&python)
            .env("TZ", "UTC")
            .current_dir(client.path())
            .args(["-c", "import feast\nfv = feast.FeatureStore(repo_path='.').get_feature_view('driver_hourly_stats')\nfor s, e in fv.materialization_intervals: print(s.isoformat(), e.isoformat())"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("2024-01-03T00:00:00"), "{stdout}");
        // Feast's remote online store reads the feature server and gets what the store holds.
        let direct = dir.path().join("larder.json");
        std::fs::write(&direct, &sharded).unwrap();
        let out = Command::new(&python)
            .env("TZ", "UTC")
            .current_dir(repo_root())
            .args(["e2e/feast/check_remote.py", "--repo-dir"])
            .arg(client.path())
            .arg("--larder-json")
            .arg(&direct)
            .args([
                "--ids",
                IDS,
                "--push-id",
                "900001",
                "--write-id",
                "900002",
                "--update-id",
                "1002",
                "--server-store",
                "redis",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("OK "),
            "check_remote.py: {stdout}{}\nfeature server log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            kubelet.dump(40)
        );
    }
    ns.delete_larder_resources().await;
    kubelet.shutdown().await;
    ns.remove(true).await;
    op.stop().await;
}

#[tokio::test]
async fn a_failed_shard_records_nothing_and_the_schedule_retries() {
    let redis = RedisDb::lease();
    let Some((ns, db)) = setup("op-e2e-fail", Some(&redis)).await else {
        return;
    };
    ensure_binaries().await;
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    let kubelet = Kubelet::start(&ns.client, &ns.name).await;
    let missing = PathBuf::from("/nonexistent/driver_stats.parquet");
    ns.apply(&manifests(
        &missing,
        "  materialization: {shards: 2, backoffLimit: 0}\n",
    ))
    .await
    .unwrap();
    ns.wait_condition(Kind::FeatureView, VIEW, "Ready", true).await;
    request_run(&ns, "2024-01-03T00:00:00Z").await;
    let failed = ns.wait_condition(Kind::FeatureView, VIEW, "Materialized", false).await;
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{failed}");
    assert!(
        failed["message"].as_str().unwrap().contains("interval not recorded"),
        "{failed}"
    );
    let view = ns.get(Kind::FeatureView, VIEW).await.unwrap();
    assert_eq!(view.data["status"]["materialization"]["lastRun"]["outcome"], "Failed");
    assert!(view.data["status"]["lastMaterialized"].is_null());
    let reg = registry(&db).await;
    let Some(FeastObject::FeatureView(v)) = reg
        .get("driver_stats", FeastKind::FeatureView, FEAST_VIEW)
        .await
        .unwrap()
    else {
        panic!("view not in the registry")
    };
    assert!(
        v.meta.unwrap().materialization_intervals.is_empty(),
        "no interval after a failed run"
    );
    // Handled: the same request does not run again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(view_jobs(&ns).await.len(), 2);

    // Fixed source and an every-minute schedule on the view: the next due time runs and succeeds.
    ns.apply(
        &manifests(&data_file(), "  materialization: {shards: 2, backoffLimit: 0}\n").replace(
            "  ttl: 3d\n",
            "  ttl: 3d\n  materialization: {schedule: \"* * * * *\"}\n",
        ),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        let v = ns.get(Kind::FeatureView, VIEW).await.unwrap();
        if condition(&v, "Materialized").is_some_and(|c| c["status"] == "True") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled run succeeded within 150 s: {}\n{}",
            serde_json::to_string_pretty(&v.data["status"]).unwrap_or_default(),
            kubelet.dump(10)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let view = ns.get(Kind::FeatureView, VIEW).await.unwrap();
    let m = &view.data["status"]["materialization"];
    assert_eq!(m["schedule"], "* * * * *");
    assert!(m["nextRunAt"].is_string() && m["lastScheduleTime"].is_string(), "{m}");
    assert_eq!(m["lastRun"]["shards"], 2);
    let Some(FeastObject::FeatureView(v)) = reg
        .get("driver_stats", FeastKind::FeatureView, FEAST_VIEW)
        .await
        .unwrap()
    else {
        panic!("view not in the registry")
    };
    assert_eq!(v.meta.unwrap().materialization_intervals.len(), 1);
    // Never two runs in flight: every run's Jobs finished before the next started.
    let runs: std::collections::BTreeSet<String> = view_jobs(&ns)
        .await
        .iter()
        .filter_map(|j| j.metadata.labels.as_ref()?.get("larder.dev/run").cloned())
        .collect();
    assert!(runs.len() >= 2, "{runs:?}");
    ns.delete_larder_resources().await;
    kubelet.shutdown().await;
    ns.remove(true).await;
    op.stop().await;
}
