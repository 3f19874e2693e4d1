#!/usr/bin/env python3
"""Check, with the Feast 0.67 SDK as the client, that a registry holds exactly the expected objects.

Usage (Feast venv python, TZ=UTC):
  check_registry.py --repo-dir DIR --expect FILE.json [--var NAME=VALUE ...]

DIR holds a feature_store.yaml (SQL or file registry). The script builds
FeatureStore(repo_path=DIR), lists every kind with list_*(allow_cache=False)
and list_*(allow_cache=True), fetches each expected object with get_*, and
compares all of them with FILE.json. Exit 0 and print `OK <n> checks` when
everything matches; print every mismatch and exit 1 otherwise; exit 2 when the
expectations file itself is malformed.

Strict: every listed object must be expected (Feast's hidden `__dummy` entity
is never listed by the SDK), every expected object must be listed and
gettable, and each object's fields must match, with the defaults below
applied to omitted optional fields (so unexpected tags, descriptions, ... fail).

Expectations format (JSON object; "?" = optional, default after "="):

{
  "project": "driver_stats",                 # FeatureStore.project (from feature_store.yaml)
  "projects": {                              # list_projects(): exactly these names
    "driver_stats": {"description"?: "", "tags"?: {}, "owner"?: ""}
  },
  "entities": {                              # list_entities() (hides __dummy)
    "driver": {"join_key": "driver_id",
               "value_type": "INT64",        # feast.ValueType name: STRING, INT64, INT32, BYTES, ...
               "description"?: "", "tags"?: {}, "owner"?: ""}
  },
  "data_sources": {                          # list_data_sources()
    "src":  {"type": "file",                 # FileSource
             "path": "/abs/x.parquet",       # FileSource.path == file_options.uri, exact string
             "timestamp_field": "event_timestamp",
             "created_timestamp_column"?: "", "field_mapping"?: {},
             "description"?: "", "tags"?: {}, "owner"?: ""},
    "push": {"type": "push",                 # PushSource
             "batch_source": "src",          # name; its nested copy is also compared with the
                                             # "src" expectation (type, path, timestamp fields)
             "description"?: "", "tags"?: {}, "owner"?: ""},
    "req":  {"type": "request",              # RequestSource
             "schema": {"val": "Int64"},     # field name -> Feast dtype string, in order
             "description"?: "", "tags"?: {}, "owner"?: ""}
  },
  "feature_views": {                         # list_feature_views()
    "fv": {"entities": ["driver"],           # entity names, in order
           "features": {"conv_rate": "Float32", ...},   # name -> str(dtype), in order
           "entity_columns": {"driver_id": "Int64"},    # join key -> str(dtype), in order
           "ttl_seconds": 86400,             # 0 = no ttl
           "batch_source": "src",            # name; nested copy compared with "src" like above
           "stream_source"?: null,           # name of the PushSource, or null
           "online"?: true, "offline"?: false,
           "description"?: "", "tags"?: {}, "owner"?: ""}
  },
  "feature_services": {                      # list_feature_services()
    "svc": {"projections": {"fv": ["conv_rate", "avg_daily_trips"]},  # view -> features, in order
            "aliases"?: {},                  # view -> projection alias; unset aliases must be absent
            "description"?: "", "tags"?: {}, "owner"?: ""}
  },                                         # projected feature dtypes must match the view's
  "permissions": {                           # list_permissions()
    "p": {"types": ["FeatureView", "FeatureService"],   # Feast class names, any order
          "actions": ["DESCRIBE", "READ_ONLINE"],       # AuthzedAction names, any order
          "policy": {"roles": ["r"]},        # or {"groups": [...]}, {"namespaces": [...]},
                                             #    {"groups": [...], "namespaces": [...]} (combined)
          "name_patterns"?: [], "required_tags"?: {}, "tags"?: {}}
  },
  "on_demand_feature_views"?: [],            # names from list_on_demand_feature_views()
  "stream_feature_views"?: []                # names from list_stream_feature_views()
}

Every string value may contain ${NAME}, replaced from --var NAME=VALUE;
${REPO_DIR} is predefined as the absolute --repo-dir.
"""
import argparse
import json
import os
import string
import sys
from pathlib import Path

os.environ.setdefault("TZ", "UTC")
os.environ.setdefault("FEAST_USAGE", "False")


class BadExpectations(Exception):
    pass


# ---------------------------------------------------------------- expectations

