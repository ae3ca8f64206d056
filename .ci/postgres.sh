#!/usr/bin/env bash
# Start the local PostgreSQL server (Debian's package) and create the role the tests use.
# Idempotent; used by .ci/run and by `make demo-distributed`.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
pg_lsclusters | grep -q "^$ver *main" || pg_createcluster "$ver" main >/dev/null
pg_ctlcluster "$ver" main start 2>/dev/null || pg_ctlcluster "$ver" main status >/dev/null
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q -h 127.0.0.1" && break
  sleep 1
done
if ! su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='hpsearch'\"" | grep -q 1; then
  su postgres -c "psql -q -c \"CREATE ROLE hpsearch LOGIN CREATEDB PASSWORD 'hpsearch'\""
fi
echo "PostgreSQL $ver on 127.0.0.1:5432, role hpsearch ready"
