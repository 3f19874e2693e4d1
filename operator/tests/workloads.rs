//! A FeatureStore's serving workloads against the real API server (with
//! its Deployment, ReplicaSet and garbage-collector controllers): children
//! created with owner references, secrets only by reference, a config
//! change rolling the pod template, a hand edit reverted, a server switched
//! off pruned, optional APIs the cluster lacks reported in a condition,
//! and the children garbage-collected with the store.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use larder_model::Kind;
use larder_testkit::SqliteFile;
use support::{PASSWORD, RunningOperator, TestNs, condition, eventually, samples, setup, with_sqlite_online};

const STORE: &str = "driver-stats";

/// The samples with a feature server (autoscaled, with a disruption budget) and a registry server.
fn serving_samples(online: &std::path::Path) -> String {
    with_sqlite_online(&samples(), online).replace(
        "  deletionPolicy: Retain\n",
        "  deletionPolicy: Retain\n  image: {repository: registry.example/larder, tag: test}\n  featureServer:\n    replicas: 2\n    resources: {requests: {cpu: 100m, memory: 64Mi}}\n    autoscaling: {minReplicas: 2, maxReplicas: 5, targetCPUUtilizationPercentage: 70}\n    podDisruptionBudget: {minAvailable: 1}\n    nodeSelector: {pool: serving}\n    podAnnotations: {team: drivers}\n    env: [{name: RUST_LOG, value: debug}]\n  registryServer: {replicas: 1}\n",
    )
}

async fn served(client: &Client, group_version: &str) -> bool {
    client.list_api_group_resources(group_version).await.is_ok()
}

async fn get<K>(ns: &TestNs, name: &str) -> Option<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(ns.client.clone(), &ns.name)
        .get_opt(name)
        .await
        .expect("get")
}

fn pod_template_hash(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()["larder.dev/config-hash"]
        .clone()
}

