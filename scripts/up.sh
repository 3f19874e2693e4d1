#!/usr/bin/env bash
# The main job: build larder, then `larder up` — apply and materialize the
# bundled driver-stats example into a local SQLite registry and online store
# (under .larder/) and serve Feast's HTTP API on 127.0.0.1:6566.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build -p larder-cli
exec "$CARGO_TARGET_DIR/debug/larder" up "$@"
