//! Packaging: the Helm chart (charts/larder), the kustomize bases (config/) and
//! the Dockerfile describe one operator, and what they render is accepted by a
//! real API server.
//!
//! helm and kubectl (kustomize is built into kubectl) come from `$LARDER_HELM` /
//! `$LARDER_KUBECTL` (scripts/test.sh sets them from scripts/k8s-tools.sh), else
//! scripts/k8s-tools.sh's cache directory, else `PATH`. Without them the tests
//! fail in CI and skip with a note elsewhere.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{TEST_MANAGER, TestNs, cluster, repo_root};

/// The image every manifest runs, tagged with the workspace version.
const IMAGE_REPOSITORY: &str = "ghcr.io/larder-dev/larder";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The namespace of config/default.
const KUSTOMIZE_NAMESPACE: &str = "larder-system";

// ---------------------------------------------------------------------------------------
// helm and kubectl

struct Tools {
    helm: PathBuf,
    kubectl: PathBuf,
}

fn find_tool(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env}={} is not a file", p.display());
        return Some(p);
    }
    let cache = std::env::var_os("LARDER_K8S_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/larder/k8s-tools"))
        .join("bin")
        .join(name);
    if cache.is_file() {
        return Some(cache);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// helm and kubectl, or `None` (with a note) outside CI when one is missing.
fn tools() -> Option<Tools> {
    let helm = find_tool("helm", "LARDER_HELM");
    let kubectl = find_tool("kubectl", "LARDER_KUBECTL");
    if let (Some(helm), Some(kubectl)) = (&helm, &kubectl) {
        return Some(Tools {
            helm: helm.clone(),
            kubectl: kubectl.clone(),
        });
    }
    let missing: Vec<&str> = [("helm", helm.is_none()), ("kubectl", kubectl.is_none())]
        .into_iter()
        .filter_map(|(n, m)| m.then_some(n))
        .collect();
    let missing = missing.join(" and ");
    if std::env::var_os("CI").is_some() {
        panic!(
            "no {missing}: CI must run the packaging tests (scripts/test.sh installs them with scripts/k8s-tools.sh)"
        );
    }
    eprintln!("SKIPPED: no {missing} (run scripts/k8s-tools.sh, or set LARDER_HELM / LARDER_KUBECTL)");
    None
}

/// Runs `cmd` in the repository root: `Ok(stdout)` or `Err(stderr and stdout)`.
fn run(mut cmd: Command) -> Result<String, String> {
    cmd.current_dir(repo_root());
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{}{stdout}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/larder")
}

impl Tools {
    fn helm(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(&self.helm);
        cmd.args(args);
        run(cmd)
    }

    /// `helm template RELEASE charts/larder --namespace NS ARGS...`
    fn template(&self, release: &str, namespace: &str, args: &[&str]) -> Result<String, String> {
        let chart = chart_dir();
        let mut all = vec!["template", release, chart.to_str().unwrap(), "--namespace", namespace];
        all.extend_from_slice(args);
        self.helm(&all)
    }

    fn kustomize(&self, dir: &str) -> String {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("kustomize").arg(repo_root().join(dir));
        run(cmd).unwrap_or_else(|e| panic!("kubectl kustomize {dir}:\n{e}"))
    }
}

// ---------------------------------------------------------------------------------------
// rendered documents

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "exactly one {kind} expected, found {}", found.len());
    found[0]
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap()
}

/// The operator's container of a rendered Deployment.
fn operator_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container");
    assert_eq!(containers[0]["name"], "operator");
    &containers[0]
}

fn args(container: &Value) -> BTreeSet<String> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn env(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn env_value(container: &Value, name: &str) -> String {
    env(container)
        .get(name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("env {name} with a value"))
        .to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// RBAC rules as a set of (apiGroup, resource, resourceName, verb): equal sets grant the same.
fn rule_set(role: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert!(rule.get("nonResourceURLs").is_none(), "no non-resource rules expected");
        let names = match strings(&rule["resourceNames"]) {
            n if n.is_empty() => vec!["*".to_string()],
            n => n,
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for name in &names {
                    for verb in strings(&rule["verbs"]) {
                        out.insert((group.clone(), resource.clone(), name.clone(), verb));
                    }
                }
            }
        }
    }
    assert!(!out.is_empty());
    out
}

