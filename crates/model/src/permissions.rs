//! Permission vocabulary: resource types and actions, by Feast's names.

/// `PermissionSpec.Type` numbers by Feast class name.
const TYPES: &[(&str, &str, i32)] = &[
    ("FeatureView", "FEATURE_VIEW", 0),
    ("OnDemandFeatureView", "ON_DEMAND_FEATURE_VIEW", 1),
    ("BatchFeatureView", "BATCH_FEATURE_VIEW", 2),
    ("StreamFeatureView", "STREAM_FEATURE_VIEW", 3),
    ("Entity", "ENTITY", 4),
    ("FeatureService", "FEATURE_SERVICE", 5),
    ("DataSource", "DATA_SOURCE", 6),
    ("ValidationReference", "VALIDATION_REFERENCE", 7),
    ("SavedDataset", "SAVED_DATASET", 8),
    ("Permission", "PERMISSION", 9),
    ("Project", "PROJECT", 10),
    ("LabelView", "LABEL_VIEW", 11),
];

/// `PermissionSpec.AuthzedAction` numbers.
const ACTIONS: &[(&str, i32)] = &[
    ("CREATE", 0),
    ("DESCRIBE", 1),
    ("UPDATE", 2),
    ("DELETE", 3),
    ("READ_ONLINE", 4),
    ("READ_OFFLINE", 5),
    ("WRITE_ONLINE", 6),
    ("WRITE_OFFLINE", 7),
];

/// A resource type by Feast class name (`FeatureView`) or enum name (`FEATURE_VIEW`).
pub fn parse_type(s: &str) -> Result<i32, String> {
    TYPES
        .iter()
        .find(|(class, enum_name, _)| *class == s || enum_name.eq_ignore_ascii_case(s))
        .map(|(_, _, n)| *n)
        .ok_or_else(|| {
            let names: Vec<&str> = TYPES.iter().map(|t| t.0).collect();
            format!("unknown permission type {s:?}; expected one of {}", names.join(", "))
        })
}

pub fn type_name(n: i32) -> String {
    TYPES
        .iter()
        .find(|t| t.2 == n)
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| format!("Unknown({n})"))
}

/// An action name (any case) or one of the aliases READ, WRITE, CRUD, ALL.
pub fn parse_actions(s: &str) -> Result<Vec<i32>, String> {
    let upper = s.to_ascii_uppercase();
    match upper.as_str() {
        "READ" => return Ok(vec![5, 4]),
        "WRITE" => return Ok(vec![7, 6]),
        "CRUD" => return Ok(vec![0, 1, 2, 3]),
        "ALL" => return Ok((0..8).collect()),
        _ => {}
    }
    ACTIONS
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|(_, n)| vec![*n])
        .ok_or_else(|| {
            format!(
                "unknown action {s:?}; expected one of CREATE, DESCRIBE, UPDATE, DELETE, READ_ONLINE, READ_OFFLINE, WRITE_ONLINE, WRITE_OFFLINE, READ, WRITE, CRUD, ALL"
            )
        })
}

pub fn action_name(n: i32) -> String {
    ACTIONS
        .iter()
        .find(|a| a.1 == n)
        .map(|a| a.0.to_string())
        .unwrap_or_else(|| format!("UNKNOWN_{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_type("FeatureView").unwrap(), 0);
        assert_eq!(parse_type("entity").unwrap(), 4);
        assert!(parse_type("Pod").is_err());
        assert_eq!(parse_actions("read_online").unwrap(), vec![4]);
        assert_eq!(parse_actions("READ").unwrap(), vec![5, 4]);
        assert_eq!(parse_actions("all").unwrap().len(), 8);
        assert!(parse_actions("fly").is_err());
        assert_eq!(type_name(5), "FeatureService");
        assert_eq!(action_name(6), "WRITE_ONLINE");
    }
}
