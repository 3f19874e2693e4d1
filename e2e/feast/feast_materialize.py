#!/usr/bin/env python3
"""Materialize with the Feast 0.67 SDK into the online store named by DIR/feature_store.yaml.

Usage (Feast venv python, TZ=UTC):
  feast_materialize.py --repo-dir DIR --start ISO --end ISO [--views a,b] [--no-create-tables]

Runs FeatureStore(repo_path=DIR).materialize(start, end): Feast reads the registry (written
by `larder apply`), pulls the batch source (the example's Parquet file, through the file
offline store) and writes the online store. Naive ISO times are UTC.

Before materializing, the script creates the online store's tables the way `feast apply`
does (provider.update_infra with the registry's feature views and entities), because
`larder apply` only writes the registry and Feast's SQLite/PostgreSQL writers expect the
tables to exist (`larder materialize` creates them itself). It only creates what is
missing (CREATE TABLE IF NOT EXISTS); Redis needs nothing. --no-create-tables skips it.

Note: Feast's file offline store selects start <= event_timestamp <= end (both ends
inclusive), unlike `larder materialize`'s [start, end).

Prints `OK materialized <views> <start> .. <end>` and exits 0; a Feast error propagates
(traceback, exit 1).
"""
import argparse
import datetime as dt
import sys


def parse_iso(s: str) -> dt.datetime:
    t = s.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    d = dt.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo-dir", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--views", help="comma-separated feature view names (default: all)")
    ap.add_argument("--no-create-tables", action="store_true")
    args = ap.parse_args()

    from feast import FeatureStore

    start, end = parse_iso(args.start), parse_iso(args.end)
    store = FeatureStore(repo_path=args.repo_dir)
    views = [v for v in (args.views or "").split(",") if v] or None

    if not args.no_create_tables:
        fvs = [fv for fv in store.list_feature_views(allow_cache=False) if fv.online]
        store._get_provider().update_infra(
            project=store.project,
            tables_to_delete=[],
            tables_to_keep=fvs,
            entities_to_delete=[],
            entities_to_keep=store.list_entities(allow_cache=False),
            partial=True,
        )

    store.materialize(start_date=start, end_date=end, feature_views=views)
    names = views or [fv.name for fv in store.list_feature_views(allow_cache=False) if fv.online]
    print(f"OK materialized {','.join(names)} {start.isoformat()} .. {end.isoformat()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
