//! TLS to PostgreSQL as Feast configures it (`PostgreSQLConfig`: `sslmode`
//! defaults to `require`; `sslrootcert_path`, `sslcert_path`, `sslkey_path`),
//! against the local server, which has `ssl = on` with a self-signed
//! certificate for `localhost` (Debian's snakeoil certificate).

use std::path::{Path, PathBuf};

use larder_online::OnlineStoreConfig;
use larder_online::postgres::{PostgresSettings, PostgresStore};
use sqlx::{Connection, PgConnection};

/// A CA certificate that signed nothing the server has.
fn untrusted_ca() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/untrusted-ca.pem")
}

/// The local maintenance database, from an `online_store` mapping as a
/// config file writes it (`extra` adds keys).
fn settings(extra: &str) -> PostgresSettings {
    let yaml = format!("{{type: postgres, host: 127.0.0.1, port: 5432, database: postgres, user: root{extra}}}");
    let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    match OnlineStoreConfig::from_feast(Some(&v), Path::new("/")).unwrap() {
        OnlineStoreConfig::Postgres(s) => s,
        other => panic!("not postgres: {other:?}"),
    }
}

/// Whether the session `settings` opens runs over TLS (`pg_stat_ssl`).
async fn session_uses_tls(settings: &PostgresSettings) -> Result<bool, String> {
    let opts = settings.connect_options().map_err(|e| e.to_string())?;
    let mut conn = PgConnection::connect_with(&opts).await.map_err(|e| e.to_string())?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(ssl)
}

async fn server_has_ssl() {
    let mut conn = PgConnection::connect(larder_testkit::PG_ADMIN_URL).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&mut conn).await.unwrap();
    assert_eq!(ssl, "on", "these tests need `ssl = on` on the local PostgreSQL server");
}

/// The server's own certificate (self-signed, so it is its own CA), when
/// this user can read it.
async fn server_certificate() -> Option<PathBuf> {
    let mut conn = PgConnection::connect(larder_testkit::PG_ADMIN_URL).await.unwrap();
    let file: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let path = PathBuf::from(file);
    std::fs::File::open(&path).ok().map(|_| path)
}

#[tokio::test]
async fn default_sslmode_is_require_and_uses_tls() {
    server_has_ssl().await;
    let s = settings("");
    assert_eq!(s.sslmode, "require");
    assert_eq!(session_uses_tls(&s).await, Ok(true));
    // Explicit plain text stays possible.
    assert_eq!(session_uses_tls(&settings(", sslmode: disable")).await, Ok(false));
}

#[tokio::test]
async fn verify_full_with_a_wrong_root_certificate_fails_clearly() {
    server_has_ssl().await;
    let ca = untrusted_ca();
    let s = settings(&format!(", sslmode: verify-full, sslrootcert_path: {}", ca.display()));
    let err = PostgresStore::connect(&s)
        .await
        .err()
        .expect("connected with an untrusted CA")
        .to_string();
    assert!(
        err.contains("TLS connection to PostgreSQL 127.0.0.1:5432 failed")
            && err.contains("sslmode verify-full")
            && err.contains(&ca.display().to_string())
            && err.contains("certificate"),
        "{err}"
    );
}

/// libpq (so Feast): "if a root CA file exists, sslmode=require behaves
/// like verify-ca". sqlx's `require` alone would not look at the file.
#[tokio::test]
async fn require_with_a_root_certificate_verifies_the_chain() {
    server_has_ssl().await;
    let s = settings(&format!(", sslrootcert_path: {}", untrusted_ca().display()));
    let err = PostgresStore::connect(&s)
        .await
        .err()
        .expect("connected with an untrusted CA")
        .to_string();
    assert!(
        err.contains("TLS connection") && err.contains("sslmode require"),
        "{err}"
    );
}

#[tokio::test]
async fn the_servers_own_certificate_verifies() {
    server_has_ssl().await;
    let Some(cert) = server_certificate().await else {
        eprintln!("skipped: the server's certificate is not readable by this user");
        return;
    };
    // verify-ca checks the chain only: 127.0.0.1 is fine.
    let s = settings(&format!(", sslmode: verify-ca, sslrootcert_path: {}", cert.display()));
    assert_eq!(session_uses_tls(&s).await, Ok(true));
    // verify-full also checks the name: the certificate names localhost, not 127.0.0.1.
    let mut s = settings(&format!(", sslmode: verify-full, sslrootcert_path: {}", cert.display()));
    let err = session_uses_tls(&s)
        .await
        .expect_err("127.0.0.1 is not the certificate's name");
    assert!(err.contains("certificate"), "{err}");
    s.host = "localhost".into();
    assert_eq!(session_uses_tls(&s).await, Ok(true));
}

#[tokio::test]
async fn certificate_paths_reach_the_connection() {
    let missing = Path::new("/nonexistent/larder-test/root.crt");
    let s = settings(&format!(
        ", sslmode: verify-full, sslrootcert_path: {}",
        missing.display()
    ));
    let err = PostgresStore::connect(&s)
        .await
        .err()
        .expect("missing root certificate")
        .to_string();
    assert!(
        err.contains("sslrootcert_path") && err.contains(&missing.display().to_string()),
        "{err}"
    );

    let ca = untrusted_ca();
    let s = settings(&format!(
        ", sslcert_path: {}, sslkey_path: /nonexistent/larder-test/client.key",
        ca.display()
    ));
    let err = PostgresStore::connect(&s)
        .await
        .err()
        .expect("missing client key")
        .to_string();
    assert!(err.contains("sslkey_path /nonexistent/larder-test/client.key"), "{err}");

    let s = settings(&format!(", sslcert_path: {}", ca.display()));
    let err = PostgresStore::connect(&s)
        .await
        .err()
        .expect("certificate without key")
        .to_string();
    assert!(
        err.contains("sslcert_path and sslkey_path must be set together"),
        "{err}"
    );

    // With TLS off libpq reads no file, and neither does Larder.
    let s = settings(&format!(", sslmode: disable, sslrootcert_path: {}", missing.display()));
    assert_eq!(session_uses_tls(&s).await, Ok(false));
}
