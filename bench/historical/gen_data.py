#!/usr/bin/env python3
"""Generate the inputs of the historical-retrieval benchmark (reproducible).

Every file is written chunk by chunk (memory stays small whatever the size),
sorted by event_timestamp, snappy, and the same arguments give the same
bytes (fixed seeds). Timestamps are timestamp[us, UTC].

Feature data covers DAYS days from 2024-01-01T00:00Z. Event timestamps are
whole seconds, so a key sometimes has two rows at the same event_timestamp;
`created` (event_timestamp + 0..59 min + a per-row microsecond offset) is
always distinct for those, so the created-timestamp tie-break decides and
no result depends on an arbitrary choice between exact ties. On top of the
natural ties, 0.2% of rows get a "correction": a second row for the same key
and event_timestamp, created 1..600 s later, with other values.

  a-features --rows N --entities K --out F
      Scenario A's source: N rows of driver_id (int64, 1..K) and the ten
      features of examples/driver-stats (float32 conv_rate, acc_rate; int64
      avg_daily_trips, completed_trips; int32 trips_today (0.5% null),
      online_minutes; float64 rating (1% null), earnings_today; string city
      (1% null); bool is_premium).

  a-entities --rows N --entities K --features F --out E
      Scenario A's entity frame: row_id, driver_id, event_timestamp.
      5% exactly on the event_timestamp of a row of F (same driver), 5%
      exactly one ttl (1 day) after one, 10% unknown drivers (K+1..1.1K),
      the rest known drivers at uniform times from 2 days before the data to
      1 day after it.

  b --out-dir D [--feature-rows 1000000] [--entity-rows 100000]
      Scenario B: three sources of --feature-rows rows each,
      b_driver.parquet (driver_id; rows/100 drivers: 10,000 at 1M rows),
      b_customer.parquet (customer_id; rows/10 customers),
      b_pair.parquet (driver_id, customer_id; rows/20 distinct pairs), and b_entities.parquet (row_id, driver_id,
      customer_id, event_timestamp): 70% known pairs, 20% a known driver with
      a random known customer, 10% with an unknown driver or customer; 5% of
      all rows exactly on a pair row's event_timestamp.
"""
import argparse
import datetime as dt
import json
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
START_S = int(START.timestamp())
DAYS = 30
SPAN_S = DAYS * 86_400
TTL_S = 86_400
TS = pa.timestamp("us", tz="UTC")
CITIES = ["Amsterdam", "Berlin", "Lisbon", "Madrid", "Paris", "Warsaw"]
SEGMENTS = ["new", "regular", "vip", "churned"]
CORRECTION_FRACTION = 0.002


