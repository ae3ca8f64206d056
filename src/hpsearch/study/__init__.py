"""The Optuna study and what is read from it and recorded in it.

- ``store``: storages opened and resolved (a journal file under mlruns/, or PostgreSQL), a study
  joined, the attribute keys hpsearch records (``StudyKey``, ``TrialKey``), the budget rule's
  counts and the direction sign. The only module that touches private Optuna API.
- ``faults``: a dead worker's trial failed and retried (heartbeats, ``hpsearch recover``).
- ``plots``: Optuna's figures of the whole study (optimization history, importances).
- ``noise``: the noise floor of the objective and the rule that stops a sweep that is done.
- ``verdicts``: the trials' verdicts judged again against the study as it is now.
- ``warmstart``: a follow-up study's first trials, its parent's best that fit its space.
- ``recover``: ``hpsearch recover``, closing the trials of workers that died.
- ``proxy``: ``hpsearch storage-proxy``, Optuna's gRPC proxy in front of the storage.

May import: ``tracking`` (a lost trial's run is closed with it), ``spec``, ``diagnosis``,
``model``, ``errors``. Nothing here trains a model or runs a trial.
"""
