//! The `online_store` key of Feast's `feature_store.yaml`, turned into a store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::mysql::{MySqlSettings, MySqlStore};
use crate::postgres::{PostgresSettings, PostgresStore};
use crate::redis_store::{RedisSettings, RedisStore};
use crate::sqlite::SqliteStore;
use crate::{OnlineError, OnlineStore, Result};

/// Where features are served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineStoreConfig {
    Sqlite { path: PathBuf },
    Redis(RedisSettings),
    Postgres(PostgresSettings),
    MySql(MySqlSettings),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Raw {
    Sqlite {
        #[serde(default = "default_sqlite_path")]
        path: String,
    },
    Redis {
        #[serde(default = "default_redis")]
        connection_string: String,
        #[serde(default)]
        key_ttl_seconds: Option<u64>,
        #[serde(default)]
        skip_dedup: bool,
        #[serde(default)]
        redis_type: Option<String>,
    },
    Postgres {
        #[serde(default = "default_host")]
        host: String,
        #[serde(default = "default_pg_port")]
        port: u16,
        database: String,
        #[serde(default = "default_schema")]
        db_schema: String,
        user: String,
        #[serde(default)]
        password: Option<String>,
        #[serde(default = "default_sslmode")]
        sslmode: String,
        #[serde(default = "default_max_conn")]
        max_conn: u32,
    },
    Mysql {
        #[serde(default = "default_host")]
        host: String,
        #[serde(default = "default_mysql_port")]
        port: u16,
        database: String,
        user: String,
        #[serde(default)]
        password: Option<String>,
        #[serde(default = "default_max_conn")]
        max_conn: u32,
    },
}

fn default_sqlite_path() -> String {
    "data/online.db".into()
}
fn default_redis() -> String {
    "localhost:6379".into()
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_pg_port() -> u16 {
    5432
}
fn default_mysql_port() -> u16 {
    3306
}
fn default_schema() -> String {
    "public".into()
}
fn default_sslmode() -> String {
    "prefer".into()
}
fn default_max_conn() -> u32 {
    10
}

impl OnlineStoreConfig {
    /// Parse Feast's `online_store` value: a mapping with `type`, a bare
    /// type string, or absent (SQLite). Relative SQLite paths resolve
    /// against `base_dir` (the config file's directory).
    pub fn from_feast(value: Option<&serde_yaml::Value>, base_dir: &Path) -> Result<Self> {
        let value = match value {
            None | Some(serde_yaml::Value::Null) => serde_yaml::from_str("{type: sqlite}"),
            Some(serde_yaml::Value::String(t)) => serde_yaml::from_str(&format!("{{type: {t}}}")),
            Some(v) => Ok(v.clone()),
        }
        .map_err(|e| OnlineError::Config(e.to_string()))?;
        let raw: Raw = serde_yaml::from_value(value).map_err(|e| OnlineError::Config(format!("online_store: {e}")))?;
        Ok(match raw {
            Raw::Sqlite { path } => {
                let p = Path::new(&path);
                Self::Sqlite {
                    path: if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        base_dir.join(p)
                    },
                }
            }
            Raw::Redis {
                connection_string,
                key_ttl_seconds,
                skip_dedup,
                redis_type,
            } => {
                if let Some(t) = redis_type.filter(|t| t != "redis") {
                    return Err(OnlineError::Config(format!(
                        "redis_type {t} is not supported yet; use redis"
                    )));
                }
                Self::Redis(RedisSettings {
                    connection_string,
                    key_ttl_seconds,
                    skip_dedup,
                })
            }
            Raw::Postgres {
                host,
                port,
                database,
                db_schema,
                user,
                password,
                sslmode,
                max_conn,
            } => Self::Postgres(PostgresSettings {
                host,
                port,
                database,
                db_schema,
                user,
                password,
                sslmode,
                max_conn,
            }),
            Raw::Mysql {
                host,
                port,
                database,
                user,
                password,
                max_conn,
            } => Self::MySql(MySqlSettings {
                host,
                port,
                database,
                user,
                password,
                max_conn,
            }),
        })
    }

    /// A description safe to print (no passwords).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite online store {}", path.display()),
            Self::Redis(s) => {
                let host = s.connection_string.split(',').next().unwrap_or("");
                format!("redis online store {host}")
            }
            Self::Postgres(s) => format!("postgres online store {}:{}/{}", s.host, s.port, s.database),
            Self::MySql(s) => format!("mysql online store {}:{}/{}", s.host, s.port, s.database),
        }
    }
}

pub async fn open(config: &OnlineStoreConfig) -> Result<Arc<dyn OnlineStore>> {
    Ok(match config {
        OnlineStoreConfig::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
        OnlineStoreConfig::Redis(s) => Arc::new(RedisStore::connect(s).await?),
        OnlineStoreConfig::Postgres(s) => Arc::new(PostgresStore::connect(s).await?),
        OnlineStoreConfig::MySql(s) => Arc::new(MySqlStore::connect(s).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<OnlineStoreConfig> {
        let v: serde_yaml::Value = serde_yaml::from_str(y).unwrap();
        OnlineStoreConfig::from_feast(Some(&v), Path::new("/repo"))
    }

    #[test]
    fn feast_keys() {
        assert_eq!(
            parse("{type: sqlite}").unwrap(),
            OnlineStoreConfig::Sqlite {
                path: "/repo/data/online.db".into()
            }
        );
        assert_eq!(
            OnlineStoreConfig::from_feast(None, Path::new("/r")).unwrap(),
            OnlineStoreConfig::Sqlite {
                path: "/r/data/online.db".into()
            }
        );
        assert!(matches!(parse("redis").unwrap(), OnlineStoreConfig::Redis(_)));
        let pg = parse("{type: postgres, host: h, database: d, user: u, password: p, sslmode: disable}").unwrap();
        assert!(!pg.describe().contains('p') || !pg.describe().contains(":p"));
        assert!(
            parse("{type: postgres, host: h}").is_err(),
            "database and user are required"
        );
        assert!(parse("{type: cassandra}").is_err());
        assert!(parse("{type: redis, redis_type: redis_cluster}").is_err());
    }
}
