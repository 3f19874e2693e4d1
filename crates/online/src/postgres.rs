//! PostgreSQL online store (feast-compat.md §6.2): table `<project>_<view>`
//! in `db_schema`, BYTEA keys and values, TIMESTAMPTZ times. Writes are one
//! `INSERT … SELECT FROM UNNEST(arrays)` per chunk: a single prepared
//! statement whatever the batch size.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use larder_model::rows::RowBatch;
use prost::Message;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::encode::{datetime_from_nanos, nanos_from_datetime, value_text};
use crate::retry::Server;
use crate::{
    OnlineError, OnlineStore, Operation, ReadAssembler, ReadRow, Result, ViewSchema, WriteStats, newest_per_key,
    table_name,
};

const ROWS_PER_STATEMENT: usize = 50_000;
/// How long `connect` waits for the server's first answer (sqlx's pool
/// gives up after as long).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connection settings, with the key names of Feast's `PostgreSQLConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub db_schema: String,
    pub user: String,
    pub password: Option<String>,
    /// libpq's `sslmode`. Feast defaults it to `require` (so does
    /// [`OnlineStoreConfig`](crate::OnlineStoreConfig)); empty means libpq's own default
    /// (`PGSSLMODE`, else `prefer`), which is what Feast's `sslmode: null` gets.
    pub sslmode: String,
    /// Feast's `sslrootcert_path` (libpq `sslrootcert`): the CA certificates
    /// the server's certificate must chain to.
    pub sslrootcert_path: Option<PathBuf>,
    /// Feast's `sslcert_path` (libpq `sslcert`): a client certificate, for
    /// servers that authenticate clients by certificate.
    pub sslcert_path: Option<PathBuf>,
    /// Feast's `sslkey_path` (libpq `sslkey`): the client certificate's key.
    pub sslkey_path: Option<PathBuf>,
    pub max_conn: u32,
}

/// Feast's defaults for the optional keys. `host`, `database` and `user`
/// are required in a config file; the values here only let code and tests
/// write `..PostgresSettings::default()`.
impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 5432,
            database: "postgres".into(),
            db_schema: "public".into(),
            user: "postgres".into(),
            password: None,
            sslmode: "require".into(),
            sslrootcert_path: None,
            sslcert_path: None,
            sslkey_path: None,
            max_conn: 10,
        }
    }
}

impl PostgresSettings {
    /// sqlx options for these settings, with TLS applied as libpq applies it
    /// (Feast connects through psycopg, i.e. libpq):
    ///
    /// - `require` with a root certificate verifies the server's chain, like
    ///   `verify-ca` (libpq keeps that for compatibility; sqlx's `require`
    ///   never verifies, so the mode is raised here);
    /// - certificate files are opened here, so a missing or unreadable one is
    ///   named (sqlx would only say "No such file or directory" at connect);
    /// - with `disable` (and `allow`, which sqlx treats as `disable`) no file
    ///   is read, as libpq reads none.
    pub fn connect_options(&self) -> Result<PgConnectOptions> {
        let mut opts = PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .database(&self.database)
            .username(&self.user)
            .options([("timezone", "UTC")]);
        if let Some(p) = &self.password {
            opts = opts.password(p);
        }
        let mode = match self.sslmode.as_str() {
            "" => None,
            m => Some(PgSslMode::from_str_opt(m).ok_or_else(|| {
                OnlineError::Config(format!(
                    "unknown sslmode {m:?}; use disable, allow, prefer, require, verify-ca or verify-full"
                ))
            })?),
        };
        if matches!(mode, Some(PgSslMode::Disable | PgSslMode::Allow)) {
            return Ok(opts.ssl_mode(PgSslMode::Disable));
        }
        if self.sslcert_path.is_some() != self.sslkey_path.is_some() {
            return Err(OnlineError::Config(
                "sslcert_path and sslkey_path must be set together (a client certificate needs its key)".into(),
            ));
        }
        for (key, path) in [
            ("sslrootcert_path", &self.sslrootcert_path),
            ("sslcert_path", &self.sslcert_path),
            ("sslkey_path", &self.sslkey_path),
        ] {
            if let Some(p) = path {
                std::fs::File::open(p)
                    .map_err(|e| OnlineError::Config(format!("{key} {}: cannot read: {e}", p.display())))?;
            }
        }
        let mode = match mode {
            Some(PgSslMode::Require) if self.sslrootcert_path.is_some() => Some(PgSslMode::VerifyCa),
            m => m,
        };
        if let Some(m) = mode {
            opts = opts.ssl_mode(m);
        }
        if let Some(p) = &self.sslrootcert_path {
            opts = opts.ssl_root_cert(p);
        }
        if let (Some(c), Some(k)) = (&self.sslcert_path, &self.sslkey_path) {
            opts = opts.ssl_client_cert(c).ssl_client_key(k);
        }
        Ok(opts)
    }

