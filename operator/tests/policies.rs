//! FeatureStore policies, resources the model cannot parse, and the
//! operator's HTTP endpoints, against a real API server and a real
//! PostgreSQL registry.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use larder_model::Kind;
use larder_model::feast::{FeastKind, FeastObject};
use larder_operator::operator::{Config, Status, run};
use larder_testkit::SqliteFile;
use support::{
    RunningOperator, eventually, registry, registry_names, samples, setup, sqlite_tables, with_sqlite_online,
};

#[tokio::test]
async fn exclusive_prunes_undeclared_objects_and_delete_drops_the_project() {
    let online = SqliteFile::new("online.db");
    let Some((ns, db)) = setup("op-policy", None).await else {
        return;
    };
    let reg = registry(&db).await;
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(1));
    let manifests = with_sqlite_online(&samples(), online.path())
        .replace("objectPolicy: Shared", "objectPolicy: Exclusive")
        .replace("deletionPolicy: Retain", "deletionPolicy: Delete");
    ns.apply(&manifests).await.unwrap();
    for (kind, name) in [
        (Kind::FeatureStore, "driver-stats"),
        (Kind::FeatureView, "driver-hourly-stats"),
        (Kind::FeatureService, "driver-activity"),
    ] {
        ns.wait_condition(kind, name, "Ready", true).await;
    }
    // Someone (feast apply, say) adds an entity no resource declares: Exclusive removes it.
    let stray = larder_testkit::objects::entity("stray", "stray_id");
    // Written (the operator may prune it at once: the store reconciles on every change).
    let outcome = reg.apply("driver_stats", FeastObject::Entity(stray)).await.unwrap();
    assert_eq!(outcome, larder_registry::ApplyOutcome::Created);
    eventually(Duration::from_secs(30), "the stray entity pruned", || {
        let reg = reg.clone();
        async move {
            !registry_names(reg.as_ref(), FeastKind::Entity)
                .await
                .contains(&"stray".to_string())
        }
    })
    .await;
    // Declared objects stay.
    assert_eq!(
        registry_names(reg.as_ref(), FeastKind::Entity).await,
        vec!["driver".to_string()]
    );
    assert_eq!(
        registry_names(reg.as_ref(), FeastKind::FeatureView).await,
        vec!["driver_hourly_stats".to_string()]
    );

    // deletionPolicy Delete: deleting the namespace drops the project and its tables.
    ns.remove(true).await;
    let projects: Vec<String> = reg
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p.spec.map(|s| s.name))
        .collect();
    assert!(!projects.contains(&"driver_stats".to_string()), "{projects:?}");
    assert!(
        sqlite_tables(online.path()).is_empty(),
        "{:?}",
        sqlite_tables(online.path())
    );
    op.stop().await;
}

#[tokio::test]
async fn an_unparsable_resource_is_reported_and_the_others_still_reconcile() {
    let online = SqliteFile::new("online.db");
    let Some((ns, db)) = setup("op-unparsable", None).await else {
        return;
    };
    let reg = registry(&db).await;
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    // The schema and CEL accept this TTL's shape, but it overflows: only the model's parser sees it.
    ns.apply(
        "apiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: forever}\nspec:\n  entities: [driver]\n  source: driver-stats-source\n  ttl: 99999999999999999d\n  features: [{name: x, type: Int64}]\n",
    )
    .await
    .unwrap();
    ns.apply(&with_sqlite_online(&samples(), online.path())).await.unwrap();
    let c = ns.wait_condition(Kind::FeatureView, "forever", "Ready", false).await;
    assert_eq!(c["reason"], "InvalidSpec", "{c}");
    assert!(c["message"].as_str().unwrap().contains("spec.ttl"), "{c}");
    // The watch of FeatureViews is intact: the valid view and everything else become ready.
    ns.wait_condition(Kind::FeatureView, "driver-hourly-stats", "Ready", true)
        .await;
    ns.wait_condition(Kind::FeatureService, "driver-activity", "Ready", true)
        .await;
    assert_eq!(
        registry_names(reg.as_ref(), FeastKind::FeatureView).await,
        vec!["driver_hourly_stats".to_string()]
    );
    // Fixing it heals it.
    ns.apply(
        "apiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: forever}\nspec:\n  entities: [driver]\n  source: driver-stats-source\n  ttl: 30d\n  features: [{name: x, type: Int64}]\n",
    )
    .await
    .unwrap();
    ns.wait_condition(Kind::FeatureView, "forever", "Ready", true).await;
    assert!(
        registry_names(reg.as_ref(), FeastKind::FeatureView)
            .await
            .contains(&"forever".to_string())
    );
    // Removed while the operator runs, so it can release the finalizers.
    ns.remove(true).await;
    op.stop().await;
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

// Multi-threaded: the test's blocking HTTP reads must not starve the server it talks to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_are_served() {
    let online = SqliteFile::new("online.db");
    let Some((ns, _db)) = setup("op-metrics", None).await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let status = Status::default();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        namespaces: vec![ns.name.clone()],
        metrics_addr: Some(format!("127.0.0.1:{port}").parse().unwrap()),
        ..Config::default()
    };
    let handle = tokio::spawn(run(ns.client.clone(), config, status.clone(), async move {
        let _ = rx.await;
    }));
    eventually(Duration::from_secs(20), "/healthz answers", || async move {
        http_get(port, "/healthz").is_some_and(|(c, b)| c == 200 && b.contains("ok"))
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "/readyz is ready once the caches synced",
        || async move { http_get(port, "/readyz").is_some_and(|(c, _)| c == 200) },
    )
    .await;
    ns.apply(&with_sqlite_online(&samples(), online.path())).await.unwrap();
    for (kind, name) in [
        (Kind::Entity, "driver"),
        (Kind::FeatureView, "driver-hourly-stats"),
        (Kind::FeatureService, "driver-activity"),
    ] {
        ns.wait_condition(kind, name, "Ready", true).await;
    }
    let (code, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    for needle in [
        "larder_operator_reconciles_total{kind=\"FeatureView\"}",
        "larder_operator_registry_writes_total{kind=\"FeatureView\"} 1",
        "larder_operator_reconcile_duration_seconds_bucket",
        "larder_operator_leader 1",
    ] {
        assert!(body.contains(needle), "{needle} not in /metrics:\n{body}");
    }
    // Removed while the operator runs, so it can release the finalizers.
    ns.remove(true).await;
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    // Gracefully stopped: the endpoints are gone too.
    eventually(Duration::from_secs(10), "the metrics listener closed", || async move {
        http_get(port, "/healthz").is_none()
    })
    .await;
}
