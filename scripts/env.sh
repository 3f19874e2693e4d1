# Shared settings for the scripts: one target directory outside the clone,
# reused by every checkout and by CI so builds start warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/larder-target}"
export LARDER_FEAST_VENV="${LARDER_FEAST_VENV:-$HOME/.cache/larder/feast-0.67.0}"
export LARDER_FEAST_PYTHON="${LARDER_FEAST_PYTHON:-$LARDER_FEAST_VENV/bin/python}"
export TZ=UTC
export LARDER_SCHEMATHESIS_VENV="${LARDER_SCHEMATHESIS_VENV:-$HOME/.cache/larder/schemathesis-4.32.5}"
export LARDER_SCHEMATHESIS="${LARDER_SCHEMATHESIS:-$LARDER_SCHEMATHESIS_VENV/bin/schemathesis}"
