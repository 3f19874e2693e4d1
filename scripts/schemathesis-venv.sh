#!/usr/bin/env bash
# Create (once) the venv with the pinned schemathesis that fuzzes the feature
# server's OpenAPI document (crates/cli/tests/openapi_fuzz.rs). It lives
# outside the repo and is reused while the pin is unchanged.
set -euo pipefail
source "$(dirname "$0")/env.sh"
PIN='schemathesis==4.32.5'
marker="$LARDER_SCHEMATHESIS_VENV/.larder-pin"
if [ -x "$LARDER_SCHEMATHESIS" ] && [ "$(cat "$marker" 2>/dev/null)" = "$PIN" ]; then
  echo "schemathesis venv ready: $LARDER_SCHEMATHESIS_VENV"
  exit 0
fi
echo "installing $PIN into $LARDER_SCHEMATHESIS_VENV"
rm -rf "$LARDER_SCHEMATHESIS_VENV"
mkdir -p "$(dirname "$LARDER_SCHEMATHESIS_VENV")"
python3 -m venv "$LARDER_SCHEMATHESIS_VENV"
"$LARDER_SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN"
"$LARDER_SCHEMATHESIS" --version
echo "$PIN" > "$marker"
