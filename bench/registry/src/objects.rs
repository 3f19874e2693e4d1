//! The objects the benchmark applies. They mirror what Feast 0.67's Python
//! SDK serializes for the views `feast_registry_bench.py` builds: entity
//! `driver` (join key `driver_id`, INT64), a FileSource, and views with ten
//! FLOAT features, one entity column, a one-day TTL and `version: latest`.

use larder_model::feast::FeastObject;
use larder_protos::feast::core as fc;

/// `feast.types.Value.ValueType`: INT64 and FLOAT.
const INT64: i32 = 4;
const FLOAT: i32 = 6;
/// `DataSource.SourceType.BATCH_FILE`.
const BATCH_FILE: i32 = 1;

pub fn entity() -> FeastObject {
    FeastObject::Entity(fc::Entity {
        spec: Some(fc::EntitySpecV2 {
            name: "driver".into(),
            value_type: INT64,
            join_key: "driver_id".into(),
            ..Default::default()
        }),
        meta: None,
    })
}

pub fn source() -> fc::DataSource {
    use fc::data_source::{FileOptions, Options};
    fc::DataSource {
        name: "driver_stats_source".into(),
        r#type: BATCH_FILE,
        timestamp_field: "event_timestamp".into(),
        options: Some(Options::FileOptions(FileOptions {
            uri: "/tmp/driver_stats.parquet".into(),
            ..Default::default()
        })),
        data_source_class_type: "feast.infra.offline_stores.file_source.FileSource".into(),
        ..Default::default()
    }
}

/// View number `i`: `fv_00000`, `fv_00001`, … (the names Python uses too).
pub fn view(i: usize) -> FeastObject {
    FeastObject::FeatureView(fc::FeatureView {
        spec: Some(fc::FeatureViewSpec {
            name: format!("fv_{i:05}"),
            entities: vec!["driver".into()],
            features: (0..10)
                .map(|j| fc::FeatureSpecV2 {
                    name: format!("f{j}"),
                    value_type: FLOAT,
                    ..Default::default()
                })
                .collect(),
            entity_columns: vec![fc::FeatureSpecV2 {
                name: "driver_id".into(),
                value_type: INT64,
                ..Default::default()
            }],
            ttl: Some(prost_types::Duration {
                seconds: 86_400,
                nanos: 0,
            }),
            batch_source: Some(source()),
            online: true,
            description: format!("bench view {i}"),
            version: "latest".into(),
            ..Default::default()
        }),
        meta: None,
    })
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
