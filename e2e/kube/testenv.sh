#!/usr/bin/env bash
# Larder's real-Kubernetes test environment (envtest-style: etcd + API servers on
# loopback, no kubelet), built only from Debian packages. See e2e/kube/README.md.
#
#   testenv.sh ensure             install + build what is missing (idempotent)
#   testenv.sh up [--lease PID]   start etcd, kube-apiserver, kube-controller-manager,
#                                 apiextensions-apiserver (fresh etcd); no-op when healthy
#   testenv.sh install-crds PATH...   create or replace CRDs (files, or *.yaml in dirs)
#   testenv.sh down [--lease PID] stop (kcm, ext, apiserver, etcd)
#   testenv.sh env                `export ...` lines for eval
#   testenv.sh status             what is running (exit 0 up, 1 partly up, 3 down)
#
# --lease PID (used by scripts/test.sh): `up` registers PID as a user; `down --lease PID`
# drops it and stops the environment only when no live user is left and it was not
# started by a plain `up` (a hand-started environment is left running).
#
# Env: LARDER_KUBE_TESTENV_DIR (default ~/.cache/larder/kube-testenv), LARDER_KUBE_ETCD_PORT
# (23790), LARDER_KUBE_ETCD_PEER_PORT (23800), LARDER_KUBE_APISERVER_PORT (16443),
# LARDER_KUBE_KCM_PORT (10257), LARDER_KUBE_EXT_PORT (16444), LARDER_KUBE_KCM=0 (no
# controller-manager), KCM_CONTROLLERS (its --controllers, e.g. append ,-job),
# LARDER_KUBE_DISABLE_CEL=1 (plain 1.20 server only), LARDER_KUBE_RETRY_EXT=1 (retry a
# failed apiextensions build now rather than after 24 h), LARDER_KUBE_ETCD_BIN (etcd).
set -euo pipefail

