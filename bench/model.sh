#!/usr/bin/env bash
# Model update cost (ns/sample, target <= 200) and size_of the per-series state (<= 256 B,
# aim 128). Usage: bench/model.sh [SERIES] [ROUNDS]   (default 100000 series x 100 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -j1 --quiet --example model_bench -- "${1:-100000}" "${2:-100}"
