//! The file registry: one serialized `feast.core.Registry` (feast-compat.md
//! §4). Writers hold an exclusive lock on `<file>.lock` for the whole
//! read-modify-write, write a temp file, fsync it and rename it over the
//! old one, so readers always see a whole registry and a second writer
//! gets a clear error instead of silently overwriting.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::core as fc;
use prost::Message;
use prost_types::Timestamp;

use crate::store::{
    add_interval, objects_of, other_view_kinds, prepare_write, push_object, retain, sort_by_name, storage_project,
    view_name_taken,
};
use crate::{ApplyOutcome, Registry, RegistryError, Result, now_timestamp};

pub struct FileRegistry {
    path: PathBuf,
    /// Writers in this process take turns; the lock file is for other processes.
    writers: std::sync::Mutex<()>,
}

impl FileRegistry {
    /// Open (and create, empty, if missing) a registry file.
    pub fn open(path: &Path) -> Result<Self> {
        let reg = Self {
            path: path.to_path_buf(),
            writers: std::sync::Mutex::new(()),
        };
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
            }
            reg.mutate(|_| Ok(()))?;
        }
        Ok(reg)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }

    /// Read the registry; a missing file is an empty registry.
    pub fn read(&self) -> Result<fc::Registry> {
        match std::fs::read(&self.path) {
            Ok(bytes) => fc::Registry::decode(bytes.as_slice()).map_err(|source| RegistryError::Decode {
                kind: "Registry".into(),
                name: self.path.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(fc::Registry::default()),
            Err(e) => Err(RegistryError::Io {
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    /// Locked read-modify-write. `f` returns `Ok(Some(..))`-style results;
    /// the file is rewritten only when `changed` says so.
    fn mutate<T>(&self, f: impl FnOnce(&mut fc::Registry) -> Result<T>) -> Result<T> {
        self.mutate_if(|r| f(r).map(|t| (t, true)))
    }

    fn mutate_if<T>(&self, f: impl FnOnce(&mut fc::Registry) -> Result<(T, bool)>) -> Result<T> {
        let _turn = self.writers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let lock_path = self.lock_path();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(RegistryError::io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(RegistryError::Locked {
                    path: self.path.clone(),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(RegistryError::Io {
                    path: lock_path,
                    source: e,
                });
            }
        }
        let mut reg = self.read()?;
        let (out, changed) = f(&mut reg)?;
        if changed || !self.path.exists() {
            reg.registry_schema_version = "1".into();
            reg.version_id = uuid::Uuid::new_v4().to_string();
            reg.last_updated = Some(now_timestamp());
            self.write_atomically(&reg.encode_to_vec())?;
        }
        drop(lock);
        Ok(out)
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self.path.file_name().and_then(|n| n.to_str()).unwrap_or("registry");
        let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4()));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(RegistryError::io(&self.path))
    }

    fn find(reg: &fc::Registry, project: &str, kind: FeastKind, name: &str) -> Option<FeastObject> {
        objects_of(reg, kind)
            .into_iter()
            .find(|o| o.name() == name && (kind == FeastKind::Project || o.project() == project))
    }

    fn apply_in(reg: &mut Indexed, project: &str, obj: FeastObject, now: Timestamp) -> Result<ApplyOutcome> {
        let kind = obj.kind();
        if kind != FeastKind::Project && reg.find("", FeastKind::Project, project).is_none() {
            let mut p = FeastObject::Project(fc::Project {
                spec: Some(fc::ProjectSpec {
                    name: project.into(),
                    ..Default::default()
                }),
                meta: None,
            });
            p.set_timestamps(now, now);
            reg.put(p);
            reg.base.project_metadata.push(fc::ProjectMetadata {
                project: project.into(),
                project_uuid: uuid::Uuid::new_v4().to_string(),
            });
        }
        for other in other_view_kinds(kind) {
            if reg.find(project, other, obj.name()).is_some() {
                return Err(view_name_taken(other, obj.name(), project));
            }
        }
        let key = storage_project(project, &obj).to_string();
        let old = reg.find(&key, kind, obj.name());
        let (new, outcome) = prepare_write(&key, obj, old, now);
        if outcome != ApplyOutcome::Unchanged {
            reg.put(new);
        }
        Ok(outcome)
    }

    fn delete_in(reg: &mut Indexed, project: &str, kind: FeastKind, name: &str) -> bool {
        if kind == FeastKind::Project {
            let found = reg
                .objects
                .remove(&(FeastKind::Project, String::new(), name.to_string()))
                .is_some();
            reg.objects.retain(|(k, p, _), _| *k == FeastKind::Project || p != name);
            reg.base.project_metadata.retain(|m| m.project != name);
            return found;
        }
        reg.objects
            .remove(&(kind, project.to_string(), name.to_string()))
            .is_some()
    }

    /// Run `f` over an indexed copy of the registry and write the result back.
    fn indexed<T>(reg: &mut fc::Registry, f: impl FnOnce(&mut Indexed) -> Result<T>) -> Result<T> {
        let mut idx = Indexed::new(std::mem::take(reg));
        let out = f(&mut idx);
        *reg = idx.into_registry();
        out
    }
}

/// The registry's objects keyed by (kind, project, name): lookups and
/// replacements in a batch cost O(log n) instead of a scan each.
struct Indexed {
    objects: std::collections::BTreeMap<(FeastKind, String, String), FeastObject>,
    /// Everything else in the registry message (object lists emptied).
    base: fc::Registry,
}

impl Indexed {
    fn key_of(o: &FeastObject) -> (FeastKind, String, String) {
        let project = if o.kind() == FeastKind::Project {
            String::new()
        } else {
            o.project().to_string()
        };
        (o.kind(), project, o.name().to_string())
    }

    fn new(mut base: fc::Registry) -> Self {
        let mut objects = std::collections::BTreeMap::new();
        for kind in std::iter::once(FeastKind::Project).chain(FeastKind::OBJECTS) {
            for o in objects_of(&base, kind) {
                objects.insert(Self::key_of(&o), o);
            }
            retain(&mut base, kind, |_| false);
        }
        Self { objects, base }
    }

    fn find(&self, project: &str, kind: FeastKind, name: &str) -> Option<&FeastObject> {
        let project = if kind == FeastKind::Project {
            String::new()
        } else {
            project.to_string()
        };
        self.objects.get(&(kind, project, name.to_string()))
    }

    fn put(&mut self, o: FeastObject) {
        self.objects.insert(Self::key_of(&o), o);
    }

    fn into_registry(self) -> fc::Registry {
        let mut reg = self.base;
        for o in self.objects.into_values() {
            push_object(&mut reg, o);
        }
        reg
    }
}

#[async_trait]
impl Registry for FileRegistry {
    async fn apply(&self, project: &str, obj: FeastObject) -> Result<ApplyOutcome> {
        self.mutate_if(|reg| {
            let o = Self::indexed(reg, |idx| Self::apply_in(idx, project, obj, now_timestamp()))?;
            Ok((o, o != ApplyOutcome::Unchanged))
        })
    }

    /// One locked read-modify-write for the whole batch: all or nothing.
    async fn apply_all(
        &self,
        project: &str,
        objects: Vec<FeastObject>,
        deletes: Vec<(FeastKind, String)>,
    ) -> Result<Vec<ApplyOutcome>> {
        self.mutate_if(|reg| {
            Self::indexed(reg, |idx| {
                let now = now_timestamp();
                let mut outcomes = Vec::with_capacity(objects.len());
                for o in objects {
                    outcomes.push(Self::apply_in(idx, project, o, now)?);
                }
                let mut changed = outcomes.iter().any(|o| *o != ApplyOutcome::Unchanged);
                for (kind, name) in &deletes {
                    changed |= Self::delete_in(idx, project, *kind, name);
                }
                Ok((outcomes, changed))
            })
        })
    }

    async fn get(&self, project: &str, kind: FeastKind, name: &str) -> Result<Option<FeastObject>> {
        Ok(Self::find(&self.read()?, project, kind, name))
    }

    async fn list(&self, project: &str, kind: FeastKind) -> Result<Vec<FeastObject>> {
        let reg = self.read()?;
        let mut v: Vec<FeastObject> = objects_of(&reg, kind)
            .into_iter()
            .filter(|o| kind == FeastKind::Project || o.project() == project)
            .collect();
        sort_by_name(&mut v);
        Ok(v)
    }

    async fn delete(&self, project: &str, kind: FeastKind, name: &str) -> Result<bool> {
        self.mutate_if(|reg| {
            let d = Self::indexed(reg, |idx| Ok(Self::delete_in(idx, project, kind, name)))?;
            Ok((d, d))
        })
    }

    async fn list_projects(&self) -> Result<Vec<fc::Project>> {
        let mut p = self.read()?.projects;
        p.sort_by(|a, b| a.spec.as_ref().map(|s| &s.name).cmp(&b.spec.as_ref().map(|s| &s.name)));
        Ok(p)
    }

    async fn apply_materialization(&self, project: &str, view: &str, start: Timestamp, end: Timestamp) -> Result<()> {
        self.mutate(|reg| {
            let fv = reg
                .feature_views
                .iter_mut()
                .find(|v| v.spec.as_ref().is_some_and(|s| s.name == view && s.project == project))
                .ok_or_else(|| RegistryError::NotFound {
                    kind: "Feature view".into(),
                    name: view.into(),
                    project: project.into(),
                })?;
            add_interval(fv, start, end, now_timestamp());
            Ok(())
        })
    }

    async fn get_infra(&self, _project: &str) -> Result<fc::Infra> {
        Ok(self.read()?.infra.unwrap_or_default())
    }

    async fn update_infra(&self, _project: &str, infra: fc::Infra) -> Result<()> {
        self.mutate(|reg| {
            reg.infra = Some(infra);
            Ok(())
        })
    }

    async fn list_project_metadata(&self, project: &str) -> Result<Vec<fc::ProjectMetadata>> {
        Ok(self
            .read()?
            .project_metadata
            .into_iter()
            .filter(|m| m.project == project)
            .collect())
    }

    async fn snapshot(&self) -> Result<fc::Registry> {
        self.read()
    }

    async fn teardown(&self) -> Result<()> {
        for p in [self.path.clone(), self.lock_path()] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RegistryError::Io { path: p, source: e }),
            }
        }
        Ok(())
    }
}
