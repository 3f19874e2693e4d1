//! SQLite online store (feast-compat.md §6.1): table `<project>_<view>`,
//! one row per (entity key, feature), timestamps as INTEGER seconds in
//! columns declared `timestamp` (the SDK's converters need that name).
//!
//! DDL and writes go through sqlx. Reads use a small pool of rusqlite
//! connections on the blocking pool: sqlx's SQLite driver hands every result
//! row from its worker thread to the caller through a channel, and for a
//! 100-key read those ~1,000 thread wake-ups cost far more than SQLite's
//! own work.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use larder_model::rows::RowBatch;
use prost::Message;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, SqlitePool};

use crate::encode::value_text;
use crate::{
    OnlineError, OnlineStore, ReadRow, Result, ViewSchema, WriteStats, decode_value, newest_per_key, table_name,
};

/// SQLite allows 32,766 bound parameters per statement; 6 per row.
const ROWS_PER_STATEMENT: usize = 5_000;
/// Read connections, and at most this many reads at once: every read then
/// finds a warm connection instead of opening one.
const READERS: usize = 8;
/// Reads of at most this many keys run on the calling task: a handful of
/// indexed lookups in a WAL database (readers never wait for the writer)
/// take microseconds, less than the hand-off to the blocking pool.
const INLINE_READ_MAX_KEYS: usize = 4;

pub struct SqliteStore {
    pool: SqlitePool,
    readers: Arc<Readers>,
}

/// Read connections, reused across requests so their prepared statements
/// and page caches stay warm.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    permits: tokio::sync::Semaphore,
}

impl Readers {
    fn take(&self) -> Result<rusqlite::Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let c = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(Duration::from_secs(30))?;
        c.set_prepared_statement_cache_capacity(64);
        Ok(c)
    }

    fn give(&self, c: rusqlite::Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < READERS {
            idle.push(c);
        }
    }

    /// One indexed point lookup per key (a cached statement), rows gathered
    /// in request order.
    fn read(&self, table: &str, keys: &[Vec<u8>], features: &[String]) -> Result<Vec<Option<ReadRow>>> {
        let conn = self.take()?;
        // One read transaction for all keys: a consistent snapshot, and the
        // file lock is taken once instead of once per lookup.
        let out = conn
            .unchecked_transaction()
            .map_err(OnlineError::from)
            .and_then(|tx| read_keys(&tx, table, keys, features));
        // A connection that failed is dropped rather than reused.
        if out.is_ok() {
            self.give(conn);
        }
        out
    }
}

fn read_keys(
    conn: &rusqlite::Connection,
    table: &str,
    keys: &[Vec<u8>],
    features: &[String],
) -> Result<Vec<Option<ReadRow>>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT feature_name, value, event_ts FROM \"{table}\" WHERE entity_key = ?1"
    ))?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let mut rows = stmt.query([key.as_slice()])?;
        let mut found: Option<ReadRow> = None;
        while let Some(row) = rows.next()? {
            let name = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            // Few features per request: a scan beats hashing.
            let Some(i) = features.iter().position(|f| f == name) else {
                continue;
            };
            let value = decode_value(
                name,
                row.get_ref(1)?
                    .as_blob_or_null()
                    .map_err(rusqlite::Error::from)?
                    .unwrap_or(&[]),
            )?;
            let ts = row.get_ref(2)?.as_i64_or_null().map_err(rusqlite::Error::from)?;
            let r = found.get_or_insert_with(|| ReadRow {
                event_ts: i64::MIN,
                values: vec![None; features.len()],
            });
            r.values[i] = Some(value);
            if let Some(ts) = ts {
                r.event_ts = r.event_ts.max(ts.saturating_mul(1_000_000_000));
            }
        }
        out.push(found);
    }
    Ok(out)
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OnlineError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            // 64 MiB of page cache keeps the B-tree's inner pages in memory during large writes.
            .pragma("cache_size", "-65536");
        // One writer connection: SQLite takes one writer at a time anyway, and
        // every extra connection would grow its own 64 MiB page cache (peak
        // RSS grew with the input when four did). Reads use `Readers`.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(READERS),
        });
        Ok(Self { pool, readers })
    }
}

#[async_trait]
impl OnlineStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn update(&self, project: &str, keep: &[ViewSchema], remove: &[ViewSchema]) -> Result<()> {
        for v in keep {
            let t = table_name(project, &v.name)?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS \"{t}\" (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT, vector_value BLOB, event_ts timestamp, created_ts timestamp, PRIMARY KEY(entity_key, feature_name))"
            )))
            .execute(&self.pool)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE INDEX IF NOT EXISTS \"{t}_ek\" ON \"{t}\" (entity_key)"
            )))
            .execute(&self.pool)
            .await?;
        }
        self.teardown(project, remove).await
    }

    async fn teardown(&self, project: &str, views: &[ViewSchema]) -> Result<()> {
        for v in views {
            let t = table_name(project, &v.name)?;
            sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS \"{t}\"")))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn online_write_batch(&self, project: &str, view: &ViewSchema, batch: &RowBatch) -> Result<WriteStats> {
        let t = table_name(project, &view.name)?;
        let mut rows = newest_per_key(&batch.rows);
        // Key order: each B-tree page is visited once per batch instead of at random.
        rows.sort_unstable_by(|a, b| a.entity_key.cmp(&b.entity_key));
        let mut cells = Vec::with_capacity(rows.len() * batch.features.len());
        for r in &rows {
            for (f, v) in batch.features.iter().zip(&r.values) {
                cells.push((r, f, v));
            }
        }
        let mut tx = self.pool.begin().await?;
        for chunk in cells.chunks(ROWS_PER_STATEMENT) {
            let mut sql = format!(
                "INSERT INTO \"{t}\" (entity_key, feature_name, value, value_text, event_ts, created_ts) VALUES "
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 { "(?,?,?,?,?,?)" } else { ",(?,?,?,?,?,?)" });
            }
            sql.push_str(&format!(
                " ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts WHERE excluded.event_ts >= \"{t}\".event_ts"
            ));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (r, f, v) in chunk {
                q = q
                    .bind(r.entity_key.as_slice())
                    .bind(f.as_str())
                    .bind(v.encode_to_vec())
                    .bind(value_text(v))
                    .bind(r.event_ts.div_euclid(1_000_000_000))
                    .bind(r.created_ts.map(|c| c.div_euclid(1_000_000_000)));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(WriteStats {
            rows: rows.len(),
            skipped_older: 0,
        })
    }

    fn preferred_batch_rows(&self) -> usize {
        50_000
    }

    /// Random keys make each commit rewrite most index pages (1 M entities:
    /// 19.7 GiB written); in key order each page is written about once.
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
        let table = table_name(project, &view.name)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let _permit = self
            .readers
            .permits
            .acquire()
            .await
            .map_err(|e| OnlineError::Worker(format!("sqlite readers closed: {e}")))?;
        if keys.len() <= INLINE_READ_MAX_KEYS {
            return self.readers.read(&table, keys, features);
        }
        let readers = self.readers.clone();
        let (keys, features) = (keys.to_vec(), features.to_vec());
        tokio::task::spawn_blocking(move || readers.read(&table, &keys, &features))
            .await
            .map_err(|e| OnlineError::Worker(format!("sqlite read task failed: {e}")))?
    }
}
