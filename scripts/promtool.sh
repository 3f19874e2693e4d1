#!/usr/bin/env bash
# promtool, for the tests that lint the servers' /metrics with `promtool check
# metrics` (crates/cli/tests/metrics_e2e.rs). Prints the path of the binary (the
# only line on stdout; progress goes to stderr). Uses a promtool already on PATH
# (e.g. /usr/bin/promtool from `apt-get install prometheus`); otherwise takes it
# from Debian's `prometheus` package, downloaded with apt (not installed: that
# would also set up and start the Prometheus server) and unpacked into
# ${LARDER_PROMTOOL_DIR:-~/.cache/larder/promtool}/bin. Does nothing when it is
# already there.
#
#   promtool=$(scripts/promtool.sh) && "$promtool" --version
set -euo pipefail

if command -v promtool >/dev/null; then
  command -v promtool
  exit 0
fi

DIR=${LARDER_PROMTOOL_DIR:-$HOME/.cache/larder/promtool}
BIN=$DIR/bin/promtool

log() { printf 'promtool: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$DIR"
# One installer at a time (parallel test runs).
exec 9>"$DIR/.lock"
flock 9
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get is needed to fetch Debian's prometheus package (or put promtool on PATH)"
# Under /tmp, not ~/.cache: apt's _apt user writes the download there.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

download() { (cd "$tmp" && apt-get download prometheus >&2); }
log "fetching Debian's prometheus package with apt-get download"
if ! download; then
  # No package lists yet (a fresh machine): read them once, then retry.
  [ "$(id -u)" = 0 ] || die "apt-get download prometheus failed; run 'apt-get update' as root first"
  log "apt-get update"
  apt-get update >&2
  download || die "apt-get download prometheus failed"
fi
deb=$(find "$tmp" -maxdepth 1 -name 'prometheus_*.deb' -print -quit)
[ -n "$deb" ] || die "apt-get download wrote no prometheus_*.deb"
dpkg-deb -x "$deb" "$tmp/root"
[ -x "$tmp/root/usr/bin/promtool" ] || die "$(basename "$deb") has no usr/bin/promtool"
mkdir -p "$DIR/bin"
install -m 0755 "$tmp/root/usr/bin/promtool" "$BIN.new"
mv "$BIN.new" "$BIN"
log "$("$BIN" --version 2>&1 | head -1)"
echo "$BIN"
