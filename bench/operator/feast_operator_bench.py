#!/usr/bin/env python3
"""Feast 0.67's side of `bench-operator`: what the Feast operator runs (`feast apply` of a
Python feature repo) comes down to `FeatureStore.apply([...])`; this times it for the same
objects the Larder operator reconciles.

Usage (with the Feast 0.67 venv python; `bench-operator` runs it for you):
  feast_operator_bench.py --views 1000 --registry postgresql+psycopg://root@127.0.0.1:5432/DB \
      --dir /abs/tmp/dir [--online sqlite|redis] [--redis 127.0.0.1:6379,db=N]

The registry database must be fresh (empty); the caller creates and drops it. In `--dir` the
script writes feature_store.yaml (project `bench_op`, SQL registry, SQLite (or Redis) online
store, file offline store), then:
  1. builds N Entities (`driver_00000`, join key `driver_00000_id`, INT64), N FileSources
     (`driver_stats_00000_source`, event_timestamp / created) and N FeatureViews
     (`driver_hourly_stats_00000`: the entity column and the ten features of
     config/samples/driver-hourly-stats.yaml, ttl 1 day, online) with the Python SDK;
  2. `FeatureStore(repo_path=DIR)` (creates the registry tables);
  3. `store.apply(entities + sources + views)` -- timed (`apply_s`, `apply_cpu_s`);
  4. the same objects built afresh and applied again (`reapply_s`): what re-running
     `feast apply` on an unchanged repo costs, and how many registry rows it rewrote
     (ctid/xmin of every row of the registry tables, before and after).

Progress goes to stderr; the result is one JSON line on stdout:
  {"feast_version": "0.67.0", "views": N, "import_s": .., "init_s": .., "build_s": ..,
   "apply_s": .., "apply_cpu_s": .., "reapply_s": .., "reapply_cpu_s": ..,
   "registry_rows": {"entities": N+1, ...}, "rows_total": .., "reapply_rows_rewritten": ..,
   "reapply_rows_new": .., "online_tables": N, "peak_rss_bytes": ..}
"""
import argparse
import json
import os
import resource
import sys
import time
from datetime import timedelta

os.environ.setdefault("FEAST_USAGE", "False")

PROJECT = "bench_op"
FEATURES = [
    ("conv_rate", "Float32", "Conversion rate"),
    ("acc_rate", "Float32", "Acceptance rate"),
    ("avg_daily_trips", "Int64", "Average trips per day"),
    ("trips_today", "Int32", "Trips so far today"),
    ("rating", "Float64", "Average rating (may be null)"),
    ("earnings_today", "Float64", "Earnings so far today"),
    ("online_minutes", "Int32", "Minutes online today"),
    ("completed_trips", "Int64", "Lifetime completed trips"),
    ("city", "String", "Home city"),
    ("is_premium", "Bool", "Premium tier driver"),
]
TABLES = [
    "projects", "entities", "data_sources", "feature_views", "stream_feature_views",
    "on_demand_feature_views", "label_views", "feature_services", "saved_datasets",
    "validation_references", "managed_infra", "permissions", "feature_view_version_history",
    "feast_metadata",
]


def log(msg: str) -> None:
    print(f"[feast] {msg}", file=sys.stderr, flush=True)


