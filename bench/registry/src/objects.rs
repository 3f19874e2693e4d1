//! The objects the benchmark applies. They mirror what Feast 0.67's Python
//! SDK serializes for the views `feast_registry_bench.py` builds: entity
//! `driver` (join key `driver_id`, INT64), a FileSource, and views with ten
//! FLOAT features, one entity column, a one-day TTL and `version: latest`
//! (larder-testkit's driver objects, with the benchmark's names).

use larder_model::feast::FeastObject;
use larder_protos::feast::core as fc;
use larder_testkit::objects::{self, IntoObject, ValueType};

pub fn entity() -> FeastObject {
    objects::entity("driver", "driver_id").object()
}

pub fn source() -> fc::DataSource {
    objects::file_source("driver_stats_source", "/tmp/driver_stats.parquet")
}

/// View number `i`: `fv_00000`, `fv_00001`, … (the names Python uses too).
pub fn view(i: usize) -> FeastObject {
    objects::view(&format!("fv_{i:05}"))
        .with_features(ValueType::Float, (0..10).map(|j| format!("f{j}")))
        .ttl_seconds(86_400)
        .source(source())
        .description(&format!("bench view {i}"))
        .object()
}

pub fn views(n: usize) -> Vec<FeastObject> {
    (0..n).map(view).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_have_ten_features_and_one_entity() {
        let FeastObject::FeatureView(v) = view(7) else {
            unreachable!()
        };
        let spec = v.spec.unwrap();
        assert_eq!(spec.name, "fv_00007");
        assert_eq!(spec.features.len(), 10);
        assert_eq!(spec.entities, vec!["driver".to_string()]);
        assert_eq!(spec.entity_columns.len(), 1);
    }

    #[test]
    fn names_sort_in_creation_order() {
        let names: Vec<String> = views(12).iter().map(|v| v.name().to_string()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
}
