//! One Feast registry object of any kind, as the protobuf Feast stores.
//! The registry, its servers and the CLI all handle objects through this.

use std::fmt;

use larder_protos::feast::core as fc;
use prost::Message;
use prost_types::Timestamp;

/// The registry object kinds, one per Feast SQL table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeastKind {
    Project,
    DataSource,
    Entity,
    FeatureView,
    StreamFeatureView,
    OnDemandFeatureView,
    LabelView,
    FeatureService,
    SavedDataset,
    ValidationReference,
    Permission,
}

impl FeastKind {
    /// Every kind but `Project`, in the order objects are applied.
    pub const OBJECTS: [FeastKind; 10] = [
        FeastKind::DataSource,
        FeastKind::Entity,
        FeastKind::FeatureView,
        FeastKind::StreamFeatureView,
        FeastKind::OnDemandFeatureView,
        FeastKind::LabelView,
        FeastKind::FeatureService,
        FeastKind::SavedDataset,
        FeastKind::ValidationReference,
        FeastKind::Permission,
    ];

    /// The view kinds: one name space per project ([`FeastKind::is_view`]).
    pub const VIEWS: [FeastKind; 4] = [
        FeastKind::FeatureView,
        FeastKind::StreamFeatureView,
        FeastKind::OnDemandFeatureView,
        FeastKind::LabelView,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FeastKind::Project => "Project",
            FeastKind::DataSource => "DataSource",
            FeastKind::Entity => "Entity",
            FeastKind::FeatureView => "FeatureView",
            FeastKind::StreamFeatureView => "StreamFeatureView",
            FeastKind::OnDemandFeatureView => "OnDemandFeatureView",
            FeastKind::LabelView => "LabelView",
            FeastKind::FeatureService => "FeatureService",
            FeastKind::SavedDataset => "SavedDataset",
            FeastKind::ValidationReference => "ValidationReference",
            FeastKind::Permission => "Permission",
        }
    }

    /// Accepts kind names in any case, plural or singular (`featureviews`, `fv`).
    pub fn parse(s: &str) -> Option<FeastKind> {
        let full = s.to_ascii_lowercase().replace(['-', '_'], "");
        let k = match full.as_str() {
            "ds" | "fs" | "entities" => full.as_str(),
            f => f.strip_suffix('s').unwrap_or(f),
        };
        Some(match k {
            "project" => FeastKind::Project,
            "datasource" | "source" | "ds" => FeastKind::DataSource,
            "entity" | "entities" => FeastKind::Entity,
            "featureview" | "fv" => FeastKind::FeatureView,
            "streamfeatureview" | "sfv" => FeastKind::StreamFeatureView,
            "ondemandfeatureview" | "odfv" => FeastKind::OnDemandFeatureView,
            "labelview" => FeastKind::LabelView,
            "featureservice" | "fs" => FeastKind::FeatureService,
            "saveddataset" => FeastKind::SavedDataset,
            "validationreference" => FeastKind::ValidationReference,
            "permission" => FeastKind::Permission,
            _ => return None,
        })
    }

    /// Kinds that share one name space in a project (Feast refuses two views of one name).
    pub fn is_view(self) -> bool {
        matches!(
            self,
            FeastKind::FeatureView
                | FeastKind::StreamFeatureView
                | FeastKind::OnDemandFeatureView
                | FeastKind::LabelView
        )
    }
}

impl fmt::Display for FeastKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Feast registry object.
#[derive(Debug, Clone, PartialEq)]
pub enum FeastObject {
    Project(fc::Project),
    DataSource(fc::DataSource),
    Entity(fc::Entity),
    FeatureView(fc::FeatureView),
    StreamFeatureView(fc::StreamFeatureView),
    OnDemandFeatureView(fc::OnDemandFeatureView),
    LabelView(fc::LabelView),
    FeatureService(fc::FeatureService),
    SavedDataset(fc::SavedDataset),
    ValidationReference(fc::ValidationReference),
    Permission(fc::Permission),
}

/// Generates the per-kind accessors for kinds shaped `{spec{name, project}, meta{created, updated}}`.
macro_rules! spec_meta {
    ($self:ident, $o:ident => $body:expr, ds => $ds:expr, vr => $vr:expr) => {
        match $self {
            FeastObject::Project($o) => $body,
            FeastObject::Entity($o) => $body,
            FeastObject::FeatureView($o) => $body,
            FeastObject::StreamFeatureView($o) => $body,
            FeastObject::OnDemandFeatureView($o) => $body,
            FeastObject::LabelView($o) => $body,
            FeastObject::FeatureService($o) => $body,
            FeastObject::SavedDataset($o) => $body,
            FeastObject::Permission($o) => $body,
            FeastObject::DataSource($o) => $ds,
            FeastObject::ValidationReference($o) => $vr,
        }
    };
}

