//! Pins [`PermissionSet`] to Feast 0.67's own enforcer: the same Permissions
//! (as protobuf bytes, loaded by Feast through `Permission.from_proto`), user,
//! resource (a real Feast object of the resource's class) and actions go
//! through `feast.permissions.enforcer.enforce_policy` in one Python process,
//! and Rust must reach the same outcome (granted / dropped / error) with the
//! same message. Feast names the concrete class of a data source
//! (`FileSource`) where Larder only knows `DataSource`, so for data sources
//! only the outcome is compared.
//!
//! Like the other Feast e2e tests this needs the Feast 0.67 venv
//! (`scripts/feast-venv.sh`): CI fails without it, elsewhere the test says
//! SKIPPED (see `larder_testkit::feast::python`).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use larder_auth::{Action, Denied, PermissionSet, Resource, ResourceType, User};
use larder_protos::feast::core as fc;
use larder_protos::prost::Message as _;
use larder_testkit::Rng;

/// Reads the cases (argv[1]), answers one JSON line.
const SCRIPT: &str = r#"
import base64, json, logging, sys, warnings
from datetime import timedelta

from feast import (BatchFeatureView, Entity, FeatureService, FeatureView, Field, FileSource,
                   OnDemandFeatureView, Project, PushSource, RequestSource, StreamFeatureView)
from feast.errors import FeastPermissionError
from feast.infra.offline_stores.file_source import SavedDatasetFileStorage
from feast.labeling.label_view import LabelView
from feast.permissions.action import AuthzedAction
from feast.permissions.enforcer import enforce_policy
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy
from feast.permissions.user import User
from feast.protos.feast.core.Permission_pb2 import Permission as PermissionProto
from feast.saved_dataset import SavedDataset, ValidationReference
from feast.types import Int64

# After the imports: Feast's own warning filters would win otherwise.
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

SRC = FileSource(name="src", path="x.parquet", timestamp_field="ts")
SCHEMA = [Field(name="f", dtype=Int64)]
TTL = timedelta(days=1)


def make(kind, name, tags):
    if kind == "FeatureView":
        return FeatureView(name=name, source=SRC, schema=SCHEMA, ttl=TTL)
    if kind == "BatchFeatureView":
        return BatchFeatureView(name=name, source=SRC, schema=SCHEMA, ttl=TTL)
    if kind == "StreamFeatureView":
        push = PushSource(name="push", batch_source=SRC)
        return StreamFeatureView(name=name, source=push, schema=SCHEMA, ttl=TTL)
    if kind == "OnDemandFeatureView":
        req = RequestSource(name="req", schema=[Field(name="x", dtype=Int64)])
        return OnDemandFeatureView(name=name, sources=[req], schema=[Field(name="y", dtype=Int64)],
                                   udf=lambda df: df, mode="pandas")
    if kind == "LabelView":
        return LabelView(name=name, source=SRC, schema=SCHEMA)
    if kind == "Entity":
        return Entity(name=name, join_keys=["id"])
    if kind == "FeatureService":
        return FeatureService(name=name, features=[])
    if kind == "DataSource":
        return FileSource(name=name, path="x.parquet", timestamp_field="ts")
    if kind == "ValidationReference":
        return ValidationReference(name=name, dataset_name="ds", profiler=None)
    if kind == "SavedDataset":
        return SavedDataset(name=name, features=["fv:f"], join_keys=["id"],
                            storage=SavedDatasetFileStorage(path="x.parquet"))
    if kind == "Permission":
        return Permission(name=name, policy=RoleBasedPolicy(roles=["r"]), required_tags=tags or None)
    if kind == "Project":
        return Project(name=name)
    raise ValueError(kind)


resources = {}
permissions = {}


def resource(kind, name, tags):
    key = (kind, name, tuple(sorted(tags.items())))
    if key not in resources:
        r = make(kind, name, tags)
        assert r.name == name, (kind, name, r.name)
        resources[key] = r
    return resources[key]


def permission(b64):
    if b64 not in permissions:
        proto = PermissionProto()
        proto.ParseFromString(base64.b64decode(b64))
        permissions[b64] = Permission.from_proto(proto)
    return permissions[b64]


PREFIX = "Permission error:\n"
with open(sys.argv[1]) as f:
    doc = json.load(f)
results = []
for c in doc["cases"]:
    perms = [permission(p) for p in c["perms"]]
    u = c["user"]
    user = User(u["username"], u["roles"], u["groups"], u["namespaces"])
    res = resource(c["kind"], c["name"], c["tags"])
    actions = [AuthzedAction[a] for a in c["actions"]]
    cls = type(res).__module__ + "." + type(res).__name__
    try:
        kept = enforce_policy(perms, user, [res], actions, c["filter_only"])
        assert kept == [res] or kept == [], kept
        results.append({"outcome": "granted" if kept else "dropped", "message": None, "class": cls})
    except FeastPermissionError as e:
        msg = str(e)
        assert msg.startswith(PREFIX), msg
        results.append({"outcome": "error", "message": msg[len(PREFIX):], "class": cls})
