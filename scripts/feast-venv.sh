#!/usr/bin/env bash
# Create (once) the venv with the pinned Feast SDK that the e2e tests use as
# a client. It lives outside the repo and is reused while the pin is unchanged.
set -euo pipefail
source "$(dirname "$0")/env.sh"
PIN='feast[grpcio,postgres,redis]==0.67.0'
marker="$LARDER_FEAST_VENV/.larder-pin"
if [ -x "$LARDER_FEAST_PYTHON" ] && [ "$(cat "$marker" 2>/dev/null)" = "$PIN" ]; then
  echo "Feast venv ready: $LARDER_FEAST_VENV"
  exit 0
fi
echo "installing $PIN into $LARDER_FEAST_VENV"
rm -rf "$LARDER_FEAST_VENV"
mkdir -p "$(dirname "$LARDER_FEAST_VENV")"
python3 -m venv "$LARDER_FEAST_VENV"
"$LARDER_FEAST_VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN"
"$LARDER_FEAST_PYTHON" -c 'import feast, pyarrow; print("feast", feast.__version__)'
echo "$PIN" > "$marker"
