"""field_mapping on the source, feature-service projections (alias, join_key_map), full_feature_names."""
from _harness import *  # noqa: F403

r = Repo()
T = ts("2024-01-01T12:00:00")
m = lambda n: pd.Timedelta(minutes=n)
drv = driver_entity()
loc = Entity(name="location", join_keys=["location_id"], value_type=ValueType.INT64)

# Source with raw column names, mapped by field_mapping (entity col, feature col, timestamp col, created col).
raw = pd.DataFrame({"drv": [1, 1, 2], "ts": [T - m(30), T - m(5), T - m(30)],
                    "cr": [T - m(30), T - m(5), T - m(30)], "conv_raw": [0.1, 0.2, 0.3], "trips": [5, 6, 7]})
src = FileSource(path=r.parquet("raw", raw), timestamp_field="event_ts", created_timestamp_column="created",
                 field_mapping={"drv": "driver_id", "conv_raw": "conv_rate", "ts": "event_ts", "cr": "created"})
fv = FeatureView(name="driver_stats", entities=[drv], ttl=timedelta(0),
                 schema=[Field(name="conv_rate", dtype=Float64), Field(name="trips", dtype=Int64)], source=src)
# A view whose source timestamp column is literally "event_timestamp" (same name as the entity df column).
loc_df = pd.DataFrame({"location_id": [10, 20, 30], "event_timestamp": [T - m(30)] * 3, "visits": [100, 200, 300]})
fv_loc = FeatureView(name="loc_stats", entities=[loc], ttl=timedelta(0), schema=[Field(name="visits", dtype=Int64)],
                     source=FileSource(path=r.parquet("loc", loc_df), timestamp_field="event_timestamp"))
svc_alias = FeatureService(name="svc_alias", features=[fv.with_name("ds_alias")[["conv_rate"]], fv_loc])
svc_jkm = FeatureService(name="svc_jkm", features=[
    fv_loc.with_name("origin").with_join_key_map({"location_id": "origin_id"}),
    fv_loc.with_name("dest").with_join_key_map({"location_id": "dest_id"}),
])
svc_jkm_noalias = FeatureService(name="svc_jkm_noalias", features=[
    fv_loc.with_join_key_map({"location_id": "origin_id"})])
r.apply(drv, loc, fv, fv_loc, svc_alias, svc_jkm, svc_jkm_noalias)

ent = pd.DataFrame({"driver_id": [1, 2], "location_id": [10, 20], "origin_id": [10, 30], "dest_id": [20, 99],
                    "event_timestamp": [T, T]})
obs = {}
obs["field_mapping_refs"] = r.hist(ent, ["driver_stats:conv_rate", "driver_stats:trips"], arrow=False)
obs["field_mapping_refs_full_names"] = r.hist(ent, ["driver_stats:conv_rate", "loc_stats:visits"],
                                              full_feature_names=True, arrow=False)
svc = lambda n: r.store.get_feature_service(n)
obs["svc_alias"] = r.hist(ent, svc("svc_alias"), arrow=False)
obs["svc_alias_full_names"] = r.hist(ent, svc("svc_alias"), full_feature_names=True, arrow=False)
obs["svc_join_key_map_full_names"] = r.hist(ent, svc("svc_jkm"), full_feature_names=True, arrow=False)
obs["svc_join_key_map_no_alias_full_names"] = r.hist(ent, svc("svc_jkm_noalias"), full_feature_names=True, arrow=False)
obs["svc_join_key_map_collision_without_full_names"] = error_of(lambda: r.hist(ent, svc("svc_jkm")))
obs["string_ref_to_alias"] = error_of(lambda: r.hist(ent, ["ds_alias:conv_rate"]))
obs["view_grouping_of_columns"] = r.hist(ent, ["driver_stats:trips", "loc_stats:visits", "driver_stats:conv_rate"],
                                         arrow=False)["columns"]
obs["duplicate_ref"] = error_of(lambda: r.hist(ent, ["driver_stats:trips", "driver_stats:trips"])["columns"])
obs["duplicate_ref_full_names"] = error_of(
    lambda: r.hist(ent, ["driver_stats:trips", "driver_stats:trips"], full_feature_names=True)["columns"])
obs["feature_order_follows_refs"] = r.hist(ent, ["loc_stats:visits", "driver_stats:trips", "driver_stats:conv_rate"],
                                           arrow=False)["columns"]
emit(obs)
