#!/usr/bin/env bash
# Paired CPU comparison of two omen binaries on the modeled load of bench/profile_models.sh
# (100k series x 30 samples, every kept series modeled): rounds of A then B, each omen
# pinned to core 1 and rwload to core 0, printing omen's CPU ticks (utime + stime, 1/100 s)
# per run and the medians. For telling apart two builds whose difference is smaller than the
# run-to-run noise of bench/passthrough.sh; the side-by-side with vmagent stays the figure.
#
#   bench/ab.sh OMEN_A OMEN_B [ROUNDS]      (default 4 rounds)
#
# Needs the rwload built by bench/passthrough.sh (OMEN_BENCH_DIR as there). Uses
# 127.0.0.1:9201 (sink) and :9202 (omen).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${OMEN_BENCH_DIR:-${TMPDIR:-/tmp}/omen-bench}"
rw="$work/rwload-target/release/rwload"
[ -x "$rw" ] || { echo "ab: run bench/passthrough.sh once to build rwload" >&2; exit 1; }
[ $# -ge 2 ] || { echo "usage: bench/ab.sh OMEN_A OMEN_B [ROUNDS]" >&2; exit 2; }
a="$1" b="$2" rounds="${3:-4}"
dir="$work/ab"
mkdir -p "$dir"
sed -n '/^cat > "\$dir\/omen.yaml" <<.YAML.$/,/^YAML$/p' "$root/bench/profile_models.sh" \
    | sed '1d;$d' > "$dir/omen.yaml"

run() {
    "$rw" sink --listen 127.0.0.1:9201 > "$dir/sink.log" 2>&1 &
    local sink=$!
    taskset -c 1 "$1" serve --config "$dir/omen.yaml" > "$dir/omen.log" 2>&1 &
    local srv=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:9202/-/ready >/dev/null && break; sleep 0.2; done
    taskset -c 0 "$rw" send --url http://127.0.0.1:9202/api/v1/write --series 100000 \
        --samples-per-series 30 --batch 2000 --concurrency 4 > "$dir/send.log" 2>&1
    awk '{print $14 + $15}' "/proc/$srv/stat"
    kill "$srv" "$sink"
    wait "$srv" "$sink" 2>/dev/null || true
}

ta=() tb=()
for r in $(seq "$rounds"); do
    ta+=("$(run "$a")")
    tb+=("$(run "$b")")
    echo "round $r: A ${ta[-1]}  B ${tb[-1]} ticks"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo "median: A $(median "${ta[@]}")  B $(median "${tb[@]}") ticks (omen CPU for 3,000,000 samples)"
