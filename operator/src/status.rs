//! Status from what a reconcile did: pure functions of the previous status,
//! the outcome and the time, so every condition and event decision is unit
//! tested without a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use larder_deploy::servers::ServerKind;
use larder_model::Kind;
use larder_model::crd::{FeatureStoreStatus, ObjectCounts, ObjectStatus, ServerStatus};
use larder_registry::ApplyOutcome;

use crate::Error;
use crate::conditions::{
    self, Cond, FEATURE_SERVER_AVAILABLE, ONLINE_STORE_READY, READY, REGISTRY_READY, REGISTRY_SERVER_AVAILABLE,
    TABLES_PROVISIONED, WORKLOADS_APPLIED,
};
use crate::objects::feast_kind;

/// An Event to record: reason, message, whether it is a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// What a successful object reconcile did.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub kind: Kind,
    pub feast_name: String,
    pub project: String,
    pub outcome: ApplyOutcome,
    /// A view's online table: `None` when there is none to provision.
    pub tables: Option<Result<(), String>>,
    pub feature_count: Option<u32>,
    pub last_materialized: Option<String>,
}

fn ready_reason(conds: &[Condition]) -> Option<&str> {
    conds.iter().find(|c| c.type_ == READY).map(|c| c.reason.as_str())
}

/// Status after a write, and the Event it deserves: `Applied` for a create
/// or an update of the resource, `DriftCorrected` when the resource had not
/// changed since it was last in sync (someone changed the registry).
pub fn object_written(
    previous: &ObjectStatus,
    w: &Written,
    generation: Option<i64>,
    now: &Time,
) -> (ObjectStatus, Option<Notice>) {
    let what = format!("{} {}", feast_kind(w.kind), w.feast_name);
    let mut wanted = Vec::new();
    let table_error = match &w.tables {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    };
    if let Some(t) = &w.tables {
        wanted.push(match t {
            Ok(()) => Cond::ok(TABLES_PROVISIONED, "Provisioned", "the online table exists"),
            Err(e) => Cond::failed(TABLES_PROVISIONED, "OnlineStoreUnavailable", e.clone()),
        });
    }
    let verb = match w.outcome {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Updated => "updated",
        ApplyOutcome::Unchanged => "in sync",
    };
    wanted.push(match &table_error {
        // The same message whatever this pass did, so an unchanged object keeps an identical status.
        None => Cond::ok(
            READY,
            "Applied",
            format!("{what} is in the registry of project {}", w.project),
        ),
        Some(e) => Cond::failed(READY, "OnlineStoreUnavailable", e.clone()),
    });
    let status = ObjectStatus {
        conditions: conditions::merge(&previous.conditions, &wanted, generation, now),
        observed_generation: generation,
        project: Some(w.project.clone()),
        feast_name: Some(w.feast_name.clone()),
        feature_count: w.feature_count,
        last_materialized: w.last_materialized.clone(),
        materialization: previous.materialization.clone(),
    };
    let was_in_sync = conditions::is_true(&previous.conditions, READY) && previous.observed_generation == generation;
    let notice = match w.outcome {
        ApplyOutcome::Updated if was_in_sync => Some(Notice {
            warning: false,
            reason: "DriftCorrected".into(),
            message: format!(
                "{what} in the registry differed from this resource (changed outside the operator) and was rewritten"
            ),
        }),
        ApplyOutcome::Created | ApplyOutcome::Updated => Some(Notice {
            warning: false,
            reason: "Applied".into(),
            message: format!("{what} {verb}"),
        }),
        ApplyOutcome::Unchanged => None,
    };
    (status, notice)
}

/// Status after a failed object reconcile; a warning Event only when the
/// reason changed (a retry loop must not flood the event log).
pub fn object_failed(
    previous: &ObjectStatus,
    err: &Error,
    generation: Option<i64>,
    now: &Time,
) -> (ObjectStatus, Option<Notice>) {
    let mut status = previous.clone();
    status.conditions = conditions::merge(
        &previous.conditions,
        &[Cond::failed(READY, err.label(), err.to_string())],
        generation,
        now,
    );
    status.observed_generation = generation;
    let notice = (ready_reason(&previous.conditions) != Some(err.label())).then(|| Notice {
        // Waiting for the store or a dependency is expected and passes by itself.
        warning: !matches!(err, Error::StoreNotReady(_) | Error::DependencyNotReady(_)),
        reason: err.label().into(),
        message: err.to_string(),
    });
    (status, notice)
}

