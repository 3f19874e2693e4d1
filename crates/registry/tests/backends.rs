//! The same behaviour on every backend: PostgreSQL, MariaDB, SQLite and file.

mod common;

use std::time::Duration;

use common::{Backend, TestRegistry};
use larder_model::feast::{FeastKind, FeastObject};
use larder_registry::cache::CachedRegistry;
use larder_registry::{ApplyOutcome, Registry};
use larder_testkit::objects::{IntoObject, entity, ts, view, view_source};

const ALL: [Backend; 4] = [Backend::Postgres, Backend::MySql, Backend::Sqlite, Backend::File];

async fn crud(backend: Backend) {
    let t = TestRegistry::new(backend).await;
    let reg = t.open().await;
    assert_eq!(
        reg.apply("demo", view_source().object()).await.unwrap(),
        ApplyOutcome::Created
    );
    assert_eq!(
        reg.apply("demo", entity("driver", "driver_id").object()).await.unwrap(),
        ApplyOutcome::Created
    );
    assert_eq!(
        reg.apply("demo", view("stats").description("a").object())
            .await
            .unwrap(),
        ApplyOutcome::Created
    );
    assert_eq!(
        reg.apply("demo", view("stats").description("a").object())
            .await
            .unwrap(),
        ApplyOutcome::Unchanged
    );

    // The project was created on first apply, with a project_uuid.
    let projects = reg.list_projects().await.unwrap();
    assert_eq!(projects.len(), 1, "{backend:?}");
    assert_eq!(projects[0].spec.as_ref().unwrap().name, "demo");
    let md = reg.list_project_metadata("demo").await.unwrap();
    assert_eq!(md.len(), 1);
    assert_eq!(md[0].project_uuid.len(), 36);

    let first = reg.get("demo", FeastKind::FeatureView, "stats").await.unwrap().unwrap();
    let created = first.created().unwrap();
    assert_eq!(first.project(), "demo");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        reg.apply("demo", view("stats").description("b").object())
            .await
            .unwrap(),
        ApplyOutcome::Updated
    );
    let FeastObject::FeatureView(second) = reg.get("demo", FeastKind::FeatureView, "stats").await.unwrap().unwrap()
    else {
        panic!("not a view")
    };
    let meta = second.meta.unwrap();
    assert_eq!(
        meta.created_timestamp,
        Some(created),
        "{backend:?}: created_timestamp kept"
    );
    assert!(
        meta.last_updated_timestamp.unwrap().nanos != created.nanos
            || meta.last_updated_timestamp.unwrap().seconds > created.seconds
    );
    assert_eq!(second.spec.unwrap().description, "b");

    // Other projects are isolated.
    assert!(
        reg.get("other", FeastKind::FeatureView, "stats")
            .await
            .unwrap()
            .is_none()
    );
    assert!(reg.list("other", FeastKind::Entity).await.unwrap().is_empty());
    reg.apply("other", entity("driver", "id2").object()).await.unwrap();
    assert_eq!(reg.list("demo", FeastKind::Entity).await.unwrap().len(), 1);
    assert_eq!(reg.list_projects().await.unwrap().len(), 2);

    // Materialization intervals survive a re-apply of the definition.
    reg.apply_materialization("demo", "stats", ts(100), ts(200))
        .await
        .unwrap();
    reg.apply("demo", view("stats").description("c").object())
        .await
        .unwrap();
    let FeastObject::FeatureView(v) = reg.get("demo", FeastKind::FeatureView, "stats").await.unwrap().unwrap() else {
        panic!()
    };
    let m = v.meta.unwrap();
    assert_eq!(m.materialization_intervals.len(), 1, "{backend:?}");
    assert_eq!(m.state, 4);
    let missing = reg
        .apply_materialization("demo", "nope", ts(1), ts(2))
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("nope does not exist in project demo"),
        "{missing}"
    );

    // A name may be used by only one kind of view.
    let odfv = FeastObject::OnDemandFeatureView(larder_protos::feast::core::OnDemandFeatureView {
        spec: Some(larder_protos::feast::core::OnDemandFeatureViewSpec {
            name: "stats".into(),
            ..Default::default()
        }),
        meta: None,
    });
    assert!(
        reg.apply("demo", odfv)
            .await
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );

    // Infra round trip.
    let infra = larder_protos::feast::core::Infra {
        infra_objects: vec![larder_protos::feast::core::InfraObject {
            infra_object_class_type: "x".into(),
            ..Default::default()
        }],
    };
    reg.update_infra("demo", infra.clone()).await.unwrap();
    assert_eq!(reg.get_infra("demo").await.unwrap(), infra);

    // Snapshot holds both projects' objects.
    let snap = reg.snapshot().await.unwrap();
    assert_eq!(snap.feature_views.len(), 1);
    assert_eq!(snap.entities.len(), 2);
    assert_eq!(snap.projects.len(), 2);

    // Delete.
    assert!(reg.delete("demo", FeastKind::FeatureView, "stats").await.unwrap());
    assert!(!reg.delete("demo", FeastKind::FeatureView, "stats").await.unwrap());
    assert!(
        reg.get("demo", FeastKind::FeatureView, "stats")
            .await
            .unwrap()
            .is_none()
    );
    assert!(reg.delete("other", FeastKind::Project, "other").await.unwrap());
    assert!(reg.list("other", FeastKind::Entity).await.unwrap().is_empty());
    assert_eq!(reg.list_projects().await.unwrap().len(), 1);

    reg.teardown().await.unwrap();
}

