//! Feast's Permission objects, evaluated exactly as Feast 0.67's
//! `permissions/enforcer.py` does (pinned against Feast's own enforcer in
//! `tests/feast_enforcer.rs`):
//!
//! - no Permission in the project: every authenticated user may do anything;
//! - a Permission *matches* a resource when one of its types is the
//!   resource's class or a base class of it (`isinstance`: a
//!   StreamFeatureView is a FeatureView), one of its name patterns
//!   full-matches the name (none = any name), and its actions contain **all**
//!   requested actions. Its `required_tags` take part only when the resource
//!   is itself a Permission with `required_tags` of its own, which must then
//!   hold each of them with the same value: Feast reads the resource's
//!   `required_tags` attribute, which no other Feast object has, so for every
//!   other resource 0.67 ignores them (see [`Resource::with_required_tags`]);
//! - no match: denied;
//! - among the matches one policy accepting the user grants (affirmative);
//! - in filter mode (list calls) a denied or unmatched resource is dropped
//!   silently only where Feast drops it (see [`PermissionSet::permitted`]),
//!   otherwise the whole call is denied.
//!
//! One deliberate difference: a name pattern Rust's `regex` cannot compile
//! (Python-only syntax such as look-around) never matches, where Feast
//! would fail the request; either way nothing is granted by it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use larder_protos::feast::core as fc;
use regex::Regex;

/// What a caller wants to do (`AuthzedAction`, in its protobuf order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Create,
    Describe,
    Update,
    Delete,
    ReadOnline,
    ReadOffline,
    WriteOnline,
    WriteOffline,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Create,
        Action::Describe,
        Action::Update,
        Action::Delete,
        Action::ReadOnline,
        Action::ReadOffline,
        Action::WriteOnline,
        Action::WriteOffline,
    ];

    pub fn from_proto(v: i32) -> Option<Action> {
        usize::try_from(v).ok().and_then(|i| Action::ALL.get(i).copied())
    }

    /// Python's member name (`READ_ONLINE`), as Feast's messages print it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Describe => "DESCRIBE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
            Action::ReadOnline => "READ_ONLINE",
            Action::ReadOffline => "READ_OFFLINE",
            Action::WriteOnline => "WRITE_ONLINE",
            Action::WriteOffline => "WRITE_OFFLINE",
        }
    }

    /// Python's value (`read_online`).
    pub fn value(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Describe => "describe",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::ReadOnline => "read_online",
            Action::ReadOffline => "read_offline",
            Action::WriteOnline => "write_online",
            Action::WriteOffline => "write_offline",
        }
    }
}

/// The class of a protected object (`PermissionSpec.Type`, protobuf order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    FeatureView,
    OnDemandFeatureView,
    BatchFeatureView,
    StreamFeatureView,
    Entity,
    FeatureService,
    DataSource,
    ValidationReference,
    SavedDataset,
    Permission,
    Project,
    LabelView,
}

impl ResourceType {
    pub const ALL: [ResourceType; 12] = [
        ResourceType::FeatureView,
        ResourceType::OnDemandFeatureView,
        ResourceType::BatchFeatureView,
        ResourceType::StreamFeatureView,
        ResourceType::Entity,
        ResourceType::FeatureService,
        ResourceType::DataSource,
        ResourceType::ValidationReference,
        ResourceType::SavedDataset,
        ResourceType::Permission,
        ResourceType::Project,
        ResourceType::LabelView,
    ];

    pub fn from_proto(v: i32) -> Option<ResourceType> {
        usize::try_from(v).ok().and_then(|i| ResourceType::ALL.get(i).copied())
    }

    /// Python's `isinstance(resource, t)` for a resource of class `self`:
    /// batch and stream feature views are feature views.
    pub fn is_a(self, t: ResourceType) -> bool {
        self == t
            || (t == ResourceType::FeatureView
                && matches!(self, ResourceType::BatchFeatureView | ResourceType::StreamFeatureView))
    }

