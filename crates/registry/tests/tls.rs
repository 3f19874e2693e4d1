//! A PostgreSQL SQL registry's TLS settings, as Feast's SQL registry reads
//! them: from the URL's query (SQLAlchemy hands it to libpq unchanged),
//! against the local server (`ssl = on`, self-signed certificate for
//! `localhost`).

use std::path::{Path, PathBuf};

use larder_registry::RegistryConfig;
use larder_registry::config::DEFAULT_CACHE_TTL;
use larder_testkit::PgDatabase;
use sqlx::{Connection, PgConnection};

/// A CA certificate that signed nothing the server has (the online store's
/// test fixture).
fn untrusted_ca() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../online/tests/fixtures/untrusted-ca.pem")
}

fn config(url: &str) -> RegistryConfig {
    RegistryConfig::from_feast("sql", url, DEFAULT_CACHE_TTL, Path::new("/")).unwrap()
}

async fn open_err(url: &str) -> String {
    match larder_registry::open(&config(url)).await {
        Ok(_) => panic!("opened {url}"),
        Err(e) => e.to_string(),
    }
}

/// The server's own certificate (self-signed, so its own CA), when readable.
async fn server_certificate() -> Option<PathBuf> {
    let mut conn = PgConnection::connect(larder_testkit::PG_ADMIN_URL).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&mut conn).await.unwrap();
    assert_eq!(ssl, "on", "these tests need `ssl = on` on the local PostgreSQL server");
    let file: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let path = PathBuf::from(file);
    std::fs::File::open(&path).ok().map(|_| path)
}

#[tokio::test]
async fn url_tls_parameters_reach_the_connection() {
    let _ = server_certificate().await;
    let base = "postgresql+psycopg://root@127.0.0.1:5432/postgres";
    let ca = untrusted_ca();

    let err = open_err(&format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display())).await;
    assert!(
        err.contains("TLS connection to the registry database 127.0.0.1:5432 failed")
            && err.contains("sslmode=verify-full")
            && err.contains("certificate"),
        "{err}"
    );
    // libpq: `require` with a root certificate verifies the chain.
    let err = open_err(&format!("{base}?sslmode=require&sslrootcert={}", ca.display())).await;
    assert!(
        err.contains("sslmode=verify-ca") && err.contains("certificate"),
        "{err}"
    );

    let err = open_err(&format!(
        "{base}?sslmode=verify-ca&sslrootcert=/nonexistent/larder/ca.pem"
    ))
    .await;
    assert!(err.contains("sslrootcert /nonexistent/larder/ca.pem"), "{err}");
    let err = open_err(&format!(
        "{base}?sslcert={}&sslkey=/nonexistent/larder/c.key",
        ca.display()
    ))
    .await;
    assert!(err.contains("sslkey /nonexistent/larder/c.key"), "{err}");
}

#[tokio::test]
async fn verified_tls_and_the_default_both_open() {
    let cert = server_certificate().await;
    let db = PgDatabase::create("larder_reg_tls").await;
    let url = db.postgresql_url();
    // No sslmode: libpq's default (prefer), as Feast's SQL registry.
    larder_registry::open(&config(&url)).await.unwrap();
    match cert {
        Some(cert) => {
            let url = format!("{url}?sslmode=verify-ca&sslrootcert={}", cert.display());
            larder_registry::open(&config(&url)).await.unwrap();
        }
        None => eprintln!("verify-ca not tried: the server's certificate is not readable by this user"),
    }
}
