#!/usr/bin/env bash
# Start the local PostgreSQL server (Debian's package) on 127.0.0.1:5432 and create the role
# the tests and the demo use (hpsearch/hpsearch, allowed to create databases).
# Idempotent; used by scripts/sysdeps.sh (so by `make test`) and by `make demo-distributed`.
# Starting a cluster needs root; a server that is already up with the role needs nothing.
set -euo pipefail
ROLE_URL=postgresql://hpsearch:hpsearch@127.0.0.1:5432/postgres
if psql "$ROLE_URL" -tAc "SELECT 1" >/dev/null 2>&1; then
  exit 0  # up, and the role logs in
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
echo "PostgreSQL $ver on 127.0.0.1:5432, role hpsearch ready"
