#!/usr/bin/env bash
# Materialization benchmark: `larder materialize` into SQLite, Redis,
# PostgreSQL and MySQL/MariaDB, side by side with Feast 0.67's
# `FeatureStore.materialize` on the same stores. See README.md.
#
# Environment knobs (defaults in brackets):
#   CASES         cases to run ["a b bf b4"] (bf = larder on Feast's case-b input)
#   STORES        stores for cases a and b ["sqlite redis postgres mysql"]
#   B4_STORES     stores for case b4 ["sqlite redis"]
#   TIME_LIMIT    seconds before a larder run is stopped and reported as
#                 partial [600]; B4_TIME_LIMIT for case b4 [300]
#   FEAST         auto | 0 (skip Feast) [auto: run when the venv has feast]
#   FEAST_STORES  ["sqlite redis postgres"] (Feast's MySQL store needs pymysql,
#                 which the venv lacks)
#   FEAST_A / FEAST_B   Feast input "ENTITIES HOURS" ["10000 100" / "100000 1"]
#   REDIS_DB      Redis logical database, must be empty; flushed after use ["15"]
#                 (the cli tests use 11, 12 and 13)
#   LARDER        larder binary [$CARGO_TARGET_DIR/release/larder]
#   DATA_DIR      where the Parquet inputs go (reused when present) [$WORK/data]
#   KEEP=1        keep the work directory (configs, logs, /usr/bin/time output)
#   OUT           also write the report to this file
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../scripts/env.sh
source "$ROOT/scripts/env.sh"

LARDER=${LARDER:-$CARGO_TARGET_DIR/release/larder}
PY=${LARDER_FEAST_PYTHON}
CASES=${CASES-"a b bf b4"}
STORES=${STORES-"sqlite redis postgres mysql"}
B4_STORES=${B4_STORES-"sqlite redis"}
TIME_LIMIT=${TIME_LIMIT:-600}
B4_TIME_LIMIT=${B4_TIME_LIMIT:-300}
FEAST=${FEAST:-auto}
FEAST_STORES=${FEAST_STORES-"sqlite redis postgres"}
FEAST_A=${FEAST_A:-"10000 100"}
FEAST_B=${FEAST_B:-"100000 1"}
REDIS_DB=${REDIS_DB:-15}
PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=root
MY_HOST=127.0.0.1 MY_PORT=3306 MY_USER=root
REDIS_HOST=127.0.0.1 REDIS_PORT=6379
PROJECT=bench
VIEW=driver_hourly_stats
START=2024-01-01T00:00:00Z
RUN_ID=$$
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/larder-bench-materialize.XXXXXX)
DATA_DIR=${DATA_DIR:-$WORK/data}
mkdir -p "$DATA_DIR"
RESULTS=$WORK/larder.tsv # one line per larder run
FRESULTS=$WORK/feast.tsv # one line per Feast run
: >"$RESULTS"
: >"$FRESULTS"

[[ -x $LARDER ]] || { echo "no larder binary at $LARDER: cargo build --release -p larder-cli" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time missing: apt-get update && apt-get install -y time" >&2; exit 1; }
[[ -x $PY ]] || { echo "no python at $PY (the data generator needs numpy+pyarrow)" >&2; exit 1; }
if [[ $FEAST == auto ]]; then
    if "$PY" -c 'import feast' 2>/dev/null; then FEAST=1; else FEAST=0; fi
fi

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- cleanup --
PG_DBS=()
MY_DBS=()
USED_REDIS=0

# Empty our Redis database without blocking the server for other users
# (a synchronous FLUSHDB of millions of keys stalls it for seconds), then
# wait for the background free to finish so it does not overlap a measurement.
redis_flush() {
    redis-cli -h $REDIS_HOST -p $REDIS_PORT -n "$REDIS_DB" FLUSHDB ASYNC >/dev/null
    local i
    for i in $(seq 600); do
        [[ $(redis-cli -h $REDIS_HOST -p $REDIS_PORT INFO memory | tr -d '\r' | sed -n 's/^lazyfree_pending_objects://p') == 0 ]] && return
        sleep 0.1
    done
}

cleanup() {
    local d
    for d in "${PG_DBS[@]}"; do
        psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d postgres -qAtc "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    for d in "${MY_DBS[@]}"; do
        mysql -h $MY_HOST -P $MY_PORT -u$MY_USER -e "DROP DATABASE IF EXISTS \`$d\`" >/dev/null 2>&1 || true
    done
    if [[ $USED_REDIS == 1 ]]; then redis_flush >/dev/null 2>&1 || true; fi
    if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

if [[ " $STORES $B4_STORES $FEAST_STORES " == *" redis "* ]]; then
    n=$(redis-cli -h $REDIS_HOST -p $REDIS_PORT -n "$REDIS_DB" DBSIZE)
    [[ $n == 0 ]] || { echo "redis db $REDIS_DB holds $n keys; pick an empty one with REDIS_DB=N" >&2; exit 1; }
    USED_REDIS=1
fi

# ------------------------------------------------------------------- data --
# case -> "ENTITIES HOURS"
case_shape() {
    case $1 in
        a) echo "10000 100" ;;
        b) echo "1000000 1" ;;
        b4) echo "4000000 1" ;;
        bf) echo "$FEAST_B" ;;
        feast_a) echo "$FEAST_A" ;;
        feast_b) echo "$FEAST_B" ;;
        *) echo "unknown case $1" >&2; exit 1 ;;
    esac
}

