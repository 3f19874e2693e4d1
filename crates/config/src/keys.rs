//! Every key of a `larder.yaml`, classified against Feast 0.67's
//! `feature_store.yaml` (`feast/repo_config.py`: `RepoConfig`,
//! `RegistryConfig`, `SqlRegistryConfig`, and the config class of each
//! online store, offline store, batch engine and auth type).
//!
//! One file serves Feast and Larder, so a key Larder ignores must never
//! pass without a word: an operator who writes `auth: {type: kubernetes}` or
//! `registry.read_path` must learn that Larder does not do it. Hence:
//!
//! - a key Feast does not have either is an error naming it (usually a
//!   typo; Feast's store configs reject unknown keys too);
//! - a Feast key Larder does not implement yet is a warning at start,
//!   unless its value asks for what Larder does anyway (Feast's default, as
//!   a rule: `provider: local`, `schema_mode: auto`);
//! - a security-relevant Feast key Larder does not implement is an error:
//!   `feature_server.audit_logging.enabled: true` (no audit trail would be
//!   written), and an `auth` type other than Feast's three.
//!
//! Values are never repeated in messages: some hold URLs with passwords or
//! tokens.

use std::path::Path;

use serde_yaml::Value;

use crate::ConfigError;

/// What Larder does with a key.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Read by Larder.
    Used,
    /// Larder's own addition to Feast's keys (`url` of SQL stores,
    /// `max_conn` of MySQL).
    Larder,
    /// A Feast key that has no effect in Feast either for this component:
    /// accepted silently.
    Inert,
    /// A Feast key Larder does not implement yet: a warning, unless the
    /// value is `null` or one of `honoured` (YAML, e.g. `"false"`, `"sync"`),
    /// values that ask for what Larder does. `does` says what that is.
    NotYet {
        honoured: &'static [&'static str],
        does: &'static str,
    },
    /// A mapping whose keys are checked against a table of their own.
    Section,
}

use Kind::*;

type Table = &'static [(&'static str, Kind)];

const fn not_yet(honoured: &'static [&'static str], does: &'static str) -> Kind {
    NotYet { honoured, does }
}

/// `KubernetesAuthConfig`: `user_token` is the client's.
const AUTH_KUBERNETES: Table = &[("type", Used), ("user_token", Inert)];

/// `OidcAuthConfig` (server side).
const AUTH_OIDC_SERVER: Table = &[
    ("type", Used),
    ("auth_discovery_url", Used),
    ("client_id", Used),
    ("verify_ssl", Used),
    ("ca_cert_path", Used),
    ("audience", Used),
    ("issuer", Used),
    ("jwks_cache_lifespan_seconds", Used),
    ("jwks_request_timeout_seconds", Used),
];

/// `OidcClientAuthConfig`: how Feast's SDK gets a token.
const AUTH_OIDC_CLIENT: Table = &[
    ("client_secret", Inert),
    ("token", Inert),
    ("token_env_var", Inert),
    ("username", Inert),
    ("password", Inert),
    ("token_refresh_margin_seconds", Inert),
];

/// Larder's own auth keys.
const AUTH_LARDER: Table = &[
    ("authorization", Larder),
    ("cache_ttl_seconds", Larder),
    ("namespace", Larder),
];

/// `RepoConfig`'s fields (by their YAML aliases).
const TOP: Table = &[
    ("project", Used),
    (
        "project_description",
        not_yet(&[], "`larder apply` does not set the project's description"),
    ),
    ("provider", not_yet(&["local"], "Larder behaves as the local provider")),
    ("registry", Section),
    ("online_store", Section),
    ("offline_store", Section),
    ("auth", Section),
    ("batch_engine", Section),
    ("feature_server", Section),
    ("materialization", Section),
    (
        "embedding_model",
        not_yet(&[], "Larder serves no vector or OpenAI-compatible search"),
    ),
    ("flags", not_yet(&[], "deprecated in Feast as well")),
    (
        "repo_path",
        not_yet(&[], "relative paths resolve against the config file's directory"),
    ),
    ("entity_key_serialization_version", Used),
    (
        "coerce_tz_aware",
        not_yet(
            &["true"],
            "it only concerns historical retrieval, which Larder does not serve",
        ),
    ),
    ("openlineage", not_yet(&[], "Larder emits no OpenLineage events")),
    ("mlflow", not_yet(&[], "Larder has no MLflow integration")),
    ("data_quality_monitoring", not_yet(&[], "Larder computes no baselines")),
];