#[tokio::test]
async fn a_feature_store_rolls_out_its_servers() {
    let online = SqliteFile::new("online.db");
    let Some((ns, _db)) = setup("op-workloads", None).await else {
        return;
    };
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    ns.apply(&serving_samples(online.path())).await.unwrap();
    let store = ns.get(Kind::FeatureStore, STORE).await.unwrap();
    let uid = store.uid().unwrap();

    // Children exist, owned by the store (the controller reference the garbage collector follows).
    ns.wait_condition(Kind::FeatureStore, STORE, "FeatureServerAvailable", false)
        .await;
    eventually(Duration::from_secs(60), "children created", || async {
        get::<Deployment>(&ns, "driver-stats-feature-server").await.is_some()
            && get::<Deployment>(&ns, "driver-stats-registry-server").await.is_some()
    })
    .await;
    let cm: ConfigMap = get(&ns, "driver-stats-config").await.expect("config map");
    let fs: Deployment = get(&ns, "driver-stats-feature-server").await.unwrap();
    let rs: Deployment = get(&ns, "driver-stats-registry-server").await.unwrap();
    let svc: Service = get(&ns, "driver-stats-feature-server").await.expect("service");
    let sa: ServiceAccount = get(&ns, "driver-stats-registry-server").await.expect("service account");
    for meta in [&cm.metadata, &fs.metadata, &rs.metadata, &svc.metadata, &sa.metadata] {
        let owner = &meta.owner_references.as_ref().expect("owner reference")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("FeatureStore", uid.as_str())
        );
        assert_eq!(owner.controller, Some(true));
    }
    // Secrets stay in Secrets: the file names variables, the pods bind them to Secret keys.
    let text = &cm.data.as_ref().unwrap()["larder.yaml"];
    assert!(
        text.contains("\"${LARDER_REGISTRY_URL}\"") && !text.contains(PASSWORD),
        "{text}"
    );
    let pod = fs.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.example/larder:test"));
    let env = c.env.as_ref().unwrap();
    let registry_env = env.iter().find(|e| e.name == "LARDER_REGISTRY_URL").unwrap();
    let key_ref = registry_env
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (key_ref.name.as_str(), key_ref.key.as_str()),
        ("larder-registry", "url")
    );
    assert!(
        env.iter()
            .any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug"))
    );
    assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "serving");
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(
        (sc.read_only_root_filesystem, sc.allow_privilege_escalation),
        (Some(true), Some(false))
    );
    assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
    assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
    let ports: Vec<i32> = svc
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [6566, 6567]);

    // Optional APIs: on a cluster without them (this 1.20 test server) a condition says so and
    // the rest stands; where they are served, the HPA and PDB exist.
    let hpa_served = served(&ns.client, "autoscaling/v2").await;
    let pdb_served = served(&ns.client, "policy/v1").await;
    ns.wait_condition(Kind::FeatureStore, STORE, "RegistryReady", true)
        .await;
    let store = ns.get(Kind::FeatureStore, STORE).await.unwrap();
    let applied = condition(&store, "WorkloadsApplied").expect("WorkloadsApplied");
    if hpa_served && pdb_served {
        assert_eq!(applied["status"], "True", "{applied}");
    } else {
        assert_eq!(
            (applied["status"].as_str(), applied["reason"].as_str()),
            (Some("False"), Some("APIUnavailable"))
        );
        let message = applied["message"].as_str().unwrap();
        if !hpa_served {
            assert!(message.contains("autoscaling/v2"), "{message}");
        }
        if !pdb_served {
            assert!(message.contains("policy/v1"), "{message}");
        }
    }
    // No kubelet here: the pods never become ready, so the servers are not available and the store is not Ready.
    let fs_cond = condition(&store, "FeatureServerAvailable").expect("FeatureServerAvailable");
    assert_eq!(fs_cond["status"], "False");
    let ready = condition(&store, "Ready").unwrap();
    assert_eq!(ready["reason"], "FeatureServerUnavailable", "{ready}");
    let status = &store.data["status"];
    assert_eq!(status["image"], "registry.example/larder:test");
    assert_eq!(
        status["featureServer"]["endpoint"],
        format!("http://driver-stats-feature-server.{}.svc:6566", ns.name)
    );
    assert_eq!(
        status["registryServer"]["endpoint"],
        format!("driver-stats-registry-server.{}.svc:6570", ns.name)
    );

    // A config change rolls the pods: new hash in the pod template.
    let before = pod_template_hash(&fs);
    ns.apply(&serving_samples(online.path()).replace("cacheTTLSeconds: 60", "cacheTTLSeconds: 5"))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the pod template follows the config",
        || async {
            let d: Deployment = get(&ns, "driver-stats-feature-server").await.unwrap();
            pod_template_hash(&d) != before
        },
    )
    .await;
    let cm: ConfigMap = get(&ns, "driver-stats-config").await.unwrap();
    assert!(cm.data.unwrap()["larder.yaml"].contains("cache_ttl_seconds: 5"));

    // A hand edit of an owned field is reverted (the Deployment watch requeues the store).
    let edit = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "registry-server", "image": "evil/image:1"}]}}}});
    Api::<Deployment>::namespaced(ns.client.clone(), &ns.name)
        .patch(
            "driver-stats-registry-server",
            &PatchParams::default(),
            &Patch::Strategic(&edit),
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the hand edit reverted", || async {
        let d: Deployment = get(&ns, "driver-stats-registry-server").await.unwrap();
        d.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref() == Some("registry.example/larder:test")
    })
    .await;
    // A deleted child comes back.
    Api::<Service>::namespaced(ns.client.clone(), &ns.name)
        .delete("driver-stats-registry-server", &Default::default())
        .await
        .unwrap();
    ns.apply(&serving_samples(online.path()).replace("cacheTTLSeconds: 60", "cacheTTLSeconds: 6"))
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the deleted Service recreated", || async {
        get::<Service>(&ns, "driver-stats-registry-server").await.is_some()
    })
    .await;

    // Switching the registry server off removes its objects and its condition.
    ns.apply(&serving_samples(online.path()).replace(
        "  registryServer: {replicas: 1}\n",
        "  registryServer: {enabled: false}\n",
    ))
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "the registry server pruned", || async {
        get::<Deployment>(&ns, "driver-stats-registry-server").await.is_none()
            && get::<Service>(&ns, "driver-stats-registry-server").await.is_none()
            && get::<ServiceAccount>(&ns, "driver-stats-registry-server")
                .await
                .is_none()
    })
    .await;
    eventually(Duration::from_secs(30), "RegistryServerAvailable gone", || async {
        let s = ns.get(Kind::FeatureStore, STORE).await.unwrap();
        condition(&s, "RegistryServerAvailable").is_none() && s.data["status"]["registryServer"].is_null()
    })
    .await;
    assert!(get::<Deployment>(&ns, "driver-stats-feature-server").await.is_some());

    // Deleting the store garbage-collects every child.
    ns.delete_larder_resources().await;
    eventually(Duration::from_secs(60), "children garbage-collected", || async {
        get::<Deployment>(&ns, "driver-stats-feature-server").await.is_none()
            && get::<ConfigMap>(&ns, "driver-stats-config").await.is_none()
            && get::<Service>(&ns, "driver-stats-feature-server").await.is_none()
    })
    .await;
    ns.remove(true).await;
    op.stop().await;
}

#[tokio::test]
async fn a_bad_workload_spec_is_reported_not_applied() {
    let online = SqliteFile::new("online.db");
    let Some((ns, _db)) = setup("op-workloads-bad", None).await else {
        return;
    };
    let op = RunningOperator::start(&ns.client, &ns.name, Duration::from_secs(300));
    // A feature server without an online store cannot serve.
    let manifests = with_sqlite_online(&samples(), online.path())
        .replace(
            &format!("  onlineStore:\n    sqlite: {{path: {}}}\n", online.path().display()),
            "",
        )
        .replace(
            "  deletionPolicy: Retain\n",
            "  deletionPolicy: Retain\n  featureServer: {}\n",
        );
    assert!(!manifests.contains("onlineStore"), "{manifests}");
    ns.apply(&manifests).await.unwrap();
    let c = ns
        .wait_condition(Kind::FeatureStore, STORE, "WorkloadsApplied", false)
        .await;
    assert_eq!(c["reason"], "InvalidSpec");
    assert!(c["message"].as_str().unwrap().contains("spec.onlineStore"), "{c}");
    let store = ns.get(Kind::FeatureStore, STORE).await.unwrap();
    assert_eq!(condition(&store, "Ready").unwrap()["status"], "False");
    assert!(get::<Deployment>(&ns, "driver-stats-feature-server").await.is_none());
    ns.delete_larder_resources().await;
    ns.remove(true).await;
    op.stop().await;
}