unloadable = []
for b64 in doc["unloadable"]:
    proto = PermissionProto()
    proto.ParseFromString(base64.b64decode(b64))
    try:
        Permission.from_proto(proto)
        unloadable.append(None)
    except Exception as e:
        unloadable.append(type(e).__name__ + ": " + str(e))
print(json.dumps({"results": results, "unloadable": unloadable}))
"#;

#[derive(Debug, Clone)]
struct Case {
    perms: Vec<fc::Permission>,
    user: User,
    kind: ResourceType,
    name: String,
    /// The resource's `required_tags`: Feast's object carries them only if it
    /// is a Permission; Larder gets them for every class and must ignore them
    /// for all but Permission.
    tags: BTreeMap<String, String>,
    actions: Vec<Action>,
    filter_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Granted,
    Dropped,
    Error,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct PyResult {
    outcome: Outcome,
    message: Option<String>,
    /// The resource's Python class, `module.Name`.
    class: String,
}

#[derive(Debug, serde::Deserialize)]
struct PyOutput {
    results: Vec<PyResult>,
    /// Per unloadable permission: Feast's exception, `None` if it loaded.
    unloadable: Vec<Option<String>>,
}

fn kind_name(k: ResourceType) -> &'static str {
    k.class_name()
}

fn b64(p: &fc::Permission) -> String {
    base64::engine::general_purpose::STANDARD.encode(p.encode_to_vec())
}

fn case_json(c: &Case) -> serde_json::Value {
    serde_json::json!({
        "perms": c.perms.iter().map(b64).collect::<Vec<_>>(),
        "user": {
            "username": c.user.username,
            "roles": c.user.roles,
            "groups": c.user.groups,
            "namespaces": c.user.namespaces,
        },
        "kind": kind_name(c.kind),
        "name": c.name,
        "tags": c.tags,
        "actions": c.actions.iter().map(|a| a.name()).collect::<Vec<_>>(),
        "filter_only": c.filter_only,
    })
}

/// Runs Feast's enforcer on every case (and `Permission.from_proto` on every
/// unloadable permission) in one Python process.
async fn feast(python: &Path, cases: &[Case], unloadable: &[fc::Permission]) -> PyOutput {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("enforce.py");
    let input = dir.path().join("cases.json");
    std::fs::write(&script, SCRIPT).expect("write script");
    let doc = serde_json::json!({
        "cases": cases.iter().map(case_json).collect::<Vec<_>>(),
        "unloadable": unloadable.iter().map(b64).collect::<Vec<_>>(),
    });
    std::fs::write(&input, serde_json::to_vec(&doc).expect("encode cases")).expect("write cases");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&script).arg(&input).current_dir(dir.path());
    let out: PyOutput = larder_testkit::feast::run_script(cmd, Some(std::time::Duration::from_secs(600)))
        .await
        .unwrap_or_else(|e| panic!("Feast's enforcer script: {e}"));
    assert_eq!(out.results.len(), cases.len(), "one result per case");
    assert_eq!(
        out.unloadable.len(),
        unloadable.len(),
        "one result per unloadable permission"
    );
    out
}

/// Rust's answer: `check` (filter_only=False) or `permitted` (True).
fn larder(c: &Case) -> (Outcome, Option<String>) {
    let set = PermissionSet::compile(&c.perms).expect("generated permissions are loadable");
    let resource = Resource::new(c.kind, &c.name).with_required_tags(&c.tags);
    let r: Result<bool, Denied> = if c.filter_only {
        set.permitted(&c.user, resource, &c.actions)
    } else {
        set.check(&c.user, resource, &c.actions).map(|()| true)
    };
    match r {
        Ok(true) => (Outcome::Granted, None),
        Ok(false) => (Outcome::Dropped, None),
        Err(Denied(m)) => (Outcome::Error, Some(m)),
    }
}

fn describe(c: &Case) -> String {
    let perms: Vec<String> = c
        .perms
        .iter()
        .map(|p| {
            let s = p.spec.clone().unwrap_or_default();
            format!(
                "{{name: {:?}, types: {:?}, patterns: {:?}, actions: {:?}, required_tags: {:?}, policy: {:?}}}",
                s.name,
                s.types
                    .iter()
                    .filter_map(|t| ResourceType::from_proto(*t))
                    .map(kind_name)
                    .collect::<Vec<_>>(),
                s.name_patterns,
                s.actions
                    .iter()
                    .filter_map(|a| Action::from_proto(*a))
                    .map(|a| a.name())
                    .collect::<Vec<_>>(),
                s.required_tags,
                s.policy.and_then(|p| p.policy_type),
            )
        })
        .collect();
    format!(
        "perms: [{}]\n  user: {:?} roles {:?} groups {:?} namespaces {:?}\n  \
         resource: {}:{} tags {:?}\n  actions: {:?}, filter_only: {}",
        perms.join(", "),
        c.user.username,
        c.user.roles,
        c.user.groups,
        c.user.namespaces,
        kind_name(c.kind),
        c.name,
        c.tags,
        c.actions.iter().map(|a| a.name()).collect::<Vec<_>>(),
        c.filter_only
    )
}

