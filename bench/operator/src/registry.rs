//! Read-only looks at the operator's PostgreSQL registry: row versions
//! (ctid, xmin of every row of every Feast table: any insert, update or
//! delete changes this set) and the rows a project has per table.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use larder_registry::sql::ALL_TABLES;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

pub async fn connect(url: &str) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(20))
        .connect(url)
        .await
        .with_context(|| format!("connect to the registry database {url}"))
}

/// Whether a table exists (the operator creates them on its first FeatureStore reconcile).
async fn exists(pool: &PgPool, table: &str) -> Result<bool> {
    let row = sqlx::query("SELECT to_regclass($1) IS NOT NULL AS e")
        .bind(table)
        .fetch_one(pool)
        .await
        .with_context(|| format!("look up table {table}"))?;
    Ok(row.try_get::<bool, _>("e")?)
}

/// (table, ctid, xmin) of every row, sorted.
pub async fn row_versions(pool: &PgPool) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for table in ALL_TABLES {
        if !exists(pool, table).await? {
            continue;
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT ctid::text AS c, xmin::text AS x FROM {table}"
        )))
        .fetch_all(pool)
        .await
        .with_context(|| format!("read row versions of {table}"))?;
        for r in rows {
            out.push((table.to_string(), r.try_get("c")?, r.try_get("x")?));
        }
    }
    out.sort();
    Ok(out)
}

/// How many rows of `before` are not in `after` (rewritten or deleted) and
/// how many of `after` are new.
pub fn changed_rows(before: &[(String, String, String)], after: &[(String, String, String)]) -> (usize, usize) {
    let a: std::collections::HashSet<_> = after.iter().collect();
    let b: std::collections::HashSet<_> = before.iter().collect();
    (
        before.iter().filter(|r| !a.contains(r)).count(),
        after.iter().filter(|r| !b.contains(r)).count(),
    )
}

/// Rows of `project` per table (tables without rows of it are left out).
pub async fn project_rows(pool: &PgPool, project: &str) -> Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for table in ALL_TABLES {
        if !exists(pool, table).await? {
            continue;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) AS n FROM {table} WHERE project_id = $1"
        )))
        .bind(project)
        .fetch_one(pool)
        .await
        .with_context(|| format!("count rows of {project} in {table}"))?;
        let n: i64 = row.try_get("n")?;
        if n > 0 {
            out.insert(table.to_string(), n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rewritten_and_new_rows() {
        let r = |t: &str, c: &str, x: &str| (t.to_string(), c.to_string(), x.to_string());
        let before = vec![r("entities", "(0,1)", "10"), r("entities", "(0,2)", "11")];
        let after = vec![
            r("entities", "(0,1)", "10"),
            r("entities", "(0,3)", "12"),
            r("feature_views", "(0,1)", "12"),
        ];
        assert_eq!(changed_rows(&before, &after), (1, 2));
        assert_eq!(changed_rows(&before, &before), (0, 0));
    }
}
