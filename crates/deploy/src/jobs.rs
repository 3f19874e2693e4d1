//! Materialization runs as `batch/v1` Jobs: one Job per shard, each running
//! `larder materialize START END --views VIEW --shard I/N` with the store's
//! rendered config. The operator records the run's interval only when
//! every shard's Job has succeeded; the Jobs carry what it needs to find
//! them again (labels) and to record the run (annotations).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use larder_model::workloads::MaterializationSpec;

use crate::config::{self, Rendered};
use crate::servers::{base_volumes, container_security_context, pod_security_context};
use crate::{BuildError, Defaults, Result, Store, hash, labels, owner};

pub const COMPONENT: &str = "materialization";
/// Label: the FeatureView resource a Job materializes.
pub const VIEW_LABEL: &str = "larder.dev/view";
/// Label: the run a Job belongs to (all shards of a run share it).
pub const RUN_LABEL: &str = "larder.dev/run";
/// Label: the Job's shard index.
pub const SHARD_LABEL: &str = "larder.dev/shard";
/// Annotations: the run's window (RFC 3339), its shard count and the Feast view name.
pub const START_ANNOTATION: &str = "larder.dev/window-start";
pub const END_ANNOTATION: &str = "larder.dev/window-end";
pub const SHARDS_ANNOTATION: &str = "larder.dev/shards";
pub const FEAST_VIEW_ANNOTATION: &str = "larder.dev/feature-view";

/// One materialization run of one view.
#[derive(Debug, Clone, PartialEq)]
pub struct Run<'a> {
    /// The FeatureView resource (`metadata.name`) and its uid, the Jobs' owner.
    pub view_resource: &'a str,
    pub view_uid: Option<&'a str>,
    /// The view's name in the registry.
    pub feast_view: &'a str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub shards: u32,
}

