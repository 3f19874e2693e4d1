//! The test kubelet ([`support::kubelet::Kubelet`]) against the test
//! cluster's real controllers, without the operator: Deployments running
//! the real `feature-server` and `registry-server` become Available through
//! the ReplicaSet and Deployment controllers, Jobs running the real
//! `larder` complete or fail through the Job controller, and a pod whose
//! Secret key is missing is not started until the key exists.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::kubelet::{Kubelet, ensure_binaries, expand, http_get, remap_path, remap_port_args};
use support::{TestNs, cluster, eventually, repo_root};

/// Generous: the controllers are quick, the machine may not be.
const WITHIN: Duration = Duration::from_secs(120);

/// A registry and online store prepared by the real `larder apply` of
/// examples/driver-stats, in a directory of their own.
struct Store {
    _dir: tempfile::TempDir,
    /// The registry as the pods' config names it (`sqlite:////abs/registry.db`).
    registry_url: String,
    online: PathBuf,
}

async fn prepared_store() -> Store {
    let binaries = ensure_binaries().await;
    let dir = tempfile::Builder::new().prefix("kubelet-store-").tempdir().unwrap();
    let example = repo_root().join("examples/driver-stats");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    for e in std::fs::read_dir(example.join("manifests")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("../data", example.join("data").to_str().unwrap());
        std::fs::write(manifests.join(p.file_name().unwrap()), text).unwrap();
    }
    let registry_url = format!("sqlite:///{}", dir.path().join("registry.db").display());
    let online = dir.path().join("online.db");
    let cfg = dir.path().join("larder.yaml");
    std::fs::write(&cfg, config_text(&registry_url, &online)).unwrap();
    let out = std::process::Command::new(&binaries["larder"])
        .arg("-c")
        .arg(&cfg)
        .args(["apply", "-f"])
        .arg(&manifests)
        .output()
        .expect("run larder apply");
    assert!(
        out.status.success(),
        "larder apply: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Store {
        _dir: dir,
        registry_url,
        online,
    }
}

/// `larder.yaml` naming the registry directly, or (`${LARDER_REGISTRY_URL}`) through the environment.
fn config_text(registry: &str, online: &Path) -> String {
    format!(
        "project: driver_stats\nregistry:\n  registry_type: sql\n  path: {registry}\n  cache_ttl_seconds: 0\nonline_store:\n  type: sqlite\n  path: {}\nentity_key_serialization_version: 3\n",
        online.display()
    )
}

/// The Secret with the registry URL and the ConfigMap with `larder.yaml`, as the operator renders them.
async fn store_objects(ns: &TestNs, store: &Store) {
    ns.secret("registry", "url", &store.registry_url).await;
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "store-config"},
        "data": {"larder.yaml": config_text("${LARDER_REGISTRY_URL}", &store.online)},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(ns.client.clone(), &ns.name)
        .create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");
}

/// A pod spec shaped like crates/deploy/src/servers.rs renders it.
fn server_pod_spec(component: &str, args: &[&str], ports: &[(&str, i32)], probe: (&str, &str)) -> Value {
    json!({
        "automountServiceAccountToken": false,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": component,
            "image": "ghcr.io/larder-dev/larder:0.1.0",
            "command": [component],
            "args": args,
            "env": [
                {"name": "LARDER_REGISTRY_URL", "valueFrom": {"secretKeyRef": {"name": "registry", "key": "url"}}},
                {"name": "RUST_LOG", "value": "info"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "ports": ports.iter().map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": "TCP"})).collect::<Vec<_>>(),
            "readinessProbe": {"httpGet": {"path": probe.1, "port": probe.0, "scheme": "HTTP"},
                               "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
            "livenessProbe": {"httpGet": {"path": probe.1, "port": probe.0, "scheme": "HTTP"},
                              "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 6},
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/larder", "readOnly": true},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }],
        "volumes": [
            {"name": "config", "configMap": {"name": "store-config"}},
            {"name": "tmp", "emptyDir": {}},
        ],
    })
}

fn deployment(name: &str, pod_spec: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/component": name}},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/component": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/component": name}},
                "spec": pod_spec,
            },
        },
    }))
    .unwrap()
}

