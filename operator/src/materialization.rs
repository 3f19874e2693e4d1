//! Materialization of a FeatureView as Kubernetes Jobs, scheduled by the
//! operator. Per view: find its latest run from its Jobs (they are the
//! truth: a run in flight blocks the next one, so runs never overlap);
//! when every shard's Job has succeeded, record the run's interval in the
//! registry; when one failed, say why and leave the interval where it was;
//! then, when a run is due (the schedule, or the
//! `larder.dev/materialize-requested-at` annotation), start one Job per
//! shard over `[end of the last interval (else end - ttl), due time)`.
//!
//! Why not a CronJob: the interval is recorded only when every shard
//! succeeded, each run shows in the view's status, and it works on every
//! Kubernetes version (`batch/v1` CronJob needs 1.21).

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use larder_deploy::jobs::{self, END_ANNOTATION, RUN_LABEL, SHARD_LABEL, SHARDS_ANNOTATION, START_ANNOTATION};
use larder_deploy::schedule::Schedule;
use larder_model::crd::{MaterializationRun, MaterializationStatus};
use larder_model::feast::{FeastKind, FeastObject};
use larder_model::manifest::{FeatureStoreSpec, FeatureViewSpec};

use crate::Error;
use crate::backend::Backend;
use crate::conditions::{Cond, MATERIALIZED};
use crate::context::Context;
use crate::status::Notice;

/// Set it (to any new value, conventionally a timestamp) to run now.
pub const REQUEST_ANNOTATION: &str = "larder.dev/materialize-requested-at";
/// How often a run in flight is looked at when no Job event arrives.
const POLL_RUNNING: Duration = Duration::from_secs(30);

/// A Job's outcome, as the Job controller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Running,
    Succeeded,
    Failed { reason: String, message: String },
}

/// A materialization Job, read back from its labels, annotations and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedJob {
    pub name: String,
    pub run: String,
    pub shard: u32,
    pub shards: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub phase: Phase,
}

/// Read a Job the operator created; `None` for anything else.
pub fn observe(job: &Job) -> Option<ObservedJob> {
    let labels = job.metadata.labels.as_ref()?;
    let ann = job.metadata.annotations.as_ref()?;
    let time = |k: &str| {
        ann.get(k)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let holds = |t: &str| conditions.iter().find(|c| c.type_ == t && c.status == "True");
    let phase = if let Some(c) = holds("Failed") {
        Phase::Failed {
            reason: c
                .reason
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "JobFailed".into()),
            message: c.message.clone().unwrap_or_default(),
        }
    } else if holds("Complete").is_some() {
        Phase::Succeeded
    } else {
        Phase::Running
    };
    Some(ObservedJob {
        name: job.name_any(),
        run: labels.get(RUN_LABEL)?.clone(),
        shard: labels.get(SHARD_LABEL)?.parse().ok()?,
        shards: ann.get(SHARDS_ANNOTATION)?.parse().ok()?,
        start: time(START_ANNOTATION)?,
        end: time(END_ANNOTATION)?,
        phase,
    })
}

/// The Jobs of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub shards: u32,
    pub jobs: Vec<ObservedJob>,
}

impl Run {
    /// In flight until every shard's Job has finished; failed if any failed.
    pub fn phase(&self) -> Phase {
        if self.jobs.iter().any(|j| j.phase == Phase::Running) {
            return Phase::Running;
        }
        if let Some(Phase::Failed { reason, message }) = self
            .jobs
            .iter()
            .map(|j| j.phase.clone())
            .find(|p| *p != Phase::Succeeded)
        {
            let job = self.jobs.iter().find(|j| matches!(j.phase, Phase::Failed { .. }));
            let name = job.map(|j| j.name.as_str()).unwrap_or_default();
            return Phase::Failed {
                reason,
                message: format!("Job {name}: {message}"),
            };
        }
        let mut shards: Vec<u32> = self.jobs.iter().map(|j| j.shard).collect();
        shards.sort_unstable();
        shards.dedup();
        if shards.len() as u32 == self.shards {
            Phase::Succeeded
        } else {
            Phase::Failed {
                reason: "JobsMissing".into(),
                message: format!(
                    "only {} of the run's {} Jobs exist (deleted before the operator saw them finish)",
                    shards.len(),
                    self.shards
                ),
            }
        }
    }

