//! `authorization: kubernetes-rbac`: each decision is a SubjectAccessReview
//! on `larder.dev` resources in the store's namespace, so access is granted
//! with ordinary Roles and RoleBindings:
//!
//! | Feast action        | verb     | resource (`larder.dev`)        |
//! |---------------------|----------|--------------------------------|
//! | READ_ONLINE         | `get`    | `<kind>/online`, the object's name |
//! | WRITE_ONLINE        | `create` | `<kind>/online`, the object's name |
//! | READ_OFFLINE        | `get`    | `<kind>/offline`               |
//! | WRITE_OFFLINE       | `create` | `<kind>/offline`               |
//! | DESCRIBE            | `get` (one) or `list` (lists) | `<kind>` |
//! | CREATE/UPDATE/DELETE| `create`/`update`/`delete` | `<kind>`        |
//!
//! `<kind>` is the lower-case plural (`featureviews`, `featureservices`,
//! `entities`, `datasources`, …) and names are registry names (`spec.name`,
//! else `metadata.name`). A list keeps everything when `list` is allowed on
//! the kind, else the objects the caller may `get` by name. Decisions are
//! cached briefly per identity and question.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::cache::TtlCache;
use crate::kubernetes::API_TIMEOUT;
use crate::{Action, AuthError, Denied, Resource, ResourceType, User};

pub const GROUP: &str = "larder.dev";

/// The question a decision asks the API server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    pub verb: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub name: Option<String>,
}

pub fn plural(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::FeatureView | ResourceType::BatchFeatureView => "featureviews",
        ResourceType::StreamFeatureView => "streamfeatureviews",
        ResourceType::OnDemandFeatureView => "ondemandfeatureviews",
        ResourceType::LabelView => "labelviews",
        ResourceType::Entity => "entities",
        ResourceType::FeatureService => "featureservices",
        ResourceType::DataSource => "datasources",
        ResourceType::ValidationReference => "validationreferences",
        ResourceType::SavedDataset => "saveddatasets",
        ResourceType::Permission => "permissions",
        ResourceType::Project => "projects",
    }
}

/// The RBAC question for one action on one object (pure).
pub fn question(r: Resource<'_>, action: Action) -> Question {
    let (verb, subresource) = match action {
        Action::Describe => ("get", None),
        Action::Create => ("create", None),
        Action::Update => ("update", None),
        Action::Delete => ("delete", None),
        Action::ReadOnline => ("get", Some("online")),
        Action::WriteOnline => ("create", Some("online")),
        Action::ReadOffline => ("get", Some("offline")),
        Action::WriteOffline => ("create", Some("offline")),
    };
    Question {
        verb,
        resource: plural(r.kind),
        subresource,
        name: Some(r.name.to_string()),
    }
}

pub struct Rbac {
    client: Client,
    namespace: String,
    decisions: TtlCache<(String, Question), bool>,
}

impl Rbac {
    pub fn new(client: Client, namespace: String, ttl: Duration) -> Self {
        Rbac {
            client,
            namespace,
            decisions: TtlCache::new(ttl, 16_384),
        }
    }

    async fn allowed(&self, user: &User, q: &Question) -> Result<bool, AuthError> {
        // Only a reviewed Kubernetes identity can be asked about; anything
        // else is refused, never assumed.
        let Some(who) = &user.subject else {
            return Ok(false);
        };
        let key = (
            format!("{}\u{0}{}\u{0}{}", who.username, who.uid, who.groups.join("\u{0}")),
            q.clone(),
        );
        if let Some(v) = self.decisions.get(&key) {
            return Ok(v);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(who.username.clone()),
                uid: (!who.uid.is_empty()).then(|| who.uid.clone()),
                groups: Some(who.groups.clone()),
                extra: (!who.extra.is_empty()).then(|| who.extra.clone().into_iter().collect()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(self.namespace.clone()),
                    verb: Some(q.verb.to_string()),
                    group: Some(GROUP.to_string()),
                    resource: Some(q.resource.to_string()),
                    subresource: q.subresource.map(String::from),
                    name: q.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let done = tokio::time::timeout(API_TIMEOUT, api.create(&PostParams::default(), &review))
            .await
            .map_err(|_| AuthError::Unavailable("SubjectAccessReview timed out".into()))?
            .map_err(|e| AuthError::Unavailable(format!("SubjectAccessReview failed: {e}")))?;
        let allowed = done.status.is_some_and(|s| s.allowed && s.denied != Some(true));
        self.decisions.insert(key, allowed);
        Ok(allowed)
    }

    pub async fn check(&self, user: &User, resources: &[Resource<'_>], actions: &[Action]) -> Result<(), AuthError> {
        for r in resources {
            for a in actions {
                let q = question(*r, *a);
                if !self.allowed(user, &q).await? {
                    return Err(AuthError::Denied(Denied(format!(
                        "Kubernetes RBAC does not allow {} to {} {}{} {:?} (group {GROUP}) in namespace {}",
                        user.username,
                        q.verb,
                        q.resource,
                        q.subresource.map(|s| format!("/{s}")).unwrap_or_default(),
                        r.name,
                        self.namespace
                    ))));
                }
            }
        }
        Ok(())
    }

    pub async fn permitted(&self, user: &User, resource: Resource<'_>, actions: &[Action]) -> Result<bool, AuthError> {
        for a in actions {
            let q = question(resource, *a);
            if *a == Action::Describe {
                let list = Question {
                    verb: "list",
                    name: None,
                    ..q.clone()
                };
                if self.allowed(user, &list).await? {
                    continue;
                }
            }
            if !self.allowed(user, &q).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_map_to_verbs_and_subresources() {
        let fv = Resource::new(ResourceType::FeatureView, "driver_stats");
        let q = question(fv, Action::ReadOnline);
        assert_eq!(
            (q.verb, q.resource, q.subresource),
            ("get", "featureviews", Some("online"))
        );
        assert_eq!(q.name.as_deref(), Some("driver_stats"));
        assert_eq!(question(fv, Action::WriteOnline).verb, "create");
        assert_eq!(question(fv, Action::WriteOnline).subresource, Some("online"));
        assert_eq!(question(fv, Action::Update).verb, "update");
        assert_eq!(question(fv, Action::Describe).subresource, None);
        let fs = Resource::new(ResourceType::FeatureService, "s");
        assert_eq!(question(fs, Action::ReadOnline).resource, "featureservices");
        assert_eq!(plural(ResourceType::Entity), "entities");
    }
}
