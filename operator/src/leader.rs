//! Leader election through a `coordination.k8s.io/v1` Lease: several
//! replicas run, one reconciles. A replica takes the Lease when it is free
//! or expired, renews it well within its duration, and stops leading (the
//! process exits and restarts as a follower) when a renewal cannot be made
//! in time. Every write is a replace with the Lease's resourceVersion, so
//! two replicas can never both win the same round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

#[derive(Clone)]
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaderElection {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        LeaderElection {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        let held_by_us = previous.and_then(|p| p.holder_identity.as_deref()) == Some(self.identity.as_str());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: if held_by_us {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(
                previous.and_then(|p| p.lease_transitions).unwrap_or(0)
                    + if held_by_us || previous.is_none() { 0 } else { 1 },
            ),
            ..Default::default()
        }
    }

    /// One round: take or renew the Lease. `Ok(true)` when this replica
    /// holds it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let holder = current.holder_identity.as_deref().unwrap_or("");
        if holder != self.identity && !holder.is_empty() && !expired(&current) {
            return Ok(false);
        }
        let mut next = lease;
        next.spec = Some(self.spec(Some(&current)));
        match self.api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Wait until this replica leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = self.identity, lease = self.name, "leading");
                    return;
                }
                Ok(false) => tracing::debug!("another replica leads"),
                Err(e) => tracing::warn!(error = %e, "cannot read the leader lease"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Keep renewing; returns when the Lease is lost or cannot be renewed
    /// before it would expire.
    pub async fn hold(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(identity = self.identity, "another replica took the leader lease");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the leader lease");
                    if last_renewal.elapsed() >= self.duration * 2 / 3 {
                        tracing::error!("leader lease about to expire: stepping down");
                        return;
                    }
                }
            }
        }
    }

    /// Give the Lease up (on shutdown) so another replica takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.identity.as_str())
        {
            if let Some(s) = lease.spec.as_mut() {
                s.holder_identity = None;
            }
            if let Err(e) = self.api.replace(&self.name, &PostParams::default(), &lease).await {
                tracing::warn!(error = %e, "cannot release the leader lease");
            }
        }
    }
}

fn expired(spec: &LeaseSpec) -> bool {
    let (Some(renew), Some(secs)) = (spec.renew_time.as_ref(), spec.lease_duration_seconds) else {
        return true;
    };
    let deadline = renew.0.checked_add(jiff::SignedDuration::from_secs(secs as i64));
    deadline.is_ok_and(|d| d < jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expiry() {
        let fresh = LeaseSpec {
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        assert!(!expired(&fresh));
        let old = LeaseSpec {
            renew_time: Some(MicroTime(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(16))),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        assert!(expired(&old));
        assert!(expired(&LeaseSpec::default()));
    }
}