/// Asserts that two roles grant the same, naming what one grants and the other does not.
fn assert_same_rules(what: &str, have: &Value, want: &Value) {
    let (have, want) = (rule_set(have), rule_set(want));
    let extra: Vec<_> = have.difference(&want).collect();
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: (apiGroup, resource, resourceName, verb) granted in addition: {extra:?}; missing: {missing:?}"
    );
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The CRD files of `dir` (*.yaml but kustomization.yaml), by file name.
fn crd_files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| p.file_name().unwrap() != "kustomization.yaml")
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// The CRDs of crds/, by name.
fn repo_crds() -> BTreeMap<String, Value> {
    crd_files(&repo_root().join("crds"))
        .values()
        .flat_map(|text| docs(text))
        .map(|d| (name(&d).to_string(), d))
        .collect()
}

/// `v` with integral floats as integers (kustomize writes crdgen's `minimum: 0.0` as `0`).
fn normalize(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => json!(f as i64),
            _ => v.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect()),
        _ => v.clone(),
    }
}

/// The first place where `a` and `b` differ, as a JSON path with both values.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} != {b}")),
    }
}

/// Asserts that the CRDs of rendered `docs` are those of crds/.
fn assert_repo_crds(what: &str, docs: &[Value]) {
    let want = repo_crds();
    let have = crds_by_name(docs);
    assert_eq!(
        have.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: the CRDs of crds/"
    );
    for (name, crd) in &have {
        if let Some(d) = first_difference(&normalize(crd), &normalize(&want[name]), "") {
            panic!("{what}: CRD {name} differs from crds/ at {d}");
        }
    }
}

fn crds_by_name(docs: &[Value]) -> BTreeMap<String, Value> {
    of_kind(docs, "CustomResourceDefinition")
        .into_iter()
        .map(|d| (name(d).to_string(), d.clone()))
        .collect()
}

/// A values file that turns on every option of the chart.
const EVERYTHING_ON: &str = r#"
image:
  repository: registry.example.com/larder
  tag: 9.9.9-test
  pullPolicy: Always
  pullSecrets: [regcred, other-regcred]
replicas: 3
leaderElection:
  enabled: true
watchNamespaces: [team-a, team-b]
logLevel: larder_operator=debug,info
metrics:
  port: 9090
  service:
    type: NodePort
    port: 9091
    annotations: {example.com/scrape: "true"}
  serviceMonitor:
    enabled: true
    interval: 15s
    scrapeTimeout: 10s
    labels: {release: prometheus}
resources:
  requests: {cpu: 200m, memory: 128Mi}
  limits: {cpu: "1", memory: 512Mi}
nodeSelector: {kubernetes.io/os: linux}
tolerations:
  - {key: dedicated, operator: Equal, value: larder, effect: NoSchedule}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}
podAnnotations: {example.com/team: features}
nameOverride: lrd
fullnameOverride: larder-everything
"#;

/// Key paths of the nested maps of `v` (leaves included), e.g. `metrics.service.port`.
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(path.clone());
            key_paths(child, &path, out);
        }
    }
}

fn everything_on_file() -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), EVERYTHING_ON).unwrap();
    file
}

// ---------------------------------------------------------------------------------------
// the chart on its own

