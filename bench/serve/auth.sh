#!/usr/bin/env bash
# Cost of authentication on the feature server's hot path: wrk against
# `larder serve` (POST /get-online-features, Redis online store) without auth
# and with OIDC auth (a real local provider, e2e/oidc/), cached and uncached.
# See README.md ("Authentication overhead").
#
# Three servers run side by side on the same registry and Redis data (idle
# ones cost nothing measurable); the points of one size and concurrency are
# measured back to back, off and on alternating (off, on, on, off, ... over
# ROUNDS rounds), so slow drift of the machine hits both sides alike:
#   off       no `auth` section
#   cached    auth: oidc, cache_ttl_seconds: 300 (one request warms the cache,
#             then every request is a SHA-256 of the token + a map lookup +
#             the Permission decision)
#   uncached  auth: oidc, cache_ttl_seconds: 0 (every request verifies the
#             JWT's RS256 signature against the cached JWKS)
# wrk sends the same bearer token to every server (OFF_TOKEN=1), so the
# requests are byte-identical and the difference is the server's work.
#
# Environment knobs (defaults in brackets):
#   DURATION           wrk duration of each off/cached point [20s]
#   ROUNDS             off/cached pairs per point, order alternating [2]
#   UNCACHED_DURATION  wrk duration of each point of the uncached section [10s]
#   WARMUP             unmeasured wrk run per server after the checks [3s]
#   SIZES              entities per request, 10 features each ["1 100"]
#   CONNS              wrk connections ["1 32"]
#   UNCACHED_CONNS     connections of the uncached section (1 entity) ["1 32"]
#   OFF_TOKEN          1: send the token to the no-auth server too [1]
#   REDIS_DB           Redis logical database, flushed before and after [12]
#                      (run.sh uses 13)
#   QUIET_MAX, RETRIES a point is repeated (up to RETRIES times, the quietest
#                      kept) when other processes used more than QUIET_MAX %
#                      of a core during it [25, 1]
#   LARDER             larder binary [$CARGO_TARGET_DIR/release/larder]
#   LARDER_LABEL       how the report names the binary
#   OUT                report [bench/serve/AUTH_RESULTS.md]; OUT=- prints only
#   KEEP=1             keep the work directory (logs, wrk output, raw TSV)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../scripts/env.sh
source "$ROOT/scripts/env.sh"

LARDER=${LARDER:-$CARGO_TARGET_DIR/release/larder}
DURATION=${DURATION:-20s}
ROUNDS=${ROUNDS:-2}
UNCACHED_DURATION=${UNCACHED_DURATION:-10s}
WARMUP=${WARMUP:-3s}
SIZES=${SIZES-"1 100"}
CONNS=${CONNS-"1 32"}
UNCACHED_CONNS=${UNCACHED_CONNS-"1 32"}
OFF_TOKEN=${OFF_TOKEN:-1}
REDIS_DB=${REDIS_DB:-12}
QUIET_MAX=${QUIET_MAX:-25}
RETRIES=${RETRIES:-1}
REDIS_HOST=127.0.0.1 REDIS_PORT=6379
OUT=${OUT:-$HERE/AUTH_RESULTS.md}
LUA=$HERE/online.lua
MAT_START=2024-01-01T00:00:00
MAT_END=2024-01-03T00:00:00
FEATURES="conv_rate,acc_rate,avg_daily_trips,trips_today,rating,earnings_today,online_minutes,completed_trips,city,is_premium"
MODES="off cached uncached"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# ------------------------------------------------------------ prerequisites --
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    if [[ $(id -u) == 0 ]]; then apt-get update && apt-get install -y wrk; else sudo apt-get update && sudo apt-get install -y wrk; fi
fi
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: apt-get install -y time"
[[ -x $LARDER ]] || die "no larder binary at $LARDER: cargo build --release -p larder-cli"
for t in redis-cli python3 curl node npm ss; do command -v $t >/dev/null || die "$t missing"; done
[[ $REDIS_DB != 13 ]] || die "REDIS_DB 13 is run.sh's; pick another"
redis-cli -h $REDIS_HOST -p $REDIS_PORT ping >/dev/null || die "no Redis at $REDIS_HOST:$REDIS_PORT"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -A PORTS PIDS
for m in $MODES; do
    p=$(free_port)
    while [[ " ${PORTS[*]} " == *" $p "* ]]; do p=$(free_port); done
    PORTS[$m]=$p
