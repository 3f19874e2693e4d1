//! Checks a set of manifests as a whole: names, types and every reference.
//! Returns every problem found, not just the first.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{ManifestError, ManifestErrors, Origin};
use crate::load::Loaded;
use crate::manifest::{DataSourceSpec, Document, EntitySpec, FeatureViewSpec, Kind, Object, SourceKind};
use crate::names::{check_dns1123_subdomain, check_feast_name, check_identifier, check_project};
use crate::permissions::{parse_actions, parse_type};

/// A validated set of manifests with lookups by `metadata.name`.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub objects: Vec<Loaded>,
    index: HashMap<(Kind, String), usize>,
}

impl Catalog {
    pub fn get(&self, kind: Kind, metadata_name: &str) -> Option<&Loaded> {
        self.index
            .get(&(kind, metadata_name.to_string()))
            .map(|i| &self.objects[*i])
    }

    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Loaded> {
        self.objects.iter().filter(move |o| o.object.kind() == kind)
    }

    pub fn entity(&self, name: &str) -> Option<&Document<EntitySpec>> {
        match self.get(Kind::Entity, name).map(|l| &l.object) {
            Some(Object::Entity(d)) => Some(d),
            _ => None,
        }
    }

    pub fn source(&self, name: &str) -> Option<(&Loaded, &Document<DataSourceSpec>)> {
        match self.get(Kind::DataSource, name) {
            Some(
                l @ Loaded {
                    object: Object::DataSource(d),
                    ..
                },
            ) => Some((l, d)),
            _ => None,
        }
    }

    pub fn view(&self, name: &str) -> Option<&Document<FeatureViewSpec>> {
        match self.get(Kind::FeatureView, name).map(|l| &l.object) {
            Some(Object::FeatureView(d)) => Some(d),
            _ => None,
        }
    }

    /// The Feast projects declared by FeatureStore documents.
    pub fn projects(&self) -> Vec<&str> {
        self.of_kind(Kind::FeatureStore)
            .map(|l| l.object.feast_name())
            .collect()
    }
}

/// The join key an entity uses: `spec.joinKey`, else its Feast name.
pub fn join_key(doc: &Document<EntitySpec>) -> &str {
    doc.spec
        .join_key
        .as_deref()
        .or(doc.spec.name.as_deref())
        .unwrap_or(&doc.metadata.name)
}

struct Problems(Vec<ManifestError>);

impl Problems {
    fn add(&mut self, origin: &Origin, field: impl Into<String>, msg: impl Into<String>) {
        self.0.push(ManifestError::new(Some(origin), field, msg));
    }
    fn check(&mut self, origin: &Origin, field: &str, r: Result<(), String>) {
        if let Err(m) = r {
            self.add(origin, field, m);
        }
    }
}

/// Validate a set of loaded documents.
pub fn validate(objects: Vec<Loaded>) -> Result<Catalog, ManifestErrors> {
    let mut p = Problems(Vec::new());
    let mut index = HashMap::new();
    let mut feast_names: HashSet<(Kind, String)> = HashSet::new();
    for (i, l) in objects.iter().enumerate() {
        let o = &l.origin;
        let kind = l.object.kind();
        let meta = l.object.metadata();
        p.check(o, "metadata.name", check_dns1123_subdomain(&meta.name));
        if index.insert((kind, meta.name.clone()), i).is_some() {
            p.add(o, "metadata.name", format!("duplicate {kind} {:?}", meta.name));
        }
        let fname = l.object.feast_name().to_string();
        if kind == Kind::FeatureStore {
            p.check(o, "spec.project", check_project(&fname));
        } else {
            p.check(o, "spec.name", check_feast_name(&fname));
        }
        if !feast_names.insert((kind, fname.clone())) && kind != Kind::FeatureStore {
            p.add(o, "spec.name", format!("duplicate {kind} name {fname:?}"));
        }
    }
    let catalog = Catalog { objects, index };
    let stores: Vec<&str> = catalog
        .of_kind(Kind::FeatureStore)
        .map(|l| l.object.metadata().name.as_str())
        .collect();
    for l in &catalog.objects {
        if let Some(r) = l.object.store_ref()
            && !stores.contains(&r)
        {
            p.add(
                &l.origin,
                "spec.storeRef",
                format!("no FeatureStore named {r:?} in the manifests"),
            );
        }
        match &l.object {
            Object::FeatureStore(_) => {}
            Object::Entity(d) => check_entity(&mut p, &l.origin, d),
            Object::DataSource(d) => check_source(&mut p, &l.origin, d, &catalog),
            Object::FeatureView(d) => check_view(&mut p, &l.origin, d, &catalog),
            Object::FeatureService(d) => check_service(&mut p, &l.origin, d, &catalog),
            Object::Permission(d) => check_permission(&mut p, &l.origin, d),
        }
    }
    if p.0.is_empty() {
        Ok(catalog)
    } else {
        Err(ManifestErrors(p.0))
    }
}

