#!/usr/bin/env bash
# Pass-through benchmark: omen vs vmagent with the same 50 % whitelist, same
# workload (rwload, 100k series x 30 samples), same run, each proxy pinned to
# its own core. Prints server CPU-seconds per 1 M input samples, the ratio,
# peak RSS, and the samples the sink received (asserted equal to the kept
# samples). With --models, omen models every kept series (outputs: score) and
# the sink must also hold exactly the derived samples (see passthrough.py).
#
#   bench/passthrough.sh [--repeat N] [--workload 100k|1m] [--models]
#
# RWLOAD_SRC (default ../shared/rwload) is copied to OMEN_BENCH_DIR (default
# $TMPDIR/omen-bench), since shared/ is read-only, and built there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

source bench/build.sh
scripts/install-deps.sh
bench_build passthrough
echo "passthrough: vmagent (victoria-metrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo "?")), $("$omen" --version)"
exec python3 bench/passthrough.py \
    --rwload "$rwload" \
    --peers "$peers" \
    --omen "$omen" \
    --work "$work/runs" \
    "$@"
