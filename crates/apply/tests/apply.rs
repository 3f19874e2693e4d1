//! The apply workflow on a real SQLite registry and SQLite online store:
//! what it reports is what it did, re-applies write nothing, prune removes
//! registry objects and their tables, and bad manifests write nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use larder_apply::{Action, ApplyError, Desired};
use larder_model::feast::FeastKind;
use larder_model::{load, validate};
use larder_online::{OnlineStore, OnlineStoreConfig};
use larder_registry::{Registry, RegistryConfig};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/driver-stats/manifests")
}

struct Env {
    _dir: tempfile::TempDir,
    online_path: PathBuf,
    registry: Arc<dyn Registry>,
    online: Arc<dyn OnlineStore>,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("registry.db").display());
    let cfg = RegistryConfig::from_location(&url, Duration::ZERO, dir.path()).unwrap();
    let registry = larder_registry::open(&cfg).await.unwrap();
    let online_path = dir.path().join("online.db");
    let online = larder_online::open(&OnlineStoreConfig::Sqlite {
        path: online_path.clone(),
    })
    .await
    .unwrap();
    Env {
        _dir: dir,
        online_path,
        registry,
        online,
    }
}

fn desired(paths: &[PathBuf]) -> Result<Desired, ApplyError> {
    let catalog = validate::validate(load::load_paths(paths)?)?;
    Desired::from_catalog(&catalog, None)
}

fn online_tables(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn apply_reports_what_it_did_and_reapply_writes_nothing() {
    let e = env().await;
    let d = desired(&[example_dir()]).unwrap();
    assert_eq!(d.project, "driver_stats");
    let first = larder_apply::apply(e.registry.as_ref(), Some(e.online.as_ref()), d.clone(), false)
        .await
        .unwrap();
    assert_eq!(first.count(Action::Unchanged), 0, "{first:?}");
    assert!(first.count(Action::Create) >= 6, "{first:?}");
    assert_eq!(first.writes(), first.changes.len());
    assert_eq!(
        online_tables(&e.online_path),
        vec!["driver_stats_driver_hourly_stats".to_string()]
    );

    let again = larder_apply::apply(e.registry.as_ref(), Some(e.online.as_ref()), d, false)
        .await
        .unwrap();
    assert_eq!(again.writes(), 0, "{again:?}");
    assert_eq!(again.changes.len(), first.changes.len());
    assert!(
        again.summary().starts_with("0 created, 0 updated,"),
        "{}",
        again.summary()
    );
}

#[tokio::test]
async fn prune_deletes_undeclared_objects_and_their_tables() {
    let e = env().await;
    larder_apply::apply(
        e.registry.as_ref(),
        Some(e.online.as_ref()),
        desired(&[example_dir()]).unwrap(),
        false,
    )
    .await
    .unwrap();
    // Declare only the store, the entity and the sources: the view, the service and the permission go.
    let dir = example_dir();
    let keep: Vec<PathBuf> = ["feature-store.yaml", "driver.yaml", "sources.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let pruned = larder_apply::apply(
        e.registry.as_ref(),
        Some(e.online.as_ref()),
        desired(&keep).unwrap(),
        true,
    )
    .await
    .unwrap();
    let deleted: Vec<(FeastKind, String)> = pruned
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| (c.kind, c.name.clone()))
        .collect();
    assert!(
        deleted.contains(&(FeastKind::FeatureView, "driver_hourly_stats".into())),
        "{deleted:?}"
    );
    assert!(
        deleted.iter().any(|(k, _)| *k == FeastKind::FeatureService),
        "{deleted:?}"
    );
    assert!(
        e.registry
            .list("driver_stats", FeastKind::FeatureView)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(online_tables(&e.online_path).is_empty());
}

#[tokio::test]
async fn invalid_manifests_and_conflicting_projects_write_nothing() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: v}\nspec: {entities: [missing], source: nowhere, features: [{name: a, type: Int64}]}\n",
    )
    .unwrap();
    let err = desired(std::slice::from_ref(&bad)).unwrap_err();
    assert_eq!(err.label(), "InvalidSpec");
    assert!(err.to_string().contains("no Entity named \"missing\""), "{err}");

    let catalog = validate::validate(load::load_paths(&[example_dir()]).unwrap()).unwrap();
    let err = Desired::from_catalog(&catalog, Some("other")).unwrap_err();
    assert_eq!(err.label(), "InvalidProject");
    assert!(err.to_string().contains("declare project driver_stats"), "{err}");
    assert!(e.registry.list_projects().await.unwrap().is_empty());
}

#[tokio::test]
async fn teardown_and_delete_project_remove_tables_and_objects() {
    let e = env().await;
    larder_apply::apply(
        e.registry.as_ref(),
        Some(e.online.as_ref()),
        desired(&[example_dir()]).unwrap(),
        false,
    )
    .await
    .unwrap();
    assert!(
        larder_apply::delete_project(e.registry.as_ref(), Some(e.online.as_ref()), "driver_stats")
            .await
            .unwrap()
    );
    assert!(online_tables(&e.online_path).is_empty());
    assert!(
        e.registry
            .list("driver_stats", FeastKind::Entity)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !larder_apply::delete_project(e.registry.as_ref(), Some(e.online.as_ref()), "driver_stats")
            .await
            .unwrap()
    );
    larder_apply::teardown(e.registry.as_ref(), Some(e.online.as_ref()))
        .await
        .unwrap();
}