#[test]
fn the_chart_lints_and_renders_with_default_and_with_every_option() {
    let Some(t) = tools() else { return };
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let values = everything_on_file();
    let values = values.path().to_str().unwrap();
    for args in [
        vec!["lint", chart],
        vec!["lint", "--strict", chart],
        vec!["lint", "--strict", chart, "-f", values],
    ] {
        t.helm(&args)
            .unwrap_or_else(|e| panic!("helm {}:\n{e}", args.join(" ")));
    }

    // Defaults: the operator of config/manager, image tagged with the chart's appVersion.
    let default = docs(&t.template("larder", "larder-system", &[]).unwrap());
    assert_eq!(
        kinds(&default),
        set(&[
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ])
    );
    for doc in &default {
        assert_eq!(
            name(doc).split('-').next(),
            Some("larder"),
            "named after the release: {doc}"
        );
        let labels = &doc["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/instance"], "larder", "{doc}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{doc}");
        if !doc["kind"].as_str().unwrap().starts_with("Cluster") {
            assert_eq!(
                doc["metadata"]["namespace"], "larder-system",
                "in the release namespace: {doc}"
            );
        }
    }
    let deployment = one(&default, "Deployment");
    assert_eq!(name(deployment), "larder");
    let c = operator_container(deployment);
    let image = format!("{IMAGE_REPOSITORY}:{VERSION}");
    assert_eq!(c["image"], image.as_str());
    assert_eq!(env_value(c, "LARDER_IMAGE"), image);
    assert_eq!(env_value(c, "RUST_LOG"), "info");
    assert_eq!(args(c), set(&["--leader-elect", "--metrics-addr=0.0.0.0:8080"]));
    assert!(deployment["spec"]["template"]["spec"].get("imagePullSecrets").is_none());

    // Every option on.
    let values_yaml: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap()).unwrap();
    let everything: Value = serde_yaml::from_str(EVERYTHING_ON).unwrap();
    let (mut want, mut have) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&values_yaml, "", &mut want);
    key_paths(&everything, "", &mut have);
    let untested: Vec<_> = want.difference(&have).collect();
    assert!(
        untested.is_empty(),
        "EVERYTHING_ON must set every value of values.yaml; missing {untested:?}"
    );
    let all = docs(&t.template("larder", "larder-system", &["-f", values]).unwrap());
    assert!(kinds(&all).contains("ServiceMonitor"));
    let deployment = one(&all, "Deployment");
    assert_eq!(name(deployment), "larder-everything");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    let c = operator_container(deployment);
    assert_eq!(c["image"], "registry.example.com/larder:9.9.9-test");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(env_value(c, "LARDER_IMAGE"), "registry.example.com/larder:9.9.9-test");
    assert_eq!(env_value(c, "RUST_LOG"), "larder_operator=debug,info");
    assert_eq!(
        args(c),
        set(&[
            "--leader-elect",
            "--metrics-addr=0.0.0.0:9090",
            "--namespace=team-a",
            "--namespace=team-b"
        ])
    );
    assert_eq!(c["ports"], json!([{"name": "metrics", "containerPort": 9090}]));
    assert_eq!(c["resources"], everything["resources"]);
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{"name": "regcred"}, {"name": "other-regcred"}])
    );
    assert_eq!(pod["nodeSelector"], everything["nodeSelector"]);
    assert_eq!(pod["tolerations"], everything["tolerations"]);
    assert_eq!(pod["affinity"], everything["affinity"]);
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"],
        everything["podAnnotations"]
    );
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "lrd", "app.kubernetes.io/instance": "larder"})
    );
    let service = one(&all, "Service");
    assert_eq!(service["spec"]["type"], "NodePort");
    assert_eq!(service["spec"]["ports"][0]["port"], 9091);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        service["metadata"]["annotations"],
        everything["metrics"]["service"]["annotations"]
    );
    let monitor = one(&all, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["selector"]["matchLabels"], service["spec"]["selector"]);
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}])
    );

    // No leader election: one replica, no --leader-elect, no Lease RBAC.
    let single = docs(
        &t.template(
            "larder",
            "larder-system",
            &["--set", "leaderElection.enabled=false", "--set", "replicas=1"],
        )
        .unwrap(),
    );
    assert!(!args(operator_container(one(&single, "Deployment"))).contains("--leader-elect"));
    assert!(of_kind(&single, "Role").is_empty() && of_kind(&single, "RoleBinding").is_empty());
    let err = t
        .template("larder", "larder-system", &["--set", "leaderElection.enabled=false"])
        .expect_err("2 replicas without leader election");
    assert!(err.contains("leaderElection.enabled"), "{err}");

    // --include-crds: the CRDs of crds/.
    let with_crds = docs(&t.template("larder", "larder-system", &["--include-crds"]).unwrap());
    assert_repo_crds("helm template --include-crds", &with_crds);
}

