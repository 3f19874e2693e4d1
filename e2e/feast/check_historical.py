"""Feast 0.67's historical retrieval as the reference for Larder's.

    check_historical.py gen --out-dir D [--seed N]
        Writes an entity frame over the driver-stats example to D/entities.parquet and
        D/entities.csv: a row_id column (kept by both engines, used to match rows), driver_id
        (known and unknown drivers) and event_timestamp (before the data, inside it, exactly on
        feature rows, exactly one ttl after a feature row, and after the ttl ran out).

    check_historical.py remote-write --repo-dir R --source-file F
        write_to_offline_store through a remote offline store, then reads the row back.

    check_historical.py remote-materialize --repo-dir R --source-file F
        Feast's materialize through a remote offline store, then its online read.

    check_historical.py flight-errors --port P
        Sends malformed Flight commands to an offline server; prints each error.

    check_historical.py load-pg --parquet P --table T --database D [--host --port --user]
        Copies a Parquet file into a new PostgreSQL table (for the PostgreSQL-source comparison).

    check_historical.py compare --repo-dir R --entities E --larder L [--features a:b,...]
                                [--feature-service S] [--full-feature-names]
        Runs Feast's get_historical_features (the repo's offline store: file or postgres) on E and compares
        every row Feast returns with Larder's row of the same row_id in L: every feature value,
        its null-ness and its type family. Prints one JSON line: rows of each, rows Feast
        dropped, cells compared, mismatches (the first 20).
"""

import argparse
import datetime as dt
import json
import math
import random
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

UTC = dt.timezone.utc
DATA_START = dt.datetime(2024, 1, 1, tzinfo=UTC)
DATA_END = dt.datetime(2024, 1, 2, 23, tzinfo=UTC)
TTL = dt.timedelta(days=1)


def gen(args):
    rnd = random.Random(args.seed)
    rows = []
    for i in range(args.rows):
        driver = rnd.randint(995, 2005)  # 1001..2000 exist
        kind = rnd.random()
        if kind < 0.15:
            # Before all feature data: Feast's file store drops these rows.
            ts = DATA_START - dt.timedelta(minutes=rnd.randint(1, 24 * 60))
        elif kind < 0.30:
            # Exactly on a feature row's event time.
            ts = DATA_START + dt.timedelta(hours=rnd.randint(0, 47))
        elif kind < 0.40:
            # Exactly one ttl after a feature row (the boundary).
            ts = DATA_START + dt.timedelta(hours=rnd.randint(0, 47)) + TTL
        elif kind < 0.55:
            # After the data, beyond the ttl of the last row.
            ts = DATA_END + TTL + dt.timedelta(minutes=rnd.randint(1, 600))
        else:
            ts = DATA_START + dt.timedelta(seconds=rnd.randint(0, 60 * 60 * 60))
        rows.append({"row_id": i, "driver_id": driver, "event_timestamp": ts})
    df = pd.DataFrame(rows)
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), f"{args.out_dir}/entities.parquet")
    csv = df.copy()
    csv["event_timestamp"] = csv["event_timestamp"].map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S%z"))
    csv.to_csv(f"{args.out_dir}/entities.csv", index=False)
    print(json.dumps({"rows": len(df)}))


