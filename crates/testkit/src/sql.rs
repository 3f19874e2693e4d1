//! Throw-away PostgreSQL and MariaDB/MySQL databases: created with a unique
//! name next to the server's maintenance database, dropped (other sessions
//! on it ended first) when the guard is dropped.

use std::ops::Deref;
use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// sqlx URL of PostgreSQL's maintenance database on this machine (trust
/// authentication for `root`); test databases are created next to it.
pub const PG_ADMIN_URL: &str = "postgres://root@127.0.0.1:5432/postgres";

/// sqlx URL of MariaDB/MySQL's maintenance database on this machine (`root`,
/// no password).
pub const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/mysql";

/// The SQL server a database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlServer {
    Postgres,
    MySql,
}

impl SqlServer {
    /// This machine's maintenance database: [`PG_ADMIN_URL`] or [`MYSQL_ADMIN_URL`].
    pub fn admin_url(self) -> &'static str {
        match self {
            SqlServer::Postgres => PG_ADMIN_URL,
            SqlServer::MySql => MYSQL_ADMIN_URL,
        }
    }

    /// `PostgreSQL` or `MariaDB/MySQL`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            SqlServer::Postgres => "PostgreSQL",
            SqlServer::MySql => "MariaDB/MySQL",
        }
    }

    fn quote(self, ident: &str) -> String {
        match self {
            SqlServer::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
            SqlServer::MySql => format!("`{}`", ident.replace('`', "``")),
        }
    }
}

/// A database of one test's (or one benchmark run's) own, on PostgreSQL or
/// MariaDB/MySQL, named `<prefix>_<32 hex digits>`. Dropped when this guard
/// is dropped (from a thread of its own, so also from async tests and while
/// a failed test unwinds), or now with [`SqlDatabase::remove`].
///
/// [`PgDatabase`] and [`MySqlDatabase`] are the same guard for one server.
#[derive(Debug)]
pub struct SqlDatabase {
    server: SqlServer,
    admin_url: String,
    name: String,
    url: String,
    host: String,
    port: u16,
    user: String,
    /// Whether the database still has to be dropped.
    armed: bool,
    /// A failed drop in `Drop` panics (tests) or only warns (tools).
    panic_on_drop_error: bool,
}

impl SqlDatabase {
    /// A fresh database on this machine's `server`; panics (naming the
    /// server) if it cannot be created, and a failed drop at the end fails
    /// the test.
    pub async fn create(server: SqlServer, prefix: &str) -> Self {
        let admin = server.admin_url();
        match Self::create_on(server, admin, prefix).await {
            Ok(mut db) => {
                db.panic_on_drop_error = true;
                db
            }
            Err(e) => panic!(
                "create a {} database at {admin} (is the server running? scripts/services.sh starts it): {e}",
                server.label()
            ),
        }
    }

    /// A fresh database on the server whose maintenance database is
    /// `admin_url` (an sqlx URL such as [`PG_ADMIN_URL`]); the new database
    /// shares its host, port, user and query parameters. Errors are
    /// returned, and a failed drop in `Drop` is only reported on stderr.
    ///
    /// `prefix`: lowercase ASCII letters, digits and `_`, at most 30 bytes.
    pub async fn create_on(server: SqlServer, admin_url: &str, prefix: &str) -> Result<Self, sqlx::Error> {
        assert!(
            !prefix.is_empty()
                && prefix.len() <= 30
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "database prefix {prefix:?}: use 1 to 30 of a-z, 0-9 and _"
        );
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(admin_url, &name);
        let (host, port, user) = match server {
            SqlServer::Postgres => {
                let o = PgConnectOptions::from_str(&url)?;
                (o.get_host().to_string(), o.get_port(), o.get_username().to_string())
            }
            SqlServer::MySql => {
                let o = MySqlConnectOptions::from_str(&url)?;
                (o.get_host().to_string(), o.get_port(), o.get_username().to_string())
            }
        };
        let create = format!("CREATE DATABASE {}", server.quote(&name));
        match server {
            SqlServer::Postgres => {
                let mut c = PgConnection::connect(admin_url).await?;
                c.execute(AssertSqlSafe(create)).await?;
                let _ = c.close().await;
            }
            SqlServer::MySql => {
                let mut c = MySqlConnection::connect(admin_url).await?;
                c.execute(AssertSqlSafe(create)).await?;
                let _ = c.close().await;
            }
        }
        Ok(Self {
            server,
            admin_url: admin_url.to_string(),
            name,
            url,
            host,
            port,
            user,
            armed: true,
            panic_on_drop_error: false,
        })
    }

    pub fn server(&self) -> SqlServer {
        self.server
    }

