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

src="${RWLOAD_SRC:-$root/../shared/rwload}"
work="${OMEN_BENCH_DIR:-${TMPDIR:-/tmp}/omen-bench}"
[ -f "$src/Cargo.toml" ] || { echo "model_rss: no rwload at $src (set RWLOAD_SRC)" >&2; exit 1; }

echo "model_rss: building omen (release)"
cargo build --release --quiet
omen="${CARGO_TARGET_DIR:-$root/target}/release/omen"

echo "model_rss: building rwload from $src"
mkdir -p "$work/rwload"
cp -rp "$src/Cargo.toml" "$src/Cargo.lock" "$src/src" "$src/bench" "$work/rwload/"
CARGO_TARGET_DIR="$work/rwload-target" cargo build --release --quiet --manifest-path "$work/rwload/Cargo.toml"

exec python3 bench/model_rss.py \
    --rwload "$work/rwload-target/release/rwload" \
    --peers "$work/rwload/bench/peers.py" \
    --omen "$omen" \
    --work "$work/runs" \
    "$@"