# data_file ENTITIES HOURS: the Parquet path for a shape (generated on first use)
data_file() {
    local f="$DATA_DIR/drivers_${1}x${2}.parquet"
    if [[ ! -f $f ]]; then
        log "generating $f"
        "$PY" "$HERE/gen_data.py" --entities "$1" --hours "$2" --out "$f" >&2
    fi
    echo "$f"
}

end_time() { date -u -d "2024-01-01 00:00:00 UTC + $1 hours" +%Y-%m-%dT%H:%M:%SZ; }

# ------------------------------------------------------------------ stores --
# fresh_store STORE NAME DIR: creates an empty store, prints its online_store YAML.
fresh_store() {
    local store=$1 name=$2 dir=$3
    case $store in
        sqlite)
            rm -f "$dir"/online.db*
            printf 'online_store:\n  type: sqlite\n  path: %s/online.db\n' "$dir" ;;
        redis)
            redis_flush
            printf 'online_store:\n  type: redis\n  connection_string: "%s:%s,db=%s"\n' $REDIS_HOST $REDIS_PORT "$REDIS_DB" ;;
        postgres)
            PG_DBS+=("$name")
            psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d postgres -qAtc "CREATE DATABASE \"$name\"" >/dev/null
            printf 'online_store:\n  type: postgres\n  host: %s\n  port: %s\n  database: %s\n  db_schema: public\n  user: %s\n  password: ""\n  sslmode: disable\n' \
                $PG_HOST $PG_PORT "$name" $PG_USER ;;
        mysql)
            MY_DBS+=("$name")
            mysql -h $MY_HOST -P $MY_PORT -u$MY_USER -e "CREATE DATABASE \`$name\`"
            printf 'online_store:\n  type: mysql\n  host: %s\n  port: %s\n  database: %s\n  user: %s\n' \
                $MY_HOST $MY_PORT "$name" $MY_USER ;;
    esac
}

# drop_store STORE NAME DIR
drop_store() {
    local store=$1 name=$2 dir=$3
    case $store in
        sqlite) rm -f "$dir"/online.db* ;;
        redis) redis_flush ;;
        postgres) psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d postgres -qAtc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null ;;
        mysql) mysql -h $MY_HOST -P $MY_PORT -u$MY_USER -e "DROP DATABASE IF EXISTS \`$name\`" ;;
    esac
}

# stored_entities STORE NAME DIR: entity keys the store holds for the view.
stored_entities() {
    local store=$1 name=$2 dir=$3 t="${PROJECT}_${VIEW}" cells
    case $store in
        sqlite) cells=$(sqlite3 "$dir/online.db" "SELECT count(*) FROM \"$t\"") ;;
        redis) redis-cli -h $REDIS_HOST -p $REDIS_PORT -n "$REDIS_DB" DBSIZE; return ;;
        postgres) cells=$(psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d "$name" -qAtc "SELECT count(*) FROM \"$t\"") ;;
        mysql) cells=$(mysql -h $MY_HOST -P $MY_PORT -u$MY_USER -N -e "SELECT count(*) FROM \`$t\`" "$name") ;;
    esac
    echo $((cells / 10))
}

# proc_cpu PID...: user+system CPU seconds of the processes, including their
# reaped children (PostgreSQL backends are reaped by the postmaster).
proc_cpu() {
    local p t ticks=0
    for p in "$@"; do
        # fields after the ")" of the command: utime=12 stime=13 cutime=14 cstime=15
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}') || true
        ticks=$((ticks + ${t:-0}))
    done
    echo "scale=2; $ticks / $CLK_TCK" | bc
}