/// What connecting a FeatureStore found.
#[derive(Debug)]
pub struct Connected {
    /// The registry's description (no credentials).
    pub registry: Option<String>,
    /// The online store's kind, when configured.
    pub online_kind: Option<String>,
    /// `Err` when the registry could not be reached or the spec/Secrets are wrong.
    pub registry_result: Result<ObjectCounts, Error>,
    /// The online store's check (`Ok(false)` = none configured).
    pub online_result: Result<bool, Error>,
    /// What rolling out the store's children found (`Err`: the rollout failed).
    pub workloads: Result<Workloads, Error>,
}

/// The store's rolled-out children, as the API server returned them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workloads {
    /// The image of the servers and Jobs.
    pub image: Option<String>,
    /// One entry per server the spec asks for.
    pub servers: Vec<ServerState>,
    /// Objects not applied because the cluster does not serve their API.
    pub unsupported: Vec<String>,
    /// How many objects were applied.
    pub applied: usize,
}

/// One server Deployment, from its own status.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    pub kind: ServerKind,
    pub status: ServerStatus,
    /// Whether its pods serve: the Deployment controller observed the current
    /// generation, says `Available`, and at least one pod is available.
    pub available: bool,
    /// Why not, in the Deployment controller's words.
    pub message: String,
}

/// The condition type of a server.
pub fn server_condition(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::FeatureServer => FEATURE_SERVER_AVAILABLE,
        ServerKind::RegistryServer => REGISTRY_SERVER_AVAILABLE,
    }
}

