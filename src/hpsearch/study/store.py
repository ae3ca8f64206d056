"""The study store: Optuna storages opened and resolved, a study joined, what hpsearch records in
it (the study's and the trials' attribute keys, as named constants), trial counts by the budget
rule, and the direction sign. The only module that touches private Optuna API (``study._storage``,
the journal file's lock, the heartbeat helpers, Hyperband's brackets): under the ``optuna<6`` pin
it sits in this one place.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ..errors import SpecError, StorageError, describe, first_line, mask_uri
from ..spec.config import check_study_name, parse_spec
from ..spec.schema import SweepSpec

DEFAULT_STORAGE = "mlruns/optuna.journal"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class StudyKey:
    """The study's user attributes written by `hpsearch sweep` (prefixed ``hpsearch.``)."""

    SPEC = "hpsearch.spec"  # the spec file's text (a system attribute: record_spec)
    SPEC_PATH = "hpsearch.spec_path"
    N_TRIALS = "hpsearch.n_trials"  # the requested total
    CHECKPOINT_DIR = "hpsearch.checkpoint_dir"
    EXPERIMENT_ID = "hpsearch.experiment_id"
    PARENT_RUN_ID = "hpsearch.parent_run_id"
    TRACKING_URI = "hpsearch.tracking_uri"  # masked
    GIT_COMMIT = "hpsearch.git_commit"
    DATA = "hpsearch.data"  # split sizes and fingerprint
    REVISITED = "hpsearch.revisited"  # trial number -> verdict its run was re-tagged with
    WARM_START = "hpsearch.warm_start"  # {"study": parent, "trials": parent trial numbers}
    NOISE_FLOOR = "hpsearch.noise_floor"  # {"value": standard error, "how": how it was measured}
    STOPPED = "hpsearch.stopped"  # why the stop rule ended the sweep (budget.stop)
    RESEED = "hpsearch.reseed"  # the top configurations' scores over more seeds (reseed.py)
    RESEED_PHASE = "hpsearch.reseed_phase"  # the sweep's reseed trials began: top, seeds, when
    RESERVE_SAID = "hpsearch.reserve_said"  # the deadline whose export reserve ended the search


class TrialKey:
    """A trial's user attributes, written when it ends (and ``retry_of`` when it starts)."""

    EPOCHS_RUN = "epochs_run"
    TRAIN_TIME_S = "train_time_s"
    BEST_EPOCH = "best_epoch"
    TEST_ACCURACY_AT_BEST = "test_accuracy_at_best"
    STATUS = "status"
    REASON = "reason"
    RETRY_OF = "retry_of"
    WARM_START_OF = "warm_start_of"  # "<parent study>#<trial number>"
    RESEED_OF = "reseed_of"  # a reseed trial: the trial whose configuration it trains again
    MODEL_SEED = "model_seed"  # ... with this model seed (training.seed otherwise)
    NOISE = "noise"  # standard error of the trial's objective value on the validation split
    CHECKPOINT_ERROR = "checkpoint_error"
    VERDICT = "fit.verdict"
    SUMMARY = "fit.summary"
    GAP_AT_BEST = "fit.gap_at_best"
    TRAIN_ACCURACY_AT_BEST = "fit.train_accuracy_at_best"
    VAL_ACCURACY_AT_BEST = "fit.val_accuracy_at_best"


# -- storages --------------------------------------------------------------------------------------
def is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith(".journal")


def journal_path(url: str) -> Path:
    return Path(url.removeprefix("journal:"))


def resolve_storage_url(url: str | None = None) -> str:
    """The argument, else $HPSEARCH_STORAGE, else mlruns/optuna.journal; journal paths are made
    absolute so that worker processes find the same file."""
    url = url or os.environ.get("HPSEARCH_STORAGE") or DEFAULT_STORAGE
    if is_journal(url):
        url = "journal:" + str(journal_path(url).resolve())
    return url


