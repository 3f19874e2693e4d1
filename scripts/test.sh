#!/usr/bin/env bash
# The test command: sets up everything the tests need on a fresh machine
# (services, the Feast venv), then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/services.sh
scripts/feast-venv.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
cargo nextest run --workspace --no-fail-fast "$@"