def load_pg(args):
    """Copy a Parquet file into a new PostgreSQL table (timestamps as timestamptz)."""
    import psycopg

    table = pq.read_table(args.parquet)
    types = {
        pa.int64(): "bigint", pa.int32(): "integer", pa.float32(): "real", pa.float64(): "double precision",
        pa.string(): "text", pa.bool_(): "boolean",
    }
    cols = []
    for f in table.schema:
        t = "timestamptz" if pa.types.is_timestamp(f.type) else types[f.type]
        cols.append(f'"{f.name}" {t}')
    with psycopg.connect(host=args.host, port=args.port, dbname=args.database, user=args.user, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{args.table}" ({", ".join(cols)})')
        names = ", ".join(f'"{f.name}"' for f in table.schema)
        with conn.cursor() as cur:
            with cur.copy(f'COPY "{args.table}" ({names}) FROM STDIN') as copy:
                for row in table.to_pylist():
                    copy.write_row([row[f.name] for f in table.schema])
    print(json.dumps({"rows": table.num_rows}))


def remote_write(args):
    """Feast's write_to_offline_store through a remote offline store, then read the row back."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo_dir)
    source = pq.read_table(args.source_file)
    df = source.slice(source.num_rows - 1).to_pandas()
    at = pd.Timestamp("2024-01-03T00:00:00Z")
    df.loc[:, "driver_id"] = 1001
    df.loc[:, "event_timestamp"] = at
    df.loc[:, "created"] = at
    df["conv_rate"] = df["conv_rate"].astype("float32") * 0 + 0.625
    df.loc[:, "city"] = "Pushed"
    store.write_to_offline_store("driver_hourly_stats", df)
    entities = pd.DataFrame({"driver_id": [1001, 1002], "event_timestamp": [at + pd.Timedelta(minutes=30)] * 2})
    out = store.get_historical_features(
        entity_df=entities, features=["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"]
    ).to_df()
    rows = {int(r["driver_id"]): {"conv_rate": float(r["conv_rate"]), "city": r["city"]} for _, r in out.iterrows()}
    print(json.dumps({"rows": rows, "source_rows": pq.read_table(args.source_file).num_rows}))


def remote_materialize(args):
    """Feast's materialize through a remote offline store (pull_latest_from_table_or_query),
    then its online read, against the latest rows computed here from the source file."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo_dir)
    start, end = pd.Timestamp("2024-01-01T00:00:00Z"), pd.Timestamp("2024-01-02T12:00:00Z")
    store.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime(), feature_views=["driver_hourly_stats"])
    drivers = [1001, 1500, 2000]
    got = store.get_online_features(
        features=["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"],
        entity_rows=[{"driver_id": d} for d in drivers],
    ).to_dict()
    src = pq.read_table(args.source_file).to_pandas()
    window = src[(src["event_timestamp"] >= start) & (src["event_timestamp"] < end)]
    expected = {}
    for d in drivers:
        rows = window[window["driver_id"] == d].sort_values(["event_timestamp", "created"])
        last = rows.iloc[-1]
        expected[str(d)] = {"conv_rate": float(last["conv_rate"]), "city": last["city"]}
    mine = {str(d): {"conv_rate": got["conv_rate"][i], "city": got["city"][i]} for i, d in enumerate(drivers)}
    print(json.dumps({"online": mine, "expected": expected}))


def flight_errors(args):
    """Send malformed commands to an offline server with pyarrow.flight; print each error text."""
    import pyarrow.flight as fl

    client = fl.connect(f"grpc+tcp://127.0.0.1:{args.port}")
    frame = pa.table({"driver_id": [1001], "event_timestamp": pa.array([DATA_START], pa.timestamp("us", tz="UTC"))})
    cases = {
        "missing_field": {"api": "get_historical_features", "project": "driver_stats", "feature_view_names": ["driver_hourly_stats"], "name_aliases": [None]},
        "unknown_api": {"api": "persist"},
        "unknown_view": {"api": "get_historical_features", "project": "driver_stats", "feature_view_names": ["nope"], "name_aliases": [None], "feature_refs": ["nope:x"], "full_feature_names": False},
        "unknown_feature": {"api": "get_historical_features", "project": "driver_stats", "feature_view_names": ["driver_hourly_stats"], "name_aliases": [None], "feature_refs": ["driver_hourly_stats:nope"], "full_feature_names": False},
        "no_timestamp": {"api": "get_historical_features", "project": "driver_stats", "feature_view_names": ["driver_hourly_stats"], "name_aliases": [None], "feature_refs": ["driver_hourly_stats:conv_rate"], "full_feature_names": False},
    }
    out = {}
    for name, command in cases.items():
        table = frame.drop(["event_timestamp"]) if name == "no_timestamp" else frame
        try:
            writer, reader = client.do_exchange(fl.FlightDescriptor.for_command(json.dumps(command)))
            writer.begin(table.schema)
            writer.write_table(table)
            writer.done_writing()
            reader.read_all()
            out[name] = "no error"
        except Exception as e:  # noqa: BLE001 - the error text is the observation
            out[name] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


