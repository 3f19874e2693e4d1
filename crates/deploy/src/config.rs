//! The `larder.yaml` the servers and Jobs read, rendered from
//! `FeatureStore.spec`. Connection strings stay in their Secrets: the file
//! names them as `${VAR}` and the pods get each variable through
//! `env.valueFrom.secretKeyRef`, so the ConfigMap holds no credential.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, EnvVarSource, SecretKeySelector};
use larder_model::stores::SecretKeyRef;
use larder_model::workloads::{AuthSpec, AuthType};

use crate::{BuildError, Result, Store, hash, metadata};

/// Where the ConfigMap is mounted in every pod.
pub const CONFIG_DIR: &str = "/etc/larder";
/// The key of the ConfigMap (and file name under [`CONFIG_DIR`]).
pub const CONFIG_KEY: &str = "larder.yaml";
/// The component label of the ConfigMap.
pub const COMPONENT: &str = "config";

pub const REGISTRY_URL_ENV: &str = "LARDER_REGISTRY_URL";
pub const ONLINE_URL_ENV: &str = "LARDER_ONLINE_STORE_URL";
pub const ONLINE_REDIS_ENV: &str = "LARDER_ONLINE_STORE_CONNECTION_STRING";
pub const OFFLINE_URL_ENV: &str = "LARDER_OFFLINE_STORE_URL";
pub const OIDC_CLIENT_SECRET_ENV: &str = "LARDER_OIDC_CLIENT_SECRET";

/// The rendered config and what a pod needs to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The file's text, with `${VAR}` where a Secret's value goes.
    pub text: String,
    /// One variable per Secret key the file names.
    pub env: Vec<EnvVar>,
    /// Short stable hash of the text, for the pod template's annotation.
    pub hash: String,
    /// Whether the store names an online store (the servers and Jobs need one).
    pub has_online_store: bool,
}

/// The path of the config file inside a pod.
pub fn path() -> String {
    format!("{CONFIG_DIR}/{CONFIG_KEY}")
}

pub fn config_map_name(store: &str) -> String {
    format!("{store}-config")
}

/// Render the store's `larder.yaml` (Feast's `feature_store.yaml` keys).
pub fn render(store: Store<'_>) -> Result<Rendered> {
    let spec = store.spec;
    let registry = spec
        .registry
        .as_ref()
        .ok_or_else(|| BuildError::InvalidSpec("spec.registry is required: set registry.sql.urlSecretRef".into()))?;
    let mut env = Vec::new();
    let mut text = format!(
        "# Rendered by larder-operator from FeatureStore {}/{}; do not edit: changes are reverted.\n\
         # Connection strings come from Secrets, as environment variables.\n",
        store.namespace, store.name
    );
    line(&mut text, 0, "project", &quote(&spec.project));
    text.push_str("registry:\n");
    line(&mut text, 2, "registry_type", "sql");
    line(
        &mut text,
        2,
        "path",
        &secret_var(&mut env, REGISTRY_URL_ENV, &registry.sql.url_secret_ref),
    );
    if let Some(ttl) = registry.sql.cache_ttl_seconds {
        line(&mut text, 2, "cache_ttl_seconds", &ttl.to_string());
    }
    let online = spec.online_store.as_ref();
    if let Some(o) = online {
        text.push_str("online_store:\n");
        if let Some(r) = &o.redis {
            line(&mut text, 2, "type", "redis");
            let var = secret_var(&mut env, ONLINE_REDIS_ENV, &r.connection_string_secret_ref);
            line(&mut text, 2, "connection_string", &var);
        } else if let Some(p) = &o.postgres {
            line(&mut text, 2, "type", "postgres");
            line(
                &mut text,
                2,
                "url",
                &secret_var(&mut env, ONLINE_URL_ENV, &p.url_secret_ref),
            );
        } else if let Some(m) = &o.mysql {
            line(&mut text, 2, "type", "mysql");
            line(
                &mut text,
                2,
                "url",
                &secret_var(&mut env, ONLINE_URL_ENV, &m.url_secret_ref),
            );
        } else if let Some(s) = &o.sqlite {
            line(&mut text, 2, "type", "sqlite");
            line(&mut text, 2, "path", &quote(&s.path));
        } else {
            return Err(BuildError::InvalidSpec(
                "spec.onlineStore: set exactly one of redis, postgres, mysql or sqlite".into(),
            ));
        }
    }
    if let Some(o) = &spec.offline_store {
        text.push_str("offline_store:\n");
        if let Some(p) = &o.postgres {
            line(&mut text, 2, "type", "postgres");
            line(
                &mut text,
                2,
                "url",
                &secret_var(&mut env, OFFLINE_URL_ENV, &p.url_secret_ref),
            );
        } else {
            line(&mut text, 2, "type", "file");
        }
    }
    if let Some(auth) = &spec.auth {
        render_auth(&mut text, &mut env, store, auth);
    }
    text.push_str("entity_key_serialization_version: 3\n");
    let hash = hash::short_hex(text.as_bytes(), 16);
    Ok(Rendered {
        text,
        env,
        hash,
        has_online_store: online.is_some(),
    })
}

