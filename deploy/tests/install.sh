#!/usr/bin/env bash
# Installs what deploy/tests/run.sh needs: promtool (Debian's `prometheus`),
# kubectl for `kubectl kustomize` (preinstalled on the project's machines;
# Debian's `kubernetes-client` otherwise), and kubernetes-validate with its
# bundled Kubernetes schemas (validation works offline) in the project's .venv.
# Idempotent, and fast when everything is present.
set -euo pipefail
cd "$(dirname "$0")/../.."

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
pkgs=()
command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)
command -v python3 >/dev/null 2>&1 || pkgs+=(python3 python3-venv)
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "deploy/tests/install: installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null
fi

# The venv is gitignored (/.venv); versions pinned so the schemas do not move.
KV_VERSION=1.37.0
if ! .venv/bin/python -c "import kubernetes_validate, yaml, sys; sys.exit(kubernetes_validate.__version__ != '$KV_VERSION')" 2>/dev/null; then
    python3 -m venv .venv 2>/dev/null || {
        # Debian's python3 needs python3-venv for ensurepip.
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends python3-venv </dev/null
        python3 -m venv .venv
    }
    .venv/bin/pip install -q "kubernetes-validate==$KV_VERSION" "pyyaml>=6"
fi
echo "deploy/tests/install: promtool, kubectl, kubernetes-validate $KV_VERSION present"
