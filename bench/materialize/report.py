#!/usr/bin/env python3
"""Print the materialization benchmark report from run.sh's result files."""
import argparse
import datetime as dt
import os
import platform
import re

CASES = {
    "a": "10,000 entities x 100 hours = 1,000,000 rows",
    "b": "1,000,000 entities x 1 row",
    "bf": "larder on Feast's case-b input (same rows as the Feast b run)",
    "b4": "4,000,000 entities x 1 row (RSS growth check)",
}
TARGET_RATIO = 30.0
TARGET_RSS_MIB = 500.0
TARGET_GROWTH = 0.20


def gnu_time(path: str) -> dict:
    """Fields of `/usr/bin/time -v` output."""
    out = {}
    try:
        text = open(path).read()
    except OSError:
        return out
    for key, pat in {
        "user": r"User time \(seconds\): ([\d.]+)",
        "sys": r"System time \(seconds\): ([\d.]+)",
        "cpu_pct": r"Percent of CPU this job got: (\d+)%",
        "rss_kib": r"Maximum resident set size \(kbytes\): (\d+)",
        "fs_out": r"File system outputs: (\d+)",
    }.items():
        m = re.search(pat, text)
        if m:
            out[key] = float(m.group(1))
    return out


def table(header, rows) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    right = [i >= 2 for i in range(len(header))]

    def line(r):
        return "  ".join(c.rjust(w) if ri else c.ljust(w) for c, w, ri in zip(r, widths, right)).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def fmt_rate(x):
    return "-" if x is None else f"{x:,.0f}"


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--feast", required=True)
    ap.add_argument("--feast-ran", default="0")
    ap.add_argument("--feast-a", default="")
    ap.add_argument("--feast-b", default="")
    ap.add_argument("--larder-version", default="larder")
    ap.add_argument("--load", default="")
    a = ap.parse_args()

    larder = []
    for line in open(a.larder):
        f = line.rstrip("\n").split("\t")
        if len(f) < 9:
            continue
        c, store, status, inp, rows, wall, tfile, s0, s1 = f[:9]
        r = dict(case=c, store=store, status=status, input=int(inp), rows=int(rows or 0), wall=float(wall))
        r.update(gnu_time(tfile))
        r["server0"], r["server1"] = s0.split(" "), s1.split(" ")
        larder.append(r)
    feast = {}
    for line in open(a.feast):
        f = line.rstrip("\n").split("\t")
        if len(f) < 7:
            continue
        c, store, inp, rows, secs, wall, tfile = f[:7]
        r = dict(case=c, store=store, input=int(inp), rows=int(rows), secs=float(secs), wall=float(wall))
        r.update(gnu_time(tfile))
        feast[(c, store)] = r

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"# larder materialize benchmark, finished {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(
        f"# machine: {os.cpu_count()} cores ({cpu_model()}), {mem:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; shared with other developers, load average {a.load}"
    )
    print(f"# {a.larder_version} (release build); input: Parquet, 10 features, snappy, 65,536-row row groups")
    for c, d in CASES.items():
        print(f"#   case {c}: {d}")
    print("# wall = whole `larder materialize` process (start-up, registry, Parquet read, online write, interval record)")
    if a.feast_ran == "1":
        print(
            f"# Feast 0.67: FeatureStore.materialize() on the same store type, timed inside Python (import and start-up"
        )
        print(f"#   excluded, which favours Feast); input a = {a.feast_a.replace(' ', ' entities x ')} hours,"
              f" b = {a.feast_b.replace(' ', ' entities x ')} row (Feast writes only a few thousand rows/s).")
        print("#   ratio = larder rows/s written / Feast rows/s written (b, bf and b4 against Feast b); when Feast's input")
        print("#   for a is smaller than larder's, rows/s read are compared instead. Feast MySQL: not run (no driver in the venv).")
    else:
        print("# Feast: not run")
    print()

    def feast_for(r):
        fc = "b" if r["case"] in ("b4", "bf") else r["case"]
        return feast.get((fc, r["store"]))

    rows = []
    for r in larder:
        wall = r["wall"]
        read_rate = r["input"] / wall if r["status"] == "ok" else None
        write_rate = r["rows"] / wall if r["status"] in ("ok", "timeout") else None
        f = feast_for(r)
        frate, ratio = None, "-"
        if f and write_rate:
            same_shape = f["input"] == r["input"] or r["case"] != "a"
            if same_shape:
                frate = f["rows"] / f["secs"]
                ratio = f"{write_rate / frate:.1f}x"
            elif read_rate:
                frate = f["input"] / f["secs"]
                ratio = f"{read_rate / frate:.1f}x (read)"
        note = {"ok": "", "timeout": f"stopped at the time limit; partial", "failed": "FAILED"}[r["status"]]
        rss = r.get("rss_kib", 0) / 1024
        rows.append(
            [
                r["case"], r["store"], f"{r['input']:,}", f"{r['rows']:,}", f"{wall:.1f}",
                fmt_rate(read_rate), fmt_rate(write_rate), f"{rss:.0f}", fmt_rate(frate), ratio, note,
            ]
        )
    print(table(["case", "store", "input rows", "rows written", "wall s", "rows/s read", "rows/s written",
                 "peak RSS MiB", "Feast rows/s", "ratio", "note"], rows))

    # Where the time goes.
    print()
    print("Where the time goes (larder CPU from /usr/bin/time; server CPU = whole server process during the run,")
    print("other clients included; store counter: sqlite = bytes larder wrote to disk, redis = server time inside")
    print("HSET/HGET, postgres = WAL bytes generated, mysql = InnoDB buffer-pool misses read from disk):")
    diag = []
    for r in larder:
        cpu = r.get("user", 0) + r.get("sys", 0)
        s0, s1 = r["server0"], r["server1"]
        server_cpu, counter = "-", "-"
        try:
            server_cpu = f"{float(s1[0]) - float(s0[0]):.1f}"
        except (ValueError, IndexError):
            pass
        st = r["store"]
        try:
            d = float(s1[1]) - float(s0[1])
            counter = {
                "redis": f"{d / 1e6:.1f} s in commands",
                "postgres": f"{d / 2**30:.2f} GiB WAL",
                "mysql": f"{d:,.0f} page reads",
            }.get(st, "-")
        except (ValueError, IndexError):
            pass
        if st == "sqlite" and "fs_out" in r:
            counter = f"{r['fs_out'] * 512 / 2**30:.1f} GiB written"
        diag.append([r["case"], st, f"{r['wall']:.1f}", f"{r.get('user', 0):.1f}", f"{r.get('sys', 0):.1f}",
                     f"{cpu / r['wall'] * 100:.0f}%", server_cpu, counter])
    print(table(["case", "store", "wall s", "larder user s", "larder sys s", "larder CPU", "server CPU s",
                 "store counter"], diag))

    if feast:
        print()
        print("Feast 0.67 runs:")
        frows = []
        for (c, st), f in feast.items():
            frows.append([c, st, f"{f['input']:,}", f"{f['rows']:,}", f"{f['secs']:.1f}", f"{f['wall']:.1f}",
                          fmt_rate(f["input"] / f["secs"]), fmt_rate(f["rows"] / f["secs"]),
                          f"{f.get('rss_kib', 0) / 1024:.0f}"])
        print(table(["case", "store", "input rows", "rows written", "materialize() s", "process wall s",
                     "rows/s read", "rows/s written", "peak RSS MiB"], frows))

    # Targets.
    print()
    print(f"Targets for case b: >= {TARGET_RATIO:.0f}x Feast's rows/s written, peak RSS < {TARGET_RSS_MIB:.0f} MiB, "
          f"b4 peak RSS <= b + {TARGET_GROWTH:.0%}:")
    by = {(r["case"], r["store"]): r for r in larder}
    for (c, st), r in by.items():
        if c != "b":
            continue
        parts = []
        f = feast_for(r)
        if f and r["status"] == "ok":
            x = (r["rows"] / r["wall"]) / (f["rows"] / f["secs"])
            parts.append(f"throughput {x:.1f}x Feast {'PASS' if x >= TARGET_RATIO else 'FAIL'}")
        elif r["status"] != "ok":
            parts.append(f"run {r['status']}")
        else:
            parts.append("throughput: no Feast run")
        rf = by.get(("bf", st))
        if f and rf and rf["status"] == "ok":
            parts.append(f"on Feast's input (bf) {(rf['rows'] / rf['wall']) / (f['rows'] / f['secs']):.1f}x")
        rss = r.get("rss_kib", 0) / 1024
        parts.append(f"RSS {rss:.0f} MiB {'PASS' if rss < TARGET_RSS_MIB else 'FAIL'}")
        r4 = by.get(("b4", st))
        if r4:
            rss4 = r4.get("rss_kib", 0) / 1024
            g = rss4 / rss - 1 if rss else 0
            partial = " (b4 partial: stopped at the time limit)" if r4["status"] == "timeout" else ""
            parts.append(f"b4 RSS {rss4:.0f} MiB ({g:+.0%}) {'PASS' if g <= TARGET_GROWTH else 'FAIL'}{partial}")
        print(f"  {st:9s} " + "; ".join(parts))


if __name__ == "__main__":
    main()
