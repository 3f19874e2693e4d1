#!/usr/bin/env bash
# The main job until `larder up` exists: build larder, apply the bundled
# driver-stats example into its local SQLite registry and show what is there.
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
