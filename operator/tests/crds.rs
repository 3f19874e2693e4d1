//! The generated CRDs on a real API server: every sample applies, and the
//! server itself (schema or CEL) rejects invalid resources with a message
//! that names the problem. No operator runs here.

mod support;

use larder_model::Kind;
use support::{TestNs, cel_available, cluster, samples};

fn rejected(result: Result<kube::api::DynamicObject, kube::Error>, needle: &str) {
    match result {
        Ok(o) => panic!("accepted, expected a rejection mentioning {needle:?}: {:?}", o.data),
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            assert!(e.message.contains(needle), "{needle:?} not in: {}", e.message);
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn doc(kind: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"apiVersion": "larder.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn every_sample_applies_and_is_listed_under_the_larder_category() {
    let Some(client) = cluster().await else { return };
    let ns = TestNs::create(&client, "crd-samples").await;
    ns.apply(&samples()).await.expect("samples apply");
    for (kind, name) in support::SAMPLE_RESOURCES {
        let o = ns
            .get(kind, name)
            .await
            .unwrap_or_else(|| panic!("{kind} {name} missing"));
        assert!(o.data["spec"].is_object());
    }
    // The TTL survives as written (int-or-string), and defaults/pruning keep the spec parseable.
    let v = ns.get(Kind::FeatureView, "driver-hourly-stats").await.unwrap();
    assert_eq!(v.data["spec"]["ttl"], "1d");
    // `kubectl get larder` lists every kind through the category.
    // A fresh discovery cache: a shared one may predate the CRDs (they are reinstalled by testenv.sh).
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("kubectl")
        .args(["get", "larder", "-n", &ns.name, "-o", "name", "--cache-dir"])
        .arg(cache.path())
        .output()
        .expect("kubectl");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for k in [
        "featurestore",
        "entity",
        "datasource",
        "featureview",
        "featureservice",
        "permission",
    ] {
        assert!(
            listed.contains(&format!("{k}.larder.dev/")),
            "{k} not in `kubectl get larder`: {listed}"
        );
    }
    ns.remove(false).await;
}

#[tokio::test]
async fn the_schema_rejects_bad_names_types_and_unknown_enum_values() {
    let Some(client) = cluster().await else { return };
    let ns = TestNs::create(&client, "crd-schema").await;
    rejected(
        ns.apply_value(doc(
            "Entity",
            "bad-name",
            serde_json::json!({"name": "a;drop table x", "valueType": "Int64"}),
        ))
        .await,
        "spec.name",
    );
    rejected(
        ns.apply_value(doc(
            "FeatureView",
            "bad-feature",
            serde_json::json!({"entities": ["e"], "source": "s", "features": [{"name": "conv-rate", "type": "Float32"}]}),
        ))
        .await,
        "spec.features[0].name",
    );
    rejected(
        ns.apply_value(doc(
            "FeatureView",
            "bad-type",
            serde_json::json!({"entities": ["e"], "source": "s", "features": [{"name": "a", "type": "Float128"}]}),
        ))
        .await,
        "spec.features[0].type",
    );
    rejected(
        ns.apply_value(doc("FeatureStore", "bad-project", serde_json::json!({"project": "-x"})))
            .await,
        "spec.project",
    );
    rejected(
        ns.apply_value(doc(
            "FeatureStore",
            "bad-policy",
            serde_json::json!({"project": "p", "deletionPolicy": "Sometimes"}),
        ))
        .await,
        "spec.deletionPolicy",
    );
    ns.remove(false).await;
}

#[tokio::test]
async fn cel_rules_reject_what_the_schema_cannot_say() {
    let Some(client) = cluster().await else { return };
    if !cel_available() {
        eprintln!("SKIPPED: this API server has no CEL (the testenv's apiextensions build failed; see e2e/kube)");
        assert!(std::env::var_os("CI").is_none(), "CI needs the CEL-capable API server");
        return;
    }
    let ns = TestNs::create(&client, "crd-cel").await;
    rejected(
        ns.apply_value(doc(
            "DataSource",
            "two-kinds",
            serde_json::json!({"timestampField": "ts", "file": {"path": "/x.parquet"}, "postgres": {"table": "t"}}),
        ))
        .await,
        "exactly one of file, postgres, push or request",
    );
    rejected(
        ns.apply_value(doc(
            "FeatureView",
            "negative-ttl",
            serde_json::json!({"entities": ["e"], "source": "s", "ttl": -5, "features": [{"name": "a", "type": "Int64"}]}),
        ))
        .await,
        "non-negative",
    );
    rejected(
        ns.apply_value(doc(
            "FeatureView",
            "bad-ttl",
            serde_json::json!({"entities": ["e"], "source": "s", "ttl": "1 fortnight", "features": [{"name": "a", "type": "Int64"}]}),
        ))
        .await,
        "duration",
    );
    rejected(
        ns.apply_value(doc(
            "FeatureStore",
            "two-online-stores",
            serde_json::json!({"project": "p", "onlineStore": {"sqlite": {"path": "/x.db"}, "redis": {"connectionStringSecretRef": {"name": "s", "key": "k"}}}}),
        ))
        .await,
        "exactly one of redis, postgres, mysql or sqlite",
    );
    // Transition rules: what stored data depends on cannot change.
    ns.apply_value(doc(
        "Entity",
        "driver",
        serde_json::json!({"joinKey": "driver_id", "valueType": "Int64"}),
    ))
    .await
    .expect("entity");
    rejected(
        ns.apply_value(doc(
            "Entity",
            "driver",
            serde_json::json!({"joinKey": "driver_key", "valueType": "Int64"}),
        ))
        .await,
        "spec.joinKey is immutable",
    );
    rejected(
        ns.apply_value(doc(
            "Entity",
            "driver",
            serde_json::json!({"joinKey": "driver_id", "valueType": "String"}),
        ))
        .await,
        "spec.valueType is immutable",
    );
    rejected(
        ns.apply_value(doc(
            "Entity",
            "driver",
            serde_json::json!({"joinKey": "driver_id", "valueType": "Int64", "name": "renamed"}),
        ))
        .await,
        "spec.name is immutable",
    );
    ns.apply_value(doc("FeatureStore", "store", serde_json::json!({"project": "alpha"})))
        .await
        .expect("store");
    rejected(
        ns.apply_value(doc("FeatureStore", "store", serde_json::json!({"project": "beta"})))
            .await,
        "spec.project is immutable",
    );
    // spec.auth: OIDC settings exactly with type oidc; RBAC decisions only for Kubernetes users.
    rejected(
        ns.apply_value(doc(
            "FeatureStore",
            "auth-a",
            serde_json::json!({"project": "a", "auth": {"type": "oidc"}}),
        ))
        .await,
        "spec.auth.oidc is required with type oidc",
    );
    rejected(
        ns.apply_value(doc(
            "FeatureStore",
            "auth-b",
            serde_json::json!({"project": "b", "auth": {"type": "oidc", "authorization": "kubernetes-rbac",
                "oidc": {"discoveryURL": "https://idp.example/.well-known/openid-configuration"}}}),
        ))
        .await,
        "kubernetes-rbac needs type kubernetes",
    );
    rejected(
        ns.apply_value(doc(
            "FeatureStore",
            "auth-c",
            serde_json::json!({"project": "c", "auth": {"type": "ldap"}}),
        ))
        .await,
        "ldap",
    );
    ns.apply_value(doc(
        "FeatureStore",
        "auth-d",
        serde_json::json!({"project": "d", "auth": {"type": "kubernetes", "authorization": "kubernetes-rbac"}}),
    ))
    .await
    .expect("kubernetes auth with RBAC decisions");
    // What may change still can.
    ns.apply_value(doc(
        "Entity",
        "driver",
        serde_json::json!({"joinKey": "driver_id", "valueType": "Int64", "description": "now described"}),
    ))
    .await
    .expect("a description change is allowed");
    ns.remove(false).await;
}

/// The YAML blocks of docs/manifests.md.
fn documented_manifests() -> Vec<String> {
    let text = std::fs::read_to_string(support::repo_root().join("docs/manifests.md")).unwrap();
    text.split("```yaml")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_documented_manifests_are_valid_for_larder_apply_and_kubectl_apply() {
    let blocks = documented_manifests();
    assert!(!blocks.is_empty());
    for block in &blocks {
        // larder apply: parse and validate as one set.
        let docs = larder_model::load::parse_str(block, std::path::Path::new("docs/manifests.md")).unwrap();
        assert!(docs.len() >= 6, "{} documents", docs.len());
        larder_model::validate::validate(docs).unwrap();
    }
    let Some(client) = cluster().await else { return };
    let ns = TestNs::create(&client, "crd-docs").await;
    for block in &blocks {
        for doc in serde_yaml::Deserializer::from_str(block) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = Kind::parse(value["kind"].as_str().unwrap()).unwrap();
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            // Strict field validation: a documented field the schema lacks is an error, not a silent drop.
            let params = kube::api::PatchParams::apply(support::TEST_MANAGER)
                .force()
                .validation_strict();
            let applied = ns
                .api(kind)
                .patch(&name, &params, &kube::api::Patch::Apply(&value))
                .await
                .unwrap_or_else(|e| panic!("{kind} {name} from docs/manifests.md: {e}"));
            assert_eq!(
                applied.data["spec"], value["spec"],
                "{kind} {name}: the server changed the spec"
            );
        }
    }
    ns.remove(false).await;
}
