//! Connection loss (issue 12, defect 5): the store's server drops this
//! client's connections (a restart, a failover, Redis' `timeout`, a network
//! blip) and the next request must not fail because of it.
//!
//! Connections are killed on the server, and only this test's own: Redis
//! clients on the test's leased logical database (`CLIENT LIST` filtered by
//! `db=`, then `CLIENT KILL ID`), PostgreSQL backends of the test's own
//! database (`pg_terminate_backend`), MariaDB sessions on the test's own
//! database (`KILL`). The shared servers are never restarted; "the server is
//! gone" is a TCP proxy of the test's own that stops (or a closed port).
//!
//! SQLite has no server and no connection to lose, so it has no test here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use larder_model::entity_key::serialize_entity_key;
use larder_model::rows::{EntityRow, RowBatch};
use larder_model::types::FeatureType;
use larder_online::mysql::{MySqlSettings, MySqlStore};
use larder_online::postgres::{PostgresSettings, PostgresStore};
use larder_online::redis_store::{POOLED_READ_MIN_KEYS, RedisSettings, RedisStore};
use larder_online::{OnlineError, OnlineStore, Operation, ReadRow, ViewFeature, ViewSchema};
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{EntityKey, Value};
use larder_testkit::{MYSQL_ADMIN_URL, MySqlDatabase, PG_ADMIN_URL, PgDatabase, REDIS_ADDR, RedisDb, unique_name};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// More keys than [`POOLED_READ_MIN_KEYS`]: Redis reads them through its own pool.
const MANY: i64 = 12;
/// A request never waits longer than this for a store that is gone.
const GIVE_UP_WITHIN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Redis,
    Postgres,
    MySql,
}

/// The test's own database on a shared server, and how to kill this
/// client's connections to it.
enum Db {
    Redis(RedisDb),
    Postgres(PgDatabase),
    MySql(MySqlDatabase),
}

struct Backend {
    kind: Kind,
    store: Arc<dyn OnlineStore>,
    db: Db,
    project: String,
    schema: ViewSchema,
}

fn schema() -> ViewSchema {
    ViewSchema {
        name: "stats".into(),
        features: vec![
            ViewFeature::new("n", FeatureType::INT64),
            ViewFeature::new("s", FeatureType::STRING),
        ],
    }
}

fn features() -> Vec<String> {
    vec!["n".into(), "s".into()]
}

fn key(id: i64) -> Vec<u8> {
    serialize_entity_key(&EntityKey {
        join_keys: vec!["driver_id".into()],
        entity_values: vec![Value {
            val: Some(Val::Int64Val(id)),
        }],
    })
    .expect("serialize an entity key")
}

fn keys(n: i64) -> Vec<Vec<u8>> {
    (0..n).map(key).collect()
}

/// Rows for keys `0..n` at `ts_s` seconds, string values tagged `tag`.
fn batch(n: i64, ts_s: i64, tag: &str) -> RowBatch {
    RowBatch {
        features: features().into(),
        rows: (0..n)
            .map(|i| EntityRow {
                entity_key: key(i),
                event_ts: ts_s * 1_000_000_000,
                created_ts: None,
                values: vec![
                    Value {
                        val: Some(Val::Int64Val(i)),
                    },
                    Value {
                        val: Some(Val::StringVal(format!("{tag}{i}"))),
                    },
                ],
            })
            .collect(),
    }
}

fn pg_settings(db: &PgDatabase) -> PostgresSettings {
    PostgresSettings {
        host: db.host().into(),
        port: db.port(),
        database: db.name().into(),
        db_schema: "feast_online".into(),
        user: db.user().into(),
        password: None,
        sslmode: "disable".into(),
        max_conn: 4,
        ..PostgresSettings::default()
    }
}

fn mysql_settings(db: &MySqlDatabase) -> MySqlSettings {
    MySqlSettings {
        host: db.host().into(),
        port: db.port(),
        database: db.name().into(),
        user: db.user().into(),
        password: None,
        max_conn: 4,
    }
}

