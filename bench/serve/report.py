#!/usr/bin/env python3
"""Turns bench/serve/run.sh's raw TSV into the Markdown report (RESULTS.md)."""

import argparse
import os
import sys

P99_TARGET_MS = 1.0
RATIO_TARGET = 50.0


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            label, store, ent, conns, kv, cpu, redis_cpu, wrk_cpu, other_cpu, rss, attempts = line.split("\t")
            r = dict(x.split("=", 1) for x in kv.split())
            r = {k: float(v) for k, v in r.items()}
            r.update(
                impl=label,
                store=store,
                entities=int(ent),
                conns=int(conns),
                cpu=float(cpu),
                redis_cpu=float(redis_cpu),
                wrk_cpu=float(wrk_cpu),
                other_cpu=float(other_cpu),
                attempts=int(attempts),
                rss_mb=int(rss) / 1024,
            )
            r["errors"] = int(sum(r[k] for k in r if k.startswith("errors_")))
            rows.append(r)
    return rows


def ms(us):
    v = us / 1000
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def rps(v):
    return f"{v:,.0f}"


def main():
    ap = argparse.ArgumentParser()
    for a in ("raw", "date", "machine", "larder", "feast", "feast-args", "duration", "feast-duration",
              "warmup", "load-start", "load-end", "elapsed", "compare", "wrk", "quiet-max", "retries"):
        ap.add_argument("--" + a, default="")
    a = ap.parse_args()
    rows = parse(a.raw)
    quiet = float(a.quiet_max or 25)

    def mark(r):
        return " †" if r["other_cpu"] > quiet else ""

    larder = [r for r in rows if r["impl"] == "larder"]
    feast = {(r["store"], r["entities"], r["conns"]): r for r in rows if r["impl"] == "feast"}
    ref = {(r["store"], r["entities"], r["conns"]): r for r in rows if r["impl"] == "feast-defaults"}
    out = []
    w = out.append

    w("# Feature-server benchmark (`bench/serve`)")
    w("")
    w(f"- Date: {a.date}")
    w(f"- Machine: {a.machine}. **wrk and the server under test share these cores** "
      "(and Redis runs on them too), so absolute numbers are lower than on a machine with a separate load generator.")
    w(f"- Larder: {a.larder}; `larder serve --grpc-port 0` (HTTP only)")
    w(f"- Feast: {a.feast}; `feast serve {a.feast_args}`")
    w(f"- Load generator: {a.wrk}, `bench/serve/online.lua`: POST /get-online-features, 10 features of "
      "`driver_hourly_stats`, N driver ids drawn at random from 1001..2000 for every request; "
      "wrk threads = min(connections, 2), `--timeout 30s`")
    w(f"- Duration per point: Larder {a.duration}, Feast {a.feast_duration}; {a.warmup} unmeasured warm-up "
      "(100 entities, 8 connections) after each server start")
    w(f"- Data: the driver-stats example (1,000 drivers) applied to one SQLite SQL registry and materialized "
      "into the SQLite online store and into Redis; Feast serves the same registry file and the same online data")
    w(f"- Load average (1/5/15 min) before: {a.load_start}; after: {a.load_end}; measured part took {a.elapsed} s")
    if rows:
        worst = max(rows, key=lambda r: r["other_cpu"])
        w(f"- Foreign CPU during the points (busy CPU not used by server, Redis or wrk): max {worst['other_cpu']:.0f}% "
          f"of one core ({worst['impl']} {worst['store']} {worst['entities']} × 10, {worst['conns']} conns), mean "
          f"{sum(r['other_cpu'] for r in rows) / len(rows):.0f}%")
    w("")
    w("## Results")
    w("")
    w("Latencies in ms (wrk's latency distribution; closed loop, so latency ≈ connections / rps). "
      "Ratio = Larder rps / Feast rps at the same store, request size and concurrency. "
      "CPU = server process CPU over the point (200% = both cores).")
    w("")
    w("| store | entities × features | conns | Larder rps | p50 | p90 | p99 | Larder CPU | Larder RSS MB "
      "| Feast rps | Feast p99 | ratio |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in larder:
        f = feast.get((r["store"], r["entities"], r["conns"]))
        fr = fp = ratio = "—"
        if f:
            fr, fp = rps(f["rps"]) + mark(f), ms(f["p99_us"])
            ratio = f"{r['rps'] / f['rps']:.1f}×" if f["rps"] else "∞"
        w(f"| {r['store']} | {r['entities']} × 10 | {r['conns']} | {rps(r['rps'])}{mark(r)} | {ms(r['p50_us'])} "
          f"| {ms(r['p90_us'])} | {ms(r['p99_us'])} | {r['cpu']:.0f}% | {r['rss_mb']:.1f} | {fr} | {fp} | {ratio} |")
    w("")
    noisy = [r for r in rows if r["other_cpu"] > quiet]
    if noisy:
        w(f"† other processes used more than {quiet:g}% of one core during this point even on its quietest of "
          f"{int(a.retries or 2) + 1} attempts (see *other CPU* below); treat it with care.")
        w("")
    if larder:
        mx = max(larder, key=lambda r: r["rss_mb"])
        w(f"**Larder max RSS under load: {mx['rss_mb']:.1f} MB** ({mx['store']}, {mx['entities']} × 10, "
          f"{mx['conns']} connections; VmRSS of the server sampled every 0.25 s during each point).")
        for s in dict.fromkeys(r["store"] for r in larder):
            m = max(r["rss_mb"] for r in larder if r["store"] == s)
            w(f"- {s}: {m:.1f} MB")
    fe = [r for r in rows if r["impl"] != "larder"]
    if fe:
        m = max(fe, key=lambda r: r["rss_mb"])
        w(f"- Feast (gunicorn master + workers, sampled the same way): max {m['rss_mb']:.1f} MB")
    w("")

    w("## Targets")
    w("")
    t = [r for r in larder if r["store"] == "redis" and r["entities"] == 1 and r["conns"] == 1]
    if t:
        p99 = t[0]["p99_us"] / 1000
        w(f"- p99 ≤ {P99_TARGET_MS:g} ms at concurrency 1 (1 entity, Redis): **{p99:.2f} ms — "
          f"{'met' if p99 <= P99_TARGET_MS else 'NOT met'}**")
    w(f"Against two Feast set-ups: *tuned* = `feast serve {a.feast_args}` (both cores, no worker recycling) and "
      "*as shipped* = `feast serve --no-access-log` with Feast's defaults (1 worker, recycled after ~1,000 requests), "
      "the server the issue's baseline (300–400 rps for 1 entity, ~50 rps for 100) describes.")
    w("")
    for r in larder:
        if r["conns"] != 32:
            continue
        parts = []
        for name, table in (("as shipped", ref), ("tuned", feast)):
            f = table.get((r["store"], r["entities"], 32))
            if not f:
                continue
            ratio = r["rps"] / f["rps"] if f["rps"] else float("inf")
            parts.append(f"vs Feast {name} **{ratio:.1f}× — {'met' if ratio >= RATIO_TARGET else 'NOT met'}** "
                         f"({rps(r['rps'])} vs {rps(f['rps'])} rps, Feast p99 {ms(f['p99_us'])} ms, "
                         f"{f['errors']} socket errors)")
        if parts:
            w(f"- ≥ {RATIO_TARGET:g}× Feast's rps at concurrency 32, {r['store']}, {r['entities']} × 10: "
              + "; ".join(parts))
    w("")

    if a.compare and os.path.exists(a.compare):
        w("## Same answers")
        w("")
        for line in open(a.compare):
            w(f"- {line.strip()}")
        w("")

    w("## All points")
    w("")
    w("CPU columns: % of one core over the point (the machine has "
      f"{os.cpu_count()} cores = {100 * os.cpu_count()}%); *other* = user+system CPU of the whole machine minus "
      "the server, Redis and wrk, i.e. this script's sampling plus anything else running (near 0 on a quiet "
      f"machine). A point with other CPU above {quiet:g}% is repeated (up to {int(a.retries or 2)} times) and "
      "the quietest attempt is kept; *tries* counts the attempts.")
    w("")
    w("| server | store | entities | conns | requests | rps | p50 | p90 | p99 | max | errors | server CPU "
      "| Redis CPU | wrk CPU | other CPU | tries | RSS MB |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        w(f"| {r['impl']} | {r['store']} | {r['entities']} | {r['conns']} | {int(r['requests']):,} | {rps(r['rps'])} "
          f"| {ms(r['p50_us'])} | {ms(r['p90_us'])} | {ms(r['p99_us'])} | {ms(r['max_us'])} | {r['errors']} "
          f"| {r['cpu']:.0f}% | {r['redis_cpu']:.0f}% | {r['wrk_cpu']:.0f}% | {r['other_cpu']:.0f}% | {r['attempts']} | {r['rss_mb']:.1f} |")
    w("")
    errs = [r for r in rows if r["errors"]]
    if errs:
        w("Socket/status errors (wrk: connect/read/write/status/timeout): " + "; ".join(
            f"{r['impl']} {r['store']} {r['entities']}e c{r['conns']}: "
            + "/".join(str(int(r[k])) for k in ("errors_connect", "errors_read", "errors_write", "errors_status",
                                                 "errors_timeout"))
            for r in errs))
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
