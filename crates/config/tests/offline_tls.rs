//! TLS of PostgreSQL batch sources, from `offline_store` as Feast writes it
//! (`PostgreSQLOfflineStoreConfig`: `sslmode` defaults to `require`;
//! `sslrootcert_path`, `sslcert_path`, `sslkey_path`) to the offline
//! reader's connection, against the local server (`ssl = on`, self-signed
//! certificate for `localhost`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use larder_config::Settings;
use larder_model::types::FeatureType;
use larder_offline::{ReadSpec, SourceLocation, SourceSpec, read_latest};
use larder_protos::feast::types::value::Val;
use larder_testkit::PgDatabase;
use sqlx::{Connection, Executor, PgConnection};

/// 2024-01-01T00:00:00Z in ns.
const BASE_NS: i64 = 1_704_067_200_000_000_000;

fn untrusted_ca() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../online/tests/fixtures/untrusted-ca.pem")
}

/// A database with one row, dropped with the guard.
async fn database() -> PgDatabase {
    let mut admin = PgConnection::connect(larder_testkit::PG_ADMIN_URL).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&mut admin).await.unwrap();
    assert_eq!(ssl, "on", "these tests need `ssl = on` on the local PostgreSQL server");
    let db = PgDatabase::create("larder_cfg_tls").await;
    let mut conn = PgConnection::connect(db.url()).await.unwrap();
    conn.execute(
        "CREATE TABLE t (driver_id BIGINT, event_timestamp TIMESTAMPTZ); INSERT INTO t VALUES (1, '2024-01-01T01:00Z')",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();
    db
}

/// The offline URL `offline_store` yields (relative paths against `/repo`).
fn url(offline: &str) -> String {
    Settings {
        project: None,
        registry: None,
        online_store: None,
        offline_store: Some(serde_yaml::from_str(offline).unwrap()),
        auth: None,
        base_dir: PathBuf::from("/repo"),
    }
    .offline_postgres_url()
    .unwrap()
    .unwrap()
}

/// Read the source through that URL; the one feature says whether the
/// reader's own session runs over TLS (`pg_stat_ssl`).
async fn read_tls(url: String) -> Result<bool, String> {
    let source = SourceSpec {
        name: "tls_probe".into(),
        location: SourceLocation::Postgres {
            url,
            table: None,
            query: Some(
                "SELECT driver_id, event_timestamp, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS tls FROM t"
                    .into(),
            ),
        },
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: None,
        field_mapping: BTreeMap::new(),
    };
    let spec = ReadSpec::new(
        vec![("driver_id".into(), FeatureType::parse("Int64").unwrap())],
        vec![("tls".into(), FeatureType::parse("Bool").unwrap())],
        BASE_NS,
        BASE_NS + 24 * 3_600_000_000_000,
    );
    let mut rx = read_latest(source, spec);
    let mut rows = Vec::new();
    while let Some(b) = rx.recv().await {
        rows.extend(b.map_err(|e| e.to_string())?.rows);
    }
    assert_eq!(rows.len(), 1);
    match &rows[0].values[0].val {
        Some(Val::BoolVal(b)) => Ok(*b),
        other => panic!("tls is {other:?}"),
    }
}

#[tokio::test]
async fn feast_default_require_reaches_the_offline_connection() {
    let db = database().await;
    let keys = format!(
        "{{type: postgres, host: 127.0.0.1, port: 5432, database: {}, user: root",
        db.name()
    );
    assert_eq!(read_tls(url(&format!("{keys}}}"))).await, Ok(true));
    assert_eq!(read_tls(url(&format!("{keys}, sslmode: disable}}"))).await, Ok(false));
    // The url form: Feast's default when the URL has no sslmode, else the URL's.
    let plain = db.postgresql_url();
    assert_eq!(
        read_tls(url(&format!("{{type: postgres, url: '{plain}'}}"))).await,
        Ok(true)
    );
    assert_eq!(
        read_tls(url(&format!("{{type: postgres, url: '{plain}?sslmode=disable'}}"))).await,
        Ok(false)
    );
}

#[tokio::test]
async fn offline_certificate_paths_reach_the_connection() {
    let db = database().await;
    let keys = format!(
        "{{type: postgres, host: 127.0.0.1, port: 5432, database: {}, user: root",
        db.name()
    );
    let ca = untrusted_ca();

    let err = read_tls(url(&format!(
        "{keys}, sslmode: verify-full, sslrootcert_path: {}}}",
        ca.display()
    )))
    .await
    .unwrap_err();
    assert!(
        err.contains("cannot connect (sslmode=verify-full, sslrootcert=") && err.contains("certificate"),
        "{err}"
    );
    // libpq: require with a root certificate verifies the chain.
    let err = read_tls(url(&format!("{keys}, sslrootcert_path: {}}}", ca.display())))
        .await
        .unwrap_err();
    assert!(
        err.contains("sslmode=verify-ca") && err.contains("certificate"),
        "{err}"
    );

    let err = read_tls(url(&format!("{keys}, sslrootcert_path: certs/missing-ca.pem}}")))
        .await
        .unwrap_err();
    assert!(
        err.contains("sslrootcert /repo/certs/missing-ca.pem: cannot read"),
        "{err}"
    );
    let err = read_tls(url(&format!(
        "{keys}, sslcert_path: {}, sslkey_path: /nonexistent/larder/client.key}}",
        ca.display()
    )))
    .await
    .unwrap_err();
    assert!(err.contains("sslkey /nonexistent/larder/client.key"), "{err}");
}
