#!/usr/bin/env python3
"""Compare Feast 0.67's get_online_features, `larder get-online-features -o json` and the
newest rows of the Parquet file, for one online store that both tools point at.

Usage (Feast venv python, TZ=UTC):
  check_online.py --repo-dir DIR --larder-json FILE --parquet PATH --start ISO --end ISO
                  --ids 1001,1002,...,99999 [--features f1,f2,...]
                  [--feature-service NAME] [--full-feature-names] [--end-inclusive]
                  [--view driver_hourly_stats] [--join-key driver_id]

DIR/feature_store.yaml names the registry and the online store (the same file `larder -c`
read). FILE is what `larder get-online-features ... -o json` printed for the same ids (in
the same order) and the same features. Exit 0 and print `OK <n> checks` when the three
agree; print every mismatch and exit 1 otherwise; exit 2 on bad input.

Three sources, compared cell by cell (entity column included):
  feast   FeatureStore(repo_path=DIR).get_online_features(...): values from .to_dict(),
          statuses and event timestamps (seconds + nanos) from .proto (OnlineResponse.proto,
          a GetOnlineFeaturesResponse; to_dict(include_event_timestamps=True) only gives
          whole seconds and no statuses). The proto's Value kind is checked too
          (float_val for Float32, double_val for Float64, ...), which proves the stored
          bytes carry the declared type even where JSON cannot tell (float vs double).
  larder  FILE: {"metadata":{"feature_names":[...]},"results":[{"values","statuses",
          "event_timestamps"}...]}, RFC 3339 timestamps.
  truth   the Parquet file read with pyarrow: per id the newest row with start <= ts < end
          (ts <= end with --end-inclusive), ties broken by the newest `created`.

Expected cells:
  - entity column: the requested id, PRESENT, 1970-01-01T00:00:00Z.
  - feature of an id with a row in the window: the row's value (null stays None/null),
    PRESENT, the row's event timestamp. Float32 features are compared as float32,
    Float64 exactly.
  - feature of an id without a row in the window (the "missing" id): None/null,
    NOT_FOUND, epoch 0 -- except for the known Feast quirk below.
  - larder statuses may only be PRESENT or NOT_FOUND (all the Python server emits).

Known Feast 0.67 quirk encoded here (feast-compat.md §6.3):
  - Redis online store: Feast reports a key that has no hash as PRESENT with an empty
    value (None) and timestamp epoch 0 (RedisOnlineStore._get_features_for_entity builds
    an empty Value per requested field). SQLite and PostgreSQL report NOT_FOUND. Larder
    reports NOT_FOUND for every store, so for `online_store.type: redis` the expected
    Feast status of a missing id is PRESENT, Larder's stays NOT_FOUND. Feast's Redis
    reader also drops the timestamp's nanos (datetime.fromtimestamp(ts.seconds)); the
    example's timestamps are whole hours so it does not show here.

--end-inclusive: Feast's `materialize(start, end)` with the file (dask) offline store
selects start <= ts <= end (Series.between(..., inclusive="both"); the PostgreSQL
offline store uses BETWEEN too), while `larder materialize` selects [start, end). Pass
it when the online store was filled by Feast.

Column names: the set of feature names of Feast's response and of Larder's must both
equal the expected set (join key + features, or `<view>__<feature>` with
--full-feature-names); the join key must come first in both. Feature order within a
view is unspecified in Feast (feast-compat.md §7), so it is not compared.
"""
import argparse
import datetime as dt
import json
import math
import os
import re
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq

# Declared types of the example's view (examples/driver-stats/manifests/driver-hourly-stats.yaml).
# Used only for comparison rules and the Value-kind check; values come from the sources.
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
VALUE_KIND = {
    "Float32": "float_val",
    "Float64": "double_val",
    "Int32": "int32_val",
    "Int64": "int64_val",
    "String": "string_val",
    "Bool": "bool_val",
}


def parse_iso(s: str) -> int:
    """ISO time (naive = UTC) -> nanoseconds since the epoch."""
    t = s.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    d = dt.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    delta = d - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")


def parse_rfc3339(s: str) -> int:
    """Larder's/Feast's `2024-01-01T11:00:00[.fff]Z` -> nanoseconds (strict format)."""
    m = RFC3339.match(s)
    if not m:
        raise ValueError(f"not an RFC 3339 UTC timestamp with Z: {s!r}")
    base = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    secs = int(base.timestamp())
    frac = (m.group(2) or "").ljust(9, "0")
    return secs * 1_000_000_000 + int(frac or "0")