COMMON = {"description": "", "tags": {}, "owner": ""}
SPEC = {
    # kind: (required keys, optional keys with defaults)
    "projects": ((), COMMON),
    "entities": (("join_key", "value_type"), COMMON),
    "source:file": (
        ("type", "path", "timestamp_field"),
        {**COMMON, "created_timestamp_column": "", "field_mapping": {}},
    ),
    "source:push": (("type", "batch_source"), COMMON),
    "source:request": (("type", "schema"), COMMON),
    "feature_views": (
        ("entities", "features", "entity_columns", "ttl_seconds", "batch_source"),
        {**COMMON, "stream_source": None, "online": True, "offline": False},
    ),
    "feature_services": (("projections",), {**COMMON, "aliases": {}}),
    "permissions": (
        ("types", "actions", "policy"),
        {"name_patterns": [], "required_tags": {}, "tags": {}},
    ),
}
TOP_LEVEL = {
    "project", "projects", "entities", "data_sources", "feature_views",
    "feature_services", "permissions", "on_demand_feature_views", "stream_feature_views",
}


def substitute(value, variables):
    if isinstance(value, str):
        try:
            return string.Template(value).substitute(variables)
        except (KeyError, ValueError) as e:
            raise BadExpectations(f"cannot substitute {value!r}: unknown or bad variable {e}")
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def normalise_object(kind, name, obj):
    """Check the keys of one expected object and fill in defaults."""
    if not isinstance(obj, dict):
        raise BadExpectations(f"{kind}/{name}: expected a JSON object")
    if kind == "data_sources":
        kind = f"source:{obj.get('type')}"
        if kind not in SPEC:
            raise BadExpectations(f"data_sources/{name}: type must be file, push or request")
    required, optional = SPEC[kind]
    missing = [k for k in required if k not in obj]
    unknown = [k for k in obj if k not in required and k not in optional]
    if missing or unknown:
        raise BadExpectations(f"{kind}/{name}: missing keys {missing}, unknown keys {unknown}")
    return {**json.loads(json.dumps(optional)), **obj}


def load_expectations(path, variables):
    raw = json.loads(Path(path).read_text())
    unknown = set(raw) - TOP_LEVEL
    if unknown or "project" not in raw:
        raise BadExpectations(f"top level: unknown keys {sorted(unknown)} or missing 'project'")
    exp = substitute(raw, variables)
    for kind in ("projects", "entities", "data_sources", "feature_views", "feature_services", "permissions"):
        exp[kind] = {n: normalise_object(kind, n, o) for n, o in exp.get(kind, {}).items()}
    for kind in ("on_demand_feature_views", "stream_feature_views"):
        exp[kind] = sorted(exp.get(kind, []))
    for name, p in exp["permissions"].items():
        policy = p["policy"]
        if (not isinstance(policy, dict) or not policy or set(policy) - {"roles", "groups", "namespaces"}
                or not all(isinstance(v, list) for v in policy.values())):
            raise BadExpectations(f"permissions/{name}: policy must be roles, groups, namespaces or groups+namespaces")
    return exp


# ---------------------------------------------------------------- actual values


def dtype_map(fields):
    return [[f.name, str(f.dtype)] for f in fields]


def common(obj):
    return {"description": obj.description or "", "tags": dict(obj.tags or {}), "owner": obj.owner or ""}


def project_fields(p):
    return common(p)


def entity_fields(e):
    return {"join_key": e.join_key, "value_type": e.value_type.name, **common(e)}


def source_fields(d):
    from feast import FileSource, PushSource, RequestSource

    if isinstance(d, FileSource):
        return {
            "type": "file",
            "path": d.path,
            "timestamp_field": d.timestamp_field,
            "created_timestamp_column": d.created_timestamp_column or "",
            "field_mapping": dict(d.field_mapping or {}),
            **common(d),
        }
    if isinstance(d, PushSource):
        return {"type": "push", "batch_source": d.batch_source.name if d.batch_source else None, **common(d)}
    if isinstance(d, RequestSource):
        return {"type": "request", "schema": dtype_map(d.schema), **common(d)}
    return {"type": type(d).__name__, **common(d)}


def feature_view_fields(fv):
    return {
        "entities": list(fv.entities),
        "features": dtype_map(fv.features),
        "entity_columns": dtype_map(fv.entity_columns),
        "ttl_seconds": int(fv.ttl.total_seconds()) if fv.ttl else 0,
        "batch_source": fv.batch_source.name if fv.batch_source else None,
        "stream_source": fv.stream_source.name if fv.stream_source else None,
        "online": fv.online,
        "offline": fv.offline,
        **common(fv),
    }


