"""RESULTS.md of the historical-retrieval benchmark, from run.sh's raw JSON lines."""
import argparse
import json

ENGINE_NAMES = {"larder": "Larder", "feast-file": "Feast file (dask)", "feast-duckdb": "Feast duckdb"}
STATUS = {
    "ok": "ok",
    "timeout": "did not finish",
    "memory-limit": "killed: memory limit",
    "failed": "failed",
    "signal": "killed by signal",
}


def mib(kb):
    return f"{kb / 1024:,.0f}"


def num(n):
    return "–" if n is None else f"{n:,}"


def status(r):
    s = STATUS.get(r["status"], r["status"])
    if r["status"] == "failed":
        s += f" (exit {r.get('exit_code')})"
    if r["status"] == "signal":
        s += f" {r.get('signal')}" + (" (OOM killer?)" if r.get("signal") == 9 else "")
    return s


def speedup(r, larder, timeout):
    """How many times longer than Larder the run took (Larder = 1)."""
    if larder is None or larder["status"] != "ok":
        return "–"
    if r is larder:
        return "1×"
    if r["status"] == "ok":
        s = f"{r['wall_s'] / larder['wall_s']:.1f}×"
        f = r.get("feast") or {}
        if "retrieve_s" in f:
            s += f" ({f['retrieve_s'] / larder['wall_s']:.1f}× retrieval only)"
        return s
    if r["status"] == "timeout":
        return f"> {timeout / larder['wall_s']:.0f}×"
    return f"(≥ {r['wall_s'] / larder['wall_s']:.1f}× until it stopped)"