# server_snapshot STORE: "server CPU seconds<TAB>store counter" right now.
# Server CPU covers the whole server (other clients' work too).
server_snapshot() {
    case $1 in
        sqlite) printf -- '-\t-\n' ;;
        redis)
            printf '%s\t%s\n' "$(proc_cpu $(pgrep -x redis-server))" \
                "$(redis-cli -h $REDIS_HOST -p $REDIS_PORT INFO commandstats | tr -d '\r' |
                    awk -F'[=,]' '/^cmdstat_(hset|hget|hmget|expire):/ {s += $4} END {print s + 0}')" ;;
        postgres)
            printf '%s\t%s\n' "$(proc_cpu $(pgrep -x postgres))" \
                "$(psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d postgres -qAtc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")" ;;
        mysql)
            printf '%s\t%s\n' "$(proc_cpu $(pgrep -x mariadbd || pgrep -x mysqld))" \
                "$(mysql -h $MY_HOST -P $MY_PORT -u$MY_USER -N -e "SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'INNODB_BUFFER_POOL_READS'")" ;;
    esac
}

FEATURES_YAML='    - {name: conv_rate, type: Float32}
    - {name: acc_rate, type: Float32}
    - {name: avg_daily_trips, type: Int64}
    - {name: trips_today, type: Int32}
    - {name: rating, type: Float64}
    - {name: earnings_today, type: Float64}
    - {name: online_minutes, type: Int32}
    - {name: completed_trips, type: Int64}
    - {name: city, type: String}
    - {name: is_premium, type: Bool}'

# ------------------------------------------------------------------ larder --
run_larder() {
    local c=$1 store=$2 e h parquet end dir name t0 t1 wall rows rss stored input limit rc status s0 s1
    read -r e h <<<"$(case_shape "$c")"
    parquet=$(data_file "$e" "$h")
    end=$(end_time "$h")
    input=$((e * h))
    limit=$TIME_LIMIT
    [[ $c == b4 ]] && limit=$B4_TIME_LIMIT
    dir=$WORK/larder-$c-$store
    name="larder_bench_mat_${RUN_ID}_${c}"
    mkdir -p "$dir/manifests"
    {
        printf 'project: %s\nregistry:\n  registry_type: sql\n  path: sqlite:///%s/registry.db\n' $PROJECT "$dir"
        fresh_store "$store" "$name" "$dir"
        printf 'offline_store:\n  type: file\nentity_key_serialization_version: 3\n'
    } >"$dir/larder.yaml"
    cat >"$dir/manifests/bench.yaml" <<EOF
apiVersion: larder.dev/v1alpha1
kind: FeatureStore
metadata: {name: bench}
spec: {project: $PROJECT}
---
apiVersion: larder.dev/v1alpha1
kind: Entity
metadata: {name: driver}
spec: {joinKey: driver_id, valueType: Int64}
---
apiVersion: larder.dev/v1alpha1
kind: DataSource
metadata: {name: driver-stats-source}
spec:
  name: driver_stats_source
  timestampField: event_timestamp
  createdTimestampColumn: created
  file: {path: $parquet}
---
apiVersion: larder.dev/v1alpha1
kind: FeatureView
metadata: {name: driver-hourly-stats}
spec:
  name: $VIEW
  entities: [driver]
  source: driver-stats-source
  ttl: 0
  features:
$FEATURES_YAML
EOF
    "$LARDER" -c "$dir/larder.yaml" apply -f "$dir/manifests" >"$dir/apply.log" 2>&1 || { cat "$dir/apply.log" >&2; exit 1; }
    log "larder  case $c ($e x $h = $input rows) -> $store (limit ${limit}s)"
    sync
    s0=$(server_snapshot "$store")
    t0=$(date +%s.%N)
    rc=0
    /usr/bin/time -v -o "$dir/time.txt" timeout -s INT -k 30 "$limit" \
        "$LARDER" -c "$dir/larder.yaml" materialize "$START" "$end" >"$dir/out.txt" 2>"$dir/err.txt" || rc=$?
    t1=$(date +%s.%N)
    s1=$(server_snapshot "$store")
    wall=$(echo "$t1 - $t0" | bc -l)
    stored=$(stored_entities "$store" "$name" "$dir")
    if [[ $rc == 0 ]]; then
        status=ok
        rows=$(sed -nE "s/^$VIEW: ([0-9]+) rows in.*/\1/p" "$dir/out.txt")
        [[ $stored == "$e" ]] || log "WARNING: expected $e entities in the store, found $stored"
    elif [[ $rc == 124 ]]; then
        status=timeout
        rows=$stored # committed so far; each entity appears once in the input
    else
        status=failed
        rows=0
        tail -5 "$dir/out.txt" "$dir/err.txt" >&2
    fi
    log "        $status: $(head -1 "$dir/out.txt"); wall ${wall}s, store holds $stored entities"
    # case store status input rows wall time.txt server0 server1
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$store" "$status" "$input" "$rows" "$wall" "$dir/time.txt" \
        "$(echo "$s0" | tr '\t' ' ')" "$(echo "$s1" | tr '\t' ' ')" >>"$RESULTS"
    drop_store "$store" "$name" "$dir"
}

