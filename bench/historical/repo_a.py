"""Scenario A's Feast objects (one Parquet source, 10 features keyed by driver_id).

Copied into each scenario-A repo as features.py by run.sh and applied with
`feast apply`; the source path comes from $BENCH_A_SOURCE (absolute).
"""
import os
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats_source = FileSource(
    name="driver_stats_source",
    path=os.environ["BENCH_A_SOURCE"],
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="trips_today", dtype=Int32),
        Field(name="rating", dtype=Float64),
        Field(name="earnings_today", dtype=Float64),
        Field(name="online_minutes", dtype=Int32),
        Field(name="completed_trips", dtype=Int64),
        Field(name="city", dtype=String),
        Field(name="is_premium", dtype=Bool),
    ],
    source=driver_stats_source,
)
