#!/usr/bin/env bash
# The deploy tests that need no running servers: Kubernetes schemas (offline),
# kustomize renders, promtool check/test rules, promtool check config, omen
# check-config on the shipped omen.yaml files, Dockerfile and dashboard
# structure. Needs the release binary (scripts/test.sh builds it first).
# The data-returning checks are the cargo test tests/deploy_queries.rs.
#   deploy/tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/tests/install.sh
[ -x target/release/omen ] || cargo build --release
exec .venv/bin/python deploy/tests/check_static.py --omen target/release/omen
