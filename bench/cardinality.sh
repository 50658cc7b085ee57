#!/usr/bin/env bash
# Cardinality benchmark: 10 M distinct new series over one run (rwload send in
# rounds with --series-offset) through omen with a small models.max_series and
# route cache, to rwload's null sink. Prints omen's peak RSS (VmHWM) against a
# bound derived from max_series and route_cache_size (see bench/cardinality.py),
# the evictions, and fails if omen stopped answering, lost a sample or went
# over the bound. A benchmark, not a timed test: takes a few minutes.
#
#   bench/cardinality.sh [--series 10000000] [--round 500000] [--max-series 100000] [--route-cache 200000]
#
# RWLOAD_SRC (default ../shared/rwload) is copied to OMEN_BENCH_DIR (default
# $TMPDIR/omen-bench), since shared/ is read-only, and built there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

src="${RWLOAD_SRC:-$root/../shared/rwload}"
work="${OMEN_BENCH_DIR:-${TMPDIR:-/tmp}/omen-bench}"
[ -f "$src/Cargo.toml" ] || { echo "cardinality: no rwload at $src (set RWLOAD_SRC)" >&2; exit 1; }

echo "cardinality: building omen (release)"
cargo build --release --quiet
omen="${CARGO_TARGET_DIR:-$root/target}/release/omen"

echo "cardinality: building rwload from $src"
mkdir -p "$work/rwload"
cp -rp "$src/Cargo.toml" "$src/Cargo.lock" "$src/src" "$work/rwload/"
CARGO_TARGET_DIR="$work/rwload-target" cargo build --release --quiet --manifest-path "$work/rwload/Cargo.toml"

exec python3 bench/cardinality.py \
    --rwload "$work/rwload-target/release/rwload" \
    --omen "$omen" \
    --work "$work/cardinality" \
    "$@"
