"""32 workers on one PostgreSQL: a sweep of 1,000 tiny trials (digits, 2 epochs) with
`--workers 32`, Optuna on PostgreSQL and MLflow on a tracking server (itself on PostgreSQL), all
on 127.0.0.1; then the same through `hpsearch storage-proxy` (Optuna's gRPC proxy). Counts, from
pg_stat_activity every 0.2 s, the peak connections to the study's database (in all, and per
worker process: each names itself hpsearch-<pid>), and checks the outcome: exactly the budget
COMPLETE or PRUNED, one child run per trial, no duplicate, nothing RUNNING.

    python bench/many_workers.py [--workers 32] [--trials 1000] [--proxy-threads 8]

Needs the PostgreSQL that `make test` starts (scripts/postgres.sh), or $HPSEARCH_TEST_POSTGRES.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ADMIN = os.environ.get("HPSEARCH_TEST_POSTGRES",
                       "postgresql://hpsearch:hpsearch@127.0.0.1:5432/postgres")
SPEC = """\
name: many
data: {{dataset: digits, seed: 0}}
training: {{max_epochs: 2, batch_size: 64, early_stopping_patience: null}}
budget: {{n_trials: {trials}}}
sampler: {{name: random, seed: 0}}
pruner: {{name: median, n_startup_trials: 20, n_warmup_steps: 0}}
space:
  learning_rate: {{type: float, low: 1.0e-3, high: 0.1, log: true}}
  hidden_size: {{type: int, low: 8, high: 64, log: true}}
"""


def admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(ADMIN, autocommit=True)


class Peaks(threading.Thread):
    """Polls pg_stat_activity: the peak connections to ``db`` in all, and per application."""

    def __init__(self, db: str) -> None:
        super().__init__(daemon=True)
        self.db, self.total, self.per_app = db, 0, 0
        self.apps: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        con = admin()
        while not self.stop.is_set():
            rows = con.execute("SELECT application_name FROM pg_stat_activity WHERE datname = %s",
                               (self.db,)).fetchall()
            counts = collections.Counter(r[0] for r in rows)
            self.total = max(self.total, len(rows))
            workers = {a: n for a, n in counts.items() if a.startswith("hpsearch-")}
            self.apps |= set(workers)
            self.per_app = max([self.per_app, *workers.values()])
            time.sleep(0.2)
        con.close()


def sweep(where: Path, storage: str, tracking: str, workers: int, trials: int) -> dict:
    import optuna
    from mlflow.tracking import MlflowClient

    from hpsearch.study.store import budget_counts, open_storage

    (where / "many.yaml").write_text(SPEC.format(trials=trials))
    db = storage.rsplit("/", 1)[1]
    peaks = Peaks(db if not storage.startswith("grpc") else os.environ["MANY_DB"])
    peaks.start()
    env = {**os.environ, "HPSEARCH_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hpsearch", "sweep", "many.yaml", "--workers",
                           str(workers)], cwd=where, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peaks.stop.set()
    peaks.join()
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    trials_ = optuna.load_study(study_name="many", storage=open_storage(storage)).get_trials()
    states = collections.Counter(t.state.name for t in trials_)
    counted = budget_counts(trials_)[0]  # the budget rule: a lost trial's retry counts, not it
    failed = [f"trial {t.number}: {t.user_attrs.get('reason', '?')}" for t in trials_
              if t.state.name == "FAIL"]
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("many")
    runs, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], "tags.`hpsearch.role` = 'trial'",
                                  max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    numbers = collections.Counter(r.data.tags["optuna.trial.number"] for r in runs)
    return {"seconds": seconds, "states": dict(states), "counted": counted, "failed": failed,
            "runs": len(runs),
            "duplicates": sum(1 for n in numbers.values() if n > 1),
            "running_runs": sum(r.info.status == "RUNNING" for r in runs),
            "peak": peaks.total, "peak_per_worker": peaks.per_app,
            "worker_processes_seen": len(peaks.apps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--proxy-threads", type=int, default=8)
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:6]
    names = [f"many_{tag}_{k}" for k in ("optuna", "mlflow", "optuna_proxy", "mlflow_proxy")]
    con = admin()
    for n in names:
        con.execute(f"CREATE DATABASE {n}")
    base = ADMIN.rsplit("/", 1)[0]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for label, (opt_db, mlf_db) in (("direct", names[:2]), ("proxy", names[2:])):
            where = Path(tempfile.mkdtemp(prefix=f"many-{label}-"))
            port = 5090 if label == "direct" else 5091
            server = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                 f"{base}/{mlf_db}", "--default-artifact-root", (where / "art").as_uri(),
                 "--no-serve-artifacts", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            procs.append(server)
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                    break
                except OSError:
                    time.sleep(0.5)
            storage = f"{base}/{opt_db}"
            if label == "proxy":
                proxy = subprocess.Popen(
                    [sys.executable, "-m", "hpsearch", "storage-proxy", "--storage", storage,
                     "--port", "13077", "--threads", str(args.proxy_threads)],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
                procs.append(proxy)
                assert proxy.stdout is not None
                proxy.stdout.readline()  # its line: it serves
                os.environ["MANY_DB"] = opt_db
                storage = "grpc://127.0.0.1:13077"
            r = sweep(where, storage, f"http://127.0.0.1:{port}", args.workers, args.trials)
            counted = r["counted"]
            print(f"{label}: {args.workers} workers, {args.trials} trials in {r['seconds']:.0f} s "
                  f"({args.trials / r['seconds']:.1f} trials/s); states {r['states']}; "
                  f"counted {counted} ({'exact' if counted == args.trials else 'WRONG'}); "
                  f"{r['runs']} child runs, {r['duplicates']} duplicated, "
                  f"{r['running_runs']} RUNNING; peak connections to the study's database "
                  f"{r['peak']}, per worker process {r['peak_per_worker']} "
                  f"({r['worker_processes_seen']} processes seen)", flush=True)
            for line in r["failed"]:
                print(f"  failed {line}", flush=True)
    finally:
        import signal

        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=60)
            except ProcessLookupError:
                pass
        for n in names:
            con.execute(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")
        con.close()


if __name__ == "__main__":
    main()
