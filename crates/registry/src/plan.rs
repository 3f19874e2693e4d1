//! Diff desired objects against what a registry holds, without writing.

use std::collections::HashSet;

use larder_model::feast::{FeastKind, FeastObject};

use crate::{Registry, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: FeastKind,
    pub name: String,
    pub action: Action,
}

/// The kinds a manifest set owns; `--prune` only deletes these.
pub const MANAGED_KINDS: [FeastKind; 5] = [
    FeastKind::DataSource,
    FeastKind::Entity,
    FeastKind::FeatureView,
    FeastKind::FeatureService,
    FeastKind::Permission,
];

/// Pure diff: `desired` against `current` (objects of one project).
/// With `prune`, managed objects missing from `desired` are deleted; Feast's
/// hidden objects (names starting with `__`) are never pruned.
pub fn diff(desired: &[FeastObject], current: &[FeastObject], prune: bool) -> Vec<Change> {
    let mut out = Vec::new();
    for d in desired {
        let existing = current.iter().find(|c| c.kind() == d.kind() && c.name() == d.name());
        let action = match existing {
            None => Action::Create,
            Some(c) if c.definition() == d.definition() => Action::Unchanged,
            Some(_) => Action::Update,
        };
        out.push(Change {
            kind: d.kind(),
            name: d.name().to_string(),
            action,
        });
    }
    if prune {
        let wanted: HashSet<(FeastKind, &str)> = desired.iter().map(|d| (d.kind(), d.name())).collect();
        // Delete dependents first: services, then views, then entities and sources.
        for kind in MANAGED_KINDS.iter().rev() {
            for c in current.iter().filter(|c| c.kind() == *kind) {
                if !wanted.contains(&(c.kind(), c.name())) && !c.name().starts_with("__") {
                    out.push(Change {
                        kind: c.kind(),
                        name: c.name().to_string(),
                        action: Action::Delete,
                    });
                }
            }
        }
    }
    out
}

/// Read the project's current objects and diff against `desired`.
pub async fn plan(registry: &dyn Registry, project: &str, desired: &[FeastObject], prune: bool) -> Result<Vec<Change>> {
    let mut current = Vec::new();
    if let Some(p) = registry.get(project, FeastKind::Project, project).await? {
        current.push(p);
    }
    for kind in MANAGED_KINDS {
        current.extend(registry.list(project, kind).await?);
    }
    let mut desired_with_project: Vec<FeastObject> = desired.to_vec();
    for d in &mut desired_with_project {
        d.set_project(project);
    }
    Ok(diff(&desired_with_project, &current, prune))
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::core as fc;

    fn entity(name: &str, desc: &str) -> FeastObject {
        FeastObject::Entity(fc::Entity {
            spec: Some(fc::EntitySpecV2 {
                name: name.into(),
                description: desc.into(),
                ..Default::default()
            }),
            meta: None,
        })
    }

    #[test]
    fn classifies_every_case() {
        let current = vec![
            entity("a", "x"),
            entity("b", "x"),
            entity("c", "x"),
            entity("__dummy", ""),
        ];
        let desired = vec![entity("a", "x"), entity("b", "changed"), entity("d", "x")];
        let actions: Vec<(String, Action)> = diff(&desired, &current, true)
            .into_iter()
            .map(|c| (c.name, c.action))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("a".into(), Action::Unchanged),
                ("b".into(), Action::Update),
                ("d".into(), Action::Create),
                ("c".into(), Action::Delete),
            ]
        );
        assert!(
            diff(&desired, &current, false)
                .iter()
                .all(|c| c.action != Action::Delete)
        );
    }
}
