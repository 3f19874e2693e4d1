#!/usr/bin/env bash
# Historical-retrieval benchmark: `larder get-historical-features` against
# Feast 0.67's get_historical_features with the file (dask) and the duckdb
# offline stores, on the same registry and Parquet data, one run at a time.
# See README.md.
#
# Environment knobs (defaults in brackets):
#   N_ENT          scenario A entity rows [1000000]
#   N_FEAT         scenario A feature rows [10000000]
#   N_KEYS         scenario A distinct drivers [N_FEAT/100, at least 1000]
#   B_ENT, B_FEAT  scenario B entity rows, feature rows per view [N_ENT/10, N_FEAT/10]
#   SCALES         scaling check: fractions of N_FEAT, same entity frame ["0.25 0.5 1"]
#   SCENARIOS      any of a, b, scale ["a b scale"]
#   ENGINES        any of larder, feast-file, feast-duckdb, in run order
#                  ["larder feast-file feast-duckdb"]
#   SCALE_ENGINES  engines of the scaling check [larder]
#   TIMEOUT        seconds per run, then "did not finish" [1800]
#   MEM_LIMIT_MB   a run whose RSS exceeds this is killed and recorded
#                  ["memory-limit"] [80% of MemTotal]
#   SAMPLE         entity rows compared per scenario (0 = all) [200000]
#   DATA_DIR       where the generated Parquet goes; set it to keep the data
#                  between runs (file names carry the parameters) [work dir]
#   LARDER         larder binary [$CARGO_TARGET_DIR/release/larder]
#   LARDER_LABEL   how RESULTS.md names it [`larder --version` + git HEAD]
#   OUT            report file [bench/historical/RESULTS.md]; OUT=- prints only
#   KEEP=1         keep the work directory (repos, outputs, logs, raw JSON)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../scripts/env.sh
source "$ROOT/scripts/env.sh"

N_ENT=${N_ENT:-1000000}
N_FEAT=${N_FEAT:-10000000}
N_KEYS=${N_KEYS:-$((N_FEAT / 100 > 1000 ? N_FEAT / 100 : 1000))}
B_ENT=${B_ENT:-$((N_ENT / 10))}
B_FEAT=${B_FEAT:-$((N_FEAT / 10))}
SCALES=${SCALES-"0.25 0.5 1"}
SCENARIOS=${SCENARIOS-"a b scale"}
ENGINES=${ENGINES-"larder feast-file feast-duckdb"}
SCALE_ENGINES=${SCALE_ENGINES-larder}
TIMEOUT=${TIMEOUT:-1800}
MEM_LIMIT_MB=${MEM_LIMIT_MB:-$(awk '/MemTotal/{printf "%d", $2 * 0.8 / 1024}' /proc/meminfo)}
SAMPLE=${SAMPLE:-200000}
LARDER=${LARDER:-$CARGO_TARGET_DIR/release/larder}
PY=$LARDER_FEAST_PYTHON
OUT=${OUT:-$HERE/RESULTS.md}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }
has() { [[ " $1 " == *" $2 "* ]]; }

# ------------------------------------------------------------ prerequisites --
for e in $ENGINES $SCALE_ENGINES; do
    case $e in larder | feast-file | feast-duckdb) ;; *) die "unknown engine $e" ;; esac
done
for s in $SCENARIOS; do
    case $s in a | b | scale) ;; *) die "unknown scenario $s" ;; esac
done
[[ -x $LARDER ]] || die "no larder binary at $LARDER: cargo build --release -p larder-cli"
[[ -x $PY ]] && "$PY" -c 'import feast, pyarrow, numpy' 2>/dev/null ||
    die "the Feast venv ($PY) is needed for the data generator and the checks: scripts/feast-venv.sh"
command -v python3 >/dev/null || die "python3 missing"
DUCK_PY=
if has "$ENGINES $SCALE_ENGINES" feast-duckdb; then
    DUCK_PY=$("$HERE/duckdb-venv.sh") || die "cannot install feast[duckdb]==0.67.0 (bench/historical/duckdb-venv.sh)"
