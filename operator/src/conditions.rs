//! Kubernetes-style conditions, computed purely from what a reconcile saw.
//! A condition keeps its `lastTransitionTime` while its status stays the
//! same, so an unchanged resource gets an identical status (and the status
//! patch is a no-op for the API server).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const REGISTRY_READY: &str = "RegistryReady";
pub const ONLINE_STORE_READY: &str = "OnlineStoreReady";
pub const TABLES_PROVISIONED: &str = "TablesProvisioned";
/// FeatureStore: its ConfigMap, ServiceAccounts, Deployments, Services, HPAs and PDBs are applied.
pub const WORKLOADS_APPLIED: &str = "WorkloadsApplied";
pub const FEATURE_SERVER_AVAILABLE: &str = "FeatureServerAvailable";
pub const REGISTRY_SERVER_AVAILABLE: &str = "RegistryServerAvailable";
/// FeatureView: how its last materialization run (Jobs) ended.
pub const MATERIALIZED: &str = "Materialized";

/// One condition as a reconcile decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            ok: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn failed(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Merge `wanted` into `existing`: conditions whose status did not change
/// keep their transition time; others get `now`. Conditions of other types
/// are kept (a condition is owned by whoever set it). Messages are capped
/// at 1,024 characters, as the API's own Condition type recommends.
pub fn merge(existing: &[Condition], wanted: &[Cond], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.type_ == c.type_))
        .cloned()
        .collect();
    for w in wanted {
        let status = if w.ok { "True" } else { "False" }.to_string();
        let previous = existing.iter().find(|c| c.type_ == w.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        let mut message = w.message.clone();
        if message.len() > 1024 {
            let mut cut = 1021;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        out.push(Condition {
            type_: w.type_.to_string(),
            status,
            reason: w.reason.clone(),
            message,
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Whether `conditions` has `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge(
            &[],
            &[Cond::ok(READY, "Applied", "ok")],
            Some(1),
            &t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(first[0].status, "True");
        assert_eq!(first[0].observed_generation, Some(1));
        let again = merge(
            &first,
            &[Cond::ok(READY, "Unchanged", "still ok")],
            Some(2),
            &t("2026-01-02T00:00:00Z"),
        );
        assert_eq!(again[0].last_transition_time, t("2026-01-01T00:00:00Z"));
        assert_eq!(again[0].reason, "Unchanged");
        assert_eq!(again[0].observed_generation, Some(2));
        let failed = merge(
            &again,
            &[Cond::failed(READY, "EntityNotFound", "x")],
            Some(2),
            &t("2026-01-03T00:00:00Z"),
        );
        assert_eq!(failed[0].status, "False");
        assert_eq!(failed[0].last_transition_time, t("2026-01-03T00:00:00Z"));
        assert!(!is_true(&failed, READY));
        assert!(is_true(&again, READY));
    }

    #[test]
    fn other_types_are_kept_and_sorted_and_long_messages_capped() {
        let existing = merge(&[], &[Cond::ok("Zeta", "R", "m")], None, &t("2026-01-01T00:00:00Z"));
        let long = "é".repeat(800);
        let out = merge(
            &existing,
            &[Cond::failed(READY, "R", long)],
            None,
            &t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(
            out.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            vec![READY, "Zeta"]
        );
        assert!(out[0].message.len() <= 1024 && out[0].message.ends_with("..."));
    }
}
