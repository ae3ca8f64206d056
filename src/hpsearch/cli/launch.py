"""`hpsearch launch slurm|k8s`: a sweep's workers started by a cluster (search/launch.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .common import STORAGE_HELP, TRACKING_HELP, main


@main.group("launch")
def launch_group() -> None:
    """Start a sweep's workers on a cluster: a Slurm job array or a Kubernetes Job. The study
    and its parent run are prepared here; the workers join them. Needs a storage and a tracking
    store every node reaches (PostgreSQL, an MLflow server): the embedded ones are files."""


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options both launchers take."""
    for option in reversed([
        click.argument("spec", type=click.Path(dir_okay=False)),
        click.option("--workers", type=click.IntRange(min=1), required=True,
                     help="Worker processes (array tasks, pods); capped at the trials left."),
        click.option("--cpus-per-task", "cpus", type=click.IntRange(min=1), default=1,
                     show_default=True, help="CPUs of each worker (its BLAS threads)."),
        click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True,
                     help="GPUs of each worker (the NumPy engine uses none)."),
        click.option("--grace", type=click.IntRange(min=10), default=120, show_default=True,
                     help="Seconds between SIGTERM and the kill: the worker closes its trial."),
        click.option("--trials", type=click.IntRange(min=1), default=None,
                     help="Total trials the study should hold (default: the spec's n_trials)."),
        click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP),
        click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None,
                     help=TRACKING_HELP),
        click.option("--study", "study_name", default=None,
                     help="Study name (default: the spec's name)."),
    ]):
        f = option(f)
    return f


def _prepared(r: Any) -> None:
    click.echo(f"study {r.study}: {r.finished} of {r.total} trials done, prepared with its "
               f"parent run (open until the last worker ends); storage {r.storage}, tracking "
               f"{r.tracking}")


def _status(r: Any) -> str:
    """The status command as the user can run it where they are."""
    return f"hpsearch status {r.study}" + ("" if r.storage_from_env else
                                           " --storage URL (as given here)")


@launch_group.command("slurm")
@_common
@click.option("--partition", default=None, help="Slurm partition (default: the cluster's).")
@click.option("--time", "time_limit", default="2:00:00", show_default=True,
              help="Each task's time limit (SIGTERM comes --grace seconds before it).")
@click.option("--python", "python", default=None,
              help="The Python with hpsearch on the nodes (default: this one; a shared home).")
@click.option("--submit/--dry-run", default=False, show_default=True,
              help="Submit with sbatch, or write the file (and prepare the study) only.")
def slurm_cmd(spec: str, workers: int, cpus: int, gpus: int, grace: int, trials: int | None,
              storage: str | None, tracking_uri: str | None, study_name: str | None,
              partition: str | None, time_limit: str, python: str | None, submit: bool) -> None:
    """Write launch/NAME.sbatch, a job array of `hpsearch worker` tasks for SPEC's sweep, and
    submit it with --submit."""
    from ..search.launch import Options, launch

    opts = Options(workers, cpus, time_limit, partition, gpus, grace)
    if python:
        opts.python = python
    r = launch("slurm", spec, opts, storage, tracking_uri, study_name, trials, submit,
               click.echo)
    _prepared(r)
    click.echo(f"wrote {r.path}: an array of {r.tasks} worker task(s)")
    if r.job_id is None:
        for env in r.from_env:
            click.echo(f"{env} has a password in it, so {r.path} leaves it out: export it in "
                       f"the shell you run sbatch from (sbatch passes it to the job)")
        click.echo(f"submit it: {r.submit_command}")
        return
    click.echo(f"submitted job {r.job_id} ({r.tasks} array tasks)")
    click.echo(f"follow: squeue --job {r.job_id}; {_status(r)}; "
               f"output in launch/{r.study}-{r.job_id}_*.out")
    click.echo(f"stop: scancel {r.job_id} (running trials are closed and retried); then: "
               f"hpsearch report {r.study}, hpsearch export {r.study}")


@launch_group.command("k8s")
@_common
@click.option("--image", required=True, help="Container image with hpsearch installed.")
@click.option("--memory", default="2Gi", show_default=True,
              help="Memory each pod requests (and is limited to).")
def k8s_cmd(spec: str, workers: int, cpus: int, gpus: int, grace: int, trials: int | None,
            storage: str | None, tracking_uri: str | None, study_name: str | None, image: str,
            memory: str) -> None:
    """Write launch/NAME.yaml, a Kubernetes Job of `hpsearch worker` pods for SPEC's sweep,
    the URIs from a Secret."""
    from ..search.launch import Options, k8s_name, launch, secret_command

    opts = Options(workers, cpus, gpus=gpus, grace=grace, image=image, memory=memory)
    r = launch("k8s", spec, opts, storage, tracking_uri, study_name, trials, False, click.echo)
    _prepared(r)
    click.echo(f"wrote {r.path}: a Job of {r.tasks} worker pod(s)")
    for note in r.notes:
        click.echo(note)
    click.echo(f"the Secret, from this shell's HPSEARCH_STORAGE and MLFLOW_TRACKING_URI: "
               f"{secret_command(r.study)}")
    click.echo(f"then: {r.submit_command}; follow: kubectl get job {k8s_name(r.study)}; "
               f"{_status(r)}")
