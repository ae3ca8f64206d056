#!/usr/bin/env bash
# Start the local PostgreSQL server (Debian's package) on 127.0.0.1:5432 and create the role
# the tests and the demo use (hpsearch/hpsearch, allowed to create databases).
# Idempotent; used by scripts/sysdeps.sh (so by `make test`) and by `make demo-distributed`.
# Starting a cluster needs root; a server that is already up with the role needs nothing.
set -euo pipefail
ROLE_URL=postgresql://hpsearch:hpsearch@127.0.0.1:5432/postgres
# `make test` runs two test files at once; the distributed ones each start several workers and
# an MLflow server with connection pools: Debian's default of 100 slots runs out.
SLOTS=300
slots_ok() { [ "$(psql "$ROLE_URL" -tAc "SHOW max_connections" 2>/dev/null || echo 0)" -ge "$SLOTS" ]; }
if psql "$ROLE_URL" -tAc "SELECT 1" >/dev/null 2>&1 && slots_ok; then
  exit 0  # up, the role logs in, and there are slots enough
fi
if [ "$(id -u)" -ne 0 ] && psql "$ROLE_URL" -tAc "SELECT 1" >/dev/null 2>&1; then
  echo "error: the PostgreSQL server on 127.0.0.1:5432 has fewer than $SLOTS connection slots" \
       "(SHOW max_connections); raising them needs root: sudo bash scripts/postgres.sh" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: no PostgreSQL server with the role hpsearch on 127.0.0.1:5432, and starting" \
       "one needs root: sudo bash scripts/postgres.sh" >&2
  exit 2
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
pg_lsclusters | grep -q "^$ver *main" || pg_createcluster "$ver" main >/dev/null
pg_ctlcluster "$ver" main start 2>/dev/null || pg_ctlcluster "$ver" main status >/dev/null
ready=""
for _ in $(seq 1 60); do  # bounded: a cold start takes a second or two
  if su postgres -c "pg_isready -q -h 127.0.0.1"; then ready=1; break; fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "error: PostgreSQL $ver did not accept connections on 127.0.0.1:5432 within 30 s;" \
       "see /var/log/postgresql/postgresql-$ver-main.log" >&2
  exit 2
fi
if ! su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='hpsearch'\"" | grep -q 1; then
  su postgres -c "psql -q -c \"CREATE ROLE hpsearch LOGIN CREATEDB PASSWORD 'hpsearch'\""
fi
if ! slots_ok; then
  su postgres -c "psql -q -c 'ALTER SYSTEM SET max_connections = $SLOTS'"
  pg_ctlcluster "$ver" main restart
  for _ in $(seq 1 60); do  # bounded, as above
    if su postgres -c "pg_isready -q -h 127.0.0.1"; then break; fi
    sleep 0.5
  done
  slots_ok || { echo "error: PostgreSQL $ver did not come back with max_connections $SLOTS;" \
                     "see /var/log/postgresql/postgresql-$ver-main.log" >&2; exit 2; }
fi
echo "PostgreSQL $ver on 127.0.0.1:5432, role hpsearch ready ($SLOTS connection slots)"
