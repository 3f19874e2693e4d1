//! The SQL registry: Feast 0.67's 14-table layout (feast-compat.md §3) on
//! PostgreSQL, MySQL/MariaDB and SQLite through one sqlx `Any` pool.
//!
//! Every object write is one transaction that locks the object's row
//! (`SELECT … FOR UPDATE`; on SQLite the database write lock is taken
//! first), so concurrent writers of different objects never lose each
//! other's work, and concurrent materialization-interval appends to one
//! view serialize. Deadlocks, serialization failures, busy databases and
//! insert races are retried.

mod dialect;
mod retry;
mod schema;

use std::time::Duration;

use async_trait::async_trait;
use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::core as fc;
use prost::Message;
use prost_types::Timestamp;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor, Row, Transaction};
use tracing::debug;

use crate::store::{add_interval, other_view_kinds, prepare_write, sort_by_name, storage_project, view_name_taken};
use crate::{ApplyOutcome, Registry, RegistryError, Result, now_timestamp};

pub use dialect::Dialect;
use retry::retrying;
use schema::table;
pub use schema::{ALL_TABLES, schema_statements};

/// A Feast SQL registry.
pub struct SqlRegistry {
    pool: AnyPool,
    dialect: Dialect,
}

impl SqlRegistry {
    /// Connect to an sqlx URL (`postgres://`, `mysql://`, `sqlite://`) and
    /// create Feast's tables if they are missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres") {
            Dialect::Postgres
        } else if url.starts_with("mysql") || url.starts_with("mariadb") {
            Dialect::MySql
        } else if url.starts_with("sqlite") {
            Dialect::Sqlite
        } else {
            return Err(RegistryError::Config(
                "registry URL must start with postgresql://, mysql:// or sqlite://".into(),
            ));
        };
        if dialect == Dialect::Sqlite {
            create_sqlite_parent(url)?;
        } else {
            // One direct connection first: a refused or unreachable server is an error
            // now, not after the pool's 60 s of silent retries.
            let probe = Duration::from_secs(15);
            match tokio::time::timeout(probe, <sqlx::AnyConnection as sqlx::Connection>::connect(url)).await {
                Ok(Ok(conn)) => {
                    let _ = sqlx::Connection::close(conn).await;
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(RegistryError::Timeout(probe)),
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match dialect {
                        // Row locks without gap locks: concurrent inserts of different names never deadlock.
                        Dialect::MySql => {
                            conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                                .await?;
                        }
                        Dialect::Sqlite => {
                            conn.execute("PRAGMA busy_timeout = 30000").await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                        }
                        Dialect::Postgres => {}
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let reg = Self { pool, dialect };
        reg.ensure_schema().await?;
        Ok(reg)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn ensure_schema(&self) -> Result<()> {
        for stmt in schema_statements(self.dialect) {
            let mut attempt = 0u32;
            loop {
                // Concurrent CREATE TABLE IF NOT EXISTS can race in the catalog; retry.
                match self.pool.execute(AssertSqlSafe(stmt.clone())).await {
                    Ok(_) => break,
                    Err(e) if attempt < 5 => {
                        debug!(error = %e, "retrying schema statement");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// A statement with `?` placeholders, in this registry's dialect.
    fn sql(&self, s: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(self.dialect.placeholders(s))
    }

    /// Start a write transaction. SQLite takes the database write lock up
    /// front, so two writers never both read and then both try to upgrade.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Sqlite {
            tx.execute("UPDATE feast_metadata SET last_updated_timestamp = last_updated_timestamp WHERE 1 = 0")
                .await?;
        }
        Ok(tx)
    }

    async fn ensure_project(&self, tx: &mut Transaction<'static, Any>, project: &str, now: Timestamp) -> Result<()> {
        let proto = fc::Project {
            spec: Some(fc::ProjectSpec {
                name: project.into(),
                ..Default::default()
            }),
            meta: Some(fc::ProjectMeta {
                created_timestamp: Some(now),
                last_updated_timestamp: Some(now),
            }),
        };
        let q = self.dialect.insert_ignore(
            "projects (project_id, project_name, last_updated_timestamp, project_proto) VALUES (?, ?, ?, ?)",
        );
        sqlx::query(self.sql(&q))
            .bind(project)
            .bind(project)
            .bind(now.seconds)
            .bind(proto.encode_to_vec())
            .execute(&mut **tx)
            .await?;
        let q = self.dialect.insert_ignore(
            "feast_metadata (project_id, metadata_key, metadata_value, last_updated_timestamp) VALUES (?, 'project_uuid', ?, ?)",
        );
        sqlx::query(self.sql(&q))
            .bind(project)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(now.seconds)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn select_proto(
        &self,
        tx: &mut Transaction<'static, Any>,
        kind: FeastKind,
        project: &str,
        name: &str,
        lock: bool,
    ) -> Result<Option<FeastObject>> {
        let lock = if lock { self.dialect.for_update() } else { "" };
        let row = if kind == FeastKind::Project {
            let q = format!("SELECT project_proto FROM projects WHERE project_id = ?{lock}");
            sqlx::query(self.sql(&q))
                .bind(project)
                .fetch_optional(&mut **tx)
                .await?
        } else {
            let t = table(kind);
            let q = format!(
                "SELECT {} FROM {} WHERE {} = ? AND project_id = ?{lock}",
                t.proto_col, t.name, t.name_col
            );
            sqlx::query(self.sql(&q))
                .bind(name)
                .bind(project)
                .fetch_optional(&mut **tx)
                .await?
        };
        row.map(|r| decode_row(&r, 0, kind, name, project)).transpose()
    }

    async fn write_row(
        &self,
        tx: &mut Transaction<'static, Any>,
        project: &str,
        obj: &FeastObject,
        outcome: ApplyOutcome,
        now: Timestamp,
    ) -> Result<()> {
        let kind = obj.kind();
        let t = table(kind);
        let bytes = obj.encode();
        if kind == FeastKind::Project {
            let q = match outcome {
                ApplyOutcome::Created => {
                    "INSERT INTO projects (last_updated_timestamp, project_proto, project_name, project_id) VALUES (?, ?, ?, ?)"
                }
                _ => {
                    "UPDATE projects SET last_updated_timestamp = ?, project_proto = ? WHERE project_name = ? AND project_id = ?"
                }
            };
            sqlx::query(self.sql(q))
                .bind(now.seconds)
                .bind(bytes)
                .bind(project)
                .bind(project)
                .execute(&mut **tx)
                .await?;
            return Ok(());
        }
        let q = match outcome {
            ApplyOutcome::Created => format!(
                "INSERT INTO {} (last_updated_timestamp, {}, {}, project_id) VALUES (?, ?, ?, ?)",
                t.name, t.proto_col, t.name_col
            ),
            _ => format!(
                "UPDATE {} SET last_updated_timestamp = ?, {} = ? WHERE {} = ? AND project_id = ?",
                t.name, t.proto_col, t.name_col
            ),
        };
        sqlx::query(self.sql(&q))
            .bind(now.seconds)
            .bind(bytes)
            .bind(obj.name())
            .bind(project)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Record the registry's last change, as Feast does after every write.
    async fn touch(&self, project: &str) -> Result<()> {
        let now = now_timestamp().seconds;
        let q = self.dialect.upsert(
            "feast_metadata (project_id, metadata_key, metadata_value, last_updated_timestamp) VALUES (?, 'last_updated_timestamp', ?, ?)",
            &["project_id", "metadata_key"],
            &["metadata_value", "last_updated_timestamp"],
        );
        retrying("touch", || async {
            sqlx::query(self.sql(&q))
                .bind(project)
                .bind(now.to_string())
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn apply_once(&self, project: &str, obj: &FeastObject) -> Result<ApplyOutcome> {
        let now = now_timestamp();
        let kind = obj.kind();
        let mut tx = self.begin_write().await?;
        if kind != FeastKind::Project {
            self.ensure_project(&mut tx, project, now).await?;
        }
        for other in other_view_kinds(kind) {
            if self
                .select_proto(&mut tx, other, project, obj.name(), false)
                .await?
                .is_some()
            {
                return Err(view_name_taken(other, obj.name(), project));
            }
        }
        let key = storage_project(project, obj);
        let old = self.select_proto(&mut tx, kind, key, obj.name(), true).await?;
        let (new, outcome) = prepare_write(key, obj.clone(), old.as_ref(), now);
        if outcome != ApplyOutcome::Unchanged {
            self.write_row(&mut tx, key, &new, outcome, now).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn fetch_all(&self, q: &str, binds: &[&str]) -> Result<Vec<AnyRow>> {
        let mut query = sqlx::query(self.sql(q));
        for b in binds {
            query = query.bind(b.to_string());
        }
        Ok(query.fetch_all(&self.pool).await?)
    }
}

/// SQLite creates the database file but not its directory.
fn create_sqlite_parent(url: &str) -> Result<()> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
    }
    Ok(())
}

fn decode_row(row: &AnyRow, idx: usize, kind: FeastKind, name: &str, project: &str) -> Result<FeastObject> {
    let bytes: Vec<u8> = row.try_get(idx)?;
    let mut obj = FeastObject::decode(kind, &bytes).map_err(|source| RegistryError::Decode {
        kind: kind.to_string(),
        name: name.to_string(),
        source,
    })?;
    obj.set_project(project);
    Ok(obj)
}

#[async_trait]
impl Registry for SqlRegistry {
    async fn apply(&self, project: &str, obj: FeastObject) -> Result<ApplyOutcome> {
        // Most applies change nothing: answer those from a plain read, without
        // a write transaction (no row locks, no commit to flush).
        let key = storage_project(project, &obj);
        if let Some(stored) = self.get(key, obj.kind(), obj.name()).await? {
            let mut wanted = obj.clone();
            wanted.set_project(key);
            if stored.definition() == wanted.definition() {
                return Ok(ApplyOutcome::Unchanged);
            }
        }
        let outcome = retrying("apply", || self.apply_once(project, &obj)).await?;
        if outcome != ApplyOutcome::Unchanged {
            self.touch(project).await?;
        }
        Ok(outcome)
    }

    async fn get(&self, project: &str, kind: FeastKind, name: &str) -> Result<Option<FeastObject>> {
        let t = table(kind);
        let rows = if kind == FeastKind::Project {
            self.fetch_all("SELECT project_proto FROM projects WHERE project_id = ?", &[name])
                .await?
        } else {
            let q = format!(
                "SELECT {} FROM {} WHERE {} = ? AND project_id = ?",
                t.proto_col, t.name, t.name_col
            );
            self.fetch_all(&q, &[name, project]).await?
        };
        let key = if kind == FeastKind::Project { name } else { project };
        rows.first().map(|r| decode_row(r, 0, kind, name, key)).transpose()
    }

    async fn list(&self, project: &str, kind: FeastKind) -> Result<Vec<FeastObject>> {
        if kind == FeastKind::Project {
            return Ok(self
                .list_projects()
                .await?
                .into_iter()
                .map(FeastObject::Project)
                .collect());
        }
        let t = table(kind);
        let q = format!(
            "SELECT {}, {} FROM {} WHERE project_id = ? ORDER BY {}",
            t.name_col, t.proto_col, t.name, t.name_col
        );
        let rows = self.fetch_all(&q, &[project]).await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let name: String = r.try_get(0)?;
                decode_row(r, 1, kind, &name, project)
            })
            .collect::<Result<Vec<_>>>()?;
        sort_by_name(&mut out);
        Ok(out)
    }

    async fn delete(&self, project: &str, kind: FeastKind, name: &str) -> Result<bool> {
        let deleted = retrying("delete", || async {
            let mut tx = self.begin_write().await?;
            let mut n = 0u64;
            if kind == FeastKind::Project {
                for t in ALL_TABLES {
                    let q = format!("DELETE FROM {t} WHERE project_id = ?");
                    let r = sqlx::query(self.sql(&q)).bind(name).execute(&mut *tx).await?;
                    if t == "projects" {
                        n += r.rows_affected();
                    }
                }
            } else {
                let kinds: Vec<FeastKind> = if kind.is_view() {
                    FeastKind::VIEWS.to_vec()
                } else {
                    vec![kind]
                };
                for k in kinds {
                    let t = table(k);
                    let q = format!("DELETE FROM {} WHERE {} = ? AND project_id = ?", t.name, t.name_col);
                    let r = sqlx::query(self.sql(&q))
                        .bind(name)
                        .bind(project)
                        .execute(&mut *tx)
                        .await?;
                    if k == kind {
                        n += r.rows_affected();
                    }
                }
                if kind.is_view() {
                    let q = "DELETE FROM feature_view_version_history WHERE feature_view_name = ? AND project_id = ?";
                    sqlx::query(self.sql(q))
                        .bind(name)
                        .bind(project)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(n > 0)
        })
        .await?;
        if deleted && kind != FeastKind::Project {
            self.touch(project).await?;
        }
        Ok(deleted)
    }

    async fn list_projects(&self) -> Result<Vec<fc::Project>> {
        let rows = self
            .fetch_all(
                "SELECT project_id, project_proto FROM projects ORDER BY project_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(0)?;
                match decode_row(r, 1, FeastKind::Project, &name, &name)? {
                    FeastObject::Project(p) => Ok(p),
                    _ => unreachable!("decoded as Project"),
                }
            })
            .collect()
    }

    async fn apply_materialization(&self, project: &str, view: &str, start: Timestamp, end: Timestamp) -> Result<()> {
        retrying("apply_materialization", || async {
            let now = now_timestamp();
            let mut tx = self.begin_write().await?;
            let Some(FeastObject::FeatureView(mut fv)) = self
                .select_proto(&mut tx, FeastKind::FeatureView, project, view, true)
                .await?
            else {
                return Err(RegistryError::NotFound {
                    kind: "Feature view".into(),
                    name: view.into(),
                    project: project.into(),
                });
            };
            add_interval(&mut fv, start, end, now);
            self.write_row(
                &mut tx,
                project,
                &FeastObject::FeatureView(fv),
                ApplyOutcome::Updated,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await?;
        self.touch(project).await
    }

    async fn get_infra(&self, project: &str) -> Result<fc::Infra> {
        let rows = self
            .fetch_all(
                "SELECT infra_proto FROM managed_infra WHERE infra_name = 'infra_obj' AND project_id = ?",
                &[project],
            )
            .await?;
        match rows.first() {
            Some(r) => {
                let bytes: Vec<u8> = r.try_get(0)?;
                fc::Infra::decode(bytes.as_slice()).map_err(|source| RegistryError::Decode {
                    kind: "Infra".into(),
                    name: project.into(),
                    source,
                })
            }
            None => Ok(fc::Infra::default()),
        }
    }

    async fn update_infra(&self, project: &str, infra: fc::Infra) -> Result<()> {
        let now = now_timestamp().seconds;
        let bytes = infra.encode_to_vec();
        let q = self.dialect.upsert(
            "managed_infra (infra_name, project_id, last_updated_timestamp, infra_proto) VALUES ('infra_obj', ?, ?, ?)",
            &["infra_name", "project_id"],
            &["last_updated_timestamp", "infra_proto"],
        );
        retrying("update_infra", || async {
            sqlx::query(self.sql(&q))
                .bind(project)
                .bind(now)
                .bind(bytes.clone())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn list_project_metadata(&self, project: &str) -> Result<Vec<fc::ProjectMetadata>> {
        let rows = self
            .fetch_all(
                "SELECT project_id, metadata_value FROM feast_metadata WHERE metadata_key = 'project_uuid' AND project_id = ?",
                &[project],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(fc::ProjectMetadata {
                    project: r.try_get(0)?,
                    project_uuid: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn snapshot(&self) -> Result<fc::Registry> {
        let mut reg = fc::Registry {
            registry_schema_version: "1".into(),
            ..Default::default()
        };
        let projects = self.list_projects().await?;
        for p in &projects {
            let name = p.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            for kind in FeastKind::OBJECTS {
                for o in self.list(&name, kind).await? {
                    crate::store::push_object(&mut reg, o);
                }
            }
            reg.project_metadata.extend(self.list_project_metadata(&name).await?);
            reg.infra = Some(self.get_infra(&name).await?);
            let updated = p.meta.as_ref().and_then(|m| m.last_updated_timestamp);
            if updated.map(|u| (u.seconds, u.nanos)) > reg.last_updated.map(|l| (l.seconds, l.nanos)) {
                reg.last_updated = updated;
            }
        }
        reg.projects = projects;
        Ok(reg)
    }

    async fn teardown(&self) -> Result<()> {
        for t in ALL_TABLES {
            self.pool
                .execute(AssertSqlSafe(format!("DROP TABLE IF EXISTS {t}")))
                .await?;
        }
        Ok(())
    }
}
