"""When is an entity row dropped vs returned with nulls?"""
from _harness import *  # noqa: F403

r = Repo()
T = ts("2024-01-01T12:00:00")
m = lambda n: pd.Timedelta(minutes=n)
drv = driver_entity()
# view A: ttl 1h. view B: ttl 0 (unbounded)
a_rows = [(1, T - m(10), 1), (2, T - m(10), 2), (3, T - m(120), 3), (5, T + m(10), 5), (6, T + m(10), 6),
          (7, T - m(10), 7), (8, T + m(10), 80), (9, T - m(10), 9), (9, T + m(10), 91)]
b_rows = [(2, T + m(10), 20), (3, T - m(10), 30), (6, T + m(20), 60), (7, T - m(10), 70), (8, T - m(10), 800)]
mk = lambda rows: pd.DataFrame({"driver_id": [x[0] for x in rows], "event_timestamp": [x[1] for x in rows],
                                "v": [x[2] for x in rows]})
a = mk(a_rows)
b = mk(b_rows).rename(columns={"v": "w"})
# key 8 in A: one row with a NULL event timestamp (plus one after T)
a = pd.concat([a, pd.DataFrame({"driver_id": [8], "event_timestamp": [pd.NaT], "v": [81]})], ignore_index=True)
a["event_timestamp"] = pd.to_datetime(a["event_timestamp"], utc=True)
fa = FeatureView(name="A", entities=[drv], ttl=timedelta(hours=1), schema=[Field(name="v", dtype=Int64)],
                 source=FileSource(path=r.parquet("a", a), timestamp_field="event_timestamp"))
fb = FeatureView(name="B", entities=[drv], ttl=timedelta(0), schema=[Field(name="w", dtype=Int64)],
                 source=FileSource(path=r.parquet("b", b), timestamp_field="event_timestamp"))
r.apply(drv, fa, fb)

desc = {
    1: "A: T-10m | B: no rows for key",
    2: "A: T-10m | B: only T+10m",
    3: "A: only T-120m (outside 1h ttl) | B: T-10m",
    4: "no rows in A or B",
    5: "A: only T+10m | B: none",
    6: "A: only T+10m | B: only T+20m",
    7: "A: T-10m | B: T-10m (also an extra entity row at T-1d that precedes all data of the key)",
    8: "A: one row with NULL event ts (v=81) + T+10m | B: T-10m",
    9: "A: T-10m and T+10m",
}
ent = pd.DataFrame({"driver_id": [1, 2, 3, 4, 5, 6, 7, 7, 8, 9],
                    "event_timestamp": [T] * 7 + [T - pd.Timedelta(days=1)] + [T] * 2})
ent["row"] = range(len(ent))
obs = {"keys": desc}


def summarize(res):
    got = {row["row"]: {k: row[k] for k in row if k in ("driver_id", "v", "w")} for row in res["rows"]}
    return {"returned": got, "dropped_entity_rows": [
        {"row": i, "driver_id": int(ent.driver_id[i]), "ts": ent.event_timestamp[i].isoformat()}
        for i in range(len(ent)) if i not in got]}


obs["A_only"] = summarize(r.hist(ent, ["A:v"], arrow=False))
obs["B_only"] = summarize(r.hist(ent, ["B:w"], arrow=False))
obs["A_and_B"] = summarize(r.hist(ent, ["A:v", "B:w"], arrow=False))
obs["B_and_A"] = summarize(r.hist(ent, ["B:w", "A:v"], arrow=False))
# every row droppable -> empty frame
res = r.hist(pd.DataFrame({"driver_id": [5, 6], "event_timestamp": [T, T]}), ["A:v"])
obs["all_rows_dropped"] = {"columns": res["columns"], "dtypes": res["dtypes"], "n_rows": len(res["rows"]),
                           "arrow_schema": res["arrow_schema"]}
emit(obs)
