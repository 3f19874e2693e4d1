//! From `FeatureStore.spec` and the Secrets it names to open registry and
//! online-store handles. Resolution is pure ([`resolve`]) given a Secret
//! lookup; handles are kept per FeatureStore ([`Backends`]) and reopened
//! only when the resolved configuration changes. Secret values live only
//! in memory: errors name the Secret and key, never the value.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use larder_model::manifest::FeatureStoreSpec;
use larder_model::stores::SecretKeyRef;
use larder_online::{OnlineStore, OnlineStoreConfig};
use larder_registry::{Registry, RegistryConfig};

use crate::Error;

/// Where one FeatureStore keeps its registry and online data.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub project: String,
    pub registry: RegistryConfig,
    pub online: Option<OnlineStoreConfig>,
}

impl StoreConfig {
    /// Changes when anything that needs new connections changes.
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        format!("{:?}|{:?}", self.registry, self.online).hash(&mut h);
        h.finish()
    }

    /// `postgresql://host:5432/db` without credentials.
    pub fn registry_description(&self) -> String {
        match &self.registry {
            RegistryConfig::Sql { url, .. } => larder_registry::config::redact(url),
            RegistryConfig::File { path, .. } => path.display().to_string(),
        }
    }
}

/// Resolve a FeatureStore's spec; `secret` returns the value of one Secret key.
pub fn resolve(
    spec: &FeatureStoreSpec,
    secret: impl Fn(&SecretKeyRef) -> Result<String, Error>,
) -> Result<StoreConfig, Error> {
    let registry = spec
        .registry
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("spec.registry is required: set registry.sql.urlSecretRef".into()))?;
    let url = secret(&registry.sql.url_secret_ref)?;
    let ttl = Duration::from_secs(registry.sql.cache_ttl_seconds.unwrap_or(60));
    let secret_err = |r: &SecretKeyRef, message: String| Error::Secret {
        secret: format!("{}/{}", r.name, r.key),
        message,
    };
    let registry = RegistryConfig::from_feast("sql", url.trim(), ttl, Path::new("/"))
        .map_err(|e| secret_err(&registry.sql.url_secret_ref, e.to_string()))?;
    let online = match &spec.online_store {
        None => None,
        Some(o) => {
            let (value, from) = if let Some(r) = &o.redis {
                let mut m = BTreeMap::new();
                m.insert("type", "redis".to_string());
                m.insert(
                    "connection_string",
                    secret(&r.connection_string_secret_ref)?.trim().to_string(),
                );
                (m, Some(&r.connection_string_secret_ref))
            } else if let Some(p) = &o.postgres {
                let mut m = BTreeMap::new();
                m.insert("type", "postgres".to_string());
                m.insert("url", secret(&p.url_secret_ref)?.trim().to_string());
                (m, Some(&p.url_secret_ref))
            } else if let Some(p) = &o.mysql {
                let mut m = BTreeMap::new();
                m.insert("type", "mysql".to_string());
                m.insert("url", secret(&p.url_secret_ref)?.trim().to_string());
                (m, Some(&p.url_secret_ref))
            } else if let Some(s) = &o.sqlite {
                if !Path::new(&s.path).is_absolute() {
                    return Err(Error::InvalidSpec(format!(
                        "spec.onlineStore.sqlite.path {:?} must be absolute",
                        s.path
                    )));
                }
                let mut m = BTreeMap::new();
                m.insert("type", "sqlite".to_string());
                m.insert("path", s.path.clone());
                (m, None)
            } else {
                return Err(Error::InvalidSpec(
                    "spec.onlineStore: set exactly one of redis, postgres, mysql or sqlite".into(),
                ));
            };
            let yaml = serde_yaml::to_value(&value).map_err(|e| Error::InvalidSpec(e.to_string()))?;
            let cfg = OnlineStoreConfig::from_feast(Some(&yaml), Path::new("/")).map_err(|e| match from {
                Some(r) => secret_err(r, e.to_string()),
                None => Error::InvalidSpec(format!("spec.onlineStore: {e}")),
            })?;
            Some(cfg)
        }
    };
    Ok(StoreConfig {
        project: spec.project.clone(),
        registry,
        online,
    })
}

/// Open connections of one FeatureStore.
pub struct Backend {
    pub config: StoreConfig,
    pub registry: Arc<dyn Registry>,
    pub online: Option<Arc<dyn OnlineStore>>,
}