def _whole_number_env(name: str, default: str, minimum: int, what: str) -> int:
    raw = os.environ.get(name, default)
    try:
        value = int(raw)
        if value < minimum:
            raise ValueError
    except ValueError:
        raise StorageError(f"{name}={raw!r}: expected {what}") from None
    return value


def heartbeat_interval() -> int:
    """Seconds between a running trial's heartbeats on an RDB storage ($HPSEARCH_HEARTBEAT,
    default 30); a trial silent for three intervals is stale: failed and retried."""
    return _whole_number_env("HPSEARCH_HEARTBEAT", "30", 1, "a whole number of seconds >= 1")


class SafeJournalBackend(JournalFileBackend):
    """Optuna's journal file with one change: an append that fails part-way (ENOSPC, EIO) is
    truncated back to where it started before the error is raised, under the journal's lock.
    Optuna skips a trailing partial line on read but appends the next record to it, which would
    make both unreadable; this keeps every record written before the failure."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        from optuna.storages.journal._file import get_lock_file

        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs)
                + "\n").encode("utf-8")
        with get_lock_file(self._lock):
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except OSError as exc:
                    if exc.filename is None:
                        exc.filename = self._file_path
                    try:
                        os.ftruncate(fd, size)
                    except OSError:
                        pass
                    raise
            finally:
                os.close(fd)


def open_storage(url: str, stale_callback: Callable[..., Any] | None = None,
                 pool_size: int = 1) -> optuna.storages.BaseStorage:
    """A journal file (the default; ``journal:PATH`` or any path ending in .journal) or an RDB
    URL (``postgresql://...``, ``sqlite:///...``) with heartbeats; ``stale_callback`` is called
    for each trial Optuna fails because its heartbeat stopped (see faults.StaleTrialHandler)."""
    try:
        if is_journal(url):
            path = journal_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(SafeJournalBackend(str(path)))
        if url.startswith("grpc://"):  # hpsearch storage-proxy: its pool, not ours, connects
            return _grpc_storage(url)
        if "://" not in url:
            raise StorageError(f"storage {url!r}: not a URL (postgresql://..., sqlite:///...) "
                               f"nor a .journal file")
        engine: dict[str, Any] = {}
        if not url.startswith("sqlite"):
            # A server that restarted leaves dead connections in the pool: test each before use.
            # Two connections a process at most (the trial loop, the heartbeat thread): 32
            # workers hold 64 of the server's max_connections, not SQLAlchemy's 15 each.
            engine |= {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": 1}
        if url.startswith("postgresql"):
            args: dict[str, Any] = {"application_name": f"hpsearch-{os.getpid()}"}
            if "connect_timeout" not in url:
                args["connect_timeout"] = 10
            engine["connect_args"] = args
        interval = heartbeat_interval()
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=interval,
                grace_period=3 * interval, heartbeat_stale_trial_callback=stale_callback)
    except StorageError:
        raise
    except Exception as exc:  # sqlalchemy / OS errors: unreachable, bad driver, read-only
        raise StorageError(f"storage {mask_uri(url)}: {describe(exc) or first_line(exc)}"
                           ) from None


# -- one study -------------------------------------------------------------------------------------
def _grpc_storage(url: str) -> optuna.storages.BaseStorage:
    """``grpc://host:port``: a storage behind `hpsearch storage-proxy` (Optuna's gRPC proxy)."""
    host, _, port = url[len("grpc://"):].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise StorageError(f"storage {url!r}: expected grpc://HOST:PORT")
    with warnings.catch_warnings():  # "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    try:
        proxy.wait_server_ready(timeout=10)
    except ConnectionError:
        raise StorageError(f"storage {url}: no storage proxy answers there (start one with "
                           f"`hpsearch storage-proxy --storage URL --port {port}`)") from None
    return proxy


def join_storage_study(study_name: str, storage_url: str | None = None,
                       stale_callback: Callable[..., Any] | None = None) -> optuna.Study:
    """Load an existing study; StorageError naming the storage when there is none."""
    check_study_name(study_name)
    storage_url = resolve_storage_url(storage_url)
    if is_journal(storage_url) and not journal_path(storage_url).exists():
        raise StorageError(f"no study named {study_name!r}: {storage_url} does not exist "
                           f"(run `hpsearch sweep` first, from the same directory)")
    storage = open_storage(storage_url, stale_callback)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise StorageError(f"no study named {study_name!r} in {mask_uri(storage_url)} "
                           f"(run `hpsearch sweep` first)") from None


def create_study(storage: optuna.storages.BaseStorage, name: str,
                 spec: SweepSpec) -> optuna.Study:
    """Study ``name`` for ``spec`` (created, or the existing one if its direction agrees), its
    objective named (optuna-dashboard shows the metric's name, not "Objective 0")."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = spec.objective.direction
    try:
        study = optuna.create_study(study_name=name, storage=storage,
                                    direction=direction,  # type: ignore[arg-type]
                                    load_if_exists=True)
    except ValueError as exc:  # e.g. an existing study with the other direction
        raise SpecError(f"{spec.path}: objective: {exc}") from None
    if study.direction.name.lower() != direction:
        raise SpecError(f"{spec.path}: objective.direction {direction} differs from the "
                        f"existing study {name!r} ({study.direction.name.lower()}); use another "
                        f"--study name")
    name_objective(study, spec.objective.metric)
    return study


def name_objective(study: optuna.Study, metric: str) -> None:
    if study.metric_names != [metric]:
        with warnings.catch_warnings():  # "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric])


SPEC_ELSEWHERE = "(the spec's text is the study's system attribute hpsearch.spec)"


def record_spec(study: optuna.Study, text: str) -> None:
    """Keep the spec's text in the study's system attributes: the user attributes are what
    optuna-dashboard shows of a study, and a spec there is a wall of text. A study of 0.1 had
    it in its user attributes: that copy, out of date once resumed, now points here."""
    study._storage.set_study_system_attr(study._study_id, StudyKey.SPEC, text)
    if StudyKey.SPEC in study.user_attrs:
        study.set_user_attr(StudyKey.SPEC, SPEC_ELSEWHERE)


def study_spec(study: optuna.Study) -> SweepSpec:
    """The sweep spec recorded in a study by `hpsearch sweep`; StorageError for other studies."""
    attrs = study.user_attrs
    text = study._storage.get_study_system_attrs(study._study_id).get(StudyKey.SPEC)
    if text is None and attrs.get(StudyKey.SPEC) not in (None, SPEC_ELSEWHERE):
        text = attrs[StudyKey.SPEC]  # recorded by 0.1
    if text is None:
        raise StorageError(f"study {study.study_name!r} was not created by hpsearch (or its "
                           f"first `hpsearch sweep` stopped before recording the spec)")
    return parse_spec(yaml.safe_load(text), attrs.get(StudyKey.SPEC_PATH, "<study>"), text)


def direction_sign(study: optuna.Study) -> float:
    """-1 for a maximised objective, +1 for a minimised one: sort by ``sign * value``."""
    return -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0


def ranked(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The complete trials, best first: of ``trials`` when given (one snapshot, so that a
    caller who also asks which trials finished sees the same states), else of the study now."""
    sign = direction_sign(study)
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: sign * float(t.value or 0.0))


