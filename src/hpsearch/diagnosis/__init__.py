"""What one trial's curves say, as pure functions of its History (the per-epoch records).

- ``diagnostics``: ``diagnose`` (the over/underfitting verdict with evidence and advice) and its
  thresholds in one table (``THRESHOLDS``), which a spec may override.
- ``plots``: learning curves of a trial (train, validation, test; best epoch marked).

May import: ``errors``; numpy and matplotlib (object API, no pyplot state). Nothing here reads a
spec, a study or a tracking store: the callers hand in the history and the study's context.
"""