impl Backend {
    async fn new(kind: Kind) -> Self {
        let (store, db): (Arc<dyn OnlineStore>, Db) = match kind {
            Kind::Redis => {
                let db = RedisDb::lease();
                let store = RedisStore::connect(&RedisSettings {
                    connection_string: db.connection_string(),
                    key_ttl_seconds: None,
                    skip_dedup: false,
                })
                .await
                .expect("connect the redis store");
                (Arc::new(store), Db::Redis(db))
            }
            Kind::Postgres => {
                let db = PgDatabase::create("larder_conn").await;
                let store = PostgresStore::connect(&pg_settings(&db))
                    .await
                    .expect("connect the postgres store");
                (Arc::new(store), Db::Postgres(db))
            }
            Kind::MySql => {
                let db = MySqlDatabase::create("larder_conn").await;
                let store = MySqlStore::connect(&mysql_settings(&db))
                    .await
                    .expect("connect the mysql store");
                (Arc::new(store), Db::MySql(db))
            }
        };
        let b = Self {
            kind,
            store,
            db,
            project: unique_name("p"),
            schema: schema(),
        };
        b.store
            .update(&b.project, std::slice::from_ref(&b.schema), &[])
            .await
            .expect("create the view's table");
        b
    }

    async fn write(&self, n: i64, ts_s: i64, tag: &str) -> larder_online::Result<()> {
        self.store
            .online_write_batch(&self.project, &self.schema, &batch(n, ts_s, tag))
            .await
            .map(|_| ())
    }

    async fn read(&self, n: i64) -> larder_online::Result<Vec<Option<ReadRow>>> {
        self.store
            .online_read(&self.project, &self.schema, &keys(n), &features())
            .await
    }

    /// The qualified table of the test's view, for locking it.
    fn table(&self) -> String {
        match self.kind {
            Kind::Postgres => format!("\"feast_online\".\"{}_stats\"", self.project),
            _ => format!("`{}_stats`", self.project),
        }
    }

    /// Kill every server-side connection of this test's store (and only
    /// those); returns how many were killed.
    async fn kill_connections(&self) -> usize {
        match &self.db {
            Db::Redis(db) => kill_redis_clients(db.number()).await,
            Db::Postgres(db) => {
                let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
                    .await
                    .expect("admin connection");
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(db.name())
                .fetch_all(&mut admin)
                .await
                .expect("terminate the store's backends");
                let _ = admin.close().await;
                killed.into_iter().filter(|k| *k).count()
            }
            Db::MySql(db) => {
                let mut admin = sqlx::MySqlConnection::connect(MYSQL_ADMIN_URL)
                    .await
                    .expect("admin connection");
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                )
                .bind(db.name())
                .fetch_all(&mut admin)
                .await
                .expect("list the store's sessions");
                for id in &ids {
                    admin
                        .execute(AssertSqlSafe(format!("KILL {id}")))
                        .await
                        .expect("kill a session of the store");
                }
                let _ = admin.close().await;
                ids.len()
            }
        }
    }
}

