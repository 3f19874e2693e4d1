//! What the materialization tests share: the example's window and data,
//! manifests for views over Parquet files, and applying them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use larder_registry::Registry;

pub const START: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z
pub const END: i64 = START + 48 * 3_600_000_000_000;

pub fn example_parquet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/driver-stats/data/driver_stats.parquet")
}

/// Manifests for one entity and a view per (name, Parquet path, type of
/// `city`), each with `conv_rate`, the `extra` (name, type) features, then `city`.
pub fn manifests(views: &[(&str, &Path, &str)], extra: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "apiVersion: larder.dev/v1alpha1\nkind: Entity\nmetadata: {name: driver}\nspec: {joinKey: driver_id, valueType: Int64}\n",
    );
    let extra: String = extra
        .iter()
        .map(|(name, t)| format!("    - {{name: {name}, type: {t}}}\n"))
        .collect();
    for (name, path, city_type) in views {
        s.push_str(&format!(
            "---\napiVersion: larder.dev/v1alpha1\nkind: DataSource\nmetadata: {{name: {name}-src}}\nspec: {{timestampField: event_timestamp, createdTimestampColumn: created, file: {{path: {}}}}}\n---\napiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {{name: {name}}}\nspec:\n  entities: [driver]\n  source: {name}-src\n  features:\n    - {{name: conv_rate, type: Float32}}\n{extra}    - {{name: city, type: {city_type}}}\n",
            path.display()
        ));
    }
    s
}

/// Validate `text` and apply its objects to `project`.
pub async fn apply(reg: &dyn Registry, project: &str, text: &str) {
    let docs = larder_model::load::parse_str(text, Path::new("/tmp/m.yaml")).unwrap();
    let catalog = larder_model::validate::validate(docs).unwrap();
    for o in larder_model::convert::to_feast(&catalog, project) {
        reg.apply(project, o).await.unwrap();
    }
}