    /// The database name (no quoting needed: lowercase, digits and `_`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sqlx URL Larder's registry and stores take:
    /// `postgres://root@127.0.0.1:5432/<name>` or `mysql://root@127.0.0.1:3306/<name>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLAlchemy URL Feast's SQL registry takes:
    /// `postgresql+psycopg://…` or `mysql+pymysql://…` (see [`sqlalchemy_url`]).
    pub fn feast_url(&self) -> String {
        sqlalchemy_url(&self.url)
    }

    /// Host of the server (`127.0.0.1`), for store settings with separate fields.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port of the server (5432 or 3306).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// User the database was created by and is reached with (`root`).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Drop the database now and say whether that worked (`Drop` then does
    /// nothing). Other sessions on it are ended first.
    pub async fn remove(mut self) -> Result<(), sqlx::Error> {
        self.armed = false;
        drop_database(self.server, &self.admin_url, &self.name).await
    }
}

impl Drop for SqlDatabase {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (server, admin, name) = (self.server, self.admin_url.clone(), self.name.clone());
        let result = crate::block_on_own_runtime(async move {
            drop_database(server, &admin, &name).await.map_err(|e| e.to_string())
        })
        .and_then(|r| r);
        if let Err(e) = result {
            crate::cleanup_failed(
                self.panic_on_drop_error,
                format!(
                    "could not drop {} database {} (drop it by hand): {e}",
                    self.server.label(),
                    self.name
                ),
            );
        }
    }
}

/// `DROP DATABASE IF EXISTS`, after ending every other session on it:
/// `WITH (FORCE)` on PostgreSQL, `KILL` of each session on MariaDB/MySQL (a
/// session left inside a transaction would make the drop wait on its
/// metadata lock).
async fn drop_database(server: SqlServer, admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let quoted = server.quote(name);
    match server {
        SqlServer::Postgres => {
            let mut c = PgConnection::connect(admin_url).await?;
            c.execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")))
                .await?;
            let _ = c.close().await;
        }
        SqlServer::MySql => {
            let mut c = MySqlConnection::connect(admin_url).await?;
            let sessions: Vec<i64> = sqlx::query_scalar(
                "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
            )
            .bind(name)
            .fetch_all(&mut c)
            .await?;
            for id in sessions {
                // It may have ended by itself in the meantime.
                let _ = c.execute(AssertSqlSafe(format!("KILL {id}"))).await;
            }
            c.execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {quoted}")))
                .await?;
            let _ = c.close().await;
        }
    }
    Ok(())
}

/// A throw-away PostgreSQL database ([`SqlDatabase`] on [`SqlServer::Postgres`]).
#[derive(Debug)]
pub struct PgDatabase(SqlDatabase);

impl PgDatabase {
    /// A fresh database `<prefix>_<hex>` on 127.0.0.1:5432, dropped on drop.
    pub async fn create(prefix: &str) -> Self {
        Self(SqlDatabase::create(SqlServer::Postgres, prefix).await)
    }

    /// The `postgresql://` spelling of [`SqlDatabase::url`] (libpq's and
    /// SQLAlchemy's default-driver scheme), which Larder accepts too.
    pub fn postgresql_url(&self) -> String {
        self.0.url.replacen("postgres://", "postgresql://", 1)
    }

    /// Drop the database now; see [`SqlDatabase::remove`].
    pub async fn remove(self) -> Result<(), sqlx::Error> {
        self.0.remove().await
    }

    pub fn into_inner(self) -> SqlDatabase {
        self.0
    }
}

impl Deref for PgDatabase {
    type Target = SqlDatabase;
    fn deref(&self) -> &SqlDatabase {
        &self.0
    }
}

/// A throw-away MariaDB/MySQL database ([`SqlDatabase`] on [`SqlServer::MySql`]).
#[derive(Debug)]
pub struct MySqlDatabase(SqlDatabase);

impl MySqlDatabase {
    /// A fresh database `<prefix>_<hex>` on 127.0.0.1:3306, dropped on drop.
    pub async fn create(prefix: &str) -> Self {
        Self(SqlDatabase::create(SqlServer::MySql, prefix).await)
    }

    /// Drop the database now; see [`SqlDatabase::remove`].
    pub async fn remove(self) -> Result<(), sqlx::Error> {
        self.0.remove().await
    }

    pub fn into_inner(self) -> SqlDatabase {
        self.0
    }
}

impl Deref for MySqlDatabase {
    type Target = SqlDatabase;
    fn deref(&self) -> &SqlDatabase {
        &self.0
    }
}

/// `url` with its database (the last path segment) replaced by `db`; query
/// parameters are kept.
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

/// The SQLAlchemy spelling of an sqlx URL, for Feast: `postgres://` and
/// `postgresql://` become `postgresql+psycopg://`, `mysql://` and
/// `mariadb://` become `mysql+pymysql://`; other URLs are returned as they are.
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

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(SqlServer::Postgres.quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(SqlServer::MySql.quote("a`b"), "`a``b`");
    }
}
