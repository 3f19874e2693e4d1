#!/usr/bin/env bash
# Local OpenID Connect provider for Larder's auth tests (e2e/oidc/).
#
#   scripts/oidc-provider.sh install     npm ci oidc-provider into the cache dir (once per lock file)
#   scripts/oidc-provider.sh path        print the dir holding node_modules (installs first if needed)
#   scripts/oidc-provider.sh run [ARGS]  install if needed, then exec node e2e/oidc/provider.mjs ARGS
#
# Cache dir: ${LARDER_OIDC_DIR:-$HOME/.cache/larder/oidc-provider}. Quiet on success.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/e2e/oidc"
dir="${LARDER_OIDC_DIR:-$HOME/.cache/larder/oidc-provider}"
marker="$dir/.installed"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "oidc-provider.sh: $1 not found (Node.js >= 18 and npm are needed)" >&2; exit 1; }
}

lock_sum() {
  cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1
}

installed() {
  [[ -f "$marker" && -d "$dir/node_modules/oidc-provider" && "$(cat "$marker")" == "$(lock_sum)" ]]
}

install() {
  installed && return 0
  need node
  need npm
  mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  rm -f "$marker"
  local log
  log="$(mktemp)"
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
    cat "$log" >&2
    rm -f "$log"
    echo "oidc-provider.sh: npm ci failed in $dir" >&2
    exit 1
  fi
  rm -f "$log"
  lock_sum >"$marker"
}

cmd="${1:-}"
case "$cmd" in
  install)
    install
    ;;
  path)
    install
    echo "$dir"
    ;;
  run)
    shift
    install
    need node
    NODE_PATH="$dir/node_modules${NODE_PATH:+:$NODE_PATH}" exec node "$src/provider.mjs" "$@"
    ;;
  *)
    echo "usage: $0 install|path|run [provider args]" >&2
    exit 2
    ;;
esac