impl FeastObject {
    pub fn kind(&self) -> FeastKind {
        match self {
            FeastObject::Project(_) => FeastKind::Project,
            FeastObject::DataSource(_) => FeastKind::DataSource,
            FeastObject::Entity(_) => FeastKind::Entity,
            FeastObject::FeatureView(_) => FeastKind::FeatureView,
            FeastObject::StreamFeatureView(_) => FeastKind::StreamFeatureView,
            FeastObject::OnDemandFeatureView(_) => FeastKind::OnDemandFeatureView,
            FeastObject::LabelView(_) => FeastKind::LabelView,
            FeastObject::FeatureService(_) => FeastKind::FeatureService,
            FeastObject::SavedDataset(_) => FeastKind::SavedDataset,
            FeastObject::ValidationReference(_) => FeastKind::ValidationReference,
            FeastObject::Permission(_) => FeastKind::Permission,
        }
    }

    pub fn name(&self) -> &str {
        spec_meta!(self, o => o.spec.as_ref().map(|s| s.name.as_str()).unwrap_or(""),
            ds => o.name.as_str(),
            vr => o.name.as_str())
    }

    /// The project recorded inside the object (empty when the writer left
    /// it out, as Python does in SQL blobs); a Project's own name.
    pub fn project(&self) -> &str {
        match self {
            FeastObject::Project(o) => o.spec.as_ref().map(|s| s.name.as_str()).unwrap_or(""),
            FeastObject::DataSource(o) => &o.project,
            FeastObject::ValidationReference(o) => &o.project,
            FeastObject::Entity(o) => o.spec.as_ref().map(|s| s.project.as_str()).unwrap_or(""),
            FeastObject::FeatureView(o) => o.spec.as_ref().map(|s| s.project.as_str()).unwrap_or(""),
            FeastObject::StreamFeatureView(o) => o.spec.as_ref().map(|s| s.project.as_str()).unwrap_or(""),
            FeastObject::OnDemandFeatureView(o) => o.spec.as_ref().map(|s| s.project.as_str()).unwrap_or(""),
            FeastObject::LabelView(o) => o.spec.as_ref().map(|s| s.project.as_str()).unwrap_or(""),
            FeastObject::FeatureService(o) => o.spec.as_ref().map(|s| s.project.as_str()).unwrap_or(""),
            FeastObject::SavedDataset(o) => o.spec.as_ref().map(|s| s.project.as_str()).unwrap_or(""),
            FeastObject::Permission(o) => o.spec.as_ref().map(|s| s.project.as_str()).unwrap_or(""),
        }
    }

    /// Feast stores the project in the row (SQL) or in the object (file);
    /// readers set it from where they found the object.
    pub fn set_project(&mut self, project: &str) {
        match self {
            // A Project's spec holds its own name, not a parent project.
            FeastObject::Project(_) => {}
            FeastObject::Entity(o) => o.spec.get_or_insert_default().project = project.into(),
            FeastObject::FeatureView(o) => o.spec.get_or_insert_default().project = project.into(),
            FeastObject::StreamFeatureView(o) => o.spec.get_or_insert_default().project = project.into(),
            FeastObject::OnDemandFeatureView(o) => o.spec.get_or_insert_default().project = project.into(),
            FeastObject::LabelView(o) => o.spec.get_or_insert_default().project = project.into(),
            FeastObject::FeatureService(o) => o.spec.get_or_insert_default().project = project.into(),
            FeastObject::SavedDataset(o) => o.spec.get_or_insert_default().project = project.into(),
            FeastObject::Permission(o) => o.spec.get_or_insert_default().project = project.into(),
            FeastObject::DataSource(o) => o.project = project.into(),
            FeastObject::ValidationReference(o) => o.project = project.into(),
        }
    }

    pub fn created(&self) -> Option<Timestamp> {
        spec_meta!(self, o => o.meta.as_ref().and_then(|m| m.created_timestamp),
            ds => o.meta.as_ref().and_then(|m| m.created_timestamp),
            vr => { let _ = o; None })
    }

    /// Set `meta.created_timestamp` and `meta.last_updated_timestamp`
    /// (ValidationReference has no meta and is left alone).
    pub fn set_timestamps(&mut self, created: Timestamp, updated: Timestamp) {
        macro_rules! set {
            ($o:expr) => {{
                let m = $o.meta.get_or_insert_default();
                m.created_timestamp = Some(created);
                m.last_updated_timestamp = Some(updated);
            }};
        }
        match self {
            FeastObject::Project(o) => set!(o),
            FeastObject::Entity(o) => set!(o),
            FeastObject::FeatureView(o) => set!(o),
            FeastObject::StreamFeatureView(o) => set!(o),
            FeastObject::OnDemandFeatureView(o) => set!(o),
            FeastObject::LabelView(o) => set!(o),
            FeastObject::FeatureService(o) => set!(o),
            FeastObject::SavedDataset(o) => set!(o),
            FeastObject::Permission(o) => set!(o),
            FeastObject::DataSource(o) => set!(o),
            FeastObject::ValidationReference(_) => {}
        }
    }

