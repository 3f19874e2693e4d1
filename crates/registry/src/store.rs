//! Logic both backends share: how an apply merges with what is stored, and
//! how objects sit inside a `feast.core.Registry` message.

use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::core as fc;
use prost_types::Timestamp;

use crate::{ApplyOutcome, RegistryError};

/// The project key an object is stored under: a project is keyed by its
/// own name, every other object by the project it is applied to.
pub(crate) fn storage_project<'a>(project: &'a str, obj: &'a FeastObject) -> &'a str {
    if obj.kind() == FeastKind::Project {
        obj.name()
    } else {
        project
    }
}

/// The other view kinds a view's name must not be taken in (Feast keeps one
/// name space for all views of a project).
pub(crate) fn other_view_kinds(kind: FeastKind) -> impl Iterator<Item = FeastKind> {
    FeastKind::VIEWS
        .into_iter()
        .filter(move |k| kind.is_view() && *k != kind)
}

/// The error for a view whose name a view of another kind has.
pub(crate) fn view_name_taken(other: FeastKind, name: &str, project: &str) -> RegistryError {
    RegistryError::ViewNameTaken {
        existing: other,
        name: name.to_string(),
        project: project.to_string(),
    }
}

/// Decide what to store for `new` given the stored `old`. Unchanged
/// definitions are left alone; otherwise `created_timestamp` is kept, the
/// update time bumped, and a view's materialization history carried over.
pub(crate) fn prepare_write(
    project: &str,
    mut new: FeastObject,
    old: Option<&FeastObject>,
    now: Timestamp,
) -> (FeastObject, ApplyOutcome) {
    new.set_project(project);
    let Some(old) = old else {
        new.set_timestamps(now, now);
        return (new, ApplyOutcome::Created);
    };
    if old.definition() == new.definition() {
        return (old.clone(), ApplyOutcome::Unchanged);
    }
    let created = old.created().unwrap_or(now);
    if let (FeastObject::FeatureView(n), FeastObject::FeatureView(o)) = (&mut new, old) {
        let om = o.meta.clone().unwrap_or_default();
        let nm = n.meta.get_or_insert_default();
        if nm.materialization_intervals.is_empty() {
            nm.materialization_intervals = om.materialization_intervals;
        }
        if nm.state == 0 {
            nm.state = om.state;
        }
    }
    new.set_timestamps(created, now);
    (new, ApplyOutcome::Updated)
}

/// Add an interval to a view and mark it servable.
pub(crate) fn add_interval(view: &mut fc::FeatureView, start: Timestamp, end: Timestamp, now: Timestamp) {
    let meta = view.meta.get_or_insert_default();
    meta.materialization_intervals.push(fc::MaterializationInterval {
        start_time: Some(start),
        end_time: Some(end),
    });
    meta.state = fc::FeatureViewState::AvailableOnline as i32;
    meta.last_updated_timestamp = Some(now);
}

macro_rules! registry_fields {
    ($m:ident) => {
        $m!(
            (DataSource, data_sources),
            (Entity, entities),
            (FeatureView, feature_views),
            (StreamFeatureView, stream_feature_views),
            (OnDemandFeatureView, on_demand_feature_views),
            (LabelView, label_views),
            (FeatureService, feature_services),
            (SavedDataset, saved_datasets),
            (ValidationReference, validation_references),
            (Permission, permissions),
            (Project, projects)
        )
    };
}

/// Every object of `kind` in the registry message, all projects.
pub(crate) fn objects_of(reg: &fc::Registry, kind: FeastKind) -> Vec<FeastObject> {
    macro_rules! pick {
        ($(($k:ident, $f:ident)),*) => {
            match kind { $(FeastKind::$k => reg.$f.iter().cloned().map(FeastObject::$k).collect(),)* }
        };
    }
    registry_fields!(pick)
}

/// Append an object to its list in the registry message.
pub(crate) fn push_object(reg: &mut fc::Registry, obj: FeastObject) {
    macro_rules! push {
        ($(($k:ident, $f:ident)),*) => {
            match obj { $(FeastObject::$k(o) => reg.$f.push(o),)* }
        };
    }
    registry_fields!(push)
}

/// Keep only the objects of `kind` for which `keep` holds; returns how many were removed.
pub(crate) fn retain(reg: &mut fc::Registry, kind: FeastKind, keep: impl Fn(&FeastObject) -> bool) -> usize {
    macro_rules! ret {
        ($(($k:ident, $f:ident)),*) => {
            match kind {
                $(FeastKind::$k => {
                    let before = reg.$f.len();
                    reg.$f.retain(|o| keep(&FeastObject::$k(o.clone())));
                    before - reg.$f.len()
                })*
            }
        };
    }
    registry_fields!(ret)
}

/// Sort objects by name, the order every list returns.
pub(crate) fn sort_by_name(v: &mut [FeastObject]) {
    v.sort_by(|a, b| a.name().cmp(b.name()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(desc: &str) -> FeastObject {
        FeastObject::FeatureView(fc::FeatureView {
            spec: Some(fc::FeatureViewSpec {
                name: "v".into(),
                description: desc.into(),
                ..Default::default()
            }),
            meta: None,
        })
    }

    #[test]
    fn apply_keeps_created_and_history() {
        let t = |s| Timestamp { seconds: s, nanos: 0 };
        let (mut stored, o) = prepare_write("p", view("a"), None, t(1));
        assert_eq!(o, ApplyOutcome::Created);
        if let FeastObject::FeatureView(v) = &mut stored {
            add_interval(v, t(10), t(20), t(2));
        }
        let (same, o) = prepare_write("p", view("a"), Some(&stored), t(3));
        assert_eq!(o, ApplyOutcome::Unchanged);
        assert_eq!(same, stored);
        let (changed, o) = prepare_write("p", view("b"), Some(&stored), t(4));
        assert_eq!(o, ApplyOutcome::Updated);
        let FeastObject::FeatureView(v) = changed else { panic!() };
        let m = v.meta.unwrap();
        assert_eq!(m.created_timestamp, Some(t(1)));
        assert_eq!(m.last_updated_timestamp, Some(t(4)));
        assert_eq!(m.materialization_intervals.len(), 1);
        assert_eq!(m.state, fc::FeatureViewState::AvailableOnline as i32);
        assert_eq!(v.spec.unwrap().project, "p");
    }

    #[test]
    fn registry_lists_by_kind() {
        let mut reg = fc::Registry::default();
        push_object(&mut reg, view("x"));
        assert_eq!(objects_of(&reg, FeastKind::FeatureView).len(), 1);
        assert_eq!(objects_of(&reg, FeastKind::Entity).len(), 0);
        assert_eq!(retain(&mut reg, FeastKind::FeatureView, |o| o.name() != "v"), 1);
        assert!(reg.feature_views.is_empty());
    }
}