    /// The class name Feast prints (`FeatureView`).
    pub fn class_name(self) -> &'static str {
        self.python_class().rsplit('.').next().unwrap_or_default()
    }

    /// The class's full Python path, for Feast's `<class '…'>` messages.
    pub fn python_class(self) -> &'static str {
        match self {
            ResourceType::FeatureView => "feast.feature_view.FeatureView",
            ResourceType::OnDemandFeatureView => "feast.on_demand_feature_view.OnDemandFeatureView",
            ResourceType::BatchFeatureView => "feast.batch_feature_view.BatchFeatureView",
            ResourceType::StreamFeatureView => "feast.stream_feature_view.StreamFeatureView",
            ResourceType::Entity => "feast.entity.Entity",
            ResourceType::FeatureService => "feast.feature_service.FeatureService",
            ResourceType::DataSource => "feast.data_source.DataSource",
            ResourceType::ValidationReference => "feast.saved_dataset.ValidationReference",
            ResourceType::SavedDataset => "feast.saved_dataset.SavedDataset",
            ResourceType::Permission => "feast.permissions.permission.Permission",
            ResourceType::Project => "feast.project.Project",
            ResourceType::LabelView => "feast.labeling.label_view.LabelView",
        }
    }
}

/// One protected object: its class and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub kind: ResourceType,
    pub name: &'a str,
    /// A protected Permission's own `required_tags`; see
    /// [`Resource::with_required_tags`].
    pub required_tags: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Resource<'a> {
    pub fn new(kind: ResourceType, name: &'a str) -> Self {
        Resource {
            kind,
            name,
            required_tags: None,
        }
    }

    /// For a Permission resource (one being described, applied or deleted),
    /// its own `spec.required_tags`: Feast then matches it only by the
    /// permissions whose required tags it all carries with the same values
    /// (keys and values stripped, as `Permission.from_proto` does on both
    /// sides). Ignored for every other class, as in Feast.
    pub fn with_required_tags(self, tags: &'a BTreeMap<String, String>) -> Self {
        Resource {
            required_tags: Some(tags),
            ..self
        }
    }
}

/// Feast's `FeastPermissionError`: the message after "Permission error:\n".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// A Permission Feast itself would fail to load (`Permission.from_proto`
/// raises), which fails every request of the project there too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission {name:?} cannot be enforced: {reason}")]
pub struct InvalidPermission {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
enum Policy {
    Roles(Vec<String>),
    Groups(Vec<String>),
    Namespaces(Vec<String>),
    GroupsOrNamespaces {
        groups: Vec<String>,
        namespaces: Vec<String>,
    },
}

impl Policy {
    fn from_proto(p: Option<&fc::Policy>) -> Option<Policy> {
        use fc::policy::PolicyType as P;
        Some(match p?.policy_type.as_ref()? {
            P::RoleBasedPolicy(r) => Policy::Roles(r.roles.clone()),
            P::GroupBasedPolicy(g) => Policy::Groups(g.groups.clone()),
            P::NamespaceBasedPolicy(n) => Policy::Namespaces(n.namespaces.clone()),
            P::CombinedGroupNamespacePolicy(c) => Policy::GroupsOrNamespaces {
                groups: c.groups.clone(),
                namespaces: c.namespaces.clone(),
            },
        })
    }