/// `CLIENT KILL ID` of every client on logical database `db` (leased to this
/// test, so they are this test's store's connections) but the one asking.
async fn kill_redis_clients(db: u8) -> usize {
    let client = redis::Client::open(format!("redis://{REDIS_ADDR}/0")).expect("redis url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let me: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut admin)
        .await
        .expect("CLIENT ID");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .expect("CLIENT LIST");
    let db_field = format!("db={db}");
    let mut killed = 0;
    for line in list.lines() {
        let mut fields = line.split(' ');
        let id = fields
            .clone()
            .find_map(|f| f.strip_prefix("id="))
            .and_then(|v| v.parse::<i64>().ok());
        let Some(id) = id.filter(|id| *id != me) else { continue };
        if fields.any(|f| f == db_field) {
            let n: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(&mut admin)
                .await
                .expect("CLIENT KILL ID");
            killed += n as usize;
        }
    }
    killed
}

/// Values of keys `0..n` as `write(n, _, tag)` stored them.
fn assert_rows(kind: Kind, rows: &[Option<ReadRow>], n: i64, tag: &str) {
    assert_eq!(rows.len(), n as usize, "{kind:?}");
    for (i, row) in rows.iter().enumerate() {
        let row = row.as_ref().unwrap_or_else(|| panic!("{kind:?}: key {i} present"));
        assert_eq!(
            row.values[1].as_ref().and_then(|v| v.val.clone()),
            Some(Val::StringVal(format!("{tag}{i}"))),
            "{kind:?}: key {i}"
        );
    }
}

/// Read (warm connections), kill, read again: the same values, no error.
/// Both read paths of Redis (a few keys: the multiplexed connection; many:
/// the pool), twice each.
async fn reads_survive_killed_connections(kind: Kind) {
    let b = Backend::new(kind).await;
    b.write(MANY, 100, "v").await.expect("first write");
    assert!(MANY as usize >= POOLED_READ_MIN_KEYS);
    let few = b.read(1).await.expect("warm read, one key");
    let many = b.read(MANY).await.expect("warm read, many keys");
    assert_rows(kind, &many, MANY, "v");
    for round in 0..2 {
        assert!(
            b.kill_connections().await > 0,
            "{kind:?}: the store had connections to kill"
        );
        let again = b
            .read(1)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: one-key read after kill {round}: {e}"));
        assert_eq!(again, few, "{kind:?}: same values");
        assert!(
            b.kill_connections().await > 0,
            "{kind:?}: the store had connections to kill"
        );
        let again = b
            .read(MANY)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: many-key read after kill {round}: {e}"));
        assert_eq!(again, many, "{kind:?}: same values");
    }
    b.store
        .teardown(&b.project, std::slice::from_ref(&b.schema))
        .await
        .expect("teardown");
}

/// A write after a kill goes through on a new connection (online writes are
/// idempotent, so the stores retry them once) and lands.
async fn writes_survive_killed_connections(kind: Kind) {
    let b = Backend::new(kind).await;
    b.write(MANY, 100, "old").await.expect("first write");
    b.read(1).await.expect("warm read");
    b.read(MANY).await.expect("warm read");
    assert!(
        b.kill_connections().await > 0,
        "{kind:?}: the store had connections to kill"
    );
    b.write(MANY, 200, "new")
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: write after a kill: {e}"));
    let rows = b.read(MANY).await.expect("read back");
    assert_rows(kind, &rows, MANY, "new");
    // update (DDL), ping and teardown after a kill: also idempotent, also retried.
    assert!(
        b.kill_connections().await > 0,
        "{kind:?}: the store had connections to kill"
    );
    b.store
        .update(&b.project, std::slice::from_ref(&b.schema), &[])
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: update after a kill: {e}"));
    b.read(1).await.expect("read after update");
    assert!(
        b.kill_connections().await > 0,
        "{kind:?}: the store had connections to kill"
    );
    b.store
        .ping()
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: ping after a kill: {e}"));
    assert!(
        b.kill_connections().await > 0,
        "{kind:?}: the store had connections to kill"
    );
    b.store
        .teardown(&b.project, std::slice::from_ref(&b.schema))
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: teardown after a kill: {e}"));
}

/// A port nothing listens on (bound, then closed again).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// Connecting to a server that refuses connections fails soon, with an
/// error that names the address and says the store is unavailable.
async fn unreachable_server_fails_clearly(kind: Kind) {
    let port = closed_port();
    let started = Instant::now();
    let result = match kind {
        Kind::Redis => RedisStore::connect(&RedisSettings {
            connection_string: format!("127.0.0.1:{port},db=0"),
            key_ttl_seconds: None,
            skip_dedup: false,
        })
        .await
        .map(|_| ()),
        // Nothing to create: the connection is refused before a database is looked up.
        Kind::Postgres => PostgresStore::connect(&PostgresSettings {
            host: "127.0.0.1".into(),
            port,
            database: "larder_unreachable".into(),
            user: "root".into(),
            sslmode: "disable".into(),
            ..PostgresSettings::default()
        })
        .await
        .map(|_| ()),
        Kind::MySql => MySqlStore::connect(&MySqlSettings {
            host: "127.0.0.1".into(),
            port,
            database: "larder_unreachable".into(),
            user: "root".into(),
            password: None,
            max_conn: 1,
        })
        .await
        .map(|_| ()),
    };
    let e = result
        .err()
        .unwrap_or_else(|| panic!("{kind:?}: connected to a closed port"));
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")),
        "{kind:?}: the error names the address: {msg}"
    );
    assert!(
        matches!(
            e,
            OnlineError::Unavailable {
                operation: Operation::Connect,
                ..
            }
        ) && e.is_retryable(),
        "{kind:?}: {e:?}"
    );
    assert!(
        started.elapsed() < GIVE_UP_WITHIN,
        "{kind:?}: gave up after {:?}",
        started.elapsed()
    );
}

macro_rules! per_store {
    ($name:ident, $f:ident) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn redis() {
                $f(Kind::Redis).await
            }
            #[tokio::test]
            async fn postgres() {
                $f(Kind::Postgres).await
            }
            #[tokio::test]
            async fn mysql() {
                $f(Kind::MySql).await
            }
        }
    };
}

per_store!(reads_after_kill, reads_survive_killed_connections);
per_store!(writes_after_kill, writes_survive_killed_connections);
per_store!(unreachable_server, unreachable_server_fails_clearly);

/// The SQL stores check an idle connection before handing it out (sqlx's
/// `test_before_acquire`), so a connection killed while idle never reaches
/// a query. These kill the connection while the query runs: it waits on a
/// lock the test holds, the test kills the waiting session, then releases.
mod killed_mid_query {
    use super::*;

