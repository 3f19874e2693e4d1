"""Compare Larder's training set with Feast's, row by row (matched on row_id).

    compare.py --entities E --features f1,f2 --larder L [--duckdb D] [--file F]
               [--sample N] [--seed S] [--repro R.parquet]

The reference is Feast's duckdb offline store (the SQL stores' semantics,
docs/historical-semantics.md): on a sample of N entity rows (0 = all), every
feature value and its null-ness must be equal. Feast's file store drops rows
and breaks created-timestamp ties unreliably, so Larder is compared with it
only on the rows it returns; its mismatches are split into those where
duckdb agrees with Larder (the file store's tie-break, §2 of the doc) and
the rest. Also checked: Larder returns every entity row exactly once, with
the entity frame's columns unchanged. Prints one JSON document. With
--repro, the entity rows (up to 1000) where Larder and duckdb disagree are
written there, an entity file to rerun both engines with.
"""
import argparse
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def load(path, cols):
    names = pq.read_schema(path).names
    t = pq.read_table(path, columns=[c for c in cols if c in names])
    return t.to_pandas(), t.schema


def kind(arrow_type):
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "str"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    return "num"


def py(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else (v.item() if hasattr(v, "item") else v)


def diff(mine, ref, features, kinds, keys):
    """mine and ref indexed by row_id, same index. Returns counts and a few examples."""
    out = {"rows_compared": len(mine), "cells": 0, "mismatches": 0, "null_mismatches": 0,
           "value_mismatches": 0, "mismatch_rows": 0, "examples": []}
    bad_rows = pd.Series(False, index=mine.index)
    per_col = {}
    for c in features:
        missing = pd.Series(np.nan, index=mine.index, dtype=object)
        a, b = (mine[c] if c in mine else missing), (ref[c] if c in ref else missing)
        na, nb = a.isna().to_numpy(), b.isna().to_numpy()
        both = ~na & ~nb
        if kinds[c] == "num":
            va, vb = a.to_numpy(dtype=object)[both].astype(np.float64), b.to_numpy(dtype=object)[both].astype(np.float64)
        elif kinds[c] == "bool":
            va, vb = a.to_numpy(dtype=object)[both].astype(bool), b.to_numpy(dtype=object)[both].astype(bool)
        else:
            va, vb = a.to_numpy(dtype=object)[both].astype(str), b.to_numpy(dtype=object)[both].astype(str)
        bad = na != nb
        bad_vals = np.zeros(len(a), bool)
        bad_vals[np.nonzero(both)[0]] = va != vb
        out["cells"] += len(a)
        out["null_mismatches"] += int(bad.sum())
        out["value_mismatches"] += int(bad_vals.sum())
        colbad = bad | bad_vals
        if colbad.any():
            per_col[c] = int(colbad.sum())
        bad_rows |= colbad
        for rid in mine.index[colbad][: max(0, 5 - len(out["examples"]))]:
            ex = {"row_id": int(rid), "column": c, "larder": py(a.loc[rid]), "reference": py(b.loc[rid])}
            ex.update({k: str(mine.loc[rid, k]) if k in mine else None for k in keys})
            out["examples"].append(ex)
    out["mismatches"] = out["null_mismatches"] + out["value_mismatches"]
    out["mismatch_rows"] = int(bad_rows.sum())
    out["mismatches_by_column"] = per_col
    return out, bad_rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--entities", required=True)
    p.add_argument("--features", required=True, help="view:feature,... as requested")
    p.add_argument("--larder", required=True)
    p.add_argument("--duckdb")
    p.add_argument("--file")
    p.add_argument("--sample", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repro", help="where to write the entity rows that differ from duckdb (up to 1000)")
    a = p.parse_args()
    features = [f.split(":", 1)[1] for f in a.features.split(",")]
    ent = pq.read_table(a.entities).to_pandas()
    keys = [c for c in ent.columns if c != "row_id"]
    ids = ent["row_id"].to_numpy()
    if a.sample and a.sample < len(ids):
        ids = np.sort(np.random.default_rng(a.seed).choice(ids, a.sample, replace=False))
    sample = pd.Index(ids, name="row_id")
    cols = ["row_id"] + keys + features
    res = {"entity_rows": len(ent), "sample_rows": len(sample)}

    mine, schema = load(a.larder, cols)
    kinds = {c: kind(schema.field(c).type) if c in schema.names else "num" for c in features}
    res["larder"] = {
        "rows": len(mine),
        "duplicate_row_ids": int(mine["row_id"].duplicated().sum()),
        "row_ids_complete": bool(len(mine) == len(ent) and set(mine["row_id"]) == set(ent["row_id"])),
        "missing_feature_columns": [c for c in features if c not in schema.names],
        "types": {c: str(schema.field(c).type) for c in features if c in schema.names},
    }
    mine = mine.drop_duplicates("row_id").set_index("row_id")
    e = ent.set_index("row_id").loc[sample]
    m = mine.reindex(sample)
    res["larder"]["entity_column_mismatches"] = int(sum(
        (~((m[k] == e[k]) | (m[k].isna() & e[k].isna()))).sum() for k in keys if k in m))
    res["larder"]["rows_missing_in_sample"] = int(sample.difference(mine.index).size)

    def against(path):
        """A reference's rows (deduplicated on row_id), its summary, and the sample's mismatching rows."""
        ref, rschema = load(path, cols)
        summary = {"rows": len(ref), "dropped": len(ent) - ref["row_id"].nunique(),
                   "duplicate_row_ids": int(ref["row_id"].duplicated().sum()),
                   "types": {c: str(rschema.field(c).type) for c in features if c in rschema.names}}
        ref = ref.drop_duplicates("row_id").set_index("row_id")
        common = sample.intersection(ref.index).intersection(mine.index)
        r, bad = diff(mine.loc[common], ref.loc[common], features, kinds, keys)
        summary.update(r)
        return ref, summary, bad

    duck = None
    if a.duckdb:
        duck, dd, bad = against(a.duckdb)
        if a.repro and bad.any():
            # The entity rows Larder and duckdb disagree on, as an entity file to rerun both with.
            rows = ent.set_index("row_id").loc[bad.index[bad.to_numpy()][:1000]].reset_index()
            pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), a.repro)
            dd["repro"] = a.repro
        res["vs_duckdb"] = dd
    if a.file:
        _, fd, bad = against(a.file)
        if duck is not None and bad.any():
            # Of the rows where the file store disagrees with Larder: does duckdb side with Larder?
            rows = bad.index[bad.to_numpy()].intersection(duck.index)
            agree, _ = diff(mine.loc[rows], duck.loc[rows], features, kinds, keys)
            fd["mismatch_rows_where_duckdb_agrees_with_larder"] = len(rows) - agree["mismatch_rows"]
        res["vs_file"] = fd
    print(json.dumps(res, default=str))


if __name__ == "__main__":
    main()