/// Compares every case; panics listing the disagreements. Returns the
/// number of messages compared.
fn compare(cases: &[Case], py: &[PyResult], labels: Option<&[&str]>) -> usize {
    let mut bad = Vec::new();
    let mut messages = 0;
    for (i, (c, p)) in cases.iter().zip(py).enumerate() {
        let label = labels.map_or_else(|| format!("case {i}"), |l| l[i].to_string());
        let want_class = match c.kind {
            ResourceType::DataSource => "feast.infra.offline_stores.file_source.FileSource",
            k => k.python_class(),
        };
        assert_eq!(p.class, want_class, "{label}: the Python resource's class");
        let (outcome, message) = larder(c);
        if outcome != p.outcome {
            bad.push(format!(
                "{label}: Feast {:?} {:?}, Larder {:?} {:?}\n  {}",
                p.outcome,
                p.message,
                outcome,
                message,
                describe(c)
            ));
        } else if c.kind != ResourceType::DataSource && message.is_some() {
            messages += 1;
            if message != p.message {
                bad.push(format!(
                    "{label}: messages differ\n  Feast:  {:?}\n  Larder: {:?}\n  {}",
                    p.message,
                    message,
                    describe(c)
                ));
            }
        }
    }
    let shown: Vec<&String> = bad.iter().take(25).collect();
    assert!(
        bad.is_empty(),
        "{} of {} cases differ from Feast 0.67:\n{}",
        bad.len(),
        cases.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    messages
}

// ---------------------------------------------------------------------------
// Building blocks.

#[derive(Debug, Clone)]
enum Pol {
    Roles(Vec<String>),
    Groups(Vec<String>),
    Namespaces(Vec<String>),
    Combined(Vec<String>, Vec<String>),
}

impl Pol {
    fn index(&self) -> usize {
        match self {
            Pol::Roles(_) => 0,
            Pol::Groups(_) => 1,
            Pol::Namespaces(_) => 2,
            Pol::Combined(..) => 3,
        }
    }

    fn proto(&self) -> fc::Policy {
        use fc::policy::PolicyType as P;
        let t = match self.clone() {
            Pol::Roles(roles) => P::RoleBasedPolicy(fc::RoleBasedPolicy { roles }),
            Pol::Groups(groups) => P::GroupBasedPolicy(fc::GroupBasedPolicy { groups }),
            Pol::Namespaces(namespaces) => P::NamespaceBasedPolicy(fc::NamespaceBasedPolicy { namespaces }),
            Pol::Combined(groups, namespaces) => {
                P::CombinedGroupNamespacePolicy(fc::CombinedGroupNamespacePolicy { groups, namespaces })
            }
        };
        fc::Policy {
            policy_type: Some(t),
            ..Default::default()
        }
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn roles(v: &[&str]) -> Pol {
    Pol::Roles(strings(v))
}

#[derive(Debug, Clone)]
struct Perm {
    name: &'static str,
    types: Vec<ResourceType>,
    patterns: Vec<&'static str>,
    actions: Vec<Action>,
    required_tags: Vec<(&'static str, &'static str)>,
    policy: Option<Pol>,
}

impl Perm {
    fn new(name: &'static str, types: &[ResourceType], actions: &[Action], policy: Pol) -> Self {
        Perm {
            name,
            types: types.to_vec(),
            patterns: Vec::new(),
            actions: actions.to_vec(),
            required_tags: Vec::new(),
            policy: Some(policy),
        }
    }

    fn patterns(mut self, p: &[&'static str]) -> Self {
        self.patterns = p.to_vec();
        self
    }

    fn required_tags(mut self, t: &[(&'static str, &'static str)]) -> Self {
        self.required_tags = t.to_vec();
        self
    }

    fn proto(&self) -> fc::Permission {
        fc::Permission {
            spec: Some(fc::PermissionSpec {
                name: self.name.into(),
                project: "proj".into(),
                types: self.types.iter().map(|t| *t as i32).collect(),
                name_patterns: strings(&self.patterns),
                required_tags: self
                    .required_tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                actions: self.actions.iter().map(|a| *a as i32).collect(),
                policy: self.policy.as_ref().map(Pol::proto),
                tags: BTreeMap::from([("owner".to_string(), "larder".to_string())]),
            }),
            meta: None,
        }
    }
}

fn user(username: &str, roles: &[&str], groups: &[&str], namespaces: &[&str]) -> User {
    User {
        username: username.into(),
        roles: strings(roles),
        groups: strings(groups),
        namespaces: strings(namespaces),
        subject: None,
    }
}

// ---------------------------------------------------------------------------
// The random matrix.

/// Draws the test needs beyond [`Rng`]'s.
trait Subset {
    fn subset<T: Copy>(&mut self, items: &[T], num: u64, den: u64) -> Vec<T>;
}

impl Subset for Rng {
    /// Each item kept with probability `num / den`, in a shuffled order.
    fn subset<T: Copy>(&mut self, items: &[T], num: u64, den: u64) -> Vec<T> {
        let mut out: Vec<T> = items.iter().copied().filter(|_| self.chance(num, den)).collect();
        for i in (1..out.len()).rev() {
            let j = self.index(i + 1);
            out.swap(i, j);
        }
        out
    }
}

const PERMISSION_NAMES: &[&str] = &["p0", "p1", "p2", "reader's", ""];
const PATTERNS: &[&str] = &[
    "driver.*",
    "driver_stats",
    ".*_v2",
    "a|b",
    " driver_stats ",
    "(driver|customer)_.*",
];
const NAMES: &[&str] = &[
    "driver_stats",
    "driver",
    "driver_v2",
    "customer_v2",
    "customer_x",
    "a",
    "b",
    "ab",
];
const ROLES: &[&str] = &["admin", "reader", "it's", "q\"x'y"];
const GROUPS: &[&str] = &["dev", "ops", "it's"];
const NAMESPACES: &[&str] = &["ns1", "ns2"];
// No two keys equal once stripped: which one Feast keeps is up to protobuf's
// map order.
const TAG_KEYS: &[&str] = &["team", " env ", "tier"];
const TAG_VALUES: &[&str] = &["a", "b ", ""];
const USERNAMES: &[&str] = &["alice", "bob", "system:serviceaccount:ns1:sa", ""];

fn random_tags(rng: &mut Rng) -> Vec<(&'static str, &'static str)> {
    let mut tags = BTreeMap::new();
    for _ in 0..=rng.below(2) {
        tags.insert(rng.pick(TAG_KEYS), rng.pick(TAG_VALUES));
    }
    tags.into_iter().collect()
}

fn random_perm(rng: &mut Rng) -> Perm {
    let types = if rng.chance(1, 4) {
        Vec::new() // every type
    } else {
        let mut t = rng.subset(&ResourceType::ALL, 1, 6);
        if t.is_empty() {
            t.push(rng.pick(&ResourceType::ALL));
        }
        t
    };
    let patterns = if rng.chance(2, 5) {
        Vec::new()
    } else {
        let mut p = vec![rng.pick(PATTERNS)];
        if rng.chance(1, 3) {
            p.push(rng.pick(PATTERNS));
        }
        p
    };
    let actions = if rng.chance(1, 4) {
        Action::ALL.to_vec()
    } else {
        let mut a = rng.subset(&Action::ALL, 1, 2);
        if a.is_empty() {
            a.push(rng.pick(&Action::ALL));
        }
        a
    };
    let policy = match rng.below(4) {
        0 => Pol::Roles(strings(&rng.subset(ROLES, 1, 3))),
        1 => Pol::Groups(strings(&rng.subset(GROUPS, 1, 2))),
        2 => Pol::Namespaces(strings(&rng.subset(NAMESPACES, 1, 2))),
        _ => Pol::Combined(
            strings(&rng.subset(GROUPS, 1, 3)),
            strings(&rng.subset(NAMESPACES, 1, 3)),
        ),
    };
    let required_tags = if rng.chance(1, 3) { random_tags(rng) } else { Vec::new() };
    Perm {
        name: rng.pick(PERMISSION_NAMES),
        types,
        patterns,
        actions,
        required_tags,
        policy: Some(policy),
    }
}

fn random_case(rng: &mut Rng) -> (Case, Vec<Perm>) {
    let perms: Vec<Perm> = (0..rng.pick(&[0, 1, 1, 2, 2, 3, 4]))
        .map(|_| random_perm(rng))
        .collect();
    let username = rng.pick(USERNAMES);
    let u = user(
        if rng.chance(1, 4) { "" } else { username },
        &rng.subset(ROLES, 1, 3),
        &rng.subset(GROUPS, 1, 3),
        &rng.subset(NAMESPACES, 1, 3),
    );
    // Half the time a type some permission names (or a subclass of it), so
    // that permissions match often enough to exercise the policies.
    let named: Vec<ResourceType> = perms.iter().flat_map(|p| p.types.iter().copied()).collect();
    // And a Permission more often: only there do required_tags count.
    let kind = if rng.chance(1, 8) {
        ResourceType::Permission
    } else if !named.is_empty() && rng.chance(1, 2) {
        match rng.pick(&named) {
            ResourceType::FeatureView => rng.pick(&[
                ResourceType::FeatureView,
                ResourceType::BatchFeatureView,
                ResourceType::StreamFeatureView,
            ]),
            t => t,
        }
    } else {
        rng.pick(&ResourceType::ALL)
    };
    // Random tags, or (for a Permission resource, half the time) those some
    // permission requires, so that they match as well as differ.
    let required: Vec<&Perm> = perms.iter().filter(|p| !p.required_tags.is_empty()).collect();
    let tags: BTreeMap<String, String> = if kind == ResourceType::Permission && !required.is_empty() && rng.chance(1, 2)
    {
        let p = rng.pick(&required);
        let mut tags = p.required_tags.clone();
        if rng.chance(1, 2) {
            tags.extend(random_tags(rng));
        }
        tags.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    } else if rng.chance(1, 2) {
        random_tags(rng)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    } else {
        BTreeMap::new()
    };
    // Half the time actions some permission allows, for the same reason.
    let pool: &[Action] = if !perms.is_empty() && rng.chance(1, 2) {
        &perms[rng.index(perms.len())].actions
    } else {
        &Action::ALL
    };
    let mut actions = vec![rng.pick(pool)];
    if rng.chance(1, 2) {
        actions.push(rng.pick(pool));
    }
    let case = Case {
        perms: perms.iter().map(Perm::proto).collect(),
        user: u,
        kind,
        name: rng.pick(NAMES).to_string(),
        tags,
        actions,
        filter_only: rng.chance(1, 2),
    };
    (case, perms)
}

const CASES: usize = 4000;

#[tokio::test]
async fn random_matrix_matches_feast() {
    let Some(python) = larder_testkit::feast::python() else {
        return;
    };
    let mut rng = Rng(0x001A_2DE5_F00D_2024);
    let (cases, perms): (Vec<Case>, Vec<Vec<Perm>>) = (0..CASES).map(|_| random_case(&mut rng)).unzip();
    let started = std::time::Instant::now();
    let py = feast(&python, &cases, &[]).await;
    let feast_time = started.elapsed();
    let messages = compare(&cases, &py.results, None);

    // Coverage: what the matrix exercised.
    let mut outcomes: BTreeMap<(bool, String), usize> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut requested: BTreeMap<&str, usize> = BTreeMap::new();
    let mut allowed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut perm_types: BTreeMap<&str, usize> = BTreeMap::new();
    let mut policies = [0usize; 4];
    let mut with_required_tags = 0;
    let mut tagged_permission_resources = 0;
    let mut tag_decided = 0;
    let mut error_kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for ((c, ps), r) in cases.iter().zip(&perms).zip(&py.results) {
        let outcome = format!("{:?}", r.outcome).to_lowercase();
        *outcomes.entry((c.filter_only, outcome)).or_default() += 1;
        *kinds.entry(kind_name(c.kind)).or_default() += 1;
        for a in &c.actions {
            *requested.entry(a.name()).or_default() += 1;
        }
        for p in ps {
            policies[p.policy.as_ref().map_or(0, Pol::index)] += 1;
            for a in &p.actions {
                *allowed.entry(a.name()).or_default() += 1;
            }
            for t in &p.types {
                *perm_types.entry(kind_name(*t)).or_default() += 1;
            }
            if p.types.is_empty() {
                *perm_types.entry("(all)").or_default() += 1;
            }
            with_required_tags += usize::from(!p.required_tags.is_empty());
        }
        if c.kind == ResourceType::Permission && !c.tags.is_empty() {
            tagged_permission_resources += 1;
            // Would the outcome or message change if it had no tags?
            let untagged = Case {
                tags: BTreeMap::new(),
                ..c.clone()
            };
            tag_decided += usize::from(larder(&untagged) != larder(c));
        }
        if let Some(m) = &r.message {
            let k = if m.starts_with("No permissions defined and no authenticated user") {
                "no permissions, anonymous"
            } else if m.starts_with("No permissions defined to manage") {
                "no matching permission"
            } else {
                "denied by policy"
            };
            *error_kinds.entry(k).or_default() += 1;
        }
    }
    let count = |filter: Option<bool>, o: &str| -> usize {
        outcomes
            .iter()
            .filter(|((f, k), _)| filter.is_none_or(|x| x == *f) && k == o)
            .map(|(_, n)| n)
            .sum()
    };
    println!(
        "{CASES} cases in {feast_time:.1?} (Feast): granted {}, dropped {}, error {} \
         (check: granted {} / error {}; filter: granted {} / dropped {} / error {}); \
         {messages} messages compared",
        count(None, "granted"),
        count(None, "dropped"),
        count(None, "error"),
        count(Some(false), "granted"),
        count(Some(false), "error"),
        count(Some(true), "granted"),
        count(Some(true), "dropped"),
        count(Some(true), "error"),
    );
    println!("errors: {error_kinds:?}");
    println!("resource types: {kinds:?}");
    println!("permission types: {perm_types:?}");
    println!("requested actions: {requested:?}");
    println!("allowed actions: {allowed:?}");
    println!(
        "policies (roles, groups, namespaces, combined): {policies:?}; \
         permissions with required_tags: {with_required_tags}; tagged Permission resources: \
         {tagged_permission_resources} ({tag_decided} decided by the tags)"
    );

    let meaningful = CASES / 20;
    assert_eq!(count(Some(false), "dropped"), 0, "check never drops");
    for (filter, o) in [
        (Some(false), "granted"),
        (Some(false), "error"),
        (Some(true), "granted"),
        (Some(true), "dropped"),
        (Some(true), "error"),
    ] {
        assert!(
            count(filter, o) >= meaningful,
            "too few {o} outcomes (filter_only {filter:?}): {outcomes:?}"
        );
    }
    for k in [
        "no permissions, anonymous",
        "no matching permission",
        "denied by policy",
    ] {
        assert!(
            error_kinds.get(k).copied().unwrap_or(0) >= 50,
            "too few errors of kind {k}: {error_kinds:?}"
        );
    }
    assert!(messages >= CASES / 5, "too few messages compared: {messages}");
    for t in ResourceType::ALL {
        assert!(
            kinds.get(kind_name(t)).copied().unwrap_or(0) >= 100,
            "resource type {t:?}: {kinds:?}"
        );
        assert!(
            perm_types.get(kind_name(t)).copied().unwrap_or(0) >= 50,
            "permission type {t:?}"
        );
    }
    assert!(
        perm_types.get("(all)").copied().unwrap_or(0) >= 100,
        "permissions for all types"
    );
    for a in Action::ALL {
        assert!(requested.get(a.name()).copied().unwrap_or(0) >= 100, "requested {a:?}");
        assert!(allowed.get(a.name()).copied().unwrap_or(0) >= 100, "allowed {a:?}");
    }
    assert!(policies.iter().all(|n| *n >= 100), "policies: {policies:?}");
    assert!(
        with_required_tags >= 100,
        "permissions with required_tags: {with_required_tags}"
    );
    assert!(
        tagged_permission_resources >= 100,
        "tagged Permission resources: {tagged_permission_resources}"
    );
    assert!(
        tag_decided >= 20,
        "Permission resources decided by required_tags: {tag_decided}"
    );
}

// ---------------------------------------------------------------------------
// One hand-written case per rule of `permissions.rs`' module doc.

const FV: ResourceType = ResourceType::FeatureView;
const DESCRIBE: &[Action] = &[Action::Describe];

struct Hand {
    label: &'static str,
    case: Case,
    want: Outcome,
    /// The exact message, where the case pins one.
    message: Option<&'static str>,
}

/// A case: by default alice (role r, group dev, namespace ns1) checks
/// DESCRIBE on the FeatureView `v`, and is granted.
fn h(label: &'static str, perms: &[Perm]) -> Hand {
    Hand {
        label,
        case: Case {
            perms: perms.iter().map(Perm::proto).collect(),
            user: user("alice", &["r"], &["dev"], &["ns1"]),
            kind: FV,
            name: "v".into(),
            tags: BTreeMap::new(),
            actions: DESCRIBE.to_vec(),
            filter_only: false,
        },
        want: Outcome::Granted,
        message: None,
    }
}

impl Hand {
    fn user(mut self, u: User) -> Self {
        self.case.user = u;
        self
    }

    fn on(mut self, kind: ResourceType, name: &str) -> Self {
        self.case.kind = kind;
        self.case.name = name.into();
        self
    }

    fn actions(mut self, a: &[Action]) -> Self {
        self.case.actions = a.to_vec();
        self
    }

    fn filter(mut self) -> Self {
        self.case.filter_only = true;
        self
    }

    fn tags(mut self, t: &[(&str, &str)]) -> Self {
        self.case.tags = t.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self
    }

    fn want(mut self, o: Outcome) -> Self {
        self.want = o;
        self
    }

    fn message(mut self, m: &'static str) -> Self {
        self.want = Outcome::Error;
        self.message = Some(m);
        self
    }
}

fn hand_cases() -> Vec<Hand> {
    use Outcome::{Dropped, Error};
    use ResourceType as T;
    let nobody = || user("alice", &[], &[], &[]);
    let anonymous = || user("", &[], &[], &[]);
    let y = || user("u", &["y"], &[], &[]);
    let r = || roles(&["r"]);
    let fv_r = || Perm::new("p", &[FV], DESCRIBE, r());
    let perm_r = || Perm::new("p", &[T::Permission], DESCRIBE, r());
    let all_r = || Perm::new("p", &[], DESCRIBE, r());
    let patterned = |name| Perm::new(name, &[FV], DESCRIBE, roles(&["x"])).patterns(&["driver.*"]);
    let plain = |name| Perm::new(name, &[FV], DESCRIBE, roles(&["x"]));
    let read = |name| Perm::new(name, &[FV], &[Action::ReadOnline], r());
    let write = |name| Perm::new(name, &[FV], &[Action::WriteOnline], r());
    let read_write = [Action::ReadOnline, Action::WriteOnline];
    let fv_by = |name, p: Pol| Perm::new(name, &[FV], DESCRIBE, p);
    let groups = |g: &[&str]| Pol::Groups(strings(g));
    let namespaces = |n: &[&str]| Pol::Namespaces(strings(n));
    let combined = |g: &[&str], n: &[&str]| Pol::Combined(strings(g), strings(n));
    const ANONYMOUS: &str = "No permissions defined and no authenticated user context. Access denied.";
    vec![
        // No permissions: open to authenticated users, closed to anonymous.
        h("no permissions, anonymous, check", &[])
            .user(anonymous())
            .message(ANONYMOUS),
        h("no permissions, anonymous, filter", &[])
            .user(anonymous())
            .filter()
            .message(ANONYMOUS),
        h("no permissions, user, check", &[])
            .user(nobody())
            .actions(&Action::ALL),
        h("no permissions, user, filter", &[])
            .user(nobody())
            .on(T::Project, "v")
            .filter(),
        h("permissions, anonymous with the role", &[fv_r()]).user(user("", &["r"], &[], &[])),
        // Types: isinstance, so subclasses match, superclasses do not.
        h("FeatureView permission, StreamFeatureView", &[fv_r()]).on(T::StreamFeatureView, "v"),
        h("FeatureView permission, BatchFeatureView", &[fv_r()]).on(T::BatchFeatureView, "v"),
        h("FeatureView permission, OnDemandFeatureView", &[fv_r()])
            .on(T::OnDemandFeatureView, "driver_stats")
            .message(
                "No permissions defined to manage [<AuthzedAction.DESCRIBE: 'describe'>] \
                 on <class 'feast.on_demand_feature_view.OnDemandFeatureView'>/driver_stats.",
            ),
        h("FeatureView permission, LabelView", &[fv_r()])
            .on(T::LabelView, "v")
            .want(Error),
        h(
            "StreamFeatureView permission, FeatureView",
            &[Perm::new("p", &[T::StreamFeatureView], DESCRIBE, r())],
        )
        .want(Error),
        h("no types = all types, Project", &[all_r()]).on(T::Project, "v"),
        h("no types = all types, LabelView", &[all_r()]).on(T::LabelView, "v"),
        h("no types = all types, DataSource", &[all_r()]).on(T::DataSource, "v"),
        // Names: a stripped pattern must match the whole name; none = any name.
        h("pattern full-matches", &[fv_r().patterns(&["driver"])])
            .on(FV, "driver_stats")
            .want(Error),
        h("alternation full-matches", &[fv_r().patterns(&["a|b"])])
            .on(FV, "ab")
            .want(Error),
        h("alternation matches", &[fv_r().patterns(&["a|b"])]).on(FV, "b"),
        h("one of the patterns", &[fv_r().patterns(&["x", ".*_v2"])]).on(FV, "driver_v2"),
        h("pattern stripped", &[fv_r().patterns(&[" driver_stats "])]).on(FV, "driver_stats"),
        // Actions: one permission must allow every requested action.
        h("all actions, one missing", &[read("p")])
            .actions(&read_write)
            .message(
                "No permissions defined to manage [<AuthzedAction.READ_ONLINE: 'read_online'>, \
             <AuthzedAction.WRITE_ONLINE: 'write_online'>] on <class 'feast.feature_view.FeatureView'>/v.",
            ),
        h("all actions, split over two permissions", &[read("a"), write("b")])
            .actions(&read_write)
            .want(Error),
        h("all actions, one requested", &[read("a"), write("b")]).actions(&[Action::WriteOnline]),
        h("all actions, all allowed", &[Perm::new("p", &[FV], &read_write, r())]).actions(&read_write),
        // Affirmative: one accepting policy among the matches grants.
        h("affirmative, second grants", &[plain("a"), fv_by("b", roles(&["y"]))]).user(y()),
        h("affirmative, first grants", &[fv_by("a", roles(&["y"])), plain("b")]).user(y()),
        h(
            "affirmative, all deny",
            &[plain("a"), fv_by("b", roles(&["y", "it's"]))],
        )
        .user(nobody())
        .message(
            "Permission a denied execution of ['DESCRIBE'] to FeatureView:v: Requires roles ['x'],\
                 Permission b denied execution of ['DESCRIBE'] to FeatureView:v: Requires roles ['y', \"it's\"]",
        ),
        h(
            "affirmative, an unmatched permission has no vote",
            &[plain("a"), Perm::new("b", &[T::Entity], DESCRIBE, r())],
        )
        .want(Error),
        h("group policy grants", &[fv_by("a", groups(&["dev"]))]),
        h("group policy denies", &[fv_by("a", groups(&["ops"]))]).message(
            "Permission a denied execution of ['DESCRIBE'] to FeatureView:v: \
             User is not added into the permitted groups",
        ),
        h("namespace policy grants", &[fv_by("a", namespaces(&["ns1"]))]),
        h("namespace policy denies", &[fv_by("a", namespaces(&["ns2"]))]).message(
            "Permission a denied execution of ['DESCRIBE'] to FeatureView:v: \
             User is not added into the permitted namespaces",
        ),
        h(
            "combined policy, namespace only",
            &[fv_by("a", combined(&["ops"], &["ns1"]))],
        ),
        h(
            "combined policy, group only",
            &[fv_by("a", combined(&["dev"], &["ns2"]))],
        ),
        h("combined policy denies", &[fv_by("a", combined(&["ops"], &["ns2"]))]).message(
            "Permission a denied execution of ['DESCRIBE'] to FeatureView:v: \
             User must be in at least one of the permitted groups or namespaces",
        ),
        h("an empty role list denies", &[fv_by("a", roles(&[]))])
            .message("Permission a denied execution of ['DESCRIBE'] to FeatureView:v: Requires roles []"),
        // Filter mode: drop silently only where Feast does.
        h("filter, denied by a patterned permission", &[patterned("a")])
            .user(nobody())
            .on(FV, "driver_x")
            .filter()
            .want(Dropped),
        h("check, denied by a patterned permission", &[patterned("a")])
            .user(nobody())
            .on(FV, "driver_x")
            .want(Error),
        h("filter, denied by a plain permission", &[plain("a")])
            .user(nobody())
            .on(FV, "driver_x")
            .filter()
            .message("Permission a denied execution of ['DESCRIBE'] to FeatureView:driver_x: Requires roles ['x']"),
        h("filter, denied, the last vote is plain", &[patterned("a"), plain("b")])
            .user(nobody())
            .on(FV, "driver_x")
            .filter()
            .want(Error),
        h(
            "filter, denied, the last vote is patterned",
            &[plain("b"), patterned("a")],
        )
        .user(nobody())
        .on(FV, "driver_x")
        .filter()
        .want(Dropped),
        h("filter, granted", &[patterned("a")])
            .user(user("u", &["x"], &[], &[]))
            .on(FV, "driver_x")
            .filter(),
        h("filter, unmatched name, patterned type", &[patterned("a")])
            .user(nobody())
            .on(FV, "customer")
            .filter()
            .want(Dropped),
        h("check, unmatched name, patterned type", &[patterned("a")])
            .user(nobody())
            .on(FV, "customer")
            .want(Error),
        h("filter, unmatched action, patterned type", &[patterned("a")])
            .on(FV, "driver_x")
            .actions(&[Action::Delete])
            .filter()
            .want(Dropped),
        h("filter, unmatched subclass, patterned type", &[patterned("a")])
            .on(T::StreamFeatureView, "customer")
            .filter()
            .want(Dropped),
        h("filter, unmatched action, plain type", &[plain("a")])
            .actions(&[Action::Delete])
            .filter()
            .message(
                "No permissions defined to manage [<AuthzedAction.DELETE: 'delete'>] \
                 on <class 'feast.feature_view.FeatureView'>/v.",
            ),
        h(
            "filter, unmatched action, plain and patterned type",
            &[plain("a"), patterned("b")],
        )
        .actions(&[Action::Delete])
        .filter()
        .want(Dropped),
        h("filter, no permission for the type", &[patterned("a")])
            .on(T::Entity, "driver_x")
            .filter()
            .want(Error),
        // required_tags: only a Permission resource's own required_tags count.
        h(
            "required_tags ignored for a FeatureView",
            &[fv_r().required_tags(&[("team", "a")])],
        )
        .tags(&[("team", "b")]),
        h(
            "required_tags, untagged Permission",
            &[perm_r().required_tags(&[("team", "a")])],
        )
        .on(T::Permission, "v"),
        h(
            "required_tags, Permission tagged alike",
            &[perm_r().required_tags(&[("team", "a")])],
        )
        .on(T::Permission, "v")
        .tags(&[(" team ", "a "), ("env", "x")]),
        h(
            "required_tags, Permission tagged otherwise",
            &[perm_r().required_tags(&[("team", "a")])],
        )
        .on(T::Permission, "v")
        .tags(&[("team", "b")])
        .message(
            "No permissions defined to manage [<AuthzedAction.DESCRIBE: 'describe'>] \
                 on <class 'feast.permissions.permission.Permission'>/v.",
        ),
        h(
            "required_tags, Permission without the key",
            &[perm_r().required_tags(&[("team", "")])],
        )
        .on(T::Permission, "v")
        .tags(&[("env", "x")])
        .want(Error),
        h(
            "required_tags, filter, patterned Permission type",
            &[perm_r().patterns(&["v"]).required_tags(&[("team", "a")])],
        )
        .on(T::Permission, "v")
        .tags(&[("team", "b")])
        .filter()
        .want(Dropped),
    ]
}

/// Permissions Feast's `Permission.from_proto` refuses to load.
fn unloadable() -> Vec<(&'static str, fc::Permission)> {
    let base = || Perm::new("p", &[FV], DESCRIBE, roles(&["r"])).proto();
    let edit = |f: &dyn Fn(&mut fc::PermissionSpec)| {
        let mut p = base();
        f(p.spec.as_mut().expect("spec"));
        p
    };
    vec![
        ("no actions", edit(&|s| s.actions.clear())),
        ("no policy", edit(&|s| s.policy = None)),
        (
            "a policy without a type",
            edit(&|s| {
                s.policy = Some(fc::Policy {
                    name: "x".into(),
                    ..Default::default()
                })
            }),
        ),
        ("an unknown type", edit(&|s| s.types.push(99))),
        ("an unknown action", edit(&|s| s.actions.push(99))),
    ]
}

#[tokio::test]
async fn each_rule_matches_feast() {
    let Some(python) = larder_testkit::feast::python() else {
        return;
    };
    let hands = hand_cases();
    let cases: Vec<Case> = hands.iter().map(|h| h.case.clone()).collect();
    let labels: Vec<&str> = hands.iter().map(|h| h.label).collect();
    let bad: Vec<(&str, fc::Permission)> = unloadable();
    let bad_protos: Vec<fc::Permission> = bad.iter().map(|(_, p)| p.clone()).collect();
    let py = feast(&python, &cases, &bad_protos).await;
    compare(&cases, &py.results, Some(&labels));
    for (h, p) in hands.iter().zip(&py.results) {
        assert_eq!(p.outcome, h.want, "{}: Feast's outcome", h.label);
        if let Some(m) = h.message {
            assert_eq!(p.message.as_deref(), Some(m), "{}: Feast's message", h.label);
        }
    }
    for ((what, perm), feast_error) in bad.iter().zip(&py.unloadable) {
        assert!(feast_error.is_some(), "Feast loads a permission with {what}");
        let rust = PermissionSet::compile(&[base_ok(), perm.clone()]);
        assert!(rust.is_err(), "Larder compiles a permission with {what}");
        println!(
            "{what}: Feast {}; Larder {}",
            feast_error.as_deref().unwrap_or_default(),
            rust.unwrap_err()
        );
    }
    println!("{} hand-written cases agree with Feast", hands.len());
}

fn base_ok() -> fc::Permission {
    Perm::new("ok", &[FV], DESCRIBE, roles(&["r"])).proto()
}
