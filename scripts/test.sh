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
cargo build --release
cargo test --release --no-fail-fast "$@"