/// A FeatureStore's status, the Event its readiness change deserves, and
/// whether to retry soon (a transient failure).
pub fn store(
    previous: &FeatureStoreStatus,
    c: &Connected,
    generation: Option<i64>,
    now: &Time,
) -> (FeatureStoreStatus, Option<Notice>, bool) {
    let mut wanted = Vec::new();
    // The first failure decides Ready's reason; later checks still report their own condition.
    let mut failure: Option<(&'static str, String, String)> = None;
    let mut retry = false;
    match &c.registry_result {
        Err(e) => {
            wanted.push(Cond::failed(REGISTRY_READY, e.label(), e.to_string()));
            failure = Some((e.label(), e.to_string(), e.to_string()));
            retry |= e.is_transient();
        }
        Ok(_) => {
            wanted.push(Cond::ok(
                REGISTRY_READY,
                "Connected",
                "registry tables and project exist",
            ));
            wanted.push(match &c.online_result {
                Ok(true) => Cond::ok(
                    ONLINE_STORE_READY,
                    "Reachable",
                    format!("{} online store answers", c.online_kind.as_deref().unwrap_or("the")),
                ),
                Ok(false) => Cond::ok(ONLINE_STORE_READY, "NotConfigured", "no online store is configured"),
                Err(e) => Cond::failed(ONLINE_STORE_READY, e.label(), e.to_string()),
            });
            if let Err(e) = &c.online_result {
                failure = Some((
                    "OnlineStoreUnavailable",
                    "the online store does not answer".into(),
                    e.to_string(),
                ));
                retry = true;
            }
        }
    }
    let mut drop_types: Vec<&'static str> = Vec::new();
    match &c.workloads {
        Err(e) => {
            wanted.push(Cond::failed(WORKLOADS_APPLIED, e.label(), e.to_string()));
            retry |= e.is_transient();
            if failure.is_none() {
                failure = Some((e.label(), e.to_string(), e.to_string()));
            }
        }
        Ok(w) => {
            wanted.push(if w.unsupported.is_empty() {
                Cond::ok(WORKLOADS_APPLIED, "Applied", format!("{} objects applied", w.applied))
            } else {
                // The rest of the store works: this is said, not failed.
                Cond::failed(WORKLOADS_APPLIED, "APIUnavailable", w.unsupported.join("; "))
            });
            for kind in ServerKind::ALL {
                let type_ = server_condition(kind);
                match w.servers.iter().find(|s| s.kind == kind) {
                    None => drop_types.push(type_),
                    Some(s) if s.available => wanted.push(Cond::ok(type_, "Available", s.message.clone())),
                    Some(s) => {
                        wanted.push(Cond::failed(type_, "Unavailable", s.message.clone()));
                        if failure.is_none() {
                            let reason = match kind {
                                ServerKind::FeatureServer => "FeatureServerUnavailable",
                                ServerKind::RegistryServer => "RegistryServerUnavailable",
                            };
                            failure = Some((
                                reason,
                                format!("{}: {}", kind.component(), s.message),
                                s.message.clone(),
                            ));
                        }
                    }
                }
            }
        }
    }
    wanted.push(match &failure {
        None => Cond::ok(READY, "Ready", ready_message(c)),
        Some((reason, message, _)) => Cond::failed(READY, reason, message.clone()),
    });
    let mut conditions = conditions::merge(&previous.conditions, &wanted, generation, now);
    conditions.retain(|x| !drop_types.contains(&x.type_.as_str()));
    let workloads = c.workloads.as_ref().ok();
    let server =
        |kind: ServerKind| workloads.and_then(|w| w.servers.iter().find(|s| s.kind == kind).map(|s| s.status.clone()));
    let status = FeatureStoreStatus {
        conditions,
        observed_generation: generation,
        registry: c.registry.clone().or_else(|| previous.registry.clone()),
        online_store: c.online_kind.clone().or_else(|| previous.online_store.clone()),
        objects: c.registry_result.as_ref().ok().copied().or(previous.objects),
        image: match workloads {
            Some(w) => w.image.clone(),
            None => previous.image.clone(),
        },
        feature_server: match workloads {
            Some(_) => server(ServerKind::FeatureServer),
            None => previous.feature_server.clone(),
        },
        registry_server: match workloads {
            Some(_) => server(ServerKind::RegistryServer),
            None => previous.registry_server.clone(),
        },
    };
    let ready = |conds: &[Condition]| {
        conds
            .iter()
            .find(|x| x.type_ == READY)
            .map(|x| (x.status.clone(), x.reason.clone()))
    };
    let notice = (ready(&previous.conditions) != ready(&status.conditions)).then(|| match failure {
        Some((reason, _, detail)) => Notice {
            warning: true,
            reason: reason.into(),
            message: detail,
        },
        None => Notice {
            warning: false,
            reason: "Ready".into(),
            message: ready_message(c),
        },
    });
    (status, notice, retry)
}

fn ready_message(c: &Connected) -> String {
    let servers = c.workloads.as_ref().map(|w| w.servers.len()).unwrap_or(0);
    match servers {
        0 => "registry and online store are reachable".into(),
        _ => "registry and online store are reachable and the servers are available".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn written(outcome: ApplyOutcome, tables: Option<Result<(), String>>) -> Written {
        Written {
            kind: Kind::FeatureView,
            feast_name: "driver_hourly_stats".into(),
            project: "driver_stats".into(),
            outcome,
            tables,
            feature_count: Some(10),
            last_materialized: None,
        }
    }

    #[test]
    fn a_first_write_is_ready_with_an_applied_event() {
        let (s, n) = object_written(
            &ObjectStatus::default(),
            &written(ApplyOutcome::Created, Some(Ok(()))),
            Some(1),
            &t("2026-01-01T00:00:00Z"),
        );
        assert!(conditions::is_true(&s.conditions, READY));
        assert!(conditions::is_true(&s.conditions, TABLES_PROVISIONED));
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(s.feature_count, Some(10));
        assert_eq!(s.project.as_deref(), Some("driver_stats"));
        let n = n.unwrap();
        assert_eq!((n.reason.as_str(), n.warning), ("Applied", false));
        assert_eq!(n.message, "FeatureView driver_hourly_stats created");
    }

    #[test]
    fn an_update_without_a_spec_change_is_drift_and_in_sync_says_nothing() {
        let now = t("2026-01-01T00:00:00Z");
        let (synced, _) = object_written(
            &ObjectStatus::default(),
            &written(ApplyOutcome::Created, None),
            Some(3),
            &now,
        );
        let (again, n) = object_written(&synced, &written(ApplyOutcome::Unchanged, None), Some(3), &now);
        assert_eq!(again, synced, "an unchanged object gets an identical status");
        assert!(n.is_none());
        let (_, n) = object_written(&synced, &written(ApplyOutcome::Updated, None), Some(3), &now);
        assert_eq!(n.unwrap().reason, "DriftCorrected");
        // A new generation is the user's change, not drift.
        let (_, n) = object_written(&synced, &written(ApplyOutcome::Updated, None), Some(4), &now);
        assert_eq!(n.unwrap().reason, "Applied");
    }

    #[test]
    fn a_table_failure_is_not_ready() {
        let (s, _) = object_written(
            &ObjectStatus::default(),
            &written(ApplyOutcome::Created, Some(Err("disk full".into()))),
            Some(1),
            &t("2026-01-01T00:00:00Z"),
        );
        assert!(!conditions::is_true(&s.conditions, READY));
        let ready = s.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.reason.as_str(), ready.message.as_str()),
            ("OnlineStoreUnavailable", "disk full")
        );
    }

    #[test]
    fn failures_warn_once_per_reason_and_keep_what_was_known() {
        let now = t("2026-01-01T00:00:00Z");
        let (ok, _) = object_written(
            &ObjectStatus::default(),
            &written(ApplyOutcome::Created, None),
            Some(1),
            &now,
        );
        let err = Error::Reference {
            kind: Kind::Entity,
            name: "rider".into(),
            message: "spec.entities[1]: no Entity named \"rider\"".into(),
        };
        let (failed, n) = object_failed(&ok, &err, Some(2), &now);
        assert_eq!(
            failed.project, ok.project,
            "the project written before is kept for cleanup"
        );
        assert_eq!(failed.observed_generation, Some(2));
        let ready = failed.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "EntityNotFound")
        );
        let n = n.unwrap();
        assert!(n.warning && n.reason == "EntityNotFound" && n.message.contains("rider"));
        let (_, again) = object_failed(&failed, &err, Some(2), &now);
        assert!(again.is_none(), "the same reason again records no second event");
        let (_, waiting) = object_failed(&failed, &Error::StoreNotReady("bench".into()), Some(2), &now);
        let waiting = waiting.unwrap();
        assert!(!waiting.warning, "waiting for the store is expected, not a warning");
        assert_eq!(waiting.reason, "StoreNotReady");
    }

    fn connected(registry: Result<ObjectCounts, Error>, online: Result<bool, Error>) -> Connected {
        Connected {
            registry: Some("postgres://root:***@db:5432/reg".into()),
            online_kind: Some("redis".into()),
            registry_result: registry,
            online_result: online,
            workloads: Ok(Workloads::default()),
        }
    }

    #[test]
    fn store_conditions_follow_registry_and_online_store() {
        let now = t("2026-01-01T00:00:00Z");
        let counts = ObjectCounts {
            feature_views: 3,
            ..Default::default()
        };
        let (s, n, retry) = store(
            &FeatureStoreStatus::default(),
            &connected(Ok(counts), Ok(true)),
            Some(1),
            &now,
        );
        for c in [REGISTRY_READY, ONLINE_STORE_READY, READY] {
            assert!(conditions::is_true(&s.conditions, c), "{c}");
        }
        assert_eq!(s.objects.unwrap().feature_views, 3);
        assert!(!retry);
        assert_eq!(n.unwrap().reason, "Ready");
        // Unchanged: no event.
        let (_, n, _) = store(&s, &connected(Ok(counts), Ok(true)), Some(1), &now);
        assert!(n.is_none());
        // The registry goes away: not ready, counts kept, retried, one warning.
        let down = Error::Registry(larder_registry::RegistryError::Config("connection refused".into()));
        let (d, n, retry) = store(&s, &connected(Err(down), Ok(true)), Some(1), &now);
        assert!(!conditions::is_true(&d.conditions, REGISTRY_READY));
        assert!(!conditions::is_true(&d.conditions, READY));
        assert_eq!(d.objects, s.objects);
        assert!(retry);
        assert_eq!(n.unwrap().reason, "RegistryUnavailable");
        // The online store fails alone.
        let offline = Error::Online(larder_online::OnlineError::Config("timeout".into()));
        let (o, _, retry) = store(&s, &connected(Ok(counts), Err(offline)), Some(1), &now);
        assert!(conditions::is_true(&o.conditions, REGISTRY_READY));
        assert!(!conditions::is_true(&o.conditions, ONLINE_STORE_READY));
        assert!(!conditions::is_true(&o.conditions, READY));
        assert!(retry);
        // A spec error is not retried on a timer.
        let (_, _, retry) = store(
            &s,
            &connected(Err(Error::InvalidSpec("x".into())), Ok(true)),
            Some(2),
            &now,
        );
        assert!(!retry);
    }

    fn server(kind: ServerKind, available: bool) -> ServerState {
        ServerState {
            kind,
            status: ServerStatus {
                deployment: kind.name("drivers"),
                replicas: Some(2),
                available_replicas: Some(if available { 2 } else { 0 }),
                ..Default::default()
            },
            available,
            message: if available {
                "2/2 replicas available".into()
            } else {
                "0/2 replicas available: Deployment does not have minimum availability.".into()
            },
        }
    }

    #[test]
    fn servers_decide_ready_and_missing_apis_are_said_not_failed() {
        let now = t("2026-01-01T00:00:00Z");
        let mut c = connected(Ok(ObjectCounts::default()), Ok(true));
        c.workloads = Ok(Workloads {
            image: Some("ghcr.io/larder-dev/larder:0.1.0".into()),
            servers: vec![server(ServerKind::FeatureServer, false)],
            unsupported: vec![],
            applied: 4,
        });
        let (s, n, _) = store(&FeatureStoreStatus::default(), &c, Some(1), &now);
        assert!(!conditions::is_true(&s.conditions, FEATURE_SERVER_AVAILABLE));
        let ready = s.conditions.iter().find(|x| x.type_ == READY).unwrap();
        assert_eq!(ready.reason, "FeatureServerUnavailable");
        assert!(ready.message.contains("0/2"), "{}", ready.message);
        assert!(n.unwrap().warning);
        assert!(!s.conditions.iter().any(|x| x.type_ == REGISTRY_SERVER_AVAILABLE));
        assert_eq!(s.feature_server.as_ref().unwrap().deployment, "drivers-feature-server");
        assert_eq!(s.image.as_deref(), Some("ghcr.io/larder-dev/larder:0.1.0"));

        // Available, with autoscaling/v2 missing: Ready, and the condition says what was left out.
        c.workloads = Ok(Workloads {
            image: Some("img".into()),
            servers: vec![
                server(ServerKind::FeatureServer, true),
                server(ServerKind::RegistryServer, true),
            ],
            unsupported: vec![
                "autoscaling/v2 is not served: HorizontalPodAutoscaler drivers-feature-server not applied".into(),
            ],
            applied: 6,
        });
        let (s2, n, _) = store(&s, &c, Some(1), &now);
        for x in [FEATURE_SERVER_AVAILABLE, REGISTRY_SERVER_AVAILABLE, READY] {
            assert!(conditions::is_true(&s2.conditions, x), "{x}");
        }
        let applied = s2.conditions.iter().find(|x| x.type_ == WORKLOADS_APPLIED).unwrap();
        assert_eq!(
            (applied.status.as_str(), applied.reason.as_str()),
            ("False", "APIUnavailable")
        );
        assert_eq!(n.unwrap().reason, "Ready");

        // The registry server is switched off: its condition and status go.
        c.workloads = Ok(Workloads {
            image: Some("img".into()),
            servers: vec![server(ServerKind::FeatureServer, true)],
            unsupported: vec![],
            applied: 4,
        });
        let (s3, _, _) = store(&s2, &c, Some(2), &now);
        assert!(!s3.conditions.iter().any(|x| x.type_ == REGISTRY_SERVER_AVAILABLE));
        assert!(s3.registry_server.is_none());
        // A failed rollout keeps what was known and is retried when transient.
        c.workloads = Err(Error::InvalidSpec("spec.featureServer needs spec.onlineStore".into()));
        let (s4, _, retry) = store(&s3, &c, Some(3), &now);
        assert!(!conditions::is_true(&s4.conditions, READY));
        assert_eq!(s4.feature_server, s3.feature_server);
        assert!(!retry);
    }
}