def fmt_ns(ns: int) -> str:
    secs, nanos = divmod(ns, 1_000_000_000)
    d = dt.datetime.fromtimestamp(secs, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{d}.{nanos:09d}Z" if nanos else f"{d}Z"


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def same_value(ftype: str, got, want) -> bool:
    """Compare one value with the rules of its declared type (None = null)."""
    if want is None or got is None:
        return got is None and want is None
    if ftype in ("Float32", "Float64"):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            # JSON spells NaN/Infinity as strings (feast-compat.md §7).
            if got in ("NaN", "Infinity", "-Infinity"):
                got = float(got)
            else:
                return False
        if math.isnan(want):
            return math.isnan(got)
        if ftype == "Float32":
            return f32(float(got)) == f32(float(want))
        return float(got) == float(want)
    if ftype in ("Int32", "Int64"):
        return isinstance(got, int) and not isinstance(got, bool) and got == want
    if ftype == "Bool":
        return isinstance(got, bool) and got == want
    return got == want


def truth_rows(parquet, join_key, features, ids, start_ns, end_ns, end_inclusive):
    """Newest row per requested id in the window: id -> (event_ns, {feature: value})."""
    table = pq.read_table(parquet, columns=[join_key, "event_timestamp", "created"] + features)

    def ns_column(name):
        col = table.column(name)
        unit = col.type.unit
        mult = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[unit]
        return [None if v is None else v * mult for v in col.cast(pa.int64()).to_pylist()]

    keys = table.column(join_key).to_pylist()
    ts = ns_column("event_timestamp")
    created = ns_column("created")
    values = {f: table.column(f).to_pylist() for f in features}
    wanted = set(ids)
    best = {}
    for i, k in enumerate(keys):
        if k not in wanted:
            continue
        t = ts[i]
        if t < start_ns or t > end_ns or (t == end_ns and not end_inclusive):
            continue
        rank = (t, created[i] if created[i] is not None else -(2**63))
        if k not in best or rank > best[k][0]:
            best[k] = (rank, i)
    return {k: (ts[i], {f: values[f][i] for f in features}) for k, (_, i) in best.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo-dir", required=True)
    ap.add_argument("--larder-json", required=True)
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated join-key values, request order")
    ap.add_argument("--features", default=",".join(FEATURE_TYPES), help="features of --view")
    ap.add_argument("--feature-service", help="request this service instead of --features")
    ap.add_argument("--full-feature-names", action="store_true")
    ap.add_argument("--end-inclusive", action="store_true", help="window is [start, end] (Feast materialize)")
    ap.add_argument("--view", default="driver_hourly_stats")
    ap.add_argument("--join-key", default="driver_id")
    args = ap.parse_args()

    if os.environ.get("TZ") != "UTC":
        print("warning: TZ is not UTC; Feast's SQLite store converts timestamps with the local zone", file=sys.stderr)

    try:
        ids = [int(x) for x in args.ids.split(",") if x.strip()]
        start_ns, end_ns = parse_iso(args.start), parse_iso(args.end)
        with open(args.larder_json) as f:
            larder = json.load(f)
    except (ValueError, OSError) as e:
        print(f"bad input: {e}", file=sys.stderr)
        return 2

    from feast import FeatureStore
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    store = FeatureStore(repo_path=args.repo_dir)
    store_type = getattr(store.config.online_store, "type", "sqlite")
    redis_quirk = store_type == "redis"

    # (column name, feature) for every requested feature, in request order.
    if args.feature_service:
        service = store.get_feature_service(args.feature_service)
        wanted = []
        for proj in service.feature_view_projections:
            if proj.name != args.view:
                print(f"bad input: service view {proj.name} is not --view {args.view}", file=sys.stderr)
                return 2
            prefix = proj.name_to_use()
            wanted += [(f"{prefix}__{c.name}" if args.full_feature_names else c.name, c.name) for c in proj.features]
        request = service
    else:
        feats = [f.strip() for f in args.features.split(",") if f.strip()]
        wanted = [(f"{args.view}__{f}" if args.full_feature_names else f, f) for f in feats]
        request = [f"{args.view}:{f}" for f in feats]
    for _, f in wanted:
        if f not in FEATURE_TYPES:
            print(f"bad input: unknown feature {f}", file=sys.stderr)
            return 2

    resp = store.get_online_features(
        features=request,
        entity_rows=[{args.join_key: i} for i in ids],
        full_feature_names=args.full_feature_names,
    )
    feast_dict = resp.to_dict()
    feast_cols = {}
    for name, vec in zip(resp.proto.metadata.feature_names.val, resp.proto.results):
        feast_cols[name] = {
            "values": feast_dict[name],
            "kinds": [v.WhichOneof("val") for v in vec.values],
            "statuses": [FieldStatus.Name(s) for s in vec.statuses],
            "ts": [t.seconds * 1_000_000_000 + t.nanos for t in vec.event_timestamps],
        }
    feast_names = list(resp.proto.metadata.feature_names.val)

    errors = []
    checks = 0

    def check(cond, msg):
        nonlocal checks
        checks += 1
        if not cond:
            errors.append(msg)

    # Larder's JSON, columnar.
    try:
        larder_names = list(larder["metadata"]["feature_names"])
        larder_cols = {}
        for name, r in zip(larder_names, larder["results"]):
            larder_cols[name] = {
                "values": r["values"],
                "statuses": r["statuses"],
                "ts": [parse_rfc3339(t) for t in r["event_timestamps"]],
            }
        check(len(larder_names) == len(larder["results"]), "larder: feature_names and results differ in length")
    except (KeyError, TypeError, ValueError) as e:
        print(f"larder JSON is malformed: {e}", file=sys.stderr)
        return 1

    expected_names = [args.join_key] + [c for c, _ in wanted]
    for who, names in (("feast", feast_names), ("larder", larder_names)):
        check(
            sorted(names) == sorted(expected_names),
            f"{who}: feature names {names}, expected (any order after the join key) {expected_names}",
        )
        check(names[:1] == [args.join_key], f"{who}: first column is {names[:1]}, expected the join key {args.join_key}")
    check(
        sorted(feast_names) == sorted(larder_names),
        f"feature names differ: feast {feast_names}, larder {larder_names}",
    )

    truth = truth_rows(args.parquet, args.join_key, sorted({f for _, f in wanted}), ids, start_ns, end_ns, args.end_inclusive)
    n = len(ids)
    for who, cols in (("feast", feast_cols), ("larder", larder_cols)):
        for col in cols.values():
            for part in ("values", "statuses", "ts"):
                if len(col[part]) != n:
                    errors.append(f"{who}: a column has {len(col[part])} {part}, expected {n}")
                    col[part] = (col[part] + [None] * n)[:n]
        if who == "larder":
            bad = {s for c in cols.values() for s in c["statuses"]} - {"PRESENT", "NOT_FOUND"}
            check(not bad, f"larder: statuses other than PRESENT/NOT_FOUND: {sorted(map(str, bad))}")

    # Entity column.
    jk = args.join_key
    for who, cols in (("feast", feast_cols), ("larder", larder_cols)):
        c = cols.get(jk)
        if c is None:
            continue
        for row, i in enumerate(ids):
            check(c["values"][row] == i, f"{who} {jk}[{row}]: value {c['values'][row]!r}, expected {i}")
            check(c["statuses"][row] == "PRESENT", f"{who} {jk}={i}: status {c['statuses'][row]}, expected PRESENT")
            check(c["ts"][row] == 0, f"{who} {jk}={i}: timestamp {c['ts'][row]}, expected epoch 0")

    # Feature columns.
    missing_ids = [i for i in ids if i not in truth]
    for col_name, feat in wanted:
        ftype = FEATURE_TYPES[feat]
        for row, i in enumerate(ids):
            t = truth.get(i)
            if t is not None:
                want_val, want_ts = t[1][feat], t[0]
                want = {"feast": "PRESENT", "larder": "PRESENT"}
            else:
                want_val, want_ts = None, 0
                want = {"feast": "PRESENT" if redis_quirk else "NOT_FOUND", "larder": "NOT_FOUND"}
            for who, cols in (("feast", feast_cols), ("larder", larder_cols)):
                c = cols.get(col_name)
                if c is None:
                    continue
                where = f"{who} {col_name} {jk}={i}"
                got = c["values"][row]
                check(same_value(ftype, got, want_val), f"{where}: value {got!r}, expected {want_val!r} ({ftype})")
                check(c["statuses"][row] == want[who], f"{where}: status {c['statuses'][row]}, expected {want[who]}")
                check(
                    c["ts"][row] == want_ts,
                    f"{where}: event timestamp {fmt_ns(c['ts'][row]) if isinstance(c['ts'][row], int) else c['ts'][row]}, "
                    f"expected {fmt_ns(want_ts)}",
                )
                if who == "feast":
                    kind = c["kinds"][row]
                    want_kind = None if want_val is None else VALUE_KIND[ftype]
                    check(kind == want_kind, f"{where}: stored Value kind {kind}, expected {want_kind}")

    if errors:
        for e in errors[:200]:
            print(f"MISMATCH {e}")
        if len(errors) > 200:
            print(f"... and {len(errors) - 200} more")
        print(f"FAILED {len(errors)} of {checks} checks")
        return 1
    present = n - len(missing_ids)
    print(
        f"OK {checks} checks ({store_type} store, {n} ids: {present} present, {len(missing_ids)} missing "
        f"{missing_ids}, {len(wanted)} features{', redis missing-key quirk expected' if redis_quirk else ''})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
