#!/usr/bin/env bash
# Installs what omen's tests and benchmarks need beyond the Rust toolchain:
# Debian's `prometheus` (sender and receiver in the end-to-end tests) and
# `victoria-metrics` (receiver in the end-to-end tests; its `vmagent` is the
# benchmark peer). Idempotent, and fast when everything is present.
set -euo pipefail

need=()
for bin in prometheus victoria-metrics vmagent; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v taskset >/dev/null 2>&1 || need+=(taskset)
# The page's browser test: headless Debian Chromium driven by playwright-core (npm).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -eq 0 ]; then
    echo "install-deps: prometheus, victoria-metrics, vmagent, python3, taskset, chromium, npm present"
    exit 0
fi

pkgs=()
for bin in "${need[@]}"; do
    case "$bin" in
        prometheus) pkgs+=(prometheus) ;;
        victoria-metrics|vmagent) pkgs+=(victoria-metrics) ;;
        python3) pkgs+=(python3) ;;
        taskset) pkgs+=(util-linux) ;;
        chromium) pkgs+=(chromium fonts-dejavu-core) ;;
        npm) pkgs+=(npm) ;;
    esac
done
# shellcheck disable=SC2207
pkgs=($(printf '%s\n' "${pkgs[@]}" | sort -u))
echo "install-deps: missing ${need[*]}; installing ${pkgs[*]}"

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to install ${pkgs[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
# No recommends: they would pull in node-exporter and its services.
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null

for bin in "${need[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || { echo "install-deps: $bin still missing after installing ${pkgs[*]}" >&2; exit 1; }
done
echo "install-deps: done ($(prometheus --version 2>&1 | head -1))"
