//! Which registry to open: Feast's `registry` keys (`registry_type`,
//! `path`, `cache_ttl_seconds`) turned into a backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::CachedRegistry;
use crate::file::FileRegistry;
use crate::sql::SqlRegistry;
use crate::{Registry, RegistryError, Result};

/// A resolved registry location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryConfig {
    /// An sqlx URL (`postgres://…`, `mysql://…`, `sqlite://…`).
    Sql {
        url: String,
        cache_ttl: Duration,
    },
    File {
        path: PathBuf,
        cache_ttl: Duration,
    },
}

/// Feast's default registry cache TTL.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(600);

impl RegistryConfig {
    /// Build from Feast's keys. `path` is an SQLAlchemy-style URL for SQL
    /// (`postgresql+psycopg://…`, `mysql+pymysql://…`, `sqlite:///rel.db`)
    /// or a file path; relative paths resolve against `base_dir`.
    pub fn from_feast(registry_type: &str, path: &str, cache_ttl: Duration, base_dir: &Path) -> Result<Self> {
        match registry_type {
            "sql" => Ok(RegistryConfig::Sql {
                url: sqlx_url(path, base_dir)?,
                cache_ttl,
            }),
            "file" | "" => {
                if path.contains("://") {
                    return Err(RegistryError::Config(format!(
                        "file registries must be local paths (got {})",
                        redact(path)
                    )));
                }
                let p = Path::new(path);
                let path = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base_dir.join(p)
                };
                Ok(RegistryConfig::File { path, cache_ttl })
            }
            other => Err(RegistryError::Config(format!(
                "registry_type {other:?} is not supported here; use sql or file"
            ))),
        }
    }

    /// Guess the type from a bare location: URLs are SQL, anything else a file.
    pub fn from_location(location: &str, cache_ttl: Duration, base_dir: &Path) -> Result<Self> {
        let t = if location.contains("://") { "sql" } else { "file" };
        Self::from_feast(t, location, cache_ttl, base_dir)
    }

    pub fn cache_ttl(&self) -> Duration {
        match self {
            RegistryConfig::Sql { cache_ttl, .. } | RegistryConfig::File { cache_ttl, .. } => *cache_ttl,
        }
    }

    /// A description safe to print (passwords removed).
    pub fn describe(&self) -> String {
        match self {
            RegistryConfig::Sql { url, .. } => format!("sql registry {}", redact(url)),
            RegistryConfig::File { path, .. } => format!("file registry {}", path.display()),
        }
    }
}

/// Translate a SQLAlchemy URL into an sqlx one.
fn sqlx_url(url: &str, base_dir: &Path) -> Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| RegistryError::Config(format!("{} is not a database URL", redact(url))))?;
    let dialect = scheme.split('+').next().unwrap_or(scheme);
    match dialect {
        "postgresql" | "postgres" => Ok(format!("postgres://{rest}")),
        "mysql" | "mariadb" => Ok(format!("mysql://{rest}")),
        "sqlite" => {
            // SQLAlchemy: sqlite:///relative.db, sqlite:////absolute.db, sqlite:// = memory.
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            if path.is_empty() || path == "/:memory:" {
                return Ok("sqlite::memory:".into());
            }
            let path = path.strip_prefix('/').unwrap_or(path);
            let p = Path::new(path);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            };
            let q = query.map(|q| format!("&{q}")).unwrap_or_default();
            Ok(format!("sqlite://{}?mode=rwc{q}", abs.display()))
        }
        other => Err(RegistryError::Config(format!(
            "unsupported database {other:?}; use postgresql, mysql or sqlite"
        ))),
    }
}

/// Hide the password in `scheme://user:password@host/...`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((creds, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Open the configured backend (without a cache).
pub async fn open(config: &RegistryConfig) -> Result<Arc<dyn Registry>> {
    Ok(match config {
        RegistryConfig::Sql { url, .. } => Arc::new(SqlRegistry::connect(url, 8).await?),
        RegistryConfig::File { path, .. } => Arc::new(FileRegistry::open(path)?),
    })
}

/// Open the configured backend behind the TTL read cache servers use.
pub async fn open_cached(config: &RegistryConfig) -> Result<Arc<CachedRegistry>> {
    Ok(Arc::new(CachedRegistry::new(open(config).await?, config.cache_ttl())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_urls() {
        let b = Path::new("/repo");
        let t = DEFAULT_CACHE_TTL;
        let c = RegistryConfig::from_feast("sql", "postgresql+psycopg://u:pw@h:5432/db", t, b).unwrap();
        assert_eq!(
            c,
            RegistryConfig::Sql {
                url: "postgres://u:pw@h:5432/db".into(),
                cache_ttl: t
            }
        );
        assert!(!c.describe().contains("pw"));
        let c = RegistryConfig::from_feast("sql", "sqlite:///data/registry.db", t, b).unwrap();
        assert_eq!(
            c,
            RegistryConfig::Sql {
                url: "sqlite:///repo/data/registry.db?mode=rwc".into(),
                cache_ttl: t
            }
        );
        let c = RegistryConfig::from_feast("sql", "sqlite:////abs/r.db", t, b).unwrap();
        assert_eq!(
            c,
            RegistryConfig::Sql {
                url: "sqlite:///abs/r.db?mode=rwc".into(),
                cache_ttl: t
            }
        );
        let c = RegistryConfig::from_feast("sql", "mysql+pymysql://root@127.0.0.1:3306/x", t, b).unwrap();
        assert_eq!(
            c,
            RegistryConfig::Sql {
                url: "mysql://root@127.0.0.1:3306/x".into(),
                cache_ttl: t
            }
        );
        assert!(RegistryConfig::from_feast("sql", "oracle://x", t, b).is_err());
        assert!(RegistryConfig::from_feast("remote", "x", t, b).is_err());
        let f = RegistryConfig::from_location("data/registry.pb", t, b).unwrap();
        assert_eq!(
            f,
            RegistryConfig::File {
                path: "/repo/data/registry.pb".into(),
                cache_ttl: t
            }
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