#[tokio::test]
async fn crud_postgres() {
    crud(Backend::Postgres).await;
}
#[tokio::test]
async fn crud_mysql() {
    crud(Backend::MySql).await;
}
#[tokio::test]
async fn crud_sqlite() {
    crud(Backend::Sqlite).await;
}
#[tokio::test]
async fn crud_file() {
    crud(Backend::File).await;
}

/// 8 writers, each with its own connection pool, apply 50 views each.
async fn concurrent_views(backend: Backend) {
    let t = TestRegistry::new(backend).await;
    t.open()
        .await
        .apply("demo", entity("driver", "driver_id").object())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let reg = t.open().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                reg.apply("demo", view(&format!("w{w}_v{i}")).description("x").object())
                    .await
                    .expect("apply under concurrency");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let views = t.open().await.list("demo", FeastKind::FeatureView).await.unwrap();
    assert_eq!(views.len(), 400, "{backend:?}: every view survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_views_postgres() {
    concurrent_views(Backend::Postgres).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_views_mysql() {
    concurrent_views(Backend::MySql).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_views_sqlite() {
    concurrent_views(Backend::Sqlite).await;
}

/// 8 writers append materialization intervals to one view: none is lost.
async fn concurrent_intervals(backend: Backend) {
    let t = TestRegistry::new(backend).await;
    t.open()
        .await
        .apply("demo", view("stats").description("x").object())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let reg = t.open().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..10i64 {
                let start = w * 1000 + i * 10;
                reg.apply_materialization("demo", "stats", ts(start), ts(start + 10))
                    .await
                    .expect("append interval");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let FeastObject::FeatureView(v) = t
        .open()
        .await
        .get("demo", FeastKind::FeatureView, "stats")
        .await
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    let mut starts: Vec<i64> = v
        .meta
        .unwrap()
        .materialization_intervals
        .iter()
        .map(|i| i.start_time.unwrap().seconds)
        .collect();
    starts.sort();
    let mut expected: Vec<i64> = (0..8).flat_map(|w| (0..10).map(move |i| w * 1000 + i * 10)).collect();
    expected.sort();
    assert_eq!(starts, expected, "{backend:?}: every interval survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_intervals_postgres() {
    concurrent_intervals(Backend::Postgres).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_intervals_mysql() {
    concurrent_intervals(Backend::MySql).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_intervals_sqlite() {
    concurrent_intervals(Backend::Sqlite).await;
}

/// Cached reads do not see another writer's change until the TTL passes
/// (then the background refresh brings it); they see their own writes at once.
#[tokio::test]
async fn cache_ttl() {
    for backend in ALL {
        let t = TestRegistry::new(backend).await;
        let writer = t.open().await;
        let cached = CachedRegistry::new(t.open().await, Duration::from_millis(300));
        writer.apply("demo", entity("a", "a_id").object()).await.unwrap();
        assert_eq!(cached.list("demo", FeastKind::Entity).await.unwrap().len(), 1);
        writer.apply("demo", entity("b", "b_id").object()).await.unwrap();
        assert_eq!(
            cached.list("demo", FeastKind::Entity).await.unwrap().len(),
            1,
            "{backend:?}: served from cache"
        );
        assert_eq!(
            cached.uncached().list("demo", FeastKind::Entity).await.unwrap().len(),
            2
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cached.list("demo", FeastKind::Entity).await.unwrap().len() != 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "{backend:?}: not refreshed after the TTL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cached.apply("demo", entity("c", "c_id").object()).await.unwrap();
        assert_eq!(
            cached.list("demo", FeastKind::Entity).await.unwrap().len(),
            3,
            "{backend:?}: own write visible"
        );
        assert!(cached.get("demo", FeastKind::Entity, "c").await.unwrap().is_some());
        assert!(cached.get("demo", FeastKind::Entity, "zz").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn teardown_removes_tables() {
    for backend in [Backend::Postgres, Backend::MySql, Backend::Sqlite] {
        let t = TestRegistry::new(backend).await;
        let reg = t.open().await;
        reg.apply("demo", entity("a", "a_id").object()).await.unwrap();
        reg.teardown().await.unwrap();
        // Reconnecting recreates empty tables.
        assert!(
            t.open().await.list("demo", FeastKind::Entity).await.unwrap().is_empty(),
            "{backend:?}"
        );
    }
}