    /// The object without registry-maintained metadata, for deciding whether
    /// an apply changes anything: timestamps, project and (for views) the
    /// materialization state are the registry's, not the user's.
    pub fn definition(&self) -> FeastObject {
        let mut o = self.clone();
        o.set_project("");
        match &mut o {
            FeastObject::Project(p) => p.meta = None,
            FeastObject::Entity(x) => x.meta = None,
            FeastObject::FeatureView(x) => x.meta = None,
            FeastObject::StreamFeatureView(x) => x.meta = None,
            FeastObject::OnDemandFeatureView(x) => x.meta = None,
            FeastObject::LabelView(x) => x.meta = None,
            FeastObject::FeatureService(x) => x.meta = None,
            FeastObject::SavedDataset(x) => x.meta = None,
            FeastObject::Permission(x) => x.meta = None,
            FeastObject::DataSource(x) => x.meta = None,
            FeastObject::ValidationReference(_) => {}
        }
        o
    }

    pub fn encode(&self) -> Vec<u8> {
        spec_meta!(self, o => o.encode_to_vec(), ds => o.encode_to_vec(), vr => o.encode_to_vec())
    }

    pub fn decode(kind: FeastKind, bytes: &[u8]) -> Result<FeastObject, prost::DecodeError> {
        Ok(match kind {
            FeastKind::Project => FeastObject::Project(Message::decode(bytes)?),
            FeastKind::DataSource => FeastObject::DataSource(Message::decode(bytes)?),
            FeastKind::Entity => FeastObject::Entity(Message::decode(bytes)?),
            FeastKind::FeatureView => FeastObject::FeatureView(Message::decode(bytes)?),
            FeastKind::StreamFeatureView => FeastObject::StreamFeatureView(Message::decode(bytes)?),
            FeastKind::OnDemandFeatureView => FeastObject::OnDemandFeatureView(Message::decode(bytes)?),
            FeastKind::LabelView => FeastObject::LabelView(Message::decode(bytes)?),
            FeastKind::FeatureService => FeastObject::FeatureService(Message::decode(bytes)?),
            FeastKind::SavedDataset => FeastObject::SavedDataset(Message::decode(bytes)?),
            FeastKind::ValidationReference => FeastObject::ValidationReference(Message::decode(bytes)?),
            FeastKind::Permission => FeastObject::Permission(Message::decode(bytes)?),
        })
    }
}

/// Where an incremental materialization of `view` up to `end_ns` starts:
/// the end of its latest interval, else `end - ttl`, else the epoch (as
/// Feast's `materialize-incremental` does).
pub fn incremental_start(view: &fc::FeatureView, end_ns: i64) -> i64 {
    let nanos = |seconds: i64, n: i32| seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(n));
    let last = view.meta.as_ref().and_then(|m| {
        m.materialization_intervals
            .iter()
            .filter_map(|i| i.end_time)
            .map(|t| nanos(t.seconds, t.nanos))
            .max()
    });
    if let Some(last) = last {
        return last;
    }
    let ttl = view
        .spec
        .as_ref()
        .and_then(|s| s.ttl)
        .map(|d| nanos(d.seconds, d.nanos))
        .unwrap_or(0);
    if ttl > 0 { end_ns.saturating_sub(ttl) } else { 0 }
}

/// Feast's `FeastError.to_error_detail()`: the JSON its SDK re-raises the
/// exception class from, whatever carries it (an HTTP body as a JSON
/// string, a gRPC status's details or message). The one place Larder
/// writes it.
pub fn error_detail(class: &str, message: &str) -> String {
    serde_json::json!({"module": "feast.errors", "class": class, "message": message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_parse() {
        assert_eq!(FeastKind::parse("featureviews"), Some(FeastKind::FeatureView));
        assert_eq!(FeastKind::parse("FeatureView"), Some(FeastKind::FeatureView));
        assert_eq!(FeastKind::parse("entities"), Some(FeastKind::Entity));
        assert_eq!(FeastKind::parse("data-sources"), Some(FeastKind::DataSource));
        assert_eq!(FeastKind::parse("pods"), None);
        assert_eq!(FeastKind::parse("ds"), Some(FeastKind::DataSource));
        assert_eq!(FeastKind::parse("fs"), Some(FeastKind::FeatureService));
        assert_eq!(FeastKind::parse("permissions"), Some(FeastKind::Permission));
    }

    #[test]
    fn definition_ignores_registry_metadata() {
        let mut a = FeastObject::Entity(fc::Entity {
            spec: Some(fc::EntitySpecV2 {
                name: "driver".into(),
                join_key: "driver_id".into(),
                value_type: 4,
                ..Default::default()
            }),
            meta: None,
        });
        let b = a.clone();
        a.set_project("demo");
        a.set_timestamps(Timestamp { seconds: 1, nanos: 0 }, Timestamp { seconds: 2, nanos: 0 });
        assert_eq!(a.definition(), b.definition());
        assert_eq!(a.created().map(|t| t.seconds), Some(1));
        let round = FeastObject::decode(FeastKind::Entity, &a.encode()).unwrap();
        assert_eq!(round, a);
    }
}