def feature_service_fields(fs):
    return {
        "projections": [[p.name, [f.name for f in p.features]] for p in fs.feature_view_projections],
        "aliases": {p.name: p.name_alias for p in fs.feature_view_projections if p.name_alias},
        **common(fs),
    }


def policy_fields(policy):
    from feast.permissions.policy import (
        CombinedGroupNamespacePolicy, GroupBasedPolicy, NamespaceBasedPolicy, RoleBasedPolicy,
    )

    if isinstance(policy, RoleBasedPolicy):
        return {"roles": sorted(policy.roles)}
    if isinstance(policy, GroupBasedPolicy):
        return {"groups": sorted(policy.groups)}
    if isinstance(policy, NamespaceBasedPolicy):
        return {"namespaces": sorted(policy.namespaces)}
    if isinstance(policy, CombinedGroupNamespacePolicy):
        return {"groups": sorted(policy.groups), "namespaces": sorted(policy.namespaces)}
    return {"unknown_policy": type(policy).__name__}


def permission_fields(p):
    return {
        "types": sorted(t.__name__ for t in p.types),
        "actions": sorted(a.name for a in p.actions),
        "policy": policy_fields(p.policy),
        "name_patterns": sorted(p.name_patterns or []),
        "required_tags": dict(p.required_tags or {}),
        "tags": dict(p.tags or {}),
    }


def expected_view(kind, exp):
    """Bring an expectation into the shape the *_fields functions return."""
    exp = dict(exp)
    if kind == "feature_views":
        exp["features"] = [list(kv) for kv in exp["features"].items()]
        exp["entity_columns"] = [list(kv) for kv in exp["entity_columns"].items()]
    elif kind == "feature_services":
        exp["projections"] = [list(kv) for kv in exp["projections"].items()]
    elif kind == "permissions":
        exp["types"] = sorted(exp["types"])
        exp["actions"] = sorted(exp["actions"])
        exp["policy"] = {k: sorted(v) for k, v in exp["policy"].items()}
        exp["name_patterns"] = sorted(exp["name_patterns"])
    elif kind == "data_sources" and exp["type"] == "request":
        exp["schema"] = [list(kv) for kv in exp["schema"].items()]
    return exp


# ---------------------------------------------------------------- comparison


class Checker:
    def __init__(self):
        self.checks = 0
        self.failures = []

    def eq(self, where, got, want):
        self.checks += 1
        if got != want:
            self.failures.append(f"{where}:\n    expected {json.dumps(want, sort_keys=True)}\n    got      {json.dumps(got, sort_keys=True, default=repr)}")

    def fail(self, where, message):
        self.checks += 1
        self.failures.append(f"{where}: {message}")

    def fields(self, where, got, want):
        for key in sorted(want):
            self.eq(f"{where} .{key}", got.get(key, "<absent>"), want[key])
        extra = sorted(set(got) - set(want))
        if extra:  # defensive: every reported field has an expectation (after defaults)
            self.fail(where, f"fields {extra} have no expectation")


