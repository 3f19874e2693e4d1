//! MySQL/MariaDB online store, in the layout of Feast's MySQL store:
//! table `<project>_<view>`, `entity_key` = hex of the v3 key bytes
//! (VARCHAR(512)), `value` BLOB, TIMESTAMP columns in UTC.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use larder_model::rows::RowBatch;
use prost::Message;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Executor, MySqlPool, Row};

use crate::encode::datetime_from_nanos;
use crate::retry::Server;
use crate::{
    OnlineStore, Operation, ReadAssembler, ReadRow, Result, ViewSchema, WriteStats, newest_per_key, table_name,
};

/// 5 parameters per row; MySQL allows 65,535.
const ROWS_PER_STATEMENT: usize = 10_000;
const KEYS_PER_READ: usize = 10_000;
/// How long `connect` waits for the server's first answer (sqlx's pool
/// gives up after as long).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    pub max_conn: u32,
}

pub struct MySqlStore {
    pool: MySqlPool,
    /// For retries and errors that name the server.
    server: Server,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// MySQL TIMESTAMP has microsecond precision at most and is stored as naive UTC here.
fn naive(ns: i64) -> NaiveDateTime {
    datetime_from_nanos(ns).naive_utc()
}

impl MySqlStore {
    pub async fn connect(s: &MySqlSettings) -> Result<Self> {
        let mut opts = MySqlConnectOptions::new()
            .host(&s.host)
            .port(s.port)
            .database(&s.database)
            .username(&s.user);
        if let Some(p) = &s.password {
            opts = opts.password(p);
        }
        let server = Server::new("mysql", format!("{}:{}", s.host, s.port));
        // sqlx's pool retries a refused connection until its acquire timeout
        // (30 s) and then says only "pool timed out": one connection of our
        // own first fails at once, with the reason and the address.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::ConnectOptions::connect(&opts))
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into())))
            .map_err(|e| server.classify(Operation::Connect, e.into()))?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = MySqlPoolOptions::new()
            .max_connections(s.max_conn.max(1))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET time_zone = '+00:00'").await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| server.classify(Operation::Connect, e.into()))?;
        Ok(Self { pool, server })
    }
}

