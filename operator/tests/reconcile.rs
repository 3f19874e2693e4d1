//! Reconcile flows against a real API server with a real PostgreSQL
//! registry and SQLite / Redis online stores; the operator runs in-process
//! and watches only the test's namespace.

mod support;

use std::time::Duration;

use larder_model::Kind;
use larder_model::feast::{FeastKind, FeastObject};
use larder_operator::operator::LeaderSettings;
use larder_registry::Registry;
use larder_testkit::{PgDatabase, RedisDb, SqliteFile};
use sqlx::Row;
use support::{
    PASSWORD, RunningOperator, SAMPLE_RESOURCES, TestNs, cluster, eventually, feast_check_registry, feast_python,
    registry, samples, setup, sqlite_tables, wait_all_ready, with_sqlite_online,
};

async fn view(reg: &dyn Registry, name: &str) -> Option<larder_protos::feast::core::FeatureView> {
    match reg.get("driver_stats", FeastKind::FeatureView, name).await.unwrap() {
        Some(FeastObject::FeatureView(v)) => Some(v),
        _ => None,
    }
}

#[tokio::test]
async fn samples_become_ready_and_feast_reads_every_object() {
    let redis = RedisDb::lease();
    let Some((ns, db)) = setup("op-samples", Some(&redis)).await else {
        return;
    };
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    ns.apply(&samples()).await.expect("apply samples");
    wait_all_ready(&ns).await;
    // `kubectl wait` works on our conditions. A fresh discovery cache: a shared one may
    // predate the CRDs (kubectl then does not know the `larder` category).
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("kubectl")
        .args([
            "wait",
            "--for=condition=Ready",
            "larder",
            "--all",
            "-n",
            &ns.name,
            "--timeout=30s",
            "--cache-dir",
        ])
        .arg(cache.path())
        .output()
        .expect("kubectl wait");
    assert!(
        out.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = ns.get(Kind::FeatureStore, "driver-stats").await.unwrap();
    let status = &store.data["status"];
    for c in ["RegistryReady", "OnlineStoreReady", "Ready"] {
        assert_eq!(
            support::condition(&store, c).unwrap()["status"],
            "True",
            "{c}: {status}"
        );
    }
    assert_eq!(status["onlineStore"], "redis");
    assert!(
        status["registry"].as_str().unwrap().contains("root:***@127.0.0.1"),
        "{status}"
    );
    let events = kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(ns.client.clone(), &ns.name)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(!events.items.is_empty());
    for o in std::iter::once(serde_json::to_string(&events).unwrap()).chain(
        futures_util::future::join_all(SAMPLE_RESOURCES.iter().map(|(k, n)| ns.get(*k, n)))
            .await
            .into_iter()
            .map(|o| serde_json::to_string(&o.unwrap().data).unwrap()),
    ) {
        assert!(!o.contains(PASSWORD), "the registry password leaked: {o}");
    }
    eventually(Duration::from_secs(30), "the store counts its objects", || {
        let ns = &ns;
        async move {
            let s = ns.get(Kind::FeatureStore, "driver-stats").await.unwrap().data["status"]["objects"].clone();
            s["featureViews"] == 1
                && s["dataSources"] == 2
                && s["entities"] == 1
                && s["featureServices"] == 1
                && s["permissions"] == 1
        }
    })
    .await;
    let v = ns.get(Kind::FeatureView, "driver-hourly-stats").await.unwrap();
    assert_eq!(v.data["status"]["observedGeneration"], v.metadata.generation.unwrap());
    assert_eq!(v.data["status"]["featureCount"], 10);
    assert_eq!(v.data["status"]["project"], "driver_stats");
    assert!(
        v.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&larder_operator::FINALIZER.to_string())
    );
    if let Some(python) = feast_python() {
        let out = feast_check_registry(
            &python,
            &db.feast_url(),
            "e2e/feast/expectations/driver_stats.json",
            &[("EXAMPLE_DIR", "/var/lib/larder/examples/driver-stats".into())],
        );
        assert!(out.contains("OK "), "{out}");
    }
    // Removed while the operator runs, so it can release the finalizers.
    ns.remove(true).await;
    op.stop().await;
}

