"""Shared helpers for the historical-retrieval experiments.

Every experiment builds a throw-away Feast repo in a temp dir (local file registry,
sqlite online store, offline store from $FEAST_OFFLINE, default "file" = DaskOfflineStore),
writes Parquet files, applies objects with the Python SDK and calls
store.get_historical_features(...). Results are printed as one JSON document.

Run with the Feast 0.67 venv:  TZ=UTC $PY e2e/feast/historical/<script>.py
"""

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import traceback
import warnings
from datetime import date, datetime, timedelta, timezone

warnings.filterwarnings("ignore")
import logging  # noqa: E402

logging.disable(logging.WARNING)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from feast import (  # noqa: E402,F401
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    RepoConfig,
    ValueType,
)
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String  # noqa: E402,F401

OFFLINE = os.environ.get("FEAST_OFFLINE", "file")
UTC = timezone.utc
T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def ts(s: str) -> pd.Timestamp:
    """ts('2024-01-01T12:00:00') -> tz-aware UTC pandas Timestamp."""
    return pd.Timestamp(s, tz="UTC") if "+" not in s and not s.endswith("Z") else pd.Timestamp(s)


class Repo:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="feast-hist-")
        cfg = RepoConfig(
            project="hist",
            registry=os.path.join(self.dir, "registry.db"),
            provider="local",
            offline_store={"type": OFFLINE},
            online_store={"type": "sqlite", "path": os.path.join(self.dir, "online.db")},
            entity_key_serialization_version=3,
            repo_path=self.dir,
        )
        self.store = FeatureStore(config=cfg)

    def parquet(self, name: str, data) -> str:
        """Write a DataFrame (or pyarrow Table) to <repo>/<name>.parquet, return the path."""
        path = os.path.join(self.dir, f"{name}.parquet")
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        pq.write_table(table, path)
        return path

    def apply(self, *objs):
        with contextlib.redirect_stdout(io.StringIO()):
            self.store.apply(list(objs))

    def hist(self, entity_df, features, full_feature_names=False, arrow=True, **kw):
        """Run get_historical_features; return a JSON-friendly description of the result."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            job = self.store.get_historical_features(
                entity_df=entity_df, features=features, full_feature_names=full_feature_names, **kw
            )
            df = job.to_df()
            res = describe_df(df)
            if arrow:
                tbl = job.to_arrow()
                res["arrow_schema"] = {f.name: str(f.type) for f in tbl.schema}
                res["arrow_rows"] = [jsonable(r) for r in tbl.to_pylist()]
        if out.getvalue().strip():
            res["stdout"] = out.getvalue().strip()
        return res


def describe_df(df: pd.DataFrame) -> dict:
    return {
        "columns": list(df.columns),
        "dtypes": {c: str(t) for c, t in df.dtypes.items()},
        "rows": [jsonable(r) for r in df.to_dict(orient="records")],
    }


def jsonable(v):
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return {"ndarray": [jsonable(x) for x in v.tolist()]}
    if v is None:
        return None
    if v is pd.NaT:
        return "NaT"
    if v is pd.NA:
        return "<NA>"
    if isinstance(v, (pd.Timestamp, datetime)):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (np.floating, float)):
        f = float(v)
        if math.isnan(f):
            return "NaN"
        return f
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, bytes):
        return v.decode("latin1")
    return v


def error_of(fn) -> dict:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            r = fn()
        return {"no_error": True, "result": r}
    except Exception as e:  # noqa: BLE001
        return {
            "exception": f"{type(e).__module__}.{type(e).__name__}",
            "message": str(e)[:600],
            "raised_at": traceback.extract_tb(e.__traceback__)[-1].filename.split("site-packages/")[-1]
            + ":"
            + str(traceback.extract_tb(e.__traceback__)[-1].lineno),
        }


def driver_entity(value_type=ValueType.INT64, name="driver", key="driver_id"):
    return Entity(name=name, join_keys=[key], value_type=value_type)


def emit(obs: dict):
    obs = {"offline_store": OFFLINE, "feast_version": __import__("feast").__version__, **obs}
    json.dump(obs, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