    /// Feast's `validate_user`: the verdict and, when denied, its wording.
    fn validate(&self, user: &crate::User) -> (bool, String) {
        match self {
            Policy::Roles(roles) => {
                let ok = user.has_any_role(roles);
                (
                    ok,
                    if ok {
                        String::new()
                    } else {
                        format!("Requires roles {}", py_list(roles))
                    },
                )
            }
            Policy::Groups(groups) => {
                let ok = user.has_any_group(groups);
                (ok, explain(ok, "User is not added into the permitted groups"))
            }
            Policy::Namespaces(ns) => {
                let ok = user.has_any_namespace(ns);
                (ok, explain(ok, "User is not added into the permitted namespaces"))
            }
            Policy::GroupsOrNamespaces { groups, namespaces } => {
                let ok = user.has_any_group(groups) || user.has_any_namespace(namespaces);
                (
                    ok,
                    explain(ok, "User must be in at least one of the permitted groups or namespaces"),
                )
            }
        }
    }
}

fn explain(ok: bool, why: &str) -> String {
    if ok { String::new() } else { why.to_string() }
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    types: Vec<ResourceType>,
    /// `None` for a pattern Rust cannot compile: it never matches.
    patterns: Vec<Option<Regex>>,
    actions: Vec<Action>,
    /// Stripped, as Feast's `_normalize_tags` does.
    required_tags: BTreeMap<String, String>,
    policy: Policy,
}

impl Rule {
    fn compile(p: &fc::Permission) -> Result<Rule, InvalidPermission> {
        let spec = p.spec.clone().unwrap_or_default();
        let invalid = |reason: &str| InvalidPermission {
            name: spec.name.clone(),
            reason: reason.to_string(),
        };
        // Python: an empty list means every type.
        let types = if spec.types.is_empty() {
            ResourceType::ALL.to_vec()
        } else {
            spec.types
                .iter()
                .map(|t| ResourceType::from_proto(*t).ok_or_else(|| invalid(&format!("unknown type {t}"))))
                .collect::<Result<_, _>>()?
        };
        let actions: Vec<Action> = spec
            .actions
            .iter()
            .map(|a| Action::from_proto(*a).ok_or_else(|| invalid(&format!("unknown action {a}"))))
            .collect::<Result<_, _>>()?;
        if actions.is_empty() {
            return Err(invalid("the list 'actions' must be non-empty"));
        }
        let policy = Policy::from_proto(spec.policy.as_ref()).ok_or_else(|| invalid("it has no policy"))?;
        let patterns = spec
            .name_patterns
            .iter()
            .map(|raw| {
                let pat = raw.trim();
                match Regex::new(&format!("^(?:{pat})$")) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        tracing::warn!(permission = %spec.name, pattern = %pat, error = %e,
                            "name pattern cannot be compiled; it matches no resource");
                        None
                    }
                }
            })
            .collect();
        let required_tags = spec
            .required_tags
            .iter()
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Ok(Rule {
            name: spec.name,
            types,
            patterns,
            actions,
            required_tags,
            policy,
        })
    }

    fn matches_type(&self, kind: ResourceType) -> bool {
        self.types.iter().any(|t| kind.is_a(*t))
    }

    fn matches(&self, r: &Resource<'_>, actions: &[Action]) -> bool {
        self.matches_type(r.kind)
            && (self.patterns.is_empty() || self.patterns.iter().flatten().any(|re| re.is_match(r.name)))
            && actions.iter().all(|a| self.actions.contains(a))
            && self.matches_tags(r)
    }

    /// Feast's `required_tags` check: only a Permission resource has the
    /// attribute, and Feast keeps an empty map as `None`, which skips it.
    fn matches_tags(&self, r: &Resource<'_>) -> bool {
        let Some(tags) = r
            .required_tags
            .filter(|t| r.kind == ResourceType::Permission && !t.is_empty())
        else {
            return true;
        };
        self.required_tags.iter().all(|(key, want)| {
            // The resource's tags stripped too. Of keys equal once stripped
            // the last in key order wins; Feast keeps the last its protobuf
            // map yields.
            let have = tags.iter().rev().find(|(k, _)| k.trim() == key).map(|(_, v)| v.trim());
            have == Some(want.as_str())
        })
    }
}

/// The Permissions of one project, compiled once per registry snapshot.
#[derive(Debug, Clone, Default)]
pub struct PermissionSet {
    rules: Vec<Rule>,
}

enum Verdict {
    Granted,
    /// Denied by the matching permissions; `droppable` in filter mode.
    Denied {
        message: String,
        droppable: bool,
    },
    NoMatch,
}

