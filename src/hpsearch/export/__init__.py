"""What a user walks away with: the chosen model as an MLflow model, registered, with its card.

- ``export``: ``hpsearch export``: the best trial's checkpoint (or the top configurations
  reseeded, or an ensemble of kept checkpoints; refit on train + validation if asked) evaluated
  once on the untouched test split, written as an MLflow model ("models from code", never
  unpickled) and registered under the study's name with the alias ``champion``.
- ``card``: the MODEL_CARD.md beside it.
- ``predict``: ``hpsearch predict``, an exported model's answers for a CSV of raw features.

May import: ``search`` (reseed and refit), ``study``, ``tracking``, ``spec``, ``diagnosis``,
``model``, ``nn``, ``errors``, ``_version``. Not ``report``: the two read a study side by side.
"""
