//! Real databases for registry tests: each test gets its own PostgreSQL
//! database, MariaDB database or SQLite file, removed when it finishes.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use larder_model::feast::FeastObject;
use larder_protos::feast::core as fc;
use larder_registry::Registry;
use larder_registry::file::FileRegistry;
use larder_registry::sql::SqlRegistry;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

pub const PG_ADMIN: &str = "postgres://root@127.0.0.1:5432/postgres";
pub const MYSQL_ADMIN: &str = "mysql://root@127.0.0.1:3306/mysql";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MySql,
    Sqlite,
    File,
}

pub struct TestRegistry {
    pub backend: Backend,
    /// URL (SQL) or path (file) of this test's registry.
    pub location: String,
    db_name: String,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    pub async fn new(backend: Backend) -> Self {
        sqlx::any::install_default_drivers();
        let db_name = format!("larder_t_{}", uuid::Uuid::new_v4().simple());
        let dir = tempfile::tempdir().expect("tempdir");
        let location = match backend {
            Backend::Postgres => {
                admin(PG_ADMIN, &format!("CREATE DATABASE {db_name}")).await;
                format!("postgres://root@127.0.0.1:5432/{db_name}")
            }
            Backend::MySql => {
                admin(MYSQL_ADMIN, &format!("CREATE DATABASE {db_name}")).await;
                format!("mysql://root@127.0.0.1:3306/{db_name}")
            }
            Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("registry.db").display()),
            Backend::File => dir.path().join("registry.pb").display().to_string(),
        };
        Self {
            backend,
            location,
            db_name,
            _dir: dir,
        }
    }

    /// A fresh connection (pool) to this test's registry.
    pub async fn open(&self) -> Arc<dyn Registry> {
        match self.backend {
            Backend::File => Arc::new(FileRegistry::open(&PathBuf::from(&self.location)).expect("open file registry")),
            _ => Arc::new(SqlRegistry::connect(&self.location, 4).await.expect("connect registry")),
        }
    }

    pub async fn cleanup(self) {
        match self.backend {
            Backend::Postgres => {
                admin(
                    PG_ADMIN,
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name),
                )
                .await
            }
            Backend::MySql => admin(MYSQL_ADMIN, &format!("DROP DATABASE IF EXISTS {}", self.db_name)).await,
            _ => {}
        }
    }
}

async fn admin(url: &str, sql: &str) {
    let mut c = AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    c.execute(AssertSqlSafe(sql.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = c.close().await;
}

pub fn entity(name: &str, join_key: &str) -> FeastObject {
    FeastObject::Entity(fc::Entity {
        spec: Some(fc::EntitySpecV2 {
            name: name.into(),
            join_key: join_key.into(),
            value_type: 4,
            ..Default::default()
        }),
        meta: None,
    })
}

pub fn source(name: &str) -> FeastObject {
    use fc::data_source::{FileOptions, Options};
    FeastObject::DataSource(fc::DataSource {
        name: name.into(),
        r#type: 1,
        timestamp_field: "event_timestamp".into(),
        options: Some(Options::FileOptions(FileOptions {
            uri: "/tmp/x.parquet".into(),
            ..Default::default()
        })),
        ..Default::default()
    })
}

pub fn view(name: &str, description: &str) -> FeastObject {
    let src = match source("src") {
        FeastObject::DataSource(d) => d,
        _ => unreachable!(),
    };
    FeastObject::FeatureView(fc::FeatureView {
        spec: Some(fc::FeatureViewSpec {
            name: name.into(),
            entities: vec!["driver".into()],
            features: vec![fc::FeatureSpecV2 {
                name: "f".into(),
                value_type: 6,
                ..Default::default()
            }],
            entity_columns: vec![fc::FeatureSpecV2 {
                name: "driver_id".into(),
                value_type: 4,
                ..Default::default()
            }],
            batch_source: Some(src),
            online: true,
            description: description.into(),
            version: "latest".into(),
            ..Default::default()
        }),
        meta: None,
    })
}

pub fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}
