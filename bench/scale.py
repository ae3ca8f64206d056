"""A sweep at 10,000 trials: build a real study of tiny trials (digits, 2 epochs, random sampler,
two workers, tracking on: the embedded SQLite store), then time what users run on it, each as
a whole `hpsearch` process with its peak memory: `status`, `report`, `next`, `export`, a resumed
sweep's start (launch to its first line), and the MLflow REST search the UI's run list makes
(`runs/search`, the first page of 100 and every page). The baseline, measured in the same run:
the same commands on a 100-trial study of the same spec.

    python bench/scale.py [--dir bench-out/scale] [--trials 10000] [--baseline 100]

Building 10,000 trials takes most of an hour here; run again, it resumes the study and then
measures. Targets (issue 35): status <= 5 s, a resumed sweep's start <= 10 s, report <= 60 s,
export and next <= 15 s, every command's memory <= 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
name: {name}
data: {{dataset: digits, seed: 0}}
training: {{max_epochs: 2, batch_size: 64, early_stopping_patience: null}}
budget: {{n_trials: {trials}, workers: 2}}
sampler: {{name: random, seed: 0}}
pruner: none
checkpoints: {{keep: 3}}
space:
  learning_rate: {{type: float, low: 1.0e-3, high: 0.1, log: true}}
  optimizer: {{type: categorical, choices: [sgd, momentum, adam]}}
  hidden_size: {{type: int, low: 8, high: 64, log: true}}
  dropout: {{type: float, low: 0.0, high: 0.3}}
"""
TARGETS = {"status": 5.0, "resume": 10.0, "report": 60.0, "next": 15.0, "export": 15.0}


def hp(where: Path, *args: str) -> list[str]:  # noqa: ARG001 - run in ``where``
    return [sys.executable, "-m", "hpsearch", *args]


def timed(where: Path, argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one whole process."""
    t0 = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], cwd=where, capture_output=True,
                          text=True, env=env())
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                           "HPSEARCH_STORAGE")}
    return e


def build(where: Path, name: str, trials: int) -> float:
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{name}.yaml").write_text(SPEC.format(name=name, trials=trials))
    t0 = time.perf_counter()
    done = subprocess.run(hp(where, "sweep", f"{name}.yaml"), cwd=where, env=env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"building {name} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def resumed_start(where: Path, name: str, trials: int) -> tuple[float, float]:
    """Seconds from launching `hpsearch sweep` on the finished study with one more trial to
    its first line (the study read, the stores opened), and its peak memory over the run."""
    argv = ["/usr/bin/time", "-f", "%M", *hp(where, "sweep", f"{name}.yaml", "--trials",
                                              str(trials + 1))]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=where, env=env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    seconds = time.perf_counter() - t0
    rest, err = proc.communicate(timeout=3600)
    if proc.returncode != 0 or "trials done" not in first:
        raise SystemExit(f"resumed sweep failed:\n{first}{rest}{err[-1500:]}")
    return seconds, int(err.strip().splitlines()[-1]) / 1024


def ui_search(where: Path, name: str) -> tuple[float, float, int]:
    """The MLflow UI's run list over the study's experiment: the first page (100 runs, as the
    UI asks) and every page (1,000 a call), timed against a server started on the store."""
    port = 5077
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                               f"sqlite:///{where / 'mlruns' / 'mlflow.db'}", "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=where,
                              env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/health", timeout=5).read()
                break
            except OSError:
                time.sleep(0.5)

        def post(path: str, body: dict) -> dict:
            req = urllib.request.Request(url + path, json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read())

        exp = post("/api/2.0/mlflow/experiments/search", {"max_results": 100,
                                                          "filter": f"name = '{name}'"})
        exp_id = exp["experiments"][0]["experiment_id"]
        t0 = time.perf_counter()
        post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id], "max_results": 100,
                                             "order_by": ["attributes.start_time DESC"]})
        first = time.perf_counter() - t0
        t0, token, n = time.perf_counter(), None, 0
        while True:
            body = {"experiment_ids": [exp_id], "max_results": 1000}
            if token:
                body["page_token"] = token
            page = post("/api/2.0/mlflow/runs/search", body)
            n += len(page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                break
        return first, time.perf_counter() - t0, n
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def measure(where: Path, name: str, trials: int) -> dict[str, tuple[float, float]]:
    out = {"status": timed(where, hp(where, "status", name)),
           "report": timed(where, hp(where, "report", name)),
           "next": timed(where, hp(where, "next", name, "--out", f"{name}-next.yaml",
                                   "--force")),
           "export": timed(where, hp(where, "export", name, "--out", f"exports/{name}",
                                     "--no-register"))}
    out["resume"] = resumed_start(where, name, trials)
    first, every, n = ui_search(where, name)
    out["UI runs/search, first 100"] = (first, 0.0)
    out[f"UI runs/search, all {n} runs"] = (every, 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=ROOT / "bench-out" / "scale")
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--baseline", type=int, default=100)
    ap.add_argument("--only", choices=("build", "measure"), default=None,
                    help="Only build the studies (resuming them), or only measure built ones.")
    args = ap.parse_args()
    big, small = args.dir / "big", args.dir / "small"
    if args.only != "measure":
        print(f"building {args.baseline} trials: {build(small, 'small', args.baseline):.0f} s",
              flush=True)
        print(f"building {args.trials} trials (or resuming): "
              f"{build(big, 'big', args.trials):.0f} s", flush=True)
    if args.only == "build":
        return
    base = measure(small, "small", args.baseline)
    now = measure(big, "big", args.trials)
    print(f"{'command':<32} {args.baseline:>7} trials {args.trials:>9} trials {'ratio':>7} "
          f"{'MiB':>6}  target")
    for (key, (s, mib)), (b, _) in zip(now.items(), base.values(), strict=True):
        label = key
        target = TARGETS.get(key)
        verdict = "" if target is None else (f"<= {target:g} s: " +
                                              ("met" if s <= target else "NOT MET"))
        if mib:
            verdict += f"; {mib:.0f} MiB <= 1024: " + ("met" if mib <= 1024 else "NOT MET")
        print(f"{label:<32} {b:>12.2f} s {s:>14.2f} s {s / b:>7.1f} {mib:>6.0f}  {verdict}")


if __name__ == "__main__":
    main()