#[tokio::test]
async fn changes_flow_to_the_registry_and_missing_references_heal() {
    let online = SqliteFile::new("online.db");
    let Some((ns, db)) = setup("op-flow", None).await else {
        return;
    };
    let reg = registry(&db).await;
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    ns.apply(&with_sqlite_online(&samples(), online.path())).await.unwrap();
    wait_all_ready(&ns).await;
    assert!(sqlite_tables(online.path()).contains(&"driver_stats_driver_hourly_stats".to_string()));

    // A feature added: the registry follows and observedGeneration moves.
    let mut v = ns.get(Kind::FeatureView, "driver-hourly-stats").await.unwrap();
    let before = v.metadata.generation.unwrap();
    let mut spec = v.data["spec"].clone();
    spec["features"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "cancel_rate", "type": "Float32"}));
    ns.apply_value(
        serde_json::json!({"apiVersion": "larder.dev/v1alpha1", "kind": "FeatureView",
        "metadata": {"name": "driver-hourly-stats"}, "spec": spec}),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "the new feature in the registry", || {
        let reg = reg.clone();
        async move {
            view(reg.as_ref(), "driver_hourly_stats")
                .await
                .is_some_and(|v| v.spec.unwrap().features.iter().any(|f| f.name == "cancel_rate"))
        }
    })
    .await;
    eventually(Duration::from_secs(30), "observedGeneration follows", || {
        let ns = &ns;
        async move {
            let v = ns.get(Kind::FeatureView, "driver-hourly-stats").await.unwrap();
            v.data["status"]["observedGeneration"] == before + 1 && v.data["status"]["featureCount"] == 11
        }
    })
    .await;

    // A view whose entity is missing: not ready, named, nothing written.
    ns.apply(
        "apiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: rider-stats}\nspec:\n  name: rider_stats\n  entities: [rider]\n  source: driver-stats-source\n  features: [{name: rides, type: Int64}]\n",
    )
    .await
    .unwrap();
    let c = ns
        .wait_condition(Kind::FeatureView, "rider-stats", "Ready", false)
        .await;
    assert_eq!(c["reason"], "EntityNotFound", "{c}");
    assert!(c["message"].as_str().unwrap().contains("rider"), "{c}");
    assert!(view(reg.as_ref(), "rider_stats").await.is_none());
    v = ns.get(Kind::FeatureView, "rider-stats").await.unwrap();
    let untouched_generation = v.metadata.generation;
    // The entity appears: the view heals without being touched.
    ns.apply("apiVersion: larder.dev/v1alpha1\nkind: Entity\nmetadata: {name: rider}\nspec: {joinKey: rider_id, valueType: String}\n")
        .await
        .unwrap();
    ns.wait_condition(Kind::FeatureView, "rider-stats", "Ready", true).await;
    assert!(view(reg.as_ref(), "rider_stats").await.is_some());
    assert_eq!(
        ns.get(Kind::FeatureView, "rider-stats")
            .await
            .unwrap()
            .metadata
            .generation,
        untouched_generation
    );

    // Deleting a view removes its registry object and its table, then releases the finalizer.
    ns.delete(Kind::FeatureView, "rider-stats").await;
    eventually(Duration::from_secs(30), "rider-stats gone", || {
        let ns = &ns;
        async move { ns.get(Kind::FeatureView, "rider-stats").await.is_none() }
    })
    .await;
    assert!(view(reg.as_ref(), "rider_stats").await.is_none());
    assert!(!sqlite_tables(online.path()).contains(&"driver_stats_rider_stats".to_string()));
    assert!(sqlite_tables(online.path()).contains(&"driver_stats_driver_hourly_stats".to_string()));

    // Deleting the namespace cleans up every object (the store waits for its resources).
    op_namespace_teardown(&ns, &reg).await;
    assert!(!sqlite_tables(online.path()).contains(&"driver_stats_driver_hourly_stats".to_string()));
    op.stop().await;
}

