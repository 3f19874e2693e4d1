//! Each project's compiled Permissions, rebuilt only when the registry
//! snapshot they came from changes (regexes compile once per registry
//! version, not per request).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use larder_protos::feast::core as fc;

use crate::{InvalidPermission, PermissionSet};

#[derive(Default)]
pub struct ProjectPermissions {
    sets: RwLock<HashMap<String, (u64, Arc<PermissionSet>)>>,
}

impl ProjectPermissions {
    /// The project's set for registry `generation`; `load` lists the
    /// project's Permissions when the cached set is older.
    pub fn get(
        &self,
        project: &str,
        generation: u64,
        load: impl FnOnce() -> Vec<fc::Permission>,
    ) -> Result<Arc<PermissionSet>, InvalidPermission> {
        if let Some((g, set)) = self.sets.read().unwrap_or_else(PoisonError::into_inner).get(project)
            && *g == generation
        {
            return Ok(set.clone());
        }
        let set = Arc::new(PermissionSet::compile(&load())?);
        let mut sets = self.sets.write().unwrap_or_else(PoisonError::into_inner);
        // Projects come from requests: keep the map from growing without
        // bound on made-up names.
        if sets.len() >= 1024 && !sets.contains_key(project) {
            sets.clear();
        }
        sets.insert(project.to_string(), (generation, set.clone()));
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recompiles_only_for_a_new_generation() {
        let cache = ProjectPermissions::default();
        let mut loads = 0;
        for generation in [1, 1, 2, 2] {
            cache
                .get("p", generation, || {
                    loads += 1;
                    Vec::new()
                })
                .unwrap();
        }
        assert_eq!(loads, 2);
    }
}
