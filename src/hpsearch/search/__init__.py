"""One trial and the loop that runs them: what a worker does.

- ``trial``: the objective: a trial's parameters, its model trained on the worker's prepared
  splits, its verdict, its end in both stores (lost to the infrastructure: retried, not counted).
- ``callbacks``: what runs after every epoch: pruning (validation only), the MLflow epoch
  logger. The training loop only fires them.
- ``signals``: SIGINT, SIGTERM and SIGHUP take one path: the running trial closed and retried.
- ``losses``: a trial lost to a storage or tracking outage or a signal, failed and retried; the
  wait for the store to answer.
- ``retention``: which checkpoints are kept (the top k, as logged models) and which deleted.
- ``reseed``: the top configurations trained again with other model seeds.
- ``refit``: the chosen model(s) trained again on train + validation, inside the budget or not.
- ``worker``: ``hpsearch worker``, a process that joins a study and runs trials until the
  budget is met, with stop checks, outage retries, signals and the progress line.
- ``prepare``: the study, its budget and the parent run made ready for workers to join.
- ``sweep``: ``hpsearch sweep``, the study prepared, workers started, the end reported (and the
  parent run closed by the last worker of a launched sweep).
- ``launch``: ``hpsearch launch slurm|k8s``, the workers a Slurm job array or a Kubernetes Job.

May import: ``study``, ``tracking``, ``spec``, ``diagnosis``, ``model``, ``nn``, ``errors``,
``_version``.
"""