fi

WORK=$(mktemp -d /tmp/larder-bench-historical.XXXXXX)
DATA_DIR=${DATA_DIR:-$WORK/data}
mkdir -p "$DATA_DIR"
RAW=$WORK/results.jsonl
: >"$RAW"
cleanup() {
    if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "work directory $WORK, data in $DATA_DIR"

# -------------------------------------------------------------------- data --
gen() { "$PY" "$HERE/gen_data.py" "$@"; }
# a_features ROWS -> path of scenario A's source with ROWS rows (generated once).
a_features() {
    local f=$DATA_DIR/a_features_r$1_k$N_KEYS.parquet
    if [[ ! -s $f ]]; then
        log "generating $1 feature rows over $N_KEYS drivers"
        gen a-features --rows "$1" --entities "$N_KEYS" --out "$f" >"$WORK/gen-$1.json"
    fi
    echo "$f"
}
A_FEAT_FILE= A_ENT_FILE= B_DIR=
if has "$SCENARIOS" a || has "$SCENARIOS" scale; then
    A_FEAT_FILE=$(a_features "$N_FEAT")
    A_ENT_FILE=$DATA_DIR/a_entities_e${N_ENT}_r${N_FEAT}_k$N_KEYS.parquet
    if [[ ! -s $A_ENT_FILE ]]; then
        log "generating $N_ENT entity rows"
        gen a-entities --rows "$N_ENT" --entities "$N_KEYS" --features "$A_FEAT_FILE" --out "$A_ENT_FILE" >/dev/null
    fi
fi
if has "$SCENARIOS" b; then
    B_DIR=$DATA_DIR/b_e${B_ENT}_r$B_FEAT
    if [[ ! -s $B_DIR/b_entities.parquet ]]; then
        log "generating scenario B: 3 x $B_FEAT feature rows, $B_ENT entity rows"
        gen b --out-dir "$B_DIR" --feature-rows "$B_FEAT" --entity-rows "$B_ENT" >/dev/null
    fi
fi
# scale_rows S -> N_FEAT * S as an integer
scale_rows() { python3 -c "print(round($N_FEAT * $1))"; }

# ------------------------------------------------------------------- repos --
# make_repo NAME KIND(a|b) [SOURCE]: a Feast repo applied with `feast apply`
# into a SQLite SQL registry; beside it a duckdb variant and Larder's config
# on the same registry. Prints the repo directory.
make_repo() {
    local name=$1 kind=$2 src=${3:-} dir=$WORK/repo-$1
    mkdir -p "$dir/file" "$dir/duckdb"
    # config OFFLINE_STORE [feast]: one registry and online store for every engine.
    config() {
        echo "project: bench_hist_$kind"
        [[ ${2:-} == feast ]] && echo "provider: local"
        cat <<EOF
registry:
  registry_type: sql
  path: sqlite:///$dir/registry.db
  cache_ttl_seconds: 0
online_store:
  type: sqlite
  path: $dir/online.db
offline_store:
  type: $1
entity_key_serialization_version: 3
EOF
    }
    for store in file duckdb; do config "$store" feast >"$dir/$store/feature_store.yaml"; done
    config file >"$dir/larder.yaml"
    cp "$HERE/repo_$kind.py" "$dir/file/features.py"
    (cd "$dir/file" && BENCH_A_SOURCE=$src BENCH_B_DIR=$B_DIR "$(dirname "$PY")/feast" apply) >"$dir/apply.log" 2>&1 ||
        { cat "$dir/apply.log" >&2; die "feast apply ($name) failed"; }
    echo "$dir"
}

A_FEATURES=driver_stats:conv_rate,driver_stats:acc_rate,driver_stats:avg_daily_trips,driver_stats:trips_today,driver_stats:rating,driver_stats:earnings_today,driver_stats:online_minutes,driver_stats:completed_trips,driver_stats:city,driver_stats:is_premium
B_FEATURES=b_driver:d_trips_today,b_driver:d_rating,b_driver:d_city,b_driver:d_is_premium,b_customer:c_lifetime_value,b_customer:c_orders,b_customer:c_segment,b_pair:p_rides_together,b_pair:p_avg_tip,b_pair:p_last_rating

# ------------------------------------------------------------- measurement --
# Page cache: read the inputs once so every engine starts with them cached.
warm() { cat "$@" >/dev/null; }

# run_one SCENARIO SCALE ENGINE REPO ENTITIES FEATURES FEAT_ROWS ENT_ROWS:
# one measured run; appends a JSON line to $RAW.
run_one() {
    local scen=$1 scale=$2 engine=$3 repo=$4 ent=$5 feats=$6 feat_rows=$7 ent_rows=$8
    local tag=$scen-$scale-$engine out m rows=null extra=null
    out=$WORK/out-$tag.parquet
    rm -f "$out"
    local cmd
    case $engine in
        larder) cmd=("$LARDER" -c "$repo/larder.yaml" get-historical-features --entities "$ent" --features "$feats" --output "$out") ;;
        feast-file) cmd=("$PY" "$HERE/feast_hist.py" --repo "$repo/file" --entities "$ent" --features "$feats" --output "$out") ;;
        feast-duckdb) cmd=("$DUCK_PY" "$HERE/feast_hist.py" --repo "$repo/duckdb" --entities "$ent" --features "$feats" --output "$out") ;;
    esac
    log "$scen (x$scale, $ent_rows x $feat_rows): $engine"
    m=$(python3 "$HERE/measure.py" --timeout "$TIMEOUT" --mem-limit-mb "$MEM_LIMIT_MB" \
        --stdout "$WORK/$tag.stdout" --stderr "$WORK/$tag.stderr" -- "${cmd[@]}")
    if [[ $(jq -r .status <<<"$m") == ok && -s $out ]]; then
        rows=$("$PY" -c 'import sys, pyarrow.parquet as pq; print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)' "$out")
    else
        rm -f "$out"
        tail -5 "$WORK/$tag.stderr" | sed 's/^/    /' >&2 || true
    fi
    [[ $engine == larder ]] || extra=$(grep -m1 '^{' "$WORK/$tag.stdout" || echo null)
    local err
    err=$(tail -c 300 "$WORK/$tag.stderr" | tr -d '\000' | jq -Rs .)
    jq -c -n --arg scen "$scen" --arg scale "$scale" --arg engine "$engine" --argjson m "$m" \
        --argjson rows "$rows" --argjson feat "$feat_rows" --argjson ent "$ent_rows" \
        --argjson extra "$extra" --argjson err "$err" --arg out "$out" \
        '{scenario: $scen, scale: ($scale | tonumber), engine: $engine, feature_rows: $feat, entity_rows: $ent,
          rows_out: $rows, output: (if $rows == null then null else $out end), feast: $extra,
          stderr_tail: (if $m.status == "ok" then null else $err end)} + $m' >>"$RAW"
    log "  $(jq -r '"\(.status), \(.wall_s) s, peak RSS \(.maxrss_kb / 1024 | floor) MiB, rows out \(.rows_out)"' <<<"$(tail -1 "$RAW")")"
}