fn check_tags(p: &mut Problems, o: &Origin, field: &str, tags: &BTreeMap<String, String>) {
    for k in tags.keys() {
        if k.is_empty() || k.len() > 253 {
            p.add(o, format!("{field}.{k}"), "tag keys must be 1 to 253 characters");
        }
    }
}

fn check_entity(p: &mut Problems, o: &Origin, d: &Document<EntitySpec>) {
    p.check(o, "spec.joinKey", check_identifier(join_key(d)));
    if !d.spec.value_type.is_entity_key_type() {
        p.add(
            o,
            "spec.valueType",
            format!(
                "{} cannot be a join key type; use String, Bytes, Int32, Int64 or UnixTimestamp",
                d.spec.value_type
            ),
        );
    }
    check_tags(p, o, "spec.tags", &d.spec.tags);
}

fn check_optional_identifier(p: &mut Problems, o: &Origin, field: &str, v: &str) {
    if !v.is_empty() {
        p.check(o, field, check_identifier(v));
    }
}

fn check_source(p: &mut Problems, o: &Origin, d: &Document<DataSourceSpec>, c: &Catalog) {
    let s = &d.spec;
    let kinds = s.kinds();
    if kinds.len() != 1 {
        p.add(
            o,
            "spec",
            "a DataSource needs exactly one of file, postgres, push or request",
        );
        return;
    }
    check_optional_identifier(p, o, "spec.timestampField", &s.timestamp_field);
    check_optional_identifier(p, o, "spec.createdTimestampColumn", &s.created_timestamp_column);
    check_optional_identifier(p, o, "spec.datePartitionColumn", &s.date_partition_column);
    for (k, v) in &s.field_mapping {
        p.check(o, &format!("spec.fieldMapping.{k}"), check_identifier(k));
        p.check(o, &format!("spec.fieldMapping.{k}"), check_identifier(v));
    }
    check_tags(p, o, "spec.tags", &s.tags);
    match kinds[0] {
        SourceKind::File | SourceKind::Postgres => {
            if s.timestamp_field.is_empty() {
                p.add(o, "spec.timestampField", "required for file and postgres sources");
            }
        }
        SourceKind::Push | SourceKind::Request => {
            if !s.timestamp_field.is_empty() || !s.created_timestamp_column.is_empty() || !s.field_mapping.is_empty() {
                p.add(
                    o,
                    "spec",
                    "timestampField, createdTimestampColumn and fieldMapping belong on the batch source, not on a push or request source",
                );
            }
        }
    }
    if let Some(f) = &s.file
        && f.path.trim().is_empty()
    {
        p.add(o, "spec.file.path", "must not be empty");
    }
    if let Some(pg) = &s.postgres {
        match (&pg.table, &pg.query) {
            (Some(t), None) => {
                let parts: Vec<&str> = t.split('.').collect();
                if parts.len() > 2 || parts.iter().any(|x| check_identifier(x).is_err()) {
                    p.add(
                        o,
                        "spec.postgres.table",
                        format!("{t:?} is not a table name (identifier or schema.identifier)"),
                    );
                }
            }
            (None, Some(q)) if !q.trim().is_empty() => {}
            _ => p.add(o, "spec.postgres", "set exactly one of table or query"),
        }
    }
    if let Some(push) = &s.push {
        match c.source(&push.batch_source) {
            None => p.add(
                o,
                "spec.push.batchSource",
                format!("no DataSource named {:?}", push.batch_source),
            ),
            Some((_, b)) if !(b.spec.file.is_some() || b.spec.postgres.is_some()) => p.add(
                o,
                "spec.push.batchSource",
                format!("{:?} must be a file or postgres source", push.batch_source),
            ),
            _ => {}
        }
    }
    if let Some(r) = &s.request {
        if r.schema.is_empty() {
            p.add(o, "spec.request.schema", "must list at least one field");
        }
        let mut seen = HashSet::new();
        for (i, f) in r.schema.iter().enumerate() {
            p.check(o, &format!("spec.request.schema[{i}].name"), check_identifier(&f.name));
            if !seen.insert(&f.name) {
                p.add(
                    o,
                    format!("spec.request.schema[{i}].name"),
                    format!("duplicate field {:?}", f.name),
                );
            }
        }
    }
}

