#!/usr/bin/env python3
"""Generate driver-stats Parquet for the materialization benchmark (reproducible).

N drivers (driver_id 1..N) x H hourly rows starting 2024-01-01T00:00Z,
sorted by (event_timestamp, driver_id), the schema of
examples/driver-stats (10 features):

  driver_id int64, event_timestamp timestamp[us, UTC],
  created timestamp[us, UTC] (= event_timestamp + 0..59 minutes),
  conv_rate float32, acc_rate float32, avg_daily_trips int64,
  trips_today int32, rating float64 (~1% null), earnings_today float64,
  online_minutes int32, completed_trips int64, city string, is_premium bool.

Written in row groups of 65,536 rows (snappy), generated chunk by chunk so
memory stays small whatever the size. The same arguments give the same
bytes (fixed seed).

  $HOME/.cache/larder/feast-0.67.0/bin/python bench/materialize/gen_data.py \
      --entities 10000 --hours 100 --out /tmp/a.parquet
"""
import argparse
import datetime as dt
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240101
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
CITIES = ["Amsterdam", "Berlin", "Lisbon", "Madrid", "Paris", "Warsaw"]
ROW_GROUP_SIZE = 65_536
NULL_RATING_FRACTION = 0.01
TS = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        ("driver_id", pa.int64()),
        ("event_timestamp", TS),
        ("created", TS),
        ("conv_rate", pa.float32()),
        ("acc_rate", pa.float32()),
        ("avg_daily_trips", pa.int64()),
        ("trips_today", pa.int32()),
        ("rating", pa.float64()),
        ("earnings_today", pa.float64()),
        ("online_minutes", pa.int32()),
        ("completed_trips", pa.int64()),
        ("city", pa.string()),
        ("is_premium", pa.bool_()),
    ]
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entities", type=int, required=True)
    ap.add_argument("--hours", type=int, required=True)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    n_ent, n_hours = args.entities, args.hours
    total = n_ent * n_hours

    rng = np.random.default_rng(args.seed)
    # Per-driver attributes are fixed across hours.
    driver_city = rng.integers(0, len(CITIES), size=n_ent).astype(np.int32)
    driver_premium = rng.random(n_ent) < 0.2
    driver_base_trips = rng.integers(100, 20_000, size=n_ent, dtype=np.int64)
    city_dict = pa.array(CITIES, pa.string())
    start_us = int(START.timestamp()) * 1_000_000

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    nulls = 0
    with pq.ParquetWriter(tmp, SCHEMA, compression="snappy") as w:
        for lo in range(0, total, ROW_GROUP_SIZE):
            hi = min(total, lo + ROW_GROUP_SIZE)
            n = hi - lo
            pos = np.arange(lo, hi, dtype=np.int64)
            hour = pos // n_ent
            idx = pos % n_ent
            event_us = start_us + hour * 3_600_000_000
            created_us = event_us + rng.integers(0, 60, size=n, dtype=np.int64) * 60_000_000
            rating = np.round(rng.uniform(1.0, 5.0, size=n), 2)
            rating_null = rng.random(n) < NULL_RATING_FRACTION
            nulls += int(rating_null.sum())
            city = pa.DictionaryArray.from_arrays(pa.array(driver_city[idx], pa.int32()), city_dict).dictionary_decode()
            batch = pa.record_batch(
                [
                    pa.array(idx + 1, pa.int64()),
                    pa.array(event_us, TS),
                    pa.array(created_us, TS),
                    pa.array(rng.random(n, dtype=np.float32), pa.float32()),
                    pa.array(rng.random(n, dtype=np.float32), pa.float32()),
                    pa.array(rng.integers(0, 1000, size=n, dtype=np.int64), pa.int64()),
                    pa.array(rng.integers(0, 50, size=n, dtype=np.int32), pa.int32()),
                    pa.array(rating, pa.float64(), mask=rating_null),
                    pa.array(np.round(rng.uniform(0.0, 500.0, size=n), 2), pa.float64()),
                    pa.array(rng.integers(0, 721, size=n, dtype=np.int32), pa.int32()),
                    pa.array(driver_base_trips[idx] + hour, pa.int64()),
                    city,
                    pa.array(driver_premium[idx], pa.bool_()),
                ],
                schema=SCHEMA,
            )
            w.write_batch(batch, row_group_size=ROW_GROUP_SIZE)
    tmp.replace(args.out)
    md = pq.ParquetFile(args.out).metadata
    end = START + dt.timedelta(hours=n_hours)
    print(
        f"wrote {args.out}: {md.num_rows} rows ({n_ent} entities x {n_hours} hours), "
        f"{md.num_row_groups} row groups, {args.out.stat().st_size} bytes, {nulls} null ratings, "
        f"window {START.isoformat()} .. {end.isoformat()}"
    )


if __name__ == "__main__":
    main()