def build(n: int, data_dir: str):
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast import types

    entities, sources, views = [], [], []
    for i in range(n):
        e = Entity(
            name=f"driver_{i:05}",
            join_keys=[f"driver_{i:05}_id"],
            value_type=ValueType.INT64,
            description=f"Ride-hailing drivers of fleet {i}",
            tags={"team": "drivers"},
        )
        s = FileSource(
            name=f"driver_stats_{i:05}_source",
            path=os.path.join(data_dir, f"driver_stats_{i:05}.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
            description=f"Hourly statistics of fleet {i} (Parquet)",
        )
        v = FeatureView(
            name=f"driver_hourly_stats_{i:05}",
            entities=[e],
            ttl=timedelta(days=1),
            schema=[Field(name=f"driver_{i:05}_id", dtype=types.Int64)]
            + [Field(name=f, dtype=getattr(types, t), description=d) for f, t, d in FEATURES],
            source=s,
            online=True,
            description=f"Hourly statistics of fleet {i}",
            tags={"team": "drivers"},
        )
        entities.append(e)
        sources.append(s)
        views.append(v)
    return entities + sources + views


def row_versions(engine):
    from sqlalchemy import text

    out = set()
    with engine.connect() as c:
        for t in TABLES:
            try:
                rows = c.execute(text(f"SELECT ctid::text, xmin::text FROM {t}")).fetchall()
            except Exception:  # table not created by this Feast version
                c.rollback()
                continue
            out.update((t, r[0], r[1]) for r in rows)
    return out


def project_rows(engine):
    from sqlalchemy import text

    out = {}
    with engine.connect() as c:
        for t in TABLES:
            try:
                n = c.execute(text(f"SELECT count(*) FROM {t} WHERE project_id = :p"), {"p": PROJECT}).scalar()
            except Exception:
                c.rollback()
                continue
            if n:
                out[t] = n
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=1000)
    ap.add_argument("--registry", required=True, help="SQLAlchemy URL of a fresh PostgreSQL database")
    ap.add_argument("--dir", required=True, help="absolute path of an empty directory for the repo")
    ap.add_argument("--online", choices=["sqlite", "redis"], default="sqlite")
    ap.add_argument("--redis", default="127.0.0.1:6379", help="Redis connection string (--online redis)")
    ap.add_argument("--data-dir", default="/var/lib/larder/bench", help="directory the FileSources name")
    args = ap.parse_args()
    n = args.views

    t = time.perf_counter()
    import feast
    from feast import FeatureStore
    from sqlalchemy import create_engine

    import_s = time.perf_counter() - t
    log(f"feast {feast.__version__} imported in {import_s:.1f}s")

    if args.online == "sqlite":
        online = f"  type: sqlite\n  path: {os.path.join(args.dir, 'online.db')}\n"
    else:
        online = f"  type: redis\n  connection_string: \"{args.redis}\"\n"
    with open(os.path.join(args.dir, "feature_store.yaml"), "w") as f:
        f.write(
            f"project: {PROJECT}\nprovider: local\n"
            f"registry:\n  registry_type: sql\n  path: {args.registry}\n  cache_ttl_seconds: 60\n"
            f"online_store:\n{online}"
            "offline_store:\n  type: file\n"
            "entity_key_serialization_version: 3\n"
        )

    t = time.perf_counter()
    objects = build(n, args.data_dir)
    build_s = time.perf_counter() - t

    t = time.perf_counter()
    store = FeatureStore(repo_path=args.dir)
    init_s = time.perf_counter() - t

    log(f"applying {n} entities + {n} FileSources + {n} FeatureViews in one FeatureStore.apply")
    t, c = time.perf_counter(), time.process_time()
    store.apply(objects)
    apply_s, apply_cpu_s = time.perf_counter() - t, time.process_time() - c
    log(f"apply took {apply_s:.1f}s")

    engine = create_engine(args.registry)
    rows = project_rows(engine)
    got = len(store.list_feature_views())
    if got != n:
        raise RuntimeError(f"{got} feature views in the registry after apply, expected {n}")
    before = row_versions(engine)

    log("applying the same objects again (built afresh): the no-op re-apply")
    again = build(n, args.data_dir)
    t, c = time.perf_counter(), time.process_time()
    store.apply(again)
    reapply_s, reapply_cpu_s = time.perf_counter() - t, time.process_time() - c
    after = row_versions(engine)
    log(f"re-apply took {reapply_s:.1f}s")

    online_tables = None
    if args.online == "sqlite":
        import sqlite3

        with sqlite3.connect(os.path.join(args.dir, "online.db")) as c:
            online_tables = c.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    engine.dispose()

    out = {
        "feast_version": feast.__version__,
        "views": n,
        "import_s": import_s,
        "build_s": build_s,
        "init_s": init_s,
        "apply_s": apply_s,
        "apply_cpu_s": apply_cpu_s,
        "reapply_s": reapply_s,
        "reapply_cpu_s": reapply_cpu_s,
        "registry_rows": rows,
        "rows_total": len(before),
        "reapply_rows_rewritten": len(before - after),
        "reapply_rows_new": len(after - before),
        "online_tables": online_tables,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