# compare_scen SCENARIO SCALE ENTITIES FEATURES: Larder vs Feast outputs of that run.
compare_scen() {
    local scen=$1 scale=$2 ent=$3 feats=$4 l=$WORK/out-$1-$2-larder.parquet args=()
    [[ -s $l ]] || return 0
    [[ -s $WORK/out-$scen-$scale-feast-duckdb.parquet ]] && args+=(--duckdb "$WORK/out-$scen-$scale-feast-duckdb.parquet")
    [[ -s $WORK/out-$scen-$scale-feast-file.parquet ]] && args+=(--file "$WORK/out-$scen-$scale-feast-file.parquet")
    log "comparing $scen (x$scale) outputs"
    local repro=$WORK/mismatch-$scen-$scale.parquet
    "$PY" "$HERE/compare.py" --entities "$ent" --features "$feats" --larder "$l" --sample "$SAMPLE" \
        --repro "$repro" "${args[@]}" |
        jq -c --arg s "$scen" --arg x "$scale" '{scenario: $s, scale: ($x | tonumber)} + .' >>"$WORK/compare.jsonl" ||
        log "  comparison of $scen failed"
    if [[ -s $repro ]]; then
        log "  Larder and Feast duckdb DIFFER: entity rows in $repro (features $feats); keeping the work directory"
        KEEP=1
    fi
}

