"""TTL window and 'rows after the entity timestamp' (one entity row per key, all at T)."""
from _harness import *  # noqa: F403

r = Repo()
T = ts("2024-01-01T12:00:00")
us = pd.Timedelta(microseconds=1)
rows = [  # (driver_id, event_ts, value, what)
    (1, T - pd.Timedelta(hours=1), 1, "exactly T - ttl"),
    (2, T - pd.Timedelta(hours=1) - us, 2, "T - ttl - 1us only"),
    (3, T, 3, "exactly T"),
    (4, T + us, 4, "T + 1us only"),
    (5, T - pd.Timedelta(minutes=30), 50, "T-30m and T+1s"),
    (5, T + pd.Timedelta(seconds=1), 51, ""),
    (6, T - pd.Timedelta(hours=2), 60, "T-2h and T-30m"),
    (6, T - pd.Timedelta(minutes=30), 61, ""),
    (7, T - pd.Timedelta(hours=2), 70, "T-2h only (outside 1h ttl)"),
    (9, T - pd.Timedelta(days=3650), 90, "T-10y only"),
]
df = pd.DataFrame(
    {"driver_id": [x[0] for x in rows], "event_timestamp": [x[1] for x in rows], "v": [x[2] for x in rows]}
)
src = FileSource(path=r.parquet("d", df), timestamp_field="event_timestamp")
drv = driver_entity()
views = {
    "ttl_1h": timedelta(hours=1),
    "ttl_0": timedelta(0),
    "ttl_none": None,
}
fvs = [FeatureView(name=n, entities=[drv], ttl=t, schema=[Field(name="v", dtype=Int64)], source=src) for n, t in views.items()]
r.apply(drv, *fvs)

keys = [1, 2, 3, 4, 5, 6, 7, 8, 9]  # 8 has no rows at all
entity_df = pd.DataFrame({"driver_id": keys, "event_timestamp": [T] * len(keys)})
obs = {"data": [{"driver_id": x[0], "event_ts": x[1].isoformat(), "v": x[2], "note": x[3]} for x in rows],
       "entity_rows": "driver_id 1..9 all at 2024-01-01T12:00:00Z (8 has no feature rows)"}
for n in views:
    res = r.hist(entity_df, [f"{n}:v"], arrow=False)
    obs[n] = {"returned": {row["driver_id"]: row["v"] for row in res["rows"]},
              "dropped_driver_ids": sorted(set(keys) - {row["driver_id"] for row in res["rows"]}),
              "dtypes": res["dtypes"]}
emit(obs)
