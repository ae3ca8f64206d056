#!/usr/bin/env bash
# The local multi-worker demo of a distributed sweep: Optuna on PostgreSQL, an MLflow tracking
# server (on PostgreSQL too), three `hpsearch worker` processes. Needs root for the first start
# of Debian's PostgreSQL (apt-get install postgresql). Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${PORT:-5050}
PG=postgresql://hpsearch:hpsearch@127.0.0.1:5432
bash scripts/postgres.sh
for db in hpsearch_demo hpsearch_demo_mlflow; do
  su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='$db'\"" | grep -q 1 ||
    su postgres -c "createdb -O hpsearch $db"
done
mkdir -p mlruns/demo-artifacts
PATH="$PWD/$BIN:$PATH" $BIN/mlflow server --backend-store-uri "$PG/hpsearch_demo_mlflow" \
  --default-artifact-root "file://$PWD/mlruns/demo-artifacts" --no-serve-artifacts \
  --host 127.0.0.1 --port "$PORT" --workers 1 >mlruns/demo-mlflow-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 1; done
export HPSEARCH_STORAGE="$PG/hpsearch_demo" MLFLOW_TRACKING_URI="http://127.0.0.1:$PORT"
# The sweep command creates the study and the parent run and runs no trial itself (timeout ~0);
# three workers then share the study, as they would from three machines.
$BIN/hpsearch sweep sweeps/quickstart.yaml --study quickstart-distributed --timeout 0.001
pids=()
for i in 1 2 3; do
  $BIN/hpsearch worker quickstart-distributed >"mlruns/demo-worker-$i.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
tail -n 1 mlruns/demo-worker-*.log
$BIN/hpsearch status quickstart-distributed
echo "The demo's tracking server stops now; to look at its runs:"
echo "  $BIN/mlflow ui --backend-store-uri $PG/hpsearch_demo_mlflow --host 127.0.0.1"
