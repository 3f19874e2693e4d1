#!/usr/bin/env bash
# The test command: sets up everything the tests need on a fresh machine
# (services, the Feast and schemathesis venvs, a real Kubernetes API server), then runs every
# test in the workspace. Arguments go to `cargo nextest run`.
#
# helm and kubectl for the packaging tests: scripts/k8s-tools.sh installs them (once,
# cached outside the clone); LARDER_HELM and LARDER_KUBECTL name them. promtool for the
# metrics lint: scripts/promtool.sh (Debian's, unpacked once); LARDER_PROMTOOL names it.
#
# Kubernetes (e2e/kube/README.md): unless KUBECONFIG is already set (tests then use
# that cluster, and installing CRDs is the caller's job) or LARDER_SKIP_KUBE=1,
# e2e/kube/testenv.sh builds (once, cached outside the clone) and starts a local
# kube-apiserver with CEL-validating CRDs, installs crds/*.yaml, exports KUBECONFIG,
# LARDER_KUBE_TESTENV=1, LARDER_KUBE_EXT_KUBECONFIG and LARDER_KUBE_CEL, and stops
# it again on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/services.sh
scripts/feast-venv.sh
# schemathesis, which fuzzes the feature server against its OpenAPI document (cached outside the clone).
scripts/schemathesis-venv.sh
# The OpenID provider the auth tests run (npm oidc-provider, cached outside the clone).
scripts/oidc-provider.sh install
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

if [ -n "${KUBECONFIG:-}" ]; then
  echo "kube: KUBECONFIG is set ($KUBECONFIG): cluster tests use that cluster; its CRDs are the caller's job"
elif [ "${LARDER_SKIP_KUBE:-0}" = 1 ]; then
  echo "kube: LARDER_SKIP_KUBE=1: no Kubernetes test environment; cluster tests will skip"
else
  testenv=e2e/kube/testenv.sh
  "$testenv" ensure
  # Stop it on exit, failed tests included, unless another test run still uses it or it
  # was started by hand (`testenv.sh up`).
  trap 'rc=$?; "$testenv" down --lease $$ || true; exit $rc' EXIT
  "$testenv" up --lease $$
  if [ -d crds ] && [ -n "$(find crds -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) -print -quit)" ]; then
    "$testenv" install-crds crds/
  fi
  kube_env=$("$testenv" env)
  eval "$kube_env"
  echo "kube: KUBECONFIG=$KUBECONFIG (CEL: $LARDER_KUBE_CEL)"
fi

# helm and kubectl (with kustomize) for the packaging tests (operator/tests/packaging.rs).
# Exported only now: testenv.sh above also reads LARDER_KUBECTL and keeps its own kubectl.
k8s_tools_bin=$(scripts/k8s-tools.sh)
export LARDER_HELM=${LARDER_HELM:-$k8s_tools_bin/helm} LARDER_KUBECTL=${LARDER_KUBECTL:-$k8s_tools_bin/kubectl}
# promtool for the metrics lint test (crates/cli/tests/metrics_e2e.rs): Debian's, unpacked
# into ~/.cache/larder/promtool unless one is on PATH.
if [ -z "${LARDER_PROMTOOL:-}" ]; then
  LARDER_PROMTOOL=$(scripts/promtool.sh)
  export LARDER_PROMTOOL
fi

cargo nextest run --workspace --no-fail-fast "$@"
