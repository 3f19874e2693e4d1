"""The same core cases against Feast's contrib PostgreSQL offline store (SQL template path).

Needs a reachable PostgreSQL (default: 127.0.0.1:5432, user root, no password; override with
PGHOST/PGPORT/PGUSER/PGPASSWORD). Creates a scratch database larder_hist_<pid> and drops it at the end.
"""
import os

import psycopg

os.environ["FEAST_OFFLINE"] = "postgres"  # only labels the JSON output; the store config below is explicit
from _harness import *  # noqa: F403
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource  # noqa: E402

PG = dict(host=os.environ.get("PGHOST", "127.0.0.1"), port=int(os.environ.get("PGPORT", "5432")),
          user=os.environ.get("PGUSER", "root"), password=os.environ.get("PGPASSWORD", ""))
DB = f"larder_hist_{os.getpid()}"
admin = psycopg.connect(dbname="postgres", autocommit=True, **PG)
admin.execute(f'CREATE DATABASE "{DB}"')
try:
    conn = psycopg.connect(dbname=DB, autocommit=True, **PG)
    T = ts("2024-01-01T12:00:00")
    m = lambda n: pd.Timedelta(minutes=n)

    def table(name, cols, rows):
        conn.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c} {t}" for c, t in cols)})')
        with conn.cursor() as cur:
            cur.executemany(f'INSERT INTO "{name}" VALUES ({", ".join(["%s"] * len(cols))})',
                            [tuple(x.to_pydatetime() if isinstance(x, pd.Timestamp) else x for x in r) for r in rows])

    us = pd.Timedelta(microseconds=1)
    table("ttl", [("driver_id", "bigint"), ("event_timestamp", "timestamptz"), ("v", "bigint")], [
        (1, T - m(60), 1), (2, T - m(60) - us, 2), (3, T, 3), (4, T + us, 4), (5, T - m(30), 50), (5, T + m(1), 51),
        (7, T - m(120), 70)])
    table("ties", [("driver_id", "bigint"), ("event_timestamp", "timestamptz"), ("created", "timestamptz"), ("v", "bigint")], [
        (1, T - m(10), T - m(1), 11), (1, T - m(10), T - m(5), 10),   # created breaks the tie -> 11
        (2, T - m(10), T - m(5), 20), (2, T - m(10), T - m(5), 21)])  # exact tie
    table("ties_nc", [("driver_id", "bigint"), ("event_timestamp", "timestamptz"), ("v", "bigint")], [
        (1, T - m(10), 10), (1, T - m(10), 11)])
    table("pair", [("a", "bigint"), ("b", "bigint"), ("event_timestamp", "timestamptz"), ("p", "text")], [
        (1, 11, T - m(10), "1/11"), (11, 1, T - m(20), "11/1")])

    d = tempfile.mkdtemp(prefix="feast-hist-pg-")
    pgcfg = {**PG, "type": "postgres", "database": DB, "sslmode": "disable"}
    store = FeatureStore(config=RepoConfig(
        project="hist", registry=os.path.join(d, "registry.db"), provider="local", offline_store=pgcfg,
        online_store={"type": "sqlite", "path": os.path.join(d, "online.db")}, entity_key_serialization_version=3,
        repo_path=d))
    drv = driver_entity()
    ea = Entity(name="ea", join_keys=["a"], value_type=ValueType.INT64)
    eb = Entity(name="eb", join_keys=["b"], value_type=ValueType.INT64)
    src = lambda t, created="": PostgreSQLSource(name=t, table=t, timestamp_field="event_timestamp",
                                                 created_timestamp_column=created)
    fvs = [
        FeatureView(name="ttl_1h", entities=[drv], ttl=timedelta(hours=1), schema=[Field(name="v", dtype=Int64)], source=src("ttl")),
        FeatureView(name="ttl_0", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)], source=src("ttl")),
        FeatureView(name="ties", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)], source=src("ties", "created")),
        FeatureView(name="ties_nc", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)], source=src("ties_nc")),
        FeatureView(name="pair", entities=[ea, eb], ttl=timedelta(0), schema=[Field(name="p", dtype=String)], source=src("pair")),
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        store.apply([drv, ea, eb, *fvs])

    def hist(ent, refs):
        with contextlib.redirect_stdout(io.StringIO()):
            job = store.get_historical_features(entity_df=ent, features=refs)
            return describe_df(job.to_df())

    obs = {}
    keys = [1, 2, 3, 4, 5, 7, 8]
    ent = pd.DataFrame({"driver_id": keys, "event_timestamp": [T] * len(keys)})
    obs["data_ttl"] = "k1 @T-60m, k2 @T-60m-1us, k3 @T, k4 @T+1us, k5 @T-30m & T+1m, k7 @T-120m, k8 none"
    for n in ("ttl_1h", "ttl_0"):
        res = hist(ent, [f"{n}:v"])
        obs[n] = {"rows_out": len(res["rows"]), "rows_in": len(keys), "dtypes": res["dtypes"],
                  "result_in_output_order": [(x["driver_id"], x["v"]) for x in res["rows"]]}
    ent = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T, T]})
    obs["ties_with_created"] = {"data": "k1: created T-1m v=11 / T-5m v=10; k2: identical event+created, v=20/21",
                                "result": [(x["driver_id"], x["v"]) for x in hist(ent, ["ties:v"])["rows"]]}
    obs["ties_no_created"] = {"data": "k1: two rows same event ts, v=10/11",
                              "result": [(x["driver_id"], x["v"]) for x in hist(ent.iloc[:1], ["ties_nc:v"])["rows"]]}
    dup = pd.DataFrame({"driver_id": [5, 5, 5, 3], "event_timestamp": [T, T, T, T], "tag": ["a", "a", "b", "c"]})
    obs["duplicate_entity_rows"] = hist(dup, ["ttl_0:v"])["rows"]
    order = pd.DataFrame({"driver_id": [7, 1, 8, 3], "event_timestamp": [T, T - m(30), T - m(5), T - m(60)], "label": ["r0", "r1", "r2", "r3"]})
    obs["order"] = {"input": list(order.label), "output": [x["label"] for x in hist(order, ["ttl_0:v"])["rows"]]}
    pairs = pd.DataFrame({"a": [1, 11], "b": [11, 1], "event_timestamp": [T, T]})
    obs["compound_key_row_id_concat"] = {"data": "(a=1,b=11)->'1/11' @T-10m, (a=11,b=1)->'11/1' @T-20m",
                                         "result": hist(pairs, ["pair:p"])["rows"]}
    emit(obs)
finally:
    try:
        conn.close()
    except Exception:
        pass
    admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    admin.close()
