#!/usr/bin/env python3
"""Feast 0.67 as the client of `larder serve`: the SDK with `online_store: {type: remote}`
must read what `larder get-online-features` reads from the store directly, and its writes
(push, write_to_online_store) must reach the server.

Usage (Feast venv python, TZ=UTC):
  check_remote.py --repo-dir DIR --larder-json FILE --ids 1001,1500,...,99999
                  [--service-json FILE] [--features f1,f2,...]
                  [--push-id 900001] [--write-id 900002] [--update-id 1002]
                  [--view driver_hourly_stats] [--join-key driver_id]
                  [--push-source driver_stats_push] [--service driver_activity]
                  [--server-store sqlite|redis|postgres|mysql]

DIR/feature_store.yaml names the same registry as the server and
`online_store: {type: remote, path: http://HOST:PORT}` (the server's URL). FILE is what
`larder get-online-features --features <view:f,...> --entity <join_key>=<ids> -o json`
printed when reading the store directly (same ids, same order, same features). The
optional service FILE is `larder get-online-features --feature-service <service>
--full-feature-names ... -o json` for the same ids. Exit 0 and print `OK <n> checks`; print
every mismatch and exit 1 otherwise; exit 2 on bad input.

Checks:
  (a) store.get_online_features(features=[view:f...], entity_rows=[{join_key: id}...])
      equals FILE: column names (join key first, features in any order: Feast leaves the
      order within a view unspecified), values (Float32 compared as float32, the rest
      exactly), statuses, from the response proto as check_online.py reads it. The SDK's
      remote store drops `event_timestamps` and infers Value kinds from JSON (float ->
      double_val, int -> int64_val, feast-compat.md section 7), so the kinds are checked
      against that rule, and the timestamps are compared on the raw HTTP response to the
      exact body the SDK sends (the raw response must equal FILE column by column).
  (b) store.get_online_features(features=store.get_feature_service(service),
      full_feature_names=True): column names `<view>__<feature>`, values/statuses equal to
      the matching columns of (a), and to the service FILE when given.
  (c) store.get_online_features(["nope:x"], ...) raises
      feast.errors.FeatureViewNotFoundException (only the double-encoded error body maps
      to it), and the server counted one more 404 on /get-online-features (/metrics), so
      the exception came from the server, not from the client.
  (d) store.push(push_source, df): a pandas DataFrame with all features, event_timestamp
      and created for a new id (--push-id, NOT_FOUND before). The SDK turns a push into
      POST /write-to-online-store (feature_view_name, `allow_registry_cache: false`); the
      server's /metrics must count it. Then get_online_features through the server
      returns the pushed values, PRESENT, and the raw response the pushed timestamp.
  (e) store.write_to_online_store(view, df): a new id (--write-id) with a microsecond
      event timestamp and `created` NaT, plus a newer row for an existing id (--update-id).
      Read back through the server as in (d). The SDK posts the columns `event_timestamp`
      and `created` (naive ISO strings); a NaT `created` goes out as the string "NaT"
      (`pd.NaT.isoformat()`; `null` only when the source has no created column). The
      expected timestamp of the microsecond row is whole seconds with --server-store
      sqlite (Feast's SQLite layout stores epoch seconds), exact otherwise.
"""
import argparse
import datetime as dt
import json
import math
import os
import re
import struct
import sys
import urllib.request

# Declared types of the example's view (examples/driver-stats/manifests/driver-hourly-stats.yaml).
FEATURE_TYPES = {
    "conv_rate": "Float32",
    "acc_rate": "Float32",
    "avg_daily_trips": "Int64",
    "trips_today": "Int32",
    "rating": "Float64",
    "earnings_today": "Float64",
    "online_minutes": "Int32",
    "completed_trips": "Int64",
    "city": "String",
    "is_premium": "Bool",
}
# Value kind the SDK's remote store infers from the JSON value (python_values_to_proto_values).
REMOTE_KIND = {
    "Float32": "double_val",
    "Float64": "double_val",
    "Int32": "int64_val",
    "Int64": "int64_val",
    "String": "string_val",
    "Bool": "bool_val",
}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6}|\.\d{9})?Z$")


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def same_value(ftype: str, got, want) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if ftype in ("Float32", "Float64"):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        if isinstance(want, float) and math.isnan(want):
            return math.isnan(got)
        if ftype == "Float32":
            return f32(float(got)) == f32(float(want))
        return float(got) == float(want)
    if ftype in ("Int32", "Int64"):
        return isinstance(got, int) and not isinstance(got, bool) and got == want
    if ftype == "Bool":
        return isinstance(got, bool) and got == want
    return got == want


