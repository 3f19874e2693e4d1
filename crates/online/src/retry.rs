//! What a store does when its server goes away.
//!
//! Servers drop client connections: a restart, a failover, Redis' `timeout`
//! setting, a network blip. The first request on such a connection then
//! fails although the server is fine again, so every request of the network
//! stores runs through [`Server::retry_once`]: when the connection was lost
//! (not refused, not timed out), the request runs once more, which takes a
//! new connection (redis-rs' connection manager reconnects after the error;
//! sqlx drops the broken connection and opens another).
//!
//! Running a request twice is safe for everything a store does: reads, DDL
//! with `IF [NOT] EXISTS`, and writes, which are idempotent in Feast's
//! layouts. A write that was applied before the connection broke is applied
//! again with the same values and event times: the newer-wins rules (SQL
//! upserts with `WHERE excluded.event_ts >= event_ts`, Redis' stored
//! `_ts:<view>` check) keep the result the same, and a newer row written in
//! between by someone else still wins. Without the retry, a materialization
//! started after a quiet spell would fail on every Redis `timeout`.
//!
//! Only once: a second failure means the server is really gone, and the
//! caller gets [`OnlineError::Unavailable`] (retryable, a 503 in the feature
//! server) naming the server's address, instead of a request that hangs in
//! a retry loop. Refused connections and timeouts are not retried at all:
//! the clients have already waited (redis-rs' reconnect backoff, sqlx's pool
//! acquire timeout).

use std::future::Future;

use crate::{OnlineError, Operation, Result};

/// How a request failed, as far as the connection is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The connection broke under the request: worth one more try on a new one.
    Lost,
    /// No connection could be had (refused, timed out, server still
    /// loading): the client has already waited, so no retry here.
    Unreachable,
}

impl OnlineError {
    fn connection_failure(&self) -> Option<Failure> {
        match self {
            OnlineError::Redis(e) => redis_failure(e),
            OnlineError::Database(e) => sqlx_failure(e),
            // The pool replaces a stale connection itself (resp::Pool::query_arrays);
            // a failure after that is a server that is not there.
            OnlineError::RedisRead(crate::resp::RespError::Io { .. }) => Some(Failure::Unreachable),
            OnlineError::RedisRead(crate::resp::RespError::Server(m)) if redis_not_ready(m) => {
                Some(Failure::Unreachable)
            }
            _ => None,
        }
    }
}

fn redis_failure(e: &redis::RedisError) -> Option<Failure> {
    use redis::{ErrorKind, ServerErrorKind};
    if e.is_connection_refusal() || e.is_timeout() {
        return Some(Failure::Unreachable);
    }
    if e.is_connection_dropped() || e.is_io_error() {
        return Some(Failure::Lost);
    }
    match e.kind() {
        // A restarted server answers LOADING until its dataset is in memory.
        ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown | ServerErrorKind::TryAgain) => {
            Some(Failure::Unreachable)
        }
        _ => None,
    }
}

/// An error reply of a server that is up but cannot serve yet: still
/// loading its dataset after a restart, or a replica without its master.
fn redis_not_ready(message: &str) -> bool {
    ["LOADING", "MASTERDOWN", "TRYAGAIN"]
        .iter()
        .any(|code| message.starts_with(code))
}

fn sqlx_failure(e: &sqlx::Error) -> Option<Failure> {
    match e {
        sqlx::Error::Io(io) => Some(match io.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut => Failure::Unreachable,
            _ => Failure::Lost,
        }),
        // sqlx retried refused connections until its acquire timeout.
        sqlx::Error::PoolTimedOut => Some(Failure::Unreachable),
        sqlx::Error::Database(d) => {
            if let Some(m) = d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED (MariaDB).
                return matches!(m.number(), 1053 | 1927).then_some(Failure::Lost);
            }
            match d.code().as_deref() {
                // PostgreSQL: starting up or shutting down.
                Some("57P03") => Some(Failure::Unreachable),
                // admin_shutdown (pg_terminate_backend, a restart), crash_shutdown.
                Some("57P01" | "57P02") => Some(Failure::Lost),
                // Connection exceptions, PostgreSQL's and MySQL's (08S01).
                Some(c) if c.starts_with("08") => Some(Failure::Lost),
                _ => None,
            }
        }
        _ => None,
    }
}