def same(a, b):
    na = a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA or a is pd.NaT
    nb = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA or b is pd.NaT
    if na or nb:
        return na and nb
    if isinstance(a, (bool,)) or isinstance(b, (bool,)):
        return bool(a) == bool(b) and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def plain(v):
    if hasattr(v, "item"):
        return v.item()
    return v


def compare(args):
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo_dir)
    entities = pq.read_table(args.entities).to_pandas()
    if args.feature_service:
        features = store.get_feature_service(args.feature_service)
    else:
        features = args.features.split(",")
    feast_df = store.get_historical_features(
        entity_df=entities, features=features, full_feature_names=args.full_feature_names
    ).to_df()
    larder = pq.read_table(args.larder).to_pandas()
    by_id = {int(r["row_id"]): r for _, r in larder.iterrows()}
    frame_cols = set(entities.columns)
    feature_cols = [c for c in feast_df.columns if c not in frame_cols]
    missing_cols = [c for c in feature_cols if c not in larder.columns]
    mismatches, cells = [], 0
    for _, row in feast_df.iterrows():
        rid = int(row["row_id"])
        mine = by_id.get(rid)
        if mine is None:
            mismatches.append({"row_id": rid, "error": "row missing from Larder's output"})
            continue
        for c in feature_cols:
            if c in missing_cols:
                continue
            cells += 1
            a, b = plain(row[c]), plain(mine[c])
            if not same(a, b):
                mismatches.append({"row_id": rid, "column": c, "feast": repr(a), "larder": repr(b)})
    # Type families per column: Feast's pandas dtype vs Larder's Arrow type.
    larder_schema = pq.read_schema(args.larder)
    types = {c: [str(feast_df[c].dtype), str(larder_schema.field(c).type)] for c in feature_cols if c in larder.columns}
    out = {
        "entity_rows": len(entities),
        "feast_rows": len(feast_df),
        "larder_rows": len(larder),
        "feast_dropped": len(entities) - len(feast_df),
        "larder_row_ids_complete": sorted(by_id) == sorted(int(x) for x in entities["row_id"]),
        "feature_columns": feature_cols,
        "missing_columns": missing_cols,
        "cells_compared": cells,
        "mismatch_count": len(mismatches),
        "mismatches": mismatches[:20],
        "types": types,
    }
    print(json.dumps(out, default=str))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--out-dir", required=True)
    g.add_argument("--seed", type=int, default=20261129)
    g.add_argument("--rows", type=int, default=400)
    c = sub.add_parser("compare")
    c.add_argument("--repo-dir", required=True)
    c.add_argument("--entities", required=True)
    c.add_argument("--larder", required=True)
    c.add_argument("--features", default="")
    c.add_argument("--feature-service")
    c.add_argument("--full-feature-names", action="store_true")
    lp = sub.add_parser("load-pg")
    lp.add_argument("--parquet", required=True)
    lp.add_argument("--table", required=True)
    lp.add_argument("--host", default="127.0.0.1")
    lp.add_argument("--port", type=int, default=5432)
    lp.add_argument("--database", required=True)
    lp.add_argument("--user", default="root")
    rw = sub.add_parser("remote-write")
    rw.add_argument("--repo-dir", required=True)
    rw.add_argument("--source-file", required=True)
    rm = sub.add_parser("remote-materialize")
    rm.add_argument("--repo-dir", required=True)
    rm.add_argument("--source-file", required=True)
    fe = sub.add_parser("flight-errors")
    fe.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    {"gen": gen, "compare": compare, "load-pg": load_pg, "flight-errors": flight_errors, "remote-write": remote_write, "remote-materialize": remote_materialize}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