impl PermissionSet {
    pub fn compile(permissions: &[fc::Permission]) -> Result<Self, InvalidPermission> {
        Ok(PermissionSet {
            rules: permissions.iter().map(Rule::compile).collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `enforce_policy(filter_only=False)` for one resource.
    pub fn check(&self, user: &crate::User, resource: Resource<'_>, actions: &[Action]) -> Result<(), Denied> {
        if self.open_to(user)? {
            return Ok(());
        }
        match self.verdict(user, &resource, actions) {
            Verdict::Granted => Ok(()),
            Verdict::Denied { message, .. } => Err(Denied(message)),
            Verdict::NoMatch => Err(Denied(no_permission(&resource, actions))),
        }
    }

    /// `enforce_policy` on several resources: denied at the first refused one.
    pub fn check_all(&self, user: &crate::User, resources: &[Resource<'_>], actions: &[Action]) -> Result<(), Denied> {
        resources.iter().try_for_each(|r| self.check(user, *r, actions))
    }

    /// `enforce_policy(filter_only=True)` for one resource: `Ok(false)` drops
    /// it from a list silently; `Err` fails the whole list call. A refused
    /// resource is dropped when the permission that decided has name
    /// patterns; an unmatched one when some permission for its type has.
    pub fn permitted(&self, user: &crate::User, resource: Resource<'_>, actions: &[Action]) -> Result<bool, Denied> {
        if self.open_to(user)? {
            return Ok(true);
        }
        match self.verdict(user, &resource, actions) {
            Verdict::Granted => Ok(true),
            Verdict::Denied { droppable: true, .. } => Ok(false),
            Verdict::Denied { message, .. } => Err(Denied(message)),
            Verdict::NoMatch => {
                let typed = self.rules.iter().filter(|r| r.matches_type(resource.kind));
                let mut any_typed = false;
                let mut any_patterns = false;
                for r in typed {
                    any_typed = true;
                    any_patterns |= !r.patterns.is_empty();
                }
                if any_typed && any_patterns {
                    Ok(false)
                } else {
                    Err(Denied(no_permission(&resource, actions)))
                }
            }
        }
    }

    /// No permissions: open to every authenticated user, closed otherwise.
    fn open_to(&self, user: &crate::User) -> Result<bool, Denied> {
        if !self.rules.is_empty() {
            return Ok(false);
        }
        if user.username.is_empty() {
            return Err(Denied(
                "No permissions defined and no authenticated user context. Access denied.".into(),
            ));
        }
        Ok(true)
    }

    fn verdict(&self, user: &crate::User, resource: &Resource<'_>, actions: &[Action]) -> Verdict {
        let matching: Vec<&Rule> = self.rules.iter().filter(|r| r.matches(resource, actions)).collect();
        let Some(last) = matching.last() else {
            return Verdict::NoMatch;
        };
        // Affirmative: the first accepting policy grants; the decision to
        // deny falls at the last vote, so its permission decides filtering.
        let mut explanations = Vec::new();
        for rule in &matching {
            let (ok, why) = rule.policy.validate(user);
            if ok {
                return Verdict::Granted;
            }
            explanations.push(format!(
                "Permission {} denied execution of {} to {}:{}: {}",
                rule.name,
                py_list(actions.iter().map(|a| a.name())),
                resource.kind.class_name(),
                resource.name,
                why
            ));
        }
        Verdict::Denied {
            message: explanations.join(","),
            droppable: !last.patterns.is_empty(),
        }
    }
}

/// Feast's "No permissions defined to manage …" message, with Python's
/// reprs of the action list and the class.
fn no_permission(resource: &Resource<'_>, actions: &[Action]) -> String {
    let mut acts = String::from("[");
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            acts.push_str(", ");
        }
        let _ = write!(acts, "<AuthzedAction.{}: '{}'>", a.name(), a.value());
    }
    acts.push(']');
    format!(
        "No permissions defined to manage {acts} on <class '{}'>/{}.",
        resource.kind.python_class(),
        resource.name
    )
}

/// Python's `repr` of a list of strings.
fn py_list<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let parts: Vec<String> = items.into_iter().map(|s| py_str(s.as_ref())).collect();
    format!("[{}]", parts.join(", "))
}

fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::User;
    use larder_testkit::objects::{PermissionAction as A, PermissionType as T, permission};

    /// A FeatureView Permission with a role-based policy.
    fn fv_perm(name: &str, patterns: &[&str], actions: &[A], roles: &[&str]) -> fc::Permission {
        permission(name)
            .types(&[T::FeatureView])
            .patterns(patterns)
            .actions(actions)
            .roles(roles)
            .build()
    }