def call(c, where, fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - any SDK error is a test failure
        c.fail(where, f"raised {type(e).__name__}: {e}")
        return None


def list_feature_services(store, allow_cache):
    # FeatureStore.list_feature_services() has no allow_cache (it never uses the cache).
    if allow_cache:
        return store.registry.list_feature_services(store.project, allow_cache=True)
    return store.list_feature_services()


KINDS = [
    # kind, list function (store, allow_cache), get function (store, name), fields function
    ("projects", lambda s, c: s.list_projects(allow_cache=c), lambda s, n: s.get_project(n), project_fields),
    ("entities", lambda s, c: s.list_entities(allow_cache=c), lambda s, n: s.get_entity(n), entity_fields),
    ("data_sources", lambda s, c: s.list_data_sources(allow_cache=c), lambda s, n: s.get_data_source(n), source_fields),
    ("feature_views", lambda s, c: s.list_feature_views(allow_cache=c), lambda s, n: s.get_feature_view(n), feature_view_fields),
    ("feature_services", list_feature_services, lambda s, n: s.get_feature_service(n), feature_service_fields),
    ("permissions", lambda s, c: s.list_permissions(allow_cache=c), lambda s, n: s.get_permission(n), permission_fields),
]


def check_nested_source(c, where, nested, exp_sources, name):
    """A source embedded in a view / push source must match the standalone expectation."""
    if nested is None or name not in exp_sources:
        return
    want = expected_view("data_sources", exp_sources[name])
    got = source_fields(nested)
    for key in ("type", "path", "timestamp_field", "created_timestamp_column", "batch_source"):
        if key in want:
            c.eq(f"{where} .{key}", got.get(key, "<absent>"), want[key])


def check_object(c, where, kind, obj, exp, all_exp):
    c.fields(where, FIELDS[kind](obj), expected_view(kind, exp))
    sources = all_exp["data_sources"]
    if kind == "data_sources" and exp["type"] == "push":
        check_nested_source(c, f"{where} batch_source", getattr(obj, "batch_source", None), sources, exp["batch_source"])
    elif kind == "feature_views":
        check_nested_source(c, f"{where} batch_source", obj.batch_source, sources, exp["batch_source"])
        if exp["stream_source"]:
            check_nested_source(c, f"{where} stream_source", obj.stream_source, sources, exp["stream_source"])
    elif kind == "feature_services":
        for p in obj.feature_view_projections:
            view = all_exp["feature_views"].get(p.name)
            if view is not None:
                want = [[f, view["features"].get(f, "<not in view>")] for f in (x.name for x in p.features)]
                c.eq(f"{where} projection {p.name} dtypes", dtype_map(p.features), want)


FIELDS = {kind: fields for kind, _, _, fields in KINDS}


def forbid_sdk_project_rows(c):
    """SqlRegistry.__init__ inserts a `projects` row for every feast_metadata project_uuid
    that lacks one. That would hide a registry writer that forgot the projects row (on
    the second client start), so refuse the write and report it instead."""
    from feast.infra.registry.sql import SqlRegistry

    def apply_project(self, project, commit=True):
        c.fail("projects", f"the Feast client tried to create the missing projects row for {project.name!r} "
               "(feast_metadata has its project_uuid; write refused)")

    SqlRegistry.apply_project = apply_project


def run(store, exp, c):
    c.eq("project", store.project, exp["project"])
    for kind, list_fn, get, _ in KINDS:
        want_names = sorted(exp[kind])
        for allow_cache in (False, True):
            where = f"{kind} [list, cache={allow_cache}]"
            listed = call(c, where, lambda: list_fn(store, allow_cache))
            if listed is None:
                continue
            by_name = {}
            for obj in listed:
                if obj.name in by_name:
                    c.fail(where, f"{obj.name!r} listed twice")
                by_name[obj.name] = obj
            c.eq(f"{where} names", sorted(by_name), want_names)
            for name in want_names:
                if name in by_name:
                    check_object(c, f"{kind}/{name} [list, cache={allow_cache}]", kind, by_name[name], exp[kind][name], exp)
        for name in want_names:
            obj = call(c, f"{kind}/{name} [get]", lambda: get(store, name))
            if obj is not None:
                c.eq(f"{kind}/{name} [get] .name", obj.name, name)
                check_object(c, f"{kind}/{name} [get]", kind, obj, exp[kind][name], exp)
    for kind, method in (("on_demand_feature_views", "list_on_demand_feature_views"),
                         ("stream_feature_views", "list_stream_feature_views")):
        listed = call(c, f"{kind} [{method}]", lambda: getattr(store, method)())
        if listed is not None:
            c.eq(f"{kind} [{method}] names", sorted(v.name for v in listed), exp[kind])
    return c


def main():
    ap = argparse.ArgumentParser(description="Check a registry through the Feast SDK against expectations.")
    ap.add_argument("--repo-dir", required=True, type=Path)
    ap.add_argument("--expect", required=True, type=Path)
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()

    variables = {"REPO_DIR": str(args.repo_dir.resolve())}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--var {item!r}: expected NAME=VALUE")
        variables[name] = value
    try:
        exp = load_expectations(args.expect, variables)
    except (BadExpectations, json.JSONDecodeError, OSError) as e:
        print(f"check_registry: bad expectations file {args.expect}: {e}", file=sys.stderr)
        return 2

    from feast import FeatureStore

    c = Checker()
    forbid_sdk_project_rows(c)
    try:
        store = FeatureStore(repo_path=str(args.repo_dir))
        store.registry  # the registry client is created lazily; create it now
    except Exception as e:  # noqa: BLE001
        print(f"FAIL FeatureStore(repo_path={str(args.repo_dir)!r}) raised {type(e).__name__}: {e}")
        return 1
    run(store, exp, c)
    if c.failures:
        print(f"FAIL {len(c.failures)} of {c.checks} checks failed:")
        for f in c.failures:
            print(f"- {f}")
        return 1
    print(f"OK {c.checks} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