/// `auth`: Feast's keys; for Kubernetes the store's namespace, where the
/// servers read RoleBindings and ask SubjectAccessReviews.
fn render_auth(text: &mut String, env: &mut Vec<EnvVar>, store: Store<'_>, auth: &AuthSpec) {
    text.push_str("auth:\n");
    line(text, 2, "type", auth.auth_type.as_str());
    if auth.auth_type == AuthType::NoAuth {
        return;
    }
    if let Some(mode) = auth.authorization {
        line(text, 2, "authorization", mode.as_str());
    }
    if let Some(ttl) = auth.cache_ttl_seconds {
        line(text, 2, "cache_ttl_seconds", &ttl.to_string());
    }
    match (auth.auth_type, &auth.oidc) {
        (AuthType::Kubernetes, _) => line(text, 2, "namespace", &quote(store.namespace)),
        (AuthType::Oidc, Some(o)) => {
            line(text, 2, "auth_discovery_url", &quote(&o.discovery_url));
            for (key, value) in [
                ("client_id", &o.client_id),
                ("audience", &o.audience),
                ("issuer", &o.issuer),
            ] {
                if let Some(v) = value {
                    line(text, 2, key, &quote(v));
                }
            }
            if let Some(v) = o.verify_ssl {
                line(text, 2, "verify_ssl", &v.to_string());
            }
            if let Some(v) = o.jwks_cache_lifespan_seconds {
                line(text, 2, "jwks_cache_lifespan_seconds", &v.to_string());
            }
            if let Some(r) = &o.client_secret_ref {
                let var = secret_var(env, OIDC_CLIENT_SECRET_ENV, r);
                line(text, 2, "client_secret", &var);
            }
        }
        _ => {}
    }
}

/// The ConfigMap holding the rendered file.
pub fn config_map(store: Store<'_>, rendered: &Rendered) -> ConfigMap {
    ConfigMap {
        metadata: metadata(store, config_map_name(store.name), COMPONENT),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), rendered.text.clone())])),
        ..Default::default()
    }
}

