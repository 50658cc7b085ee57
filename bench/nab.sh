#!/usr/bin/env bash
# NAB quality: replays every file of the NAB development set through omen's model with ONE
# generic rule (no per-file or per-category settings, no labels read), then scores the output
# with the NAB v1.1 scorer. Usage: bench/nab.sh [OUTDIR]   (default: out/nab)
set -euo pipefail
cd "$(dirname "$0")/.."
NAB="${NAB:-../shared/nab}"
[ -d "$NAB/data" ] || NAB=/work/shared/nab
OUT="${1:-out/nab}"
shift || true
cargo build --release -j1 --quiet
SET=()
for kv in ${OMEN_SET:-}; do SET+=(--set "$kv"); done
rm -rf "$OUT"
mkdir -p "$OUT"
cat > "$OUT/omen.yaml" <<'YAML'
# One generic rule for every file; the downstream is never contacted by replay.
downstream:
  url: http://127.0.0.1:9009/api/v1/push
models:
  rules:
    - match: '{__name__=~".+"}'
      confidence: 0.99
      warmup: 30
      seasonality: auto
YAML
./target/release/omen replay --quiet --config "$OUT/omen.yaml" --out "$OUT/results" "${SET[@]}" "$NAB/data"
python3 "$NAB/score.py" "$OUT/results" "$@"