# -- the budget rule -------------------------------------------------------------------------------
def retried_as(trials: Iterable[FrozenTrial]) -> dict[int, int]:
    """Each trial lost to a fault and retried -> the number of its (first) retry. A retry is
    marked ``retry_of`` (by `recover`, the outage path and the interrupt path) or, by Optuna's
    heartbeat retry, with the system attribute ``failed_trial``."""
    out: dict[int, int] = {}
    for t in trials:
        of = t.user_attrs.get(TrialKey.RETRY_OF, t.system_attrs.get("failed_trial"))
        if of is not None:
            out.setdefault(int(of), t.number)
    return out


def lost_trials(trials: list[FrozenTrial]) -> dict[int, int]:
    """The failed trials that were retried (lost to a fault) -> their retries."""
    by_number = {t.number: t for t in trials}
    return {n: r for n, r in retried_as(trials).items()
            if n in by_number and by_number[n].state == TrialState.FAIL}


def search_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials the search sampled or enqueued: not the reseed trials (repeats of the top
    configurations with other model seeds, no evidence about the space of their own)."""
    return [t for t in trials if TrialKey.RESEED_OF not in t.user_attrs]


def train_seconds(trial: FrozenTrial) -> float:
    """How long the trial trained (0 if it did not record it: running, failed early)."""
    return float(trial.user_attrs.get(TrialKey.TRAIN_TIME_S, 0.0))


def counted_trials(trials: list[FrozenTrial]) -> set[int]:
    """The numbers of the trials that count towards n_trials (see budget_counts)."""
    lost = lost_trials(trials)
    return {t.number for t in search_trials(trials) if t.state in FINISHED
            and t.number not in lost}


def inherited_attrs(trial: FrozenTrial) -> dict[str, Any]:
    """What a retry of ``trial`` keeps besides its parameters: a reseed trial's seed."""
    return {k: trial.user_attrs[k] for k in (TrialKey.RESEED_OF, TrialKey.MODEL_SEED)
            if k in trial.user_attrs}


