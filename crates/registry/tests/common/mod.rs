//! The registry under test on each backend: a PostgreSQL or MariaDB
//! database, a SQLite file or a registry file of the test's own (from
//! larder-testkit), removed when the `TestRegistry` is dropped.
//!
//! A module directory (`common/mod.rs`), not `common.rs`, so Cargo does not
//! build it as a test target of its own.

use std::path::PathBuf;
use std::sync::Arc;

use larder_registry::Registry;
use larder_registry::file::FileRegistry;
use larder_registry::sql::SqlRegistry;
use larder_testkit::{SqlDatabase, SqlServer, SqliteFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // file_lock.rs uses only the file backend
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
    // Guards: the database, file or directory goes when they are dropped.
    _db: Option<SqlDatabase>,
    _sqlite: Option<SqliteFile>,
    _dir: Option<tempfile::TempDir>,
}

impl TestRegistry {
    pub async fn new(backend: Backend) -> Self {
        let mut t = Self {
            backend,
            location: String::new(),
            _db: None,
            _sqlite: None,
            _dir: None,
        };
        match backend {
            Backend::Postgres | Backend::MySql => {
                let server = if backend == Backend::Postgres {
                    SqlServer::Postgres
                } else {
                    SqlServer::MySql
                };
                let db = SqlDatabase::create(server, "larder_t").await;
                t.location = db.url().to_string();
                t._db = Some(db);
            }
            Backend::Sqlite => {
                let file = SqliteFile::new("registry.db");
                t.location = file.url();
                t._sqlite = Some(file);
            }
            Backend::File => {
                let dir = tempfile::tempdir().expect("tempdir");
                t.location = dir.path().join("registry.pb").display().to_string();
                t._dir = Some(dir);
            }
        }
        t
    }

    /// A fresh connection (pool) to this test's registry.
    pub async fn open(&self) -> Arc<dyn Registry> {
        match self.backend {
            Backend::File => Arc::new(FileRegistry::open(&PathBuf::from(&self.location)).expect("open file registry")),
            _ => Arc::new(SqlRegistry::connect(&self.location, 4).await.expect("connect registry")),
        }
    }
}