    pub fn to_status(&self) -> MaterializationRun {
        let (outcome, reason, message) = match self.phase() {
            Phase::Running => ("Running", None, None),
            Phase::Succeeded => ("Succeeded", None, None),
            Phase::Failed { reason, message } => ("Failed", Some(reason), Some(message)),
        };
        let mut jobs: Vec<&ObservedJob> = self.jobs.iter().collect();
        jobs.sort_by_key(|j| j.shard);
        MaterializationRun {
            id: self.id.clone(),
            start: jobs::rfc3339(self.start),
            end: jobs::rfc3339(self.end),
            shards: self.shards,
            jobs: jobs.iter().map(|j| j.name.clone()).collect(),
            outcome: outcome.into(),
            reason,
            message,
        }
    }
}

/// The run with the latest window among the view's Jobs.
pub fn latest_run(jobs: Vec<ObservedJob>) -> Option<Run> {
    let latest = jobs.iter().max_by_key(|j| (j.end, j.start))?.run.clone();
    let mine: Vec<ObservedJob> = jobs.into_iter().filter(|j| j.run == latest).collect();
    let first = mine.first()?;
    Some(Run {
        id: latest.clone(),
        start: first.start,
        end: first.end,
        shards: first.shards,
        jobs: mine,
    })
}

/// Why a run starts now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule's latest due time since the last one.
    Scheduled(DateTime<Utc>),
    /// The annotation's new value; the window ends at its time (or now).
    Requested { value: String, end: DateTime<Utc> },
}

impl Trigger {
    pub fn end(&self) -> DateTime<Utc> {
        match self {
            Trigger::Scheduled(t) => *t,
            Trigger::Requested { end, .. } => *end,
        }
    }
}

/// Whether a run is due: an unhandled request first, then the schedule.
pub fn due(
    now: DateTime<Utc>,
    schedule: Option<&Schedule>,
    suspend: bool,
    since: DateTime<Utc>,
    request: Option<&str>,
    handled_request: Option<&str>,
) -> Option<Trigger> {
    if let Some(value) = request.filter(|v| Some(*v) != handled_request && !v.trim().is_empty()) {
        // A timestamp ends the window there (never in the future); any other value means now.
        let end = DateTime::parse_from_rfc3339(value.trim())
            .map(|t| t.with_timezone(&Utc).min(now))
            .unwrap_or(now);
        return Some(Trigger::Requested {
            value: value.to_string(),
            end,
        });
    }
    if suspend {
        return None;
    }
    let due = schedule?.latest_due(to_jiff(since)?, to_jiff(now)?)?;
    Some(Trigger::Scheduled(from_jiff(due)?))
}

fn to_jiff(t: DateTime<Utc>) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32).ok()
}

fn from_jiff(t: jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

fn parse_time(s: Option<&String>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?).ok().map(|t| t.with_timezone(&Utc))
}

/// What a view's materialization step decided, for its status.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status: Option<MaterializationStatus>,
    pub condition: Option<Cond>,
    pub notice: Option<Notice>,
    /// Come back by then (a due time, or a run to check on).
    pub requeue: Option<Duration>,
}

/// The inputs of one view's step.
pub struct ViewInput<'a> {
    pub view_resource: &'a str,
    pub view_uid: Option<&'a str>,
    pub namespace: &'a str,
    pub created: Option<DateTime<Utc>>,
    pub request: Option<&'a str>,
    pub feast_view: &'a str,
    pub view_spec: &'a FeatureViewSpec,
    pub store_name: &'a str,
    pub store_spec: &'a FeatureStoreSpec,
    pub previous: Option<&'a MaterializationStatus>,
}