fn check_view(p: &mut Problems, o: &Origin, d: &Document<FeatureViewSpec>, c: &Catalog) {
    let s = &d.spec;
    if s.entities.is_empty() {
        p.add(
            o,
            "spec.entities",
            "list at least one entity (entity-less feature views are not supported)",
        );
    }
    let mut join_keys = HashSet::new();
    let mut seen_entities = HashSet::new();
    for (i, e) in s.entities.iter().enumerate() {
        if !seen_entities.insert(e) {
            p.add(
                o,
                format!("spec.entities[{i}]"),
                format!("entity {e:?} is listed twice"),
            );
        }
        match c.entity(e) {
            None => p.add(o, format!("spec.entities[{i}]"), format!("no Entity named {e:?}")),
            Some(ent) => {
                if !join_keys.insert(join_key(ent).to_string()) {
                    p.add(
                        o,
                        format!("spec.entities[{i}]"),
                        format!("join key {:?} is used by two entities", join_key(ent)),
                    );
                }
            }
        }
    }
    match c.source(&s.source) {
        None => p.add(o, "spec.source", format!("no DataSource named {:?}", s.source)),
        Some((_, src)) if src.spec.request.is_some() => p.add(
            o,
            "spec.source",
            format!("{:?} is a request source and cannot feed a feature view", s.source),
        ),
        Some(_) => {}
    }
    if s.features.is_empty() {
        p.add(o, "spec.features", "list at least one feature");
    }
    let mut seen = HashSet::new();
    for (i, f) in s.features.iter().enumerate() {
        let field = format!("spec.features[{i}].name");
        p.check(o, &field, check_identifier(&f.name));
        if !seen.insert(&f.name) {
            p.add(o, &field, format!("duplicate feature {:?}", f.name));
        }
        if join_keys.contains(&f.name) {
            p.add(o, &field, format!("{:?} is a join key of this view's entities", f.name));
        }
        check_tags(p, o, &format!("spec.features[{i}].tags"), &f.tags);
    }
    check_tags(p, o, "spec.tags", &s.tags);
}

fn check_service(p: &mut Problems, o: &Origin, d: &Document<crate::manifest::FeatureServiceSpec>, c: &Catalog) {
    if d.spec.features.is_empty() {
        p.add(o, "spec.features", "list at least one feature view projection");
    }
    let mut seen_names = HashSet::new();
    for (i, proj) in d.spec.features.iter().enumerate() {
        let base = format!("spec.features[{i}]");
        let Some(view) = c.view(&proj.view) else {
            p.add(
                o,
                format!("{base}.view"),
                format!("no FeatureView named {:?}", proj.view),
            );
            continue;
        };
        let view_name = view.spec.name.as_deref().unwrap_or(&view.metadata.name);
        let shown = proj.alias.as_deref().unwrap_or(view_name);
        if !seen_names.insert(shown.to_string()) {
            p.add(
                o,
                format!("{base}.view"),
                format!("{shown:?} is projected twice; give one an alias"),
            );
        }
        if let Some(a) = &proj.alias {
            p.check(o, &format!("{base}.alias"), check_feast_name(a));
        }
        let mut seen = HashSet::new();
        for (j, f) in proj.features.iter().enumerate() {
            if !view.spec.features.iter().any(|vf| &vf.name == f) {
                p.add(
                    o,
                    format!("{base}.features[{j}]"),
                    format!("feature view {:?} has no feature {f:?}", proj.view),
                );
            }
            if !seen.insert(f) {
                p.add(o, format!("{base}.features[{j}]"), format!("duplicate feature {f:?}"));
            }
        }
        let view_keys: Vec<&str> = view
            .spec
            .entities
            .iter()
            .filter_map(|e| c.entity(e))
            .map(join_key)
            .collect();
        for (k, v) in &proj.join_key_map {
            if !view_keys.contains(&k.as_str()) {
                p.add(
                    o,
                    format!("{base}.joinKeyMap.{k}"),
                    format!("{k:?} is not a join key of {:?}", proj.view),
                );
            }
            p.check(o, &format!("{base}.joinKeyMap.{k}"), check_identifier(v));
        }
    }
    check_tags(p, o, "spec.tags", &d.spec.tags);
}

fn check_permission(p: &mut Problems, o: &Origin, d: &Document<crate::manifest::PermissionSpec>) {
    let s = &d.spec;
    for (i, t) in s.types.iter().enumerate() {
        if let Err(m) = parse_type(t) {
            p.add(o, format!("spec.types[{i}]"), m);
        }
    }
    if s.actions.is_empty() {
        p.add(o, "spec.actions", "list at least one action");
    }
    for (i, a) in s.actions.iter().enumerate() {
        if let Err(m) = parse_actions(a) {
            p.add(o, format!("spec.actions[{i}]"), m);
        }
    }
    for (i, pat) in s.name_patterns.iter().enumerate() {
        if let Err(e) = regex::Regex::new(&format!("^(?:{pat})$")) {
            p.add(
                o,
                format!("spec.namePatterns[{i}]"),
                format!("invalid regular expression: {e}"),
            );
        }
    }
    let pol = &s.policy;
    let set = [
        pol.roles.as_ref().map(|v| ("roles", v.is_empty())),
        pol.groups.as_ref().map(|v| ("groups", v.is_empty())),
        pol.namespaces.as_ref().map(|v| ("namespaces", v.is_empty())),
        pol.groups_and_namespaces
            .as_ref()
            .map(|g| ("groupsAndNamespaces", g.groups.is_empty() && g.namespaces.is_empty())),
    ];
    let given: Vec<(&str, bool)> = set.into_iter().flatten().collect();
    match given.as_slice() {
        [(_, false)] => {}
        [(name, true)] => p.add(o, format!("spec.policy.{name}"), "must not be empty"),
        _ => p.add(
            o,
            "spec.policy",
            "set exactly one of roles, groups, namespaces or groupsAndNamespaces",
        ),
    }
    check_tags(p, o, "spec.tags", &s.tags);
}
