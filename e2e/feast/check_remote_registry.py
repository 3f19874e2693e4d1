#!/usr/bin/env python3
"""Feast 0.67 as the client of Larder's registry server (`larder registry-server`).

Usage (Feast venv python, TZ=UTC):
  check_remote_registry.py --repo-dir DIR [--start ISO --end ISO]

DIR is a copy of feast_repo_remote/ (project `growth`) whose feature_store.yaml
has `registry: {registry_type: remote, path: HOST:PORT}` and a local SQLite
online store, and on which `feast apply` has run. Through the server the
script checks (feast-compat.md §10 item 3):

- list_projects / list_entities / list_data_sources / list_feature_views /
  list_on_demand_feature_views / list_feature_services / list_permissions
  (uncached and cached) return exactly what feature_repo.py declares, and
  each object is gettable by name with the expected fields;
- get_feature_view("nope") raises feast.errors.FeatureViewNotFoundException
  (and get_entity("nope") EntityNotFoundException, get_feature_service("nope")
  FeatureServiceNotFoundException);
- store.apply([Entity(merchant)]) (ApplyEntity, Commit, Refresh) makes the
  entity listable;
- store.registry.apply_permission(Permission(writer, RoleBasedPolicy(roles=[...])))
  then list_permissions() shows it with its roles;
- store.materialize(start, end) into the SQLite online store records the
  interval on customer_profile (ApplyMaterialization), and
  get_online_features (GetAnyFeatureView + ListEntities) returns the newest
  row per customer, None for an unknown one, and the on-demand view's value;
- delete_permission / delete_entity remove what the script added (so it can
  run again), and deleting twice raises EntityNotFoundException.

Exit 0 and print `OK <n> checks`; print each mismatch and exit 1 otherwise.
"""
import argparse
import os
import sys
from datetime import datetime, timezone

os.environ.setdefault("TZ", "UTC")
os.environ.setdefault("FEAST_USAGE", "False")

FAILURES = []
CHECKS = 0


def check(what, actual, expected):
    global CHECKS
    CHECKS += 1
    if actual != expected:
        FAILURES.append(f"{what}: got {actual!r}, want {expected!r}")


def raises(what, exc_class, fn):
    global CHECKS
    CHECKS += 1
    try:
        fn()
    except exc_class:
        return
    except Exception as e:  # noqa: BLE001 - report the wrong class
        FAILURES.append(f"{what}: raised {type(e).__module__}.{type(e).__name__}: {e}, want {exc_class.__name__}")
        return
    FAILURES.append(f"{what}: no exception, want {exc_class.__name__}")


