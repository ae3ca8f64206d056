"""Every MLflow call: one experiment per sweep, one parent run per study, one child run per trial.

- ``backend``: the tracking store behind the client (URI, the embedded SQLite file, a server's
  timeouts) and what a run records of the code and libraries that ran.
- ``tracker``: ``Tracker`` (``NullTracker`` when tracking is off), the run layout over
  ``MlflowClient`` with explicit run ids; every MLflow error becomes one line.
- ``logged_models``: kept checkpoints as MLflow 3 logged models, dataset inputs, the registry.
- ``trial_log``: the background writer of a worker's trial runs (``messages``: what it is
  handed, one typed message per write), so that a trial never waits for the tracking store.
- ``writer``: one such writer per machine for `hpsearch sweep`, in a process of its own: the
  workers send it their messages, the sweep process its own calls (``TrackerProxy``).
- ``remote``: a worker's side of that writer: its link, the shared outage, ``RemoteTrialLog``.

May import: ``model`` (a checkpoint written as an MLflow model), ``diagnosis`` (the curves of a
trial run), ``errors``, ``_version``. The only layer that holds an MLflow client; nothing here
reads a study (backend records Optuna's version, nothing more).
"""
