//! `larder.yaml`: the keys of Feast's `feature_store.yaml` that Larder uses,
//! with `${VAR}` expansion (as Feast does) and flag/environment overrides.
//!
//! Every key is classified against Feast 0.67 ([`keys`]): unknown keys and
//! security-relevant ones Larder does not implement (audit logging) are errors, the
//! other unimplemented Feast keys a warning at start.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use larder_registry::RegistryConfig;
use larder_registry::config::DEFAULT_CACHE_TTL;
use serde::Deserialize;

pub mod keys;

pub use keys::UnimplementedKey;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid configuration: {message}")]
    Parse { path: PathBuf, message: String },
    /// A key neither Larder nor Feast 0.67 has (in that place).
    #[error("{path}: unknown key `{key}` (not a key of {context}){hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        /// What the key's mapping is, e.g. "a postgres online store".
        context: String,
        /// "; did you mean `host`?", or empty.
        hint: String,
    },
    /// A Feast setting Larder must not accept without implementing it
    /// (security-relevant), or a value Feast itself would reject.
    #[error("{path}: `{key}`: {message}")]
    NotImplemented {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("environment variable {0} is not set (used in config)")]
    MissingEnv(String),
    #[error("unterminated ${{ in config")]
    Unterminated,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Registry(#[from] larder_registry::RegistryError),
    #[error(transparent)]
    Online(#[from] larder_online::OnlineError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, ConfigError>;

/// The `registry` key: a bare path (file registry) or a mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RegistryKey {
    Path(String),
    Map {
        #[serde(default)]
        registry_type: Option<String>,
        path: String,
        #[serde(default)]
        cache_ttl_seconds: Option<u64>,
        /// Other Feast registry keys (cache_mode, schema_mode, …): checked
        /// by [`keys::check`], which warns about those Larder does not implement.
        #[serde(flatten)]
        _rest: serde_yaml::Mapping,
    },
}

/// The parsed file. Other Feast keys (provider, feature_server, …) are
/// accepted, so one file serves Feast and Larder, but never silently:
/// [`ConfigFile::unimplemented`] lists those Larder does not implement, and
/// unknown or security-relevant ones fail [`parse_config`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub registry: Option<RegistryKey>,
    #[serde(default)]
    pub online_store: Option<serde_yaml::Value>,
    #[serde(default)]
    pub offline_store: Option<serde_yaml::Value>,
    #[serde(default)]
    pub auth: Option<serde_yaml::Value>,
    #[serde(default)]
    pub entity_key_serialization_version: Option<u32>,
    #[serde(flatten)]
    pub _rest: serde_yaml::Mapping,
    /// Feast keys set to something Larder does not do yet ([`keys::check`]);
    /// [`load`] logs a warning for each.
    #[serde(skip)]
    pub unimplemented: Vec<UnimplementedKey>,
}

/// What the commands need, after overrides.
#[derive(Debug, Clone)]
pub struct Settings {
    pub project: Option<String>,
    pub registry: Option<RegistryConfig>,
    /// `online_store` as written; parsed by the commands that need it.
    pub online_store: Option<serde_yaml::Value>,
    pub offline_store: Option<serde_yaml::Value>,
    /// `auth` as written (checked by [`keys::check`]); the servers build
    /// their authenticator from it with `larder_auth::AuthConfig`.
    pub auth: Option<serde_yaml::Value>,
    /// Directory relative paths in the config resolve against.
    pub base_dir: PathBuf,
}

impl Settings {
    pub fn online_store(&self) -> Result<larder_online::OnlineStoreConfig> {
        Ok(larder_online::OnlineStoreConfig::from_feast(
            self.online_store.as_ref(),
            &self.base_dir,
        )?)
    }

