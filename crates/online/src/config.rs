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

/// Feast's `online_store` keys for a `postgresql://` or `mysql://` URL
/// (`user[:password]@host[:port]/database[?sslmode=…&schema=…]`). libpq's
/// TLS parameters `sslrootcert`, `sslcert` and `sslkey` become Feast's
/// `sslrootcert_path`, `sslcert_path` and `sslkey_path`, so a URL carries
/// the same settings as the separate keys. Errors never repeat the URL: it
/// holds a password.
fn decode(s: &str) -> std::result::Result<String, String> {
    larder_model::url::percent_decode(s, false).map_err(|e| e.to_string())
}

pub fn url_keys(
    kind: &'static str,
    url: &str,
) -> std::result::Result<std::collections::BTreeMap<&'static str, String>, String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "is not a URL of the form scheme://user:password@host:port/database".to_string())?;
    let dialect = scheme.split('+').next().unwrap_or(scheme);
    let ok = match kind {
        "postgres" => matches!(dialect, "postgres" | "postgresql"),
        _ => matches!(dialect, "mysql" | "mariadb"),
    };
    if !ok {
        return Err(format!("scheme {dialect:?} does not name a {kind} database"));
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, database) = rest
        .split_once('/')
        .ok_or_else(|| "names no database (…/database)".to_string())?;
    if database.is_empty() {
        return Err("names no database (…/database)".into());
    }
    let (creds, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (user, password) = match creds.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (creds, None),
    };
    if user.is_empty() {
        return Err("names no user (user:password@host)".into());
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(p.parse::<u16>().map_err(|_| "has an invalid port".to_string())?),
        ),
        None => (hostport, None),
    };
    let mut m = std::collections::BTreeMap::new();
    m.insert("type", kind.to_string());
    m.insert(
        "host",
        if host.is_empty() {
            "127.0.0.1".into()
        } else {
            host.to_string()
        },
    );
    if let Some(p) = port {
        m.insert("port", p.to_string());
    }
    m.insert("database", decode(database)?);
    m.insert("user", decode(user)?);
    if let Some(p) = password {
        m.insert("password", decode(p)?);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) if kind == "postgres" => {
                m.insert("sslmode", decode(v)?);
            }
            Some(("sslrootcert", v)) if kind == "postgres" => {
                m.insert("sslrootcert_path", decode(v)?);
            }
            Some(("sslcert", v)) if kind == "postgres" => {
                m.insert("sslcert_path", decode(v)?);
            }
            Some(("sslkey", v)) if kind == "postgres" => {
                m.insert("sslkey_path", decode(v)?);
            }
            Some(("schema" | "db_schema", v)) if kind == "postgres" => {
                m.insert("db_schema", decode(v)?);
            }
            _ => {}
        }
    }
    Ok(m)
}

