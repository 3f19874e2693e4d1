#!/usr/bin/env python3
"""Write DIR/data/customer_profile.parquet (default DIR: this file's directory).

3 customers (c1, c2, c3) x 2 hourly rows at 2024-01-01T00:00Z and 01:00Z.
"""
import pathlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    base = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent
    out = base / "data" / "customer_profile.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    ts = pa.timestamp("us", tz="UTC")
    hour = 3_600_000_000
    t0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
    table = pa.table(
        {
            "customer_id": pa.array(["c1", "c2", "c3", "c1", "c2", "c3"], pa.string()),
            "event_timestamp": pa.array([t0] * 3 + [t0 + hour] * 3, ts),
            "avg_order": pa.array([10.5, 20.0, 30.25, 11.0, 21.0, 31.0], pa.float64()),
            "orders": pa.array([1, 2, 3, 2, 3, 4], pa.int64()),
            "segment": pa.array(["new", "loyal", "vip"] * 2, pa.string()),
        }
    )
    pq.write_table(table, out)
    print(f"wrote {out}: {table.num_rows} rows")


if __name__ == "__main__":
    main()