impl Run<'_> {
    /// Stable id of the run: the same view and window always give the same
    /// id, so a run the operator already started is found, never doubled.
    pub fn id(&self) -> String {
        let key = format!("{}|{}|{}", self.view_resource, rfc3339(self.start), rfc3339(self.end));
        hash::short_hex(key.as_bytes(), 10)
    }

    /// Name of shard `index`'s Job: `<view>-<run id>-<index>`, the view
    /// part cut so the name fits a label value (63).
    pub fn job_name(&self, index: u32) -> String {
        let suffix = format!("-{}-{index}", self.id());
        let room = 63 - suffix.len();
        let base: String = self.view_resource.chars().take(room).collect();
        format!("{}{suffix}", base.trim_end_matches(['-', '.']))
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The run's Jobs, one per shard.
pub fn build(
    store: Store<'_>,
    defaults: &Defaults,
    rendered: &Rendered,
    settings: Option<&MaterializationSpec>,
    run: &Run<'_>,
) -> Result<Vec<Job>> {
    if !rendered.has_online_store {
        return Err(BuildError::InvalidSpec(
            "materialization needs spec.onlineStore: it writes features there".into(),
        ));
    }
    if run.shards == 0 || run.shards > 256 {
        return Err(BuildError::InvalidSpec(format!(
            "materialization shards must be 1-256, not {}",
            run.shards
        )));
    }
    if run.end <= run.start {
        return Err(BuildError::InvalidSpec(format!(
            "materialization window [{}, {}) is empty",
            rfc3339(run.start),
            rfc3339(run.end)
        )));
    }
    let defaults_spec = MaterializationSpec::default();
    let settings = settings.unwrap_or(&defaults_spec);
    Ok((0..run.shards)
        .map(|i| job(store, defaults, rendered, settings, run, i))
        .collect())
}

fn job(
    store: Store<'_>,
    defaults: &Defaults,
    rendered: &Rendered,
    settings: &MaterializationSpec,
    run: &Run<'_>,
    index: u32,
) -> Job {
    let mut job_labels = labels(store.name, COMPONENT);
    job_labels.insert(VIEW_LABEL.into(), run.view_resource.into());
    job_labels.insert(RUN_LABEL.into(), run.id());
    job_labels.insert(SHARD_LABEL.into(), index.to_string());
    let annotations = BTreeMap::from([
        (START_ANNOTATION.to_string(), rfc3339(run.start)),
        (END_ANNOTATION.to_string(), rfc3339(run.end)),
        (SHARDS_ANNOTATION.to_string(), run.shards.to_string()),
        (FEAST_VIEW_ANNOTATION.to_string(), run.feast_view.to_string()),
    ]);
    let image = store.spec.image.as_ref();
    let (mounts, volumes) = base_volumes(store.name);
    let mut env: Vec<EnvVar> = rendered.env.clone();
    env.push(EnvVar {
        name: "RUST_LOG".into(),
        value: Some("info".into()),
        ..Default::default()
    });
    Job {
        metadata: ObjectMeta {
            name: Some(run.job_name(index)),
            namespace: Some(store.namespace.into()),
            labels: Some(job_labels.clone()),
            annotations: Some(annotations),
            // Owned by the view: deleting the view deletes its runs.
            owner_references: run
                .view_uid
                .map(|uid| vec![owner(run.view_resource, uid, "FeatureView")]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(settings.backoff_limit.unwrap_or(2)),
            active_deadline_seconds: settings.active_deadline_seconds,
            ttl_seconds_after_finished: settings.ttl_seconds_after_finished,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    annotations: Some(BTreeMap::from([(
                        crate::CONFIG_HASH_ANNOTATION.to_string(),
                        rendered.hash.clone(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security_context()),
                    image_pull_secrets: image.map(|i| i.pull_secrets.clone()).filter(|s| !s.is_empty()),
                    containers: vec![Container {
                        name: "materialize".into(),
                        image: Some(defaults.image_for(store.spec)),
                        image_pull_policy: image.and_then(|i| i.pull_policy).map(|p| p.as_str().to_string()),
                        command: Some(vec!["larder".into()]),
                        args: Some(args(run, index)),
                        env: Some(env),
                        resources: settings.resources.clone(),
                        security_context: Some(container_security_context()),
                        volume_mounts: Some(mounts),
                        ..Default::default()
                    }],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `larder --config … materialize START END --views VIEW --shard I/N`.
pub fn args(run: &Run<'_>, index: u32) -> Vec<String> {
    vec![
        "--config".into(),
        config::path(),
        "materialize".into(),
        rfc3339(run.start),
        rfc3339(run.end),
        "--views".into(),
        run.feast_view.into(),
        "--shard".into(),
        format!("{index}/{}", run.shards),
    ]
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::servers::tests::store_spec;

    fn run(shards: u32) -> Run<'static> {
        Run {
            view_resource: "driver-hourly-stats",
            view_uid: Some("uid-1"),
            feast_view: "driver_hourly_stats",
            start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2024, 1, 1, 1, 0, 0).unwrap(),
            shards,
        }
    }

    fn jobs(shards: u32) -> Result<Vec<Job>> {
        let spec = store_spec(
            "project: drivers\nregistry: {sql: {urlSecretRef: {name: reg, key: url}}}\nonlineStore: {redis: {connectionStringSecretRef: {name: redis, key: conn}}}\nmaterialization: {backoffLimit: 0, activeDeadlineSeconds: 600}\n",
        );
        let store = Store {
            name: "drivers",
            namespace: "team-a",
            uid: Some("store-uid"),
            spec: &spec,
        };
        let rendered = config::render(store)?;
        build(
            store,
            &Defaults::default(),
            &rendered,
            spec.materialization.as_deref(),
            &run(shards),
        )
    }

    #[test]
    fn one_job_per_shard_with_its_command() {
        let jobs = jobs(3).unwrap();
        assert_eq!(jobs.len(), 3);
        for (i, job) in jobs.iter().enumerate() {
            let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            let c = &pod.containers[0];
            assert_eq!(c.command.as_deref(), Some(&["larder".to_string()][..]));
            let args = c.args.clone().unwrap();
            assert_eq!(
                args,
                [
                    "--config",
                    "/etc/larder/larder.yaml",
                    "materialize",
                    "2024-01-01T00:00:00Z",
                    "2024-01-01T01:00:00Z",
                    "--views",
                    "driver_hourly_stats",
                    "--shard",
                    &format!("{i}/3")
                ]
            );
            assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
            let labels = job.metadata.labels.as_ref().unwrap();
            assert_eq!(labels[SHARD_LABEL], i.to_string());
            assert_eq!(labels[RUN_LABEL], run(3).id());
            assert_eq!(job.metadata.owner_references.as_ref().unwrap()[0].kind, "FeatureView");
            assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(0));
            let env: Vec<&str> = c.env.as_ref().unwrap().iter().map(|e| e.name.as_str()).collect();
            assert!(env.contains(&config::REGISTRY_URL_ENV) && env.contains(&config::ONLINE_REDIS_ENV));
        }
        let names: std::collections::BTreeSet<_> = jobs.iter().map(|j| j.metadata.name.clone()).collect();
        assert_eq!(names.len(), 3, "names are distinct");
    }

    #[test]
    fn names_fit_and_runs_are_stable() {
        let long = "v".repeat(200);
        let r = Run {
            view_resource: &long,
            ..run(1)
        };
        assert!(r.job_name(255).len() <= 63, "{}", r.job_name(255));
        assert_eq!(run(1).id(), run(4).id(), "the id names the window, not the shard count");
        let later = Run {
            end: Utc.with_ymd_and_hms(2024, 1, 1, 2, 0, 0).unwrap(),
            ..run(1)
        };
        assert_ne!(run(1).id(), later.id());
    }

    #[test]
    fn bad_runs_are_refused() {
        assert_eq!(jobs(0).unwrap_err().label(), "InvalidSpec");
        let spec = store_spec("project: p\nregistry: {sql: {urlSecretRef: {name: reg, key: url}}}\n");
        let store = Store {
            name: "p",
            namespace: "n",
            uid: None,
            spec: &spec,
        };
        let rendered = config::render(store).unwrap();
        let err = build(store, &Defaults::default(), &rendered, None, &run(1)).unwrap_err();
        assert!(err.to_string().contains("onlineStore"), "{err}");
    }
}
