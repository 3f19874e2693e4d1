#!/usr/bin/env bash
# The main job until `larder up` exists: build larder, apply the bundled
# driver-stats example into its local SQLite registry, materialize it into
# the SQLite online store and read features back.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build -p larder-cli
larder="$CARGO_TARGET_DIR/debug/larder"
cfg=examples/driver-stats/larder.yaml
"$larder" -c "$cfg" plan -f examples/driver-stats/manifests
"$larder" -c "$cfg" apply -f examples/driver-stats/manifests
for kind in projects entities datasources featureviews featureservices permissions; do
  echo; "$larder" -c "$cfg" ls "$kind"
done
echo
"$larder" -c "$cfg" materialize 2024-01-01T00:00:00 2024-01-03T00:00:00
echo
"$larder" -c "$cfg" get-online-features \
  --features driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips,driver_hourly_stats:city \
  --entity driver_id=1001,1002,1003
