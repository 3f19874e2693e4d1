"""The growth repo of ../feast_repo plus an on-demand feature view, for the
remote-registry e2e test (crates/cli/tests/registry_server_e2e.rs): `feast
apply` sends every object to Larder's registry server over gRPC.

Project `growth`: entity customer, FileSource customer_source, FeatureView
customer_profile, RequestSource order_request, OnDemandFeatureView
order_vs_avg (order_amount / avg_order), FeatureService customer_service,
Permission reader. Data: ../feast_repo/make_data.py writes
data/customer_profile.parquet (c1..c3 at 2024-01-01T00:00Z and 01:00Z).
"""
from datetime import timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
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

order_request = RequestSource(
    name="order_request",
    schema=[Field(name="order_amount", dtype=Float64)],
)


@on_demand_feature_view(
    sources=[customer_profile, order_request],
    schema=[Field(name="order_vs_avg", dtype=Float64)],
    description="Order amount relative to the customer's average order",
)
def order_vs_avg(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["order_vs_avg"] = inputs["order_amount"] / inputs["avg_order"]
    return out


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
