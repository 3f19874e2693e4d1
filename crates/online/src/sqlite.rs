//! SQLite online store (feast-compat.md §6.1): table `<project>_<view>`,
//! one row per (entity key, feature), timestamps as INTEGER seconds in
//! columns declared `timestamp` (the SDK's converters need that name).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use larder_model::rows::RowBatch;
use prost::Message;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqlitePool};

use crate::encode::value_text;
use crate::{
    OnlineError, OnlineStore, ReadAssembler, ReadRow, Result, ViewSchema, WriteStats, newest_per_key, table_name,
};

/// SQLite allows 32,766 bound parameters per statement; 6 per row.
const ROWS_PER_STATEMENT: usize = 5_000;
const KEYS_PER_READ: usize = 30_000;

pub struct SqliteStore {
    pool: SqlitePool,
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
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl OnlineStore for SqliteStore {
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

    async fn online_read(
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
            let sql = format!(
                "SELECT entity_key, feature_name, value, event_ts FROM \"{t}\" WHERE entity_key IN ({placeholders})"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(k.as_slice());
            }
            for row in q.fetch_all(&self.pool).await? {
                let ts: i64 = row.try_get(3)?;
                out.add(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    Some(ts.saturating_mul(1_000_000_000)),
                )?;
            }
        }
        Ok(out.finish(keys))
    }
}
