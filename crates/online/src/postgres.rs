//! PostgreSQL online store (feast-compat.md §6.2): table `<project>_<view>`
//! in `db_schema`, BYTEA keys and values, TIMESTAMPTZ times. Writes are one
//! `INSERT … SELECT FROM UNNEST(arrays)` per chunk: a single prepared
//! statement whatever the batch size.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use larder_model::rows::RowBatch;
use prost::Message;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::encode::{datetime_from_nanos, nanos_from_datetime, value_text};
use crate::{
    OnlineError, OnlineStore, ReadAssembler, ReadRow, Result, ViewSchema, WriteStats, newest_per_key, table_name,
};

const ROWS_PER_STATEMENT: usize = 50_000;

/// Connection settings, with Feast's key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub db_schema: String,
    pub user: String,
    pub password: Option<String>,
    pub sslmode: String,
    pub max_conn: u32,
}

pub struct PostgresStore {
    pool: PgPool,
    schema: String,
}

impl PostgresStore {
    pub async fn connect(s: &PostgresSettings) -> Result<Self> {
        larder_model::names::check_feast_name(&s.db_schema)
            .map_err(|e| OnlineError::InvalidName(format!("db_schema: {e}")))?;
        let ssl = PgSslMode::from_str_opt(&s.sslmode)
            .ok_or_else(|| OnlineError::Config(format!("unknown sslmode {:?}", s.sslmode)))?;
        let mut opts = PgConnectOptions::new()
            .host(&s.host)
            .port(s.port)
            .database(&s.database)
            .username(&s.user)
            .ssl_mode(ssl)
            .options([("timezone", "UTC")]);
        if let Some(p) = &s.password {
            opts = opts.password(p);
        }
        let pool = PgPoolOptions::new()
            .max_connections(s.max_conn.max(1))
            .connect_with(opts)
            .await?;
        Ok(Self {
            pool,
            schema: s.db_schema.clone(),
        })
    }

    fn qualified(&self, project: &str, view: &str) -> Result<(String, String)> {
        let t = table_name(project, view)?;
        Ok((format!("\"{}\".\"{t}\"", self.schema), t))
    }
}

/// `PgSslMode` parsing without depending on its `FromStr` error type.
trait SslModeExt: Sized {
    fn from_str_opt(s: &str) -> Option<Self>;
}

impl SslModeExt for PgSslMode {
    fn from_str_opt(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => PgSslMode::Disable,
            "allow" => PgSslMode::Allow,
            "prefer" => PgSslMode::Prefer,
            "require" => PgSslMode::Require,
            "verify-ca" => PgSslMode::VerifyCa,
            "verify-full" => PgSslMode::VerifyFull,
            _ => return None,
        })
    }
}

#[async_trait]
impl OnlineStore for PostgresStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn update(&self, project: &str, keep: &[ViewSchema], remove: &[ViewSchema]) -> Result<()> {
        if !keep.is_empty() && self.schema != "public" {
            sqlx::query(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                self.schema
            )))
            .execute(&self.pool)
            .await?;
        }
        for v in keep {
            let (q, t) = self.qualified(project, &v.name)?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {q} (entity_key BYTEA, feature_name TEXT, value BYTEA, value_text TEXT NULL, vector_value BYTEA NULL, event_ts TIMESTAMPTZ, created_ts TIMESTAMPTZ, PRIMARY KEY(entity_key, feature_name))"
            )))
            .execute(&self.pool)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE INDEX IF NOT EXISTS \"{t}_ek\" ON {q} (entity_key)"
            )))
            .execute(&self.pool)
            .await?;
            if v.has_string_feature() {
                sqlx::query(AssertSqlSafe(format!(
                    "CREATE INDEX IF NOT EXISTS \"{t}_fts_idx\" ON {q} USING GIN (to_tsvector('english', value_text))"
                )))
                .execute(&self.pool)
                .await?;
            }
        }
        self.teardown(project, remove).await
    }

    async fn teardown(&self, project: &str, views: &[ViewSchema]) -> Result<()> {
        for v in views {
            let (q, _) = self.qualified(project, &v.name)?;
            sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {q}")))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn online_write_batch(&self, project: &str, view: &ViewSchema, batch: &RowBatch) -> Result<WriteStats> {
        let (q, t) = self.qualified(project, &view.name)?;
        let rows = newest_per_key(&batch.rows);
        let sql = format!(
            "INSERT INTO {q} (entity_key, feature_name, value, value_text, event_ts, created_ts) SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::bytea[], $4::text[], $5::timestamptz[], $6::timestamptz[]) ON CONFLICT (entity_key, feature_name) DO UPDATE SET value = EXCLUDED.value, value_text = EXCLUDED.value_text, event_ts = EXCLUDED.event_ts, created_ts = EXCLUDED.created_ts WHERE EXCLUDED.event_ts >= \"{t}\".event_ts"
        );
        let per_row = batch.features.len().max(1);
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks((ROWS_PER_STATEMENT / per_row).max(1)) {
            let n = chunk.len() * per_row;
            let (mut keys, mut names, mut values, mut texts, mut ts, mut created) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::<DateTime<Utc>>::with_capacity(n),
                Vec::<Option<DateTime<Utc>>>::with_capacity(n),
            );
            for r in chunk {
                for (f, v) in batch.features.iter().zip(&r.values) {
                    keys.push(r.entity_key.clone());
                    names.push(f.clone());
                    values.push(v.encode_to_vec());
                    texts.push(value_text(v));
                    ts.push(datetime_from_nanos(r.event_ts));
                    created.push(r.created_ts.map(datetime_from_nanos));
                }
            }
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(keys)
                .bind(names)
                .bind(values)
                .bind(texts)
                .bind(ts)
                .bind(created)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(WriteStats {
            rows: rows.len(),
            skipped_older: 0,
        })
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
        let (q, _) = self.qualified(project, &view.name)?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT entity_key, feature_name, value, event_ts FROM {q} WHERE entity_key = ANY($1) AND feature_name = ANY($2)"
        )))
        .bind(keys)
        .bind(features)
        .fetch_all(&self.pool)
        .await?;
        let mut out = ReadAssembler::new(features, keys.len());
        for row in rows {
            let ts: DateTime<Utc> = row.try_get(3)?;
            out.add(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                Some(nanos_from_datetime(&ts)),
            )?;
        }
        Ok(out.finish(keys))
    }
}