    fn user(roles: &[&str]) -> User {
        User {
            username: "u".into(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            ..User::default()
        }
    }

    const FV: ResourceType = ResourceType::FeatureView;

    #[test]
    fn no_permissions_open_to_authenticated_users_only() {
        let set = PermissionSet::default();
        assert!(set.check(&user(&[]), Resource::new(FV, "v"), &[Action::Delete]).is_ok());
        let anonymous = User::default();
        assert!(
            set.check(&anonymous, Resource::new(FV, "v"), &[Action::Delete])
                .is_err()
        );
    }

    #[test]
    fn all_requested_actions_must_be_allowed_by_one_permission() {
        let set = PermissionSet::compile(&[
            fv_perm("r", &[], &[A::ReadOnline], &["reader"]),
            fv_perm("w", &[], &[A::WriteOnline], &["reader"]),
        ])
        .unwrap();
        let u = user(&["reader"]);
        assert!(set.check(&u, Resource::new(FV, "v"), &[Action::ReadOnline]).is_ok());
        let e = set
            .check(&u, Resource::new(FV, "v"), &[Action::ReadOnline, Action::WriteOnline])
            .unwrap_err();
        assert!(e.0.starts_with("No permissions defined to manage [<AuthzedAction.READ_ONLINE: 'read_online'>, <AuthzedAction.WRITE_ONLINE: 'write_online'>] on <class 'feast.feature_view.FeatureView'>/v."), "{e}");
    }

    #[test]
    fn subclasses_match_and_patterns_full_match() {
        let set = PermissionSet::compile(&[fv_perm("p", &["driver_.*"], &[A::Describe], &["a"])]).unwrap();
        let u = user(&["a"]);
        let sfv = ResourceType::StreamFeatureView;
        assert!(
            set.check(&u, Resource::new(sfv, "driver_stats"), &[Action::Describe])
                .is_ok()
        );
        assert!(
            set.check(&u, Resource::new(sfv, "xdriver_stats"), &[Action::Describe])
                .is_err()
        );
        assert!(
            set.check(
                &u,
                Resource::new(ResourceType::OnDemandFeatureView, "driver_x"),
                &[Action::Describe]
            )
            .is_err()
        );
    }

    #[test]
    fn affirmative_and_denial_wording() {
        let set = PermissionSet::compile(&[
            fv_perm("a", &[], &[A::Describe], &["x"]),
            fv_perm("b", &[], &[A::Describe], &["y", "it's"]),
        ])
        .unwrap();
        assert!(
            set.check(&user(&["y"]), Resource::new(FV, "v"), &[Action::Describe])
                .is_ok()
        );
        let e = set
            .check(&user(&["z"]), Resource::new(FV, "v"), &[Action::Describe])
            .unwrap_err();
        assert_eq!(
            e.0,
            "Permission a denied execution of ['DESCRIBE'] to FeatureView:v: Requires roles ['x'],\
             Permission b denied execution of ['DESCRIBE'] to FeatureView:v: Requires roles ['y', \"it's\"]"
        );
    }

    #[test]
    fn filter_mode_drops_only_where_feast_drops() {
        let patterned = PermissionSet::compile(&[fv_perm("p", &["a.*"], &[A::Describe], &["r"])]).unwrap();
        let u = user(&[]);
        // Denied by a permission with patterns: dropped.
        assert_eq!(
            patterned.permitted(&u, Resource::new(FV, "ab"), &[Action::Describe]),
            Ok(false)
        );
        // Unmatched, but the type has patterned permissions: dropped.
        assert_eq!(
            patterned.permitted(&u, Resource::new(FV, "zz"), &[Action::Describe]),
            Ok(false)
        );
        // Unmatched type: the list fails.
        assert!(
            patterned
                .permitted(&u, Resource::new(ResourceType::Entity, "e"), &[Action::Describe])
                .is_err()
        );
        let plain = PermissionSet::compile(&[fv_perm("p", &[], &[A::Describe], &["r"])]).unwrap();
        assert!(
            plain
                .permitted(&u, Resource::new(FV, "ab"), &[Action::Describe])
                .is_err()
        );
        assert_eq!(
            plain.permitted(&user(&["r"]), Resource::new(FV, "ab"), &[Action::Describe]),
            Ok(true)
        );
    }

    #[test]
    fn unloadable_permissions_are_errors() {
        let mut p = fv_perm("p", &[], &[], &["r"]);
        assert!(PermissionSet::compile(std::slice::from_ref(&p)).is_err());
        p = fv_perm("p", &[], &[A::Describe], &["r"]);
        if let Some(spec) = p.spec.as_mut() {
            spec.policy = None;
        }
        assert!(PermissionSet::compile(&[p]).is_err());
    }

    #[test]
    fn uncompilable_patterns_never_grant() {
        let set = PermissionSet::compile(&[fv_perm("p", &["(?<=a)b"], &[A::Describe], &["r"])]).unwrap();
        assert!(
            set.check(&user(&["r"]), Resource::new(FV, "b"), &[Action::Describe])
                .is_err()
        );
    }
}
