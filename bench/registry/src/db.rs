//! Fresh PostgreSQL and MariaDB databases for one run, and the servers'
//! versions for the report. The databases are larder-testkit guards: each
//! is dropped (other sessions on it ended first) when its guard goes, so
//! also after an error or Ctrl-C; `SqlDatabase::remove` drops one now and
//! reports a failure.

use anyhow::{Context, Result};
use larder_testkit::SqlDatabase;
pub use larder_testkit::SqlServer as Server;
use sqlx::{AnyConnection, Connection, Row};

pub struct Admin {
    pg_admin: String,
    mysql_admin: String,
}

impl Admin {
    /// `pg_admin` / `mysql_admin`: sqlx URLs of a maintenance database on each
    /// server (`…/postgres`, `…/mysql`); new databases share their host and user.
    pub fn new(pg_admin: &str, mysql_admin: &str) -> Self {
        sqlx::any::install_default_drivers();
        Self {
            pg_admin: pg_admin.into(),
            mysql_admin: mysql_admin.into(),
        }
    }

    fn admin_url(&self, server: Server) -> &str {
        match server {
            Server::Postgres => &self.pg_admin,
            Server::MySql => &self.mysql_admin,
        }
    }

    /// Create a fresh database named `larder_bench_<tag>_<random>`.
    pub async fn create(&self, server: Server, tag: &str) -> Result<SqlDatabase> {
        let url = self.admin_url(server);
        SqlDatabase::create_on(server, url, &format!("larder_bench_{tag}"))
            .await
            .with_context(|| format!("create a database on {} at {url}", server.label()))
    }

    /// The server's version string, for the report header.
    pub async fn version(&self, server: Server) -> Result<String> {
        let url = self.admin_url(server);
        let mut conn = AnyConnection::connect(url)
            .await
            .with_context(|| format!("connect to {} at {url}", server.label()))?;
        let row = sqlx::query("SELECT version()").fetch_one(&mut conn).await?;
        let v: String = row.try_get(0)?;
        let _ = conn.close().await;
        Ok(v)
    }
}
