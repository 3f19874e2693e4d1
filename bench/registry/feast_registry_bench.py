#!/usr/bin/env python3
"""Feast 0.67's own SQL registry, measured the way `bench-registry` measures Larder's.

Usage (with the Feast 0.67 venv python; `bench-registry` runs it for you):
  feast_registry_bench.py --views 1000 \
      [--postgres postgresql+psycopg://root@127.0.0.1:5432/DB] \
      [--sqlite /abs/path/registry.db] \
      [--mysql mysql+pymysql://root@127.0.0.1:3306/DB] \
      [--uncached-iters 50] [--cached-iters 10000] [--time-budget 30] \
      [--cache-ttl 3600]

Every database given must be fresh (empty); the caller creates and drops it.
For each backend, in project `bench`:
  1. construct `SqlRegistry(SqlRegistryConfig(registry_type="sql", path=URL,
     cache_ttl_seconds=TTL), "bench", None)` (creates the 14 tables),
  2. apply the entity `driver` and the FileSource once (untimed),
  3. apply N FeatureViews (10 Float32 features, entity `driver`, one entity
     column, FileSource batch source, ttl 1 day) one by one with
     `apply_feature_view(fv, "bench", commit=True)` -- timed,
  4. apply N freshly built, identical views again -- the no-op path, timed;
     `reapply_changed` counts views whose stored last_updated_timestamp moved,
  5. `list_feature_views("bench", allow_cache=False)` repeatedly (after one
     warm-up call); then `refresh()` once (timed: `refresh_ms`), one cached
     call timed alone (`list_cached_first_us`, see below), and
     `list_feature_views("bench", allow_cache=True)` repeatedly. Each list
     loop stops after its iteration count or once --time-budget seconds have
     passed (at least 5 iterations), whichever comes first; the JSON says
     how many ran.

Progress goes to stderr; the result is one JSON line on stdout:
  {"feast_version": "0.67.0", "views": N, "backends": {"postgres": {
     "connect_s": .., "apply_s": .., "apply_per_s": .., "reapply_s": ..,
     "reapply_per_s": .., "reapply_changed": 0,
     "list_uncached_us": {"n": .., "mean": .., "p50": .., "p99": ..},
     "refresh_ms": .., "list_cached_us": {...}, "list_cached_first_us": ..}, ...},
   "skipped": {"mysql": "reason"}}
`list_cached_first_us` is the first cached call after `refresh()`: Feast
memoizes the converted list per cached proto (proto_registry_utils), so later
cached calls return the same list object without converting anything.
Percentiles are nearest-rank (p99 of 50 samples is the maximum).
"""
import argparse
import json
import logging
import math
import os
import sys
import time
from datetime import timedelta

os.environ.setdefault("FEAST_USAGE", "False")

PROJECT = "bench"


def log(msg: str) -> None:
    print(f"[feast] {msg}", file=sys.stderr, flush=True)


