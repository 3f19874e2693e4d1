#!/usr/bin/env bash
# Create (once) the venv with Feast 0.67 and its duckdb extra, for the
# benchmark's `offline_store: {type: duckdb}` runs. The project's Feast venv
# (scripts/feast-venv.sh) has no duckdb/ibis; this one lives beside it and is
# reused while the pin is unchanged. Prints the venv's python on stdout.
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
VENV=${LARDER_FEAST_DUCKDB_VENV:-$HOME/.cache/larder/feast-duckdb-0.67.0}
PIN='feast[duckdb]==0.67.0'
marker="$VENV/.larder-pin"
if [[ -x $VENV/bin/python && "$(cat "$marker" 2>/dev/null)" == "$PIN" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi
# The interpreter the Feast venv was made from (same Python version), else python3.
base=$(sed -n 's/^executable = //p' "$LARDER_FEAST_VENV/pyvenv.cfg" 2>/dev/null || true)
[[ -x $base ]] || base=python3
echo "installing $PIN into $VENV (with $base)" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$base" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN" >&2
"$VENV/bin/python" -c 'import feast, duckdb, ibis; print("feast", feast.__version__, "duckdb", duckdb.__version__, "ibis", ibis.__version__)' >&2
echo "$PIN" >"$marker"
echo "$VENV/bin/python"
