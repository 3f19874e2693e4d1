#!/usr/bin/env python3
"""Generate examples/driver-stats/data/driver_stats.parquet (reproducible).

1,000 drivers (driver_id 1001..2000) x 48 hourly rows (2024-01-01T00:00Z ..
2024-01-02T23:00Z) = 48,000 rows, sorted by (event_timestamp, driver_id).

Columns:
  driver_id int64, event_timestamp timestamp[us, UTC],
  created timestamp[us, UTC] (= event_timestamp + 0..59 minutes),
  conv_rate float32, acc_rate float32, avg_daily_trips int64,
  trips_today int32, rating float64 (~1% null), earnings_today float64,
  online_minutes int32, completed_trips int64, city string, is_premium bool.

Run with the Feast venv python:
  $HOME/.cache/larder/feast-0.67.0/bin/python examples/driver-stats/generate_data.py
"""
import argparse
import datetime as dt
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240101
N_DRIVERS = 1000
FIRST_DRIVER = 1001
N_HOURS = 48
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
CITIES = ["Amsterdam", "Berlin", "Lisbon", "Madrid", "Paris", "Warsaw"]
ROW_GROUP_SIZE = 8192
NULL_RATING_FRACTION = 0.01


def build_table(seed: int = SEED) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = N_DRIVERS * N_HOURS
    hour = np.repeat(np.arange(N_HOURS, dtype=np.int64), N_DRIVERS)
    driver_id = np.tile(np.arange(FIRST_DRIVER, FIRST_DRIVER + N_DRIVERS, dtype=np.int64), N_HOURS)

    start_us = int(START.timestamp()) * 1_000_000
    event_us = start_us + hour * 3_600_000_000
    created_us = event_us + rng.integers(0, 60, size=n, dtype=np.int64) * 60_000_000

    # Per-driver attributes stay fixed across hours; the rest varies per row.
    driver_city = rng.integers(0, len(CITIES), size=N_DRIVERS)
    driver_premium = rng.random(N_DRIVERS) < 0.2
    driver_base_trips = rng.integers(100, 20_000, size=N_DRIVERS, dtype=np.int64)
    idx = driver_id - FIRST_DRIVER

    rating = np.round(rng.uniform(1.0, 5.0, size=n), 2)
    rating_null = rng.random(n) < NULL_RATING_FRACTION

    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "driver_id": pa.array(driver_id, pa.int64()),
            "event_timestamp": pa.array(event_us, ts),
            "created": pa.array(created_us, ts),
            "conv_rate": pa.array(rng.random(n, dtype=np.float32), pa.float32()),
            "acc_rate": pa.array(rng.random(n, dtype=np.float32), pa.float32()),
            "avg_daily_trips": pa.array(rng.integers(0, 1000, size=n, dtype=np.int64), pa.int64()),
            "trips_today": pa.array(rng.integers(0, 50, size=n, dtype=np.int32), pa.int32()),
            "rating": pa.array(rating, pa.float64(), mask=rating_null),
            "earnings_today": pa.array(np.round(rng.uniform(0.0, 500.0, size=n), 2), pa.float64()),
            "online_minutes": pa.array(rng.integers(0, 721, size=n, dtype=np.int32), pa.int32()),
            "completed_trips": pa.array(driver_base_trips[idx] + hour, pa.int64()),
            "city": pa.array(np.array(CITIES, dtype=object)[driver_city[idx]], pa.string()),
            "is_premium": pa.array(driver_premium[idx], pa.bool_()),
        }
    )


def main() -> None:
    here = pathlib.Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=here / "data" / "driver_stats.parquet")
    args = ap.parse_args()
    table = build_table()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out, compression="snappy", row_group_size=ROW_GROUP_SIZE)
    md = pq.ParquetFile(args.out).metadata
    print(
        f"wrote {args.out}: {md.num_rows} rows, {md.num_row_groups} row groups, "
        f"{args.out.stat().st_size} bytes, {table.column('rating').null_count} null ratings"
    )


if __name__ == "__main__":
    main()
