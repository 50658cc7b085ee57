# Sourced by the bench scripts: `bench_build NAME` builds omen (release) and a copy of
# rwload, and sets `work`, `omen`, `rwload` and `peers` (rwload's bench/peers.py).
# RWLOAD_SRC (default ../shared/rwload) is copied to OMEN_BENCH_DIR (default
# $TMPDIR/omen-bench), since shared/ is read-only, and built there.
bench_build() {
    local name="$1" root src
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    src="${RWLOAD_SRC:-$root/../shared/rwload}"
    work="${OMEN_BENCH_DIR:-${TMPDIR:-/tmp}/omen-bench}"
    [ -f "$src/Cargo.toml" ] || { echo "$name: no rwload at $src (set RWLOAD_SRC)" >&2; exit 1; }

    echo "$name: building omen (release)"
    (cd "$root" && cargo build --release --quiet)
    omen="${CARGO_TARGET_DIR:-$root/target}/release/omen"

    echo "$name: building rwload from $src"
    mkdir -p "$work/rwload"
    cp -rp "$src/Cargo.toml" "$src/Cargo.lock" "$src/src" "$src/bench" "$work/rwload/"
    CARGO_TARGET_DIR="$work/rwload-target" cargo build --release --quiet --manifest-path "$work/rwload/Cargo.toml"
    rwload="$work/rwload-target/release/rwload"
    peers="$work/rwload/bench/peers.py"
}