/// Larder's `url` key (a PostgreSQL or MySQL URL, as the operator passes a
/// Secret) replaced by Feast's separate keys.
fn expand_url_key(value: serde_yaml::Value) -> Result<serde_yaml::Value> {
    let serde_yaml::Value::Mapping(mut map) = value else {
        return Ok(value);
    };
    let Some(url) = map.remove("url") else {
        return Ok(serde_yaml::Value::Mapping(map));
    };
    let kind = match map.get("type").and_then(|t| t.as_str()) {
        Some("postgres") => "postgres",
        Some("mysql") => "mysql",
        other => {
            return Err(OnlineError::Config(format!(
                "online_store.url is only for postgres and mysql, not {}",
                other.unwrap_or("(no type)")
            )));
        }
    };
    let url = url
        .as_str()
        .ok_or_else(|| OnlineError::Config("online_store.url must be a string".into()))?;
    for key in ["host", "port", "database", "user", "password"] {
        if map.contains_key(key) {
            return Err(OnlineError::Config(format!(
                "online_store: set either url or {key}, not both"
            )));
        }
    }
    let keys = url_keys(kind, url).map_err(|e| OnlineError::Config(format!("online_store.url {e}")))?;
    for (k, v) in keys {
        let v = match k {
            "port" => serde_yaml::Value::Number(v.parse::<u16>().map(Into::into).unwrap_or_else(|_| 0.into())),
            _ => serde_yaml::Value::String(v),
        };
        map.insert(serde_yaml::Value::String(k.to_string()), v);
    }
    Ok(serde_yaml::Value::Mapping(map))
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
        /// `null` (not the same as absent) is libpq's default, as in Feast.
        #[serde(default = "default_sslmode")]
        sslmode: Option<String>,
        #[serde(default)]
        sslrootcert_path: Option<String>,
        #[serde(default)]
        sslcert_path: Option<String>,
        #[serde(default)]
        sslkey_path: Option<String>,
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
/// Feast's `PostgreSQLConfig.sslmode` default: TLS without certificate
/// verification, never a plain-text fallback.
fn default_sslmode() -> Option<String> {
    Some("require".into())
}

/// A path from the config file: relative ones resolve against the file's
/// directory, like the SQLite path (libpq would use the working directory,
/// which is the same when Feast runs in the repo).
fn config_path(base_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
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
        let value = expand_url_key(value)?;
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
                sslrootcert_path,
                sslcert_path,
                sslkey_path,
                max_conn,
            } => Self::Postgres(PostgresSettings {
                host,
                port,
                database,
                db_schema,
                user,
                password,
                sslmode: sslmode.unwrap_or_default(),
                sslrootcert_path: sslrootcert_path.map(|p| config_path(base_dir, &p)),
                sslcert_path: sslcert_path.map(|p| config_path(base_dir, &p)),
                sslkey_path: sslkey_path.map(|p| config_path(base_dir, &p)),
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

    /// Feast's `PostgreSQLConfig`: `sslmode` defaults to `require` and the
    /// three certificate paths are kept (Larder used to default to `prefer`,
    /// which falls back to plain text, and dropped the paths).
    #[test]
    fn postgres_tls_keys_as_feast() {
        let pg = |y: &str| match parse(y).unwrap() {
            OnlineStoreConfig::Postgres(s) => s,
            other => panic!("not postgres: {other:?}"),
        };
        let s = pg("{type: postgres, host: h, database: d, user: u, password: p}");
        assert_eq!(s.sslmode, "require");
        assert_eq!((s.sslrootcert_path, s.sslcert_path, s.sslkey_path), (None, None, None));
        let s = pg(
            "{type: postgres, host: h, database: d, user: u, password: p, sslmode: verify-full, \
             sslrootcert_path: certs/ca.pem, sslcert_path: /abs/client.pem, sslkey_path: client.key}",
        );
        assert_eq!(s.sslmode, "verify-full");
        assert_eq!(s.sslrootcert_path.as_deref(), Some(Path::new("/repo/certs/ca.pem")));
        assert_eq!(s.sslcert_path.as_deref(), Some(Path::new("/abs/client.pem")));
        assert_eq!(s.sslkey_path.as_deref(), Some(Path::new("/repo/client.key")));
        // `sslmode: null` is psycopg's "not given": libpq's own default.
        assert_eq!(
            pg("{type: postgres, host: h, database: d, user: u, sslmode: null}").sslmode,
            ""
        );
        // A URL carries the same settings; its own parameters win.
        let s = pg(
            "{type: postgres, sslmode: disable, url: 'postgresql://u@h/d?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&sslcert=c.pem&sslkey=c.key'}",
        );
        assert_eq!(s.sslmode, "verify-ca");
        assert_eq!(s.sslrootcert_path.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(s.sslcert_path.as_deref(), Some(Path::new("/repo/c.pem")));
        assert_eq!(s.sslkey_path.as_deref(), Some(Path::new("/repo/c.key")));
        assert_eq!(pg("{type: postgres, url: 'postgresql://u@h/d'}").sslmode, "require");
    }

    #[test]
    fn url_key_becomes_feast_keys() {
        let OnlineStoreConfig::Postgres(pg) =
            parse("{type: postgres, url: 'postgresql://u:p%40ss@db:6543/feast?sslmode=disable', max_conn: 3}").unwrap()
        else {
            panic!("not postgres")
        };
        assert_eq!((pg.host.as_str(), pg.port, pg.database.as_str()), ("db", 6543, "feast"));
        assert_eq!((pg.user.as_str(), pg.password.as_deref()), ("u", Some("p@ss")));
        assert_eq!((pg.sslmode.as_str(), pg.max_conn), ("disable", 3));
        assert!(matches!(
            parse("{type: mysql, url: 'mysql://root@h/d'}").unwrap(),
            OnlineStoreConfig::MySql(_)
        ));
        let both = parse("{type: mysql, url: 'mysql://root@h/d', host: x}")
            .unwrap_err()
            .to_string();
        assert!(both.contains("not both"), "{both}");
        let bad = parse("{type: postgres, url: 'postgresql://u:hunter2@h:x/d'}")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("port") && !bad.contains("hunter2"), "{bad}");
        assert!(parse("{type: redis, url: 'redis://h'}").is_err());
    }

    #[test]
    fn postgres_url_becomes_feast_keys() {
        let m = url_keys(
            "postgres",
            "postgresql+psycopg://u%40x:p%2Fw@db.example:6543/feast?sslmode=disable",
        )
        .unwrap();
        assert_eq!(m["host"], "db.example");
        assert_eq!(m["port"], "6543");
        assert_eq!(m["user"], "u@x");
        assert_eq!(m["password"], "p/w");
        assert_eq!(m["database"], "feast");
        assert_eq!(m["sslmode"], "disable");
        assert!(
            url_keys("postgres", "mysql://u@h/d")
                .unwrap_err()
                .contains("does not name")
        );
        assert!(url_keys("mysql", "mysql://u@h").unwrap_err().contains("database"));
        assert!(url_keys("mysql", "mysql://u@h:x/d").unwrap_err().contains("port"));
        assert!(url_keys("mysql", "mysql://u@h/d%zz").unwrap_err().contains("escape"));
    }
}
