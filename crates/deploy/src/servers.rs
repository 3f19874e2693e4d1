//! The feature server and the registry server: per server a
//! ServiceAccount, a Deployment, a Service and, when asked for, a
//! HorizontalPodAutoscaler (`autoscaling/v2`) and a PodDisruptionBudget
//! (`policy/v1`). Pods run non-root on a read-only root filesystem with
//! every capability dropped; a config change rolls them through the
//! config-hash annotation.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use larder_model::manifest::FeatureStoreSpec;
use larder_model::workloads::ServerSpec;

use crate::config::{self, Rendered};
use crate::{BuildError, CONFIG_HASH_ANNOTATION, Defaults, Result, Store, metadata, selector};

/// The non-root user of the image (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;
/// Where a `tls` Secret is mounted.
pub const TLS_DIR: &str = "/var/run/larder/tls";

pub const FEATURE_SERVER_HTTP_PORT: i32 = 6566;
pub const FEATURE_SERVER_GRPC_PORT: i32 = 6567;
pub const REGISTRY_SERVER_GRPC_PORT: i32 = 6570;
pub const REGISTRY_SERVER_METRICS_PORT: i32 = 6571;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    FeatureServer,
    RegistryServer,
}

impl ServerKind {
    pub const ALL: [ServerKind; 2] = [ServerKind::FeatureServer, ServerKind::RegistryServer];

    /// The `app.kubernetes.io/component` label, the container's name and the children's name suffix.
    pub fn component(&self) -> &'static str {
        match self {
            ServerKind::FeatureServer => "feature-server",
            ServerKind::RegistryServer => "registry-server",
        }
    }

    /// The spec field, for messages.
    pub fn field(&self) -> &'static str {
        match self {
            ServerKind::FeatureServer => "spec.featureServer",
            ServerKind::RegistryServer => "spec.registryServer",
        }
    }

    pub fn spec<'a>(&self, spec: &'a FeatureStoreSpec) -> Option<&'a ServerSpec> {
        match self {
            ServerKind::FeatureServer => spec.feature_server.as_deref(),
            ServerKind::RegistryServer => spec.registry_server.as_deref(),
        }
    }

    /// Name of the server's Deployment, Service, ServiceAccount, HPA and PDB.
    pub fn name(&self, store: &str) -> String {
        format!("{store}-{}", self.component())
    }
}

/// One server's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    pub disruption_budget: Option<PodDisruptionBudget>,
}

