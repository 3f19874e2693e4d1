//! Feast 0.67's SQL registry layout (feast-compat.md §3): which table and
//! columns hold each kind, and the DDL, driven by the same table specs. Pure.

use larder_model::feast::FeastKind;

use super::Dialect;

/// A Feast object table: its name and the two columns that vary.
pub(super) struct Table {
    pub(super) name: &'static str,
    pub(super) name_col: &'static str,
    pub(super) proto_col: &'static str,
}

/// The table of Feast's `Infra` object (one row per project, `infra_obj`).
const MANAGED_INFRA: Table = Table {
    name: "managed_infra",
    name_col: "infra_name",
    proto_col: "infra_proto",
};

pub(super) fn table(kind: FeastKind) -> Table {
    let (name, name_col, proto_col) = match kind {
        FeastKind::Project => ("projects", "project_id", "project_proto"),
        FeastKind::Entity => ("entities", "entity_name", "entity_proto"),
        FeastKind::DataSource => ("data_sources", "data_source_name", "data_source_proto"),
        FeastKind::FeatureView => ("feature_views", "feature_view_name", "feature_view_proto"),
        FeastKind::StreamFeatureView => ("stream_feature_views", "feature_view_name", "feature_view_proto"),
        FeastKind::OnDemandFeatureView => ("on_demand_feature_views", "feature_view_name", "feature_view_proto"),
        FeastKind::LabelView => ("label_views", "feature_view_name", "feature_view_proto"),
        FeastKind::FeatureService => ("feature_services", "feature_service_name", "feature_service_proto"),
        FeastKind::SavedDataset => ("saved_datasets", "saved_dataset_name", "saved_dataset_proto"),
        FeastKind::ValidationReference => (
            "validation_references",
            "validation_reference_name",
            "validation_reference_proto",
        ),
        FeastKind::Permission => ("permissions", "permission_name", "permission_proto"),
    };
    Table {
        name,
        name_col,
        proto_col,
    }
}

pub const ALL_TABLES: [&str; 14] = [
    "projects",
    "entities",
    "data_sources",
    "feature_views",
    "stream_feature_views",
    "on_demand_feature_views",
    "label_views",
    "feature_services",
    "saved_datasets",
    "validation_references",
    "managed_infra",
    "permissions",
    "feature_view_version_history",
    "feast_metadata",
];

/// `CREATE TABLE` statements for Feast's layout in one dialect, indexes included.
pub fn schema_statements(d: Dialect) -> Vec<String> {
    let blob = d.blob();
    let v = "VARCHAR(255) NOT NULL";
    // MySQL declares the project index inside the table; the others after it.
    let inline_index = |name: &str| {
        if d == Dialect::MySql {
            format!(", INDEX {name} (project_id)")
        } else {
            String::new()
        }
    };
    let object = |t: &Table, extra: &str, tail: &str| {
        format!(
            "CREATE TABLE IF NOT EXISTS {name} ({name_col} {v}, project_id {v}, last_updated_timestamp BIGINT NOT NULL, {extra}{proto_col} {blob} NOT NULL{tail}, PRIMARY KEY ({name_col}, project_id){idx})",
            name = t.name,
            name_col = t.name_col,
            proto_col = t.proto_col,
            idx = inline_index(&format!("idx_{}_project_id", t.name)),
        )
    };
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS projects (project_id {v}, project_name {v}, last_updated_timestamp BIGINT NOT NULL, project_proto {blob} NOT NULL, PRIMARY KEY (project_id){})",
        inline_index("idx_projects_project_id")
    )];
    for kind in FeastKind::OBJECTS {
        let extra = if kind == FeastKind::FeatureView {
            format!("materialized_intervals {blob} NULL, ")
        } else {
            String::new()
        };
        let tail = if kind.is_view() {
            format!(", user_metadata {blob} NULL")
        } else {
            String::new()
        };
        out.push(object(&table(kind), &extra, &tail));
    }
    out.push(object(&MANAGED_INFRA, "", ""));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS feature_view_version_history (feature_view_name {v}, project_id {v}, version_number INTEGER NOT NULL, feature_view_type VARCHAR(50) NOT NULL, feature_view_proto {blob} NOT NULL, created_timestamp BIGINT NOT NULL, description TEXT NULL, version_id VARCHAR(36) NOT NULL, PRIMARY KEY (feature_view_name, project_id, version_number){})",
        inline_index("idx_fv_version_history_project_id")
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS feast_metadata (project_id {v}, metadata_key VARCHAR(50) NOT NULL, metadata_value TEXT NOT NULL, last_updated_timestamp BIGINT NOT NULL, PRIMARY KEY (project_id, metadata_key){})",
        inline_index("idx_feast_metadata_project_id")
    ));
    if d != Dialect::MySql {
        for t in ALL_TABLES {
            let idx = if t == "feature_view_version_history" {
                "idx_fv_version_history_project_id".to_string()
            } else {
                format!("idx_{t}_project_id")
            };
            out.push(format!("CREATE INDEX IF NOT EXISTS {idx} ON {t} (project_id)"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_fourteen_tables_per_dialect() {
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            let s = schema_statements(d);
            let tables = s.iter().filter(|x| x.starts_with("CREATE TABLE")).count();
            assert_eq!(tables, 14, "{d:?}");
            assert!(s.iter().any(|x| x.contains("materialized_intervals")));
            assert!(s.iter().all(|x| !x.contains("BLOB NOT NULL") || d != Dialect::Postgres));
        }
        assert!(schema_statements(Dialect::MySql).iter().any(|x| x.contains("LONGBLOB")));
        assert_eq!(
            schema_statements(Dialect::Sqlite)
                .iter()
                .filter(|x| x.starts_with("CREATE INDEX"))
                .count(),
            14
        );
    }

    #[test]
    fn view_tables_carry_user_metadata() {
        let s = schema_statements(Dialect::Sqlite);
        for t in [
            "feature_views",
            "stream_feature_views",
            "on_demand_feature_views",
            "label_views",
        ] {
            let stmt = s.iter().find(|x| x.contains(&format!("EXISTS {t} "))).unwrap();
            assert!(stmt.contains("user_metadata BLOB NULL"), "{stmt}");
        }
        let ent = s.iter().find(|x| x.contains("EXISTS entities ")).unwrap();
        assert!(!ent.contains("user_metadata"));
    }
}
