//! Feast 0.67 as the client: the SDK reads what `larder apply` wrote, and
//! `larder` reads what `feast apply` wrote, for SQL and file registries.

mod support;

use std::path::Path;

use larder_testkit::PgDatabase;
use serde_json::Value;
use support::*;

fn write_feature_store_yaml(dir: &Path, registry: &str) {
    let yaml = format!(
        "project: driver_stats\nprovider: local\nregistry:\n{registry}\nonline_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    );
    std::fs::write(dir.join("feature_store.yaml"), yaml).unwrap();
}

fn check_example(python: &Path, repo_dir: &Path) {
    let example = example_dir();
    let out = feast_script(
        python,
        &[
            "e2e/feast/check_registry.py",
            "--repo-dir",
            repo_dir.to_str().unwrap(),
            "--expect",
            "e2e/feast/expectations/driver_stats.json",
            "--var",
            &format!("EXAMPLE_DIR={}", example.display()),
        ],
    );
    assert_success("check_registry.py", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK "));
}

#[tokio::test]
async fn feast_reads_larder_postgres_registry() {
    let Some(python) = feast_python() else { return };
    let db = PgDatabase::create("larder_cli").await;
    let manifests = example_dir().join("manifests");
    larder_ok(&[
        "--registry",
        &db.postgresql_url(),
        "apply",
        "-f",
        manifests.to_str().unwrap(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    // schema_mode: verify proves all 14 tables exist without letting the SDK create any.
    write_feature_store_yaml(
        dir.path(),
        &format!(
            "  registry_type: sql\n  path: {}\n  cache_ttl_seconds: 5\n  schema_mode: verify",
            db.feast_url()
        ),
    );
    check_example(&python, dir.path());
}

#[tokio::test]
async fn feast_reads_larder_sqlite_registry() {
    let Some(python) = feast_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("registry.db").display());
    let manifests = example_dir().join("manifests");
    larder_ok(&["--registry", &url, "apply", "-f", manifests.to_str().unwrap()]);
    write_feature_store_yaml(
        dir.path(),
        &format!("  registry_type: sql\n  path: {url}\n  schema_mode: verify"),
    );
    check_example(&python, dir.path());
}

#[tokio::test]
async fn feast_reads_larder_file_registry() {
    let Some(python) = feast_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.pb");
    let manifests = example_dir().join("manifests");
    larder_ok(&[
        "--registry",
        path.to_str().unwrap(),
        "apply",
        "-f",
        manifests.to_str().unwrap(),
    ]);
    write_feature_store_yaml(
        dir.path(),
        &format!("  registry_type: file\n  path: {}", path.display()),
    );
    check_example(&python, dir.path());
}

fn json(registry: &str, args: &[&str]) -> Value {
    let mut all = vec!["--registry", registry, "--project", "growth"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&larder_ok(&all)).expect("larder prints JSON")
}

/// What `feast apply` of e2e/feast/feast_repo stored, as `larder` shows it.
fn check_growth(registry: &str, repo_dir: &Path) {
    let entities = json(registry, &["ls", "entities"]);
    assert_eq!(
        entities.as_array().unwrap().len(),
        1,
        "__dummy stays hidden: {entities}"
    );
    let e = &entities[0];
    assert_eq!(e["metadata"]["name"], "customer");
    assert_eq!(e["spec"]["joinKey"], "customer_id");
    assert_eq!(e["spec"]["valueType"], "String");
    assert_eq!(e["spec"]["description"], "A customer");

    let fv = json(registry, &["get", "featureview", "customer_profile"]);
    assert_eq!(fv["kind"], "FeatureView");
    assert_eq!(fv["metadata"]["name"], "customer-profile");
    assert_eq!(fv["spec"]["name"], "customer_profile");
    assert_eq!(fv["spec"]["entities"], serde_json::json!(["customer"]));
    assert_eq!(fv["spec"]["source"], "customer-source");
    assert_eq!(fv["spec"]["ttl"], "2h");
    assert_eq!(fv["spec"]["tags"]["owner"], "growth");
    let features: Vec<(String, String)> = fv["spec"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        features,
        vec![
            ("avg_order".to_string(), "Float64".to_string()),
            ("orders".to_string(), "Int64".to_string()),
            ("segment".to_string(), "String".to_string())
        ]
    );

    let sources = json(registry, &["ls", "datasources"]);
    assert_eq!(sources.as_array().unwrap().len(), 1);
    assert_eq!(sources[0]["spec"]["name"], "customer_source");
    assert_eq!(sources[0]["spec"]["timestampField"], "event_timestamp");
    let path = repo_dir.join("data/customer_profile.parquet");
    assert_eq!(sources[0]["spec"]["file"]["path"], path.to_str().unwrap());

    let services = json(registry, &["ls", "featureservices"]);
    assert_eq!(services[0]["spec"]["name"], "customer_service");
    assert_eq!(services[0]["spec"]["features"][0]["view"], "customer-profile");
    assert_eq!(
        services[0]["spec"]["features"][0]["features"],
        serde_json::json!(["avg_order"])
    );

    let perms = json(registry, &["ls", "permissions"]);
    assert_eq!(perms[0]["metadata"]["name"], "reader");
    assert_eq!(perms[0]["spec"]["types"], serde_json::json!(["FeatureView"]));
    assert_eq!(perms[0]["spec"]["actions"], serde_json::json!(["DESCRIBE"]));
    assert_eq!(perms[0]["spec"]["policy"]["roles"], serde_json::json!(["analyst"]));

    let projects = json(registry, &["ls", "projects"]);
    assert_eq!(projects[0]["spec"]["project"], "growth");

    // The table view works on Feast's objects too.
    let table = larder_ok(&["--registry", registry, "--project", "growth", "ls", "featureviews"]);
    assert!(table.contains("customer_profile") && table.contains("7200s"), "{table}");
}

#[tokio::test]
async fn larder_reads_feast_postgres_registry() {
    let Some(python) = feast_python() else { return };
    let db = PgDatabase::create("larder_cli").await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("growth");
    let out = feast_script(
        &python,
        &[
            "e2e/feast/run_feast_apply.py",
            repo.to_str().unwrap(),
            "sql",
            &db.feast_url(),
        ],
    );
    assert_success("feast apply", &out);
    check_growth(&db.postgresql_url(), &repo);
}

#[tokio::test]
async fn larder_reads_feast_file_registry() {
    let Some(python) = feast_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("growth");
    let out = feast_script(
        &python,
        &[
            "e2e/feast/run_feast_apply.py",
            repo.to_str().unwrap(),
            "file",
            "data/registry.pb",
        ],
    );
    assert_success("feast apply", &out);
    check_growth(repo.join("data/registry.pb").to_str().unwrap(), &repo);
}