def row_group_size(n: int) -> int:
    """1M rows per row group at full size; smaller inputs still get several."""
    return int(min(1_000_000, max(16_384, -(-n // 8))))


def nullable(values, pa_type, rng, null_frac):
    mask = rng.random(len(values)) < null_frac if null_frac else None
    return pa.array(values, pa_type, mask=mask)


def strings(choices, idx):
    return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(choices, pa.string())).dictionary_decode()


# Feature columns per source: (name, arrow type, generator(rng, n) -> values, null fraction).
A_FEATURES = [
    ("conv_rate", pa.float32(), lambda r, n: r.random(n, dtype=np.float32), 0),
    ("acc_rate", pa.float32(), lambda r, n: r.random(n, dtype=np.float32), 0),
    ("avg_daily_trips", pa.int64(), lambda r, n: r.integers(0, 1000, n, dtype=np.int64), 0),
    ("trips_today", pa.int32(), lambda r, n: r.integers(0, 50, n, dtype=np.int32), 0.005),
    ("rating", pa.float64(), lambda r, n: np.round(r.uniform(1.0, 5.0, n), 2), 0.01),
    ("earnings_today", pa.float64(), lambda r, n: np.round(r.uniform(0.0, 500.0, n), 2), 0),
    ("online_minutes", pa.int32(), lambda r, n: r.integers(0, 721, n, dtype=np.int32), 0),
    ("completed_trips", pa.int64(), lambda r, n: r.integers(0, 100_000, n, dtype=np.int64), 0),
    ("city", pa.string(), lambda r, n: r.integers(0, len(CITIES), n).astype(np.int32), 0.01),
    ("is_premium", pa.bool_(), lambda r, n: r.random(n) < 0.2, 0),
]
B_DRIVER_FEATURES = [
    ("d_trips_today", pa.int32(), lambda r, n: r.integers(0, 50, n, dtype=np.int32), 0),
    ("d_rating", pa.float64(), lambda r, n: np.round(r.uniform(1.0, 5.0, n), 2), 0.01),
    ("d_city", pa.string(), lambda r, n: r.integers(0, len(CITIES), n).astype(np.int32), 0),
    ("d_is_premium", pa.bool_(), lambda r, n: r.random(n) < 0.2, 0),
]
B_CUSTOMER_FEATURES = [
    ("c_lifetime_value", pa.float64(), lambda r, n: np.round(r.uniform(0, 10_000, n), 2), 0),
    ("c_orders", pa.int64(), lambda r, n: r.integers(0, 500, n, dtype=np.int64), 0.01),
    ("c_segment", pa.string(), lambda r, n: r.integers(0, len(SEGMENTS), n).astype(np.int32), 0),
]
B_PAIR_FEATURES = [
    ("p_rides_together", pa.int32(), lambda r, n: r.integers(1, 200, n, dtype=np.int32), 0),
    ("p_avg_tip", pa.float32(), lambda r, n: r.uniform(0, 20, n).astype(np.float32), 0),
    ("p_last_rating", pa.float64(), lambda r, n: np.round(r.uniform(1.0, 5.0, n), 1), 0.02),
]
STRING_CHOICES = {"city": CITIES, "d_city": CITIES, "c_segment": SEGMENTS}


def write_source(path: pathlib.Path, n: int, keys, features, seed: int) -> dict:
    """n rows sorted by event_timestamp. keys: [(name, fn(rng, n) -> int64 array)],
    called together per chunk through one index draw when they describe pairs."""
    rng = np.random.default_rng(seed)
    rg = row_group_size(n)
    groups = -(-n // rg)
    schema = pa.schema(
        [(k, pa.int64()) for k, _ in keys]
        + [("event_timestamp", TS), ("created", TS)]
        + [(name, t) for name, t, _, _ in features]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    written = corrections = 0
    with pq.ParquetWriter(tmp, schema, compression="snappy") as w:
        for g in range(groups):
            # This row group's rows fall in its slice of the time span: the file is sorted.
            m = min(rg, n - written)
            n_corr = int(round(m * CORRECTION_FRACTION))
            base = m - n_corr
            lo_s = START_S + SPAN_S * g // groups
            hi_s = START_S + SPAN_S * (g + 1) // groups
            ev_s = np.sort(rng.integers(lo_s, hi_s, base, dtype=np.int64))
            key_cols = [fn(rng, base) for _, fn in keys]
            # Corrections: a copy of some rows (same keys and event time), created later.
            src = np.sort(rng.choice(base, n_corr, replace=False)) if n_corr else np.zeros(0, np.int64)
            order = np.argsort(np.concatenate([np.arange(base), src]), kind="stable")
            ev_s = np.concatenate([ev_s, ev_s[src]])[order]
            key_cols = [np.concatenate([k, k[src]])[order] for k in key_cols]
            is_corr = np.concatenate([np.zeros(base, bool), np.ones(n_corr, bool)])[order]
            ev_us = ev_s * 1_000_000
            idx = np.arange(written, written + m, dtype=np.int64)
            created = ev_us + rng.integers(0, 3600, m, dtype=np.int64) * 1_000_000 + (idx % 1_000_000)
            # A correction is created 1..600 s after the row it corrects (its predecessor in the sort).
            corr_pos = np.nonzero(is_corr)[0]
            created[corr_pos] = created[corr_pos - 1] + rng.integers(1, 601, len(corr_pos), dtype=np.int64) * 1_000_000
            cols = [pa.array(k, pa.int64()) for k in key_cols] + [pa.array(ev_us, TS), pa.array(created, TS)]
            for name, t, gen, null_frac in features:
                v = gen(rng, m)
                if t == pa.string():
                    arr = strings(STRING_CHOICES[name], v)
                    if null_frac:
                        arr = pa.array(arr.to_pylist(), pa.string(), mask=rng.random(m) < null_frac)
                    cols.append(arr)
                else:
                    cols.append(nullable(v, t, rng, null_frac))
            w.write_batch(pa.record_batch(cols, schema=schema), row_group_size=rg)
            written += m
            corrections += n_corr
    tmp.replace(path)
    md = pq.ParquetFile(path).metadata
    return {"path": str(path), "rows": md.num_rows, "row_groups": md.num_row_groups,
            "bytes": path.stat().st_size, "corrections": corrections}


def sample_rows(path: pathlib.Path, cols, n: int, rng) -> dict:
    """n random rows (with replacement) of the given columns of a Parquet file, read one row group
    at a time so memory stays at one row group."""
    pf = pq.ParquetFile(path)
    total = pf.metadata.num_rows
    picks = np.sort(rng.integers(0, total, n))
    out = {c: [] for c in cols}
    start = 0
    for g in range(pf.metadata.num_row_groups):
        size = pf.metadata.row_group(g).num_rows
        sel = picks[(picks >= start) & (picks < start + size)] - start
        if len(sel):
            t = pf.read_row_group(g, columns=cols)
            for c in cols:
                arr = t.column(c)
                if pa.types.is_timestamp(arr.type):
                    arr = arr.cast(pa.int64())
                out[c].append(arr.to_numpy()[sel])
        start += size
    res = {c: np.concatenate(v) if v else np.zeros(0, np.int64) for c, v in out.items()}
    perm = rng.permutation(n)  # picks were sorted: shuffle back
    return {c: v[perm] for c, v in res.items()}


def uniform_ts_us(rng, n):
    lo = (START_S - 2 * 86_400) * 1_000_000
    hi = (START_S + SPAN_S + 86_400) * 1_000_000
    return rng.integers(lo, hi, n, dtype=np.int64)


def write_entities(path: pathlib.Path, cols: dict, rng) -> dict:
    n = len(cols["event_timestamp"])
    perm = rng.permutation(n)
    arrays = {"row_id": pa.array(np.arange(n, dtype=np.int64))}
    for k, v in cols.items():
        arrays[k] = pa.array(v[perm], TS if k == "event_timestamp" else pa.int64())
    order = ["row_id"] + [k for k in cols if k != "event_timestamp"] + ["event_timestamp"]
    table = pa.table({k: arrays[k] for k in order})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="snappy", row_group_size=1_000_000)
    tmp.replace(path)
    return {"path": str(path), "rows": n}


def a_features(args):
    keys = [("driver_id", lambda r, n: r.integers(1, args.entities + 1, n, dtype=np.int64))]
    print(json.dumps(write_source(args.out, args.rows, keys, A_FEATURES, args.seed)))


def a_entities(args):
    rng = np.random.default_rng(args.seed + 1)
    n, k = args.rows, args.entities
    n_exact, n_ttl, n_unknown = n // 20, n // 20, n // 10
    n_rand = n - n_exact - n_ttl - n_unknown
    s = sample_rows(args.features, ["driver_id", "event_timestamp"], n_exact + n_ttl, rng)
    driver = np.concatenate([
        s["driver_id"],
        rng.integers(k + 1, k + k // 10 + 2, n_unknown, dtype=np.int64),
        rng.integers(1, k + 1, n_rand, dtype=np.int64),
    ])
    ts = np.concatenate([
        s["event_timestamp"][:n_exact],
        s["event_timestamp"][n_exact:] + TTL_S * 1_000_000,
        uniform_ts_us(rng, n_unknown + n_rand),
    ])
    print(json.dumps(write_entities(args.out, {"driver_id": driver, "event_timestamp": ts}, rng)))


def b(args):
    out = args.out_dir
    # Key counts follow the size (at 1M rows: 10,000 drivers, 100,000 customers, 50,000 pairs), so
    # a smaller run keeps the same rows per key: ~100 per driver, ~10 per customer, ~20 per pair.
    n_drivers = max(100, args.feature_rows // 100)
    n_customers = max(1000, args.feature_rows // 10)
    n_pairs = max(500, args.feature_rows // 20)
    prng = np.random.default_rng(args.seed + 10)
    # Distinct (driver, customer) pairs.
    codes = np.unique(prng.integers(0, n_drivers * n_customers, n_pairs * 2, dtype=np.int64))
    codes = prng.permutation(codes)[:n_pairs]
    pair_driver, pair_customer = codes // n_customers + 1, codes % n_customers + 1
    res = {}
    res["driver"] = write_source(out / "b_driver.parquet", args.feature_rows,
                                 [("driver_id", lambda r, n: r.integers(1, n_drivers + 1, n, dtype=np.int64))],
                                 B_DRIVER_FEATURES, args.seed + 11)
    res["customer"] = write_source(out / "b_customer.parquet", args.feature_rows,
                                   [("customer_id", lambda r, n: r.integers(1, n_customers + 1, n, dtype=np.int64))],
                                   B_CUSTOMER_FEATURES, args.seed + 12)
    # Pair keys: one index draw per chunk gives both columns (the first call draws, the second reuses).
    last = {}

    def pair_d(r, n):
        last["i"] = r.integers(0, n_pairs, n)
        return pair_driver[last["i"]]

    def pair_c(r, n):
        return pair_customer[last["i"]]

    res["pair"] = write_source(out / "b_pair.parquet", args.feature_rows,
                               [("driver_id", pair_d), ("customer_id", pair_c)], B_PAIR_FEATURES, args.seed + 13)
    rng = np.random.default_rng(args.seed + 14)
    n = args.entity_rows
    n_exact = n // 20
    n_pair = n * 70 // 100 - n_exact
    n_mixed = n * 20 // 100
    n_unknown = n - n_exact - n_pair - n_mixed
    s = sample_rows(out / "b_pair.parquet", ["driver_id", "customer_id", "event_timestamp"], n_exact, rng)
    pi = rng.integers(0, n_pairs, n_pair)
    unk_d = rng.random(n_unknown) < 0.5
    driver = np.concatenate([
        s["driver_id"], pair_driver[pi], rng.integers(1, n_drivers + 1, n_mixed),
        np.where(unk_d, rng.integers(n_drivers + 1, n_drivers + n_drivers // 10 + 2, n_unknown), rng.integers(1, n_drivers + 1, n_unknown)),
    ]).astype(np.int64)
    customer = np.concatenate([
        s["customer_id"], pair_customer[pi], rng.integers(1, n_customers + 1, n_mixed),
        np.where(unk_d, rng.integers(1, n_customers + 1, n_unknown), rng.integers(n_customers + 1, n_customers + n_customers // 10 + 2, n_unknown)),
    ]).astype(np.int64)
    ts = np.concatenate([s["event_timestamp"], uniform_ts_us(rng, n - n_exact)])
    res["entities"] = write_entities(out / "b_entities.parquet",
                                     {"driver_id": driver, "customer_id": customer, "event_timestamp": ts}, rng)
    print(json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("a-features")
    f.add_argument("--rows", type=int, required=True)
    f.add_argument("--entities", type=int, required=True)
    f.add_argument("--out", type=pathlib.Path, required=True)
    f.add_argument("--seed", type=int, default=20240101)
    e = sub.add_parser("a-entities")
    e.add_argument("--rows", type=int, required=True)
    e.add_argument("--entities", type=int, required=True)
    e.add_argument("--features", type=pathlib.Path, required=True)
    e.add_argument("--out", type=pathlib.Path, required=True)
    e.add_argument("--seed", type=int, default=20240101)
    bb = sub.add_parser("b")
    bb.add_argument("--out-dir", type=pathlib.Path, required=True)
    bb.add_argument("--feature-rows", type=int, default=1_000_000)
    bb.add_argument("--entity-rows", type=int, default=100_000)
    bb.add_argument("--seed", type=int, default=20240102)
    args = p.parse_args()
    {"a-features": a_features, "a-entities": a_entities, "b": b}[args.cmd](args)


if __name__ == "__main__":
    main()
