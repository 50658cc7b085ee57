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

source bench/build.sh
bench_build cardinality
exec python3 bench/cardinality.py \
    --rwload "$rwload" \
    --omen "$omen" \
    --work "$work/cardinality" \
    "$@"