fn job(name: &str, args: &[&str], with_store: bool) -> Job {
    let mut container = json!({
        "name": "materialize",
        "image": "ghcr.io/larder-dev/larder:0.1.0",
        "command": ["larder"],
        "args": args,
        "env": [{"name": "RUST_LOG", "value": "info"}],
    });
    let mut spec = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "containers": [],
    });
    if with_store {
        container["env"] = json!([
            {"name": "LARDER_REGISTRY_URL", "valueFrom": {"secretKeyRef": {"name": "registry", "key": "url"}}},
            {"name": "RUST_LOG", "value": "info"},
        ]);
        container["volumeMounts"] = json!([
            {"name": "config", "mountPath": "/etc/larder", "readOnly": true},
            {"name": "tmp", "mountPath": "/tmp"},
        ]);
        spec["volumes"] = json!([
            {"name": "config", "configMap": {"name": "store-config"}},
            {"name": "tmp", "emptyDir": {}},
        ]);
    }
    spec["containers"] = json!([container]);
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }))
    .unwrap()
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

async fn status_of<K>(api: &Api<K>, name: &str) -> Value
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(Some(o)) => serde_json::to_value(&o).unwrap()["status"].clone(),
        _ => Value::Null,
    }
}

/// Wait until `check` holds for the object's status; panics with the status and the kubelet's dump.
async fn wait_status<K>(
    api: &Api<K>,
    kubelet: &Kubelet,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let deadline = Instant::now() + WITHIN;
    loop {
        let status = status_of(api, name).await;
        if check(&status) {
            return status;
        }
        if Instant::now() > deadline {
            panic!(
                "{name}: {what} not within {WITHIN:?}; status: {}\n{}",
                serde_json::to_string_pretty(&status).unwrap(),
                kubelet.dump(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn available(s: &Value) -> bool {
    s["availableReplicas"] == 1 && condition(s, "Available").is_some_and(|c| c["status"] == "True")
}

#[tokio::test]
async fn deployments_become_available_through_the_real_controllers() {
    let Some(client) = cluster().await else { return };
    let started = Instant::now();
    let store = prepared_store().await;
    let ns = TestNs::create(&client, "kubelet-deploy").await;
    store_objects(&ns, &store).await;
    let kubelet = Kubelet::start(&client, &ns.name).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let fs_args = [
        "--config",
        "/etc/larder/larder.yaml",
        "--host",
        "0.0.0.0",
        "--port",
        "6566",
        "--grpc-port",
        "6567",
    ];
    let rs_args = [
        "--config",
        "/etc/larder/larder.yaml",
        "--host",
        "0.0.0.0",
        "--port",
        "6570",
        "--metrics-port",
        "6571",
    ];
    for d in [
        deployment(
            "feature-server",
            server_pod_spec(
                "feature-server",
                &fs_args,
                &[("http", 6566), ("grpc", 6567)],
                ("http", "/health"),
            ),
        ),
        deployment(
            "registry-server",
            server_pod_spec(
                "registry-server",
                &rs_args,
                &[("grpc", 6570), ("metrics", 6571)],
                ("metrics", "/healthz"),
            ),
        ),
    ] {
        deployments
            .create(&PostParams::default(), &d)
            .await
            .expect("create Deployment");
    }

    // The Deployment controller itself reports availability.
    for name in ["feature-server", "registry-server"] {
        let s = wait_status(
            &deployments,
            &kubelet,
            name,
            "Available with 1 available replica",
            available,
        )
        .await;
        assert_eq!(s["readyReplicas"], 1, "{s}");
        assert_eq!(
            condition(&s, "Available").unwrap()["reason"],
            "MinimumReplicasAvailable",
            "{s}"
        );
    }

    // "pod IP:6566" answers, on its local port.
    let (pod, port) = kubelet.deployment_port("feature-server", 6566, WITHIN).await;
    let (code, _) = http_get(port, "/health").await.expect("GET /health");
    assert_eq!(code, 200, "GET /health on {pod}\n{}", kubelet.dump(40));
    let grpc = kubelet.port_of(&pod, 6567);
    tokio::net::TcpStream::connect(("127.0.0.1", grpc))
        .await
        .expect("the gRPC port is served");
    let (reg_pod, metrics) = kubelet.deployment_port("registry-server", 6571, WITHIN).await;
    let (code, body) = http_get(metrics, "/healthz").await.expect("GET /healthz");
    assert_eq!(code, 200, "GET /healthz on {reg_pod}: {body}");

    // The command line as run: volumes and ports remapped, the rest as rendered.
    let rec = kubelet.record(&pod).unwrap();
    let logs = kubelet.logs(&pod);
    let config = rec.dir.join("volumes/config/larder.yaml");
    assert!(
        config.is_file(),
        "the ConfigMap volume is written: {}",
        config.display()
    );
    let expected = format!(
        "--config {} --host 0.0.0.0 --port {port} --grpc-port {grpc}",
        config.display()
    );
    assert!(logs.contains(&expected), "{expected}\nnot in\n{logs}");

    // The pod's status, as a kubelet reports it.
    let p = status_of(&pods, &pod).await;
    assert_eq!(p["phase"], "Running", "{p}");
    assert_eq!(p["podIP"], "127.0.0.1", "{p}");
    for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        let cond = condition(&p, c).unwrap_or_else(|| panic!("{c} in {p}"));
        assert_eq!(cond["status"], "True", "{c}: {p}");
        assert!(cond["lastTransitionTime"].is_string(), "{c}: {p}");
    }
    let cs = &p["containerStatuses"][0];
    assert_eq!(cs["ready"], true, "{p}");
    assert_eq!(cs["started"], true, "{p}");
    assert_eq!(cs["restartCount"], 0, "{p}");
    assert!(cs["state"]["running"]["startedAt"].is_string(), "{p}");

    // A deleted pod's process is killed; the ReplicaSet replaces the pod and
    // the kubelet runs the new one.
    pods.delete(&pod, &DeleteParams::default()).await.expect("delete pod");
    eventually(WITHIN, "the deleted pod's process is killed", || async {
        kubelet.record(&pod).is_some_and(|r| r.deleted && !r.running)
    })
    .await;
    assert!(
        http_get(port, "/health").await.is_err(),
        "the old pod's port no longer answers"
    );
    let (new_pod, new_port) = kubelet.deployment_port("feature-server", 6566, WITHIN).await;
    assert_ne!(new_pod, pod);
    assert_eq!(http_get(new_port, "/health").await.expect("GET /health").0, 200);
    wait_status(&deployments, &kubelet, "feature-server", "Available again", available).await;

    // Scaling to zero stops the process.
    deployments
        .patch(
            "registry-server",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    eventually(WITHIN, "the scaled-down pod's process is killed", || async {
        kubelet.record(&reg_pod).is_some_and(|r| r.deleted && !r.running)
    })
    .await;

    kubelet.shutdown().await;
    ns.remove(false).await;
    eprintln!("deployments test took {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn jobs_complete_and_fail_through_the_job_controller() {
    let Some(client) = cluster().await else { return };
    let started = Instant::now();
    let store = prepared_store().await;
    let ns = TestNs::create(&client, "kubelet-jobs").await;
    store_objects(&ns, &store).await;
    let kubelet = Kubelet::start(&client, &ns.name).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for j in [
        job("version", &["--version"], false),
        job("bad", &["no-such-command"], false),
        job(
            "list",
            &["--config", "/etc/larder/larder.yaml", "ls", "featureviews"],
            true,
        ),
    ] {
        jobs.create(&PostParams::default(), &j).await.expect("create Job");
    }
    let complete = |s: &Value| condition(s, "Complete").is_some_and(|c| c["status"] == "True");
    for name in ["version", "list"] {
        let s = wait_status(&jobs, &kubelet, name, "Complete=True", complete).await;
        assert_eq!(s["succeeded"], 1, "{s}");
    }
    let s = wait_status(&jobs, &kubelet, "bad", "Failed=True", |s| {
        condition(s, "Failed").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(
        condition(&s, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded",
        "{s}"
    );

    let pod_of = |job: &'static str| {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels(&format!("job-name={job}")))
                .await
                .unwrap();
            assert_eq!(l.items.len(), 1, "one pod for job {job}");
            let p = l.items.into_iter().next().unwrap();
            (
                p.metadata.name.clone().unwrap(),
                serde_json::to_value(&p).unwrap()["status"].clone(),
            )
        }
    };
    let (bad, st) = pod_of("bad").await;
    assert_eq!(st["phase"], "Failed", "{st}");
    let term = &st["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["reason"], "Error", "{st}");
    assert_eq!(term["exitCode"], 2, "clap's usage error: {st}");
    assert!(kubelet.logs(&bad).contains("no-such-command"), "{}", kubelet.logs(&bad));

    let (version, st) = pod_of("version").await;
    assert_eq!(st["phase"], "Succeeded", "{st}");
    assert_eq!(
        st["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed",
        "{st}"
    );
    assert_eq!(st["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0, "{st}");
    assert!(kubelet.logs(&version).contains("larder"), "{}", kubelet.logs(&version));

    // The config volume, the Secret's variable and the registry reached the job.
    let (list, _) = pod_of("list").await;
    assert!(
        kubelet.logs(&list).contains("driver_hourly_stats"),
        "{}",
        kubelet.logs(&list)
    );

    kubelet.shutdown().await;
    ns.remove(false).await;
    eprintln!("jobs test took {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn a_pod_whose_secret_key_is_missing_is_not_started() {
    let Some(client) = cluster().await else { return };
    let ns = TestNs::create(&client, "kubelet-secret").await;
    ns.secret("creds", "other", "x").await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "files"}, "data": {"a.txt": "A"}})).unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    // A bare pod (no controller) running a host command through PATH.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "needs-key", "labels": {"app": "needs-key"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "c",
                "image": "busybox",
                "command": ["sh", "-c", "echo token=$(TOKEN) pod=$POD_NAME file=$FILE; cat $FILE"],
                "env": [
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "FILE", "value": "/data/a.txt"},
                ],
                "volumeMounts": [{"name": "files", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "files", "configMap": {"name": "files", "items": [{"key": "a.txt", "path": "a.txt"}]}}],
        },
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let kubelet = Kubelet::start_with(
        &client,
        &ns.name,
        support::kubelet::KubeletOptions {
            selector: Some("app=needs-key".into()),
            binaries: Some(BTreeMap::new()),
        },
    )
    .await;

    let st = wait_status(&pods, &kubelet, "needs-key", "CreateContainerConfigError", |s| {
        s["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    assert_eq!(st["phase"], "Pending", "{st}");
    let message = st["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        message,
        format!("couldn't find key token in Secret {}/creds", ns.name),
        "{st}"
    );
    assert_eq!(condition(&st, "Ready").unwrap()["reason"], "ContainersNotReady", "{st}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!kubelet.started("needs-key"), "{}", kubelet.dump(20));

    // As a kubelet retries, the container starts once the key exists.
    Api::<Secret>::namespaced(client.clone(), &ns.name)
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": "t0ken"}})),
        )
        .await
        .unwrap();
    let st = wait_status(&pods, &kubelet, "needs-key", "Succeeded", |s| s["phase"] == "Succeeded").await;
    assert_eq!(st["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0, "{st}");
    let logs = kubelet.logs("needs-key");
    let dir = kubelet.record("needs-key").unwrap().dir;
    let file = dir.join("volumes/files/a.txt");
    assert!(
        logs.contains(&format!("token=t0ken pod=needs-key file={}\nA", file.display())),
        "{logs}"
    );

    kubelet.shutdown().await;
    ns.remove(false).await;
}

#[test]
fn expansion_and_remapping() {
    let env = |n: &str| match n {
        "A" => Some("1".to_string()),
        _ => None,
    };
    assert_eq!(expand("x$(A)y", env), "x1y");
    assert_eq!(expand("$(B) $$(A) $A $(A", env), "$(B) $(A) $A $(A");

    let mounts = vec![
        ("/etc/larder/tls".to_string(), PathBuf::from("/k/tls")),
        ("/etc/larder".to_string(), PathBuf::from("/k/config")),
        ("/tmp".to_string(), PathBuf::from("/k/tmp")),
    ];
    assert_eq!(remap_path("/etc/larder/larder.yaml", &mounts), "/k/config/larder.yaml");
    assert_eq!(remap_path("/etc/larder/tls/tls.crt", &mounts), "/k/tls/tls.crt");
    assert_eq!(remap_path("/etc/larder", &mounts), "/k/config");
    assert_eq!(remap_path("/etc/larderx", &mounts), "/etc/larderx");
    assert_eq!(remap_path("--config=/tmp/a", &mounts), "--config=/k/tmp/a");
    assert_eq!(remap_path("sqlite:////tmp/a", &mounts), "sqlite:////tmp/a");

    let ports = BTreeMap::from([(6566, 40001u16), (6567, 40002)]);
    let mut argv: Vec<String> = [
        "x",
        "--port",
        "6566",
        "--grpc-port=6567",
        "--metrics-port",
        "9999",
        "--shard",
        "6566",
        "--grpc-port",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    remap_port_args(&mut argv, &ports);
    assert_eq!(
        argv,
        [
            "x",
            "--port",
            "40001",
            "--grpc-port=40002",
            "--metrics-port",
            "9999",
            "--shard",
            "6566",
            "--grpc-port",
            "0"
        ]
    );
}
