"""A small Feast 0.67 feature repo (project `growth`), applied with `feast apply`
by the e2e tests so that Larder can read what Feast wrote.

The Parquet file `data/customer_profile.parquet` is written by `make_data.py`.
Its path is stored in the registry as an absolute path inside the repo copy.
"""
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.permissions.action import AuthzedAction
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy
from feast.types import Float64, Int64, String

DATA_PATH = Path(__file__).resolve().parent / "data" / "customer_profile.parquet"

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A customer",
)

customer_source = FileSource(
    name="customer_source",
    path=str(DATA_PATH),
    timestamp_field="event_timestamp",
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(hours=2),
    schema=[
        Field(name="avg_order", dtype=Float64),
        Field(name="orders", dtype=Int64),
        Field(name="segment", dtype=String),
    ],
    source=customer_source,
    tags={"owner": "growth"},
)

customer_service = FeatureService(
    name="customer_service",
    features=[customer_profile[["avg_order"]]],
)

reader = Permission(
    name="reader",
    types=[FeatureView],
    policy=RoleBasedPolicy(roles=["analyst"]),
    actions=[AuthzedAction.DESCRIBE],
)
