#!/usr/bin/env bash
# The one test command: installs what the tests need if missing, builds the
# release binary (the end-to-end tests run it against real Prometheus and
# VictoriaMetrics processes), then runs every unit, integration and
# end-to-end test. End-to-end tests never skip here: a missing program fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
export OMEN_E2E_REQUIRE=1

# A shared machine has two cores: CARGO_BUILD_JOBS=1 keeps a build polite.
# Tests build the release profile without LTO and debug info: linking some 25 test
# binaries with LTO dominated the run. Same optimisation level; benchmarks
# (bench/*.sh) build the full release profile, so running them after this rebuilds.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-false}"
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-0}"
cargo build --release

# rwload, the benchmark's load generator and null sink, lives in ../shared
# (read-only there): build a copy for tests/e2e_rwload.rs.
target="${CARGO_TARGET_DIR:-$PWD/target}"
rwload_src="${RWLOAD_SRC:-$PWD/../shared/rwload}"
if [ -f "$rwload_src/Cargo.toml" ]; then
    mkdir -p "$target/rwload-src"
    cp -rp "$rwload_src/Cargo.toml" "$rwload_src/Cargo.lock" "$rwload_src/src" "$target/rwload-src/"
    CARGO_TARGET_DIR="$target/rwload" cargo build --release --quiet --manifest-path "$target/rwload-src/Cargo.toml"
    export OMEN_RWLOAD="$target/rwload/release/rwload"
else
    echo "test.sh: no rwload at $rwload_src (set RWLOAD_SRC); tests/e2e_rwload.rs will fail" >&2
fi
# playwright-core for the page's browser test, from the committed lock file (no browser
# download: the test drives Debian's /usr/bin/chromium).
npm ci --prefix tests/browser --no-audit --no-fund
# The learning core's environment (Java 17 and the pinned requirements into .venv if
# missing): tests/learning_e2e.rs runs its Spark job between omen's export and import.
bash learning/install.sh
status=0
cargo test --release --no-fail-fast "$@" || status=$?
# Deploy artefacts: Kubernetes schemas (offline), promtool, omen check-config,
# Dockerfile and dashboards (installs promtool, kubectl, kubernetes-validate).
deploy/tests/run.sh || status=$?
# The learning core's own tests (PySpark in local mode).
.venv/bin/python -m pytest -q learning/tests || status=$?
exit "$status"
