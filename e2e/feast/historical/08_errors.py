"""Errors and key-type mismatches: exception class, message, where it is raised."""
from _harness import *  # noqa: F403

r = Repo()
T = ts("2024-01-01T12:00:00")
m = lambda n: pd.Timedelta(minutes=n)
drv = driver_entity()
cust = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
d = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T - m(30), T - m(30)], "v": [10, 20]})
c = pd.DataFrame({"customer_id": ["1", "2"], "event_timestamp": [T - m(30), T - m(30)], "cv": [1, 2]})
fv = FeatureView(name="fv", entities=[drv], ttl=timedelta(0), schema=[Field(name="v", dtype=Int64)],
                 source=FileSource(path=r.parquet("d", d), timestamp_field="event_timestamp"))
fc = FeatureView(name="fc", entities=[cust], ttl=timedelta(0), schema=[Field(name="cv", dtype=Int64)],
                 source=FileSource(path=r.parquet("c", c), timestamp_field="event_timestamp"))
r.apply(drv, cust, fv, fc)
good = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T, T]})
H = lambda e, f=["fv:v"], **kw: (lambda: r.hist(e, f, arrow=False, **kw)["rows"])
cases = {
    "no_timestamp_column": H(pd.DataFrame({"driver_id": [1, 2]})),
    "timestamp_column_named_differently_not_datetime": H(pd.DataFrame({"driver_id": [1], "ts": ["2024-01-01"]})),
    "missing_join_key_column": H(pd.DataFrame({"event_timestamp": [T]})),
    "unknown_feature_in_known_view": H(good, ["fv:nope"]),
    "unknown_view": H(good, ["nope:v"]),
    "ref_without_colon": H(good, ["v"]),
    "empty_feature_list": H(good, []),
    "string_ids_vs_int64_entity": H(pd.DataFrame({"driver_id": ["1", "2"], "event_timestamp": [T, T]})),
    "int32_ids_vs_int64_entity": H(pd.DataFrame({"driver_id": pd.Series([1, 2], dtype="int32"), "event_timestamp": [T, T]})),
    "float_ids_vs_int64_entity": H(pd.DataFrame({"driver_id": [1.0, 2.0], "event_timestamp": [T, T]})),
    "int_ids_vs_string_entity": H(pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [T, T]}), ["fc:cv"]),
    "entity_df_sql_string": H("SELECT 1 AS driver_id, now() AS event_timestamp"),
    "entity_df_zero_rows": H(pd.DataFrame({"driver_id": pd.Series([], dtype="int64"),
                                           "event_timestamp": pd.Series([], dtype="datetime64[ns, UTC]")})),
    "entity_df_null_timestamp": H(pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T, pd.NaT]})),
    "entity_df_has_column_named_like_feature": lambda: r.hist(
        pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T, T], "v": ["mine", "mine"]}), ["fv:v"], arrow=False),
    "entity_df_and_start_date": H(good, start_date=T.to_pydatetime()),
}
emit({k: error_of(f) for k, f in cases.items()})
