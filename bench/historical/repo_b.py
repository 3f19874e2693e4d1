"""Scenario B's Feast objects: three views over three Parquet sources with
different entities (driver_id; customer_id; the pair driver_id, customer_id)
and different ttls (1 day, 7 days, unbounded).

Copied into the scenario-B repo as features.py by run.sh and applied with
`feast apply`; the sources are $BENCH_B_DIR/b_{driver,customer,pair}.parquet.
"""
import os
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String

DATA = os.environ["BENCH_B_DIR"]

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)


def source(name):
    return FileSource(
        name=f"b_{name}_source",
        path=os.path.join(DATA, f"b_{name}.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )


b_driver = FeatureView(
    name="b_driver",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="d_trips_today", dtype=Int32),
        Field(name="d_rating", dtype=Float64),
        Field(name="d_city", dtype=String),
        Field(name="d_is_premium", dtype=Bool),
    ],
    source=source("driver"),
)

b_customer = FeatureView(
    name="b_customer",
    entities=[customer],
    ttl=timedelta(days=7),
    schema=[
        Field(name="c_lifetime_value", dtype=Float64),
        Field(name="c_orders", dtype=Int64),
        Field(name="c_segment", dtype=String),
    ],
    source=source("customer"),
)

b_pair = FeatureView(
    name="b_pair",
    entities=[driver, customer],
    ttl=timedelta(0),  # unbounded
    schema=[
        Field(name="p_rides_together", dtype=Int32),
        Field(name="p_avg_tip", dtype=Float32),
        Field(name="p_last_rating", dtype=Float64),
    ],
    source=source("pair"),
)