#[test]
fn values_schema_rejects_unknown_keys_and_wrong_types() {
    let Some(t) = tools() else { return };
    let schema: Value = serde_json::from_str(&read("charts/larder/values.schema.json")).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    // The schema knows every value (and Helm's `global`), no more.
    let values: Value = serde_yaml::from_str(&read("charts/larder/values.yaml")).unwrap();
    let mut keys: BTreeSet<&String> = values.as_object().unwrap().keys().collect();
    let global = "global".to_string();
    keys.insert(&global);
    assert_eq!(
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<BTreeSet<_>>(),
        keys
    );

    let wrong_file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(wrong_file.path(), "replicas: \"2\"\nleaderElection: {enabled: true}\n").unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--set", "replicas=two"], "replicas"),
        (&["-f", wrong_file.path().to_str().unwrap()], "replicas"),
        (&["--set", "bogus=1"], "bogus"),
        (&["--set", "leaderElection.enabled=yes"], "enabled"),
        (&["--set-json", "watchNamespaces=\"team-a\""], "watchNamespaces"),
        (&["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (&["--set", "image.tags=1.0"], "tags"),
        (&["--set", "metrics.serviceMonitor.enable=true"], "enable"),
        (&["--set", "metrics.port=http"], "port"),
    ];
    for (args, key) in cases {
        let err = t
            .template("larder", "larder-system", args)
            .expect_err(&format!("values {args:?} must be rejected"));
        assert!(err.contains("schema") && err.contains(key), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// chart == kustomize == Dockerfile

#[test]
fn the_chart_and_config_default_deploy_the_same_operator() {
    let Some(t) = tools() else { return };
    let kustomized = docs(&t.kustomize("config/default"));
    let helm = docs(&t.template("larder", KUSTOMIZE_NAMESPACE, &["--include-crds"]).unwrap());

    // The same kinds; the chart adds the metrics Service, kustomize the Namespace.
    let mut k_kinds = kinds(&kustomized);
    k_kinds.remove("Namespace");
    k_kinds.insert("Service".into());
    assert_eq!(kinds(&helm), k_kinds);

    // The same CRDs, those of crds/; the chart's crds/ holds exactly crds/'s files.
    assert!(
        crd_files(&chart_dir().join("crds")) == crd_files(&repo_root().join("crds")),
        "charts/larder/crds/ differs from crds/: run `larder-operator crdgen --out crds` and \
         `larder-operator crdgen --out charts/larder/crds`"
    );
    assert!(!chart_dir().join("crds/kustomization.yaml").exists());
    assert_repo_crds("kubectl kustomize config/default", &kustomized);
    assert_repo_crds("helm template --include-crds", &helm);

    // The same ClusterRole rules as config/rbac/role.yaml, the same Lease rules.
    let role_file = docs(&read("config/rbac/role.yaml"));
    let role = one(&role_file, "ClusterRole");
    assert_same_rules(
        "config/default's ClusterRole vs config/rbac/role.yaml",
        one(&kustomized, "ClusterRole"),
        role,
    );
    assert_same_rules(
        "charts/larder's ClusterRole vs config/rbac/role.yaml",
        one(&helm, "ClusterRole"),
        role,
    );
    let lease_file = docs(&read("config/rbac/leader_election_role.yaml"));
    let lease_role = one(&lease_file, "Role");
    assert_same_rules(
        "config/default's leader-election Role",
        one(&kustomized, "Role"),
        lease_role,
    );
    assert_same_rules("charts/larder's leader-election Role", one(&helm, "Role"), lease_role);

    // In each: the bindings tie the Deployment's ServiceAccount to the roles.
    for (what, d) in [("config/default", &kustomized), ("charts/larder", &helm)] {
        let deployment = one(d, "Deployment");
        let sa = name(one(d, "ServiceAccount"));
        assert_eq!(
            deployment["spec"]["template"]["spec"]["serviceAccountName"], sa,
            "{what}"
        );
        let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": KUSTOMIZE_NAMESPACE}]);
        for (binding, role) in [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")] {
            let b = one(d, binding);
            assert_eq!(b["subjects"], subject, "{what} {binding}");
            assert_eq!(b["roleRef"]["kind"], role, "{what} {binding}");
            assert_eq!(b["roleRef"]["name"], name(one(d, role)), "{what} {binding}");
        }
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (k, v) in deployment["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&pod_labels[k], v, "{what}: the selector matches the pod labels");
        }
    }

    // The same Deployment: replicas, command, args, env, image, probes, security.
    let (k, h) = (one(&kustomized, "Deployment"), one(&helm, "Deployment"));
    assert_eq!(k["spec"]["replicas"], h["spec"]["replicas"]);
    let (kp, hp) = (&k["spec"]["template"]["spec"], &h["spec"]["template"]["spec"]);
    assert_eq!(kp["securityContext"], hp["securityContext"], "pod security context");
    let (kc, hc) = (operator_container(k), operator_container(h));
    for field in [
        "command",
        "ports",
        "readinessProbe",
        "livenessProbe",
        "securityContext",
        "resources",
    ] {
        assert_eq!(kc[field], hc[field], "container {field}");
    }
    assert_eq!(args(kc), args(hc));
    assert_eq!(env(kc), env(hc), "env (names, values, valueFrom)");
    let image = format!("{IMAGE_REPOSITORY}:{VERSION}");
    assert_eq!(kc["image"], image.as_str());
    assert_eq!(hc["image"], image.as_str());
    assert_eq!(
        env_value(kc, "LARDER_IMAGE"),
        image,
        "kustomize's replacement copies the image"
    );
    assert_eq!(
        env(kc).into_keys().collect::<BTreeSet<_>>(),
        set(&["LARDER_IMAGE", "LARDER_LEADER_NAMESPACE", "POD_NAME", "RUST_LOG"])
    );
    // The probes hit the metrics port the operator listens on.
    let metrics_addr = args(kc).into_iter().find(|a| a.starts_with("--metrics-addr=")).unwrap();
    let port = kc["ports"][0]["containerPort"].as_u64().unwrap();
    assert!(metrics_addr.ends_with(&format!(":{port}")), "{metrics_addr} vs {port}");
    assert_eq!(
        kc["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics"})
    );
    assert_eq!(
        kc["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics"})
    );
    // The chart's Service serves that port.
    assert_eq!(one(&helm, "Service")["spec"]["ports"][0]["targetPort"], "metrics");
}

#[test]
fn the_image_is_the_workspace_version_and_holds_what_the_manifests_run() {
    let chart: Value = serde_yaml::from_str(&read("charts/larder/Chart.yaml")).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["version"], VERSION, "charts/larder version = workspace version");
    assert_eq!(
        chart["appVersion"], VERSION,
        "charts/larder appVersion = workspace version"
    );
    let values: Value = serde_yaml::from_str(&read("charts/larder/values.yaml")).unwrap();
    assert_eq!(values["image"]["repository"], IMAGE_REPOSITORY);
    let manager: Value = serde_yaml::from_str(&read("config/manager/kustomization.yaml")).unwrap();
    assert_eq!(manager["images"][0]["newName"], IMAGE_REPOSITORY);
    assert_eq!(manager["images"][0]["newTag"], VERSION);

    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("FROM rust:1.95-bookworm AS builder"));
    assert!(dockerfile.contains("FROM gcr.io/distroless/cc-debian12:nonroot"));
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("/usr/local/bin/"));
    for (dir, package, bin) in [
        ("crates/cli", "larder-cli", "larder"),
        ("feature-server", "larder-feature-server", "feature-server"),
        ("registry-server", "larder-registry-server", "registry-server"),
        ("operator", "larder-operator", "larder-operator"),
    ] {
        let manifest = read(&format!("{dir}/Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{package}\"")),
            "{dir} is {package}"
        );
        assert!(
            manifest.contains(&format!("[[bin]]\nname = \"{bin}\"")),
            "{package} builds {bin}"
        );
        assert!(
            dockerfile.contains(&format!("-p {package}")),
            "the Dockerfile builds {package}"
        );
        assert!(
            dockerfile.contains(&format!("target/release/{bin}")),
            "the image holds {bin}"
        );
    }
    // The Deployments run a binary of the image.
    for text in [
        read("config/manager/deployment.yaml"),
        read("charts/larder/templates/deployment.yaml"),
    ] {
        assert!(text.contains("command: [larder-operator]"));
    }

    // .dockerignore keeps every workspace member in the build context.
    let cargo = read("Cargo.toml");
    let members_line = cargo.lines().find(|l| l.starts_with("members = [")).expect("members");
    let members: Vec<&str> = members_line
        .trim_start_matches("members = [")
        .trim_end_matches(']')
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .collect();
    assert!(members.contains(&"operator"));
    for pattern in read(".dockerignore").lines().map(str::trim) {
        if pattern.is_empty() || pattern.starts_with('#') {
            continue;
        }
        let prefix = pattern.split('*').next().unwrap().trim_end_matches('/');
        for m in &members {
            let excluded = !pattern.contains('*') && (*m == prefix || m.starts_with(&format!("{prefix}/")));
            assert!(!excluded, ".dockerignore line {pattern:?} drops workspace member {m}");
        }
        for needed in ["Cargo.toml", "Cargo.lock"] {
            assert_ne!(pattern, needed, ".dockerignore drops {needed}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// the real API server

/// The API resource and scope of a kind the manifests render.
fn resource_of(doc: &Value) -> (ApiResource, bool) {
    let kind = doc["kind"].as_str().unwrap();
    let api_version = doc["apiVersion"].as_str().unwrap();
    let (want_version, plural, namespaced) = match kind {
        "Namespace" => ("v1", "namespaces", false),
        "ServiceAccount" => ("v1", "serviceaccounts", true),
        "Service" => ("v1", "services", true),
        "ClusterRole" => ("rbac.authorization.k8s.io/v1", "clusterroles", false),
        "ClusterRoleBinding" => ("rbac.authorization.k8s.io/v1", "clusterrolebindings", false),
        "Role" => ("rbac.authorization.k8s.io/v1", "roles", true),
        "RoleBinding" => ("rbac.authorization.k8s.io/v1", "rolebindings", true),
        "Deployment" => ("apps/v1", "deployments", true),
        other => panic!("unexpected kind {other} in the rendered manifests"),
    };
    assert_eq!(api_version, want_version, "{kind}");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    (
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
        },
        namespaced,
    )
}

/// config/default moved to `ns`, its cluster-scoped objects renamed `NAME-ns` (as in rbac.rs).
fn relocate_kustomized(docs: Vec<Value>, ns: &str) -> Vec<Value> {
    fn move_namespace(v: &mut Value, ns: &str) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if k == "namespace" && *child == KUSTOMIZE_NAMESPACE {
                        *child = ns.into();
                    } else {
                        move_namespace(child, ns);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| move_namespace(i, ns)),
            _ => {}
        }
    }
    docs.into_iter()
        .map(|mut d| {
            move_namespace(&mut d, ns);
            match d["kind"].as_str().unwrap() {
                "Namespace" => {
                    assert_eq!(name(&d), KUSTOMIZE_NAMESPACE);
                    d["metadata"]["name"] = ns.into();
                }
                "ClusterRole" => d["metadata"]["name"] = format!("{}-{ns}", name(&d)).into(),
                "ClusterRoleBinding" => {
                    d["metadata"]["name"] = format!("{}-{ns}", name(&d)).into();
                    d["roleRef"]["name"] = format!("{}-{ns}", d["roleRef"]["name"].as_str().unwrap()).into();
                }
                _ => {}
            }
            d
        })
        .collect()
}

