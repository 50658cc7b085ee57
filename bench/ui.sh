#!/usr/bin/env bash
# Write-path cost of the page's record of recent values (`ui:`): ns per sample of
# Pipeline::build + commit with the page off, on (500 series tracked), on (all tracked).
# Usage: bench/ui.sh [SERIES] [ROUNDS]   (default 20000 series x 60 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -j1 --quiet --example ui_bench -- "${1:-20000}" "${2:-60}"
