"""Output dtypes (to_df vs to_arrow) with and without missing rows; null feature values in the chosen row."""
from _harness import *  # noqa: F403
from feast.types import Bytes, UnixTimestamp  # noqa: E402

r = Repo()
T = ts("2024-01-01T12:00:00")
m = lambda n: pd.Timedelta(minutes=n)
drv = driver_entity()
schema = pa.schema([("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
                    ("i64", pa.int64()), ("i32", pa.int32()), ("f32", pa.float32()), ("f64", pa.float64()),
                    ("s", pa.string()), ("b", pa.bool_()), ("by", pa.binary()), ("ut", pa.timestamp("us", tz="UTC")),
                    ("ai", pa.list_(pa.int64())), ("as_", pa.list_(pa.string())), ("af", pa.list_(pa.float32()))])
full = dict(i64=7, i32=3, f32=0.5, f64=1.25, s="x", b=True, by=b"\x01", ut=T - m(100), ai=[1, 2], as_=["a"], af=[0.5])
nulls = {k: None for k in full}
rows = [
    dict(driver_id=1, event_timestamp=T - m(30), **full),
    dict(driver_id=2, event_timestamp=T - m(40), **full),      # older complete row
    dict(driver_id=2, event_timestamp=T - m(30), **nulls),     # newest row: all feature values null
    dict(driver_id=4, event_timestamp=T - m(30), **{**full, "b": False, "ai": [], "as_": [], "s": ""}),
]
tbl = pa.Table.from_pylist(rows, schema=schema)
feats = [Field(name="i64", dtype=Int64), Field(name="i32", dtype=Int32), Field(name="f32", dtype=Float32),
         Field(name="f64", dtype=Float64), Field(name="s", dtype=String), Field(name="b", dtype=Bool),
         Field(name="by", dtype=Bytes), Field(name="ut", dtype=UnixTimestamp), Field(name="ai", dtype=Array(Int64)),
         Field(name="as_", dtype=Array(String)), Field(name="af", dtype=Array(Float32))]
fv = FeatureView(name="t", entities=[drv], ttl=timedelta(0), schema=feats,
                 source=FileSource(path=r.parquet("t", tbl), timestamp_field="event_timestamp"))
# a second source WITHOUT nulls: shows the file store's int -> float64 switch depends on nulls in the source
t2 = pa.table({"driver_id": pa.array([1], pa.int64()),
               "event_timestamp": pa.array([T - m(5)], pa.timestamp("us", tz="UTC")),
               "n64": pa.array([3], pa.int64()), "n32": pa.array([3], pa.int32()), "nb": [True]})
fv2 = FeatureView(name="t2", entities=[drv], ttl=timedelta(0),
                  schema=[Field(name="n64", dtype=Int64), Field(name="n32", dtype=Int32), Field(name="nb", dtype=Bool)],
                  source=FileSource(path=r.parquet("t2", t2), timestamp_field="event_timestamp"))
r.apply(drv, fv, fv2)
refs = [f"t:{f.name}" for f in feats]
obs = {"data": "k1 full row; k2: full row @T-40m + all-null row @T-30m; k3: no rows; k4: falsy values (False, [], '')"}
obs["all_keys_present"] = r.hist(pd.DataFrame({"driver_id": [1, 4], "event_timestamp": [T, T]}), refs)
obs["with_missing_key_and_null_row"] = r.hist(pd.DataFrame({"driver_id": [1, 2, 3], "event_timestamp": [T, T, T]}), refs)
obs["only_null_row_and_missing_key"] = r.hist(pd.DataFrame({"driver_id": [2, 3], "event_timestamp": [T, T]}), refs)
refs2 = ["t2:n64", "t2:n32", "t2:nb"]
obs["null_free_source_all_present"] = r.hist(pd.DataFrame({"driver_id": [1], "event_timestamp": [T]}), refs2)
obs["null_free_source_one_missing"] = r.hist(pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T, T]}), refs2)
emit(obs)