struct Applied {
    ar: ApiResource,
    namespace: Option<String>,
    name: String,
}

/// Server-side apply every document but the CRDs (checked against crds/ instead; the
/// test environment installed those) and the ServiceMonitors (no Prometheus Operator
/// here). Records what it applied and the problems.
async fn apply_all(client: &Client, ns: &str, docs: &[Value], applied: &mut Vec<Applied>, problems: &mut Vec<String>) {
    for doc in docs {
        match doc["kind"].as_str().unwrap() {
            "CustomResourceDefinition" => {
                // Checked against crds/ by the_chart_and_config_default_deploy_the_same_operator.
                continue;
            }
            "ServiceMonitor" => continue,
            _ => {}
        }
        let (ar, namespaced) = resource_of(doc);
        let n = name(doc).to_string();
        let namespace = namespaced.then(|| doc["metadata"]["namespace"].as_str().unwrap_or(ns).to_string());
        if let Some(in_ns) = &namespace
            && in_ns != ns
        {
            problems.push(format!("{} {n} is in namespace {in_ns}, not {ns}", ar.kind));
            continue;
        }
        let api: Api<DynamicObject> = match &namespace {
            Some(in_ns) => Api::namespaced_with(client.clone(), in_ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        match api
            .patch(&n, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(doc))
            .await
        {
            Ok(_) => applied.push(Applied { ar, namespace, name: n }),
            Err(e) => problems.push(format!("apply {} {n}: {e}", ar.kind)),
        }
    }
}

/// Whether the API server allows `verb` on `resource` to the ServiceAccount `ns/sa`.
async fn allowed(client: &Client, ns: &str, sa: &str, attributes: Value) -> bool {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": format!("system:serviceaccount:{ns}:{sa}"),
                 "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}")],
                 "resourceAttributes": attributes}
    }))
    .unwrap();
    let r = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview");
    r.status.is_some_and(|s| s.allowed)
}

