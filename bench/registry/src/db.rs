//! Fresh PostgreSQL and MariaDB databases for one run, and their removal.
//! Every database this process creates is remembered until it is dropped,
//! so `drop_all` can clean up after an error or Ctrl-C.

use std::sync::Mutex;

use anyhow::{Context, Result};
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    MySql,
}

impl Server {
    pub fn label(self) -> &'static str {
        match self {
            Server::Postgres => "PostgreSQL",
            Server::MySql => "MariaDB/MySQL",
        }
    }
}

/// A database created by this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub server: Server,
    pub name: String,
    /// sqlx URL of the database.
    pub url: String,
}

pub struct Admin {
    pg_admin: String,
    mysql_admin: String,
    created: Mutex<Vec<Database>>,
}

impl Admin {
    /// `pg_admin` / `mysql_admin`: sqlx URLs of a maintenance database on each
    /// server (`…/postgres`, `…/mysql`); new databases share their host and user.
    pub fn new(pg_admin: &str, mysql_admin: &str) -> Self {
        sqlx::any::install_default_drivers();
        Self {
            pg_admin: pg_admin.into(),
            mysql_admin: mysql_admin.into(),
            created: Mutex::new(Vec::new()),
        }
    }

    fn admin_url(&self, server: Server) -> &str {
        match server {
            Server::Postgres => &self.pg_admin,
            Server::MySql => &self.mysql_admin,
        }
    }

    /// Create a fresh database named `larder_bench_<tag>_<random>`.
    pub async fn create(&self, server: Server, tag: &str) -> Result<Database> {
        let name = format!(
            "larder_bench_{tag}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut conn = self.connect(server).await?;
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .with_context(|| format!("CREATE DATABASE {name} on {}", server.label()))?;
        let _ = conn.close().await;
        let db = Database {
            server,
            url: with_database(self.admin_url(server), &name),
            name,
        };
        self.created.lock().expect("lock").push(db.clone());
        Ok(db)
    }

    /// Drop one database (forcibly: other sessions on it are ended first).
    pub async fn drop(&self, db: &Database) -> Result<()> {
        let mut conn = self.connect(db.server).await?;
        match db.server {
            Server::Postgres => {
                conn.execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    db.name
                )))
                .await?;
            }
            Server::MySql => {
                // A session left inside a transaction would make DROP DATABASE wait
                // on its metadata lock; end this run's sessions on that database.
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = '{}' AND ID <> CONNECTION_ID()",
                    db.name
                )))
                .fetch_all(&mut conn)
                .await?;
                for r in rows {
                    let id: i64 = r.try_get(0)?;
                    let _ = conn.execute(AssertSqlSafe(format!("KILL {id}"))).await;
                }
                conn.execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {}", db.name)))
                    .await?;
            }
        }
        let _ = conn.close().await;
        self.created.lock().expect("lock").retain(|d| d != db);
        Ok(())
    }

    /// Drop every database still remembered; report failures and go on.
    pub async fn drop_all(&self) {
        let left: Vec<Database> = self.created.lock().expect("lock").clone();
        for db in left {
            if let Err(e) = self.drop(&db).await {
                eprintln!(
                    "bench-registry: could not drop {} database {}: {e:#}",
                    db.server.label(),
                    db.name
                );
            }
        }
    }

    /// The server's version string, for the report header.
    pub async fn version(&self, server: Server) -> Result<String> {
        let mut conn = self.connect(server).await?;
        let row = sqlx::query("SELECT version()").fetch_one(&mut conn).await?;
        let v: String = row.try_get(0)?;
        let _ = conn.close().await;
        Ok(v)
    }

    async fn connect(&self, server: Server) -> Result<AnyConnection> {
        let url = self.admin_url(server);
        AnyConnection::connect(url)
            .await
            .with_context(|| format!("connect to {} at {url}", server.label()))
    }
}

/// `url` with its database (the last path segment) replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// The SQLAlchemy spelling of an sqlx URL for Feast: `postgres://` becomes
/// `postgresql+psycopg://` and `mysql://` becomes `mysql+pymysql://`.
pub fn sqlalchemy_url(sqlx_url: &str) -> String {
    let (scheme, rest) = sqlx_url.split_once("://").unwrap_or(("", sqlx_url));
    let scheme = match scheme {
        "postgres" | "postgresql" => "postgresql+psycopg",
        "mysql" | "mariadb" => "mysql+pymysql",
        other => other,
    };
    format!("{scheme}://{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://root@127.0.0.1:5432/postgres", "x"),
            "postgres://root@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/mysql?ssl-mode=disabled", "x"),
            "mysql://root@127.0.0.1:3306/x?ssl-mode=disabled"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }

    #[test]
    fn feast_urls() {
        assert_eq!(
            sqlalchemy_url("postgres://root@127.0.0.1:5432/db"),
            "postgresql+psycopg://root@127.0.0.1:5432/db"
        );
        assert_eq!(
            sqlalchemy_url("mysql://root@127.0.0.1:3306/db"),
            "mysql+pymysql://root@127.0.0.1:3306/db"
        );
    }
}
