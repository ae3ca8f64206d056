"""``hpsearch dashboard [NAME]``: optuna-dashboard (the optional extra ``hpsearch[dashboard]``,
which ``make setup`` installs) over a sweep's Optuna storage, on 127.0.0.1 unless told otherwise.

hpsearch opens the storage itself, as its workers do (the journal file under mlruns/, or
PostgreSQL) and hands optuna-dashboard the open storage: a password in the URL is never on a
command line (``ps`` shows those) nor in what is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..errors import HpsearchError, StorageError, mask_uri
from ..study.store import (
    StudyKey,
    TrialKey,
    is_journal,
    journal_path,
    name_objective,
    open_storage,
    resolve_storage_url,
    study_spec,
)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # the page polls while the user reads: one thread per request


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no access log on the terminal
        pass


ATTRIBUTES = (  # what each trial attribute hpsearch records means, for the study's note
    (TrialKey.NOISE, "standard error of the trial's value on the validation split: trials "
                     "closer than about twice this are not told apart by it"),
    (TrialKey.TEST_ACCURACY_AT_BEST, "test accuracy at the best epoch: shown, never used to "
                                     "choose (the export evaluates the test split once)"),
    (f"{TrialKey.BEST_EPOCH}, {TrialKey.EPOCHS_RUN}, {TrialKey.TRAIN_TIME_S}",
     "the epoch whose weights the trial kept, the epochs it trained, its training seconds"),
    (f"{TrialKey.STATUS}, {TrialKey.REASON}",
     "how training ended (completed, early_stopped, stopped by the pruner, diverged; "
     "duplicate: a reseed twin, not trained) and why"),
    ("fit.verdict, fit.summary, fit.*", "the over/underfitting verdict, its evidence, and the "
                                        "numbers it was judged on"),
    (f"{TrialKey.RETRY_OF}, {TrialKey.WARM_START_OF}",
     "the trial this one retries (lost to a fault: not counted), the parent study's trial it "
     "starts from (hpsearch next)"),
    (f"{TrialKey.RESEED_OF}, {TrialKey.MODEL_SEED}", "a reseed trial: the configuration of "
     "that trial trained again with this model seed (not counted in n_trials)"),
)


def note(study: Any) -> str:
    """The study's note on its dashboard page: what hpsearch records and where the rest is."""
    metric = (study.metric_names or ["the objective"])[0]
    rows = "\n".join(f"| `{key}` | {meaning} |" for key, meaning in ATTRIBUTES)
    return (f"## hpsearch study `{study.study_name}`\n\n"
            f"A trial's value is its best **{metric}** over its epochs "
            f"({study.direction.name.lower()}); its intermediate values are that metric after "
            f"each epoch, which the pruner compares. Learning curves, verdicts and the kept "
            f"models are in the MLflow experiment `{study.study_name}` (`hpsearch ui`); a "
            f"report with advice: `hpsearch report {study.study_name}`.\n\n"
            f"| trial attribute | meaning |\n|---|---|\n{rows}\n\n"
            f"The study's `hpsearch.*` attributes (its spec, budget and stores) are hpsearch's "
            f"own records, read by its commands.\n")


def explain(storage: Any) -> None:
    """Name the objective and write the note (unless the study has one) of every hpsearch
    study in ``storage``: what the dashboard cannot know from Optuna alone."""
    import optuna
    from optuna_dashboard import get_note, save_note

    for summary in storage.get_all_studies():
        if StudyKey.SPEC_PATH not in summary.user_attrs:
            continue  # not an hpsearch study
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        spec = study_spec(study)
        name_objective(study, spec.objective.metric)
        if not get_note(study):
            save_note(study, note(study))


def dashboard_url(name: str | None, storage_url: str | None = None) -> tuple[Any, str]:
    """The storage opened for the dashboard, and the page to open: the study's, or the list."""
    url = resolve_storage_url(storage_url)
    if is_journal(url) and not journal_path(url).is_file():
        raise StorageError(f"{journal_path(url)}: no study yet (run a sweep first, or pass "
                           f"--storage)")
    storage = open_storage(url)
    if name is None:
        return storage, "/dashboard"
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        known = [s.study_name for s in storage.get_all_studies()]
        raise StorageError(f"no study named {name!r} in {mask_uri(url)} (studies: "
                           f"{', '.join(known) or 'none'})") from None
    return storage, f"/dashboard/studies/{study_id}"


def serve(name: str | None, storage_url: str | None, host: str, port: int,
          echo: Callable[[str], None] = print) -> None:
    """Serve optuna-dashboard until interrupted (Ctrl-C, SIGTERM)."""
    try:
        import optuna_dashboard
    except ImportError:
        raise HpsearchError("optuna-dashboard is not installed: pip install -e '.[dashboard]' "
                            "(make setup installs it)") from None
    storage, page = dashboard_url(name, storage_url)
    explain(storage)
    try:
        server = make_server(host, port, optuna_dashboard.wsgi(storage), server_class=_Server,
                             handler_class=_QuietHandler)
    except OSError as exc:
        raise StorageError(f"cannot listen on {host}:{port} ({exc.strerror}); pass --port "
                           f"another number") from None
    echo(f"optuna-dashboard on http://{host}:{port}{page} (storage "
         f"{mask_uri(resolve_storage_url(storage_url))}); Ctrl-C stops it.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