async fn op_namespace_teardown(ns: &TestNs, reg: &std::sync::Arc<dyn Registry>) {
    ns.remove(true).await;
    for kind in [
        FeastKind::FeatureView,
        FeastKind::FeatureService,
        FeastKind::Entity,
        FeastKind::DataSource,
        FeastKind::Permission,
    ] {
        let left: Vec<String> = reg
            .list("driver_stats", kind)
            .await
            .unwrap()
            .iter()
            .map(|o| o.name().to_string())
            .filter(|n| !n.starts_with("__"))
            .collect();
        assert!(
            left.is_empty(),
            "{kind} left in the registry after namespace deletion: {left:?}"
        );
    }
}

#[tokio::test]
async fn registry_outage_is_reported_and_recovers() {
    let online = SqliteFile::new("online.db");
    let Some((ns, db)) = setup("op-outage", None).await else {
        return;
    };
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(1));
    ns.apply(&with_sqlite_online(&samples(), online.path())).await.unwrap();
    ns.wait_condition(Kind::FeatureStore, "driver-stats", "RegistryReady", true)
        .await;
    let admin = sqlx::PgPool::connect(larder_testkit::PG_ADMIN_URL).await.unwrap();
    let name = db.name().to_string();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&admin)
        .await
        .unwrap();
    let c = ns
        .wait_condition(Kind::FeatureStore, "driver-stats", "RegistryReady", false)
        .await;
    assert_eq!(c["reason"], "RegistryUnavailable", "{c}");
    assert!(
        !c.to_string().contains(PASSWORD),
        "the registry password leaked into a condition: {c}"
    );
    let ready = support::condition(&ns.get(Kind::FeatureStore, "driver-stats").await.unwrap(), "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"
    )))
    .execute(&admin)
    .await
    .unwrap();
    ns.wait_condition(Kind::FeatureStore, "driver-stats", "RegistryReady", true)
        .await;
    ns.wait_condition(Kind::FeatureStore, "driver-stats", "Ready", true)
        .await;
    // Removed while the operator runs, so it can release the finalizers.
    ns.remove(true).await;
    op.stop().await;
}