def percentile(sorted_samples, p: float) -> float:
    """Nearest-rank percentile, the same rule as the Rust side."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_samples)))
    return sorted_samples[rank - 1]


def summarize(samples_us):
    s = sorted(samples_us)
    return {
        "n": len(s),
        "mean": sum(s) / len(s),
        "p50": percentile(s, 50),
        "p99": percentile(s, 99),
    }


def make_objects(n: int):
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32, Int64

    entity = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    source = FileSource(
        name="driver_stats_source",
        path="/tmp/driver_stats.parquet",
        timestamp_field="event_timestamp",
    )
    views = [
        FeatureView(
            name=f"fv_{i:05}",
            entities=[entity],
            ttl=timedelta(days=1),
            schema=[Field(name="driver_id", dtype=Int64)]
            + [Field(name=f"f{j}", dtype=Float32) for j in range(10)],
            source=source,
            online=True,
            description=f"bench view {i}",
        )
        for i in range(n)
    ]
    return entity, source, views


def time_list(fn, iters: int, budget_s: float, expect: int):
    got = len(fn())  # warm-up
    if got != expect:
        raise RuntimeError(f"list returned {got} views, expected {expect}")
    samples = []
    deadline = time.perf_counter() + budget_s
    for i in range(iters):
        t = time.perf_counter()
        out = fn()
        samples.append((time.perf_counter() - t) * 1e6)
        if len(out) != expect:
            raise RuntimeError(f"list returned {len(out)} views, expected {expect}")
        del out  # free the result outside the timed region
        if i + 1 >= 5 and time.perf_counter() > deadline:
            break
    return summarize(samples)


def bench_backend(name: str, url: str, args) -> dict:
    from feast.infra.registry.sql import SqlRegistry, SqlRegistryConfig

    n = args.views
    cfg = SqlRegistryConfig(registry_type="sql", path=url, cache_ttl_seconds=args.cache_ttl)
    t = time.perf_counter()
    reg = SqlRegistry(cfg, PROJECT, None)
    connect_s = time.perf_counter() - t
    try:
        entity, source, views = make_objects(n)
        reg.apply_entity(entity, PROJECT, commit=True)
        reg.apply_data_source(source, PROJECT, commit=True)

        log(f"{name}: applying {n} feature views one by one")
        t = time.perf_counter()
        for fv in views:
            reg.apply_feature_view(fv, PROJECT, commit=True)
        apply_s = time.perf_counter() - t

        stored = {fv.name: fv.last_updated_timestamp for fv in reg.list_feature_views(PROJECT, allow_cache=False)}
        if len(stored) != n:
            raise RuntimeError(f"{name}: {len(stored)} views stored, expected {n}")

        log(f"{name}: re-applying {n} unchanged feature views")
        _, _, again = make_objects(n)
        t = time.perf_counter()
        for fv in again:
            reg.apply_feature_view(fv, PROJECT, commit=True)
        reapply_s = time.perf_counter() - t
        after = {fv.name: fv.last_updated_timestamp for fv in reg.list_feature_views(PROJECT, allow_cache=False)}
        changed = sum(1 for k, v in stored.items() if after.get(k) != v)

        log(f"{name}: list_feature_views(allow_cache=False) x{args.uncached_iters}")
        uncached = time_list(
            lambda: reg.list_feature_views(PROJECT, allow_cache=False),
            args.uncached_iters,
            args.time_budget,
            n,
        )
        t = time.perf_counter()
        reg.refresh(PROJECT)
        refresh_ms = (time.perf_counter() - t) * 1e3
        # The first cached call after a refresh converts the protos; later calls
        # return the same memoized list object until the next refresh.
        t = time.perf_counter()
        first = reg.list_feature_views(PROJECT, allow_cache=True)
        cached_first_us = (time.perf_counter() - t) * 1e6
        if len(first) != n:
            raise RuntimeError(f"{name}: cached list returned {len(first)} views, expected {n}")
        log(f"{name}: list_feature_views(allow_cache=True) x{args.cached_iters} (budget {args.time_budget:g}s)")
        cached = time_list(
            lambda: reg.list_feature_views(PROJECT, allow_cache=True),
            args.cached_iters,
            args.time_budget,
            n,
        )
    finally:
        reg.write_engine.dispose()
        if reg.read_engine is not reg.write_engine:
            reg.read_engine.dispose()
    return {
        "url": url,
        "connect_s": connect_s,
        "apply_s": apply_s,
        "apply_per_s": n / apply_s,
        "reapply_s": reapply_s,
        "reapply_per_s": n / reapply_s,
        "reapply_changed": changed,
        "list_uncached_us": uncached,
        "refresh_ms": refresh_ms,
        "list_cached_us": cached,
        "list_cached_first_us": cached_first_us,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=1000)
    ap.add_argument("--postgres", help="SQLAlchemy URL of a fresh PostgreSQL database")
    ap.add_argument("--sqlite", help="absolute path of a fresh SQLite file")
    ap.add_argument("--mysql", help="SQLAlchemy URL of a fresh MySQL/MariaDB database")
    ap.add_argument("--uncached-iters", type=int, default=50)
    ap.add_argument("--cached-iters", type=int, default=10000)
    ap.add_argument("--time-budget", type=float, default=30.0, help="seconds per list loop")
    ap.add_argument("--cache-ttl", type=int, default=3600)
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING)
    t = time.perf_counter()
    import feast

    log(f"feast {feast.__version__} imported in {time.perf_counter() - t:.1f}s")
    out = {"feast_version": feast.__version__, "views": args.views, "backends": {}, "skipped": {}}

    targets = []
    if args.postgres:
        targets.append(("postgres", args.postgres))
    if args.sqlite:
        if not os.path.isabs(args.sqlite):
            ap.error("--sqlite needs an absolute path")
        targets.append(("sqlite", f"sqlite:///{args.sqlite}"))
    if args.mysql:
        try:
            import pymysql  # noqa: F401
        except ImportError:
            out["skipped"]["mysql"] = "no pymysql in the Feast venv"
        else:
            targets.append(("mysql", args.mysql))

    for name, url in targets:
        out["backends"][name] = bench_backend(name, url, args)

    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
