//! What list calls share: tag filters, Feast's sorting and pagination.

use std::cmp::Ordering;

use larder_model::feast::FeastObject;
use larder_protos::feast::registry as fr;
use tonic::Status;

use crate::errors::invalid;

pub type Tags = std::collections::BTreeMap<String, String>;

/// An object's tags, for `tags` filters.
pub(crate) fn tags(o: &FeastObject) -> Tags {
    match o {
        FeastObject::Project(x) => x.spec.as_ref().map(|s| s.tags.clone()),
        FeastObject::DataSource(x) => Some(x.tags.clone()),
        FeastObject::Entity(x) => x.spec.as_ref().map(|s| s.tags.clone()),
        FeastObject::FeatureView(x) => x.spec.as_ref().map(|s| s.tags.clone()),
        FeastObject::StreamFeatureView(x) => x.spec.as_ref().map(|s| s.tags.clone()),
        FeastObject::OnDemandFeatureView(x) => x.spec.as_ref().map(|s| s.tags.clone()),
        FeastObject::LabelView(x) => x.spec.as_ref().map(|s| s.tags.clone()),
        FeastObject::FeatureService(x) => x.spec.as_ref().map(|s| s.tags.clone()),
        FeastObject::SavedDataset(x) => x.spec.as_ref().map(|s| s.tags.clone()),
        FeastObject::ValidationReference(x) => Some(x.tags.clone()),
        FeastObject::Permission(x) => x.spec.as_ref().map(|s| s.tags.clone()),
    }
    .unwrap_or_default()
}

pub(crate) fn updated(o: &FeastObject) -> (i64, i32) {
    let t = match o {
        FeastObject::Project(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::DataSource(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::Entity(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::FeatureView(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::StreamFeatureView(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::OnDemandFeatureView(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::LabelView(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::FeatureService(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::SavedDataset(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::Permission(x) => x.meta.as_ref().and_then(|m| m.last_updated_timestamp),
        FeastObject::ValidationReference(_) => None,
    };
    t.map(|t| (t.seconds, t.nanos)).unwrap_or((0, 0))
}

/// Sort by a dotted attribute path, as Feast does (strings case-insensitive).
pub fn sort(objects: &mut [FeastObject], sorting: Option<&fr::SortingParams>) -> Result<(), Status> {
    let Some(s) = sorting.filter(|s| !s.sort_by.trim().is_empty()) else {
        return Ok(());
    };
    let by = s.sort_by.trim();
    let cmp: fn(&FeastObject, &FeastObject) -> Ordering = match by {
        "name" | "spec.name" => |a, b| a.name().to_lowercase().cmp(&b.name().to_lowercase()),
        "project" | "spec.project" => |a, b| a.project().to_lowercase().cmp(&b.project().to_lowercase()),
        "meta.created_timestamp" | "created_timestamp" => |a, b| {
            let k = |o: &FeastObject| o.created().map(|t| (t.seconds, t.nanos)).unwrap_or((0, 0));
            k(a).cmp(&k(b))
        },
        "meta.last_updated_timestamp" | "last_updated_timestamp" => |a, b| updated(a).cmp(&updated(b)),
        other => {
            return Err(invalid(format!(
                "sorting by {other:?} is not supported; use name, project, meta.created_timestamp or meta.last_updated_timestamp"
            )));
        }
    };
    objects.sort_by(cmp);
    if s.sort_order.eq_ignore_ascii_case("desc") {
        objects.reverse();
    }
    Ok(())
}

/// Feast's pagination: only when page > 0 and limit > 0; pages are 1-based.
pub fn paginate<T>(items: Vec<T>, p: Option<&fr::PaginationParams>) -> (Vec<T>, fr::PaginationMetadata) {
    let total = items.len() as i32;
    if total == 0 {
        return (items, fr::PaginationMetadata::default());
    }
    match p.filter(|p| p.page > 0 && p.limit > 0) {
        None => (
            items,
            fr::PaginationMetadata {
                total_count: total,
                total_pages: 1,
                ..Default::default()
            },
        ),
        Some(p) => {
            let pages = (total + p.limit - 1) / p.limit;
            let start = ((p.page - 1) as usize).saturating_mul(p.limit as usize);
            let page: Vec<T> = items.into_iter().skip(start).take(p.limit as usize).collect();
            (
                page,
                fr::PaginationMetadata {
                    page: p.page,
                    limit: p.limit,
                    total_count: total,
                    total_pages: pages,
                    has_next: p.page < pages,
                    has_previous: p.page > 1,
                },
            )
        }
    }
}