/// (table, ctid, xmin) of every row of every registry table: any write
/// (insert, update, delete) changes this set.
async fn row_versions(db: &PgDatabase) -> Vec<(String, String, String)> {
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let mut out = Vec::new();
    for table in larder_registry::sql::ALL_TABLES {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT ctid::text AS c, xmin::text AS x FROM {table}"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        for r in rows {
            out.push((table.to_string(), r.get::<String, _>("c"), r.get::<String, _>("x")));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_restarted_operator_writes_nothing_for_unchanged_objects() {
    let online = SqliteFile::new("online.db");
    let Some((ns, db)) = setup("op-restart", None).await else {
        return;
    };
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    ns.apply(&with_sqlite_online(&samples(), online.path())).await.unwrap();
    wait_all_ready(&ns).await;
    assert!(op.registry_writes() >= 7, "first pass writes: {}", op.registry_writes());
    op.stop().await;
    let before = row_versions(&db).await;
    assert!(before.len() >= 7, "{before:?}");

    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    // Every resource is reconciled once after the restart (7 resources).
    eventually(Duration::from_secs(30), "a reconcile of every resource", || {
        let n = op.reconciles();
        async move { n >= 7 }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(op.registry_writes(), 0, "registry writes after a restart");
    assert_eq!(row_versions(&db).await, before, "registry rows changed after a restart");
    // Removed while the operator runs, so it can release the finalizers.
    ns.remove(true).await;
    op.stop().await;
}

#[tokio::test]
async fn two_replicas_elect_one_leader() {
    let Some(client) = cluster().await else { return };
    let ns = TestNs::create(&client, "op-leader").await;
    let leader = |id: &str| {
        RunningOperator::start_with(
            &client,
            &ns.name,
            Duration::from_secs(300),
            Some(LeaderSettings {
                namespace: ns.name.clone(),
                lease: "larder-operator-leader".into(),
                duration: Duration::from_secs(3),
            }),
            id,
        )
    };
    let a = leader("replica-a");
    let b = leader("replica-b");
    eventually(Duration::from_secs(20), "one leader", || {
        let one = a.leading() ^ b.leading();
        async move { one }
    })
    .await;
    // Stay that way over several renewal periods.
    for _ in 0..20 {
        assert!(a.leading() ^ b.leading(), "exactly one replica leads");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lease = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), &ns.name)
        .get("larder-operator-leader")
        .await
        .unwrap();
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    let leader_id = if a.leading() { "replica-a" } else { "replica-b" };
    assert_eq!(holder, leader_id, "the Lease names the leading replica");
    let (first, second) = if a.leading() { (a, b) } else { (b, a) };
    // The leader steps down (releasing the Lease): the other takes over.
    first.stop().await;
    eventually(Duration::from_secs(20), "the standby takes over", || {
        let l = second.leading();
        async move { l }
    })
    .await;
    second.stop().await;
    ns.remove(false).await;
}

#[tokio::test]
async fn drift_made_with_feast_apply_is_corrected_on_resync() {
    let online = SqliteFile::new("online.db");
    let Some((ns, db)) = setup("op-drift", None).await else {
        return;
    };
    let reg = registry(&db).await;
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(2));
    ns.apply(&with_sqlite_online(&samples(), online.path())).await.unwrap();
    wait_all_ready(&ns).await;
    let description = |reg: std::sync::Arc<dyn Registry>| async move {
        view(reg.as_ref(), "driver_hourly_stats")
            .await
            .map(|v| v.spec.unwrap().description)
            .unwrap_or_default()
    };
    assert_eq!(description(reg.clone()).await, "Hourly driver statistics");
    if let Some(python) = feast_python() {
        // Feast's own SDK rewrites the CR-owned view behind the operator's back.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("feature_store.yaml"),
            format!(
                "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: {}\n  cache_ttl_seconds: 0\nonline_store:\n  type: sqlite\n  path: online.db\nentity_key_serialization_version: 3\n",
                db.feast_url()
            ),
        )
        .unwrap();
        let script = "import sys\nfrom feast import FeatureStore\nfs = FeatureStore(repo_path=sys.argv[1])\nfv = fs.get_feature_view('driver_hourly_stats')\nfv.description = 'changed by feast apply'\nfs.apply([fv])\nprint('applied')\n";
        let out = std::process::Command::new(python)
            .env("TZ", "UTC")
            .args(["-c", script])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "feast apply: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        // Without Feast locally, change the registry the way it would.
        let mut v = view(reg.as_ref(), "driver_hourly_stats").await.unwrap();
        v.spec.as_mut().unwrap().description = "changed by feast apply".into();
        reg.apply("driver_stats", FeastObject::FeatureView(v)).await.unwrap();
    }
    eventually(Duration::from_secs(30), "the operator rewrites the view", || {
        let reg = reg.clone();
        async move { description(reg).await == "Hourly driver statistics" }
    })
    .await;
    // The correction is recorded as an event on the resource.
    let events = kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(ns.client.clone(), &ns.name);
    eventually(Duration::from_secs(10), "a DriftCorrected event", || {
        let events = events.clone();
        async move {
            events
                .list(&Default::default())
                .await
                .map(|l| l.items.iter().any(|e| e.reason.as_deref() == Some("DriftCorrected")))
                .unwrap_or(false)
        }
    })
    .await;
    // Removed while the operator runs, so it can release the finalizers.
    ns.remove(true).await;
    op.stop().await;
}
