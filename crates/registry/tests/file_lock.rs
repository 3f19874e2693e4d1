//! The file backend refuses a second concurrent writer and never leaves a
//! partial file.

mod common;

use std::fs::OpenOptions;

use common::{Backend, TestRegistry};
use larder_model::feast::FeastKind;
use larder_registry::Registry;
use larder_registry::RegistryError;
use larder_registry::file::FileRegistry;
use larder_testkit::objects::{IntoObject, entity, ts, view};

#[tokio::test]
async fn second_writer_gets_a_clear_error() {
    let t = TestRegistry::new(Backend::File).await;
    let reg = t.open().await;
    reg.apply("demo", entity("a", "a_id").object()).await.unwrap();
    let before = std::fs::read(&t.location).unwrap();

    // Another writer holds the lock.
    let lock = OpenOptions::new()
        .write(true)
        .open(format!("{}.lock", t.location))
        .unwrap();
    lock.lock().unwrap();
    let err = reg.apply("demo", entity("b", "b_id").object()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked by another writer"));
    assert_eq!(std::fs::read(&t.location).unwrap(), before, "file untouched");
    lock.unlock().unwrap();

    reg.apply("demo", entity("b", "b_id").object()).await.unwrap();
    assert_eq!(reg.list("demo", FeastKind::Entity).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_never_corrupt_the_file() {
    let t = TestRegistry::new(Backend::File).await;
    let path = std::path::PathBuf::from(&t.location);
    FileRegistry::open(&path).unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let reg = FileRegistry::open(&path).unwrap();
            let (mut ok, mut locked) = (0, 0);
            for i in 0..40 {
                match reg
                    .apply("demo", view(&format!("w{w}_{i}")).description("x").object())
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(RegistryError::Locked { .. }) => locked += 1,
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            (ok, locked)
        }));
    }
    let mut ok_total = 0;
    for task in tasks {
        let (ok, _locked) = task.await.unwrap();
        ok_total += ok;
    }
    // Every write that reported success is in the file, and the file decodes.
    let reg = FileRegistry::open(&path).unwrap();
    let views = reg.list("demo", FeastKind::FeatureView).await.unwrap();
    assert_eq!(views.len(), ok_total);
    assert!(ok_total > 0);
}

/// Writers in one process wait for each other instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_in_one_process_take_turns() {
    let t = TestRegistry::new(Backend::File).await;
    let reg = std::sync::Arc::new(FileRegistry::open(&std::path::PathBuf::from(&t.location)).unwrap());
    reg.apply("demo", view("stats").description("x").object())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10i64 {
                let s = w * 100 + i;
                reg.apply_materialization("demo", "stats", ts(s), ts(s + 1))
                    .await
                    .expect("no Locked error in-process");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let Some(larder_model::feast::FeastObject::FeatureView(v)) =
        reg.get("demo", FeastKind::FeatureView, "stats").await.unwrap()
    else {
        panic!()
    };
    assert_eq!(v.meta.unwrap().materialization_intervals.len(), 80);
}
