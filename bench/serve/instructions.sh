#!/usr/bin/env bash
# Instructions per request of `larder serve` (POST /get-online-features,
# SQLite online store), counted by valgrind's callgrind: a figure that does not
# move with the machine's load, for comparing two builds where wrk's rps is
# too noisy (this machine: ±10 % between rounds of one binary). User-space
# instructions only (the kernel's share of a request is not counted), and
# callgrind runs the server's threads one at a time, so lock and cache-line
# contention between cores does not show either: a complement to run.sh, not
# a replacement.
#
#   bench/serve/instructions.sh BINARY [BINARY ...]
#
# Each binary gets its own temporary repo (the driver-stats example applied
# and materialized by that binary, since registry layouts may differ between
# versions), serves it under callgrind, answers WARMUP requests uncounted,
# then N counted ones over one keep-alive connection, for each request size.
#
# Environment (defaults in brackets):
#   SIZES    entities per request (10 features each) ["1 100"]
#   N        counted requests per size [2000; 300 for 100 entities]
#   WARMUP   uncounted requests before counting [200]
#   CACHE=1  also simulate the caches (I1/D1 misses per request; ~2× slower)
#   KEEP=1   keep the work directory (callgrind dumps for callgrind_annotate)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZES=${SIZES:-"1 100"}
WARMUP=${WARMUP:-200}
[[ $# -ge 1 ]] || { echo "usage: $0 BINARY [BINARY ...]" >&2; exit 2; }

if ! command -v valgrind >/dev/null; then
    echo "installing valgrind" >&2
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq valgrind >/dev/null
    fi
fi

WORK=$(mktemp -d /tmp/larder-bench-instr.XXXXXX)
PID=
cleanup() {
    [[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# requests PORT COUNT ENTITIES: COUNT requests on one connection, each must answer 200.
requests() {
    python3 - "$@" <<'PY'
import http.client, json, random, sys
port, n, e = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
names = "conv_rate,acc_rate,avg_daily_trips,trips_today,rating,earnings_today,online_minutes,completed_trips,city,is_premium"
feats = [f"driver_hourly_stats:{f}" for f in names.split(",")]
conn = http.client.HTTPConnection("127.0.0.1", port)
rng = random.Random(1)
for _ in range(n):
    body = json.dumps({"features": feats, "entities": {"driver_id": [rng.randint(1001, 2000) for _ in range(e)]}})
    conn.request("POST", "/get-online-features", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
PY
}

printf '%-50s %9s %16s' binary entities instructions/req
[[ ${CACHE:-0} == 1 ]] && printf ' %10s %10s' I1miss/req D1miss/req
printf '\n'
i=0
for bin in "$@"; do
    i=$((i + 1))
    repo=$WORK/repo$i
    mkdir -p "$repo/data"
    cp -r "$ROOT/examples/driver-stats/manifests" "$repo/"
    cp "$ROOT/examples/driver-stats/data/driver_stats.parquet" "$repo/data/"
    printf 'project: driver_stats\nregistry:\n  registry_type: sql\n  path: sqlite:///%s\n  cache_ttl_seconds: 600\nonline_store:\n  type: sqlite\n  path: %s\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n' \
        "$repo/data/registry.db" "$repo/data/online.db" >"$repo/larder.yaml"
    "$bin" -c "$repo/larder.yaml" apply -f "$repo/manifests" >"$repo/apply.log" 2>&1
    "$bin" -c "$repo/larder.yaml" materialize 2024-01-01T00:00:00 2024-01-03T00:00:00 >"$repo/materialize.log" 2>&1
    for size in $SIZES; do
        n=${N:-$([[ $size -ge 100 ]] && echo 300 || echo 2000)}
        port=$(free_port)
        out=$repo/callgrind.$size
        sim=()
        [[ ${CACHE:-0} == 1 ]] && sim=(--cache-sim=yes)
        valgrind --tool=callgrind "${sim[@]}" --callgrind-out-file="$out" \
            "$bin" -c "$repo/larder.yaml" serve --port "$port" --grpc-port 0 >"$repo/serve.$size.log" 2>&1 &
        PID=$!
        for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
        requests "$port" "$WARMUP" "$size"
        callgrind_control -z "$PID" >/dev/null 2>&1
        requests "$port" "$n" "$size"
        callgrind_control -d "$PID" >/dev/null 2>&1
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
        # The dump taken on demand is the newest file beside $out.
        dump=$(ls -t "$out".* | head -1)
        python3 - "$dump" "$n" "$bin" "$size" "${CACHE:-0}" <<'PY'
import sys
dump, n, binary, size, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1"
events = totals = None
for line in open(dump):
    if line.startswith("events:"):
        events = line.split()[1:]
    elif line.startswith("totals:") or line.startswith("summary:"):
        totals = [int(x) for x in line.split()[1:]]
per = dict(zip(events, (t / n for t in totals)))
row = f"{binary[-50:]:<50} {size:>9} {per['Ir']:>16,.0f}"
if cache:
    row += f" {per.get('I1mr', 0):>10,.0f} {per.get('D1mr', 0):>10,.0f}"
print(row)
PY
    done
done