done

WORK=$(mktemp -d /tmp/larder-bench-auth.XXXXXX)
RAW=$WORK/results.tsv
: >"$RAW"
OIDC_PID=

stop_pid() { # PID: TERM, up to 20 s, then KILL
    local pid=$1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local m
    for m in "${!PIDS[@]}"; do stop_pid "${PIDS[$m]}"; done
    stop_pid "$OIDC_PID"
    redis-cli -h $REDIS_HOST -p $REDIS_PORT -n "$REDIS_DB" FLUSHDB >/dev/null 2>&1 || true
    if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ OIDC provider --
log "work directory $WORK"
"$ROOT/scripts/oidc-provider.sh" install
CLIENT_SECRET="bench-$RANDOM$RANDOM"
CLIENTS=$(printf '[{"client_id":"bench-reader","client_secret":"%s","roles":["feature-reader"],"resource_access_client":"larder"}]' "$CLIENT_SECRET")
# stdin is a pipe from this shell: if the script dies, the provider sees EOF and exits.
coproc OIDC { OIDC_TOKEN_TTL=7200 exec "$ROOT/scripts/oidc-provider.sh" run --clients "$CLIENTS" --exit-on-stdin-eof 2>"$WORK/oidc.log"; }
OIDC_PID=$OIDC_PID
line=
read -r -t 60 -u "${OIDC[0]}" line || { cat "$WORK/oidc.log" >&2; die "no READY from the OIDC provider within 60 s"; }
[[ $line == "READY "* ]] || die "the OIDC provider said '$line' before READY"
ISSUER=${line#READY }
log "OIDC provider $ISSUER (pid $OIDC_PID)"
TOKEN=$(curl -sf --max-time 30 -u "bench-reader:$CLIENT_SECRET" -d grant_type=client_credentials "$ISSUER/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') || die "no token from $ISSUER/token"
CLAIMS=$(python3 - "$TOKEN" <<'EOF'
import base64, json, sys
p = sys.argv[1].split(".")[1]
c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
print(f"aud={c.get('aud')} roles={c.get('roles')} resource_access={json.dumps(c.get('resource_access'))} exp-iat={c['exp'] - c['iat']}s")
EOF
)
log "token: ${#TOKEN} bytes, $CLAIMS"
# The same token with one signature character changed (not the last one, whose low bits are padding).
i=$((${#TOKEN} - 20))
c=${TOKEN:i:1}
TAMPERED=${TOKEN:0:i}$([[ $c == A ]] && echo B || echo A)${TOKEN:i+1}

# ------------------------------------------------------------------- setup --
REPO=$WORK/repo
mkdir -p "$REPO/data"
cp -r "$ROOT/examples/driver-stats/manifests" "$REPO/"
cp "$ROOT/examples/driver-stats/data/driver_stats.parquet" "$REPO/data/"
grep -q 'feature-reader' "$REPO/manifests/permissions.yaml" || die "the example lost its feature-readers Permission"

write_config() { # FILE MODE
    {
        echo "project: driver_stats"
        printf 'registry:\n  registry_type: sql\n  path: sqlite:///%s\n  cache_ttl_seconds: 60\n' "$REPO/data/registry.db"
        printf 'online_store:\n  type: redis\n  connection_string: "%s:%s,db=%s"\n' $REDIS_HOST $REDIS_PORT "$REDIS_DB"
        printf 'offline_store:\n  type: file\nentity_key_serialization_version: 3\n'
        case $2 in
            off) ;;
            cached | uncached)
                printf 'auth:\n  type: oidc\n  auth_discovery_url: %s/.well-known/openid-configuration\n' "$ISSUER"
                printf '  client_id: larder\n  audience: larder\n  cache_ttl_seconds: %s\n' "$([[ $2 == cached ]] && echo 300 || echo 0)"
                ;;
        esac
    } >"$1"
}
for m in $MODES; do write_config "$REPO/larder-$m.yaml" "$m"; done

redis-cli -h $REDIS_HOST -p $REDIS_PORT -n "$REDIS_DB" FLUSHDB >/dev/null
"$LARDER" -c "$REPO/larder-off.yaml" apply -f "$REPO/manifests" >"$WORK/apply.log" 2>&1 ||
    { cat "$WORK/apply.log" >&2; die "apply failed"; }
log "materialize into Redis db $REDIS_DB"
"$LARDER" -c "$REPO/larder-off.yaml" materialize $MAT_START $MAT_END >"$WORK/materialize.log" 2>&1 ||
    { cat "$WORK/materialize.log" >&2; die "materialize failed"; }
n=$(redis-cli -h $REDIS_HOST -p $REDIS_PORT -n "$REDIS_DB" DBSIZE)
[[ $n == 1000 ]] || die "Redis db $REDIS_DB holds $n entities after materialize, expected 1000"

# ----------------------------------------------------------------- servers --
wait_ready() { # MODE
    local m=$1 i
    for i in $(seq 240); do
        kill -0 "${PIDS[$m]}" 2>/dev/null || { cat "$WORK/larder-$m.log" >&2; die "larder serve ($m) exited"; }
        if ss -ltnpH "sport = :${PORTS[$m]}" 2>/dev/null | grep -q "pid=${PIDS[$m]}," &&
            curl -sf -o /dev/null "http://127.0.0.1:${PORTS[$m]}/health"; then
            return 0
        fi
        sleep 0.5
    done
    cat "$WORK/larder-$m.log" >&2
    die "larder serve ($m) did not become ready"
}
for m in $MODES; do
    "$LARDER" -c "$REPO/larder-$m.yaml" serve --host 127.0.0.1 --port "${PORTS[$m]}" --grpc-port 0 \
        >"$WORK/larder-$m.log" 2>&1 &
    PIDS[$m]=$!
done
for m in $MODES; do wait_ready "$m"; log "larder serve ($m) on port ${PORTS[$m]}, pid ${PIDS[$m]}"; done

# ------------------------------------------------------------- correctness --
CHECK_BODY=$(python3 -c "
import json
f='$FEATURES'.split(',')
print(json.dumps({'features':['driver_hourly_stats:'+x for x in f],'entities':{'driver_id':list(range(1001,2001,10))}}))")
post() { # MODE OUTFILE [AUTH-HEADER-VALUE] -> prints the HTTP status
    local hdr=()
    [[ -n ${3:-} ]] && hdr=(-H "Authorization: $3")
    curl -s -o "$2" -w '%{http_code}' --max-time 30 -X POST -H 'Content-Type: application/json' "${hdr[@]}" \
        --data "$CHECK_BODY" "http://127.0.0.1:${PORTS[$1]}/get-online-features"
}
check_answer() { # FILE LABEL: 1000 cells, every one PRESENT but the example's ~1% null ratings
    python3 - "$1" "$2" <<'EOF' || die "$2: the answer is not the expected 100 x 10 PRESENT features"
import json, sys
r = json.load(open(sys.argv[1]))
cols = r["results"][1:]
n = sum(len(c["statuses"]) for c in cols)
names = r["metadata"]["feature_names"][1:]
bad = {nm: sum(s != "PRESENT" for s in c["statuses"]) for nm, c in zip(names, cols)}
bad = {k: v for k, v in bad.items() if v}
# the example data has ~1% null `rating`s (NULL_VALUE); anything else missing is an error
ok = n == 1000 and set(bad) <= {"rating"} and sum(bad.values()) <= 20
print(f"{sys.argv[2]}: {n} cells, not PRESENT: {bad or 'none'}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}
CHECKS=$WORK/checks.txt
: >"$CHECKS"
code=$(post off "$WORK/check-off.json") # no token
[[ $code == 200 ]] || die "off: request without a token got HTTP $code, expected 200"
check_answer "$WORK/check-off.json" off
echo "- off: no token → 200, the 100 × 10 answer checked" >>"$CHECKS"
code=$(post off "$WORK/check-off-token.json" "Bearer $TOKEN")
[[ $code == 200 ]] || die "off: request with the token got HTTP $code"
for m in cached uncached; do
    code=$(post $m "$WORK/c.json")
    [[ $code == 401 ]] || die "$m: request without a token got HTTP $code, expected 401"
    code=$(post $m "$WORK/c.json" "Bearer $TAMPERED")
    [[ $code == 401 ]] || die "$m: request with a tampered token got HTTP $code, expected 401"
    code=$(post $m "$WORK/check-$m.json" "Bearer $TOKEN") # also the warm-up request of the token cache
    [[ $code == 200 ]] || { cat "$WORK/check-$m.json" >&2; die "$m: request with the token got HTTP $code, expected 200"; }
    check_answer "$WORK/check-$m.json" "$m"
    cmp -s <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r["results"], sort_keys=True))' "$WORK/check-off.json") \
        <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r["results"], sort_keys=True))' "$WORK/check-$m.json") ||
        die "$m: the answer differs from the no-auth server's"
    echo "- $m: no token → 401, tampered token → 401, token → 200 with the same 100 × 10 answer as off" >>"$CHECKS"
done
log "correctness checks passed"

# ------------------------------------------------------------- measurement --
# Sampling as run.sh: builtins only while wrk runs.
exec {SLEEP_FD}<> <(:)
nap() { read -r -t "$1" -u "$SLEEP_FD" _ || true; }
rss_one() {
    local k v _
    RSS_ONE=0
    [[ -r /proc/$1/status ]] || return 0
    while read -r k v _; do
        if [[ $k == VmRSS: ]]; then RSS_ONE=$v; return 0; fi
    done <"/proc/$1/status" 2>/dev/null || true
}
cpu_ticks() { # PID -> utime+stime (+ reaped children)
    local f
    f=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    f=${f##*) }
    read -r -a a <<<"$f"
    echo $((a[11] + a[12] + a[13] + a[14]))
}
busy_ticks() {
    local _cpu u n s _rest
    read -r _cpu u n s _rest </proc/stat
    echo $((u + n + s))
}
TCK=$(getconf CLK_TCK)
REDIS_PID=$(pgrep -x redis-server | head -1 || true)

# measure MODE ENTITIES CONNS DURATION SECTION ROUND ROWFILE
measure() {
    local mode=$1 ent=$2 conns=$3 dur=$4 section=$5 round=$6 rowfile=$7
    local threads=$((conns < 2 ? conns : 2)) out wpid rss=0 c0 c1 r0 r1 b0 b1 t0 t1 w pid=${PIDS[$1]} tok=$TOKEN
    [[ $mode == off && $OFF_TOKEN != 1 ]] && tok=
    out=$WORK/wrk-$section-$mode-$ent-$conns-$round.txt
    c0=$(cpu_ticks "$pid")
    r0=$( [[ -n $REDIS_PID ]] && cpu_ticks "$REDIS_PID" || echo 0)
    b0=$(busy_ticks)
    t0=$(date +%s.%N)
    TOKEN=$tok ENTITIES=$ent FEATURES=$FEATURES /usr/bin/time -f '%U %S' -o "$out.time" \
        wrk -t"$threads" -c"$conns" -d"$dur" --timeout 30s -s "$LUA" "http://127.0.0.1:${PORTS[$mode]}" >"$out" 2>&1 &
    wpid=$!
    while kill -0 "$wpid" 2>/dev/null; do
        rss_one "$pid"
        ((RSS_ONE > rss)) && rss=$RSS_ONE
        nap 0.25
    done
    wait "$wpid" || { cat "$out" >&2; die "wrk failed"; }
    t1=$(date +%s.%N)
    b1=$(busy_ticks)
    c1=$(cpu_ticks "$pid")
    r1=$( [[ -n $REDIS_PID ]] && cpu_ticks "$REDIS_PID" || echo 0)
    w=$(awk -v t="$TCK" '{printf "%d", ($1 + $2) * t}' "$out.time")
    local res
    res=$(grep '^RESULT ' "$out") || { cat "$out" >&2; die "no RESULT line from wrk"; }
    # Every answer must have been a 2xx and every socket clean: a 401 is fast.
    [[ $res == *" errors_connect=0 errors_read=0 errors_write=0 errors_status=0 errors_timeout=0"* ]] ||
        { cat "$out" >&2; die "$mode ${ent}x10 c=$conns: wrk saw errors: $res"; }
    local pct="100/$TCK/($t1-$t0)"
    # section mode entities conns round <RESULT k=v...> cpu% redis% wrk% other% rss_kb
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$section" "$mode" "$ent" "$conns" "$round" "${res#RESULT }" \
        "$(python3 -c "p=$pct; print(round(($c1-$c0)*p,1), round(($r1-$r0)*p,1), round($w*p,1), round(max(0, ($b1-$b0)-($c1-$c0)-($r1-$r0)-$w)*p,1), sep='\t')")" \
        "$rss" >"$rowfile"
    log "  $section $mode ${ent}x10 c=$conns #$round: $(sed -E 's/.*rps=([0-9.]+) p50_us=([0-9]+) p90_us=([0-9]+) p99_us=([0-9]+).*/\1 rps, p50 \2 us, p99 \4 us/' <<<"$res"), server CPU $(cut -f7 "$rowfile")%, other CPU $(cut -f10 "$rowfile")%"
}
# point: measure, repeated when the machine was busy; the quietest attempt goes to $RAW.
point() {
    local a best='' best_other='' other
    for ((a = 1; a <= RETRIES + 1; a++)); do
        measure "$@" "$WORK/attempt.tsv"
        other=$(cut -f10 "$WORK/attempt.tsv")
        if [[ -z $best ]] || python3 -c "import sys; sys.exit(0 if $other < $best_other else 1)"; then
            best=$(cat "$WORK/attempt.tsv")
            best_other=$other
        fi
        python3 -c "import sys; sys.exit(0 if $other <= $QUIET_MAX else 1)" && break
        ((a <= RETRIES)) && log "  machine busy during that point (other CPU ${other}% > ${QUIET_MAX}%), repeating"
    done
    printf '%s\t%s\n' "$best" "$((a > RETRIES + 1 ? RETRIES + 1 : a))" >>"$RAW"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
for m in $MODES; do # unmeasured: Redis connections, allocator, caches
    TOKEN=$TOKEN ENTITIES=100 FEATURES=$FEATURES wrk -t2 -c8 -d"$WARMUP" --timeout 30s -s "$LUA" \
        "http://127.0.0.1:${PORTS[$m]}" >"$WORK/warmup-$m.txt" 2>&1 || true
done

log "main matrix: off vs cached, $ROUNDS round(s) of $DURATION each"
for ent in $SIZES; do
    for c in $CONNS; do
        for ((r = 1; r <= ROUNDS; r++)); do
            if ((r % 2)); then order="off cached"; else order="cached off"; fi
            for m in $order; do point "$m" "$ent" "$c" "$DURATION" main "$r"; done
        done
    done
done
log "uncached section: 1x10, off / cached / uncached, $UNCACHED_DURATION each"
for c in $UNCACHED_CONNS; do
    for m in off cached uncached; do point "$m" 1 "$c" "$UNCACHED_DURATION" uncached 1; done
done
T_END=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# Each server's RSS at the end, and its log for anything unexpected.
RSS_END=""
for m in $MODES; do rss_one "${PIDS[$m]}"; RSS_END+="$m $((RSS_ONE / 1024)) MB, "; done
WARN=$(cat "$WORK"/larder-*.log | grep -ciE '\b(warn|error)\b' || true)

# ------------------------------------------------------------------ report --
LABEL=${LARDER_LABEL:-"$("$LARDER" --version) (checkout $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ', dirty'))"}
CMDLINE="$(for v in DURATION ROUNDS UNCACHED_DURATION WARMUP SIZES CONNS UNCACHED_CONNS OFF_TOKEN REDIS_DB; do
    val=${!v}; [[ $val == *" "* ]] && val="'$val'"; printf '%s=%s ' "$v" "$val"; done)bench/serve/auth.sh"
report=$(CMDLINE=$CMDLINE CLAIMS=$CLAIMS LABEL=$LABEL python3 - "$RAW" <<EOF
import os, statistics as st, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    section, mode, ent, conns, rnd, res = f[0], f[1], int(f[2]), int(f[3]), int(f[4]), f[5]
    kv = dict(x.split("=") for x in res.split())
    rows[(section, mode, ent, conns)].append(dict(
        rnd=rnd, rps=float(kv["rps"]), p50=int(kv["p50_us"]), p90=int(kv["p90_us"]), p99=int(kv["p99_us"]),
        max=int(kv["max_us"]), n=int(kv["requests"]), cpu=float(f[6]), redis=float(f[7]), wrk=float(f[8]),
        other=float(f[9]), rss=int(f[10]), attempts=int(f[11])))
def agg(section, mode, ent, conns):
    rs = rows[(section, mode, ent, conns)]
    m = lambda k: st.mean(r[k] for r in rs)
    return dict(rps=m("rps"), p50=m("p50"), p99=m("p99"), cpu=m("cpu"), other=max(r["other"] for r in rs), rs=rs)
def us(x): return f"{x:,.0f}"
def dus(a, b): return f"{b - a:+,.0f}"
def dpct(a, b): return f"{(b / a - 1) * 100:+.1f} %"
def ms(x): return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.0f} µs"
keys = sorted({(e, c) for (s, m, e, c) in rows if s == "main"})
out = []
p = out.append
p("# Feature-server benchmark: cost of authentication")
p("")
p("\`larder serve\` (\`POST /get-online-features\`, Redis online store) with no auth")
p("vs \`auth: {type: oidc, …, cache_ttl_seconds: 300}\` against a real local OIDC")
p("provider (\`e2e/oidc/\`), \`bench/serve/auth.sh\`. Every request carries the same")
p("bearer token (OFF_TOKEN=$OFF_TOKEN: also to the no-auth server), so the requests are byte-identical")
p("and the difference is the server's authentication + Permission check.")
p("")
p("- Date: $(date -u '+%Y-%m-%d %H:%M UTC')")
p("- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GB RAM, $(uname -sr); wrk, servers, Redis and the provider share the cores")
p("- Larder: " + os.environ["LABEL"])
p("- wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), \`-t min(conns,2) --timeout 30s -s bench/serve/online.lua\`, TOKEN set")
p("- Command: \`" + os.environ["CMDLINE"] + "\`")
p("- Token: ${#TOKEN}-byte RS256 JWT, " + os.environ["CLAIMS"] + "; Permission \`feature-readers\` (role feature-reader: READ_ONLINE, DESCRIBE)")
p("- Points: $DURATION each, $ROUNDS round(s) per point, off and on back to back in alternating order; the table shows the mean over rounds. Warm-up: one authenticated request per server (fills the token cache), then $WARMUP of wrk")
p("- Load average at start / end: $LOAD_START / $LOAD_END; measuring took $((T_END - T_START)) s")
p("- Server RSS at the end: ${RSS_END%, }; warnings/errors in the server logs: $WARN")
p("")
p("## Auth off vs on (token cache, \`cache_ttl_seconds: 300\`)")
p("")
p("| request | conns | off rps | off p50 | off p99 | on rps | on p50 | on p99 | Δ p50 µs | Δ p99 µs | Δ rps | CPU off / on |")
p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for e, c in keys:
    a, b = agg("main", "off", e, c), agg("main", "cached", e, c)
    p(f"| {e} × 10 | {c} | {a['rps']:,.0f} | {ms(a['p50'])} | {ms(a['p99'])} | {b['rps']:,.0f} | {ms(b['p50'])} | {ms(b['p99'])} "
      f"| {dus(a['p50'], b['p50'])} | {dus(a['p99'], b['p99'])} | {dpct(a['rps'], b['rps'])} | {a['cpu']:.0f} % / {b['cpu']:.0f} % |")
p("")
p("CPU: the server's, % of one core. Δ = on − off (latency: positive is slower; rps: negative is slower).")
if any(s == "uncached" for (s, m, e, c) in rows):
    p("")
    p("## What the token cache saves (\`cache_ttl_seconds: 0\`: every request verifies the JWT signature against the cached JWKS)")
    p("")
    p("1 × 10, $UNCACHED_DURATION per point, the three servers measured back to back.")
    p("")
    p("| conns | auth | rps | p50 | p99 | Δ p50 µs vs off | Δ p99 µs vs off | Δ rps vs off | server CPU |")
    p("|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for c in sorted({c for (s, m, e, c) in rows if s == "uncached"}):
        base = agg("uncached", "off", 1, c)
        for mode, name in (("off", "off"), ("cached", "oidc, cache 300 s"), ("uncached", "oidc, no cache")):
            if not rows[("uncached", mode, 1, c)]: continue
            x = agg("uncached", mode, 1, c)
            d = ("—", "—", "—") if mode == "off" else (dus(base['p50'], x['p50']), dus(base['p99'], x['p99']), dpct(base['rps'], x['rps']))
            p(f"| {c} | {name} | {x['rps']:,.0f} | {ms(x['p50'])} | {ms(x['p99'])} | {d[0]} | {d[1]} | {d[2]} | {x['cpu']:.0f} % |")
p("")
p("## Correctness checks (before measuring)")
p("")
p(open("$CHECKS").read().rstrip())
p("- every measured point: wrk saw no non-2xx answer and no socket error")
p("")
p("## Every run")
p("")
p("| section | auth | request | conns | round | requests | rps | p50 | p90 | p99 | max | CPU | Redis CPU | wrk CPU | other CPU | max RSS | attempts |")
p("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for (s, m, e, c), rs in rows.items():
    for r in rs:
        p(f"| {s} | {m} | {e} × 10 | {c} | {r['rnd']} | {r['n']:,} | {r['rps']:,.0f} | {ms(r['p50'])} | {ms(r['p90'])} | {ms(r['p99'])} | {ms(r['max'])} "
          f"| {r['cpu']:.0f} % | {r['redis']:.0f} % | {r['wrk']:.0f} % | {r['other']:.0f} % | {r['rss'] // 1024} MB | {r['attempts']} |")
p("")
p("*Other CPU*: busy CPU of the machine minus server, Redis and wrk (this script, idle servers, the provider); a point above $QUIET_MAX % was repeated up to $RETRIES time(s) and the quietest attempt kept.")
print("\n".join(out))
EOF
)
echo "$report"
if [[ $OUT != - ]]; then
    echo "$report" >"$OUT"
    log "wrote $OUT"
fi
