"""What a sweep is asked to do, read and checked before anything is recorded.

- ``config``: the YAML spec as frozen dataclasses (``load_spec``, ``parse_spec``); every mistake
  is one ``SpecError`` naming the file and the key (``checker`` reads a section that way).
- ``space``: the search space: Optuna suggestions, grids, the estimator parameters of a trial.
- ``registries``: the samplers and pruners a spec may name, with their options and factories.
- ``datasets``: digits, IDX (``idx``: MNIST, Fashion-MNIST files and their download) and CSV
  data sets, and stratified, seeded train/validation/test splits with a fingerprint.

May import: ``model`` (the parameter table the space is bounded by), ``diagnosis`` (the
thresholds a spec may set), ``errors``; Optuna only to build samplers, pruners and suggestions.
"""
