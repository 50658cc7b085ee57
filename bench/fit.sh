#!/usr/bin/env bash
# Background fit cost (ms per series fit, augurs stages) and the fitting pool's measured CPU
# share under the default budget (0.25 core). Usage: bench/fit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -j1 --quiet --example fit_bench
