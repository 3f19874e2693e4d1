"""Several views with different entities (incl. a compound key) and an entityless view."""
from _harness import *  # noqa: F403

r = Repo()
T = ts("2024-01-01T12:00:00")
m = lambda n: pd.Timedelta(minutes=n)
drv = driver_entity()
cust = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)

d = pd.DataFrame({"driver_id": [1, 2, 1], "event_timestamp": [T - m(30), T - m(30), T - m(5)], "dv": [10, 20, 11]})
c = pd.DataFrame({"customer_id": ["a", "b"], "event_timestamp": [T - m(30), T - m(30)], "cv": [1.5, 2.5]})
dc = pd.DataFrame({"driver_id": [1, 1, 2], "customer_id": ["a", "b", "a"],
                   "event_timestamp": [T - m(20), T - m(20), T - m(20)], "pair": ["1a", "1b", "2a"]})
g = pd.DataFrame({"event_timestamp": [T - m(60), T - m(15), T + m(5)], "gv": [100, 101, 102]})
fv_d = FeatureView(name="drv", entities=[drv], ttl=timedelta(0), schema=[Field(name="dv", dtype=Int64)],
                   source=FileSource(path=r.parquet("d", d), timestamp_field="event_timestamp"))
fv_c = FeatureView(name="cust", entities=[cust], ttl=timedelta(0), schema=[Field(name="cv", dtype=Float64)],
                   source=FileSource(path=r.parquet("c", c), timestamp_field="event_timestamp"))
fv_dc = FeatureView(name="pair", entities=[drv, cust], ttl=timedelta(0), schema=[Field(name="pair", dtype=String)],
                    source=FileSource(path=r.parquet("dc", dc), timestamp_field="event_timestamp"))
fv_g = FeatureView(name="glob", entities=[], ttl=timedelta(hours=1), schema=[Field(name="gv", dtype=Int64)],
                   source=FileSource(path=r.parquet("g", g), timestamp_field="event_timestamp"))
r.apply(drv, cust, fv_d, fv_c, fv_dc, fv_g)
obs = {"entityless_view_registry": {"entities": r.store.get_feature_view("glob").entities,
                                    "entity_columns": [f.name for f in r.store.get_feature_view("glob").entity_columns]}}

ent = pd.DataFrame({"driver_id": [1, 2, 1, 3], "customer_id": ["a", "a", "b", "z"],
                    "event_timestamp": [T, T, T - m(10), T]})
obs["entity_df"] = ent.assign(event_timestamp=ent.event_timestamp.astype(str)).to_dict(orient="records")
obs["all_views"] = r.hist(ent, ["drv:dv", "cust:cv", "pair:pair", "glob:gv"], arrow=False)
obs["entityless_only"] = r.hist(ent, ["glob:gv"], arrow=False)
obs["entityless_first_then_drv"] = r.hist(ent, ["glob:gv", "drv:dv"], arrow=False)
obs["drv_then_entityless"] = r.hist(ent, ["drv:dv", "glob:gv"], arrow=False)
# entityless with an entity_df that only has a timestamp column
obs["entityless_ts_only_entity_df"] = r.hist(pd.DataFrame({"event_timestamp": [T, T - m(30)]}), ["glob:gv"], arrow=False)
# same driver, two customers, SAME timestamp: dedup key depends on the first view's join keys
ent2 = pd.DataFrame({"driver_id": [1, 1, 2], "customer_id": ["a", "b", "a"], "event_timestamp": [T, T, T]})
obs["same_ts_drv_then_cust"] = r.hist(ent2, ["drv:dv", "cust:cv"], arrow=False)["rows"]
obs["same_ts_cust_then_drv"] = r.hist(ent2, ["cust:cv", "drv:dv"], arrow=False)["rows"]
obs["same_ts_pair_then_drv"] = r.hist(ent2, ["pair:pair", "drv:dv"], arrow=False)["rows"]
# entity df missing customer_id while requesting cust
obs["missing_join_key_column"] = error_of(lambda: r.hist(ent.drop(columns=["customer_id"]), ["drv:dv", "cust:cv"]))
emit(obs)