/// One store's server, for [`OnlineError::Unavailable`] and the retry log.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    store: &'static str,
    address: String,
}

impl Server {
    pub(crate) fn new(store: &'static str, address: impl Into<String>) -> Self {
        Self {
            store,
            address: address.into(),
        }
    }

    /// `e` as [`OnlineError::Unavailable`] when it says the server could not
    /// be reached or the connection broke; any other error unchanged.
    pub(crate) fn classify(&self, operation: Operation, e: OnlineError) -> OnlineError {
        if e.connection_failure().is_none() {
            return e;
        }
        OnlineError::Unavailable {
            store: self.store,
            address: self.address.clone(),
            operation,
            source: Box::new(e),
        }
    }

    /// Run `attempt`, and once more if the connection broke under it (see
    /// the module docs for why that is safe for every store operation).
    pub(crate) async fn retry_once<T, F, Fut>(&self, operation: Operation, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let first = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if first.connection_failure() != Some(Failure::Lost) {
            return Err(self.classify(operation, first));
        }
        tracing::warn!(
            store = self.store,
            address = %self.address,
            %operation,
            error = %first,
            "online store connection lost; retrying once on a new connection"
        );
        attempt().await.map_err(|e| self.classify(operation, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> OnlineError {
        OnlineError::Database(sqlx::Error::Io(kind.into()))
    }

    #[test]
    fn failures_by_kind() {
        use std::io::ErrorKind as K;
        assert_eq!(io(K::BrokenPipe).connection_failure(), Some(Failure::Lost));
        assert_eq!(io(K::UnexpectedEof).connection_failure(), Some(Failure::Lost));
        assert_eq!(
            io(K::ConnectionRefused).connection_failure(),
            Some(Failure::Unreachable)
        );
        assert_eq!(
            OnlineError::Database(sqlx::Error::PoolTimedOut).connection_failure(),
            Some(Failure::Unreachable)
        );
        assert_eq!(
            OnlineError::Database(sqlx::Error::RowNotFound).connection_failure(),
            None
        );
        let broken: redis::RedisError = std::io::Error::from(K::BrokenPipe).into();
        assert_eq!(OnlineError::Redis(broken).connection_failure(), Some(Failure::Lost));
        let refused: redis::RedisError = std::io::Error::from(K::ConnectionRefused).into();
        assert_eq!(
            OnlineError::Redis(refused).connection_failure(),
            Some(Failure::Unreachable)
        );
        assert_eq!(OnlineError::Config("x".into()).connection_failure(), None);
        let loading = crate::resp::RespError::Server("LOADING Redis is loading the dataset in memory".into());
        assert_eq!(
            OnlineError::RedisRead(loading).connection_failure(),
            Some(Failure::Unreachable)
        );
        let wrong = crate::resp::RespError::Server("WRONGTYPE Operation against a key".into());
        assert_eq!(OnlineError::RedisRead(wrong).connection_failure(), None);
    }

    #[tokio::test]
    async fn retries_lost_connections_once_and_nothing_else() {
        use std::io::ErrorKind as K;
        let server = Server::new("postgres", "db:5432");
        let mut calls = 0;
        let out = server
            .retry_once(Operation::Read, || {
                calls += 1;
                let n = calls;
                async move { if n == 1 { Err(io(K::BrokenPipe)) } else { Ok(n) } }
            })
            .await;
        assert_eq!(out.ok(), Some(2));

        let mut calls = 0;
        let e = server
            .retry_once(Operation::Write, || {
                calls += 1;
                async { Err::<(), _>(io(K::ConnectionReset)) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 2, "one retry, no more");
        assert!(e.is_retryable());
        let msg = e.to_string();
        assert!(
            msg.contains("postgres online store at db:5432") && msg.contains("retried"),
            "{msg}"
        );

        let mut calls = 0;
        let e = server
            .retry_once(Operation::Read, || {
                calls += 1;
                async { Err::<(), _>(io(K::ConnectionRefused)) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 1, "a refused connection is not retried");
        assert!(e.is_retryable());

        let mut calls = 0;
        let e = server
            .retry_once(Operation::Read, || {
                calls += 1;
                async { Err::<(), _>(OnlineError::Config("bad".into())) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 1);
        assert!(!e.is_retryable() && matches!(e, OnlineError::Config(_)));
    }
}