/// Check on the view's latest run, record it when done, start the next when due.
pub async fn step(ctx: &Context, backend: &Backend, v: ViewInput<'_>) -> Result<Outcome, Error> {
    let settings = v.store_spec.materialization.as_deref();
    let view_settings = v.view_spec.materialization.as_ref();
    let expr = view_settings
        .and_then(|m| m.schedule.clone())
        .or_else(|| settings.and_then(|s| s.schedule.clone()));
    let previous_running = v
        .previous
        .and_then(|p| p.last_run.as_ref())
        .is_some_and(|r| r.outcome == "Running");
    let handled = v.previous.and_then(|p| p.handled_request.as_deref());
    let pending_request = v.request.is_some_and(|r| Some(r) != handled);
    if expr.is_none() && !pending_request && !previous_running {
        // Nothing asked for: keep what earlier runs reported.
        return Ok(Outcome {
            status: v.previous.cloned().map(|p| MaterializationStatus {
                schedule: None,
                next_run_at: None,
                ..p
            }),
            ..Default::default()
        });
    }
    let tz = settings.and_then(|s| s.time_zone.as_deref());
    let schedule = match expr.as_deref().map(|e| Schedule::parse(e, tz)).transpose() {
        Ok(s) => s,
        Err(e) => {
            return Ok(Outcome {
                status: v.previous.cloned(),
                condition: Some(Cond::failed(
                    MATERIALIZED,
                    "InvalidSchedule",
                    format!("materialization schedule {:?}: {e}", expr.unwrap_or_default()),
                )),
                ..Default::default()
            });
        }
    };
    let suspend = settings.is_some_and(|s| s.suspend);
    let shards = view_settings
        .and_then(|m| m.shards)
        .or_else(|| settings.and_then(|s| s.shards))
        .unwrap_or(1);
    let project = &backend.config.project;
    let now = Utc::now();
    let mut status = v.previous.cloned().unwrap_or_default();
    status.schedule = expr.clone();
    let mut out = Outcome::default();

    // 1. The latest run, from its Jobs.
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), v.namespace);
    let selector = format!(
        "{}={},app.kubernetes.io/component={}",
        jobs::VIEW_LABEL,
        v.view_resource,
        jobs::COMPONENT
    );
    let observed: Vec<ObservedJob> = jobs_api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .filter_map(observe)
        .collect();
    let mut view = match backend
        .registry
        .get(project, FeastKind::FeatureView, v.feast_view)
        .await?
    {
        Some(FeastObject::FeatureView(view)) => view,
        _ => {
            return Err(Error::StoreNotReady(format!(
                "feature view {} is not in the registry yet",
                v.feast_view
            )));
        }
    };
    let recorded_end = |view: &larder_protos::feast::core::FeatureView| {
        view.meta.as_ref().and_then(|m| {
            m.materialization_intervals
                .iter()
                .filter_map(|i| i.end_time)
                .map(|t| (t.seconds, t.nanos))
                .max()
        })
    };
    if let Some(run) = latest_run(observed) {
        let was = status
            .last_run
            .as_ref()
            .filter(|r| r.id == run.id)
            .map(|r| r.outcome.clone());
        match run.phase() {
            Phase::Running => {
                status.last_run = Some(run.to_status());
                out.requeue = Some(POLL_RUNNING);
            }
            Phase::Succeeded => {
                let end = (run.end.timestamp(), run.end.timestamp_subsec_nanos() as i32);
                if recorded_end(&view).is_none_or(|r| r < end) {
                    backend
                        .registry
                        .apply_materialization(project, v.feast_view, timestamp(run.start), timestamp(run.end))
                        .await?;
                    ctx.metrics.registry_writes.with_label_values(&["FeatureView"]).inc();
                    // The next run starts where this one ended: read the view with its new interval.
                    if let Some(FeastObject::FeatureView(updated)) = backend
                        .registry
                        .get(project, FeastKind::FeatureView, v.feast_view)
                        .await?
                    {
                        view = updated;
                    }
                }
                let message = format!(
                    "materialized [{}, {}) with {} Job(s)",
                    jobs::rfc3339(run.start),
                    jobs::rfc3339(run.end),
                    run.shards
                );
                if was.as_deref() != Some("Succeeded") {
                    out.notice = Some(Notice {
                        warning: false,
                        reason: "Materialized".into(),
                        message: message.clone(),
                    });
                }
                out.condition = Some(Cond::ok(MATERIALIZED, "Succeeded", message));
                status.last_run = Some(run.to_status());
            }
            Phase::Failed { reason, message } => {
                let message = format!(
                    "run [{}, {}) failed, interval not recorded; next try at the next due time: {message}",
                    jobs::rfc3339(run.start),
                    jobs::rfc3339(run.end)
                );
                if was.as_deref() != Some("Failed") {
                    out.notice = Some(Notice {
                        warning: true,
                        reason: reason.clone(),
                        message: message.clone(),
                    });
                }
                out.condition = Some(Cond::failed(MATERIALIZED, &reason, message));
                status.last_run = Some(run.to_status());
            }
        }
        if run.phase() == Phase::Running {
            status.next_run_at = next_run(schedule.as_ref(), suspend, now);
            out.status = Some(status);
            return Ok(out);
        }
    }

    // 2. The next run, when due.
    let since = parse_time(status.last_schedule_time.as_ref())
        .or(v.created)
        .unwrap_or(now);
    if let Some(trigger) = due(now, schedule.as_ref(), suspend, since, v.request, handled) {
        let end = trigger.end();
        let end_ns = end.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let start_ns = larder_model::feast::incremental_start(&view, end_ns);
        if start_ns < end_ns {
            let start = DateTime::from_timestamp_nanos(start_ns);
            let store = larder_deploy::Store {
                name: v.store_name,
                namespace: v.namespace,
                uid: None,
                spec: v.store_spec,
            };
            let rendered = larder_deploy::config::render(store).map_err(|e| Error::InvalidSpec(e.to_string()))?;
            let run = jobs::Run {
                view_resource: v.view_resource,
                view_uid: v.view_uid,
                feast_view: v.feast_view,
                start,
                end,
                shards,
            };
            let built = jobs::build(store, &ctx.settings.defaults, &rendered, settings, &run)
                .map_err(|e| Error::InvalidSpec(e.to_string()))?;
            for job in &built {
                match jobs_api.create(&PostParams::default(), job).await {
                    Ok(_) => {}
                    // Created by an earlier pass that did not get to write its status.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            tracing::info!(view = v.feast_view, run = run.id(), shards, start = %jobs::rfc3339(start), end = %jobs::rfc3339(end), "materialization run started");
            out.notice = Some(Notice {
                warning: false,
                reason: "MaterializationStarted".into(),
                message: format!(
                    "materializing [{}, {}) with {shards} Job(s)",
                    jobs::rfc3339(start),
                    jobs::rfc3339(end)
                ),
            });
            status.last_run = Some(MaterializationRun {
                id: run.id(),
                start: jobs::rfc3339(start),
                end: jobs::rfc3339(end),
                shards,
                jobs: (0..shards).map(|i| run.job_name(i)).collect(),
                outcome: "Running".into(),
                reason: None,
                message: None,
            });
            out.requeue = Some(POLL_RUNNING);
        }
        match trigger {
            Trigger::Scheduled(t) => status.last_schedule_time = Some(jobs::rfc3339(t)),
            Trigger::Requested { value, .. } => status.handled_request = Some(value),
        }
    }
    status.next_run_at = next_run(schedule.as_ref(), suspend, now);
    if out.requeue.is_none()
        && let Some(next) = status.next_run_at.as_ref().and_then(|t| parse_time(Some(t)))
    {
        out.requeue = Some((next - now).to_std().unwrap_or_default() + Duration::from_millis(500));
    }
    out.status = Some(status);
    Ok(out)
}

fn next_run(schedule: Option<&Schedule>, suspend: bool, now: DateTime<Utc>) -> Option<String> {
    if suspend {
        return None;
    }
    let next = schedule?.next_after(to_jiff(now)?)?;
    from_jiff(next).map(jobs::rfc3339)
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, h, m, 0).unwrap()
    }

    fn job(run: &str, shard: u32, shards: u32, end_hour: u32, phase: Phase) -> ObservedJob {
        ObservedJob {
            name: format!("v-{run}-{shard}"),
            run: run.into(),
            shard,
            shards,
            start: t(end_hour - 1, 0),
            end: t(end_hour, 0),
            phase,
        }
    }

    #[test]
    fn a_run_is_in_flight_until_every_shard_finished() {
        let failed = Phase::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
        };
        let run = latest_run(vec![
            job("old", 0, 1, 1, Phase::Succeeded),
            job("new", 0, 2, 2, failed.clone()),
            job("new", 1, 2, 2, Phase::Running),
        ])
        .unwrap();
        assert_eq!(run.id, "new");
        assert_eq!(
            run.phase(),
            Phase::Running,
            "one shard still runs: no new run may start"
        );
        let run = latest_run(vec![job("new", 0, 2, 2, failed), job("new", 1, 2, 2, Phase::Succeeded)]).unwrap();
        let Phase::Failed { reason, message } = run.phase() else {
            panic!("not failed")
        };
        assert_eq!(reason, "BackoffLimitExceeded");
        assert!(message.starts_with("Job v-new-0: Job has reached"), "{message}");
        let done = latest_run(vec![
            job("r", 1, 2, 3, Phase::Succeeded),
            job("r", 0, 2, 3, Phase::Succeeded),
        ])
        .unwrap();
        assert_eq!(done.phase(), Phase::Succeeded);
        assert_eq!(done.to_status().jobs, ["v-r-0", "v-r-1"]);
        let missing = latest_run(vec![job("r", 1, 3, 3, Phase::Succeeded)]).unwrap();
        assert!(matches!(missing.phase(), Phase::Failed { reason, .. } if reason == "JobsMissing"));
    }

    #[test]
    fn requests_come_first_then_the_schedule() {
        let hourly = Schedule::parse("0 * * * *", None).unwrap();
        let now = t(5, 30);
        assert_eq!(
            due(now, Some(&hourly), false, t(3, 0), None, None),
            Some(Trigger::Scheduled(t(5, 0))),
            "after downtime: only the latest missed run"
        );
        assert_eq!(
            due(now, Some(&hourly), false, t(5, 0), None, None),
            None,
            "already started for 05:00"
        );
        assert_eq!(due(now, Some(&hourly), true, t(3, 0), None, None), None, "suspended");
        assert_eq!(
            due(now, Some(&hourly), true, t(3, 0), Some("2024-01-01T04:10:00Z"), None),
            Some(Trigger::Requested {
                value: "2024-01-01T04:10:00Z".into(),
                end: t(4, 10)
            }),
            "an on-demand run works while suspended, and ends at the requested time"
        );
        assert_eq!(
            due(now, None, false, t(3, 0), Some("2099-01-01T00:00:00Z"), None).map(|x| x.end()),
            Some(now),
            "never in the future"
        );
        assert_eq!(
            due(now, None, false, t(3, 0), Some("yes"), None).map(|x| x.end()),
            Some(now)
        );
        assert_eq!(
            due(now, None, false, t(3, 0), Some("yes"), Some("yes")),
            None,
            "handled already"
        );
    }
}
