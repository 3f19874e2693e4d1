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
///
/// For PostgreSQL, Feast's SQL registry hands the URL to SQLAlchemy, whose
/// psycopg dialects pass every query parameter to libpq unchanged
/// (`sqlalchemy/dialects/postgresql/_psycopg_common.py`,
/// `create_connect_args`: `opts.update(url.query)`). So the URL alone
/// decides TLS: no `sslmode` means libpq's default (`PGSSLMODE`, else
/// `prefer`), which is also sqlx's, and no default is added here (Feast's
/// `require` default belongs to the `online_store`/`offline_store` keys, not
/// to registry URLs). [`postgres_tls_url`] makes libpq's certificate rules
/// explicit for sqlx.
fn sqlx_url(url: &str, base_dir: &Path) -> Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| RegistryError::Config(format!("{} is not a database URL", redact(url))))?;
    let dialect = scheme.split('+').next().unwrap_or(scheme);
    match dialect {
        "postgresql" | "postgres" => postgres_tls_url(&format!("postgres://{rest}"), base_dir, None),
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

/// The TLS parameters libpq reads from a PostgreSQL URL's query, as sqlx
/// names them; sqlx also accepts the aliases after the first.
const SSLMODE: &[&str] = &["sslmode", "ssl-mode"];
const SSLROOTCERT: &[&str] = &["sslrootcert", "ssl-root-cert", "ssl-ca"];
const SSLCERT: &[&str] = &["sslcert", "ssl-cert"];
const SSLKEY: &[&str] = &["sslkey", "ssl-key"];

/// A PostgreSQL URL whose TLS parameters mean for sqlx what they mean for
/// libpq (Feast connects through psycopg, i.e. libpq):
///
/// - relative `sslrootcert`/`sslcert`/`sslkey` paths resolve against
///   `base_dir` (the config file's directory), like every relative path in
///   the config;
/// - `sslmode=require` with an `sslrootcert` becomes `verify-ca`: libpq
///   verifies the chain when it has a root certificate, sqlx's `require`
///   never does;
/// - without `sslmode`, `default_sslmode` is added when given (the
///   `offline_store.url` form: Feast's `PostgreSQLConfig` default is
///   `require`); a URL's own `sslmode` always wins.
///
/// Other parameters are kept as written.
pub fn postgres_tls_url(url: &str, base_dir: &Path, default_sslmode: Option<&str>) -> Result<String> {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = if [SSLROOTCERT, SSLCERT, SSLKEY].iter().any(|keys| keys.contains(&k)) {
            let path = decode(v)?;
            let p = Path::new(&path);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            };
            percent_encode(&abs.to_string_lossy())
        } else {
            v.to_string()
        };
        pairs.push((k.to_string(), v));
    }
    let has_root = pairs.iter().any(|(k, _)| SSLROOTCERT.contains(&k.as_str()));
    match pairs.iter_mut().find(|(k, _)| SSLMODE.contains(&k.as_str())) {
        Some((_, mode)) => {
            if has_root && mode == "require" {
                *mode = "verify-ca".into();
            }
        }
        None => {
            if let Some(d) = default_sslmode {
                let d = if has_root && d == "require" { "verify-ca" } else { d };
                pairs.push(("sslmode".into(), d.into()));
            }
        }
    }
    if pairs.is_empty() {
        return Ok(head.to_string());
    }
    let query: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!("{head}?{}", query.join("&")))
}

/// Check, before connecting, the certificate files a PostgreSQL URL names,
/// so that a missing or unreadable one is named (sqlx only says "No such
/// file or directory"). Like libpq, nothing is read with `sslmode=disable`
/// (or `allow`, which sqlx treats as `disable`).
pub fn check_postgres_tls_files(url: &str) -> Result<()> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut files = Vec::new();
    let mut mode = String::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if SSLMODE.contains(&k) {
            mode = decode(v)?;
        } else if let Some(name) = [SSLROOTCERT, SSLCERT, SSLKEY].iter().find(|keys| keys.contains(&k)) {
            files.push((name[0], PathBuf::from(decode(v)?)));
        }
    }
    if matches!(mode.as_str(), "disable" | "allow") {
        return Ok(());
    }
    let has = |name: &str| files.iter().any(|(n, _)| *n == name);
    if has("sslcert") != has("sslkey") {
        return Err(RegistryError::Config(
            "the registry URL must set sslcert and sslkey together (a client certificate needs its key)".into(),
        ));
    }
    for (name, path) in &files {
        std::fs::File::open(path)
            .map_err(|e| RegistryError::Config(format!("registry URL {name} {}: cannot read: {e}", path.display())))?;
    }
    Ok(())
}

