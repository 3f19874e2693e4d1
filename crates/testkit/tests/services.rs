//! The guards against the real services: each database exists while its
//! guard lives and is gone after drop (also with an open session on it), and
//! two Redis leases never share a database.

use larder_testkit::{MySqlDatabase, PgDatabase, RedisDb, SqlDatabase, SqlServer};
use sqlx::{Connection, MySqlConnection, PgConnection};

async fn exists(server: SqlServer, name: &str) -> bool {
    match server {
        SqlServer::Postgres => {
            let mut c = PgConnection::connect(server.admin_url()).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_one(&mut c)
                .await
                .unwrap();
            n == 1
        }
        SqlServer::MySql => {
            let mut c = MySqlConnection::connect(server.admin_url()).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?")
                .bind(name)
                .fetch_one(&mut c)
                .await
                .unwrap();
            n == 1
        }
    }
}

#[tokio::test]
async fn postgres_database_is_dropped_with_its_guard() {
    let db = PgDatabase::create("larder_tk").await;
    let name = db.name().to_string();
    assert!(name.starts_with("larder_tk_") && name.len() == "larder_tk_".len() + 32);
    assert_eq!(db.url(), format!("postgres://root@127.0.0.1:5432/{name}"));
    assert_eq!(db.postgresql_url(), format!("postgresql://root@127.0.0.1:5432/{name}"));
    assert_eq!(
        db.feast_url(),
        format!("postgresql+psycopg://root@127.0.0.1:5432/{name}")
    );
    assert_eq!((db.host(), db.port(), db.user()), ("127.0.0.1", 5432, "root"));
    assert!(exists(SqlServer::Postgres, &name).await);
    // A session still open on the database does not stop the drop.
    let _open = PgConnection::connect(db.url()).await.unwrap();
    drop(db);
    assert!(!exists(SqlServer::Postgres, &name).await);
}

#[tokio::test]
async fn mysql_database_is_dropped_with_its_guard() {
    let db = MySqlDatabase::create("larder_tk").await;
    let name = db.name().to_string();
    assert_eq!(db.url(), format!("mysql://root@127.0.0.1:3306/{name}"));
    assert_eq!(db.feast_url(), format!("mysql+pymysql://root@127.0.0.1:3306/{name}"));
    assert_eq!((db.host(), db.port(), db.user()), ("127.0.0.1", 3306, "root"));
    assert!(exists(SqlServer::MySql, &name).await);
    // A session inside a transaction (holding a metadata lock) is ended first.
    let mut open = MySqlConnection::connect(db.url()).await.unwrap();
    sqlx::query("CREATE TABLE t (x INT)").execute(&mut open).await.unwrap();
    sqlx::query("BEGIN").execute(&mut open).await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut open)
        .await
        .unwrap();
    drop(db);
    assert!(!exists(SqlServer::MySql, &name).await);
}

#[tokio::test]
async fn remove_reports_and_disarms() {
    for server in [SqlServer::Postgres, SqlServer::MySql] {
        let db = SqlDatabase::create_on(server, server.admin_url(), "larder_tk")
            .await
            .unwrap();
        let name = db.name().to_string();
        db.remove().await.unwrap();
        assert!(!exists(server, &name).await, "{server:?}");
    }
    let err = SqlDatabase::create_on(SqlServer::Postgres, "postgres://root@127.0.0.1:1/postgres", "larder_tk")
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
}

#[test]
fn redis_leases_are_exclusive_and_flushed() {
    let a = RedisDb::lease();
    let b = RedisDb::lease();
    assert_ne!(a.number(), b.number());
    assert_ne!(a.number(), 0);
    assert_eq!(a.connection_string(), format!("127.0.0.1:6379,db={}", a.number()));
    assert_eq!(a.url(), format!("redis://127.0.0.1:6379/{}", a.number()));
    let mut c = a.connection();
    let key = larder_testkit::unique_name("k");
    redis::cmd("SET").arg(&key).arg("v").query::<()>(&mut c).unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let dbsize_b: i64 = redis::cmd("DBSIZE").query(&mut b.connection()).unwrap();
    assert_eq!(dbsize_b, 0, "the other lease does not see it");
    let lease_key = format!("larder-testkit:redis-db-lease:{}", a.number());
    let mut zero = redis::Client::open("redis://127.0.0.1:6379/0")
        .unwrap()
        .get_connection()
        .unwrap();
    let ours: Option<String> = redis::cmd("GET").arg(&lease_key).query(&mut zero).unwrap();
    assert!(ours.is_some(), "leased");
    drop(a);
    let left: i64 = redis::cmd("EXISTS").arg(&key).query(&mut c).unwrap();
    assert_eq!(left, 0, "flushed on drop");
    let now: Option<String> = redis::cmd("GET").arg(&lease_key).query(&mut zero).unwrap();
    assert_ne!(now, ours, "released (or leased again by another test)");
}