def columns_of(body):
    """Server/larder JSON -> (names, {name: {"values", "statuses", "event_timestamps"}})."""
    names = list(body["metadata"]["feature_names"])
    cols = {}
    for name, r in zip(names, body["results"]):
        cols[name] = {
            "values": r.get("values"),
            "statuses": r.get("statuses"),
            "event_timestamps": r.get("event_timestamps"),
        }
    if len(names) != len(body["results"]):
        raise ValueError(f"{len(names)} feature_names but {len(body['results'])} results")
    return names, cols


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo-dir", required=True)
    ap.add_argument("--larder-json", required=True)
    ap.add_argument("--service-json")
    ap.add_argument("--ids", required=True, help="comma-separated join-key values, request order")
    ap.add_argument("--features", default=",".join(FEATURE_TYPES))
    ap.add_argument("--push-id", type=int, default=900_001)
    ap.add_argument("--write-id", type=int, default=900_002)
    ap.add_argument("--update-id", type=int, default=1002)
    ap.add_argument("--view", default="driver_hourly_stats")
    ap.add_argument("--join-key", default="driver_id")
    ap.add_argument("--push-source", default="driver_stats_push")
    ap.add_argument("--service", default="driver_activity")
    ap.add_argument(
        "--server-store",
        default="sqlite",
        choices=["sqlite", "redis", "postgres", "mysql"],
        help="the server's online store: SQLite keeps whole seconds of event timestamps (feast-compat.md 6.1)",
    )
    args = ap.parse_args()

    if os.environ.get("TZ") != "UTC":
        print("warning: TZ is not UTC", file=sys.stderr)
    try:
        ids = [int(x) for x in args.ids.split(",") if x.strip()]
        feats = [f.strip() for f in args.features.split(",") if f.strip()]
        for f in feats:
            if f not in FEATURE_TYPES:
                raise ValueError(f"unknown feature {f}")
        with open(args.larder_json) as f:
            larder_names, larder_cols = columns_of(json.load(f))
        service_file = None
        if args.service_json:
            with open(args.service_json) as f:
                service_file = columns_of(json.load(f))
    except (ValueError, OSError, KeyError, TypeError) as e:
        print(f"bad input: {e}", file=sys.stderr)
        return 2

    import numpy as np
    import pandas as pd
    import requests
    from feast import FeatureStore
    from feast.errors import FeatureViewNotFoundException
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    store = FeatureStore(repo_path=args.repo_dir)
    oc = store.config.online_store
    if getattr(oc, "type", None) != "remote":
        print(f"bad input: {args.repo_dir}/feature_store.yaml must use online_store type remote", file=sys.stderr)
        return 2
    url = oc.path.rstrip("/")
    jk = args.join_key

    errors = []
    checks = 0
    timings = []

    def check(cond, msg):
        nonlocal checks
        checks += 1
        if not cond:
            errors.append(msg)
        return cond

    def sdk_read(features, entity_ids, full=False):
        """SDK get_online_features -> (names, {name: {"values", "statuses", "kinds", "ts"}})."""
        resp = store.get_online_features(
            features=features,
            entity_rows=[{jk: i} for i in entity_ids],
            full_feature_names=full,
        )
        d = resp.to_dict()
        names = list(resp.proto.metadata.feature_names.val)
        cols = {}
        for name, vec in zip(names, resp.proto.results):
            cols[name] = {
                "values": d[name],
                "statuses": [FieldStatus.Name(s) for s in vec.statuses],
                "kinds": [v.WhichOneof("val") for v in vec.values],
                "ts": len(vec.event_timestamps),
            }
        return names, cols

    def raw_read(features, entity_ids):
        """POST the body the SDK's remote store sends; returns the parsed columns."""
        body = {
            "entities": {jk: entity_ids},
            "full_feature_names": False,
            "include_feature_view_version_metadata": False,
            "features": features,
        }
        r = requests.post(f"{url}/get-online-features", json=body, timeout=30)
        if not check(r.status_code == 200, f"raw /get-online-features: {r.status_code} {r.text[:300]}"):
            return None
        return columns_of(r.json())

    def metric(endpoint, status):
        text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
        pat = re.compile(
            r'^larder_http_requests_total\{(?=[^}]*endpoint="' + re.escape(endpoint) + r'")'
            r'(?=[^}]*status="' + str(status) + r'")[^}]*\}\s+(\d+)$',
            re.M,
        )
        m = pat.search(text)
        return int(m.group(1)) if m else 0

    def timed(name, f):
        t = dt.datetime.now()
        out = f()
        timings.append(f"{name} {(dt.datetime.now() - t).total_seconds():.2f}s")
        return out

    def compare_feature(where, ftype, sdk_col, row, want_val, want_status):
        got = sdk_col["values"][row]
        check(same_value(ftype, got, want_val), f"{where}: value {got!r}, expected {want_val!r} ({ftype})")
        check(sdk_col["statuses"][row] == want_status, f"{where}: status {sdk_col['statuses'][row]}, expected {want_status}")
        want_kind = None if want_val is None else REMOTE_KIND[ftype]
        kind = sdk_col["kinds"][row]
        check(kind == want_kind, f"{where}: Value kind {kind}, expected {want_kind} (remote client inference)")

    refs = [f"{args.view}:{f}" for f in feats]
    n = len(ids)

    # (a) SDK through the server == larder reading the store directly.
    expected_names = [jk] + feats
    check(sorted(larder_names) == sorted(expected_names), f"larder JSON: names {larder_names}, expected {expected_names}")
    names, cols = timed("(a) sdk get_online_features", lambda: sdk_read(refs, ids))
    check(names[:1] == [jk], f"(a) sdk: first column {names[:1]}, expected {jk}")
    check(sorted(names) == sorted(larder_names), f"(a) sdk names {names}, larder {larder_names}")
    for name in names:
        c = cols[name]
        for part in ("values", "statuses", "kinds"):
            if not check(len(c[part]) == n, f"(a) sdk {name}: {len(c[part])} {part}, expected {n}"):
                c[part] = (c[part] + [None] * n)[:n]
        check(c["ts"] == 0, f"(a) sdk {name}: remote client carried {c['ts']} event timestamps (expected it to drop them)")
    for row, i in enumerate(ids):
        c = cols.get(jk)
        if c:
            check(c["values"][row] == i, f"(a) sdk {jk}[{row}] = {c['values'][row]!r}, expected {i}")
            check(c["statuses"][row] == "PRESENT", f"(a) sdk {jk}={i}: status {c['statuses'][row]}")
            check(c["kinds"][row] == "int64_val", f"(a) sdk {jk}={i}: kind {c['kinds'][row]}")
    present = 0
    for f in feats:
        lc, sc = larder_cols.get(f), cols.get(f)
        if lc is None or sc is None:
            continue
        for row, i in enumerate(ids):
            if lc["statuses"][row] == "PRESENT":
                present += 1
            compare_feature(f"(a) {f} {jk}={i}", FEATURE_TYPES[f], sc, row, lc["values"][row], lc["statuses"][row])
    check(present > 0, "(a) larder JSON has no PRESENT feature value: nothing was materialized?")

    # (a) timestamps: the raw response to the SDK's body must equal larder's JSON.
    raw = timed("(a) raw /get-online-features", lambda: raw_read(refs, ids))
    if raw is not None:
        raw_names, raw_cols = raw
        check(raw_names == larder_names, f"(a) raw names {raw_names}, larder {larder_names}")
        for name in larder_names:
            rc, lc = raw_cols.get(name), larder_cols[name]
            if rc is None:
                continue
            ftype = FEATURE_TYPES.get(name, "Int64")
            for row, i in enumerate(ids):
                where = f"(a) raw {name} {jk}={i}"
                check(same_value(ftype, rc["values"][row], lc["values"][row]), f"{where}: value {rc['values'][row]!r}, larder {lc['values'][row]!r}")
                check(rc["statuses"][row] == lc["statuses"][row], f"{where}: status {rc['statuses'][row]}, larder {lc['statuses'][row]}")
                ts = rc["event_timestamps"][row] if rc["event_timestamps"] else None
                check(ts == lc["event_timestamps"][row], f"{where}: event timestamp {ts}, larder {lc['event_timestamps'][row]}")
                check(isinstance(ts, str) and RFC3339.match(ts) is not None, f"{where}: timestamp {ts!r} is not RFC 3339 with Z")

    # (b) feature service, full feature names.
    service = store.get_feature_service(args.service)
    svc_feats = [(p.name_to_use(), c.name) for p in service.feature_view_projections for c in p.features]
    svc_names_want = [jk] + [f"{v}__{f}" for v, f in svc_feats]
    names_b, cols_b = timed("(b) sdk feature service", lambda: sdk_read(service, ids, full=True))
    check(names_b[:1] == [jk], f"(b) first column {names_b[:1]}, expected {jk}")
    check(sorted(names_b) == sorted(svc_names_want), f"(b) names {names_b}, expected {svc_names_want}")
    for v, f in svc_feats:
        col = cols_b.get(f"{v}__{f}")
        if col is None or f not in larder_cols:
            continue
        for row, i in enumerate(ids):
            compare_feature(
                f"(b) {v}__{f} {jk}={i}", FEATURE_TYPES[f], col, row, larder_cols[f]["values"][row], larder_cols[f]["statuses"][row]
            )
    if service_file is not None:
        s_names, s_cols = service_file
        check(sorted(s_names) == sorted(names_b), f"(b) service file names {s_names}, sdk {names_b}")
        for name in s_names:
            if name == jk or name not in cols_b:
                continue
            ftype = FEATURE_TYPES[name.split("__", 1)[1]]
            for row, i in enumerate(ids):
                compare_feature(f"(b) file {name} {jk}={i}", ftype, cols_b[name], row, s_cols[name]["values"][row], s_cols[name]["statuses"][row])

    # (c) unknown view -> FeatureViewNotFoundException re-raised from the server's body.
    before = metric("/get-online-features", 404)
    raised = None
    try:
        store.get_online_features(features=["nope:x"], entity_rows=[{jk: ids[0]}])
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        raised = e
    check(
        isinstance(raised, FeatureViewNotFoundException),
        f"(c) get_online_features(['nope:x']) raised {type(raised).__module__}.{type(raised).__name__}: {raised}",
    )
    check(raised is not None and "nope" in str(raised), f"(c) message {raised!s} does not name the view")
    after = metric("/get-online-features", 404)
    check(after == before + 1, f"(c) server 404 count on /get-online-features went {before} -> {after}, expected +1")

    # (d) push a new driver through the SDK.
    pid = args.push_id
    names_d, cols_d = sdk_read(refs, [pid])
    for f in feats:
        check(cols_d[f]["statuses"] == ["NOT_FOUND"], f"(d) {jk}={pid} before the push: {f} is {cols_d[f]['statuses']}")
    pushed = {
        "conv_rate": 0.125,
        "acc_rate": 0.1,
        "avg_daily_trips": 42,
        "trips_today": 7,
        "rating": 4.75,
        "earnings_today": 123.45,
        "online_minutes": 300,
        "completed_trips": 9_876_543_210,
        "city": "Pushville",
        "is_premium": True,
    }
    dtypes = {"Float32": np.float32, "Float64": np.float64, "Int32": np.int32, "Int64": np.int64, "Bool": bool, "String": object}
    push_ts = pd.Timestamp("2024-01-05T10:00:00", tz="UTC")
    df = pd.DataFrame(
        {
            jk: pd.Series([pid], dtype=np.int64),
            **{f: pd.Series([pushed[f]], dtype=dtypes[FEATURE_TYPES[f]]) for f in feats},
            "event_timestamp": [push_ts],
            "created": [pd.Timestamp.now(tz="UTC")],
        }
    )
    writes_before = metric("/write-to-online-store", 200)
    push_before = metric("/push", 200)
    timed("(d) sdk push", lambda: store.push(args.push_source, df))
    writes_after = metric("/write-to-online-store", 200)
    check(
        writes_after == writes_before + 1,
        f"(d) server /write-to-online-store 200 count went {writes_before} -> {writes_after} on store.push, expected +1",
    )
    check(metric("/push", 200) == push_before, "(d) the SDK's push unexpectedly used /push")
    names_d, cols_d = sdk_read(refs, [pid])
    for f in feats:
        compare_feature(f"(d) after push {f} {jk}={pid}", FEATURE_TYPES[f], cols_d[f], 0, pushed[f], "PRESENT")
    raw = raw_read(refs, [pid])
    if raw is not None:
        for f in feats:
            ts = raw[1][f]["event_timestamps"][0]
            check(ts == "2024-01-05T10:00:00Z", f"(d) raw {f} {jk}={pid}: event timestamp {ts}, expected 2024-01-05T10:00:00Z")

    # (e) write_to_online_store: new id (created NaT, microsecond timestamp) + newer row of an existing id.
    wid, uid = args.write_id, args.update_id
    written = {
        wid: dict(pushed, conv_rate=0.3, avg_daily_trips=-5, rating=None, city="Writeham", is_premium=False),
        uid: dict(pushed, conv_rate=0.625, acc_rate=0.5, completed_trips=1, city="Updated City"),
    }
    # Feast's SQLite layout stores epoch seconds (6.1), so the sub-second part is dropped there.
    write_ts = {
        wid: (
            pd.Timestamp("2024-01-06T08:30:00.123456", tz="UTC"),
            "2024-01-06T08:30:00Z" if args.server_store == "sqlite" else "2024-01-06T08:30:00.123456Z",
        ),
        uid: (pd.Timestamp("2024-01-07T00:00:00", tz="UTC"), "2024-01-07T00:00:00Z"),
    }
    order = [wid, uid]

    def col(f):
        ftype = FEATURE_TYPES[f]
        vals = [written[i][f] for i in order]
        if ftype == "Float64":
            return pd.Series([np.nan if v is None else v for v in vals], dtype=np.float64)
        return pd.Series(vals, dtype=dtypes[ftype])

    df = pd.DataFrame(
        {
            jk: pd.Series(order, dtype=np.int64),
            **{f: col(f) for f in feats},
            "event_timestamp": [write_ts[i][0] for i in order],
            "created": pd.Series([pd.NaT, pd.Timestamp.now(tz="UTC")], dtype="datetime64[ns, UTC]"),
        }
    )
    writes_before = metric("/write-to-online-store", 200)
    timed("(e) sdk write_to_online_store", lambda: store.write_to_online_store(args.view, df))
    writes_after = metric("/write-to-online-store", 200)
    check(writes_after == writes_before + 1, f"(e) /write-to-online-store 200 count went {writes_before} -> {writes_after}, expected +1")
    names_e, cols_e = sdk_read(refs, order)
    for row, i in enumerate(order):
        for f in feats:
            compare_feature(f"(e) after write {f} {jk}={i}", FEATURE_TYPES[f], cols_e[f], row, written[i][f], "PRESENT")
    raw = raw_read(refs, order)
    if raw is not None:
        for row, i in enumerate(order):
            for f in feats:
                ts = raw[1][f]["event_timestamps"][row]
                check(ts == write_ts[i][1], f"(e) raw {f} {jk}={i}: event timestamp {ts}, expected {write_ts[i][1]}")

    if errors:
        for e in errors[:200]:
            print(f"MISMATCH {e}")
        if len(errors) > 200:
            print(f"... and {len(errors) - 200} more")
        print(f"FAILED {len(errors)} of {checks} checks")
        return 1
    print(f"OK {checks} checks (remote {url}, {n} ids, {len(feats)} features; {', '.join(timings)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
