"""What a sweep is asked to do, read and checked before anything is recorded.

- ``config``: the YAML spec read into ``schema``'s frozen dataclasses (``load_spec``,
  ``parse_spec``); every mistake is one ``SpecError`` naming the file and the key (``checker``
  reads a section that way).
- ``init``: ``hpsearch init``, a commented spec written for a user's own table.
- ``space``: the search space: Optuna suggestions, grids, the estimator parameters of a trial.
- ``registries``: the samplers and pruners a spec may name, with their options and factories.
- ``datasets``: digits, IDX (``idx``: MNIST, Fashion-MNIST files and their download) and tables
  (``tables``: CSV and parquet files, and the column plan that makes their features), and
  stratified, seeded train/validation/test splits with a fingerprint.

May import: ``model`` (the parameter table the space is bounded by), ``diagnosis`` (the
thresholds a spec may set), ``errors``; Optuna only to build samplers, pruners and suggestions.
"""