fn line(text: &mut String, indent: usize, key: &str, value: &str) {
    text.push_str(&" ".repeat(indent));
    text.push_str(key);
    text.push_str(": ");
    text.push_str(value);
    text.push('\n');
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `"${VAR}"` for the file, and the variable bound to the Secret key.
fn secret_var(env: &mut Vec<EnvVar>, var: &str, r: &SecretKeyRef) -> String {
    env.push(EnvVar {
        name: var.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    format!("\"${{{var}}}\"")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use larder_model::manifest::FeatureStoreSpec;

    use super::*;
    use crate::servers::tests::store_spec;

    fn store(spec: &FeatureStoreSpec) -> Store<'_> {
        Store {
            name: "drivers",
            namespace: "team-a",
            uid: None,
            spec,
        }
    }

    /// The rendered file reads back through the servers' own parser, with the
    /// Secrets' values where the variables are.
    #[test]
    fn round_trips_through_the_servers_parser() {
        let spec = store_spec(
            r#"
project: drivers
registry: {sql: {urlSecretRef: {name: reg, key: url}, cacheTTLSeconds: 5}}
onlineStore: {postgres: {urlSecretRef: {name: online, key: url}}}
offlineStore: {postgres: {urlSecretRef: {name: offline, key: url}}}
"#,
        );
        let rendered = render(store(&spec)).unwrap();
        let names: Vec<&str> = rendered.env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [REGISTRY_URL_ENV, ONLINE_URL_ENV, OFFLINE_URL_ENV]);
        let secrets = |v: &str| match v {
            REGISTRY_URL_ENV => Some("postgresql+psycopg://reg:p%40ss@db:5432/registry".to_string()),
            ONLINE_URL_ENV => Some("postgresql://on:pw@db:5433/online?sslmode=disable".to_string()),
            OFFLINE_URL_ENV => Some("postgresql://off:pw@db:5434/offline".to_string()),
            _ => None,
        };
        assert!(!rendered.text.contains("p%40ss") && !rendered.text.contains("pw@"));
        let expanded = larder_config::expand_env(&rendered.text, secrets).unwrap();
        let file = larder_config::parse_config(&expanded, Path::new("larder.yaml")).unwrap();
        assert_eq!(file.project.as_deref(), Some("drivers"));
        let Some(larder_config::RegistryKey::Map {
            registry_type,
            path,
            cache_ttl_seconds,
            ..
        }) = &file.registry
        else {
            panic!("registry is not a mapping: {:?}", file.registry)
        };
        assert_eq!(registry_type.as_deref(), Some("sql"));
        assert_eq!(path, "postgresql+psycopg://reg:p%40ss@db:5432/registry");
        assert_eq!(*cache_ttl_seconds, Some(5));
        let online = larder_online::OnlineStoreConfig::from_feast(file.online_store.as_ref(), Path::new("/")).unwrap();
        let larder_online::OnlineStoreConfig::Postgres(pg) = online else {
            panic!("not postgres: {online:?}")
        };
        assert_eq!(
            (pg.host.as_str(), pg.port, pg.sslmode.as_str()),
            ("db", 5433, "disable")
        );
        let settings = larder_config::Settings {
            project: None,
            registry: None,
            online_store: None,
            offline_store: file.offline_store.clone(),
            auth: None,
            base_dir: "/".into(),
        };
        // Feast's PostgreSQLConfig default (sslmode require) when the URL names none.
        assert_eq!(
            settings.offline_postgres_url().unwrap().as_deref(),
            Some("postgresql://off:pw@db:5434/offline?sslmode=require")
        );
    }

    /// `spec.auth` renders Feast's keys, which the servers' key check and
    /// auth config accept as meant; the client secret stays in its Secret.
    #[test]
    fn auth_renders_for_the_servers() {
        let base = "project: p\nregistry: {sql: {urlSecretRef: {name: reg, key: url}}}\n";
        let parse = |yaml: &str| {
            let rendered = render(store(&store_spec(&format!("{base}{yaml}")))).unwrap();
            let expanded = larder_config::expand_env(&rendered.text, |_| Some("s3cret".into())).unwrap();
            let file = larder_config::parse_config(&expanded, Path::new("larder.yaml")).unwrap();
            let cfg = larder_auth::AuthConfig::from_yaml(file.auth.as_ref()).unwrap();
            (rendered, cfg)
        };
        let (r, cfg) = parse("auth: {type: kubernetes, authorization: kubernetes-rbac, cacheTTLSeconds: 3}\n");
        assert_eq!(cfg.auth_type, larder_auth::AuthType::Kubernetes);
        assert_eq!(cfg.authorization, larder_auth::AuthorizationMode::KubernetesRbac);
        assert_eq!(cfg.namespace.as_deref(), Some("team-a"));
        assert_eq!(cfg.cache_ttl, std::time::Duration::from_secs(3));
        let vars = |r: &Rendered| r.env.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(vars(&r), [REGISTRY_URL_ENV]);
        let (r, cfg) = parse(
            "auth: {type: oidc, oidc: {discoveryURL: 'https://idp/.well-known/openid-configuration', clientID: larder, \
             audience: feast, clientSecretRef: {name: idp, key: secret}, jwksCacheLifespanSeconds: 60}}\n",
        );
        let larder_auth::AuthType::Oidc(o) = cfg.auth_type else {
            panic!("not oidc: {cfg:?}")
        };
        assert_eq!(o.discovery_url, "https://idp/.well-known/openid-configuration");
        assert_eq!(
            (o.client_id.as_deref(), o.audience.as_deref()),
            (Some("larder"), Some("feast"))
        );
        assert_eq!(o.jwks_cache_lifespan, std::time::Duration::from_secs(60));
        assert_eq!(vars(&r), [REGISTRY_URL_ENV, OIDC_CLIENT_SECRET_ENV]);
        assert!(
            !r.text.contains("s3cret") && r.text.contains("${LARDER_OIDC_CLIENT_SECRET}"),
            "{}",
            r.text
        );
        let (_, cfg) = parse("auth: {type: no_auth}\n");
        assert_eq!(cfg.auth_type, larder_auth::AuthType::NoAuth);
    }

    #[test]
    fn redis_sqlite_and_file_stores() {
        let spec = store_spec(
            r#"
project: "p1"
registry: {sql: {urlSecretRef: {name: reg, key: url}}}
onlineStore: {redis: {connectionStringSecretRef: {name: redis, key: conn}}}
offlineStore: {file: {}}
"#,
        );
        let rendered = render(store(&spec)).unwrap();
        assert!(
            rendered
                .text
                .contains("connection_string: \"${LARDER_ONLINE_STORE_CONNECTION_STRING}\"")
        );
        assert!(rendered.text.contains("offline_store:\n  type: file\n"));
        assert_eq!(
            rendered.env[1]
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .key,
            "conn"
        );
        let sqlite = store_spec(
            "project: p1\nregistry: {sql: {urlSecretRef: {name: reg, key: url}}}\nonlineStore: {sqlite: {path: \"/data/a \\\"b\\\".db\"}}\n",
        );
        let text = render(store(&sqlite)).unwrap().text;
        let parsed = larder_config::parse_config(
            &larder_config::expand_env(&text, |_| Some("sqlite:////r.db".into())).unwrap(),
            Path::new("x"),
        )
        .unwrap();
        let online =
            larder_online::OnlineStoreConfig::from_feast(parsed.online_store.as_ref(), Path::new("/")).unwrap();
        assert_eq!(
            online,
            larder_online::OnlineStoreConfig::Sqlite {
                path: "/data/a \"b\".db".into()
            }
        );
    }

    #[test]
    fn hash_follows_the_text() {
        let a = store_spec("project: p1\nregistry: {sql: {urlSecretRef: {name: reg, key: url}}}\n");
        let b = store_spec("project: p1\nregistry: {sql: {urlSecretRef: {name: reg, key: url}, cacheTTLSeconds: 9}}\n");
        let (ra, rb) = (render(store(&a)).unwrap(), render(store(&b)).unwrap());
        assert_ne!(ra.hash, rb.hash);
        assert_eq!(ra.hash, render(store(&a)).unwrap().hash);
        assert!(!ra.has_online_store);
        let none = FeatureStoreSpec {
            project: "p1".into(),
            ..Default::default()
        };
        assert_eq!(render(store(&none)).unwrap_err().label(), "InvalidSpec");
    }
}