def engine_table(rows, timeout):
    larder = next((r for r in rows if r["engine"] == "larder"), None)
    out = [
        "| Engine | Result | Wall s | Peak RSS MiB | CPU s | Rows out | Rows dropped | Larder speed-up | Feast load / retrieve / write s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        dropped = "–" if r["rows_out"] is None else num(r["entity_rows"] - r["rows_out"])
        f = r.get("feast") or {}
        split = f"{f['load_s']} / {f['retrieve_s']} / {f['write_s']}" if "load_s" in f else ""
        wall = f"{r['wall_s']:,.1f}" if r["status"] == "ok" else f"({r['wall_s']:,.0f})"
        out.append(
            f"| {ENGINE_NAMES[r['engine']]} | {status(r)} | {wall} | {mib(r['maxrss_kb'])} | "
            f"{r['user_s'] + r['sys_s']:,.1f} | {num(r['rows_out'])} | {dropped} | {speedup(r, larder, timeout)} | {split} |"
        )
    for r in rows:
        if r["status"] != "ok" and r.get("stderr_tail"):
            tail = r["stderr_tail"].strip().splitlines()[-1:] or [""]
            out.append(f"\n{ENGINE_NAMES[r['engine']]}: last stderr line: `{tail[0][:200]}`")
    return out


def checks(c):
    out = []
    ld = c["larder"]
    scen = f"{c['scenario']}" + (f" ×{c['scale']:g}" if c["scenario"] == "scale" else "")
    ok = ld["row_ids_complete"] and ld["duplicate_row_ids"] == 0 and ld["entity_column_mismatches"] == 0
    out.append(
        f"- **{scen}**: Larder returned {num(ld['rows'])} rows for {num(c['entity_rows'])} entity rows "
        f"({'every row_id exactly once' if ok else 'NOT every row_id exactly once'}; "
        f"{ld['duplicate_row_ids']} duplicate row_ids, {ld['entity_column_mismatches']} changed entity-column values in the sample); "
        f"compared on {num(c['sample_rows'])} sampled entity rows."
    )
    if ld["missing_feature_columns"]:
        out.append(f"  - Larder output lacks columns {ld['missing_feature_columns']}")
    d = c.get("vs_duckdb")
    if d:
        out.append(
            f"  - vs Feast duckdb (reference): **{d['mismatches']} mismatches** ({d['null_mismatches']} null-ness, "
            f"{d['value_mismatches']} value) in {num(d['cells'])} cells of {num(d['rows_compared'])} rows; "
            f"duckdb dropped {num(d['dropped'])} rows."
        )
        for e in d["examples"]:
            out.append(f"    - `{json.dumps(e)}`")
        if d.get("repro"):
            out.append(f"    - repro: the differing entity rows are in `{d['repro']}` (kept work directory)")
    else:
        out.append("  - vs Feast duckdb: not compared (no duckdb output)")
    f = c.get("vs_file")
    if f:
        extra = ""
        if "mismatch_rows_where_duckdb_agrees_with_larder" in f:
            extra = (f"; of the {num(f['mismatch_rows'])} row(s) that differ, duckdb agrees with Larder on "
                     f"{num(f['mismatch_rows_where_duckdb_agrees_with_larder'])} (the file store's unstable "
                     f"created-timestamp tie-break, docs/historical-semantics.md §2)")
        out.append(
            f"  - vs Feast file, on the rows it returns: {f['mismatches']} mismatches ({f['null_mismatches']} null-ness, "
            f"{f['value_mismatches']} value) in {num(f['cells'])} cells of {num(f['rows_compared'])} rows{extra}; "
            f"the file store dropped {num(f['dropped'])} of {num(c['entity_rows'])} entity rows "
            f"({f['dropped'] / c['entity_rows']:.1%})."
        )
        if f["mismatches"] and f.get("mismatch_rows_where_duckdb_agrees_with_larder") != f["mismatch_rows"]:
            for e in f["examples"]:
                out.append(f"    - `{json.dumps(e)}`")
    types = ld.get("types", {})
    if types:
        dt = (d or {}).get("types", {})
        diffs = {k: [v, dt[k]] for k, v in types.items() if k in dt and dt[k] != v}
        out.append(f"  - Larder's Arrow types: {', '.join(f'{k} {v}' for k, v in types.items())}"
                   + (f". Feast's `to_df()` output (pandas, then Parquet) has {', '.join(f'{k} {v[1]}' for k, v in diffs.items())} "
                      "instead: pandas turns int columns with nulls into float64 (§7 of docs/historical-semantics.md)" if diffs else ""))
    return out


def main():
    p = argparse.ArgumentParser()
    for k in ["raw", "compare", "date", "machine", "larder", "versions", "params", "load-start", "load-end"]:
        p.add_argument(f"--{k}", required=True)
    p.add_argument("--elapsed", type=int, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--mem-limit-mb", type=int, required=True)
    a = p.parse_args()
    raw = [json.loads(l) for l in open(a.raw) if l.strip()]
    comps = [json.loads(l) for l in open(a.compare) if l.strip()]
    L = ["# Historical retrieval benchmark", ""]
    L += [
        f"`larder get-historical-features` against Feast 0.67's `get_historical_features(...).to_df()` with "
        f"the file (pandas/dask) and duckdb offline stores, on the same SQLite SQL registry (written by `feast apply`) "
        f"and the same Parquet files; each run a separate process, one at a time, writing a Parquet file. "
        f"Generated by `bench/historical/run.sh` (see README.md).",
        "",
        f"- Date: {a.date}",
        f"- Machine: {a.machine}",
        f"- Larder: {a.larder}",
        f"- Python side: {a.versions}",
        f"- Load average (1/5/15 min) before: {a.load_start}, after: {a.load_end}; whole run {a.elapsed // 60} min {a.elapsed % 60} s",
        f"- Parameters: `{a.params}`",
        f"- Limits per run: {a.timeout:.0f} s wall (then \"did not finish\", wall shown in parentheses), "
        f"{a.mem_limit_mb:,} MiB RSS (then killed: memory limit)",
        "",
        "Wall s: process start to exit (Feast's includes importing Feast, about 2–5 s; its split is in the last column). "
        "Peak RSS: the kernel's maximum resident set (ru_maxrss, what `/usr/bin/time -v` reports). "
        "CPU s: user + system (2 cores: CPU s / wall s up to 2). Rows dropped: entity rows missing from the output. "
        "Larder speed-up: the engine's wall time over Larder's; in brackets, Feast's `get_historical_features().to_df()` "
        "time alone (no imports, registry or entity-frame loading, no Parquet writing) over Larder's whole process.",
        "",
    ]
    a_full = all(r["entity_rows"] >= 1_000_000 and r["feature_rows"] >= 10_000_000 for r in raw if r["scenario"] == "a")
    b_full = all(r["entity_rows"] >= 100_000 and r["feature_rows"] >= 1_000_000 for r in raw if r["scenario"] == "b")
    if not (a_full and b_full):
        L += ["**Reduced sizes**: this run is smaller than issue 13's (A: 1M × 10M, B: 100k × 3 × 1M); "
              "at these sizes process start-up weighs heavily and the figures are not the acceptance figures.", ""]
    by = lambda scen: [r for r in raw if r["scenario"] == scen]
    a_rows, b_rows, s_rows = by("a"), by("b"), by("scale")
    if a_rows:
        r0 = a_rows[0]
        L += [f"## Scenario A: {num(r0['entity_rows'])} entity rows × {num(r0['feature_rows'])} feature rows",
              "", "One view (`driver_stats`, 10 features: float32, float64, int64, int32, string, bool; ttl 1 day) on one Parquet file.", ""]
        L += engine_table(a_rows, a.timeout) + [""]
    if b_rows:
        r0 = b_rows[0]
        L += [f"## Scenario B: {num(r0['entity_rows'])} entity rows × 3 views of {num(r0['feature_rows'])} feature rows",
              "", "Views `b_driver` (driver_id, ttl 1 day, 4 features), `b_customer` (customer_id, ttl 7 days, 3), "
              "`b_pair` (driver_id + customer_id, ttl unbounded, 3), each on its own Parquet file, in one request.", ""]
        L += engine_table(b_rows, a.timeout) + [""]
    scale_pts = [r for r in s_rows] + [dict(r, scale=1.0) for r in a_rows]
    if s_rows:
        L += ["## Scaling: the same entity frame over growing feature data", "",
              "Scenario A's entity frame against scenario A's source regenerated with fewer rows (same drivers, same 30 days, "
              "fewer rows per driver); the 1× point is scenario A's run.", "",
              "| Feature rows | Engine | Result | Wall s | Peak RSS MiB | Rows out |", "|---:|---|---|---:|---:|---:|"]
        engines = sorted({r["engine"] for r in s_rows}, key=list(ENGINE_NAMES).index)
        for e in engines:
            pts = sorted((r for r in scale_pts if r["engine"] == e), key=lambda r: r["feature_rows"])
            for r in pts:
                L.append(f"| {num(r['feature_rows'])} | {ENGINE_NAMES[e]} | {status(r)} | {r['wall_s']:,.1f} | "
                         f"{mib(r['maxrss_kb'])} | {num(r['rows_out'])} |")
        lp = sorted((r for r in scale_pts if r["engine"] == "larder" and r["status"] == "ok"), key=lambda r: r["feature_rows"])
        if len(lp) >= 2:
            lo, hi = lp[0], lp[-1]
            L += ["", f"Larder, {hi['feature_rows'] / lo['feature_rows']:g}× the feature rows: peak RSS "
                  f"{mib(lo['maxrss_kb'])} → {mib(hi['maxrss_kb'])} MiB (×{hi['maxrss_kb'] / lo['maxrss_kb']:.2f}), "
                  f"wall {lo['wall_s']:.1f} → {hi['wall_s']:.1f} s (×{hi['wall_s'] / lo['wall_s']:.2f})."]
        L.append("")
    # Targets of issue 13.
    L += ["## Targets (issue 13)", ""]
    for scen, rows in (("A", a_rows), ("B", b_rows)):
        lr = next((r for r in rows if r["engine"] == "larder"), None)
        if not lr or lr["status"] != "ok":
            continue
        for e, goal, need in (("feast-file", "≥ 10× faster than Feast's file store", 10), ("feast-duckdb", "faster than Feast duckdb", 1)):
            r = next((x for x in rows if x["engine"] == e), None)
            if r is None:
                continue
            if r["status"] == "ok":
                ratio = r["wall_s"] / lr["wall_s"]
                verdict = lambda x: "met" if x >= need and x > 1 else "NOT met"
                line = f"- {scen}: {goal}: {ratio:.1f}× whole process — {verdict(ratio)}"
                f = r.get("feast") or {}
                if "retrieve_s" in f:
                    rr = f["retrieve_s"] / lr["wall_s"]
                    line += f"; {rr:.1f}× counting only Feast's retrieval call — {verdict(rr)}"
                L.append(line)
            elif r["status"] == "timeout":
                x = a.timeout / lr["wall_s"]
                L.append(f"- {scen}: {goal}: Feast did not finish in {a.timeout:.0f} s (> {x:.0f}×) — "
                         + ("met" if x >= need and x > 1 else "undecided (raise TIMEOUT)"))
            else:
                L.append(f"- {scen}: {goal}: Feast {status(r)} after {r['wall_s']:.0f} s (Larder {lr['wall_s']:.1f} s)")
    lp = sorted((r for r in scale_pts if r["engine"] == "larder" and r["status"] == "ok"), key=lambda r: r["feature_rows"])
    if len(lp) >= 2:
        g = lp[-1]["maxrss_kb"] / lp[0]["maxrss_kb"]
        L.append(f"- Peak RSS flat as the feature data grows {lp[-1]['feature_rows'] / lp[0]['feature_rows']:g}×: "
                 f"×{g:.2f} ({'flat, within 20%' if g <= 1.2 else 'GROWS'})")
    L.append("")
    L += ["## Checks: same answers", ""]
    if comps:
        for c in comps:
            L += checks(c)
    else:
        L.append("No Larder output to compare.")
    L.append("")
    L += ["## Every run", "", "| Scenario | Scale | Engine | Result | Wall s | Peak RSS MiB | Sampled peak RSS MiB | user s | sys s |",
          "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in raw:
        L.append(f"| {r['scenario']} | {r['scale']:g} | {r['engine']} | {status(r)} | {r['wall_s']:,.2f} | {mib(r['maxrss_kb'])} | "
                 f"{mib(r['sampled_rss_kb'])} | {r['user_s']} | {r['sys_s']} |")
    print("\n".join(L))


if __name__ == "__main__":
    main()