/// `MaterializationConfig`.
const MATERIALIZATION: Table = &[
    (
        "pull_latest_features",
        not_yet(&["false"], "Larder writes the latest row per entity key in the window"),
    ),
    (
        "online_write_batch_size",
        not_yet(&[], "Larder writes in batches of its own size"),
    ),
];

/// `RegistryConfig`: every registry type.
const REGISTRY: Table = &[
    ("registry_type", Used),
    ("path", Used),
    ("cache_ttl_seconds", Used),
    // Both modes bound staleness by cache_ttl_seconds, as Larder's cache does.
    ("cache_mode", not_yet(&["sync", "thread"], "")),
    ("registry_store_type", not_yet(&[], "file registries are local files")),
    ("s3_additional_kwargs", not_yet(&[], "file registries are local files")),
    (
        "purge_feast_metadata",
        not_yet(&["false"], "Larder keeps the feast_metadata table"),
    ),
    (
        "enable_online_feature_view_versioning",
        not_yet(&["false"], "Larder resolves no version-qualified feature references"),
    ),
    (
        "serve_features_while_materializing",
        not_yet(&["false"], "Larder serves views regardless of materialization state"),
    ),
    (
        "mcp",
        not_yet(&["{enabled: false}"], "Larder's registry server has no MCP endpoint"),
    ),
];

/// `SqlRegistryConfig`'s own fields.
const SQL_REGISTRY: Table = &[
    ("read_path", not_yet(&[], "reads go to `path`")),
    (
        "sqlalchemy_config_kwargs",
        not_yet(&["{echo: false}", "{}"], "Larder does not use SQLAlchemy"),
    ),
    (
        "thread_pool_executor_worker_count",
        not_yet(&["0"], "Larder refreshes its cache on its own schedule"),
    ),
    (
        "schema_mode",
        not_yet(&["auto"], "Larder creates missing tables (auto)"),
    ),
];

const SQLITE_ONLINE: Table = &[
    ("type", Used),
    ("path", Used),
    ("vector_enabled", not_yet(&["false"], "Larder serves no vector search")),
    ("similarity", not_yet(&["cosine"], "Larder serves no vector search")),
    (
        "text_search_enabled",
        not_yet(&["false"], "Larder serves no text search"),
    ),
    (
        "enable_openai_compatible_store",
        not_yet(&["false"], "Larder serves no OpenAI-compatible endpoints"),
    ),
];

const REDIS_ONLINE: Table = &[
    ("type", Used),
    ("connection_string", Used),
    ("redis_type", Used),
    ("key_ttl_seconds", Used),
    ("skip_dedup", Used),
    (
        "client",
        not_yet(&["redis"], "Larder speaks RESP itself (client: redis)"),
    ),
    (
        "sentinel_master",
        not_yet(&["mymaster"], "redis_sentinel is not supported"),
    ),
    (
        "full_scan_for_deletion",
        not_yet(&["true"], "Larder scans all keys when it drops a view"),
    ),
];

const POSTGRES_ONLINE: Table = &[
    ("type", Used),
    ("host", Used),
    ("port", Used),
    ("database", Used),
    ("db_schema", Used),
    ("user", Used),
    ("password", Used),
    ("sslmode", Used),
    ("sslkey_path", Used),
    ("sslcert_path", Used),
    ("sslrootcert_path", Used),
    ("max_conn", Used),
    ("url", Larder),
    ("min_conn", not_yet(&["1"], "Larder's pool opens connections on demand")),
    (
        "conn_type",
        not_yet(&["pool"], "Larder always keeps a pool of up to max_conn connections"),
    ),
    (
        "keepalives_idle",
        not_yet(&[], "Larder uses the system's TCP keepalive settings"),
    ),
    ("vector_enabled", not_yet(&["false"], "Larder serves no vector search")),
    ("similarity", not_yet(&["cosine"], "Larder serves no vector search")),
    (
        "enable_openai_compatible_store",
        not_yet(&["false"], "Larder serves no OpenAI-compatible endpoints"),
    ),
    (
        "max_batched_result_rows",
        not_yet(&["2048"], "Larder reads each view's keys in one query"),
    ),
];