def parse_ts(s):
    t = datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo-dir", required=True)
    ap.add_argument("--start", default="2024-01-01T00:00:00")
    ap.add_argument("--end", default="2024-01-01T02:00:00")
    args = ap.parse_args()

    repo = os.path.abspath(args.repo_dir)
    # The on-demand view's UDF is pickled by reference to the repo module.
    sys.path.insert(0, repo)

    from feast import Entity, FeatureStore, FeatureView, FileSource, RequestSource, ValueType
    from feast.errors import (
        EntityNotFoundException,
        FeatureServiceNotFoundException,
        FeatureViewNotFoundException,
    )
    from feast.infra.registry.remote import RemoteRegistry
    from feast.permissions.action import AuthzedAction
    from feast.permissions.permission import Permission
    from feast.permissions.policy import RoleBasedPolicy

    store = FeatureStore(repo_path=repo)
    project = store.project
    check("registry class", type(store.registry).__name__, RemoteRegistry.__name__)
    check("project", project, "growth")

    for cached in (False, True):
        tag = "cached" if cached else "uncached"
        if cached:
            store.refresh_registry()
        check(f"{tag} projects", sorted(p.name for p in store.list_projects(allow_cache=cached)), ["growth"])
        check(f"{tag} entities", sorted(e.name for e in store.list_entities(allow_cache=cached)), ["customer"])
        check(
            f"{tag} data sources",
            sorted(d.name for d in store.list_data_sources(allow_cache=cached)),
            ["customer_source", "order_request"],
        )
        check(
            f"{tag} feature views",
            sorted(v.name for v in store.list_feature_views(allow_cache=cached)),
            ["customer_profile"],
        )
        check(
            f"{tag} on-demand views",
            sorted(v.name for v in store.list_on_demand_feature_views(allow_cache=cached)),
            ["order_vs_avg"],
        )
        check(
            f"{tag} feature services",
            sorted(s.name for s in store.registry.list_feature_services(project, allow_cache=cached)),
            ["customer_service"],
        )
        check(
            f"{tag} permissions",
            sorted(p.name for p in store.list_permissions(allow_cache=cached)),
            ["reader"],
        )

    e = store.get_entity("customer")
    check("entity join key", e.join_key, "customer_id")
    check("entity value type", e.value_type, ValueType.STRING)
    check("entity description", e.description, "A customer")

    src = store.get_data_source("customer_source")
    check("source class", type(src).__name__, FileSource.__name__)
    check("source path", src.path, os.path.join(repo, "data", "customer_profile.parquet"))
    check("source timestamp field", src.timestamp_field, "event_timestamp")
    req = store.get_data_source("order_request")
    check("request source class", type(req).__name__, RequestSource.__name__)
    check("request source schema", [(f.name, str(f.dtype)) for f in req.schema], [("order_amount", "Float64")])

    fv = store.get_feature_view("customer_profile")
    check("view features", [(f.name, str(f.dtype)) for f in fv.features],
          [("avg_order", "Float64"), ("orders", "Int64"), ("segment", "String")])
    check("view entities", fv.entities, ["customer"])
    check("view ttl", fv.ttl.total_seconds() if fv.ttl else 0, 7200)
    check("view tags", dict(fv.tags), {"owner": "growth"})
    check("view batch source", fv.batch_source.name, "customer_source")

    odfv = store.get_on_demand_feature_view("order_vs_avg")
    check("odfv features", [(f.name, str(f.dtype)) for f in odfv.features], [("order_vs_avg", "Float64")])
    check("odfv sources", sorted(odfv.source_feature_view_projections) + sorted(odfv.source_request_sources),
          ["customer_profile", "order_request"])
    check("odfv description", odfv.description, "Order amount relative to the customer's average order")

    svc = store.get_feature_service("customer_service")
    check("service projections", [(p.name, [f.name for f in p.features]) for p in svc.feature_view_projections],
          [("customer_profile", ["avg_order"])])

    perm = store.registry.get_permission("reader", project)
    check("permission types", perm.types, [FeatureView])
    check("permission actions", perm.actions, [AuthzedAction.DESCRIBE])
    check("permission roles", list(perm.policy.roles), ["analyst"])

    # NOT_FOUND carries the exception class the client re-raises.
    raises("get_feature_view(nope)", FeatureViewNotFoundException, lambda: store.get_feature_view("nope"))
    raises("get_entity(nope)", EntityNotFoundException, lambda: store.get_entity("nope"))
    raises("get_feature_service(nope)", FeatureServiceNotFoundException, lambda: store.get_feature_service("nope"))

    # store.apply: ListEntities, ApplyEntity (merchant, __dummy), Commit, Refresh.
    store.apply([Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64,
                        description="A merchant")])
    check("entities after apply", sorted(x.name for x in store.list_entities()), ["customer", "merchant"])
    m = store.get_entity("merchant")
    check("applied entity", (m.join_key, m.value_type, m.description), ("merchant_id", ValueType.INT64, "A merchant"))

    # Registry-level permission write, then list.
    store.registry.apply_permission(
        Permission(
            name="writer",
            types=[FeatureView],
            policy=RoleBasedPolicy(roles=["engineer", "pipeline"]),
            actions=[AuthzedAction.WRITE_ONLINE],
        ),
        project,
    )
    perms = {p.name: p for p in store.list_permissions()}
    check("permissions after apply_permission", sorted(perms), ["reader", "writer"])
    if "writer" in perms:
        check("writer roles", list(perms["writer"].policy.roles), ["engineer", "pipeline"])
        check("writer actions", perms["writer"].actions, [AuthzedAction.WRITE_ONLINE])

    # materialize into the local SQLite online store; the interval lands in the registry.
    start, end = parse_ts(args.start), parse_ts(args.end)
    store.materialize(start, end)
    fv = store.get_feature_view("customer_profile")
    intervals = [(s.astimezone(timezone.utc), e.astimezone(timezone.utc)) for s, e in fv.materialization_intervals]
    check("materialization interval recorded", (start, end) in intervals, True)

    store.refresh_registry()
    got = store.get_online_features(
        features=["customer_profile:avg_order", "customer_profile:orders", "customer_profile:segment"],
        entity_rows=[{"customer_id": c} for c in ("c1", "c2", "c3", "nope")],
    ).to_dict()
    check("online customer_id", got.get("customer_id"), ["c1", "c2", "c3", "nope"])
    check("online avg_order", got.get("avg_order"), [11.0, 21.0, 31.0, None])
    check("online orders", got.get("orders"), [2, 3, 4, None])
    check("online segment", got.get("segment"), ["new", "loyal", "vip", None])

    got = store.get_online_features(
        features=store.get_feature_service("customer_service"),
        entity_rows=[{"customer_id": "c2"}],
        full_feature_names=True,
    ).to_dict()
    check("online via feature service", got.get("customer_profile__avg_order"), [21.0])

    got = store.get_online_features(
        features=["customer_profile:avg_order", "order_vs_avg:order_vs_avg"],
        entity_rows=[{"customer_id": "c1", "order_amount": 22.0}, {"customer_id": "c3", "order_amount": 62.0}],
    ).to_dict()
    check("online on-demand view", got.get("order_vs_avg"), [2.0, 2.0])

    # Clean up what this script added (DeleteEntity, DeletePermission), so it can run again.
    store.registry.delete_permission("writer", project)
    store.registry.delete_entity("merchant", project)
    check("permissions after delete", sorted(p.name for p in store.list_permissions()), ["reader"])
    check("entities after delete", sorted(x.name for x in store.list_entities()), ["customer"])
    raises("delete_entity(merchant) again", EntityNotFoundException,
           lambda: store.registry.delete_entity("merchant", project))

    if FAILURES:
        for f in FAILURES:
            print(f"MISMATCH {f}")
        print(f"FAILED {len(FAILURES)} of {CHECKS} checks")
        return 1
    print(f"OK {CHECKS} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
