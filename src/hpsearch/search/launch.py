"""Launchers: a sweep's workers started by a cluster's scheduler instead of `hpsearch sweep`.

``launch("slurm", ...)`` writes ``launch/NAME.sbatch``, a job array of N tasks, each one
`hpsearch worker NAME`, and submits it with ``sbatch`` when asked; ``launch("k8s", ...)`` writes
``launch/NAME.yaml``, a Kubernetes Job of N pods. Optuna's own recipe for both: N copies of one
worker against a shared RDB storage. Before the file is written the spec, the data and the
budget are checked; before anything is submitted the study and its parent run are prepared, as
`hpsearch sweep` does, so that workers only join, and the last worker to end closes the parent
run (sweep.close_if_complete). Only the two URIs are shared between machines: checkpoints are
logged models in the tracking store. A URI holding a password is never written into a file:
the job takes it from the environment it is submitted from (sbatch) or from a Secret (k8s).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import optuna

from ..errors import HpsearchError, StorageError, mask
from ..spec.config import check_study_name, load_spec
from ..spec.datasets import load_splits
from ..study.store import (
    count_trials,
    is_journal,
    journal_path,
    open_storage,
    resolve_storage_url,
)
from ..tracking.backend import resolve_tracking_uri
from .prepare import budget_total, open_sweep

LAUNCH_DIR = Path("launch")
STORAGE_ENV, TRACKING_ENV = "HPSEARCH_STORAGE", "MLFLOW_TRACKING_URI"
# sbatch's --time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
SLURM_TIME = re.compile(r"^(\d+|\d+:\d\d|\d+:\d\d:\d\d|\d+-\d+|\d+-\d+:\d\d|\d+-\d+:\d\d:\d\d)$")
K8S_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Options:
    """What a launch asks of the cluster (the CLI's options)."""

    workers: int
    cpus: int = 1
    time: str = "2:00:00"  # slurm: each task's time limit
    partition: str | None = None  # slurm
    gpus: int = 0
    grace: int = 120  # seconds between the stopping signal and the kill
    image: str | None = None  # k8s
    memory: str = "2Gi"  # k8s: each pod's memory request
    python: str = field(default_factory=lambda: sys.executable)  # slurm: on the nodes


@dataclass
class Launched:
    kind: str  # slurm, k8s
    study: str
    path: Path
    tasks: int  # workers the file starts (the asked number, capped at the trials left)
    total: int
    finished: int
    from_env: list[str]  # variables the job takes from where it is submitted (passwords)
    storage: str  # masked, for messages
    tracking: str  # masked
    job_id: str | None = None
    submit_command: str = ""
    notes: list[str] = field(default_factory=list)  # k8s: variables to export for the Secret
    storage_from_env: bool = True  # False: given with --storage (other commands need it too)


def shared_stores(storage: str | None, tracking: str | None) -> tuple[str, str]:
    """The storage and tracking URIs, refused when only this machine can reach them."""
    url = resolve_storage_url(storage)
    if is_journal(url) or url.startswith("sqlite"):
        where = journal_path(url) if is_journal(url) else url
        raise StorageError(f"storage {mask(str(where))} is a file on this machine: workers on "
                           f"other machines cannot reach it; give a PostgreSQL storage: "
                           f"--storage postgresql://USER@HOST/DB (or ${STORAGE_ENV})")
    uri = resolve_tracking_uri(tracking)
    if uri != "none" and (uri.startswith(("sqlite:", "file:")) or "://" not in uri):
        raise StorageError(f"tracking store {mask(uri)} is a file on this machine: workers on "
                           f"other machines cannot reach it; give a tracking server: "
                           f"--tracking-uri http://HOST:5000 (or ${TRACKING_ENV}), or none")
    return url, uri


def has_password(uri: str) -> bool:
    """Whatever masking would hide (``user:pw@``, ``?password=``, a registered secret), or a
    URI that does not parse: never written into a file."""
    try:
        urlsplit(uri)
    except ValueError:
        return True
    return mask(uri) != uri


def on_loopback(uri: str) -> bool:
    try:
        host = urlsplit(uri).hostname or ""
    except ValueError:
        return False
    return host in ("localhost", "::1") or host.startswith("127.")


def slurm_seconds(limit: str) -> float | None:
    """A Slurm time limit in seconds (None: UNLIMITED)."""
    if limit.upper() in ("UNLIMITED", "INFINITE"):
        return None
    days, _, clock = limit.rpartition("-") if "-" in limit else ("", "", limit)
    parts = [int(p) for p in clock.split(":")]
    if days:  # D-HH[:MM[:SS]]
        parts += [0] * (3 - len(parts))
        return int(days) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
    if len(parts) == 1:  # minutes
        return parts[0] * 60.0
    if len(parts) == 2:  # MM:SS
        return parts[0] * 60.0 + parts[1]
    return parts[0] * 3600.0 + parts[1] * 60 + parts[2]


def _trials_left(storage_url: str, name: str, spec_total: int | None,
                 spec: object) -> tuple[int, int, int]:
    """(total, finished, running) of study ``name`` as it stands, without changing it (a study
    not made yet holds nothing)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:  # no such study yet
        return budget_total({}, spec, spec_total), 0, 0  # type: ignore[arg-type]
    finished, running = count_trials(study)
    return budget_total(study.user_attrs, spec, spec_total), finished, running  # type: ignore[arg-type]


def launch(kind: str, spec_path: str, opts: Options, storage: str | None,
           tracking: str | None, study_name: str | None, n_trials: int | None, submit: bool,
           echo: Callable[[str], None] = print) -> Launched:
    """Check, write the launch file, prepare the study, and (slurm, ``submit``) submit it."""
    if opts.workers < 1:
        raise HpsearchError(f"--workers {opts.workers}: a launch needs at least one worker")
    if kind == "slurm":
        if not SLURM_TIME.match(opts.time) and opts.time.upper() not in ("UNLIMITED",
                                                                         "INFINITE"):
            raise HpsearchError(f"--time {opts.time!r}: not a Slurm time limit (minutes, "
                                f"HH:MM:SS, D-HH:MM:SS or UNLIMITED)")
        limit = slurm_seconds(opts.time)
        # Slurm may send the --signal up to 60 s earlier than asked (its event resolution)
        if limit is not None and opts.grace + 60 >= limit:
            raise HpsearchError(f"--grace {opts.grace}: the stopping signal comes {opts.grace} s "
                                f"before the time limit (Slurm may send it up to 60 s earlier), "
                                f"and --time {opts.time} is {limit:.0f} s: give a longer --time "
                                f"or a shorter --grace")
        if submit and shutil.which("sbatch") is None:
            raise HpsearchError("sbatch is not on PATH: run this on a Slurm login node, or "
                                "without --submit to write the file only")
    elif not opts.image or any(c.isspace() for c in opts.image):
        raise HpsearchError(f"--image {opts.image!r}: a container image reference (e.g. "
                            f"registry.example.com/hpsearch:0.2) with hpsearch installed")
    elif not K8S_QUANTITY.match(opts.memory):
        raise HpsearchError(f"--memory {opts.memory!r}: not a Kubernetes quantity (e.g. 2Gi)")
    spec = load_spec(spec_path)
    name = check_study_name(study_name) if study_name else spec.name
    url, uri = shared_stores(storage, tracking)
    splits = load_splits(spec.data)  # bad data fails here, before anything is written
    total, finished, running = _trials_left(url, name, n_trials, spec)
    left = total - finished - running
    if left <= 0:
        raise HpsearchError(f"study {name} already holds its {total} trials ({finished} "
                            f"finished, {running} running): nothing to launch; ask for more "
                            f"with --trials N (more than {total})")
    tasks = min(opts.workers, left)
    if tasks < opts.workers:
        echo(f"{opts.workers} workers asked, {left} trial(s) left: launching {tasks}")
    from_env = [env for env, value in ((STORAGE_ENV, url), (TRACKING_ENV, uri))
                if has_password(value)]
    for what, value in (("storage", url), ("tracking store", uri)):
        if on_loopback(value):
            echo(f"note: the {what} {mask(value)} is on this machine's loopback address: only "
                 f"workers on this machine reach it" + (" (a pod's 127.0.0.1 is the pod)"
                                                        if kind == "k8s" else ""))
    path = LAUNCH_DIR / f"{name}.{'sbatch' if kind == 'slurm' else 'yaml'}"
    text = (sbatch_file(name, tasks, opts, url, uri, from_env) if kind == "slurm"
            else k8s_job(name, tasks, opts))
    job_env = {**os.environ, STORAGE_ENV: url, TRACKING_ENV: uri}  # sbatch exports it to jobs
    if kind == "slurm" and (submit or shutil.which("sbatch")):
        # what sbatch refuses (a partition, a time above its limit) before anything is made
        _sbatch(["--test-only"], job_env, text, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    o = open_sweep(spec, url, uri, name, n_trials, echo, splits)
    done = Launched(kind, name, path, tasks, o.total, o.finished, from_env, mask(url), mask(uri))
    if kind == "slurm":
        done.submit_command = f"sbatch {shlex.quote(str(path))}"
        if submit:
            done.job_id = _sbatch(["--parsable", str(path)], job_env, None, path).split(";")[0]
    else:
        done.submit_command = f"kubectl apply -f {shlex.quote(str(path))}"
        done.notes = secret_hint(url, uri)
    done.storage_from_env = os.environ.get(STORAGE_ENV) == url
    return done


def _sbatch(args: list[str], env: dict[str, str], script: str | None, path: Path) -> str:
    """sbatch's answer (``script`` given: read from its stdin, the file not written yet); what
    it refuses, in one line (masked), as an HpsearchError."""
    done = subprocess.run(["sbatch", *args], env=env, input=script, capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        why = next((line for line in said if "error" in line.lower()), said[0] if said else
                   f"exit status {done.returncode}")
        raise HpsearchError(f"sbatch refused {path}: {mask(why.strip())}")
    return done.stdout.strip() or done.stderr.strip()


# -- the files ---------------------------------------------------------------------------------
def sbatch_file(name: str, tasks: int, opts: Options, url: str, uri: str,
                from_env: list[str]) -> str:
    """A job array of ``tasks`` tasks, each `hpsearch worker NAME` on ``opts.cpus`` CPUs, with
    SIGTERM ``opts.grace`` s before its time limit (the worker closes its trial, which another
    task retries). URIs with a password come from the environment sbatch exports."""
    out = (Path.cwd() / LAUNCH_DIR).resolve()
    lines = ["#!/bin/bash",
             f"# hpsearch launch slurm: {tasks} worker(s) of study {name}. Submit: sbatch "
             f"{LAUNCH_DIR / (name + '.sbatch')}",
             f"#SBATCH --job-name=hpsearch-{name}",
             f"#SBATCH --array=0-{tasks - 1}",
             "#SBATCH --ntasks=1",
             f"#SBATCH --cpus-per-task={opts.cpus}",
             f"#SBATCH --time={opts.time}",
             # B: the batch shell, which exec makes the worker itself
             f"#SBATCH --signal=B:TERM@{opts.grace}",
             f"#SBATCH --output={out}/{name}-%A_%a.out",
             f"#SBATCH --chdir={Path.cwd().resolve()}"]
    if opts.partition:
        lines.append(f"#SBATCH --partition={opts.partition}")
    if opts.gpus:
        lines.append(f"#SBATCH --gpus-per-task={opts.gpus}")
    lines += ["set -euo pipefail"]
    for env, value in ((STORAGE_ENV, url), (TRACKING_ENV, uri)):
        if env in from_env:  # a password: never in a file; sbatch passes the submitter's
            lines.append(f': "${{{env}:?set {env} where you run sbatch (it holds a '
                         f'password, so it is not written here)}}"')
        else:
            lines.append(f"export {env}={shlex.quote(value)}")
    lines += [f'export {v}="${{SLURM_CPUS_PER_TASK:-1}}"' for v in BLAS_THREADS]
    lines.append(f"exec {shlex.quote(opts.python)} -m hpsearch worker {shlex.quote(name)}")
    return "\n".join(lines) + "\n"


def k8s_name(study: str) -> str:
    """A DNS-1123 name for the study's Job and Secret (lower case, digits, '-', <= 63); a study
    name that had to change gets a short hash of itself, so that two studies never share one."""
    import hashlib

    slug = re.sub(r"[^a-z0-9-]+", "-", study.lower()).strip("-") or "sweep"
    if slug == study and len(slug) <= 54:
        return f"hpsearch-{slug}"
    digest = hashlib.sha256(study.encode()).hexdigest()[:6]
    return f"hpsearch-{slug[:47].rstrip('-')}-{digest}"


def k8s_job(name: str, tasks: int, opts: Options) -> str:
    """A batch/v1 Job of ``tasks`` pods, each `hpsearch worker NAME`, the URIs from a Secret."""
    import yaml

    job = k8s_name(name)
    labels = {"app.kubernetes.io/name": "hpsearch", "hpsearch/study": job.removeprefix(
        "hpsearch-")}
    limits: dict[str, Any] = {"memory": opts.memory}
    if opts.gpus:
        limits["nvidia.com/gpu"] = opts.gpus
    container = {
        "name": "worker", "image": opts.image,
        "command": ["hpsearch", "worker", name],
        "envFrom": [{"secretRef": {"name": job}}],  # HPSEARCH_STORAGE, MLFLOW_TRACKING_URI
        "env": [{"name": v, "value": str(opts.cpus)} for v in BLAS_THREADS],
        "resources": {"requests": {"cpu": str(opts.cpus), "memory": opts.memory},
                      "limits": limits},
    }
    manifest = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job, "labels": labels},
        "spec": {
            "parallelism": tasks, "completions": tasks,
            # a pod stopped by its node (SIGTERM) exits 143 and is restarted; its trial is retried
            "backoffLimit": 2 * tasks,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "OnFailure",
                         # SIGTERM first: the worker closes its running trial in both stores
                         "terminationGracePeriodSeconds": opts.grace,
                         "containers": [container]}}}}
    head = (f"# hpsearch launch k8s: {tasks} worker(s) of study {name}. First the Secret "
            f"{job} with the two URIs (kubectl create secret generic {job} "
            f"--from-literal={STORAGE_ENV}=... --from-literal={TRACKING_ENV}=...), then: "
            f"kubectl apply -f {LAUNCH_DIR / (name + '.yaml')}\n")
    return head + yaml.safe_dump(manifest, sort_keys=False)


def secret_hint(url: str, uri: str) -> list[str]:
    """Lines for the variables the Secret command reads that this shell does not hold as used."""
    return [f"first: export {env}=... (the {what} used here, {mask(value)}): this shell's "
            f"${env} is {'unset' if env not in os.environ else 'another one'}"
            for env, what, value in ((STORAGE_ENV, "storage", url),
                                     (TRACKING_ENV, "tracking URI", uri))
            if os.environ.get(env) != value]


def secret_command(name: str) -> str:
    """The kubectl command that makes the Job's Secret from the shell's variables (never their
    values on a command line the shell history keeps)."""
    job = k8s_name(name)
    return (f'kubectl create secret generic {job} --from-literal={STORAGE_ENV}="${STORAGE_ENV}" '
            f'--from-literal={TRACKING_ENV}="${TRACKING_ENV}"')