const MYSQL_ONLINE: Table = &[
    ("type", Used),
    ("host", Used),
    ("port", Used),
    ("database", Used),
    ("user", Used),
    ("password", Used),
    ("url", Larder),
    ("max_conn", Larder),
    (
        "batch_write",
        not_yet(&["false"], "Larder writes in batches of its own size"),
    ),
    ("batch_size", not_yet(&[], "Larder writes in batches of its own size")),
];

/// Online store types Feast 0.67 knows (`ONLINE_STORE_CLASS_FOR_TYPE`) that
/// Larder does not implement: opening one fails with its own error, so
/// their keys are not checked here.
const OTHER_FEAST_ONLINE: &[&str] = &[
    "aerospike",
    "datastore",
    "dynamodb",
    "snowflake.online",
    "bigtable",
    "hbase",
    "cassandra",
    "scylladb",
    "hazelcast",
    "elasticsearch",
    "remote",
    "singlestore",
    "qdrant",
    "couchbase.online",
    "milvus",
    "mongodb",
    "hybrid",
    "chronon",
];

const FILE_OFFLINE: Table = &[("type", Used)];

const DUCKDB_OFFLINE: Table = &[
    ("type", Used),
    ("staging_location", not_yet(&[], "Larder reads file sources directly")),
    (
        "staging_location_endpoint_override",
        not_yet(&[], "Larder reads file sources directly"),
    ),
];

/// `PostgreSQLOfflineStoreConfig` (a `PostgreSQLConfig`).
const POSTGRES_OFFLINE: Table = &[
    ("type", Used),
    ("host", Used),
    ("port", Used),
    ("database", Used),
    ("user", Used),
    ("password", Used),
    ("sslmode", Used),
    ("sslkey_path", Used),
    ("sslcert_path", Used),
    ("sslrootcert_path", Used),
    ("url", Larder),
    // Feast's offline store opens one connection per query whatever these say.
    ("min_conn", Inert),
    ("max_conn", Inert),
    ("conn_type", Inert),
    (
        "db_schema",
        not_yet(
            &["public"],
            "tables are read as each source names them, without a search_path",
        ),
    ),
    (
        "keepalives_idle",
        not_yet(&[], "Larder uses the system's TCP keepalive settings"),
    ),
    (
        "entity_select_mode",
        not_yet(
            &["temp_table"],
            "it only concerns historical retrieval, which Larder does not serve",
        ),
    ),
];

/// Offline store types Feast 0.67 knows (`OFFLINE_STORE_CLASS_FOR_TYPE`)
/// beyond file/dask, duckdb and postgres.
const OTHER_FEAST_OFFLINE: &[&str] = &[
    "bigquery",
    "redshift",
    "snowflake.offline",
    "spark",
    "trino",
    "athena",
    "mssql",
    "remote",
    "couchbase.offline",
    "clickhouse",
    "ray",
    "oracle",
    "chronon",
    "hybrid",
];

const LOCAL_BATCH_ENGINE: Table = &[
    ("type", Used),
    ("backend", not_yet(&[], "Larder materializes with its own engine")),
];

/// A Feast key set to something Larder does not do yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnimplementedKey {
    /// Dotted path, e.g. `registry.schema_mode`.
    pub key: String,
    /// What Larder does instead (may be empty).
    pub larder_does: String,
}

impl std::fmt::Display for UnimplementedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is a Feast setting Larder does not implement yet; it has no effect",
            self.key
        )?;
        if !self.larder_does.is_empty() {
            write!(f, " ({})", self.larder_does)?;
        }
        Ok(())
    }
}

/// Classify every key of a parsed (and `${VAR}`-expanded) config file:
/// unknown and security-relevant unimplemented keys are errors naming the
/// key and `file`; the other unimplemented ones are returned, for a warning.
pub fn check(doc: &Value, file: &Path) -> Result<Vec<UnimplementedKey>, ConfigError> {
    let mut c = Checker {
        file,
        found: Vec::new(),
    };
    // Not a mapping (or empty): the deserializer says what is wrong.
    if let Value::Mapping(top) = doc {
        c.table(top, "", "a Feast feature_store.yaml", &[TOP])?;
    }
    Ok(c.found)
}

struct Checker<'a> {
    file: &'a Path,
    found: Vec<UnimplementedKey>,
}