    /// A connection URL for PostgreSQL batch sources (`offline_store: {type: postgres, …}`).
    ///
    /// TLS as Feast's `PostgreSQLOfflineStoreConfig` (a `PostgreSQLConfig`)
    /// sets it: `sslmode` defaults to `require` (`sslmode: null` leaves
    /// libpq's default), and `sslrootcert_path`, `sslcert_path` and
    /// `sslkey_path` become libpq's `sslrootcert`, `sslcert` and `sslkey`.
    /// Larder's one-key `url` form keeps the URL's own parameters; the keys
    /// above only fill in what the URL does not say, and `require` is the
    /// default there too. Relative certificate paths resolve against the
    /// config file's directory.
    pub fn offline_postgres_url(&self) -> Result<Option<String>> {
        let Some(v) = &self.offline_store else { return Ok(None) };
        let get = |k: &str| {
            v.get(k).and_then(|x| match x {
                serde_yaml::Value::String(s) => Some(s.clone()),
                serde_yaml::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        if get("type").as_deref() != Some("postgres") {
            return Ok(None);
        }
        let sslmode = match v.get("sslmode") {
            None => Some("require".to_string()),
            Some(serde_yaml::Value::Null) => None,
            Some(_) => Some(
                get("sslmode").ok_or_else(|| ConfigError::Invalid("offline_store.sslmode must be a string".into()))?,
            ),
        };
        let mut tls: Vec<(&str, String)> = sslmode.into_iter().map(|m| ("sslmode", m)).collect();
        for (key, param) in [
            ("sslrootcert_path", "sslrootcert"),
            ("sslcert_path", "sslcert"),
            ("sslkey_path", "sslkey"),
        ] {
            if let Some(p) = get(key) {
                tls.push((param, p));
            }
        }
        // Larder's one-key form (the operator passes a Secret's URL through `${VAR}`).
        let (url, in_url) = if let Some(url) = get("url") {
            let url = url.trim();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid(
                    "offline_store.url must be a postgresql:// URL".into(),
                ));
            }
            for key in ["host", "port", "database", "user", "password"] {
                if v.get(key).is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "offline_store: set either url or {key}, not both"
                    )));
                }
            }
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
            let in_url: Vec<String> = query
                .split('&')
                .filter_map(|p| p.split('=').next())
                .map(|k| match k {
                    "ssl-mode" => "sslmode".to_string(),
                    "ssl-root-cert" | "ssl-ca" => "sslrootcert".to_string(),
                    "ssl-cert" => "sslcert".to_string(),
                    "ssl-key" => "sslkey".to_string(),
                    k => k.to_string(),
                })
                .collect();
            (url.to_string(), in_url)
        } else {
            let host = get("host").unwrap_or_else(|| "127.0.0.1".into());
            let port = get("port").unwrap_or_else(|| "5432".into());
            let db = get("database")
                .ok_or_else(|| ConfigError::Invalid("offline_store.database is required for postgres".into()))?;
            let user = get("user")
                .ok_or_else(|| ConfigError::Invalid("offline_store.user is required for postgres".into()))?;
            let auth = match get("password") {
                Some(p) => format!("{}:{}", encode_userinfo(&user), encode_userinfo(&p)),
                None => encode_userinfo(&user),
            };
            (format!("postgres://{auth}@{host}:{port}/{db}"), Vec::new())
        };
        let extra: Vec<String> = tls
            .into_iter()
            .filter(|(param, _)| !in_url.iter().any(|k| k == param))
            .map(|(param, value)| format!("{param}={}", encode_userinfo(&value)))
            .collect();
        let url = match (extra.is_empty(), url.contains('?')) {
            (true, _) => url,
            (false, true) => format!("{url}&{}", extra.join("&")),
            (false, false) => format!("{url}?{}", extra.join("&")),
        };
        Ok(Some(larder_registry::config::postgres_tls_url(
            &url,
            &self.base_dir,
            None,
        )?))
    }
}

/// Percent-encode all but URL-unreserved characters: for a URL's user-info
/// part and its query values.
fn encode_userinfo(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' => c.to_string(),
            other => other.to_string().bytes().map(|b| format!("%{b:02X}")).collect(),
        })
        .collect()
}

