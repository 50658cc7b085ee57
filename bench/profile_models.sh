#!/usr/bin/env bash
# Where omen's CPU goes with every kept series modeled: `perf record` on omen while
# `rwload send` (100k series x 30 samples) passes through it with the same whitelist and
# rule as `bench/passthrough.sh --models`; prints the top symbols (self time).
#
#   bench/profile_models.sh [OMEN_BIN]
#
# Needs perf and the rwload built by bench/passthrough.sh (OMEN_BENCH_DIR as there).
# Uses 127.0.0.1:9201 (sink) and :9202 (omen); stops both (by PID) at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${OMEN_BENCH_DIR:-${TMPDIR:-/tmp}/omen-bench}"
rw="$work/rwload-target/release/rwload"
omen="${1:-$root/target/release/omen}"
[ -x "$rw" ] || { echo "profile_models: run bench/passthrough.sh once to build rwload" >&2; exit 1; }
dir="$work/profile"
mkdir -p "$dir"
cat > "$dir/omen.yaml" <<'YAML'
server:
  listen: 127.0.0.1:9202
downstream:
  url: http://127.0.0.1:9201/api/v1/write
whitelist:
  - '{__name__=~"http_requests_total|node_cpu_seconds_total|container_memory_working_set_bytes|container_cpu_usage_seconds_total|grpc_server_handled_total|up"}'
models:
  rules:
    - match: '{__name__=~".+"}'
      outputs: [score]
      warmup: 1
YAML
"$rw" sink --listen 127.0.0.1:9201 > "$dir/sink.log" 2>&1 &
sink=$!
"$omen" serve --config "$dir/omen.yaml" > "$dir/omen.log" 2>&1 &
srv=$!
trap 'kill $srv $sink 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:9202/-/ready >/dev/null && break; sleep 0.2; done
perf record -F 999 -g --call-graph dwarf,16384 -p $srv -o "$dir/perf.data" 2> "$dir/perf.err" &
perf=$!
sleep 1
"$rw" send --url http://127.0.0.1:9202/api/v1/write --series 100000 --samples-per-series 30 \
    --batch 2000 --concurrency 4 2>&1 | grep -v RESULT_JSON | tail -1
sleep 1
kill -INT $perf
wait $perf || true
perf report -i "$dir/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -"${TOP:-20}"