# ------------------------------------------------------------------- feast --
run_feast() {
    local c=$1 store=$2 e h parquet end dir name t0 t1 wall secs stored input
    read -r e h <<<"$(case_shape "feast_$c")"
    parquet=$(data_file "$e" "$h")
    end=$(end_time "$h")
    input=$((e * h))
    dir=$WORK/feast-$c-$store
    name="larder_bench_mat_${RUN_ID}_feast_${c}"
    mkdir -p "$dir"
    {
        printf 'project: %s\nprovider: local\nregistry:\n  registry_type: file\n  path: %s/registry.db\n' $PROJECT "$dir"
        fresh_store "$store" "$name" "$dir"
        printf 'offline_store:\n  type: file\nentity_key_serialization_version: 3\n'
    } >"$dir/feature_store.yaml"
    cat >"$dir/features.py" <<EOF
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(
    name="driver_stats_source",
    path="$parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
$VIEW = FeatureView(
    name="$VIEW",
    entities=[driver],
    ttl=timedelta(0),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="trips_today", dtype=Int32),
        Field(name="rating", dtype=Float64),
        Field(name="earnings_today", dtype=Float64),
        Field(name="online_minutes", dtype=Int32),
        Field(name="completed_trips", dtype=Int64),
        Field(name="city", dtype=String),
        Field(name="is_premium", dtype=Bool),
    ],
    source=source,
)
EOF
    (cd "$dir" && "$(dirname "$PY")/feast" apply >"$dir/apply.log" 2>&1) || { cat "$dir/apply.log" >&2; exit 1; }
    log "feast   case $c ($e x $h = $input rows) -> $store"
    sync
    t0=$(date +%s.%N)
    if ! (cd "$dir" && /usr/bin/time -v -o "$dir/time.txt" "$PY" "$HERE/feast_materialize.py" "$dir" "$START" "$end" >"$dir/out.txt" 2>"$dir/err.txt"); then
        tail -20 "$dir/err.txt" >&2
        log "feast   case $c -> $store FAILED"
        drop_store "$store" "$name" "$dir"
        return
    fi
    t1=$(date +%s.%N)
    wall=$(echo "$t1 - $t0" | bc -l)
    secs=$(sed -nE 's/.*"seconds": ([0-9.eE+-]+).*/\1/p' "$dir/out.txt")
    stored=$(stored_entities "$store" "$name" "$dir")
    log "        materialize() ${secs}s (process ${wall}s), store holds $stored entities"
    [[ $stored == "$e" ]] || log "WARNING: expected $e entities in the Feast store, found $stored"
    # case store input rows materialize_s wall time.txt
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$store" "$input" "$stored" "$secs" "$wall" "$dir/time.txt" >>"$FRESULTS"
    drop_store "$store" "$name" "$dir"
}

# -------------------------------------------------------------------- run --
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for c in $CASES; do
    stores=$STORES
    [[ $c == b4 ]] && stores=$B4_STORES
    for s in $stores; do run_larder "$c" "$s"; done
done
if [[ $FEAST == 1 ]]; then
    # Feast runs case a for a, and case b for b, bf and b4.
    feast_cases=""
    [[ " $CASES " == *" a "* ]] && feast_cases="a"
    [[ " $CASES " == *" b "* || " $CASES " == *" bf "* || " $CASES " == *" b4 "* ]] && feast_cases="$feast_cases b"
    for c in $feast_cases; do
        for s in $FEAST_STORES; do run_feast "$c" "$s"; done
    done
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ----------------------------------------------------------------- report --
"$PY" "$HERE/report.py" --larder "$RESULTS" --feast "$FRESULTS" --feast-ran "$FEAST" \
    --feast-a "$FEAST_A" --feast-b "$FEAST_B" --larder-version "$("$LARDER" --version)" \
    --load "$LOAD_BEFORE -> $LOAD_AFTER" | tee ${OUT:+"$OUT"}
