"""Entity dataframe handling: extra columns, duplicates, output order, timestamp column, time zones, strings."""
import os
import time

os.environ["TZ"] = "Asia/Kolkata"  # deliberately not UTC: shows naive timestamps are UTC, not local time
time.tzset()

from _harness import *  # noqa: E402,F403

r = Repo()
T = ts("2024-01-01T12:00:00")
m = lambda n: pd.Timedelta(minutes=n)
drv = driver_entity()
d = pd.DataFrame({"driver_id": [1, 2, 3, 5, 6], "event_timestamp": [T - m(180), T - m(90), T - m(150), T - m(40), T - m(15)],
                  "v": [1, 2, 3, 5, 6]})
fv = FeatureView(name="fv", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)],
                 source=FileSource(path=r.parquet("d", d), timestamp_field="event_timestamp"))
# same data, but the Parquet timestamp column is tz-NAIVE (timestamp[us] without tz)
dn = d.assign(event_timestamp=d.event_timestamp.dt.tz_convert(None))
fv_naive = FeatureView(name="fv_naive_src", entities=[drv], ttl=timedelta(0), schema=[Field(name="v2", dtype=Int64)],
                       source=FileSource(path=r.parquet("dn", dn.rename(columns={"v": "v2"})), timestamp_field="event_timestamp"))
r.apply(drv, fv, fv_naive)
obs = {"process_TZ": os.environ["TZ"], "data": "v=1@T-180m k1, v=2@T-90m k2, v=3@T-150m k3, v=5@T-40m k5, v=6@T-15m k6; k4 none"}

# order + extra columns + a non-default index
ent = pd.DataFrame({"driver_id": [1, 2, 3, 4, 5], "event_timestamp": [T, T - m(60), T - m(120), T, T - m(30)],
                    "label": ["r0", "r1", "r2", "r3", "r4"], "weight": [0.5, 1.5, 2.5, 3.5, 4.5]},
                   index=[40, 30, 20, 10, 0])
res = r.hist(ent, ["fv:v"])
obs["order_and_extra_columns"] = {"input_label_order": list(ent.label), "output_label_order": [x["label"] for x in res["rows"]],
                                  "columns": res["columns"], "dtypes": res["dtypes"], "rows": res["rows"],
                                  "arrow_schema": res["arrow_schema"]}
res2 = r.hist(ent, ["fv:v", "fv_naive_src:v2"], arrow=False)
obs["order_two_views"] = [x["label"] for x in res2["rows"]]
obs["naive_parquet_timestamps_treated_as_utc"] = {x["label"]: [x["v"], x["v2"]] for x in res2["rows"]}

# duplicates
dup = pd.DataFrame({"driver_id": [1, 1, 1, 2], "event_timestamp": [T, T, T, T], "tag": ["a", "a", "b", "c"]})
res = r.hist(dup, ["fv:v"], arrow=False)
obs["duplicate_entity_rows"] = {"input": dup.assign(event_timestamp=str(T)).to_dict(orient="records"), "output": res["rows"]}
dup2 = pd.DataFrame({"driver_id": [4, 4, 4], "event_timestamp": [T, T, T], "tag": ["a", "a", "b"]})
obs["duplicate_entity_rows_key_without_data"] = r.hist(dup2, ["fv:v"], arrow=False)["rows"]

# time zones of the entity timestamps (feature for k5 at 11:20Z, k6 at 11:45Z)
cases = {
    "naive_11:30": pd.Timestamp("2024-01-01 11:30:00"),
    "utc_11:30": pd.Timestamp("2024-01-01 11:30:00", tz="UTC"),
    "plus0530_17:00(=11:30Z)": pd.Timestamp("2024-01-01 17:00:00", tz="Asia/Kolkata"),
    "minus0500_06:30(=11:30Z)": pd.Timestamp("2024-01-01 06:30:00", tz="America/New_York"),
}
tzres = {}
for name, t in cases.items():
    e = pd.DataFrame({"driver_id": [5, 6], "event_timestamp": [t, t]})
    out = r.hist(e, ["fv:v"], arrow=False)
    tzres[name] = {"input_dtype": str(e.event_timestamp.dtype), "output_dtype": out["dtypes"]["event_timestamp"],
                   "rows": [(x["driver_id"], x["event_timestamp"], x["v"]) for x in out["rows"]]}
obs["timezones"] = tzres
# mixed offsets in one object column
mixed = pd.DataFrame({"driver_id": [5, 6], "event_timestamp": [pd.Timestamp("2024-01-01 17:00", tz="Asia/Kolkata"),
                                                               pd.Timestamp("2024-01-01 11:30", tz="UTC")]})
obs["mixed_tz_object_column"] = {"input_dtype": str(mixed.event_timestamp.dtype),
                                 "result": error_of(lambda: r.hist(mixed, ["fv:v"], arrow=False))}
# strings
for name, vals in {"iso_strings_space_naive": ["2024-01-01 11:30:00", "2024-01-01 11:30:00"],
                   "iso_strings_T_naive": ["2024-01-01T11:30:00", "2024-01-01T11:30:00"],
                   "iso_strings_mixed_formats": ["2024-01-01 11:30:00", "2024-01-01T11:30:00"],
                   "iso_strings_Z": ["2024-01-01T11:30:00Z", "2024-01-01T11:30:00Z"],
                   "iso_strings_offset": ["2024-01-01T17:00:00+05:30", "2024-01-01T17:00:00+05:30"]}.items():
    e = pd.DataFrame({"driver_id": [5, 6], "event_timestamp": vals})
    obs[name] = error_of(lambda: r.hist(e, ["fv:v"], arrow=False))
# python datetime objects in an object column / date objects
e = pd.DataFrame({"driver_id": [5, 6], "event_timestamp": pd.Series([datetime(2024, 1, 1, 11, 30), datetime(2024, 1, 1, 11, 30)], dtype=object)})
obs["python_datetime_object_column"] = {"input_dtype": str(e.event_timestamp.dtype), "result": error_of(lambda: r.hist(e, ["fv:v"], arrow=False))}
# timestamp column under another name (single datetime column) / two datetime columns
e = pd.DataFrame({"driver_id": [5, 6], "ts": [T - m(30), T - m(30)]})
obs["other_timestamp_column_name"] = error_of(lambda: r.hist(e, ["fv:v"], arrow=False))
e = pd.DataFrame({"driver_id": [5, 6], "ts": [T, T], "ts2": [T, T]})
obs["two_datetime_columns_no_event_timestamp"] = error_of(lambda: r.hist(e, ["fv:v"], arrow=False))
# event_timestamp plus another datetime column (kept as extra column)
e = pd.DataFrame({"driver_id": [5, 6], "event_timestamp": [T, T], "other_ts": [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-01")]})
obs["extra_datetime_column"] = r.hist(e, ["fv:v"])
# null join key in the entity df
e = pd.DataFrame({"driver_id": [5, None], "event_timestamp": [T, T]})
obs["null_join_key"] = {"input_dtype": str(e.driver_id.dtype), "result": error_of(lambda: r.hist(e, ["fv:v"]))}
# nanosecond entity timestamps vs microsecond feature timestamps (k6 feature at exactly 11:45:00)
e = pd.DataFrame({"driver_id": [6, 6], "event_timestamp": [T - m(15) - pd.Timedelta(nanoseconds=1), T - m(15)]})
obs["nanosecond_boundary"] = error_of(lambda: [(x["event_timestamp"], x["v"]) for x in r.hist(e, ["fv:v"], arrow=False)["rows"]])
emit(obs)
