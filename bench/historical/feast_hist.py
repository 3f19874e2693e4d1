"""One Feast 0.67 get_historical_features run, as the benchmark measures it.

    feast_hist.py --repo DIR --entities E.parquet --features v:f,v:g --output OUT.parquet

Loads the repo (its feature_store.yaml picks the offline store: file or
duckdb), reads the entity frame into pandas, runs
store.get_historical_features(entity_df, features).to_df() and writes the
result with pyarrow, so every engine produces a Parquet file. Prints one JSON
line: rows out and the seconds spent loading (imports, registry, entity
frame), retrieving (get_historical_features + to_df) and writing.
"""
import time

T0 = time.time()
import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from feast import FeatureStore  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repo", required=True)
    p.add_argument("--entities", required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--output", required=True)
    a = p.parse_args()
    store = FeatureStore(repo_path=a.repo)
    entity_df = pq.read_table(a.entities).to_pandas()
    t1 = time.time()
    df = store.get_historical_features(entity_df=entity_df, features=a.features.split(",")).to_df()
    t2 = time.time()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), a.output)
    t3 = time.time()
    print(json.dumps({"rows": len(df), "offline_store": type(store.config.offline_store).__name__,
                      "load_s": round(t1 - T0, 3), "retrieve_s": round(t2 - t1, 3), "write_s": round(t3 - t2, 3)}))


if __name__ == "__main__":
    main()