/// The rendered ServiceAccount gets the operator's rights through the rendered bindings.
async fn check_rights(client: &Client, ns: &str, sa: &str, problems: &mut Vec<String>) {
    let checks = [
        (
            json!({"group": "larder.dev", "resource": "featureviews", "verb": "watch"}),
            true,
        ),
        (
            json!({"group": "apps", "resource": "deployments", "verb": "patch", "namespace": "elsewhere"}),
            true,
        ),
        (
            json!({"group": "", "resource": "secrets", "verb": "get", "namespace": "elsewhere"}),
            true,
        ),
        (
            json!({"group": "coordination.k8s.io", "resource": "leases", "verb": "update",
                "namespace": ns, "name": "larder-operator-leader"}),
            true,
        ),
        (
            json!({"group": "", "resource": "secrets", "verb": "list", "namespace": ns}),
            false,
        ),
        (
            json!({"group": "coordination.k8s.io", "resource": "leases", "verb": "update",
                "namespace": ns, "name": "someone-elses-lease"}),
            false,
        ),
    ];
    // RBAC reads informer caches: give fresh bindings a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut wrong = Vec::new();
        for (attributes, want) in &checks {
            if allowed(client, ns, sa, attributes.clone()).await != *want {
                wrong.push(format!(
                    "{sa}: {attributes} should be {}",
                    if *want { "allowed" } else { "denied" }
                ));
            }
        }
        if wrong.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            problems.extend(wrong);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_rendered_manifests_are_accepted_by_the_api_server() {
    let Some(t) = tools() else { return };
    let Some(client) = cluster().await else { return };
    let ns = TestNs::create(&client, "op-pkg").await;
    let run_id = ns.name.rsplit('-').next().unwrap().to_string();
    let (release, everything_release) = (format!("pkg-{run_id}"), format!("pkg-{run_id}-all"));
    let values = everything_on_file();
    let everything_name = format!("larder-all-{run_id}");

    let helm_default = docs(&t.template(&release, &ns.name, &["--include-crds"]).unwrap());
    let helm_everything = docs(
        &t.template(
            &everything_release,
            &ns.name,
            &[
                "-f",
                values.path().to_str().unwrap(),
                "--set",
                &format!("fullnameOverride={everything_name}"),
            ],
        )
        .unwrap(),
    );
    let kustomized = relocate_kustomized(docs(&t.kustomize("config/default")), &ns.name);
    // The CRDs are not applied: the test environment installed crds/ (with CEL, which
    // a CRD applied through this kube-apiserver 1.20 would lose); they equal crds/.
    assert_repo_crds("helm template --include-crds", &helm_default);
    assert_repo_crds("kubectl kustomize config/default", &kustomized);

    let mut applied = Vec::new();
    let mut problems = Vec::new();
    for (what, rendered) in [
        ("helm template (defaults)", &helm_default),
        ("helm template (every option)", &helm_everything),
        ("kubectl kustomize config/default", &kustomized),
    ] {
        let before = problems.len();
        apply_all(&client, &ns.name, rendered, &mut applied, &mut problems).await;
        for p in &mut problems[before..] {
            *p = format!("{what}: {p}");
        }
    }
    // Each object is there; the bindings give each ServiceAccount the operator's rights.
    for a in &applied {
        let api: Api<DynamicObject> = match &a.namespace {
            Some(n) => Api::namespaced_with(client.clone(), n, &a.ar),
            None => Api::all_with(client.clone(), &a.ar),
        };
        if api.get_opt(&a.name).await.ok().flatten().is_none() {
            problems.push(format!("{} {} not found after apply", a.ar.kind, a.name));
        }
    }
    for sa in [
        format!("{release}-larder"),
        everything_name.clone(),
        "larder-operator".to_string(),
    ] {
        check_rights(&client, &ns.name, &sa, &mut problems).await;
    }
    let deployments = applied.iter().filter(|a| a.ar.kind == "Deployment").count();

    // Clean up: the namespace takes its objects along; the cluster-scoped ones go one by one.
    for a in applied
        .iter()
        .filter(|a| a.namespace.is_none() && a.ar.kind != "Namespace")
    {
        if let Err(e) = Api::<DynamicObject>::all_with(client.clone(), &a.ar)
            .delete(&a.name, &DeleteParams::default())
            .await
        {
            problems.push(format!("delete {} {}: {e}", a.ar.kind, a.name));
        }
    }
    ns.remove(false).await;

    assert!(problems.is_empty(), "problems:\n{}", problems.join("\n"));
    assert_eq!(deployments, 3, "three operators applied");
    let cluster_scoped: BTreeSet<String> = applied
        .iter()
        .filter(|a| a.namespace.is_none())
        .map(|a| format!("{}/{}", a.ar.kind, a.name))
        .collect();
    let expect: BTreeSet<String> = [
        format!("ClusterRole/{release}-larder"),
        format!("ClusterRoleBinding/{release}-larder"),
        format!("ClusterRole/{everything_name}"),
        format!("ClusterRoleBinding/{everything_name}"),
        format!("ClusterRole/larder-operator-{}", ns.name),
        format!("ClusterRoleBinding/larder-operator-{}", ns.name),
        format!("Namespace/{}", ns.name),
    ]
    .into();
    assert_eq!(cluster_scoped, expect);
    for a in applied
        .iter()
        .filter(|a| a.namespace.is_none() && a.ar.kind != "Namespace")
    {
        let gone = Api::<DynamicObject>::all_with(client.clone(), &a.ar)
            .get_opt(&a.name)
            .await
            .unwrap()
            .is_none_or(|o| o.metadata.deletion_timestamp.is_some());
        assert!(gone, "{} {} deleted", a.ar.kind, a.name);
    }
}

/// config/auth-samples (the serving samples with Kubernetes auth and a client
/// granted one view) renders, is accepted by the schemas as written, and
/// `larder render` shows the servers' token-checking rights.
#[tokio::test]
async fn the_auth_samples_render_and_apply() {
    let Some(t) = tools() else { return };
    let rendered = docs(&t.kustomize("config/auth-samples"));
    let store = rendered
        .iter()
        .find(|d| d["kind"] == "FeatureStore")
        .expect("a FeatureStore");
    assert_eq!(store["spec"]["auth"]["type"], "kubernetes");
    assert_eq!(store["spec"]["auth"]["authorization"], "kubernetes-rbac");
    let role = rendered
        .iter()
        .find(|d| d["kind"] == "Role")
        .expect("the client's Role");
    assert_eq!(role["rules"][0]["resourceNames"][0], "driver_hourly_stats");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.yaml");
    let text: Vec<String> = rendered.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let larder = &support::kubelet::ensure_binaries().await["larder"];
    let mut cmd = Command::new(larder);
    cmd.args(["render", "-n", "team-a", "-f"]).arg(&file);
    let out = run(cmd).unwrap_or_else(|e| panic!("larder render: {e}"));
    for needle in [
        "kind: ClusterRoleBinding",
        "name: system:auth-delegator",
        "name: larder:team-a:driver-stats:auth-delegator",
        "type: kubernetes",
        "authorization: kubernetes-rbac",
    ] {
        assert!(out.contains(needle), "larder render lacks {needle:?}:\n{out}");
    }
    // The API server decides (kubernetes-rbac): the servers need not read RoleBindings.
    assert!(!out.contains("name: driver-stats-auth"), "{out}");
    let Some(client) = cluster().await else { return };
    let ns = TestNs::create(&client, "op-pkg-auth").await;
    for doc in &rendered {
        let kind = doc["kind"].as_str().unwrap();
        let ar = match larder_model::Kind::parse(kind) {
            Some(k) => larder_operator::context::api_resource(k),
            None => match kind {
                "Secret" => ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
                "ServiceAccount" => ApiResource::erase::<k8s_openapi::api::core::v1::ServiceAccount>(&()),
                "Role" => ApiResource::erase::<k8s_openapi::api::rbac::v1::Role>(&()),
                "RoleBinding" => ApiResource::erase::<k8s_openapi::api::rbac::v1::RoleBinding>(&()),
                _ => panic!("unexpected kind {kind}"),
            },
        };
        let params = PatchParams::apply(TEST_MANAGER).force().validation_strict().dry_run();
        Api::<DynamicObject>::namespaced_with(client.clone(), &ns.name, &ar)
            .patch(name(doc), &params, &Patch::Apply(doc))
            .await
            .unwrap_or_else(|e| panic!("{kind} {}: {e}", name(doc)));
    }
    ns.remove(false).await;
}

/// config/serving-samples (the samples plus servers and materialization) renders
/// with kustomize, is accepted as written by the CRDs' schemas (strict field
/// validation: a misspelled field is an error, not a silent drop), and
/// `larder render` of it shows the servers and the Jobs of its next run.
#[tokio::test]
async fn the_serving_samples_render_and_apply() {
    let Some(t) = tools() else { return };
    let rendered = docs(&t.kustomize("config/serving-samples"));
    let store = rendered
        .iter()
        .find(|d| d["kind"] == "FeatureStore")
        .expect("a FeatureStore");
    assert_eq!(store["spec"]["featureServer"]["replicas"], 2);
    assert_eq!(store["spec"]["materialization"]["shards"], 2);
    // `larder render` of the same documents (Secrets among them are skipped).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serving.yaml");
    let text: Vec<String> = rendered.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let larder = &support::kubelet::ensure_binaries().await["larder"];
    let mut cmd = Command::new(larder);
    cmd.args(["render", "-n", "team-a", "-f"]).arg(&file);
    let out = run(cmd).unwrap_or_else(|e| panic!("larder render: {e}"));
    for needle in [
        "name: driver-stats-feature-server",
        "name: driver-stats-registry-server",
        "kind: PodDisruptionBudget",
        "- 1/2",
    ] {
        assert!(out.contains(needle), "larder render lacks {needle:?}");
    }
    let Some(client) = cluster().await else { return };
    let ns = TestNs::create(&client, "op-pkg-samples").await;
    for doc in &rendered {
        let kind = doc["kind"].as_str().unwrap();
        let ar = match larder_model::Kind::parse(kind) {
            Some(k) => larder_operator::context::api_resource(k),
            None if kind == "Secret" => ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
            None => panic!("unexpected kind {kind}"),
        };
        let params = PatchParams::apply(TEST_MANAGER).force().validation_strict().dry_run();
        Api::<DynamicObject>::namespaced_with(client.clone(), &ns.name, &ar)
            .patch(name(doc), &params, &Patch::Apply(doc))
            .await
            .unwrap_or_else(|e| panic!("{kind} {}: {e}", name(doc)));
    }
    ns.remove(false).await;
}