impl Checker<'_> {
    fn unknown(&self, key: String, context: &str, tables: &[Table]) -> ConfigError {
        let last = key.rsplit('.').next().unwrap_or(&key).to_string();
        ConfigError::UnknownKey {
            path: self.file.to_path_buf(),
            hint: suggestion(&last, tables),
            key,
            context: context.to_string(),
        }
    }

    fn not_implemented(&self, key: &str, message: String) -> ConfigError {
        ConfigError::NotImplemented {
            path: self.file.to_path_buf(),
            key: key.to_string(),
            message,
        }
    }

    /// Check each key of `map` (at dotted `prefix`) against `tables`.
    fn table(
        &mut self,
        map: &serde_yaml::Mapping,
        prefix: &str,
        context: &str,
        tables: &[Table],
    ) -> Result<(), ConfigError> {
        for (k, v) in map {
            let name = match k {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
            };
            let key = format!("{prefix}{name}");
            let Some((_, kind)) = tables.iter().flat_map(|t| t.iter()).find(|(n, _)| *n == name) else {
                return Err(self.unknown(key, context, tables));
            };
            match *kind {
                Used | Larder | Inert => {}
                NotYet { honoured, does } => self.not_yet(&key, v, honoured, does),
                Section => self.section(&name, v)?,
            }
        }
        Ok(())
    }

    fn not_yet(&mut self, key: &str, v: &Value, honoured: &[&str], does: &'static str) {
        let asks_for_larder = v.is_null()
            || honoured
                .iter()
                .any(|h| serde_yaml::from_str::<Value>(h).is_ok_and(|h| &h == v));
        if !asks_for_larder {
            self.found.push(UnimplementedKey {
                key: key.to_string(),
                larder_does: does.to_string(),
            });
        }
    }

    fn section(&mut self, name: &str, v: &Value) -> Result<(), ConfigError> {
        match name {
            "registry" => self.registry(v),
            "online_store" => self.online_store(v),
            "offline_store" => self.offline_store(v),
            "auth" => self.auth(v),
            "batch_engine" => self.batch_engine(v),
            "feature_server" => self.feature_server(v),
            "materialization" => match v {
                Value::Mapping(m) => self.table(
                    m,
                    "materialization.",
                    "Feast's materialization settings",
                    &[MATERIALIZATION],
                ),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// `registry`: a path, or a mapping whose keys depend on `registry_type`.
    fn registry(&mut self, v: &Value) -> Result<(), ConfigError> {
        let Value::Mapping(m) = v else { return Ok(()) };
        let rtype = m.get("registry_type").and_then(Value::as_str).unwrap_or("file");
        match rtype {
            "file" => self.table(m, "registry.", "a file registry", &[REGISTRY]),
            "sql" => self.table(m, "registry.", "a sql registry", &[REGISTRY, SQL_REGISTRY]),
            // remote, snowflake.registry, custom classes: opening the registry
            // says Larder does not support them.
            _ => Ok(()),
        }
    }

    fn online_store(&mut self, v: &Value) -> Result<(), ConfigError> {
        let (store_type, map) = match v {
            Value::Mapping(m) => (m.get("type").and_then(Value::as_str).unwrap_or("sqlite"), Some(m)),
            Value::String(s) => (s.as_str(), None),
            _ => return Ok(()),
        };
        let table = match store_type {
            "sqlite" | "feast.infra.online_stores.sqlite.SqliteOnlineStore" => SQLITE_ONLINE,
            "redis" => REDIS_ONLINE,
            "postgres" => POSTGRES_ONLINE,
            "mysql" => MYSQL_ONLINE,
            t if OTHER_FEAST_ONLINE.contains(&t) || t.ends_with("OnlineStore") => return Ok(()),
            t if map.is_none() && matches!(t.to_ascii_lowercase().as_str(), "none" | "null") => return Ok(()),
            t => {
                return Err(self.not_implemented(
                    "online_store.type",
                    format!(
                        "{t:?} is not a Feast online store type (Larder implements sqlite, redis, postgres and mysql)"
                    ),
                ));
            }
        };
        match map {
            Some(m) => self.table(m, "online_store.", &format!("a {store_type} online store"), &[table]),
            None => Ok(()),
        }
    }

    fn offline_store(&mut self, v: &Value) -> Result<(), ConfigError> {
        let (store_type, map) = match v {
            Value::Mapping(m) => (m.get("type").and_then(Value::as_str).unwrap_or("dask"), Some(m)),
            Value::String(s) => (s.as_str(), None),
            _ => return Ok(()),
        };
        let table = match store_type {
            "file" | "dask" => FILE_OFFLINE,
            "duckdb" => DUCKDB_OFFLINE,
            "postgres" => POSTGRES_OFFLINE,
            t if OTHER_FEAST_OFFLINE.contains(&t) || t.ends_with("OfflineStore") => {
                self.found.push(UnimplementedKey {
                    key: "offline_store.type".into(),
                    larder_does: format!(
                        "Larder reads file and PostgreSQL sources itself; {t} sources cannot be materialized"
                    ),
                });
                return Ok(());
            }
            t => {
                return Err(
                    self.not_implemented("offline_store.type", format!("{t:?} is not a Feast offline store type"))
                );
            }
        };
        match map {
            Some(m) => self.table(m, "offline_store.", &format!("a {store_type} offline store"), &[table]),
            None => Ok(()),
        }
    }

    /// `auth`: Feast's server keys per type, the client keys Feast's SDK
    /// reads from the same file (unused by servers, accepted), and Larder's
    /// `authorization`, `cache_ttl_seconds` and `namespace`.
    fn auth(&mut self, v: &Value) -> Result<(), ConfigError> {
        let m = match v {
            Value::Null => return Ok(()),
            Value::Mapping(m) => m,
            _ => return Err(self.not_implemented("auth", "must be a mapping with a type".into())),
        };
        let auth_type = match m.get("type") {
            Some(Value::String(t)) => t.as_str(),
            _ => {
                return Err(self.not_implemented(
                    "auth",
                    "auth configuration is missing its type (no_auth, kubernetes or oidc)".into(),
                ));
            }
        };
        match auth_type {
            // NoAuthConfig has no other field (and forbids extras).
            "no_auth" => self.table(m, "auth.", "auth type no_auth", &[&[("type", Used)]]),
            "kubernetes" => self.table(m, "auth.", "auth type kubernetes", &[AUTH_KUBERNETES, AUTH_LARDER]),
            "oidc" => self.table(
                m,
                "auth.",
                "auth type oidc",
                &[AUTH_OIDC_SERVER, AUTH_OIDC_CLIENT, AUTH_LARDER],
            ),
            other => Err(self.not_implemented(
                "auth",
                format!("auth type {other:?} is not one of Feast's (no_auth, kubernetes, oidc)"),
            )),
        }
    }

    fn batch_engine(&mut self, v: &Value) -> Result<(), ConfigError> {
        let engine = match v {
            Value::Null => return Ok(()),
            Value::String(s) => s.as_str(),
            Value::Mapping(m) => m.get("type").and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        match (engine, v) {
            ("local", Value::Mapping(m)) => {
                self.table(m, "batch_engine.", "the local batch engine", &[LOCAL_BATCH_ENGINE])
            }
            ("local", _) => Ok(()),
            _ => {
                self.found.push(UnimplementedKey {
                    key: "batch_engine".into(),
                    larder_does: "Larder materializes in-process, as the local engine".into(),
                });
                Ok(())
            }
        }
    }

    /// Larder's feature server takes its settings from flags; an audit log
    /// asked for here would silently not be written, so that one is an error.
    fn feature_server(&mut self, v: &Value) -> Result<(), ConfigError> {
        if v.is_null() {
            return Ok(());
        }
        let audit = v
            .get("audit_logging")
            .and_then(|a| a.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if audit {
            return Err(self.not_implemented(
                "feature_server.audit_logging",
                "audit logging is not implemented by Larder yet: no audit log would be written".into(),
            ));
        }
        self.found.push(UnimplementedKey {
            key: "feature_server".into(),
            larder_does: "Larder's feature server is configured by its command-line flags".into(),
        });
        Ok(())
    }
}

/// `; did you mean `x`?` for a key one or two edits away from a known one,
/// or a known key that contains it (libpq's `sslrootcert` for Feast's
/// `sslrootcert_path`).
fn suggestion(key: &str, tables: &[Table]) -> String {
    tables
        .iter()
        .flat_map(|t| t.iter())
        .map(|(name, _)| {
            let d = edit_distance(key, name);
            let contained = key.len() >= 4 && name.contains(key);
            (if contained { d.min(2) } else { d }, *name)
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, name)| format!("; did you mean `{name}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
