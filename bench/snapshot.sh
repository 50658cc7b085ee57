#!/usr/bin/env bash
# Snapshot write/restore time and file size for N models (default 1 M; targets on a
# 2-core machine: <= 3 s each, file <= 1.5 x the in-memory state).
# Usage: bench/snapshot.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet --example snapshot_bench -- "${1:-1000000}"
