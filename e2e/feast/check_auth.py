#!/usr/bin/env python3
"""Feast 0.67 as the client of Larder's servers with authentication on.

Usage (Feast venv python, TZ=UTC):
  check_auth.py --client NAME=DIR [--client NAME=DIR ...] --ids 1001,1500,99999
                --allowed-view VIEW --denied-view VIEW --features f1,f2
                [--denied-features f1,f2] [--service NAME]

Each DIR holds a feature_store.yaml pointing the SDK at Larder's servers
(`registry: {registry_type: remote}`, `online_store: {type: remote}`) with
that client's `auth` section (`{type: oidc, token: ...}`,
`{type: kubernetes, user_token: ...}` or `{type: no_auth}`). For each client
the script makes the same calls through `FeatureStore(DIR)` and records what
happened, without judging it (crates/cli/tests/auth_e2e.rs asserts):

- `allowed`: get_online_features([ALLOWED:f ...], one row per id) through the
  feature server (HTTP) -> `{"values": {column: [values]}}`;
- `denied`: the same for the denied view;
- `service`: get_online_features(features=store.get_feature_service(SERVICE))
  when --service is given (DESCRIBE through the registry, READ_ONLINE on the
  service through the feature server);
- `list_feature_views`, `list_entities`: the names the remote registry
  returns (sorted);
- `get_feature_view`: the allowed view's name, fetched through the registry.

A call that raises is recorded as `{"raised": CLASS, "module": MODULE,
"message": TEXT}` plus `"code"` for gRPC errors. Prints one JSON line
`{"NAME": {...}, ...}` and exits 0 unless the arguments are bad (2).
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TZ", "UTC")
os.environ.setdefault("FEAST_USAGE", "False")


def raised(e):
    out = {
        "raised": type(e).__name__,
        "module": type(e).__module__,
        "message": str(e)[:2000],
    }
    code = getattr(e, "code", None)
    if callable(code):
        try:
            out["code"] = code().name
        except Exception:  # noqa: BLE001 - not a gRPC status after all
            pass
    return out


def attempt(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the class is what is recorded
        return raised(e)


def json_safe(v):
    if isinstance(v, (str, bool, int)) or v is None:
        return v
    if isinstance(v, float):
        return v if v == v else None
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if hasattr(v, "item"):
        return json_safe(v.item())
    return str(v)


def online(store, features, ids):
    resp = store.get_online_features(features=features, entity_rows=[{"driver_id": i} for i in ids])
    return {"values": json_safe(resp.to_dict())}


def run_client(repo_dir, args, ids):
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo_dir)
    out = {}
    out["allowed"] = attempt(lambda: online(store, [f"{args.allowed_view}:{f}" for f in args.features], ids))
    out["denied"] = attempt(lambda: online(store, [f"{args.denied_view}:{f}" for f in args.denied_features], ids))
    if args.service:
        out["service"] = attempt(lambda: online(store, store.get_feature_service(args.service), ids))
    out["list_feature_views"] = attempt(lambda: sorted(fv.name for fv in store.list_feature_views()))
    out["list_entities"] = attempt(lambda: sorted(e.name for e in store.list_entities()))
    out["get_feature_view"] = attempt(lambda: store.get_feature_view(args.allowed_view).name)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--client", action="append", required=True, help="NAME=DIR")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--allowed-view", required=True)
    ap.add_argument("--denied-view", required=True)
    ap.add_argument("--features", required=True)
    ap.add_argument("--denied-features")
    ap.add_argument("--service")
    args = ap.parse_args()
    args.features = args.features.split(",")
    args.denied_features = args.denied_features.split(",") if args.denied_features else args.features
    try:
        ids = [int(i) for i in args.ids.split(",")]
    except ValueError:
        print(f"bad --ids {args.ids!r}", file=sys.stderr)
        return 2
    clients = []
    for c in args.client:
        name, sep, d = c.partition("=")
        if not sep or not name or not os.path.isdir(d):
            print(f"bad --client {c!r}: want NAME=DIR", file=sys.stderr)
            return 2
        clients.append((name, os.path.abspath(d)))

    results = {name: run_client(d, args, ids) for name, d in clients}
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
