#!/usr/bin/env bash
# RSS growth per modeled series: `rwload send --series 1000000 --samples-per-series 3`
# through omen with every series modeled, against a baseline run without a model rule in the
# same run (see bench/model_rss.py for what each run holds and how the fit history store,
# bounded separately by models.fit.history_bytes, is accounted).
#
#   bench/model_rss.sh [--repeat N]
#
# RWLOAD_SRC and OMEN_BENCH_DIR as for bench/passthrough.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

source bench/build.sh
bench_build model_rss
exec python3 bench/model_rss.py \
    --rwload "$rwload" \
    --peers "$peers" \
    --omen "$omen" \
    --work "$work/runs" \
    "$@"