pub fn build(
    store: Store<'_>,
    defaults: &Defaults,
    kind: ServerKind,
    server: &ServerSpec,
    rendered: &Rendered,
) -> Result<Server> {
    if kind == ServerKind::FeatureServer && !rendered.has_online_store {
        return Err(BuildError::InvalidSpec(
            "spec.featureServer needs spec.onlineStore: the feature server reads features from it".into(),
        ));
    }
    if kind == ServerKind::RegistryServer && server.grpc.is_some() {
        return Err(BuildError::InvalidSpec(
            "spec.registryServer.grpc is not a setting: the registry server always serves gRPC".into(),
        ));
    }
    let name = kind.name(store.name);
    let meta = || metadata(store, name.clone(), kind.component());
    let service_account = ServiceAccount {
        metadata: meta(),
        // The servers do not call the Kubernetes API.
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let deployment = Deployment {
        metadata: meta(),
        spec: Some(DeploymentSpec {
            // Left to the HorizontalPodAutoscaler when autoscaling is on.
            replicas: match server.autoscaling {
                Some(_) => None,
                None => Some(server.replicas.unwrap_or(1)),
            },
            revision_history_limit: Some(5),
            selector: LabelSelector {
                match_labels: Some(selector(store.name, kind.component())),
                ..Default::default()
            },
            template: pod_template(store, defaults, kind, server, rendered),
            ..Default::default()
        }),
        ..Default::default()
    };
    let service = Service {
        metadata: meta(),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector(store.name, kind.component())),
            ports: Some(
                ports(kind, server)
                    .into_iter()
                    .map(|(port_name, port)| ServicePort {
                        name: Some(port_name.into()),
                        port,
                        target_port: Some(IntOrString::String(port_name.into())),
                        protocol: Some("TCP".into()),
                        app_protocol: Some(app_protocol(port_name).into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let autoscaler = server.autoscaling.as_ref().map(|a| HorizontalPodAutoscaler {
        metadata: meta(),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: name.clone(),
            },
            min_replicas: a.min_replicas,
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu_utilization_percentage.unwrap_or(80)),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let disruption_budget = server.pod_disruption_budget.as_ref().map(|p| PodDisruptionBudget {
        metadata: meta(),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: p.min_available.clone(),
            max_unavailable: p.max_unavailable.clone(),
            selector: Some(LabelSelector {
                match_labels: Some(selector(store.name, kind.component())),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    Ok(Server {
        service_account,
        deployment,
        service,
        autoscaler,
        disruption_budget,
    })
}

/// Named container ports of a server.
pub fn ports(kind: ServerKind, server: &ServerSpec) -> Vec<(&'static str, i32)> {
    match kind {
        ServerKind::FeatureServer => {
            let mut p = vec![("http", FEATURE_SERVER_HTTP_PORT)];
            if server.grpc.unwrap_or(true) {
                p.push(("grpc", FEATURE_SERVER_GRPC_PORT));
            }
            p
        }
        ServerKind::RegistryServer => vec![
            ("grpc", REGISTRY_SERVER_GRPC_PORT),
            ("metrics", REGISTRY_SERVER_METRICS_PORT),
        ],
    }
}

fn app_protocol(port_name: &str) -> &'static str {
    match port_name {
        "grpc" => "grpc",
        _ => "http",
    }
}

/// The server's command line: the container's `command` and `args`.
pub fn command(kind: ServerKind, server: &ServerSpec) -> (Vec<String>, Vec<String>) {
    let mut args = vec![
        "--config".to_string(),
        config::path(),
        "--host".into(),
        "0.0.0.0".into(),
    ];
    match kind {
        ServerKind::FeatureServer => {
            args.extend(["--port".into(), FEATURE_SERVER_HTTP_PORT.to_string()]);
            let grpc = if server.grpc.unwrap_or(true) {
                FEATURE_SERVER_GRPC_PORT
            } else {
                0
            };
            args.extend(["--grpc-port".into(), grpc.to_string()]);
        }
        ServerKind::RegistryServer => {
            args.extend(["--port".into(), REGISTRY_SERVER_GRPC_PORT.to_string()]);
            args.extend(["--metrics-port".into(), REGISTRY_SERVER_METRICS_PORT.to_string()]);
        }
    }
    if server.tls.is_some() {
        args.extend([
            "--tls-cert".into(),
            format!("{TLS_DIR}/tls.crt"),
            "--tls-key".into(),
            format!("{TLS_DIR}/tls.key"),
        ]);
    }
    (vec![kind.component().to_string()], args)
}

fn pod_template(
    store: Store<'_>,
    defaults: &Defaults,
    kind: ServerKind,
    server: &ServerSpec,
    rendered: &Rendered,
) -> PodTemplateSpec {
    let mut annotations = server.pod_annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), rendered.hash.clone());
    let (command, args) = command(kind, server);
    let tls = server.tls.as_ref();
    let mut env = rendered.env.clone();
    env.push(EnvVar {
        name: "RUST_LOG".into(),
        value: Some("info".into()),
        ..Default::default()
    });
    // The user's variables win over the operator's of the same name (RUST_LOG, say):
    // a container's env list is keyed by name, so a duplicate would be refused.
    for var in &server.env {
        match env.iter_mut().find(|e| e.name == var.name) {
            Some(existing) => *existing = var.clone(),
            None => env.push(var.clone()),
        }
    }
    let (mut mounts, mut volumes) = base_volumes(store.name);
    if let Some(t) = tls {
        mounts.push(VolumeMount {
            name: "tls".into(),
            mount_path: TLS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(t.secret_name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let (probe_path, probe_port, scheme) = match kind {
        ServerKind::FeatureServer => ("/health", "http", if tls.is_some() { "HTTPS" } else { "HTTP" }),
        ServerKind::RegistryServer => ("/healthz", "metrics", "HTTP"),
    };
    // Readiness asks the server's health endpoint (a server whose registry is
    // unreachable leaves the Service); liveness only that the process accepts
    // connections, so a database outage never restarts healthy pods.
    let readiness = Probe {
        http_get: Some(HTTPGetAction {
            path: Some(probe_path.into()),
            port: IntOrString::String(probe_port.into()),
            scheme: Some(scheme.into()),
            ..Default::default()
        }),
        period_seconds: Some(5),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let main_port = match kind {
        ServerKind::FeatureServer => "http",
        ServerKind::RegistryServer => "grpc",
    };
    let liveness = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(main_port.into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(10),
        timeout_seconds: Some(2),
        failure_threshold: Some(6),
        ..Default::default()
    };
    let image = store.spec.image.as_ref();
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(crate::labels(store.name, kind.component())),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(kind.name(store.name)),
            automount_service_account_token: Some(false),
            security_context: Some(pod_security_context()),
            image_pull_secrets: image.map(|i| i.pull_secrets.clone()).filter(|s| !s.is_empty()),
            node_selector: Some(server.node_selector.clone()).filter(|m| !m.is_empty()),
            tolerations: Some(server.tolerations.clone()).filter(|t| !t.is_empty()),
            affinity: server.affinity.clone(),
            containers: vec![Container {
                name: kind.component().into(),
                image: Some(defaults.image_for(store.spec)),
                image_pull_policy: image.and_then(|i| i.pull_policy).map(|p| p.as_str().to_string()),
                command: Some(command),
                args: Some(args),
                env: Some(env),
                ports: Some(
                    ports(kind, server)
                        .into_iter()
                        .map(|(name, port)| ContainerPort {
                            name: Some(name.into()),
                            container_port: port,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                readiness_probe: Some(readiness),
                liveness_probe: Some(liveness),
                resources: server.resources.clone(),
                security_context: Some(container_security_context()),
                volume_mounts: Some(mounts),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
    }
}

/// What every pod of a store mounts: the ConfigMap with `larder.yaml`
/// (read-only) and a writable `/tmp` (the root filesystem is read-only).
pub fn base_volumes(store: &str) -> (Vec<VolumeMount>, Vec<Volume>) {
    let mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: config::CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ];
    let volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config::config_map_name(store),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    (mounts, volumes)
}

/// Non-root with the runtime's default seccomp profile (the "restricted" Pod Security Standard).
pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        fs_group: Some(RUN_AS_USER),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Labels as a `key=value,…` selector string, for list calls.
pub fn label_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Children, build as build_all};

    pub(crate) fn store_spec(yaml: &str) -> FeatureStoreSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn children(yaml: &str) -> Children {
        let spec = store_spec(yaml);
        build_all(
            Store {
                name: "drivers",
                namespace: "team-a",
                uid: Some("0b4e3c1e-0000-4000-8000-000000000001"),
                spec: &spec,
            },
            &Defaults {
                image: "ghcr.io/larder-dev/larder:0.1.0".into(),
            },
        )
        .unwrap()
    }

    const BASE: &str = "project: drivers\nregistry: {sql: {urlSecretRef: {name: reg, key: url}}}\nonlineStore: {redis: {connectionStringSecretRef: {name: redis, key: conn}}}\n";

    #[test]
    fn no_servers_unless_asked() {
        let c = children(BASE);
        assert!(c.deployments.is_empty() && c.services.is_empty() && c.service_accounts.is_empty());
        assert_eq!(c.config_map.metadata.name.as_deref(), Some("drivers-config"));
        let c = children(&format!("{BASE}featureServer: {{enabled: false}}\n"));
        assert!(c.deployments.is_empty());
    }

    #[test]
    fn autoscaling_leaves_replicas_to_the_hpa() {
        let c = children(&format!(
            "{BASE}featureServer: {{replicas: 3, autoscaling: {{minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 70}}}}\n"
        ));
        assert_eq!(c.deployments[0].spec.as_ref().unwrap().replicas, None);
        let hpa = c.autoscalers[0].spec.as_ref().unwrap();
        assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(2), 10));
        assert_eq!(hpa.scale_target_ref.name, "drivers-feature-server");
        let c = children(&format!("{BASE}featureServer: {{replicas: 3}}\n"));
        assert_eq!(c.deployments[0].spec.as_ref().unwrap().replicas, Some(3));
        assert!(c.autoscalers.is_empty() && c.disruption_budgets.is_empty());
    }

    #[test]
    fn user_env_overrides_by_name() {
        let c = children(&format!(
            "{BASE}featureServer: {{env: [{{name: RUST_LOG, value: debug}}, {{name: EXTRA, value: x}}]}}\n"
        ));
        let env = c.deployments[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap();
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "LARDER_REGISTRY_URL",
                "LARDER_ONLINE_STORE_CONNECTION_STRING",
                "RUST_LOG",
                "EXTRA"
            ]
        );
        assert_eq!(env[2].value.as_deref(), Some("debug"));
    }

    #[test]
    fn grpc_off_drops_the_port() {
        let c = children(&format!("{BASE}featureServer: {{grpc: false}}\n"));
        let svc_ports: Vec<i32> = c.services[0]
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(svc_ports, [6566]);
        let args = c.deployments[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.windows(2).any(|w| w == ["--grpc-port", "0"]), "{args:?}");
    }

    #[test]
    fn feature_server_needs_an_online_store() {
        let spec =
            store_spec("project: p\nregistry: {sql: {urlSecretRef: {name: reg, key: url}}}\nfeatureServer: {}\n");
        let err = build_all(
            Store {
                name: "p",
                namespace: "n",
                uid: None,
                spec: &spec,
            },
            &Defaults::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("spec.onlineStore"), "{err}");
    }

    #[test]
    fn config_change_changes_the_pod_template() {
        let a = children(&format!("{BASE}featureServer: {{}}\n"));
        let b = children(
            "project: drivers\nregistry: {sql: {urlSecretRef: {name: reg, key: url}, cacheTTLSeconds: 1}}\nonlineStore: {redis: {connectionStringSecretRef: {name: redis, key: conn}}}\nfeatureServer: {}\n",
        );
        let hash = |c: &Children| {
            c.deployments[0]
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        assert_ne!(hash(&a), hash(&b));
        assert_ne!(
            a.deployments[0].spec.as_ref().unwrap().template,
            b.deployments[0].spec.as_ref().unwrap().template
        );
    }
}