/// Expand `${VAR}` from the environment; an unset variable is an error
/// that names it (values are never printed).
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(ConfigError::Unterminated)?;
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| ConfigError::MissingEnv(name.to_string()))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse a config file's text: `${VAR}` expansion, then every key checked
/// ([`keys::check`]) before the keys Larder uses are read.
pub fn parse_config(text: &str, file: &Path) -> Result<ConfigFile> {
    let expanded = expand_env(text, |k| std::env::var(k).ok())?;
    let parse_error = |e: serde_yaml::Error| ConfigError::Parse {
        path: file.to_path_buf(),
        message: e.to_string(),
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(&expanded).map_err(parse_error)?;
    let unimplemented = keys::check(&doc, file)?;
    // From the text again, not the value: errors keep their line and column.
    let mut cfg: ConfigFile = serde_yaml::from_str(&expanded).map_err(parse_error)?;
    cfg.unimplemented = unimplemented;
    if let Some(v) = cfg.entity_key_serialization_version
        && v != 3
    {
        return Err(ConfigError::Invalid(format!(
            "{}: entity_key_serialization_version {v} is not supported; use 3",
            file.display()
        )));
    }
    Ok(cfg)
}

/// One warning per unimplemented key and file for the life of the process
/// (a command may load its config more than once).
fn warn_unimplemented(file: &Path, keys: &[UnimplementedKey]) {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut warned = WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for k in keys {
        if warned.insert(format!("{}\0{}", file.display(), k.key)) {
            tracing::warn!(config = %file.display(), key = %k.key, "{}: {k}", file.display());
        }
    }
}

/// Find and read the config, then apply overrides (flags and `LARDER_*`
/// variables arrive through clap).
pub fn load(config: Option<&Path>, project: Option<String>, registry: Option<String>) -> Result<Settings> {
    let path = match config {
        Some(p) => Some(p.to_path_buf()),
        None => ["larder.yaml", "feature_store.yaml"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    };
    let (file, base_dir) = match &path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?;
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            let file = parse_config(&text, p)?;
            warn_unimplemented(p, &file.unimplemented);
            (file, dir)
        }
        None => (ConfigFile::default(), std::env::current_dir()?),
    };
    let registry = match registry {
        Some(loc) => {
            let cwd = std::env::current_dir()?;
            Some(RegistryConfig::from_location(&loc, DEFAULT_CACHE_TTL, &cwd)?)
        }
        None => match &file.registry {
            None => None,
            Some(RegistryKey::Path(p)) => Some(RegistryConfig::from_feast("file", p, DEFAULT_CACHE_TTL, &base_dir)?),
            Some(RegistryKey::Map {
                registry_type,
                path,
                cache_ttl_seconds,
                ..
            }) => {
                let ttl = cache_ttl_seconds.map(Duration::from_secs).unwrap_or(DEFAULT_CACHE_TTL);
                Some(RegistryConfig::from_feast(
                    registry_type.as_deref().unwrap_or("file"),
                    path,
                    ttl,
                    &base_dir,
                )?)
            }
        },
    };
    Ok(Settings {
        project: project.or(file.project),
        registry,
        online_store: file.online_store,
        offline_store: file.offline_store,
        auth: file.auth,
        base_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        let env = |k: &str| (k == "PW").then(|| "s3cret".to_string());
        assert_eq!(expand_env("a ${PW} b", env).unwrap(), "a s3cret b");
        let err = expand_env("${NOPE}", env).unwrap_err().to_string();
        assert!(err.contains("NOPE"));
        assert!(expand_env("${PW", env).is_err());
    }

    #[test]
    fn feast_style_config() {
        let cfg = parse_config(
            "project: demo\nprovider: local\nregistry:\n  registry_type: sql\n  path: sqlite:///data/r.db\n  cache_ttl_seconds: 5\n  cache_mode: sync\nonline_store: {type: sqlite}\nentity_key_serialization_version: 3\n",
            Path::new("x.yaml"),
        )
        .unwrap();
        assert_eq!(cfg.project.as_deref(), Some("demo"));
        assert!(matches!(
            cfg.registry,
            Some(RegistryKey::Map {
                cache_ttl_seconds: Some(5),
                ..
            })
        ));
        let plain = parse_config("project: demo\nregistry: data/registry.db\n", Path::new("x.yaml")).unwrap();
        assert!(matches!(plain.registry, Some(RegistryKey::Path(_))));
        assert!(parse_config("entity_key_serialization_version: 2\n", Path::new("x.yaml")).is_err());
    }

    #[test]
    fn offline_postgres_url_key() {
        let settings = |offline: &str| Settings {
            project: None,
            registry: None,
            online_store: None,
            offline_store: Some(serde_yaml::from_str(offline).unwrap()),
            auth: None,
            base_dir: PathBuf::from("/"),
        };
        let url = settings("{type: postgres, url: 'postgresql://u:p@h:5432/d?sslmode=disable'}")
            .offline_postgres_url()
            .unwrap();
        assert_eq!(url.as_deref(), Some("postgresql://u:p@h:5432/d?sslmode=disable"));
        let keys = settings("{type: postgres, host: h, database: d, user: u}")
            .offline_postgres_url()
            .unwrap();
        assert_eq!(keys.as_deref(), Some("postgres://u@h:5432/d?sslmode=require"));
        assert!(
            settings("{type: postgres, url: 'mysql://u@h/d'}")
                .offline_postgres_url()
                .is_err()
        );
        assert_eq!(settings("{type: file}").offline_postgres_url().unwrap(), None);
    }

    /// Feast's `PostgreSQLOfflineStoreConfig`: `sslmode` defaults to
    /// `require`, the certificate paths become libpq parameters; in the
    /// `url` form the URL's own parameters win.
    #[test]
    fn offline_postgres_tls_as_feast() {
        let url = |offline: &str| {
            Settings {
                project: None,
                registry: None,
                online_store: None,
                offline_store: Some(serde_yaml::from_str(offline).unwrap()),
                auth: None,
                base_dir: PathBuf::from("/repo"),
            }
            .offline_postgres_url()
        };
        let ok = |offline: &str| url(offline).unwrap().unwrap();
        assert_eq!(
            ok(
                "{type: postgres, host: h, database: d, user: u, password: 'p w', sslmode: verify-full, \
                sslrootcert_path: certs/ca.pem, sslcert_path: /c.pem, sslkey_path: c.key}"
            ),
            "postgres://u:p%20w@h:5432/d?sslmode=verify-full&sslrootcert=/repo/certs/ca.pem&sslcert=/c.pem&sslkey=/repo/c.key"
        );
        // libpq: require with a root certificate verifies like verify-ca.
        assert_eq!(
            ok("{type: postgres, host: h, database: d, user: u, sslrootcert_path: /ca.pem}"),
            "postgres://u@h:5432/d?sslmode=verify-ca&sslrootcert=/ca.pem"
        );
        // `sslmode: null`: libpq's default, as psycopg drops None parameters.
        assert_eq!(
            ok("{type: postgres, host: h, database: d, user: u, sslmode: null}"),
            "postgres://u@h:5432/d"
        );
        // The url form: the URL's sslmode wins; Feast's default fills a gap.
        assert_eq!(
            ok("{type: postgres, url: 'postgresql://u@h/d?sslmode=disable', sslmode: verify-full}"),
            "postgresql://u@h/d?sslmode=disable"
        );
        assert_eq!(
            ok("{type: postgres, url: 'postgresql://u@h/d'}"),
            "postgresql://u@h/d?sslmode=require"
        );
        assert_eq!(
            ok("{type: postgres, url: 'postgresql://u@h/d?application_name=x', sslrootcert_path: ca.pem}"),
            "postgresql://u@h/d?application_name=x&sslmode=verify-ca&sslrootcert=/repo/ca.pem"
        );
        let both = url("{type: postgres, url: 'postgresql://u@h/d', host: x}")
            .unwrap_err()
            .to_string();
        assert!(both.contains("either url or host"), "{both}");
    }

    fn check(yaml: &str) -> Result<Vec<String>> {
        parse_config(yaml, Path::new("/etc/larder/larder.yaml"))
            .map(|c| c.unimplemented.into_iter().map(|k| k.key).collect())
    }

    fn err(yaml: &str) -> String {
        match check(yaml) {
            Ok(keys) => panic!("accepted {yaml:?} (unimplemented: {keys:?})"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_keys_are_errors_naming_key_and_file() {
        let e = err("projet: demo\n");
        assert!(
            e.starts_with("/etc/larder/larder.yaml: unknown key `projet`") && e.contains("did you mean `project`?"),
            "{e}"
        );
        let e = err("project: d\nregistry: {registry_type: sql, path: 'sqlite://', cache_ttl: 5}\n");
        assert!(e.contains("`registry.cache_ttl` (not a key of a sql registry)"), "{e}");
        let e = err("online_store: {type: postgres, hots: h, database: d, user: u}\n");
        assert!(
            e.contains("`online_store.hots`") && e.contains("did you mean `host`?"),
            "{e}"
        );
        let e = err("online_store: {type: sqlite, connection_string: x}\n");
        assert!(
            e.contains("`online_store.connection_string` (not a key of a sqlite online store)"),
            "{e}"
        );
        let e = err("offline_store: {type: postgres, host: h, database: d, user: u, sslrootcert: /ca.pem}\n");
        assert!(
            e.contains("`offline_store.sslrootcert`") && e.contains("sslrootcert_path"),
            "{e}"
        );
        assert!(err("offline_store: {type: file, path: x}\n").contains("`offline_store.path`"));
        assert!(err("auth: {type: no_auth, user_token: x}\n").contains("`auth.user_token`"));
        assert!(err("materialization: {pull_latest: true}\n").contains("`materialization.pull_latest`"));
        assert!(err("online_store: {type: cassandara}\n").contains("not a Feast online store type"));
        assert!(err("offline_store: bigqueri\n").contains("not a Feast offline store type"));
    }

    /// Auth keys: Feast's per type (client keys accepted), Larder's own,
    /// anything else an error naming the key, never its value.
    #[test]
    fn auth_keys_are_checked_per_type() {
        for ok in [
            "{type: no_auth}",
            "null",
            "{type: kubernetes}",
            "{type: kubernetes, user_token: tok, authorization: kubernetes-rbac, cache_ttl_seconds: 5, namespace: t}",
            "{type: oidc, auth_discovery_url: 'https://idp/.well-known/openid-configuration', client_id: c, \
              audience: a, issuer: i, verify_ssl: true, jwks_cache_lifespan_seconds: 30, client_secret: sec}",
        ] {
            assert_eq!(
                check(&format!("project: d\nauth: {ok}\n")).unwrap(),
                Vec::<String>::new(),
                "{ok}"
            );
        }
        let e = err("auth: {type: kubernetes, user_tokn: tok}\n");
        assert!(e.contains("`auth.user_tokn`") && !e.contains("tok}"), "{e}");
        assert!(err("auth: {type: oidc, auth_discovery_url: u, jwks_uri: x}\n").contains("`auth.jwks_uri`"));
        assert!(err("auth: {type: ldap}\n").contains("not one of Feast's"));
        assert!(err("auth: {user_token: x}\n").contains("missing its type"));
        assert!(err("auth: kubernetes\n").contains("mapping"));
        let e = err("feature_server: {type: local, audit_logging: {enabled: true, sink: stdout}}\n");
        assert!(
            e.contains("`feature_server.audit_logging`: audit logging is not implemented"),
            "{e}"
        );
    }

    #[test]
    fn unimplemented_feast_keys_are_listed() {
        let keys = check(
            "project: demo\nprovider: gcp\nproject_description: x\nflags: {alpha_features: true}\n\
             registry:\n  registry_type: sql\n  path: 'postgresql://u:secret@h/r'\n  read_path: 'postgresql://u:secret@r/r'\n  schema_mode: verify\n  cache_mode: thread\n\
             online_store: {type: postgres, host: h, database: d, user: u, keepalives_idle: 30, conn_type: singleton, min_conn: 1}\n\
             offline_store: {type: bigquery, dataset: x}\nbatch_engine: {type: spark.engine}\n\
             feature_server: {type: local, metrics: {enabled: true}}\ncoerce_tz_aware: false\n\
             materialization: {pull_latest_features: true}\nopenlineage: {enabled: true, api_key: k}\n",
        )
        .unwrap();
        assert_eq!(
            keys,
            [
                "provider",
                "project_description",
                "flags",
                "registry.read_path",
                "registry.schema_mode",
                "online_store.keepalives_idle",
                "online_store.conn_type",
                "offline_store.type",
                "batch_engine",
                "feature_server",
                "coerce_tz_aware",
                "materialization.pull_latest_features",
                "openlineage",
            ]
        );
        // Values that ask for what Larder does (Feast's defaults, as a rule) pass silently.
        let keys = check(
            "project: demo\nprovider: local\nauth: {type: no_auth}\nbatch_engine: local\ncoerce_tz_aware: true\n\
             registry: {registry_type: sql, path: 'sqlite://', cache_ttl_seconds: 5, cache_mode: sync, schema_mode: auto, \
             sqlalchemy_config_kwargs: {echo: false}, purge_feast_metadata: false}\n\
             online_store: {type: redis, connection_string: 'h:6379', full_scan_for_deletion: true, client: redis}\n\
             offline_store: {type: postgres, url: 'postgresql://u@h/d', max_conn: 4, db_schema: public}\n\
             entity_key_serialization_version: 3\nmaterialization: {pull_latest_features: false}\n",
        )
        .unwrap();
        assert_eq!(keys, Vec::<String>::new());
        let warning = UnimplementedKey {
            key: "registry.schema_mode".into(),
            larder_does: "Larder creates missing tables (auto)".into(),
        }
        .to_string();
        assert_eq!(
            warning,
            "`registry.schema_mode` is a Feast setting Larder does not implement yet; it has no effect \
             (Larder creates missing tables (auto))"
        );
    }

    /// Every config the repo ships loads without an error or a warning.
    #[test]
    fn shipped_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let vars = |k: &str| {
            Some(match k {
                "REGISTRY_TYPE" => "sql".to_string(),
                "REGISTRY_PATH" => "sqlite:///data/registry.db".to_string(),
                other => other.to_lowercase(),
            })
        };
        for file in [
            "examples/driver-stats/larder.yaml",
            "e2e/feast/feast_repo/feature_store.yaml.tmpl",
            "e2e/feast/feast_repo_remote/feature_store.yaml.tmpl",
        ] {
            let path = root.join(file);
            let text = expand_env(&std::fs::read_to_string(&path).unwrap(), vars).unwrap();
            let cfg = parse_config(&text, &path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cfg.unimplemented, [], "{file}");
        }
    }
}