def budget_counts(trials: list[FrozenTrial]) -> tuple[int, int, int]:
    """(counted, running, lost): trials that count towards n_trials (complete, pruned, and
    failed on their own: an exception in training, bad parameters; not the reseed trials of
    the sweep's end, which the budget's time but not its count covers), trials running now, and
    failed trials that were lost to a fault (a dead worker, a lost storage, a stopping signal)
    and retried with the same parameters; those do not count."""
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return len(counted_trials(trials)), running, len(lost_trials(trials))


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study, by the budget rule."""
    return budget_counts(study.get_trials(deepcopy=False))[:2]


# -- what only Optuna's internals tell -------------------------------------------------------------
def heartbeat_enabled(study: optuna.Study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)


def sibling_studies(study: optuna.Study) -> list[str]:
    """The names of the studies in ``study``'s storage."""
    return optuna.get_all_study_names(study._storage)


def stale_trial_callback(study: optuna.Study) -> Any:
    """The storage's heartbeat stale-trial callback (None without heartbeats)."""
    get = getattr(study._storage, "get_heartbeat_stale_trial_callback", None)
    return get() if get is not None else None


def say_running(study: optuna.Study, echo: Callable[[str], None]) -> None:
    """Name the trials a sweep finds RUNNING as it starts (a dead worker's, on a storage with
    heartbeats, was failed already; on a journal file it holds its share of the budget until
    `hpsearch recover`) and what to do about them."""
    busy = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if busy:
        echo(f"note: trial(s) {', '.join(map(str, busy))} RUNNING already: another worker's, "
             f"or left by a killed sweep (then, with no worker running, `hpsearch recover "
             f"{study.study_name}` fails and retries them, and this command resumes)")


def fail_stale_trials(study: optuna.Study) -> None:
    """On an RDB storage with heartbeats, fail the trials of dead workers now (through the
    storage's stale-trial callback: retries enqueued, runs closed)."""
    if not heartbeat_enabled(study):
        return
    with warnings.catch_warnings():  # "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def stored_trial(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """A running trial as the storage holds it now (system attributes included: a heartbeat
    retry's ``failed_trial``, a rung pruner's ``completed_rung_<k>``)."""
    return study._storage.get_trial(trial._trial_id)


def hyperband_bracket(study: optuna.Study, trial: FrozenTrial) -> int | None:
    """The Hyperband bracket a trial belongs to (None for other pruners)."""
    pruner = study.pruner
    if not isinstance(pruner, optuna.pruners.HyperbandPruner):
        return None
    return int(pruner._get_bracket_id(study, trial))
