"""Tie-breaking between feature rows with the same event timestamp."""
import random

from _harness import *  # noqa: F403

r = Repo()
T = ts("2024-01-01T12:00:00")
E = T - pd.Timedelta(minutes=10)  # common event ts
drv = driver_entity()

# A) created_timestamp column present.
#  key 1: same event ts, created differs; the file order puts the newest created FIRST.
#  key 2: same event ts, same created, two values (file order 20, 21).
#  key 3: newer event ts but OLDER created vs older event ts newer created -> event ts dominates?
#  key 4: same event ts, created null on one row, non-null (older than nothing) on the other.
#  key 5: created later than the entity ts (no filter_by_created_timestamp) -> still used?
a_rows = [
    (1, E, T - pd.Timedelta(minutes=1), 11), (1, E, T - pd.Timedelta(minutes=5), 10),
    (2, E, T - pd.Timedelta(minutes=5), 20), (2, E, T - pd.Timedelta(minutes=5), 21),
    (3, E - pd.Timedelta(minutes=5), T - pd.Timedelta(minutes=1), 30), (3, E, T - pd.Timedelta(minutes=9), 31),
    (4, E, pd.NaT, 40), (4, E, T - pd.Timedelta(minutes=9), 41),
    (5, E, T + pd.Timedelta(days=1), 50),
]
a = pd.DataFrame({"driver_id": [x[0] for x in a_rows], "event_timestamp": [x[1] for x in a_rows],
                  "created": pd.to_datetime([x[2] for x in a_rows], utc=True), "v": [x[3] for x in a_rows]})
src_a = FileSource(path=r.parquet("a", a), timestamp_field="event_timestamp", created_timestamp_column="created")
fv_a = FeatureView(name="with_created", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)], source=src_a)

# B) no created column: key 1 has two rows with equal event ts (file order 10, 11).
b = pd.DataFrame({"driver_id": [1, 1, 2, 2, 2], "event_timestamp": [E, E, E, E, E], "v": [10, 11, 22, 21, 20]})
src_b = FileSource(path=r.parquet("b", b), timestamp_field="event_timestamp")
fv_b = FeatureView(name="no_created", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)], source=src_b)

# C) determinism stress: 300 keys x 6 rows each with the SAME event ts; created distinct (max created must win)
#    and 300 keys x 6 rows with identical event+created ts (who wins?). Rows shuffled in the file.
rng = random.Random(7)
c_rows, d_rows = [], []
for k in range(1000, 1300):
    for j in range(6):
        c_rows.append((k, E, T - pd.Timedelta(minutes=30 - j), j))
        d_rows.append((k, E, T - pd.Timedelta(minutes=30), j))
rng.shuffle(c_rows)
rng.shuffle(d_rows)
mk = lambda rows: pd.DataFrame({"driver_id": [x[0] for x in rows], "event_timestamp": [x[1] for x in rows],
                                "created": [x[2] for x in rows], "v": [x[3] for x in rows]})
src_c = FileSource(path=r.parquet("c", mk(c_rows)), timestamp_field="event_timestamp", created_timestamp_column="created")
src_d = FileSource(path=r.parquet("dd", mk(d_rows)), timestamp_field="event_timestamp", created_timestamp_column="created")
fv_c = FeatureView(name="stress_created", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)], source=src_c)
fv_d = FeatureView(name="stress_equal", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)], source=src_d)
r.apply(drv, fv_a, fv_b, fv_c, fv_d)

obs = {}
ent = pd.DataFrame({"driver_id": [1, 2, 3, 4, 5], "event_timestamp": [T] * 5})
res = r.hist(ent, ["with_created:v"], arrow=False)
obs["with_created"] = {
    "data": "k1: E/created T-1m v=11, E/created T-5m v=10 | k2: E/T-5m v=20, E/T-5m v=21 | "
            "k3: E-5m/created T-1m v=30, E/created T-9m v=31 | k4: E/created NaT v=40, E/created T-9m v=41 | "
            "k5: E/created T+1d v=50",
    "result": {row["driver_id"]: row["v"] for row in res["rows"]},
}
res = r.hist(ent, ["with_created:v"], arrow=False, filter_by_created_timestamp=True)
obs["with_created_filter_by_created_timestamp"] = {row["driver_id"]: row["v"] for row in res["rows"]}
res = r.hist(pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T] * 2}), ["no_created:v"], arrow=False)
obs["no_created"] = {"data": "k1: v=10 then 11 (file order), k2: 22,21,20 all same event ts",
                     "result": {row["driver_id"]: row["v"] for row in res["rows"]}}

ent2 = pd.DataFrame({"driver_id": list(range(1000, 1300)), "event_timestamp": [T] * 300})
res = r.hist(ent2, ["stress_created:v"], arrow=False)
vals = [row["v"] for row in res["rows"]]
obs["stress_created_distinct"] = {"keys": len(vals), "all_max_created_won(v==5)": all(v == 5.0 for v in vals),
                                  "value_counts": {str(k): vals.count(k) for k in sorted(set(vals))}}
runs = []
for _ in range(3):
    res = r.hist(ent2, ["stress_equal:v"], arrow=False)
    runs.append({row["driver_id"]: row["v"] for row in res["rows"]})
vals = list(runs[0].values())
# which file position won? compute for each key the index (within that key's rows in file order) of the winner
pos = {"first_in_file": 0, "middle": 0, "last_in_file": 0}
for k in range(1000, 1300):
    seq = [x[3] for x in d_rows if x[0] == k]  # this key's values in file order
    i = seq.index(int(runs[0][k]))
    pos["first_in_file" if i == 0 else "last_in_file" if i == 5 else "middle"] += 1
obs["stress_equal_event_and_created"] = {"same_result_in_3_runs": runs[0] == runs[1] == runs[2],
                                         "winner_position_in_file": pos,
                                         "value_counts": {str(k): vals.count(k) for k in sorted(set(vals))}}
emit(obs)