DIR=${LARDER_KUBE_TESTENV_DIR:-$HOME/.cache/larder/kube-testenv}
SRC=$DIR/src
BIN=$DIR/bin
PKI=$DIR/pki
RUN=$DIR/run
LOGS=$DIR/logs
SID=$DIR/sid
ETCD_PORT=${LARDER_KUBE_ETCD_PORT:-23790}
ETCD_PEER_PORT=${LARDER_KUBE_ETCD_PEER_PORT:-23800}
APISERVER_PORT=${LARDER_KUBE_APISERVER_PORT:-16443}
KCM_PORT=${LARDER_KUBE_KCM_PORT:-10257}
EXT_PORT=${LARDER_KUBE_EXT_PORT:-16444}
KCM_ENABLED=${LARDER_KUBE_KCM:-1}
ETCD_BIN=${LARDER_KUBE_ETCD_BIN:-etcd}
KCM_CONTROLLERS=${KCM_CONTROLLERS:-*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-pvc-protection,-pv-protection,-ttl,-bootstrapsigner,-tokencleaner}
DEBIAN_MIRROR=${LARDER_KUBE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Debian bookworm's kubernetes source package: the full upstream 1.20.2 tree incl. vendor/.
K8S_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
APT_PACKAGES=(golang-go jq rsync make openssl curl python3-yaml etcd-server
  golang-github-modern-go-reflect2-dev ca-certificates debian-archive-keyring)
# Components in stop order; started in the reverse order.
COMPONENTS=(kube-controller-manager apiextensions-apiserver kube-apiserver etcd)

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
log() { printf '=== %s  %s\n' "$(date +%T)" "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'testenv: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }

# One testenv.sh at a time per directory for everything that changes state. Daemons are
# started with fd 8 closed so they never hold this lock.
lock() {
  mkdir -p "$DIR"
  exec 8>"$DIR/.lock"
  if ! flock -n 8; then
    log "waiting for another testenv.sh working in $DIR"
    flock 8
  fi
}

# ---------------------------------------------------------------------------------------
# ensure

# A private apt configuration (own lists, empty dpkg status) for one sources line, so
# nothing on the system's apt setup changes. Prints the APT_CONFIG path.
private_apt() { # name sources-line
  local r=$DIR/apt/$1
  mkdir -p "$r/lists/partial" "$r/archives/partial" "$r/etc/preferences.d" "$r/etc/sources.list.d"
  : >"$r/status"
  printf '%s\n' "$2" >"$r/sources.list"
  printf '%s\n' \
    "Dir::State \"$r\";" "Dir::State::lists \"$r/lists\";" "Dir::State::status \"$r/status\";" \
    "Dir::Cache \"$r\";" "Dir::Cache::archives \"$r/archives\";" \
    "Dir::Etc::sourcelist \"$r/sources.list\";" "Dir::Etc::sourceparts \"$r/etc/sources.list.d\";" \
    "Dir::Etc::preferences \"$r/etc/preferences\";" "Dir::Etc::preferencesparts \"$r/etc/preferences.d\";" \
    'APT::Architecture "amd64";' 'APT::Sandbox::User "root";' 'Acquire::Languages "none";' >"$r/apt.conf"
  echo "$r/apt.conf"
}

ensure_apt() {
  local p missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "apt packages: present"
    return
  fi
  log "apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$LOGS/apt.log" 2>&1 \
    || { tail -30 "$LOGS/apt.log" >&2; die "apt-get install failed (log: $LOGS/apt.log)"; }
}

ensure_k8s_source() {
  if compgen -G "$SRC/kubernetes_*.orig.tar.gz" >/dev/null; then
    log "kubernetes source: present"
    return
  fi
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
    log "kubernetes source: not needed (built)"
    return
  fi
  log "kubernetes source: downloading Debian bookworm kubernetes=$K8S_DEB_VERSION"
  local conf
  conf=$(private_apt bookworm-src "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR bookworm main")
  mkdir -p "$SRC"
  (
    export APT_CONFIG=$conf
    cd "$SRC"
    apt-get update -qq
    if ! apt-get source -qq --download-only "kubernetes=$K8S_DEB_VERSION"; then
      warn "kubernetes=$K8S_DEB_VERSION is gone from bookworm; taking bookworm's current kubernetes source"
      apt-get source -qq --download-only kubernetes
    fi
  )
  compgen -G "$SRC/kubernetes_*.orig.tar.gz" >/dev/null || die "no kubernetes orig tarball in $SRC"
}

ensure_k8s_build() {
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
    log "kube-apiserver, kube-controller-manager: built ($(head -1 "$BIN/kubernetes.build-info" 2>/dev/null || echo '?'))"
    return
  fi
  local orig dsc build tree v t0
  orig=$(compgen -G "$SRC/kubernetes_*.orig.tar.gz" | head -1)
  dsc=$(compgen -G "$SRC/kubernetes_*.dsc" | head -1 || true)
  build=$SRC/build
  if [ ! -f "$build/.unpacked" ]; then
    log "unpack $(basename "$orig")"
    rm -rf "$build"
    mkdir -p "$build"
    tar xzf "$orig" -C "$build"
    touch "$build/.unpacked"
  fi
  tree=$(find "$build" -mindepth 1 -maxdepth 1 -type d | head -1)
  # Go >= 1.18 crashes at run time with the vendored github.com/modern-go/reflect2 1.0.1;
  # swap in Debian's 1.0.2 sources (API-compatible; GOPATH build ignores modules.txt).
  v=$tree/vendor/github.com/modern-go/reflect2
  if [ ! -f "$v/go_above_118.go" ]; then
    log "patch vendor/github.com/modern-go/reflect2 -> Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
    rm -f "$v"/*.go "$v"/*.s
    cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$v"/
  fi
  log "build kube-apiserver + kube-controller-manager with $(go version | awk '{print $3}') (nice; 5-10 min; log: $LOGS/build-kubernetes.log)"
  t0=$(now)
  mkdir -p "$DIR/home" "$BIN"
  if ! (cd "$tree" && env -u GOFLAGS -u GOPATH -u GOROOT -u GO111MODULE -u GOBIN -u GOTOOLCHAIN \
        HOME="$DIR/home" CGO_ENABLED=0 nice -n 19 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager") \
        >"$LOGS/build-kubernetes.log" 2>&1; then
    tail -40 "$LOGS/build-kubernetes.log" >&2
    die "kubernetes build failed (log: $LOGS/build-kubernetes.log)"
  fi
  cp "$tree/_output/bin/kube-apiserver" "$BIN/kube-apiserver.new"
  cp "$tree/_output/bin/kube-controller-manager" "$BIN/kube-controller-manager.new"
  mv "$BIN/kube-apiserver.new" "$BIN/kube-apiserver"
  mv "$BIN/kube-controller-manager.new" "$BIN/kube-controller-manager"
  {
    "$BIN/kube-apiserver" --version
    echo "source: Debian bookworm $(basename "${dsc:-$orig}" .dsc)"
    echo "go: $(go version | awk '{print $3}') (Debian golang-go $(dpkg-query -W -f='${Version}' golang-go))"
    echo "reflect2: Debian golang-github-modern-go-reflect2-dev $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
    echo "built: $(date -u +%FT%TZ) in $(since "$t0")"
  } >"$BIN/kubernetes.build-info"
  log "built $(head -1 "$BIN/kubernetes.build-info") in $(since "$t0")"
  # The 2+ GB tree is only needed to build again; the tarball stays for that.
  rm -rf "$build"
}

kubectl_bin() {
  if [ -n "${LARDER_KUBECTL:-}" ]; then echo "$LARDER_KUBECTL"
  elif [ -x /usr/bin/kubectl ]; then echo /usr/bin/kubectl
  elif [ -x "$BIN/kubectl-1.20" ]; then echo "$BIN/kubectl-1.20"
  else die "no kubectl (run: $SELF ensure)"
  fi
}

ensure_kubectl() {
  if [ -x /usr/bin/kubectl ] || [ -x "$BIN/kubectl-1.20" ]; then
    log "kubectl: $(kubectl_bin)"
    return
  fi
  log "kubectl: extracting the 1.20 client from Debian's kubernetes-client .deb"
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    apt-get download "kubernetes-client=$K8S_DEB_VERSION" 2>/dev/null || {
      apt-get update -qq
      apt-get download "kubernetes-client=$K8S_DEB_VERSION" || apt-get download kubernetes-client
    }
    dpkg-deb -x kubernetes-client_*.deb x
  )
  mkdir -p "$BIN"
  cp "$tmp/x/usr/bin/kubectl" "$BIN/kubectl-1.20"
  echo "Debian $(basename "$(compgen -G "$tmp/kubernetes-client_*.deb" | head -1)" .deb)" >"$BIN/kubectl.build-info"
  rm -rf "$tmp"
}

# k8s.io/apiextensions-apiserver (1.36) from Debian sid's golang-*-dev packages, only
# unpacked under $SID (nothing from sid is installed), built in GOPATH mode with sid's Go.
# Runs as its own process (`__build-ext`) so `set -e` holds inside and its failure is
# handled by the caller.
build_ext() {
  local conf gov devver gitver minor patch t0 took closure=$SID/closure-versions.txt.new
  conf=$(private_apt sid "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR sid main")
  export APT_CONFIG=$conf
  log "sid: apt-get update (private configuration)"
  apt-get update -qq
  apt-get install -s --no-install-recommends golang-k8s-apiextensions-apiserver-dev golang-go \
    | awk '/^Inst golang-/{v=$3; gsub(/[()]/,"",v); print $2, v}' >"$closure"
  [ -s "$closure" ] || { echo "empty closure" >&2; exit 1; }
  devver=$(awk '$1=="golang-k8s-apiextensions-apiserver-dev"{print $2}' "$closure")
  [ -n "$devver" ] || { echo "golang-k8s-apiextensions-apiserver-dev not in closure" >&2; exit 1; }
  log "sid: downloading $(wc -l <"$closure") golang-* packages (apiextensions-apiserver-dev $devver)"
  rm -rf "$SID/debs" "$SID/root"
  mkdir -p "$SID/debs" "$SID/root"
  # shellcheck disable=SC2046 # one package name per word
  (cd "$SID/debs" && apt-get download -qq $(awk '{print $1"="$2}' "$closure"))
  local d
  for d in "$SID"/debs/*.deb; do dpkg-deb -x "$d" "$SID/root"; done
  gov=$(find "$SID/root/usr/lib" -maxdepth 1 -name 'go-1.*' -type d | sort -V | tail -1)
  [ -n "$gov" ] || { echo "no Go toolchain among the sid packages" >&2; exit 1; }
  # 0.36.4-1 -> v1.36.4
  gitver=${devver#*:}; gitver=${gitver%%-*}; gitver=${gitver%%+*}; gitver=${gitver%%~*}
  minor=$(echo "$gitver" | cut -d. -f2); patch=$(echo "$gitver" | cut -d. -f3)
  gitver=v1.$minor.$patch
  export GOROOT=$gov GOPATH=$SID/root/usr/share/gocode GO111MODULE=off GOFLAGS= GOTOOLCHAIN=local \
    CGO_ENABLED=0 GOCACHE=$SID/gocache PATH=$gov/bin:$PATH HOME=$DIR/home
  unset GOBIN
  log "build apiextensions-apiserver $gitver with $(go version | awk '{print $3}') (nice; 3-5 min)"
  t0=$(now)
  (cd "$GOPATH/src/k8s.io/apiextensions-apiserver" &&
    nice -n 19 go build -o "$BIN/apiextensions-apiserver.new" -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$gitver -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$minor" .)
  took=$(since "$t0")
  {
    echo "apiextensions-apiserver $gitver"
    echo "source: Debian sid golang-k8s-apiextensions-apiserver-dev $devver + $(($(wc -l <"$closure") - 1)) golang-* packages (list: $SID/closure-versions.txt)"
    echo "go: $(go version | awk '{print $3}') (Debian sid $(awk '$1 ~ /^golang-1\.[0-9]+-go$/{print $1, $2}' "$closure" | sort -V | tail -1))"
    echo "built: $(date -u +%FT%TZ) in $took"
  } >"$BIN/apiextensions-apiserver.build-info"
  mv "$closure" "$SID/closure-versions.txt"
  mv "$BIN/apiextensions-apiserver.new" "$BIN/apiextensions-apiserver"
  rm -rf "$SID/root" "$SID/gocache" "$SID/debs"
  log "built $(head -1 "$BIN/apiextensions-apiserver.build-info") in $took"
}

ensure_ext() {
  local failed=$DIR/ext-build-failed
  if [ -x "$BIN/apiextensions-apiserver" ]; then
    log "apiextensions-apiserver: built ($(head -1 "$BIN/apiextensions-apiserver.build-info" 2>/dev/null || echo '?'))"
    return
  fi
  if [ "${LARDER_KUBE_DISABLE_CEL:-0}" = 1 ]; then
    log "apiextensions-apiserver: not built (LARDER_KUBE_DISABLE_CEL=1)"
    return
  fi
  if [ -f "$failed" ] && [ "${LARDER_KUBE_RETRY_EXT:-0}" != 1 ] &&
     [ $(($(date +%s) - $(stat -c %Y "$failed"))) -lt 86400 ]; then
    warn "apiextensions-apiserver build failed at $(head -1 "$failed"); not retrying for 24 h (LARDER_KUBE_RETRY_EXT=1 retries now). CRDs go to the plain 1.20 server: NO CEL validation."
    return
  fi
  log "apiextensions-apiserver: building from Debian sid (log: $LOGS/build-apiextensions.log)"
  mkdir -p "$SID"
  if bash "$SELF" __build-ext >"$LOGS/build-apiextensions.log" 2>&1; then
    rm -f "$failed"
    grep '^===' "$LOGS/build-apiextensions.log" | tail -1
  else
    date -u +%FT%TZ >"$failed"
    tail -40 "$LOGS/build-apiextensions.log" >>"$failed"
    {
      echo
      echo "################################################################################"
      echo "WARNING: the apiextensions-apiserver (1.36, CEL) build FAILED. Last lines:"
      tail -25 "$LOGS/build-apiextensions.log"
      echo "Carrying on with the plain kube-apiserver 1.20: CRDs are installed there and"
      echo "their x-kubernetes-validations (CEL) rules are NOT enforced. Full log:"
      echo "  $LOGS/build-apiextensions.log"
      echo "################################################################################"
      echo
    } >&2
  fi
}

write_versions() {
  local f=$DIR/versions.txt k
  k=$(kubectl_bin)
  {
    echo "# Larder kube test environment, recorded $(date -u +%FT%TZ) by e2e/kube/testenv.sh ensure"
    echo "[kube-apiserver, kube-controller-manager]"; cat "$BIN/kubernetes.build-info"
    echo "[etcd]"; echo "$("$ETCD_BIN" --version | head -1) (Debian etcd-server $(dpkg-query -W -f='${Version}' etcd-server 2>/dev/null || echo '?'))"
    echo "[apiextensions-apiserver]"
    if [ -f "$BIN/apiextensions-apiserver.build-info" ] && [ -x "$BIN/apiextensions-apiserver" ]; then
      cat "$BIN/apiextensions-apiserver.build-info"
    else
      echo "not built, no CEL: $(sed 's/^/build failed at /;q' "$DIR/ext-build-failed" 2>/dev/null || echo 'LARDER_KUBE_DISABLE_CEL=1')"
    fi
    echo "[kubectl]"; echo "$k: $("$k" version --client 2>/dev/null | head -1)$([ "$k" = "$BIN/kubectl-1.20" ] && echo " ($(cat "$BIN/kubectl.build-info" 2>/dev/null))")"
  } >"$f"
  log "versions recorded in $f"
}

do_ensure() {
  lock
  mkdir -p "$SRC" "$BIN" "$LOGS"
  local t0
  t0=$(now)
  ensure_apt
  ensure_k8s_source
  ensure_k8s_build
  ensure_kubectl
  ensure_ext
  write_versions
  log "ensure done in $(since "$t0")"
}

# ---------------------------------------------------------------------------------------
# certificates, kubeconfigs

ensure_certs() {
  [ -f "$PKI/.done" ] && return
  log "generate PKI in $PKI"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=larder-testenv-ca" 2>/dev/null
    mk() { # name subject [subjectAltName]
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      if [ -n "${3:-}" ]; then
        printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
      else
        printf 'extendedKeyUsage=clientAuth\n' >"$1.ext"
      fi
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 -extfile "$1.ext" 2>/dev/null
    }
    mk apiserver /CN=kube-apiserver "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    mk admin "/O=system:masters/CN=admin"
    mk kcm /CN=system:kube-controller-manager
    mk front-proxy-client /CN=front-proxy-client
    mk apiext /CN=apiext "DNS:apiext.kube-system.svc,DNS:localhost,IP:127.0.0.1"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    openssl rand -hex 24 >admin.token
    echo "$(cat admin.token),admin-token-user,1000,system:masters" >tokens.csv
    chmod 600 ./*.key admin.token tokens.csv
    touch .done
  )
}

write_kubeconfig() { # file port user cert
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: larder-testenv
  cluster: {server: "https://127.0.0.1:$2", certificate-authority: "$PKI/ca.crt"}
users:
- name: $3
  user: {client-certificate: "$PKI/$4.crt", client-key: "$PKI/$4.key"}
contexts:
- name: larder-testenv
  context: {cluster: larder-testenv, user: $3}
current-context: larder-testenv
EOF
}

# ---------------------------------------------------------------------------------------
# processes

marker_of() { # a string only this environment's process of that component has in its command line
  case $1 in
    etcd) echo "$RUN/etcd-data" ;;
    *) echo "$BIN/$1" ;;
  esac
}

pid_of() { # component -> pid when running (and really that process)
  local f=$RUN/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(marker_of "$1")" || return 1
  echo "$pid"
}

curl_admin() { curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"; }

healthy() {
  case $1 in
    etcd) curl -fsS --max-time 3 "http://127.0.0.1:$ETCD_PORT/health" ;;
    kube-apiserver) curl_admin "https://127.0.0.1:$APISERVER_PORT/readyz" ;;
    kube-controller-manager) curl -fsSk --max-time 3 "https://127.0.0.1:$KCM_PORT/healthz" ;;
    apiextensions-apiserver) curl_admin "https://127.0.0.1:$EXT_PORT/readyz" ;;
  esac >/dev/null 2>&1
}

port_of() {
  case $1 in
    etcd) echo "$ETCD_PORT" ;;
    kube-apiserver) echo "$APISERVER_PORT" ;;
    kube-controller-manager) echo "$KCM_PORT" ;;
    apiextensions-apiserver) echo "$EXT_PORT" ;;
  esac
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Components the next `up` should run.
wanted() {
  printf "%s\n" etcd kube-apiserver
  [ "$KCM_ENABLED" = 1 ] && echo kube-controller-manager
  [ "${LARDER_KUBE_DISABLE_CEL:-0}" != 1 ] && [ -x "$BIN/apiextensions-apiserver" ] && echo apiextensions-apiserver
  return 0
}

alive() { # pid: running and not a zombie (pid_of may not match yet: before exec)
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

wait_healthy() { # component seconds
  local i pid
  pid=$(cat "$RUN/$1.pid")
  for ((i = 0; i < $2 * 5; i++)); do
    healthy "$1" && return 0
    alive "$pid" || { echo "$1 exited; last log lines:" >&2; tail -20 "$RUN/$1.log" >&2; return 1; }
    sleep 0.2
  done
  echo "$1 not healthy after $2 s; last log lines:" >&2
  tail -20 "$RUN/$1.log" >&2
  return 1
}

start() { # component command...: in its own session, so a Ctrl-C meant for the tests
  local c=$1 #                        does not reach it (`down` stops it, in order)
  shift
  setsid "$@" </dev/null >"$RUN/$c.log" 2>&1 8>&- &
  echo $! >"$RUN/$c.pid"
}

stop_one() { # component: SIGTERM, then SIGKILL after 10 s
  local pid i t0
  if pid=$(pid_of "$1"); then
    t0=$(now)
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      kill -9 "$pid" 2>/dev/null || true
      echo "killed -9 $1 ($pid)"
    else
      echo "stopped $1 ($pid, $(since "$t0"))"
    fi
  fi
  rm -f "$RUN/$1.pid"
}

stop_all() {
  local c
  for c in "${COMPONENTS[@]}"; do stop_one "$c"; done
}

proc_start_time() { [ -r "/proc/$1/stat" ] && sed 's/^.*) //' "/proc/$1/stat" | awk '{print $20}'; }

live_leases() {
  local f pid
  for f in "$RUN"/leases/*; do
    [ -f "$f" ] || continue
    pid=$(basename "$f")
    if [ "$(proc_start_time "$pid" || true)" = "$(cat "$f")" ]; then echo "$pid"; else rm -f "$f"; fi
  done
}

add_lease() {
  mkdir -p "$RUN/leases"
  proc_start_time "$1" >"$RUN/leases/$1" || die "--lease $1: no such process"
}

parse_lease() { # args -> LEASE
  LEASE=
  while [ $# -gt 0 ]; do
    case $1 in
      --lease) LEASE=${2:?--lease PID}; shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
}

do_up() {
  parse_lease "$@"
  lock
  for f in "$BIN/kube-apiserver" "$BIN/kube-controller-manager"; do
    [ -x "$f" ] || die "$f missing (run: $SELF ensure)"
  done
  command -v "$ETCD_BIN" >/dev/null || die "$ETCD_BIN missing (run: $SELF ensure)"
  mkdir -p "$RUN"
  ensure_certs
  local want c f all=1 any=0
  want=$(wanted)
  for c in "${COMPONENTS[@]}"; do
    if pid_of "$c" >/dev/null; then
      any=1
      grep -qx "$c" <<<"$want" || all=0
    fi
  done
  for c in $want; do healthy "$c" && pid_of "$c" >/dev/null || all=0; done
  if [ "$KCM_ENABLED" = 1 ] && [ "$(cat "$RUN/kcm-controllers" 2>/dev/null)" != "$KCM_CONTROLLERS" ]; then all=0; fi
  if [ "$any" = 1 ] && [ "$all" = 1 ]; then
    if [ -n "$LEASE" ]; then add_lease "$LEASE"; else echo manual >"$RUN/owner"; fi
    log "already up and healthy ($(echo "$want" | tr '\n' ' ')); nothing to do"
    return
  fi
  if [ "$any" = 1 ]; then
    log "partly running or unhealthy: restarting"
    stop_all
  fi
  for c in $want; do
    if port_busy "$(port_of "$c")"; then
      die "port $(port_of "$c") (for $c) is already in use by another process; set LARDER_KUBE_*_PORT"
    fi
  done
  if port_busy "$ETCD_PEER_PORT"; then die "port $ETCD_PEER_PORT (etcd peer) is already in use"; fi
  rm -rf "$RUN/leases" "$RUN/no-cel" "$RUN/owner" "$RUN/etcd-data" "$RUN/kcm-controllers"
  if [ -n "$LEASE" ]; then echo lease >"$RUN/owner"; add_lease "$LEASE"; else echo manual >"$RUN/owner"; fi
  write_kubeconfig "$DIR/admin.kubeconfig" "$APISERVER_PORT" admin admin
  write_kubeconfig "$DIR/kcm.kubeconfig" "$APISERVER_PORT" system:kube-controller-manager kcm

  local t0 t_all
  t_all=$(now)
  t0=$(now)
  start etcd "$ETCD_BIN" --name larder-testenv --data-dir "$RUN/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "larder-testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=$((2 * 1024 * 1024 * 1024))
  wait_healthy etcd 30 || { stop_all; die "etcd did not start"; }
  log "etcd up on 127.0.0.1:$ETCD_PORT ($(since "$t0"))"

  t0=$(now)
  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" --insecure-port 0 \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC --allow-privileged=true --endpoint-reconciler-type none \
    --requestheader-client-ca-file "$PKI/ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --disable-admission-plugins ServiceAccount
  wait_healthy kube-apiserver 120 || { stop_all; die "kube-apiserver did not start"; }
  log "kube-apiserver up on 127.0.0.1:$APISERVER_PORT ($(since "$t0") to /readyz)"

  if [ "$KCM_ENABLED" = 1 ]; then
    t0=$(now)
    start kube-controller-manager "$BIN/kube-controller-manager" \
      --kubeconfig "$DIR/kcm.kubeconfig" --authentication-kubeconfig "$DIR/kcm.kubeconfig" \
      --authorization-kubeconfig "$DIR/kcm.kubeconfig" \
      --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --port 0 \
      --leader-elect=false --use-service-account-credentials=true \
      --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
      --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
      --controllers "$KCM_CONTROLLERS"
    echo "$KCM_CONTROLLERS" >"$RUN/kcm-controllers"
    wait_healthy kube-controller-manager 60 || { stop_all; die "kube-controller-manager did not start"; }
    log "kube-controller-manager up on 127.0.0.1:$KCM_PORT ($(since "$t0"); controllers $KCM_CONTROLLERS)"
  fi

  if grep -qx apiextensions-apiserver <<<"$want"; then
    t0=$(now)
    start apiextensions-apiserver "$BIN/apiextensions-apiserver" \
      --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
      --bind-address 127.0.0.1 --secure-port "$EXT_PORT" \
      --tls-cert-file "$PKI/apiext.crt" --tls-private-key-file "$PKI/apiext.key" \
      --kubeconfig "$DIR/admin.kubeconfig" --authentication-kubeconfig "$DIR/admin.kubeconfig" \
      --authorization-kubeconfig "$DIR/admin.kubeconfig" --client-ca-file "$PKI/ca.crt" \
      --disable-admission-plugins ValidatingAdmissionPolicy,MutatingAdmissionPolicy \
      --enable-priority-and-fairness=false
    if wait_healthy apiextensions-apiserver 60; then
      log "apiextensions-apiserver $(head -1 "$BIN/apiextensions-apiserver.build-info" | awk '{print $2}') up on 127.0.0.1:$EXT_PORT ($(since "$t0"))"
    else
      stop_one apiextensions-apiserver
      echo "apiextensions-apiserver did not start (log: $RUN/apiextensions-apiserver.log)" >"$RUN/no-cel"
    fi
  elif [ "${LARDER_KUBE_DISABLE_CEL:-0}" = 1 ]; then
    echo "LARDER_KUBE_DISABLE_CEL=1" >"$RUN/no-cel"
  else
    echo "apiextensions-apiserver not built: $(head -1 "$DIR/ext-build-failed" 2>/dev/null | sed 's/^/build failed at /' || true)" >"$RUN/no-cel"
  fi
  if [ -f "$RUN/no-cel" ]; then
    write_kubeconfig "$DIR/admin-ext.kubeconfig" "$APISERVER_PORT" admin admin
    {
      echo "################################################################################"
      echo "WARNING: NO CEL. $(cat "$RUN/no-cel")"
      echo "CRDs go to kube-apiserver 1.20, which drops x-kubernetes-validations silently."
      echo "################################################################################"
    } >&2
  else
    write_kubeconfig "$DIR/admin-ext.kubeconfig" "$EXT_PORT" admin admin
  fi
  log "up in $(since "$t_all"): KUBECONFIG=$DIR/admin.kubeconfig"
}

do_down() {
  parse_lease "$@"
  lock
  mkdir -p "$RUN"
  if [ -n "$LEASE" ]; then
    rm -f "$RUN/leases/$LEASE"
    local others
    others=$(live_leases | tr '\n' ' ')
    if [ -n "$others" ]; then
      log "still used by pid(s) $others: leaving it running"
      return
    fi
    if [ "$(cat "$RUN/owner" 2>/dev/null)" = manual ]; then
      log "started by hand (testenv.sh up): leaving it running"
      return
    fi
  fi
  stop_all
  rm -rf "$RUN/leases" "$RUN/owner" "$RUN/etcd-data"
}

# ---------------------------------------------------------------------------------------
# CRDs

KUBECTL=
k() { "$KUBECTL" --kubeconfig "$DIR/admin.kubeconfig" "$@"; }

# api METHOD URL [json-file] -> sets CODE; response body in $BODY; prints server warnings
api() {
  local data=()
  [ $# -lt 3 ] || data=(--data-binary "@$3")
  : >"$WORK/headers"
  CODE=$(curl -sS --max-time 30 -o "$BODY" -D "$WORK/headers" -w '%{http_code}' -X "$1" \
    --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    -H 'Content-Type: application/json' -H 'Accept: application/json' \
    "${data[@]}" "$2" 2>"$BODY.err") || { CODE=000; cat "$BODY.err" >>"$BODY"; }
  grep -i '^warning:' "$WORK/headers" | sed 's/^/  server /' >&2 || true
}

server_message() {
  if jq -e . "$BODY" >/dev/null 2>&1; then jq -r '.message // tostring' "$BODY"; else head -c 2000 "$BODY"; fi
}

aggregate() { # group version: APIService in kube-apiserver -> ExternalName Service -> localhost:$EXT_PORT
  local ca
  ca=$(base64 -w0 <"$PKI/ca.crt")
  printf '%s\n' \
    'apiVersion: v1' 'kind: Service' 'metadata: {name: apiext, namespace: kube-system}' \
    'spec: {type: ExternalName, externalName: localhost}' '---' \
    'apiVersion: apiregistration.k8s.io/v1' 'kind: APIService' "metadata: {name: $2.$1}" 'spec:' \
    "  group: $1" "  version: $2" "  service: {namespace: kube-system, name: apiext, port: $EXT_PORT}" \
    "  caBundle: $ca" '  groupPriorityMinimum: 1000' '  versionPriority: 15' |
    k apply -f - >/dev/null
}

install_crd() { # json-file source-file
  local f=$1 src=$2 name group plural base url strict action old_served new_served v i t0 err
  t0=$(now)
  name=$(jq -r '.metadata.name // empty' "$f")
  group=$(jq -r '.spec.group // empty' "$f")
  plural=$(jq -r '.spec.names.plural // empty' "$f")
  [ -n "$name" ] && [ -n "$group" ] && [ -n "$plural" ] || die "$src: CRD without metadata.name, spec.group or spec.names.plural"
  if [ "$CEL" = 1 ]; then
    base=https://127.0.0.1:$EXT_PORT
    strict='?fieldValidation=Strict'
  else
    base=https://127.0.0.1:$APISERVER_PORT
    strict=
  fi
  url=$base/apis/apiextensions.k8s.io/v1/customresourcedefinitions
  old_served=
  api POST "$url$strict" "$f"
  action=created
  if [ "$CODE" = 409 ]; then
    action=replaced
    for i in 1 2 3 4 5; do
      api GET "$url/$name"
      [ "$CODE" = 200 ] || break
      old_served=$(jq -r '.spec.versions[] | select(.served) | .name' "$BODY")
      jq --arg rv "$(jq -r .metadata.resourceVersion "$BODY")" '.metadata.resourceVersion = $rv' "$f" >"$f.put"
      api PUT "$url/$name$strict" "$f.put"
      [ "$CODE" = 409 ] || break
      sleep 0.2
    done
  fi
  case $CODE in
    200 | 201) ;;
    *) die "$src: the server REJECTED CRD $name (HTTP $CODE, on ${action%d}): $(server_message)" ;;
  esac
  for ((i = 0; i < 300; i++)); do
    api GET "$url/$name"
    jq -e '.status.conditions[]? | select(.type == "Established" and .status == "True")' "$BODY" >/dev/null 2>&1 && break
    if jq -e '.status.conditions[]? | select(.type == "NamesAccepted" and .status == "False")' "$BODY" >/dev/null 2>&1; then
      die "$src: CRD $name: names not accepted: $(jq -r '.status.conditions[] | select(.type == "NamesAccepted") | .message' "$BODY")"
    fi
    sleep 0.2
  done
  [ "$i" -lt 300 ] || die "$src: CRD $name not Established after 60 s: $(jq -c '.status.conditions' "$BODY" 2>/dev/null)"
  new_served=$(jq -r '.spec.versions[] | select(.served) | .name' "$f")
  if [ "$CEL" = 1 ]; then
    for v in $new_served; do aggregate "$group" "$v"; done
    for v in $old_served; do
      grep -qx "$v" <<<"$new_served" || k delete apiservice "$v.$group" --ignore-not-found >/dev/null
    done
  elif jq -e '[.. | objects | has("x-kubernetes-validations")] | any' "$f" >/dev/null; then
    warn "$src: CRD $name has x-kubernetes-validations (CEL) rules, NOT enforced here (no CEL: $(cat "$RUN/no-cel"))"
  fi
  # Served through kube-apiserver for real (an Available APIService is not enough).
  for v in $new_served; do
    for ((i = 0; i < 300; i++)); do
      err=$(k get --raw "/apis/$group/$v/$plural?limit=1" 2>&1 >/dev/null) && break
      sleep 0.2
    done
    [ "$i" -lt 300 ] || die "$src: /apis/$group/$v/$plural not served by kube-apiserver after 60 s: $err"
  done
  log "CRD $name $action on $([ "$CEL" = 1 ] && echo "apiextensions-apiserver :$EXT_PORT" || echo "kube-apiserver :$APISERVER_PORT (no CEL)"); served at /apis/$group/{$(echo "$new_served" | paste -sd,)}/$plural ($(since "$t0"))"
}

do_install_crds() {
  [ $# -gt 0 ] || die "usage: $SELF install-crds FILE|DIR..."
  lock
  healthy kube-apiserver || die "kube-apiserver is not up (run: $SELF up)"
  CEL=1
  [ -f "$RUN/no-cel" ] && CEL=0
  if [ "$CEL" = 1 ]; then healthy apiextensions-apiserver || die "apiextensions-apiserver is not up (run: $SELF up)"; fi
  KUBECTL=$(kubectl_bin)
  local p f args=() tmp
  for p in "$@"; do
    if [ -d "$p" ]; then
      while IFS= read -r f; do args+=("D:$f"); done < <(find "$p" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
    elif [ -f "$p" ]; then
      args+=("E:$p")
    else
      die "$p: no such file or directory"
    fi
  done
  [ ${#args[@]} -gt 0 ] || { log "no CRD files in $*"; return; }
  tmp=$(mktemp -d)
  WORK=$tmp
  trap 'rm -rf "$WORK"' EXIT
  BODY=$tmp/body
  # YAML -> one JSON file per CRD (duplicate keys are errors, as with a strict server).
  python3 - "$tmp" "${args[@]}" >"$tmp/index" <<'PY' || die "cannot read the CRD files"
import json, os, sys
import yaml

class Loader(yaml.SafeLoader):
    pass

def mapping(loader, node, deep=False):
    seen = set()
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % (key,), k.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)

Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
out, n, bad = sys.argv[1], 0, False
for arg in sys.argv[2:]:
    kind, path = arg[0], arg[2:]
    try:
        with open(path) as fh:
            docs = [d for d in yaml.load_all(fh, Loader=Loader) if d is not None]
    except yaml.YAMLError as e:
        print("%s: %s" % (path, e), file=sys.stderr)
        bad = True
        continue
    crds = [d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
    for d in crds:
        if d.get("apiVersion") != "apiextensions.k8s.io/v1":
            print("%s: CRD %s has apiVersion %s; only apiextensions.k8s.io/v1 is served"
                  % (path, d.get("metadata", {}).get("name"), d.get("apiVersion")), file=sys.stderr)
            bad = True
            continue
        n += 1
        name = os.path.join(out, "%03d.json" % n)
        with open(name, "w") as fh:
            json.dump(d, fh, default=str)
        print("%s\t%s" % (name, path))
    if len(crds) < len(docs):
        print("%s: %d document(s) that are not CustomResourceDefinitions skipped"
              % (path, len(docs) - len(crds)), file=sys.stderr)
    if not crds and kind == "E":
        print("%s: no CustomResourceDefinition in it" % path, file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
PY
  local json src
  while IFS=$'\t' read -r json src; do
    install_crd "$json" "$src"
  done <"$tmp/index"
}

# ---------------------------------------------------------------------------------------
# env, status

do_env() {
  [ -f "$DIR/admin.kubeconfig" ] && healthy kube-apiserver || die "not up (run: $SELF up)"
  local cel=1
  [ -f "$RUN/no-cel" ] && cel=0
  printf 'export KUBECONFIG=%q\n' "$DIR/admin.kubeconfig"
  printf 'export LARDER_KUBE_TESTENV=1\n'
  printf 'export LARDER_KUBE_TESTENV_DIR=%q\n' "$DIR"
  printf 'export LARDER_KUBE_EXT_KUBECONFIG=%q\n' "$DIR/admin-ext.kubeconfig"
  printf 'export LARDER_KUBE_CEL=%s\n' "$cel"
}

do_status() {
  local c pid up=0 down=0 want
  want=$(wanted)
  [ -f "$RUN/no-cel" ] && want=$(grep -vx apiextensions-apiserver <<<"$want")
  echo "directory: $DIR"
  for c in etcd kube-apiserver kube-controller-manager apiextensions-apiserver; do
    if pid=$(pid_of "$c"); then
      if healthy "$c"; then
        printf '  %-24s running, healthy (pid %s, 127.0.0.1:%s)\n' "$c" "$pid" "$(port_of "$c")"
        up=$((up + 1))
      else
        printf '  %-24s running but NOT healthy (pid %s, 127.0.0.1:%s; log %s)\n' "$c" "$pid" "$(port_of "$c")" "$RUN/$c.log"
        down=$((down + 1))
      fi
    else
      printf '  %-24s stopped\n' "$c"
      grep -qx "$c" <<<"$want" && down=$((down + 1))
    fi
  done
  if [ "$up" = 0 ]; then
    echo "state: down"
    return 3
  fi
  if [ -f "$RUN/no-cel" ]; then
    echo "CEL: NO ($(cat "$RUN/no-cel")); CRDs live in kube-apiserver 1.20"
  elif ! pid_of apiextensions-apiserver >/dev/null; then
    echo "CEL: expected, but apiextensions-apiserver is NOT running"
  else
    echo "CEL: yes (CRDs live in apiextensions-apiserver, aggregated into kube-apiserver)"
  fi
  echo "started by: $(cat "$RUN/owner" 2>/dev/null || echo '?')$(l=$(live_leases | tr '\n' ' '); [ -n "$l" ] && echo "; used by pid(s) $l")"
  echo "KUBECONFIG=$DIR/admin.kubeconfig"
  if [ "$down" = 0 ]; then
    echo "state: up"
  else
    echo "state: partly up (run: $SELF up)"
    return 1
  fi
}

case "${1:-}" in
  ensure) do_ensure ;;
  up) shift; do_up "$@" ;;
  install-crds) shift; do_install_crds "$@" ;;
  down) shift; do_down "$@" ;;
  env) do_env ;;
  status) do_status ;;
  __build-ext) build_ext ;;
  *) echo "usage: $0 ensure | up [--lease PID] | install-crds PATH... | down [--lease PID] | env | status" >&2; exit 2 ;;
esac
