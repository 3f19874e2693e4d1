//! The resources the benchmark applies: one FeatureStore, and per view `i`
//! an Entity, a file DataSource and a FeatureView with ten features, shaped
//! like config/samples (driver.yaml, sources.yaml, driver-hourly-stats.yaml).
//! `feast_operator_bench.py` builds the same objects with Feast's SDK.

use std::path::Path;

use serde_json::{Value, json};

pub const API_VERSION: &str = "larder.dev/v1alpha1";
/// The FeatureStore's metadata name.
pub const STORE: &str = "bench";
/// The Feast project (Feast's side uses the same name).
pub const PROJECT: &str = "bench_op";
pub const REGISTRY_SECRET: &str = "larder-registry";
pub const ONLINE_SECRET: &str = "larder-online";

/// The ten features of every view: the sample view's names and types.
pub const FEATURES: [(&str, &str, &str); 10] = [
    ("conv_rate", "Float32", "Conversion rate"),
    ("acc_rate", "Float32", "Acceptance rate"),
    ("avg_daily_trips", "Int64", "Average trips per day"),
    ("trips_today", "Int32", "Trips so far today"),
    ("rating", "Float64", "Average rating (may be null)"),
    ("earnings_today", "Float64", "Earnings so far today"),
    ("online_minutes", "Int32", "Minutes online today"),
    ("completed_trips", "Int64", "Lifetime completed trips"),
    ("city", "String", "Home city"),
    ("is_premium", "Bool", "Premium tier driver"),
];

/// The online store of the FeatureStore.
#[derive(Debug, Clone)]
pub enum Online {
    /// A SQLite file (absolute path).
    Sqlite(String),
    /// Redis, its connection string in the `larder-online` Secret.
    Redis,
}

pub fn store(online: &Online, deletion_policy: &str) -> Value {
    let online_store = match online {
        Online::Sqlite(path) => json!({"sqlite": {"path": path}}),
        Online::Redis => {
            json!({"redis": {"connectionStringSecretRef": {"name": ONLINE_SECRET, "key": "connectionString"}}})
        }
    };
    json!({
        "apiVersion": API_VERSION,
        "kind": "FeatureStore",
        "metadata": {"name": STORE},
        "spec": {
            "project": PROJECT,
            "description": "bench-operator: generated driver statistics",
            "tags": {"team": "drivers"},
            "registry": {"sql": {"urlSecretRef": {"name": REGISTRY_SECRET, "key": "url"}, "cacheTTLSeconds": 60}},
            "onlineStore": online_store,
            "offlineStore": {"file": {}},
            "deletionPolicy": deletion_policy,
            "objectPolicy": "Shared",
        }
    })
}

pub fn secret(name: &str, key: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {key: value},
    })
}

pub fn entity_name(i: usize) -> String {
    format!("driver-{i:05}")
}

pub fn source_name(i: usize) -> String {
    format!("driver-stats-{i:05}-source")
}

pub fn view_name(i: usize) -> String {
    format!("driver-hourly-stats-{i:05}")
}

pub fn entity(i: usize) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "Entity",
        "metadata": {"name": entity_name(i)},
        "spec": {
            "name": format!("driver_{i:05}"),
            "joinKey": format!("driver_{i:05}_id"),
            "valueType": "Int64",
            "description": format!("Ride-hailing drivers of fleet {i}"),
            "tags": {"team": "drivers"},
        }
    })
}

pub fn source(i: usize, data_dir: &Path) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "DataSource",
        "metadata": {"name": source_name(i)},
        "spec": {
            "name": format!("driver_stats_{i:05}_source"),
            "description": format!("Hourly statistics of fleet {i} (Parquet)"),
            "timestampField": "event_timestamp",
            "createdTimestampColumn": "created",
            "file": {"path": data_dir.join(format!("driver_stats_{i:05}.parquet")).display().to_string()},
        }
    })
}

pub fn view(i: usize) -> Value {
    let features: Vec<Value> = FEATURES
        .iter()
        .map(|(name, ty, description)| json!({"name": name, "type": ty, "description": description}))
        .collect();
    json!({
        "apiVersion": API_VERSION,
        "kind": "FeatureView",
        "metadata": {"name": view_name(i)},
        "spec": {
            "name": format!("driver_hourly_stats_{i:05}"),
            "entities": [entity_name(i)],
            "source": source_name(i),
            "ttl": "1d",
            "description": format!("Hourly statistics of fleet {i}"),
            "tags": {"team": "drivers"},
            "features": features,
        }
    })
}

/// Every per-view resource in apply order: entity, source, view for 0, then 1, …
/// (like `kubectl apply -f` over one file per view).
pub fn objects(n: usize, data_dir: &Path) -> Vec<Value> {
    (0..n).flat_map(|i| [entity(i), source(i, data_dir), view(i)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_objects_per_view_referring_to_each_other() {
        let objs = objects(2, Path::new("/data"));
        assert_eq!(objs.len(), 6);
        let v = &objs[5];
        assert_eq!(v["kind"], "FeatureView");
        assert_eq!(v["spec"]["entities"][0], objs[3]["metadata"]["name"]);
        assert_eq!(v["spec"]["source"], objs[4]["metadata"]["name"]);
        assert_eq!(v["spec"]["features"].as_array().map(Vec::len), Some(10));
        assert_eq!(objs[4]["spec"]["file"]["path"], "/data/driver_stats_00001.parquet");
    }

    #[test]
    fn store_online_variants() {
        let s = store(&Online::Sqlite("/tmp/x.db".into()), "Delete");
        assert_eq!(s["spec"]["onlineStore"]["sqlite"]["path"], "/tmp/x.db");
        let r = store(&Online::Redis, "Retain");
        assert_eq!(
            r["spec"]["onlineStore"]["redis"]["connectionStringSecretRef"]["name"],
            ONLINE_SECRET
        );
        assert_eq!(r["spec"]["deletionPolicy"], "Retain");
    }
}