impl MySqlStore {
    async fn create_tables(&self, project: &str, keep: &[ViewSchema], remove: &[ViewSchema]) -> Result<()> {
        for v in keep {
            let t = table_name(project, &v.name)?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS `{t}` (entity_key VARCHAR(512), feature_name VARCHAR(256), value BLOB, event_ts timestamp NULL DEFAULT NULL, created_ts timestamp NULL DEFAULT NULL, PRIMARY KEY(entity_key, feature_name))"
            )))
            .execute(&self.pool)
            .await?;
            let exists = sqlx::query(
                "SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?",
            )
            .bind(&t)
            .bind(format!("{t}_ek"))
            .fetch_optional(&self.pool)
            .await?;
            if exists.is_none() {
                sqlx::query(AssertSqlSafe(format!(
                    "ALTER TABLE `{t}` ADD INDEX `{t}_ek` (entity_key)"
                )))
                .execute(&self.pool)
                .await?;
            }
        }
        self.drop_tables(project, remove).await
    }

    async fn drop_tables(&self, project: &str, views: &[ViewSchema]) -> Result<()> {
        for v in views {
            let t = table_name(project, &v.name)?;
            sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS `{t}`")))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// One transaction: if the connection breaks before the commit is
    /// acknowledged, either nothing was written or everything was, and a
    /// second run writes the same rows again under the same newer-wins rule.
    async fn write_once(&self, project: &str, view: &ViewSchema, batch: &RowBatch) -> Result<WriteStats> {
        let t = table_name(project, &view.name)?;
        let rows = newest_per_key(&batch.rows);
        let mut cells = Vec::with_capacity(rows.len() * batch.features.len());
        for r in &rows {
            let key = hex(&r.entity_key);
            for (f, v) in batch.features.iter().zip(&r.values) {
                cells.push((key.clone(), f, v, r.event_ts, r.created_ts));
            }
        }
        let mut tx = self.pool.begin().await?;
        for chunk in cells.chunks(ROWS_PER_STATEMENT) {
            let mut sql = format!("INSERT INTO `{t}` (entity_key, feature_name, value, event_ts, created_ts) VALUES ");
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 { "(?,?,?,?,?)" } else { ",(?,?,?,?,?)" });
            }
            // Assignments run left to right: event_ts must change last so the
            // comparisons above it still see the stored time.
            sql.push_str(
                " ON DUPLICATE KEY UPDATE value = IF(VALUES(event_ts) >= event_ts, VALUES(value), value), created_ts = IF(VALUES(event_ts) >= event_ts, VALUES(created_ts), created_ts), event_ts = IF(VALUES(event_ts) >= event_ts, VALUES(event_ts), event_ts)",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (key, f, v, ts, created) in chunk {
                q = q
                    .bind(key.as_str())
                    .bind(f.as_str())
                    .bind(v.encode_to_vec())
                    .bind(naive(*ts))
                    .bind(created.map(naive));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(WriteStats {
            rows: rows.len(),
            skipped_older: 0,
        })
    }

    async fn read_once(
        &self,
        project: &str,
        view: &ViewSchema,
        keys: &[Vec<u8>],
        features: &[String],
    ) -> Result<Vec<Option<ReadRow>>> {
        let t = table_name(project, &view.name)?;
        let mut out = ReadAssembler::new(features, keys.len());
        for chunk in keys.chunks(KEYS_PER_READ) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT entity_key, feature_name, value, event_ts FROM `{t}` WHERE entity_key IN ({placeholders})"
            )));
            for k in chunk {
                q = q.bind(hex(k));
            }
            for row in q.fetch_all(&self.pool).await? {
                let key_hex: String = row.try_get(0)?;
                let Some(key) = unhex(&key_hex) else { continue };
                let ts: Option<DateTime<Utc>> = row.try_get(3)?;
                let feature: String = row.try_get(1)?;
                let value: Vec<u8> = row.try_get(2)?;
                out.add(
                    key,
                    &feature,
                    &value,
                    ts.map(|t| crate::encode::nanos_from_datetime(&t)),
                )?;
            }
        }
        Ok(out.finish(keys))
    }
}

/// Every operation runs through `Server::retry_once`: sqlx checks an idle
/// connection before handing it out, but one that breaks during the query
/// (a restart, a failover, `KILL`) fails that query.
#[async_trait]
impl OnlineStore for MySqlStore {
    async fn ping(&self) -> Result<()> {
        self.server
            .retry_once(Operation::Read, || async {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            })
            .await
    }

    async fn update(&self, project: &str, keep: &[ViewSchema], remove: &[ViewSchema]) -> Result<()> {
        self.server
            .retry_once(Operation::Write, || self.create_tables(project, keep, remove))
            .await
    }

    async fn teardown(&self, project: &str, views: &[ViewSchema]) -> Result<()> {
        self.server
            .retry_once(Operation::Write, || self.drop_tables(project, views))
            .await
    }

    async fn online_write_batch(&self, project: &str, view: &ViewSchema, batch: &RowBatch) -> Result<WriteStats> {
        self.server
            .retry_once(Operation::Write, || self.write_once(project, view, batch))
            .await
    }

    /// Index pages are then touched in order: far fewer full-page WAL
    /// images and buffer-pool misses than random keys.
    fn prefers_key_order(&self) -> bool {
        true
    }

    async fn online_read(
        &self,
        project: &str,
        view: &ViewSchema,
        keys: &[Vec<u8>],
        features: &[String],
    ) -> Result<Vec<Option<ReadRow>>> {
        self.server
            .retry_once(Operation::Read, || self.read_once(project, view, keys, features))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex("0001abff"), Some(b));
        assert_eq!(unhex("zz"), None);
    }
}
