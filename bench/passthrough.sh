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

src="${RWLOAD_SRC:-$root/../shared/rwload}"
work="${OMEN_BENCH_DIR:-${TMPDIR:-/tmp}/omen-bench}"
[ -f "$src/Cargo.toml" ] || { echo "passthrough: no rwload at $src (set RWLOAD_SRC)" >&2; exit 1; }

scripts/install-deps.sh

echo "passthrough: building omen (release)"
cargo build --release --quiet
omen="${CARGO_TARGET_DIR:-$root/target}/release/omen"

echo "passthrough: building rwload from $src"
mkdir -p "$work/rwload"
cp -rp "$src/Cargo.toml" "$src/Cargo.lock" "$src/src" "$src/bench" "$work/rwload/"
CARGO_TARGET_DIR="$work/rwload-target" cargo build --release --quiet --manifest-path "$work/rwload/Cargo.toml"

echo "passthrough: vmagent (victoria-metrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo "?")), $("$omen" --version)"
exec python3 bench/passthrough.py \
    --rwload "$work/rwload-target/release/rwload" \
    --peers "$work/rwload/bench/peers.py" \
    --omen "$omen" \
    --work "$work/runs" \
    "$@"
