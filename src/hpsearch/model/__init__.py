"""The fitted classifier and its files: what a trial trains and what a user loads and serves.

- ``params``: the estimator's parameters and their bounds, in one table.
- ``preprocessing``: the input transform stored with a model (standardize, scale, none).
- ``columns``: a table's column plan (drop, one-hot, fill) that makes rows into features, for
  training and for a served model alike (``columns.json`` beside an exported checkpoint).
- ``estimator``: ``MLPClassifier``, the scikit-learn estimator around the ``nn`` engine.
- ``frames``: its history and its predictions as DataFrames (the output of every way to serve).
- ``state``: the fitted estimator as the checkpoint format holds it, and back.
- ``checkpoint``: the checkpoint directory (``weights.npz`` + ``checkpoint.json``, never
  unpickled) and ``load``, which builds whichever model a directory holds.
- ``ensemble``: ``EnsembleClassifier``, weighted kept checkpoints, and the greedy selection.
- ``pyfunc``: a checkpoint written as an MLflow model ("models from code").
- ``serving``: that model's code, which MLflow loads as source (not imported by hpsearch).

May import: ``nn``, ``errors``, ``_version``; numpy, scikit-learn, pandas; MLflow only in
``pyfunc`` and ``serving``. Nothing here knows about specs, studies or tracking.
"""