/// A rejected certificate, turned into a configuration error naming the
/// URL's TLS parameters (not retryable: the settings or the server's
/// certificate must change). sqlx reports a rejected certificate as an I/O
/// error of kind `InvalidData` (rustls' error inside), its own TLS set-up
/// problems as `Tls`; other errors pass through unchanged.
fn tls_failure(url: &str, e: RegistryError) -> RegistryError {
    let tls = match &e {
        RegistryError::Database(sqlx::Error::Tls(_)) => true,
        RegistryError::Database(sqlx::Error::Io(io)) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    };
    if !tls {
        return e;
    }
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let k = p.split_once('=').map(|(k, _)| k).unwrap_or(p);
            [SSLMODE, SSLROOTCERT, SSLCERT, SSLKEY]
                .iter()
                .any(|keys| keys.contains(&k))
        })
        .collect();
    let params = if params.is_empty() {
        "no TLS parameters: libpq's default sslmode".to_string()
    } else {
        params.join("&")
    };
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    RegistryError::Config(format!(
        "TLS connection to the registry database {host} failed ({params}): {e}"
    ))
}

/// Percent-encode a query value, keeping `/` readable in paths.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
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
        RegistryConfig::Sql { url, .. } => {
            if !url.starts_with("postgres") {
                Arc::new(SqlRegistry::connect(url, 8).await?)
            } else {
                check_postgres_tls_files(url)?;
                Arc::new(SqlRegistry::connect(url, 8).await.map_err(|e| tls_failure(url, e))?)
            }
        }
        RegistryConfig::File { path, .. } => Arc::new(FileRegistry::open(path)?),
    })
}

/// Open the configured backend behind the TTL read cache servers use.
pub async fn open_cached(config: &RegistryConfig) -> Result<Arc<CachedRegistry>> {
    Ok(Arc::new(CachedRegistry::new(open(config).await?, config.cache_ttl())))
}

fn decode(s: &str) -> Result<String> {
    larder_model::url::percent_decode(s, true)
        .map_err(|e| RegistryError::Config(format!("a registry URL parameter {e}")))
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

    /// Feast's SQL registry passes the URL's query to libpq as it is: no
    /// `sslmode` default of its own, certificate parameters honoured.
    #[test]
    fn postgres_urls_keep_libpq_tls_rules() {
        let b = Path::new("/repo");
        let t = DEFAULT_CACHE_TTL;
        let url = |path: &str| match RegistryConfig::from_feast("sql", path, t, b).unwrap() {
            RegistryConfig::Sql { url, .. } => url,
            other => panic!("{other:?}"),
        };
        // No sslmode: none added (libpq's default, prefer, is sqlx's too).
        assert_eq!(url("postgresql+psycopg://u:pw@h/db"), "postgres://u:pw@h/db");
        assert_eq!(
            url("postgresql://u@h/db?sslmode=verify-full&sslrootcert=certs/ca.pem&application_name=x"),
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/repo/certs/ca.pem&application_name=x"
        );
        // libpq: require with a root certificate verifies like verify-ca.
        assert_eq!(
            url("postgresql://u@h/db?sslmode=require&sslrootcert=%2Fetc%2Fca%20x.pem"),
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=/etc/ca%20x.pem"
        );
        assert_eq!(
            url("postgresql://u@h/db?sslcert=c.pem&sslkey=c.key"),
            "postgres://u@h/db?sslcert=/repo/c.pem&sslkey=/repo/c.key"
        );
        // The offline_store.url form adds Feast's default when the URL has none.
        let off = |u: &str| postgres_tls_url(u, b, Some("require")).unwrap();
        assert_eq!(off("postgresql://u@h/d"), "postgresql://u@h/d?sslmode=require");
        assert_eq!(
            off("postgresql://u@h/d?sslmode=disable"),
            "postgresql://u@h/d?sslmode=disable"
        );
        assert_eq!(
            off("postgresql://u@h/d?sslrootcert=/ca.pem"),
            "postgresql://u@h/d?sslrootcert=/ca.pem&sslmode=verify-ca"
        );
        assert!(RegistryConfig::from_feast("sql", "postgresql://u@h/d?sslrootcert=%zz", t, b).is_err());
    }

    #[test]
    fn postgres_certificate_files_are_checked_and_named() {
        let err = check_postgres_tls_files("postgres://u@h/d?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
        let err = check_postgres_tls_files("postgres://u@h/d?ssl-key=/k")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslcert and sslkey together"), "{err}");
        check_postgres_tls_files("postgres://u@h/d?sslmode=disable&sslrootcert=/nonexistent/ca.pem").unwrap();
        check_postgres_tls_files("postgres://u@h/d").unwrap();
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
