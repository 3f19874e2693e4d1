//! Test support for Larder's crates (dev-dependency only; the benchmark
//! binaries use it too).
//!
//! Larder's tests run against the machine's real services: PostgreSQL on
//! 127.0.0.1:5432 and MariaDB/MySQL on 127.0.0.1:3306 (user `root`, no
//! password), Redis on 127.0.0.1:6379, and SQLite files (`scripts/services.sh`
//! starts the servers). nextest runs every test in a process of its own, all
//! at once, so each test needs state nobody else touches, and must not leave
//! databases behind. The same "create a database, drop it at the end" code
//! was written once per test suite; this crate is the one copy:
//!
//! - [`PgDatabase`], [`MySqlDatabase`] (or [`SqlDatabase`] when the server is
//!   a parameter): a database of the test's own, uniquely named, dropped
//!   when the guard is dropped, also when the test panics. `url()` is the
//!   sqlx URL Larder takes, `feast_url()` the SQLAlchemy URL Feast takes.
//! - [`RedisDb`]: a Redis logical database leased to one test (across
//!   processes), flushed when leased and when dropped.
//! - [`SqliteFile`]: a SQLite file path in a temporary directory of its own.
//! - [`TcpProxy`]: a TCP proxy to cut and restore, to simulate an outage of
//!   a shared service without stopping it.
//! - [`objects`]: Feast objects (entity, file source, feature view,
//!   Permission) shaped like what Feast 0.67's SDK writes.
//! - [`feast::python`]: Feast 0.67's venv python, required in CI.
//! - [`oidc::OidcProvider`]: a real OpenID Connect provider (Node.js)
//!   issuing client_credentials tokens, killed when dropped.
//! - [`unique_name`]: names (projects, key spaces) no other test uses.
//!
//! Constructors named `create`/`lease`/`new` are for tests: they panic with
//! a message naming the service when it is not reachable. Tools that want
//! errors instead use [`SqlDatabase::create_on`].

pub mod feast;
pub mod objects;
pub mod oidc;
mod proxy;
mod redis_db;
mod rng;
mod sql;
mod sqlite;
pub mod table;
pub mod tls;

pub use proxy::TcpProxy;
pub use redis_db::{REDIS_ADDR, RedisDb};
pub use rng::Rng;
pub use sql::{
    MYSQL_ADMIN_URL, MySqlDatabase, PG_ADMIN_URL, PgDatabase, SqlDatabase, SqlServer, sqlalchemy_url, with_database,
};
pub use sqlite::SqliteFile;

/// `prefix` followed by 12 random hex digits: a project name or key space
/// no other test (or test process) uses, e.g. `p3f9c0a1b2d4e`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Run `f` to completion on a runtime of its own in a new thread, from sync
/// code that may itself be on a (blocked) tokio worker, such as `Drop`.
fn block_on_own_runtime<F, T>(f: F) -> Result<T, String>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f))
            .map_err(|e| format!("start a runtime: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the cleanup thread panicked".into()))
}

/// Report a failed cleanup: a panic (the test fails, as a failed explicit
/// cleanup did) unless the thread is already unwinding from a failed test,
/// or the owner asked for warnings only.
fn cleanup_failed(panic: bool, msg: String) {
    if panic && !std::thread::panicking() {
        panic!("larder-testkit: {msg}");
    }
    eprintln!("larder-testkit: {msg}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_names_differ() {
        let (a, b) = (super::unique_name("p"), super::unique_name("p"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 13);
        assert!(a.starts_with('p') && a[1..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
