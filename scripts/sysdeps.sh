#!/usr/bin/env bash
# What the tests need from the machine, beyond the Python packages of .venv:
#   - Python's venv module (Debian: python3-venv) to create .venv;
#   - the Fashion-MNIST IDX files (Debian: dataset-fashion-mnist) for the real-data tests;
#   - a PostgreSQL server (Debian: postgresql) for the distributed tests, started on
#     127.0.0.1:5432 with the role the tests use (scripts/postgres.sh);
#   - a one-node Slurm (Debian: slurm-wlm, munge) for `hpsearch launch slurm` (scripts/slurm.sh).
# A missing package is installed with apt-get when we are root (after `apt-get update`);
# otherwise one line names the packages and the command that installs them, exit 2.
# Idempotent and quick when everything is there: `make test` runs it every time, since a
# server stopped since the last run must be started again.
#
# HPSEARCH_TEST_POSTGRES=postgresql://... points the tests at another server: then none is
# installed or started here. HPSEARCH_FASHION_DIR=DIR: the IDX files are read from DIR.
# HPSEARCH_TEST_SLURM=0: no Slurm is installed or started (its tests skip, saying so).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
FASHION_DIR=${HPSEARCH_FASHION_DIR:-/usr/share/datasets/fashion-mnist}

missing=()
"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
[ -f "$FASHION_DIR/train-images-idx3-ubyte.gz" ] || missing+=(dataset-fashion-mnist)
if [ -z "${HPSEARCH_TEST_POSTGRES:-}" ]; then
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: the tests need the Debian packages ${missing[*]}; install them as root:" \
         "apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 2
  fi
  echo "installing the Debian packages the tests need: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
      >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "error: apt-get could not install ${missing[*]} (its last lines above)" >&2
    exit 2
  fi
  rm -f "$log"
  if [[ " ${missing[*]} " == *" dataset-fashion-mnist "* ]] &&
     [ ! -f "$FASHION_DIR/train-images-idx3-ubyte.gz" ]; then
    echo "error: dataset-fashion-mnist is installed but $FASHION_DIR/train-images-idx3-ubyte.gz" \
         "is not there (HPSEARCH_FASHION_DIR points elsewhere?)" >&2
    exit 2
  fi
fi

if [ -z "${HPSEARCH_TEST_POSTGRES:-}" ]; then
  bash scripts/postgres.sh
fi
bash scripts/slurm.sh
