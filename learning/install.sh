#!/usr/bin/env bash
# Installs what the learning core needs on a fresh Debian machine: a Java 17+ runtime (for
# Spark) if `java` is missing, and the pinned Python packages in .venv at the project root.
# Idempotent; safe to run before every test run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v java >/dev/null 2>&1; then
  echo "install.sh: java missing, installing openjdk-17-jre-headless" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "install.sh: python3-venv missing, installing it" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv python3-pip >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r learning/requirements.txt
.venv/bin/python -c 'import pyspark, pyarrow, pandas, numpy, numba; print("install.sh: pyspark", pyspark.__version__, "pyarrow", pyarrow.__version__, "pandas", pandas.__version__, "numba", numba.__version__)'