command -v jq >/dev/null || die "jq missing"
: >"$WORK/compare.jsonl"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)

if has "$SCENARIOS" a; then
    repo=$(make_repo a a "$A_FEAT_FILE")
    warm "$A_FEAT_FILE" "$A_ENT_FILE"
    for e in $ENGINES; do run_one a 1 "$e" "$repo" "$A_ENT_FILE" "$A_FEATURES" "$N_FEAT" "$N_ENT"; done
    compare_scen a 1 "$A_ENT_FILE" "$A_FEATURES"
fi
if has "$SCENARIOS" b; then
    repo=$(make_repo b b)
    warm "$B_DIR"/*.parquet
    for e in $ENGINES; do run_one b 1 "$e" "$repo" "$B_DIR/b_entities.parquet" "$B_FEATURES" "$B_FEAT" "$B_ENT"; done
    compare_scen b 1 "$B_DIR/b_entities.parquet" "$B_FEATURES"
fi
if has "$SCENARIOS" scale; then
    for s in $SCALES; do
        rows=$(scale_rows "$s")
        src=$(a_features "$rows")
        todo=
        for e in $SCALE_ENGINES; do
            # Scenario A is the 1x point: not measured twice.
            if [[ $rows == "$N_FEAT" ]] && has "$SCENARIOS" a && has "$ENGINES" "$e"; then continue; fi
            todo="$todo $e"
        done
        [[ -n $todo ]] || continue
        repo=$(make_repo "a-x$s" a "$src")
        warm "$src" "$A_ENT_FILE"
        for e in $todo; do run_one scale "$s" "$e" "$repo" "$A_ENT_FILE" "$A_FEATURES" "$rows" "$N_ENT"; done
        # Larder's output at this scale against the Feast engines of SCALE_ENGINES, if any.
        compare_scen scale "$s" "$A_ENT_FILE" "$A_FEATURES"
    done
fi
T_END=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ report --
LABEL=${LARDER_LABEL:-"$("$LARDER" --version) (checkout $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ', dirty'))"}
versions=$("$PY" -c 'import feast, pandas, pyarrow, dask; print(f"feast {feast.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, dask {dask.__version__}")')
[[ -n $DUCK_PY ]] && versions="$versions; duckdb venv: $("$DUCK_PY" -c 'import feast, duckdb, ibis; print(f"feast {feast.__version__}, duckdb {duckdb.__version__}, ibis {ibis.__version__}")')"
report=$(python3 "$HERE/report.py" --raw "$RAW" --compare "$WORK/compare.jsonl" \
    --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --machine "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo) GiB RAM, $(uname -sr)" \
    --larder "$LABEL" --versions "$versions" \
    --params "N_ENT=$N_ENT N_FEAT=$N_FEAT N_KEYS=$N_KEYS B_ENT=$B_ENT B_FEAT=$B_FEAT SCALES=\"$SCALES\" SCENARIOS=\"$SCENARIOS\" ENGINES=\"$ENGINES\" SCALE_ENGINES=\"$SCALE_ENGINES\" TIMEOUT=$TIMEOUT MEM_LIMIT_MB=$MEM_LIMIT_MB SAMPLE=$SAMPLE" \
    --load-start "$LOAD_START" --load-end "$LOAD_END" --elapsed $((T_END - T_START)) \
    --timeout "$TIMEOUT" --mem-limit-mb "$MEM_LIMIT_MB")
echo "$report"
if [[ $OUT != - ]]; then
    echo "$report" >"$OUT"
    log "wrote $OUT"
fi
