//! `larder.yaml`: the keys of Feast's `feature_store.yaml` that Larder uses,
//! with `${VAR}` expansion (as Feast does) and flag/environment overrides.

use std::path::{Path, PathBuf};
use std::time::Duration;

use larder_registry::RegistryConfig;
use larder_registry::config::DEFAULT_CACHE_TTL;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid configuration: {message}")]
    Parse { path: PathBuf, message: String },
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
        /// Other Feast registry keys (cache_mode, schema_mode, …) are accepted and ignored.
        #[serde(flatten)]
        _rest: serde_yaml::Mapping,
    },
}

/// The parsed file. Other Feast keys (auth, provider, …) are accepted and
/// ignored, so one file serves Feast and Larder.
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
    pub entity_key_serialization_version: Option<u32>,
    #[serde(flatten)]
    pub _rest: serde_yaml::Mapping,
}

/// What the commands need, after overrides.
#[derive(Debug, Clone)]
pub struct Settings {
    pub project: Option<String>,
    pub registry: Option<RegistryConfig>,
    /// `online_store` as written; parsed by the commands that need it.
    pub online_store: Option<serde_yaml::Value>,
    pub offline_store: Option<serde_yaml::Value>,
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
        // Larder's one-key form (the operator passes a Secret's URL through `${VAR}`).
        if let Some(url) = get("url") {
            let url = url.trim();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid(
                    "offline_store.url must be a postgresql:// URL".into(),
                ));
            }
            return Ok(Some(url.to_string()));
        }
        let host = get("host").unwrap_or_else(|| "127.0.0.1".into());
        let port = get("port").unwrap_or_else(|| "5432".into());
        let db = get("database")
            .ok_or_else(|| ConfigError::Invalid("offline_store.database is required for postgres".into()))?;
        let user =
            get("user").ok_or_else(|| ConfigError::Invalid("offline_store.user is required for postgres".into()))?;
        let auth = match get("password") {
            Some(p) => format!("{}:{}", encode_userinfo(&user), encode_userinfo(&p)),
            None => encode_userinfo(&user),
        };
        let ssl = get("sslmode").unwrap_or_else(|| "prefer".into());
        Ok(Some(format!("postgres://{auth}@{host}:{port}/{db}?sslmode={ssl}")))
    }
}

/// Percent-encode the characters that would break a URL's user-info part.
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

pub fn parse_config(text: &str, file: &Path) -> Result<ConfigFile> {
    let expanded = expand_env(text, |k| std::env::var(k).ok())?;
    let cfg: ConfigFile = serde_yaml::from_str(&expanded).map_err(|e| ConfigError::Parse {
        path: file.to_path_buf(),
        message: e.to_string(),
    })?;
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
            (parse_config(&text, p)?, dir)
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
            base_dir: PathBuf::from("/"),
        };
        let url = settings("{type: postgres, url: 'postgresql://u:p@h:5432/d?sslmode=disable'}")
            .offline_postgres_url()
            .unwrap();
        assert_eq!(url.as_deref(), Some("postgresql://u:p@h:5432/d?sslmode=disable"));
        let keys = settings("{type: postgres, host: h, database: d, user: u}")
            .offline_postgres_url()
            .unwrap();
        assert_eq!(keys.as_deref(), Some("postgres://u@h:5432/d?sslmode=prefer"));
        assert!(
            settings("{type: postgres, url: 'mysql://u@h/d'}")
                .offline_postgres_url()
                .is_err()
        );
        assert_eq!(settings("{type: file}").offline_postgres_url().unwrap(), None);
    }
}