    /// A connection of the test's own to its database, holding an exclusive
    /// lock on the view's table until `release`.
    struct Lock {
        conn: LockConn,
        /// Sessions killed so far: a killed one can still be listed as waiting for a moment.
        killed: Vec<i64>,
    }

    enum LockConn {
        Postgres(sqlx::PgConnection),
        MySql(sqlx::MySqlConnection),
    }

    impl Lock {
        async fn take(b: &Backend) -> Self {
            match &b.db {
                Db::Postgres(db) => {
                    let mut c = sqlx::PgConnection::connect(db.url()).await.expect("lock connection");
                    c.execute("BEGIN").await.expect("BEGIN");
                    c.execute(AssertSqlSafe(format!(
                        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                        b.table()
                    )))
                    .await
                    .expect("LOCK TABLE");
                    Lock {
                        conn: LockConn::Postgres(c),
                        killed: Vec::new(),
                    }
                }
                Db::MySql(db) => {
                    let mut c = sqlx::MySqlConnection::connect(db.url()).await.expect("lock connection");
                    c.execute(AssertSqlSafe(format!("LOCK TABLES {} WRITE", b.table())))
                        .await
                        .expect("LOCK TABLES");
                    Lock {
                        conn: LockConn::MySql(c),
                        killed: Vec::new(),
                    }
                }
                Db::Redis(_) => unreachable!("no table locks in redis"),
            }
        }

        /// Wait until one session of the store waits for the lock, and kill it.
        async fn kill_waiting(&mut self) {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let waiting: Vec<i64> = match &mut self.conn {
                    LockConn::Postgres(c) => {
                        // Inside a transaction pg_stat_activity is a snapshot taken at
                        // its first use: a retry's new backend would never show up.
                        sqlx::query("SELECT pg_stat_clear_snapshot()")
                            .execute(&mut *c)
                            .await
                            .expect("clear the statistics snapshot");
                        sqlx::query_scalar(
                        "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'",
                    )
                        .fetch_all(&mut *c)
                        .await
                        .expect("list waiting backends")
                    }
                    LockConn::MySql(c) => sqlx::query_scalar(
                        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND STATE LIKE 'Waiting for table%'",
                    )
                    .fetch_all(&mut *c)
                    .await
                    .expect("list waiting sessions"),
                };
                if let Some(id) = waiting.iter().find(|id| !self.killed.contains(id)) {
                    match &mut self.conn {
                        LockConn::Postgres(c) => {
                            let _: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1::int)")
                                .bind(*id)
                                .fetch_one(&mut *c)
                                .await
                                .expect("terminate the waiting backend");
                        }
                        LockConn::MySql(c) => {
                            c.execute(AssertSqlSafe(format!("KILL {id}")))
                                .await
                                .expect("kill the waiting session");
                        }
                    }
                    self.killed.push(*id);
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "no session of the store waited for the lock (killed so far: {:?})",
                    self.killed
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        async fn release(self) {
            match self.conn {
                LockConn::Postgres(mut c) => {
                    c.execute("ROLLBACK").await.expect("ROLLBACK");
                    let _ = c.close().await;
                }
                LockConn::MySql(mut c) => {
                    c.execute("UNLOCK TABLES").await.expect("UNLOCK TABLES");
                    let _ = c.close().await;
                }
            }
        }
    }