impl Backend {
    pub async fn open(config: StoreConfig) -> Result<Self, Error> {
        let registry = larder_registry::open(&config.registry).await?;
        let online = match &config.online {
            Some(c) => Some(larder_online::open(c).await?),
            None => None,
        };
        Ok(Backend {
            config,
            registry,
            online,
        })
    }
}

/// Backends by FeatureStore (`namespace/name`), shared by all reconcilers.
#[derive(Default)]
pub struct Backends {
    by_store: RwLock<HashMap<String, Arc<Backend>>>,
}

impl Backends {
    pub fn get(&self, key: &str) -> Option<Arc<Backend>> {
        self.by_store.read().ok()?.get(key).cloned()
    }

    pub fn insert(&self, key: String, backend: Arc<Backend>) {
        if let Ok(mut m) = self.by_store.write() {
            m.insert(key, backend);
        }
    }

    pub fn remove(&self, key: &str) {
        if let Ok(mut m) = self.by_store.write() {
            m.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_model::stores::{OnlineStoreSpec, RedisOnlineSpec, RegistrySpec, SqlRegistrySpec, UrlSecretSpec};

    fn secret_ref(name: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: "url".into(),
        }
    }

    fn spec(online: OnlineStoreSpec) -> FeatureStoreSpec {
        FeatureStoreSpec {
            project: "p".into(),
            registry: Some(RegistrySpec {
                sql: SqlRegistrySpec {
                    url_secret_ref: secret_ref("reg"),
                    cache_ttl_seconds: Some(5),
                },
            }),
            online_store: Some(online),
            ..Default::default()
        }
    }

    fn lookup(values: &'static [(&'static str, &'static str)]) -> impl Fn(&SecretKeyRef) -> Result<String, Error> {
        move |r| {
            values
                .iter()
                .find(|(n, _)| *n == r.name)
                .map(|(_, v)| v.to_string())
                .ok_or_else(|| Error::Secret {
                    secret: r.name.clone(),
                    message: "not found".into(),
                })
        }
    }

    #[test]
    fn resolves_registry_and_each_online_store() {
        let pg = spec(OnlineStoreSpec {
            postgres: Some(UrlSecretSpec {
                url_secret_ref: secret_ref("on"),
            }),
            ..Default::default()
        });
        let cfg = resolve(
            &pg,
            lookup(&[
                ("reg", "postgresql://root:secret@127.0.0.1:5432/reg\n"),
                ("on", "postgresql://root:pw@127.0.0.1/online"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.project, "p");
        assert_eq!(cfg.registry_description(), "postgres://root:***@127.0.0.1:5432/reg");
        match cfg.online.as_ref().unwrap() {
            OnlineStoreConfig::Postgres(s) => {
                assert_eq!((s.database.as_str(), s.password.as_deref()), ("online", Some("pw")))
            }
            other => panic!("{other:?}"),
        }
        let redis = spec(OnlineStoreSpec {
            redis: Some(RedisOnlineSpec {
                connection_string_secret_ref: secret_ref("on"),
            }),
            ..Default::default()
        });
        let cfg = resolve(
            &redis,
            lookup(&[("reg", "postgresql://r@h/reg"), ("on", "127.0.0.1:6379,db=3")]),
        )
        .unwrap();
        assert!(
            matches!(cfg.online, Some(OnlineStoreConfig::Redis(ref s)) if s.connection_string == "127.0.0.1:6379,db=3")
        );
    }

    #[test]
    fn errors_name_the_secret_never_the_value() {
        let s = spec(OnlineStoreSpec {
            mysql: Some(UrlSecretSpec {
                url_secret_ref: secret_ref("on"),
            }),
            ..Default::default()
        });
        let err = resolve(&s, lookup(&[("reg", "postgresql://r@h/reg")])).unwrap_err();
        assert_eq!(err.label(), "SecretError");
        assert!(err.to_string().contains("on"), "{err}");
        let err = resolve(
            &s,
            lookup(&[("reg", "postgresql://r@h/reg"), ("on", "mysql://user:hunter2@h:bad/d")]),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("on/url"), "{err}");
        let mut no_registry = s.clone();
        no_registry.registry = None;
        assert_eq!(resolve(&no_registry, lookup(&[])).unwrap_err().label(), "InvalidSpec");
        let err = resolve(&s, lookup(&[("reg", "oracle://u:topsecret@h/d")])).unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