    /// A failed TLS handshake, turned into a configuration error that says
    /// which TLS settings were in force: the usual cause is a wrong
    /// `sslrootcert_path` or a host name the certificate does not name, and
    /// retrying will not help. sqlx reports a rejected certificate as an I/O
    /// error of kind `InvalidData` (rustls' error inside), its own TLS
    /// set-up problems as `Tls`; other failures pass through unchanged.
    fn tls_failure(&self, e: sqlx::Error) -> OnlineError {
        let tls = match &e {
            sqlx::Error::Tls(_) => true,
            sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData && self.sslmode != "disable",
            _ => false,
        };
        if !tls {
            return e.into();
        }
        let root = match &self.sslrootcert_path {
            Some(p) => format!(", sslrootcert_path {}", p.display()),
            None => String::new(),
        };
        let mode = if self.sslmode.is_empty() {
            "(libpq default)"
        } else {
            &self.sslmode
        };
        OnlineError::Config(format!(
            "TLS connection to PostgreSQL {}:{} failed (sslmode {mode}{root}): {e}",
            self.host, self.port
        ))
    }
}

pub struct PostgresStore {
    pool: PgPool,
    schema: String,
    /// For retries and errors that name the server.
    server: Server,
}

impl PostgresStore {
    pub async fn connect(s: &PostgresSettings) -> Result<Self> {
        larder_model::names::check_feast_name(&s.db_schema)
            .map_err(|e| OnlineError::InvalidName(format!("db_schema: {e}")))?;
        let opts = s.connect_options()?;
        let server = Server::new("postgres", format!("{}:{}", s.host, s.port));
        // sqlx's pool retries a refused connection until its acquire timeout
        // (30 s) and then says only "pool timed out": one connection of our
        // own first fails at once, with the reason and the address.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::ConnectOptions::connect(&opts))
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into())))
            .map_err(|e| server.classify(Operation::Connect, s.tls_failure(e)))?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(s.max_conn.max(1))
            .connect_with(opts)
            .await
            .map_err(|e| server.classify(Operation::Connect, s.tls_failure(e)))?;
        Ok(Self {
            pool,
            schema: s.db_schema.clone(),
            server,
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

impl PostgresStore {
    async fn create_tables(&self, project: &str, keep: &[ViewSchema], remove: &[ViewSchema]) -> Result<()> {
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
        self.drop_tables(project, remove).await
    }

    async fn drop_tables(&self, project: &str, views: &[ViewSchema]) -> Result<()> {
        for v in views {
            let (q, _) = self.qualified(project, &v.name)?;
            sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {q}")))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// One transaction: if the connection breaks before the commit is
    /// acknowledged, either nothing was written or everything was, and a
    /// second run writes the same rows again under the same newer-wins rule.
    async fn write_once(&self, project: &str, view: &ViewSchema, batch: &RowBatch) -> Result<WriteStats> {
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

    async fn read_once(
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

/// Every operation runs through `Server::retry_once`: sqlx checks an idle
/// connection before handing it out, but one that breaks during the query
/// (a restart, a failover, `pg_terminate_backend`) fails that query.
#[async_trait]
impl OnlineStore for PostgresStore {
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