    /// A read and a write whose connection is killed while they wait are
    /// retried once on a new connection and succeed; a write killed twice
    /// fails with the retryable error, naming the server.
    async fn killed_while_waiting(kind: Kind) {
        let b = Arc::new(Backend::new(kind).await);
        b.write(MANY, 100, "v").await.expect("first write");
        let before = b.read(MANY).await.expect("warm read");

        let mut lock = Lock::take(&b).await;
        let reader = tokio::spawn({
            let b = b.clone();
            async move { b.read(MANY).await }
        });
        lock.kill_waiting().await;
        lock.release().await;
        let after = reader
            .await
            .expect("read task")
            .unwrap_or_else(|e| panic!("{kind:?}: read killed mid-query: {e}"));
        assert_eq!(after, before, "{kind:?}: same values");

        let mut lock = Lock::take(&b).await;
        let writer = tokio::spawn({
            let b = b.clone();
            async move { b.write(MANY, 200, "new").await }
        });
        lock.kill_waiting().await;
        lock.release().await;
        writer
            .await
            .expect("write task")
            .unwrap_or_else(|e| panic!("{kind:?}: write killed mid-query: {e}"));
        assert_rows(kind, &b.read(MANY).await.expect("read back"), MANY, "new");

        // Killed on the first try and on the retry: a clear, retryable error.
        let mut lock = Lock::take(&b).await;
        let writer = tokio::spawn({
            let b = b.clone();
            async move { b.write(MANY, 300, "lost").await }
        });
        lock.kill_waiting().await;
        lock.kill_waiting().await;
        lock.release().await;
        let e = writer
            .await
            .expect("write task")
            .expect_err("a write killed twice fails");
        assert!(
            matches!(
                e,
                OnlineError::Unavailable {
                    operation: Operation::Write,
                    ..
                }
            ) && e.is_retryable(),
            "{kind:?}: {e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("127.0.0.1:") && msg.contains("retr"), "{kind:?}: {msg}");
        // Nothing of the failed write is visible (its transaction was rolled back).
        assert_rows(kind, &b.read(MANY).await.expect("read back"), MANY, "new");
        b.store
            .teardown(&b.project, std::slice::from_ref(&b.schema))
            .await
            .expect("teardown");
    }

    #[tokio::test]
    async fn postgres() {
        killed_while_waiting(Kind::Postgres).await
    }

    #[tokio::test]
    async fn mysql() {
        killed_while_waiting(Kind::MySql).await
    }
}

/// Redis goes away for good while the store is in use (a TCP proxy of the
/// test's own stops, so its port refuses connections): reads on both paths
/// and writes fail within a bounded time, with a retryable error that names
/// the address; when it is back, the store recovers by itself.
mod redis_gone {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    struct Proxy {
        port: u16,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Proxy {
        /// Forward `127.0.0.1:port` (`port` 0: any free one) to Redis.
        async fn start(port: u16) -> Self {
            let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the proxy");
            let port = listener.local_addr().expect("proxy address").port();
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(async move {
                let mut stopped_accepting = stopped.clone();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((mut inbound, _)) = accepted else { continue };
                            let mut stopped = stopped.clone();
                            tokio::spawn(async move {
                                let Ok(mut outbound) = TcpStream::connect(REDIS_ADDR).await else { return };
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                    _ = stopped.changed() => {}
                                }
                            });
                        }
                        _ = stopped_accepting.changed() => return,
                    }
                }
            });
            Self { port, stop, task }
        }

        /// Close the listening port and every forwarded connection.
        async fn stop(self) -> u16 {
            let _ = self.stop.send(true);
            let _ = self.task.await;
            self.port
        }
    }

    #[tokio::test]
    async fn reads_and_writes_fail_clearly_then_recover() {
        let db = RedisDb::lease();
        let proxy = Proxy::start(0).await;
        let store = RedisStore::connect(&RedisSettings {
            connection_string: format!("127.0.0.1:{},db={}", proxy.port, db.number()),
            key_ttl_seconds: None,
            skip_dedup: false,
        })
        .await
        .expect("connect through the proxy");
        let (project, schema) = (unique_name("p"), schema());
        let write = |ts: i64, tag: &'static str| {
            let (store, project, schema) = (&store, &project, &schema);
            async move { store.online_write_batch(project, schema, &batch(MANY, ts, tag)).await }
        };
        let read = |n: i64| {
            let (store, project, schema) = (&store, &project, &schema);
            async move { store.online_read(project, schema, &keys(n), &features()).await }
        };
        write(100, "v").await.expect("write through the proxy");
        let few = read(1).await.expect("one-key read");
        let many = read(MANY).await.expect("many-key read");

        let port = proxy.stop().await;
        let address = format!("127.0.0.1:{port}");
        for what in ["one-key read", "many-key read", "write"] {
            let started = Instant::now();
            let result = match what {
                "one-key read" => read(1).await.map(|_| ()),
                "many-key read" => read(MANY).await.map(|_| ()),
                _ => write(200, "lost").await.map(|_| ()),
            };
            let e = result.expect_err(what);
            let msg = e.to_string();
            assert!(e.is_retryable(), "{what}: {e:?}");
            assert!(msg.contains(&address), "{what}: names the address: {msg}");
            assert!(started.elapsed() < GIVE_UP_WITHIN, "{what}: {:?}", started.elapsed());
        }

        // Back on the same port: the same store serves again.
        let proxy = Proxy::start(port).await;
        let deadline = Instant::now() + GIVE_UP_WITHIN;
        loop {
            match (read(1).await, read(MANY).await) {
                (Ok(a), Ok(b)) => {
                    assert_eq!((a, b), (few.clone(), many.clone()));
                    break;
                }
                (a, b) => assert!(Instant::now() < deadline, "no recovery: {a:?} {b:?}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        write(300, "back").await.expect("write after recovery");
        proxy.stop().await;
    }
}
